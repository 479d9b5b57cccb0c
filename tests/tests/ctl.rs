//! `mcpproxyctl`, the real binary, against the real daemon.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

use mcpproxy_tests::daemon::{
    bin_path, proxy_client, start_with_two_servers, Setup, TestDaemon, TWO_SERVERS,
};
use mcpproxy_tests::upstream::{self, UpstreamOptions};

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn ctl(socket: &Path, args: &[&str]) -> Out {
    ctl_cmd(
        std::process::Command::new(bin_path("mcpproxyctl")),
        socket,
        args,
    )
}

fn ctl_cmd(mut cmd: std::process::Command, socket: &Path, args: &[&str]) -> Out {
    let out = cmd
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("MCPPROXYD_SOCKET")
        .output()
        .expect("run mcpproxyctl");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test]
async fn status_servers_acl_and_metrics_in_words_and_json() {
    let (up, _setup, d) = start_with_two_servers("[acl]\nblocked_servers = [\"ram\"]\n")
        .await
        .unwrap();
    let sock = d.admin_socket();
    assert_eq!(
        proxy_client()
            .get(d.url("/raw/echo"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let o = ctl(&sock, &["status"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let addr = d.addr.to_string();
    for needle in [
        addr.as_str(),
        "mcpproxyd.toml",
        "test (static): valid",
        "ram",
    ] {
        assert!(
            o.stdout.contains(needle),
            "{needle:?} missing:\n{}",
            o.stdout
        );
    }
    assert!(!o.stdout.contains(up.token()));
    let o = ctl(&sock, &["status", "--json"]);
    assert_eq!(o.code, 0);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["counters"]["requests"], 1);
    let o = ctl(&sock, &["status", "--check"]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);

    let o = ctl(&sock, &["servers"]);
    assert_eq!(o.code, 0);
    assert!(o.stdout.contains("ecs"), "{}", o.stdout);
    assert!(o.stdout.contains("blocked"), "{}", o.stdout);
    assert!(
        o.stdout.contains(&format!(
            "http://{}/accounts/1/custom/ecs/id/ECS01/sse",
            d.addr
        )),
        "{}",
        o.stdout
    );
    let o = ctl(&sock, &["servers", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["servers"][1]["access"], "blocked");

    let o = ctl(
        &sock,
        &["acl", "check", "/accounts/1/custom/ram/id/RAM01/mcp"],
    );
    assert_eq!(o.code, 1, "denied exits 1");
    assert!(o.stdout.contains("denied"), "{}", o.stdout);
    assert!(o.stdout.contains("ram"), "{}", o.stdout);
    let o = ctl(
        &sock,
        &[
            "acl",
            "check",
            "/accounts/1/custom/ecs/id/ECS01/mcp",
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["allowed"], true);
    assert_eq!(o.code, 0, "allowed exits 0");

    let o = ctl(&sock, &["metrics"]);
    assert_eq!(o.code, 0);
    assert!(
        o.stdout
            .contains("mcpproxyd_requests_total{upstream=\"test\""),
        "{}",
        o.stdout
    );
}

#[tokio::test]
async fn status_check_fails_when_a_profile_needs_login() {
    let (_up, setup, _d) = start_with_two_servers("").await.unwrap();
    let config = String::from(
        "[auth.corp]\nkind = \"oauth\"\nissuer = \"https://127.0.0.1:1\"\n\n\
         [[upstream]]\nname = \"corp\"\nurl = \"https://127.0.0.1:1\"\nauth = \"corp\"\n",
    );
    let path = setup.path("oauth.toml");
    std::fs::write(&path, config).unwrap();
    let d = TestDaemon::start(&path, &[]).await.unwrap();
    let o = ctl(&d.admin_socket(), &["status", "--check"]);
    assert_eq!(o.code, 1, "{}{}", o.stdout, o.stderr);
    assert!(o.stderr.contains("corp"), "{}", o.stderr);
}

#[tokio::test]
async fn reload_reports_success_and_invalid_files() {
    let up = upstream::start(UpstreamOptions::default()).await.unwrap();
    let setup = Setup::new().unwrap();
    let config = setup.static_config(&up, TWO_SERVERS).unwrap();
    let path = setup.write_config(&config).unwrap();
    let d = TestDaemon::start(&path, &[]).await.unwrap();
    let sock = d.admin_socket();
    std::fs::write(
        &path,
        format!("{config}\n[acl]\nblocked_servers = [\"ecs\"]\n"),
    )
    .unwrap();
    let o = ctl(&sock, &["reload"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("reloaded"), "{}", o.stdout);
    let ecs = d.url("/accounts/1/custom/ecs/id/ECS01/mcp");
    assert_eq!(proxy_client().get(&ecs).send().await.unwrap().status(), 403);

    std::fs::write(
        &path,
        format!("{config}\n[acl]\nblocked_servers = [\"ecs\"]\nbogus = 1\n"),
    )
    .unwrap();
    let o = ctl(&sock, &["reload"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("mcpproxyd.toml:"), "{}", o.stderr);
    assert!(o.stderr.contains("bogus"), "{}", o.stderr);
    assert_eq!(proxy_client().get(&ecs).send().await.unwrap().status(), 403);
}

#[tokio::test]
async fn no_daemon_exits_69_and_usage_errors_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("admin.sock");
    let o = ctl(&missing, &["status"]);
    assert_eq!(o.code, 69, "{}", o.stderr);
    assert!(o.stderr.contains(missing.to_str().unwrap()), "{}", o.stderr);
    // A stale socket: the file exists, nobody listens.
    drop(std::os::unix::net::UnixListener::bind(&missing).unwrap());
    assert_eq!(ctl(&missing, &["status"]).code, 69);
    assert_eq!(ctl(&missing, &["frobnicate"]).code, 64);
    assert_eq!(ctl(&missing, &["acl", "check"]).code, 64);
    // --help names every exit code the README lists.
    let o = ctl(&missing, &["--help"]);
    assert_eq!(o.code, 0);
    for code in [
        "0 ok",
        "1 the daemon",
        "64 usage",
        "66 the file to import",
        "69 ",
        "74 ",
        "77 ",
    ] {
        assert!(
            o.stdout.contains(code),
            "{code:?} missing in --help:\n{}",
            o.stdout
        );
    }
    let o = ctl(&missing, &["completions", "bash"]);
    assert_eq!(o.code, 0);
    assert!(o.stdout.contains("mcpproxyctl"));
}

/// The daemon itself refuses a caller who could open the socket file: uid 65534 with group 0
/// passes the 0660 root-owned socket's permissions, and must be stopped by SO_PEERCRED.
#[tokio::test]
async fn another_uid_is_refused_by_the_daemon_not_just_by_file_permissions() {
    if !nix_is_root() {
        mcpproxy_tests::prereq::missing(
            "root (to run a client as another uid)",
            "run the suite as root, as CI does",
        );
        return;
    }
    let (_up, setup, d) = start_with_two_servers("").await.unwrap();
    // Let uid 65534 reach the socket and run a copy of the binary.
    std::fs::set_permissions(d.runtime_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin_dir = setup.path("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    std::fs::set_permissions(setup.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&bin_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ctl_copy = bin_dir.join("mcpproxyctl");
    std::fs::copy(bin_path("mcpproxyctl"), &ctl_copy).unwrap();
    std::fs::set_permissions(&ctl_copy, std::fs::Permissions::from_mode(0o755)).unwrap();

    let mut cmd = std::process::Command::new(&ctl_copy);
    cmd.uid(65534).gid(0).current_dir("/");
    let o = ctl_cmd(cmd, &d.admin_socket(), &["status"]);
    assert_eq!(o.code, 77, "{}{}", o.stdout, o.stderr);
    d.wait_for_log("admin socket: caller refused")
        .await
        .unwrap();
    let logs = d.logs();
    let line = logs.lines().find(|l| l.contains("caller refused")).unwrap();
    assert!(line.contains("uid=65534"), "{line}");
    assert!(line.contains("pid="), "{line}");

    // Members of the configured admin group are let in: group 0 is the caller's primary gid.
    let config = std::fs::read_to_string(setup.path("mcpproxyd.toml")).unwrap();
    std::fs::write(
        setup.path("mcpproxyd.toml"),
        format!("[admin]\ngroup = \"root\"\n{config}"),
    )
    .unwrap();
    let o = ctl(&d.admin_socket(), &["reload"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let mut cmd = std::process::Command::new(&ctl_copy);
    cmd.uid(65534).gid(0).current_dir("/");
    let o = ctl_cmd(cmd, &d.admin_socket(), &["status", "--json"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
}

fn nix_is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}
