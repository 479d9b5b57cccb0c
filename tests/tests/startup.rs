//! What a newcomer sees when starting the daemon by hand: where a root run writes, and one
//! clear error with a hint when the admin socket cannot be created.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;

use mcpproxy_tests::daemon::{bin_path, start_with_two_servers};

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

#[tokio::test]
async fn a_root_run_outside_systemd_says_where_it_writes() {
    let (_up, _setup, d) = start_with_two_servers("").await.unwrap();
    let said = d
        .logs()
        .lines()
        .find(|l| l.contains("running as root outside systemd"))
        .map(str::to_string);
    if !is_root() {
        assert_eq!(said, None, "only root runs are told");
        return;
    }
    let line = said.unwrap_or_else(|| panic!("not said:\n{}", d.logs()));
    let socket = d.admin_socket();
    assert!(
        line.contains(&format!("admin_socket={}", socket.display())),
        "{line}"
    );
    assert!(line.contains("state_dir="), "{line}");
}

/// A user without XDG_RUNTIME_DIR (e.g. `su` without a login session) cannot create
/// /run/mcpproxyd/admin.sock: the daemon says so once, with what to do.
#[test]
fn an_admin_socket_it_may_not_create_is_one_error_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd;
    if is_root() {
        // Run as nobody: a copy of the binary it may execute, in a directory it may enter.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let copy = dir.path().join("mcpproxyd");
        std::fs::copy(bin_path("mcpproxyd"), &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        cmd = std::process::Command::new(&copy);
        cmd.uid(65534).gid(65534);
    } else {
        cmd = std::process::Command::new(bin_path("mcpproxyd"));
    }
    // No config file: the built-in preset; only the admin socket's default place matters.
    let out = cmd
        .args(["--port", "0"])
        .current_dir("/")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.matches("cannot create the admin socket").count(),
        1,
        "said once:\n{stderr}"
    );
    assert!(stderr.contains("/run/mcpproxyd/admin.sock"), "{stderr}");
    assert!(stderr.contains("XDG_RUNTIME_DIR"), "{stderr}");
    assert!(stderr.contains("[admin] socket"), "{stderr}");
}
