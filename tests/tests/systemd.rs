//! The systemd units and the packaging, checked with the real tools and no running systemd:
//! `systemd-analyze security` on the shipped service, `make install DESTDIR=` from the
//! binaries `cargo build` already made, `systemd-analyze verify --root=` on that tree, and the
//! Debian package (`cargo deb --no-build`) listed with `dpkg-deb -c` and installed, upgraded
//! and purged in a scratch root with `dpkg --root`.
//!
//! Tools come from `make test-deps` (apt: systemd, dpkg-dev, make, init-system-helpers;
//! `cargo install cargo-deb`). A missing tool fails the test, naming it and how to install it
//! (see [`mcpproxy_tests::prereq`]).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use mcpproxy_tests::daemon::bin_path;
use mcpproxy_tests::prereq::have;

/// The target for `systemd-analyze security` (which labels 1.0 to 4.9 "OK").
const MAX_EXPOSURE: f64 = 1.5;
const SYSTEM_UNITS: [&str; 4] = [
    "mcpproxyd.service",
    "mcpproxyd.socket",
    "mcpproxyd-admin.socket",
    "mcpproxyd-unix.socket",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The directory holding the already-built `mcpproxyd` and `mcpproxyctl` (`target/debug`).
fn built_binaries() -> PathBuf {
    bin_path("mcpproxyctl");
    bin_path("mcpproxyd").parent().unwrap().to_path_buf()
}

/// Runs `cmd`, asserts it succeeded, returns stdout followed by stderr.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{text}",
        out.status
    );
    text
}

fn running_as_root() -> bool {
    let probe = tempfile::tempfile().expect("temp file");
    probe.metadata().unwrap().uid() == 0
}

/// `(section, key, value)` of every assignment in a unit file or drop-in.
fn entries(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            out.push((section.clone(), k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// The values of `key` in `section`, in order.
fn values(text: &str, section: &str, key: &str) -> Vec<String> {
    entries(text)
        .into_iter()
        .filter(|(s, k, _)| s == section && k == key)
        .map(|(_, _, v)| v)
        .collect()
}

/// The single value of `key` in `section`.
fn value(text: &str, section: &str, key: &str) -> String {
    let v = values(text, section, key);
    assert_eq!(v.len(), 1, "[{section}] {key}= should be set once: {v:?}");
    v.into_iter().next().unwrap()
}

/// `systemd-analyze security --offline=yes --threshold=15 UNIT`: must pass; returns the
/// overall exposure and its label.
fn exposure(unit: &Path) -> (f64, String) {
    let text = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=15"])
        .arg(unit)
        .env("SYSTEMD_COLORS", "0"));
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level for"))
        .unwrap_or_else(|| panic!("no overall exposure in:\n{text}"));
    let mut words = line
        .rsplit_once(": ")
        .expect("exposure line")
        .1
        .split_whitespace();
    let level: f64 = words.next().unwrap().parse().expect("exposure number");
    (level, words.next().unwrap_or_default().to_string())
}

/// Makes `root` something `systemd-analyze verify --root=` accepts on systemd 252: the
/// standard targets our units hang off, and `/bin/kill` for `ExecReload=`.
fn add_verify_prerequisites(root: &Path) {
    let host_units = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .map(Path::new)
        .find(|d| d.join("multi-user.target").exists())
        .expect("the host's systemd units (package systemd)");
    let dest = root.join("lib/systemd/system");
    fs::create_dir_all(&dest).unwrap();
    for entry in fs::read_dir(host_units).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "target") {
            fs::copy(&path, dest.join(path.file_name().unwrap())).unwrap();
        }
    }
    let kill = ["/bin/kill", "/usr/bin/kill"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("kill (package procps)");
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::copy(kill, root.join("bin/kill")).unwrap();
}

/// `systemd-analyze verify --root=ROOT UNITS`: must pass and say nothing about our units
/// (unknown keys and bad values are only warnings, so the output is checked too).
fn verify(root: &Path, units: &[&str]) {
    let text = run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .args(units)
        .env("SYSTEMD_COLORS", "0"));
    let ours: Vec<&str> = text.lines().filter(|l| l.contains("mcpproxyd")).collect();
    assert!(ours.is_empty(), "systemd-analyze verify complains:\n{text}");
}

fn assert_mode(path: &Path, mode: u32) {
    let meta = fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        meta.permissions().mode() & 0o7777,
        mode,
        "mode of {}",
        path.display()
    );
}

/// The line for `name` in an /etc/passwd or /etc/group file under a scratch root.
fn account(file: &Path, name: &str) -> Option<Vec<String>> {
    read(file)
        .lines()
        .map(|l| l.split(':').map(str::to_string).collect::<Vec<_>>())
        .find(|f| f[0] == name)
}

#[test]
fn service_exposure_is_ok_with_and_without_the_drop_ins() {
    if !have(
        "systemd-analyze",
        &["--version"],
        "install it with `apt-get install systemd`",
    ) {
        return;
    }
    let unit = repo().join("systemd/mcpproxyd.service");
    let (level, label) = exposure(&unit);
    eprintln!("systemd-analyze security --offline=yes systemd/mcpproxyd.service: {level} {label}");
    assert!(level <= MAX_EXPOSURE, "exposure {level} > {MAX_EXPOSURE}");
    assert_eq!(label, "OK");

    // A drop-in's [Service] appended to the unit is what systemd sees with it installed.
    let dir = tempfile::tempdir().unwrap();
    for dropin in ["keyring.conf", "credential.conf"] {
        let text = read(&unit) + &read(&repo().join("systemd/dropins").join(dropin));
        let with = dir.path().join("mcpproxyd.service");
        fs::write(&with, text).unwrap();
        let (level, label) = exposure(&with);
        eprintln!("  with {dropin}: {level} {label}");
        assert!(level <= MAX_EXPOSURE, "with {dropin}: exposure {level}");
        assert_eq!(label, "OK", "with {dropin}");
    }
}

#[test]
fn units_say_what_the_daemon_and_the_operator_rely_on() {
    let sd = repo().join("systemd");
    let service = read(&sd.join("mcpproxyd.service"));
    let s = |k| value(&service, "Service", k);
    assert_eq!(s("Type"), "notify");
    assert_eq!(s("NotifyAccess"), "main");
    assert!(!s("WatchdogSec").is_empty());
    assert_eq!(
        s("ExecStart"),
        "/usr/bin/mcpproxyd --config /etc/mcpproxyd/mcpproxyd.toml"
    );
    assert_eq!(s("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(s("Restart"), "on-failure");
    // A bad config exits 64 and must not restart-loop.
    assert!(s("RestartPreventExitStatus")
        .split_whitespace()
        .any(|c| c == "64"));
    assert_eq!(s("User"), "mcpproxyd");
    assert_eq!(s("StateDirectory"), "mcpproxyd");
    assert_eq!(s("StateDirectoryMode"), "0700");
    assert_eq!(s("RuntimeDirectory"), "mcpproxyd");
    assert_eq!(s("RuntimeDirectoryMode"), "0750");
    assert_eq!(s("ConfigurationDirectory"), "mcpproxyd");
    assert_eq!(s("UMask"), "0077");
    assert_eq!(s("KeyringMode"), "private");
    assert_eq!(s("CapabilityBoundingSet"), "");
    assert_eq!(s("RestrictAddressFamilies"), "AF_UNIX AF_INET AF_INET6");
    // The default limits.max_connections client connections, plus one upstream connection
    // each, plus room for the rest (stores, logs, listing calls).
    let nofile: u64 = s("LimitNOFILE").parse().unwrap();
    let needed = 2 * mcpproxyd::config::DEFAULT_MAX_CONNECTIONS as u64 + 1024;
    assert!(nofile >= needed, "LimitNOFILE={nofile}, needs {needed}");
    // PrivateUsers= would hide the admin socket's peer uids; the proxy must reach the cloud;
    // the unit must start before a credential is sealed (that is the credential drop-in).
    for absent in [
        "PrivateUsers",
        "PrivateNetwork",
        "IPAddressDeny",
        "DynamicUser",
        "LoadCredential",
        "LoadCredentialEncrypted",
    ] {
        assert!(
            values(&service, "Service", absent).is_empty(),
            "{absent}= must not be in the unit"
        );
    }
    assert_eq!(value(&service, "Install", "WantedBy"), "multi-user.target");

    // One socket unit per file-descriptor name: FileDescriptorName= names all of a unit's
    // sockets, so the daemon tells the proxy port from the admin socket by name.
    for (unit, name, listen) in [
        ("mcpproxyd.socket", "proxy", "127.0.0.1:8088"),
        (
            "mcpproxyd-admin.socket",
            "admin",
            "/run/mcpproxyd/admin.sock",
        ),
        (
            "mcpproxyd-unix.socket",
            "proxy-unix",
            "/run/mcpproxyd/proxy.sock",
        ),
    ] {
        let text = read(&sd.join(unit));
        assert_eq!(value(&text, "Socket", "FileDescriptorName"), name, "{unit}");
        assert_eq!(value(&text, "Socket", "ListenStream"), listen, "{unit}");
        assert_eq!(
            value(&text, "Socket", "Service"),
            "mcpproxyd.service",
            "{unit}"
        );
        assert_eq!(value(&text, "Install", "WantedBy"), "sockets.target");
    }
    let admin = read(&sd.join("mcpproxyd-admin.socket"));
    assert_eq!(value(&admin, "Socket", "SocketMode"), "0660");
    assert_eq!(value(&admin, "Socket", "SocketGroup"), "mcpproxyd");

    let keyring = read(&sd.join("dropins/keyring.conf"));
    assert_eq!(value(&keyring, "Service", "KeyringMode"), "shared");
    // The daemon reads the credential named mcpproxyd-token-key.
    let credential = read(&sd.join("dropins/credential.conf"));
    assert_eq!(
        value(&credential, "Service", "LoadCredentialEncrypted"),
        "mcpproxyd-token-key:/etc/credstore.encrypted/mcpproxyd-token-key"
    );

    let user = read(&sd.join("user/mcpproxyd.service"));
    assert_eq!(value(&user, "Service", "Type"), "notify");
    assert_eq!(value(&user, "Service", "ExecStart"), "/usr/bin/mcpproxyd");
    assert_eq!(value(&user, "Service", "RestartPreventExitStatus"), "64");
    assert!(values(&user, "Service", "User").is_empty());
    assert_eq!(value(&user, "Install", "WantedBy"), "default.target");

    // The user the unit runs as, and /run/mcpproxyd as the unit makes it.
    let sysusers = read(&sd.join("sysusers.d/mcpproxyd.conf"));
    assert!(
        sysusers
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["u", "mcpproxyd"])),
        "{sysusers}"
    );
    let tmpfiles = read(&sd.join("tmpfiles.d/mcpproxyd.conf"));
    assert!(
        tmpfiles.lines().any(|l| l.split_whitespace().take(5).eq([
            "d",
            "/run/mcpproxyd",
            "0750",
            "mcpproxyd",
            "mcpproxyd"
        ])),
        "{tmpfiles}"
    );
}

#[test]
fn make_install_puts_everything_in_place_and_the_tree_verifies() {
    if !have(
        "make",
        &["--version"],
        "install it with `apt-get install make`",
    ) || !have(
        "systemd-analyze",
        &["--version"],
        "install it with `apt-get install systemd`",
    ) || !have(
        "systemd-sysusers",
        &["--version"],
        "install it with `apt-get install systemd`",
    ) {
        return;
    }
    let bins = built_binaries();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let make_install = || {
        run(Command::new("make")
            .arg("-C")
            .arg(repo())
            .args(["--no-print-directory", "install"])
            .arg(format!("DESTDIR={}", root.display()))
            .arg(format!("TARGET_DIR={}", bins.display()))
            // The binaries exist, so install must not build: any cargo call fails.
            .arg("CARGO=false"))
    };
    make_install();

    // The default PREFIX, /usr/local; the config in /etc.
    let local = root.join("usr/local");
    for bin in ["mcpproxyd", "mcpproxyctl"] {
        let installed = local.join("bin").join(bin);
        assert_mode(&installed, 0o755);
        assert_eq!(
            fs::metadata(&installed).unwrap().len(),
            fs::metadata(bins.join(bin)).unwrap().len(),
            "{bin} is the built binary"
        );
    }
    for unit in SYSTEM_UNITS {
        assert_mode(&local.join("lib/systemd/system").join(unit), 0o644);
    }
    let service = read(&local.join("lib/systemd/system/mcpproxyd.service"));
    assert_eq!(
        value(&service, "Service", "ExecStart"),
        "/usr/local/bin/mcpproxyd --config /etc/mcpproxyd/mcpproxyd.toml"
    );
    let user_unit = read(&local.join("lib/systemd/user/mcpproxyd.service"));
    assert_eq!(
        value(&user_unit, "Service", "ExecStart"),
        "/usr/local/bin/mcpproxyd"
    );
    for (path, source) in [
        (
            "usr/local/lib/sysusers.d/mcpproxyd.conf",
            "systemd/sysusers.d/mcpproxyd.conf",
        ),
        (
            "usr/local/lib/tmpfiles.d/mcpproxyd.conf",
            "systemd/tmpfiles.d/mcpproxyd.conf",
        ),
        ("etc/mcpproxyd/mcpproxyd.toml", "config/mcpproxyd.toml"),
        ("usr/local/share/doc/mcpproxyd/README.md", "README.md"),
        (
            "usr/local/share/doc/mcpproxyd/examples/mcpproxyd.toml",
            "config/mcpproxyd.toml",
        ),
        (
            "usr/local/share/doc/mcpproxyd/examples/keyring.conf",
            "systemd/dropins/keyring.conf",
        ),
        (
            "usr/local/share/doc/mcpproxyd/examples/credential.conf",
            "systemd/dropins/credential.conf",
        ),
    ] {
        assert_eq!(read(&root.join(path)), read(&repo().join(source)), "{path}");
        assert_mode(&root.join(path), 0o644);
    }

    // The operator's config survives a second install.
    let config = root.join("etc/mcpproxyd/mcpproxyd.toml");
    fs::write(&config, "# edited by the operator\n").unwrap();
    make_install();
    assert_eq!(read(&config), "# edited by the operator\n");

    // The units, with both drop-ins, verify against the installed binaries. systemd 252's
    // verify has no --user with --root: the user unit is checked as a system unit.
    add_verify_prerequisites(&root);
    let dropins = root.join("etc/systemd/system/mcpproxyd.service.d");
    fs::create_dir_all(&dropins).unwrap();
    for d in ["keyring.conf", "credential.conf"] {
        fs::copy(
            local.join("share/doc/mcpproxyd/examples").join(d),
            dropins.join(d),
        )
        .unwrap();
    }
    fs::write(
        root.join("etc/systemd/system/mcpproxyd-user.service"),
        &user_unit,
    )
    .unwrap();
    let mut units = SYSTEM_UNITS.to_vec();
    units.push("mcpproxyd-user.service");
    verify(&root, &units);

    // The sysusers and tmpfiles snippets, applied to the tree.
    run(Command::new("systemd-sysusers").arg(format!("--root={}", root.display())));
    let user = account(&root.join("etc/passwd"), "mcpproxyd").expect("user mcpproxyd");
    assert_eq!(user[5], "/var/lib/mcpproxyd");
    let group = account(&root.join("etc/group"), "mcpproxyd").expect("group mcpproxyd");
    assert_eq!(user[3], group[2], "primary group");
    if running_as_root() {
        run(Command::new("systemd-tmpfiles")
            .arg(format!("--root={}", root.display()))
            .args(["--create", "mcpproxyd.conf"]));
        let run_dir = root.join("run/mcpproxyd");
        assert_mode(&run_dir, 0o750);
        assert_eq!(
            fs::metadata(&run_dir).unwrap().gid().to_string(),
            group[2],
            "/run/mcpproxyd belongs to the mcpproxyd group"
        );
    }
}

#[test]
fn deb_lists_the_files_and_installs_enabled_into_a_scratch_root() {
    let tools = [
        (
            "cargo",
            &["deb", "--version"][..],
            "install it with `cargo install cargo-deb --locked --version 3.8.0`",
        ),
        (
            "dpkg-deb",
            &["--version"][..],
            "install it with `apt-get install dpkg`",
        ),
        (
            "dpkg-shlibdeps",
            &["--version"][..],
            "install it with `apt-get install dpkg-dev`",
        ),
        (
            "deb-systemd-helper",
            &["--help"][..],
            "install it with `apt-get install init-system-helpers`",
        ),
        (
            "systemd-sysusers",
            &["--version"][..],
            "install it with `apt-get install systemd`",
        ),
        (
            "systemd-analyze",
            &["--version"][..],
            "install it with `apt-get install systemd`",
        ),
    ];
    if !tools.iter().all(|(p, a, i)| have(p, a, i)) {
        return;
    }
    let bins = built_binaries();
    let tmp = tempfile::tempdir().unwrap();

    // cargo-deb takes `target/release/...` from CARGO_TARGET_DIR: point that at the binaries
    // `cargo build` made (no release build here). --fast: gzip; the test only reads it back.
    let release = tmp.path().join("target/release");
    fs::create_dir_all(&release).unwrap();
    for bin in ["mcpproxyd", "mcpproxyctl"] {
        std::os::unix::fs::symlink(bins.join(bin), release.join(bin)).unwrap();
    }
    let out = tmp.path().join("deb");
    run(Command::new("cargo")
        .args([
            "deb",
            "-p",
            "mcpproxyd",
            "--no-build",
            "--fast",
            "--manifest-path",
        ])
        .arg(repo().join("Cargo.toml"))
        .arg("-o")
        .arg(format!("{}/", out.display()))
        .env("CARGO_TARGET_DIR", tmp.path().join("target")));
    let debs: Vec<PathBuf> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "{debs:?}");
    let deb = &debs[0];

    // dpkg-deb -c: binaries, units, config, sysusers/tmpfiles at the standard places.
    let listing = run(Command::new("dpkg-deb").arg("-c").arg(deb));
    let files: Vec<(String, String)> = listing
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 6).then(|| (f[0].to_string(), f[5].trim_start_matches('.').to_string()))
        })
        .collect();
    let mode_of = |path: &str| {
        files
            .iter()
            .find(|(_, p)| p == path)
            .map(|(m, _)| m.as_str())
            .unwrap_or_else(|| panic!("{path} is not in the package:\n{listing}"))
    };
    for bin in ["/usr/bin/mcpproxyd", "/usr/bin/mcpproxyctl"] {
        assert_eq!(mode_of(bin), "-rwxr-xr-x", "{bin}");
    }
    for path in [
        "/usr/lib/systemd/system/mcpproxyd.service",
        "/usr/lib/systemd/system/mcpproxyd.socket",
        "/usr/lib/systemd/system/mcpproxyd-admin.socket",
        "/usr/lib/systemd/system/mcpproxyd-unix.socket",
        "/usr/lib/systemd/user/mcpproxyd.service",
        "/usr/lib/sysusers.d/mcpproxyd.conf",
        "/usr/lib/tmpfiles.d/mcpproxyd.conf",
        "/etc/mcpproxyd/mcpproxyd.toml",
        "/usr/share/doc/mcpproxyd/README.md",
        "/usr/share/doc/mcpproxyd/examples/credential.conf",
        "/usr/share/doc/mcpproxyd/examples/keyring.conf",
    ] {
        assert_eq!(mode_of(path), "-rw-r--r--", "{path}");
    }
    let control = tmp.path().join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(deb).arg(&control));
    assert_eq!(
        read(&control.join("conffiles")).trim(),
        "/etc/mcpproxyd/mcpproxyd.toml"
    );
    let fields = read(&control.join("control"));
    assert!(
        fields.lines().any(|l| l == "Package: mcpproxyd"),
        "{fields}"
    );

    // Install into a scratch root. With --force-script-chrootless the maintainer scripts run
    // on this machine with DPKG_ROOT set, and every command in them honours it
    // (systemd-sysusers/-tmpfiles --root, deb-systemd-helper). The ones that would act on the
    // running system must not be reached: shims that record the call and fail stand in for
    // them, first on PATH.
    let root = tmp.path().join("root");
    for dir in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
    ] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    let shims = tmp.path().join("shims");
    let calls = tmp.path().join("host-calls");
    fs::create_dir_all(&shims).unwrap();
    for tool in ["systemctl", "deb-systemd-invoke", "invoke-rc.d", "service"] {
        let shim = shims.join(tool);
        fs::write(
            &shim,
            format!(
                "#!/bin/sh\necho \"$0 $*\" >> '{}'\nexit 1\n",
                calls.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&shim, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        shims.display()
    );
    let dpkg = |args: &[&str]| {
        run(Command::new("dpkg")
            .arg(format!("--root={}", root.display()))
            .arg(format!("--log={}", tmp.path().join("dpkg.log").display()))
            .args([
                "--force-script-chrootless",
                // The scratch root has no libc6 or systemd package to satisfy Depends.
                "--force-depends",
                // Harmless as root; lets a developer run this as a user.
                "--force-not-root",
            ])
            .args(args)
            .env("PATH", &path))
    };
    let as_root = running_as_root();
    let wants = root.join("etc/systemd/system/multi-user.target.wants/mcpproxyd.service");
    let check_installed = || {
        let target = fs::read_link(&wants).expect("mcpproxyd.service is enabled");
        assert!(
            target.ends_with("systemd/system/mcpproxyd.service"),
            "{}",
            target.display()
        );
        // The socket units are opt-in.
        let sockets = root.join("etc/systemd/system/sockets.target.wants");
        for unit in [
            "mcpproxyd.socket",
            "mcpproxyd-admin.socket",
            "mcpproxyd-unix.socket",
        ] {
            assert!(!sockets.join(unit).exists(), "{unit} was enabled");
        }
        let user = account(&root.join("etc/passwd"), "mcpproxyd").expect("user mcpproxyd");
        assert_eq!(user[5], "/var/lib/mcpproxyd");
        let group = account(&root.join("etc/group"), "mcpproxyd").expect("group mcpproxyd");
        if as_root {
            let run_dir = root.join("run/mcpproxyd");
            assert_mode(&run_dir, 0o750);
            assert_eq!(fs::metadata(&run_dir).unwrap().gid().to_string(), group[2]);
        }
        let status = read(&root.join("var/lib/dpkg/status"));
        assert!(status.contains("Status: install ok installed"), "{status}");
        assert!(
            status.contains("Conffiles:\n /etc/mcpproxyd/mcpproxyd.toml "),
            "{status}"
        );
        assert!(
            !calls.exists(),
            "a maintainer script acted on the running system:\n{}",
            read(&calls)
        );
    };
    dpkg(&["-i", deb.to_str().unwrap()]);
    check_installed();

    // The installed package's units verify against its own binary.
    add_verify_prerequisites(&root);
    verify(&root, &SYSTEM_UNITS);

    // Upgrade (same version again: postinst configure with the old version): still enabled.
    dpkg(&["-i", deb.to_str().unwrap()]);
    check_installed();

    // Purge: no enable symlink, no config, no runtime directory left.
    dpkg(&["--purge", "mcpproxyd"]);
    assert!(
        fs::symlink_metadata(&wants).is_err(),
        "enable symlink left behind"
    );
    assert!(!root.join("etc/mcpproxyd/mcpproxyd.toml").exists());
    assert!(!root.join("usr/bin/mcpproxyd").exists());
    assert!(!root.join("run/mcpproxyd").exists());
    assert!(
        !calls.exists(),
        "a maintainer script acted on the running system:\n{}",
        read(&calls)
    );
}
