//! The proxy on a Unix socket (`[listen] unix`) through the real daemon: it serves allowed
//! peers with `Host: localhost`, has the configured mode and group, refuses a peer uid that is
//! not allowed (SO_PEERCRED) before anything reaches the upstream, and is taken from systemd
//! socket activation (`FileDescriptorName=proxy-unix`).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mcpproxy_tests::admin::{get_json, post_json};
use mcpproxy_tests::daemon::{bin_path, Setup, TestDaemon, WAIT};
use mcpproxy_tests::upstream::{self, TestUpstream, UpstreamOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// `GET path` over the Unix socket with the given `Host`; (status, whole response).
async fn unix_get(socket: &Path, path: &str, host: &str) -> (u16, String) {
    let mut s = UnixStream::connect(socket).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, text)
}

/// The setup's dir is made traversable so another uid can reach the socket in it.
fn unix_config(setup: &Setup, up: &TestUpstream, group: &str) -> (PathBuf, PathBuf) {
    std::fs::set_permissions(setup.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = setup.path("proxy.sock");
    let text = setup
        .static_config(
            up,
            &format!(
                "[listen]\nunix = [{socket:?}]\nunix_mode = \"0666\"\nunix_group = {group:?}\n"
            ),
        )
        .unwrap();
    (setup.write_config(&text).unwrap(), socket)
}

/// A group's gid, from /etc/group.
fn gid_of(name: &str) -> u32 {
    let groups = std::fs::read_to_string("/etc/group").unwrap();
    groups
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f[0] == name)
        .and_then(|f| f.get(2)?.parse().ok())
        .unwrap_or_else(|| panic!("no group {name}"))
}

fn is_root() -> bool {
    nix_uid() == 0
}

fn nix_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}

#[tokio::test]
async fn the_unix_listener_serves_the_proxy_with_its_mode_and_group() {
    let up = upstream::start(UpstreamOptions::default()).await.unwrap();
    let setup = Setup::new().unwrap();
    let (config, socket) = unix_config(&setup, &up, "daemon");
    let mut d = TestDaemon::start(&config, &[]).await.unwrap();
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o666);
    assert_eq!(meta.gid(), gid_of("daemon"), "unix_group = daemon");

    let (status, text) = unix_get(&socket, "/raw/echo", "localhost").await;
    assert_eq!(status, 200, "{text}");
    let seen = up.requests().pop().unwrap();
    assert_eq!(seen.path, "/raw/echo");
    assert_eq!(
        seen.header("authorization"),
        Some(&*format!("Bearer {}", up.token()))
    );
    // DNS-rebinding guard: only localhost (and extra_hosts) on the socket.
    let (status, text) = unix_get(&socket, "/raw/echo", "evil.example").await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("host_not_allowed"), "{text}");

    let (_, s) = get_json(&d.admin_socket(), "/v1/status").await.unwrap();
    assert_eq!(s["listen_unix"][0], socket.display().to_string(), "{s}");
    let logs = d.logs();
    let line = logs.lines().find(|l| l.contains("proxied")).unwrap();
    assert!(
        line.contains("unix:uid="),
        "the client is named by uid: {line}"
    );

    d.signal("TERM").await.unwrap();
    d.wait_exit().await.unwrap();
    assert!(!socket.exists(), "the daemon removes the socket it made");
}

/// The check: a client running as uid 65534 can open the 0666 socket file, and the
/// daemon refuses it by its peer credentials; listed in `unix_allowed_uids`, it gets through.
#[tokio::test]
async fn the_unix_listener_refuses_a_peer_uid_that_is_not_allowed() {
    if !is_root() {
        assert!(
            std::env::var("CI").is_err(),
            "CI runs as root: this test must run there"
        );
        eprintln!("skipped: needs root to run a client as uid 65534");
        return;
    }
    let up = upstream::start(UpstreamOptions::default()).await.unwrap();
    let setup = Setup::new().unwrap();
    // No unix_group: uid 65534 is neither root, nor the daemon's user, nor listed.
    let (config, socket) = unix_config(&setup, &up, "");
    let d = TestDaemon::start(&config, &[]).await.unwrap();
    // A copy of mcpproxyctl that uid 65534 can run: it speaks HTTP over a Unix socket.
    let bin_dir = setup.path("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    std::fs::set_permissions(&bin_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let client = bin_dir.join("mcpproxyctl");
    std::fs::copy(bin_path("mcpproxyctl"), &client).unwrap();
    std::fs::set_permissions(&client, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Async, so the test's own upstream keeps serving while the client runs.
    let run_as_nobody = || async {
        let out = tokio::process::Command::new(&client)
            .uid(65534)
            .gid(65534)
            .current_dir("/")
            .arg("--socket")
            .arg(&socket)
            .arg("status")
            .env_remove("MCPPROXYD_SOCKET")
            .output()
            .await
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let before = up.requests().len();
    let (code, err) = run_as_nobody().await;
    assert_eq!(code, 77, "refused (403 peer_refused): {err}");
    d.wait_for_log("proxy unix socket: peer refused")
        .await
        .unwrap();
    let logs = d.logs();
    let line = logs.lines().find(|l| l.contains("peer refused")).unwrap();
    assert!(line.contains("uid=65534"), "{line}");
    assert!(line.contains("pid="), "{line}");
    assert_eq!(up.requests().len(), before, "nothing reached the upstream");

    // Listed, the same uid gets through to the upstream (which knows no /v1/status).
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "unix_mode = \"0666\"",
        "unix_mode = \"0666\"\nunix_allowed_uids = [65534]",
    );
    std::fs::write(&config, text).unwrap();
    let (status, v) = post_json(&d.admin_socket(), "/v1/reload", "{}")
        .await
        .unwrap();
    assert_eq!(status, 200, "{v}");
    let (code, err) = run_as_nobody().await;
    assert_ne!(code, 77, "{err}");
    let last = up.requests().pop();
    assert_eq!(
        last.map(|r| r.path).as_deref(),
        Some("/v1/status"),
        "{}",
        d.logs()
    );
}

#[tokio::test]
async fn the_unix_listener_is_taken_from_socket_activation() {
    let up = upstream::start(UpstreamOptions::default()).await.unwrap();
    let setup = Setup::new().unwrap();
    // The file names a socket of its own: the passed one replaces it.
    let (config, configured) = unix_config(&setup, &up, "");
    let passed = setup.path("passed.sock");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = tokio::process::Command::new("systemd-socket-activate");
    cmd.arg(format!("--listen=127.0.0.1:{port}"))
        .arg(format!("--listen={}", passed.display()))
        .arg("--fdname=proxy:proxy-unix")
        .arg(bin_path("mcpproxyd"))
        .arg("--config")
        .arg(&config);
    // systemd-socket-activate starts the daemon on the first connection.
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let first = async {
        let mut tries = 0;
        loop {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(_) => break,
                Err(e) => {
                    tries += 1;
                    assert!(tries < 2000, "systemd-socket-activate never listened: {e}");
                    tokio::task::yield_now().await;
                }
            }
        }
    };
    let (d, ()) = tokio::join!(TestDaemon::spawn(cmd), first);
    let d = d.unwrap();
    let (status, text) = unix_get(&passed, "/raw/echo", "localhost").await;
    assert_eq!(status, 200, "{text}");
    assert!(
        !configured.exists(),
        "listen.unix is not bound when systemd passes sockets"
    );
    d.wait_for_log("proxy Unix sockets passed by systemd")
        .await
        .unwrap();
}
