//! `mcpproxyctl` against a canned daemon: a real hyper server on a Unix socket in a tempdir,
//! in-process, answering fixed JSON; and against sockets where nobody answers.

mod common;

use std::os::unix::net::UnixListener as StdUnixListener;
use std::time::Duration;

use common::{ctl, CannedDaemon};
use mcpproxyctl::client::Client;
use mcpproxyctl::error::CtlError;
use mcpproxyctl::exit;
use mcpproxyctl::socket::{SocketPath, SocketSource};

const STATUS: &str = r#"{
  "version": "0.1.0", "pid": 4242, "started_at": 1000, "uptime_seconds": 11520,
  "listen": ["127.0.0.1:8088"],
  "config": {"source": "/etc/mcpproxyd/mcpproxyd.toml", "loaded_at": 1000, "last_reload_error": null},
  "upstreams": [{"name": "alibaba", "mount": "/", "url": "https://mcp.example", "auth": "alibaba",
                 "catalog": "alibaba", "servers": 3}],
  "profiles": [{"name": "alibaba", "kind": "alibaba", "state": "needs_login", "valid_until": null,
                "refresh_at": null, "last_error": "invalid_grant", "detail": "region CN"}],
  "token_store": "file /var/lib/mcpproxyd (survives reboot)",
  "acl": {"allowed": [], "blocked": ["ram"], "unresolved": []},
  "counters": {"requests": 7, "denied": 1, "open_streams": 0}
}"#;

#[test]
fn status_is_fetched_and_rendered() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, seen) = CannedDaemon::new()
        .route("GET", "/v1/status", 200, STATUS)
        .serve(dir.path());

    let (code, out, err) = ctl(&socket, &["status"]);
    assert_eq!(code, exit::OK, "{err}");
    assert!(
        out.starts_with("mcpproxyd 0.1.0, pid 4242, up 3h 12m\n"),
        "{out}"
    );
    assert!(out.contains("alibaba (alibaba): needs login"), "{out}");
    let request = seen.try_recv().unwrap();
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("GET", "/v1/status")
    );
    assert_eq!(request.host.as_deref(), Some("localhost"));

    let (code, out, err) = ctl(&socket, &["status", "--check"]);
    assert_eq!(code, exit::CHECK_FAILED);
    assert_eq!(out, "");
    assert!(
        err.contains("mcpproxyctl: auth profile alibaba: needs login (last error: invalid_grant)")
    );

    let (code, out, _) = ctl(&socket, &["status", "--json"]);
    assert_eq!(code, exit::OK);
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value["pid"], 4242);
}

#[test]
fn posts_send_json_and_errors_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, seen) = CannedDaemon::new()
        .route(
            "POST",
            "/v1/reload",
            422,
            r#"{"error":{"code":"invalid_config","message":"/etc/m.toml:3: unknown key `lisen`"}}"#,
        )
        .route(
            "POST",
            "/v1/acl/check",
            200,
            r#"{"path":"/x/mcp","allowed":false,"decision":"not_allowed","rule":null,
                "reason":"no allowed entry matches","upstream":"alibaba","server":null}"#,
        )
        .serve(dir.path());

    let (code, out, err) = ctl(&socket, &["reload"]);
    assert_eq!(code, exit::DAEMON_ERROR);
    assert_eq!(out, "");
    assert!(
        err.starts_with("mcpproxyctl: /etc/m.toml:3: unknown key `lisen`\n"),
        "{err}"
    );
    let request = seen.try_recv().unwrap();
    assert_eq!(request.body, "{}");
    assert_eq!(request.content_type.as_deref(), Some("application/json"));

    let (code, out, _) = ctl(
        &socket,
        &["acl", "check", "/x/mcp", "--tool", "DeleteInstance"],
    );
    assert_eq!(code, exit::DENIED, "a denial exits 1, as `test` would");
    assert!(out.starts_with("denied: /x/mcp\n"), "{out}");
    let request = seen.try_recv().unwrap();
    let sent: serde_json::Value = serde_json::from_str(&request.body).unwrap();
    assert_eq!(
        sent,
        serde_json::json!({"path": "/x/mcp", "tool": "DeleteInstance"})
    );

    // No route: the canned 404 error body.
    let (code, _, err) = ctl(&socket, &["servers"]);
    assert_eq!(code, exit::DAEMON_ERROR);
    assert_eq!(err, "mcpproxyctl: no such endpoint\n");
}

#[test]
fn odd_answers_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, _seen) = CannedDaemon::new()
        .route("GET", "/v1/status", 200, "<html>not json</html>")
        .route("GET", "/v1/servers", 500, "")
        .route(
            "GET",
            "/v1/metrics",
            403,
            r#"{"error":{"code":"peer_refused","message":"uid 1001 is not allowed"}}"#,
        )
        .serve(dir.path());

    let (code, _, err) = ctl(&socket, &["status"]);
    assert_eq!(code, exit::DAEMON_ERROR);
    assert!(err.contains("not valid JSON"), "{err}");
    let (code, _, err) = ctl(&socket, &["servers"]);
    assert_eq!(code, exit::DAEMON_ERROR);
    assert!(err.contains("500"), "{err}");
    let (code, _, err) = ctl(&socket, &["metrics"]);
    assert_eq!(code, exit::NO_PERMISSION);
    assert!(err.contains("[admin] group"), "{err}");
}

#[test]
fn metrics_are_printed_as_is() {
    let dir = tempfile::tempdir().unwrap();
    let text = "# TYPE mcpproxyd_requests_total counter\nmcpproxyd_requests_total 7\n";
    let (socket, _seen) = CannedDaemon::new()
        .route("GET", "/v1/metrics", 200, text)
        .serve(dir.path());
    assert_eq!(
        ctl(&socket, &["metrics"]),
        (exit::OK, text.to_string(), String::new())
    );
}

#[test]
fn a_missing_socket_exits_69_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nowhere.sock");
    let (code, _, err) = ctl(&socket, &["status"]);
    assert_eq!(code, exit::UNAVAILABLE);
    assert!(err.contains(socket.to_str().unwrap()), "{err}");
    assert!(err.contains("systemctl start mcpproxyd"), "{err}");
}

#[test]
fn a_stale_socket_exits_69() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("stale.sock");
    drop(StdUnixListener::bind(&socket).unwrap());
    let (code, _, err) = ctl(&socket, &["status"]);
    assert_eq!(code, exit::UNAVAILABLE);
    assert!(err.contains("nothing listens"), "{err}");
}

#[test]
fn completions_need_no_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = ctl(&dir.path().join("none.sock"), &["completions", "zsh"]);
    assert_eq!(code, exit::OK);
    assert!(out.contains("#compdef mcpproxyctl"), "{out}");
}

#[tokio::test]
async fn a_daemon_that_never_answers_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wedged.sock");
    // Accepted by the kernel's backlog, never read: the request goes nowhere.
    let _listener = StdUnixListener::bind(&path).unwrap();
    let client = Client::new(SocketPath {
        path,
        source: SocketSource::Flag,
    })
    .with_timeout(Duration::from_millis(100));
    let e = client.get("/v1/status").await.unwrap_err();
    assert!(matches!(e, CtlError::Timeout { .. }), "{e:?}");
    assert_eq!(e.exit_code(), exit::UNAVAILABLE);
}
