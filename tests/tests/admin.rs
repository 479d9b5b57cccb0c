//! The admin socket through real sockets: endpoints, strict bodies, reload, access control.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use mcpproxy_tests::admin::{get_json, post_json, request};
use mcpproxy_tests::daemon::{
    finish_slow_stream, proxy_client, start_with_two_servers, Setup, TestDaemon, TWO_SERVERS,
};
use mcpproxy_tests::upstream::{self, UpstreamOptions};

#[tokio::test]
async fn socket_is_0660_and_status_describes_the_daemon() {
    let (up, _setup, d) =
        start_with_two_servers("[acl]\nblocked_servers = [\"ram\", \"nosuch\"]\n")
            .await
            .unwrap();
    let sock = d.admin_socket();
    let meta = std::fs::metadata(&sock).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);

    // Some traffic for the counters.
    let ok = proxy_client().get(d.url("/raw/echo")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let denied = proxy_client()
        .get(d.url("/accounts/1/custom/ram/id/RAM01/mcp"))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);

    let (status, s) = get_json(&sock, "/v1/status").await.unwrap();
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s["pid"], d.pid());
    assert_eq!(s["listen"][0], d.addr.to_string());
    assert!(s["config"]["source"]
        .as_str()
        .unwrap()
        .ends_with("mcpproxyd.toml"));
    assert_eq!(s["upstreams"][0]["name"], "test");
    assert_eq!(s["upstreams"][0]["servers"], 2);
    assert_eq!(s["profiles"][0]["name"], "test");
    assert_eq!(s["profiles"][0]["state"], "valid");
    assert_eq!(s["acl"]["blocked"], serde_json::json!(["ram", "nosuch"]));
    assert_eq!(s["acl"]["unresolved"], serde_json::json!(["nosuch"]));
    assert_eq!(s["counters"]["requests"], 2);
    assert_eq!(s["counters"]["denied"], 1);
    assert!(
        !s.to_string().contains(up.token()),
        "status leaked the token"
    );

    let (status, servers) = get_json(&sock, "/v1/servers").await.unwrap();
    assert_eq!(status, 200);
    let list = servers["servers"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["name"], "ecs");
    assert_eq!(list[0]["access"], "allowed");
    assert_eq!(
        list[0]["mcp_url"],
        format!("http://{}/accounts/1/custom/ecs/id/ECS01/mcp", d.addr)
    );
    assert_eq!(list[1]["access"], "blocked");
    assert_eq!(list[1]["rule"], "ram");

    let (status, text) = request(&sock, "GET", "/v1/metrics", None).await.unwrap();
    assert_eq!(status, 200);
    assert!(
        text.contains("mcpproxyd_requests_total{upstream=\"test\",server=\"\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("mcpproxyd_denied_total{rule=\"blocked:ram\"} 1"),
        "{text}"
    );
    assert!(text.contains("mcpproxyd_upstream_latency_seconds_count{upstream=\"test\"} 1"));
}

#[tokio::test]
async fn acl_check_explains_decisions() {
    let (_up, _setup, d) = start_with_two_servers("[acl]\nallowed_servers = [\"ecs\"]\n")
        .await
        .unwrap();
    let sock = d.admin_socket();
    let check = |path: &str| {
        let body = serde_json::json!({ "path": path }).to_string();
        let sock = sock.clone();
        async move { post_json(&sock, "/v1/acl/check", &body).await.unwrap() }
    };
    let (status, v) = check("/accounts/1/custom/ecs/id/ECS01/sse").await;
    assert_eq!(status, 200);
    assert_eq!(v["allowed"], true);
    assert_eq!(v["rule"], "ecs");
    assert_eq!(v["server"], "ecs");
    let (_, v) = check("/accounts/1/custom/ram/id/RAM01/mcp").await;
    assert_eq!(v["allowed"], false);
    assert_eq!(v["decision"], "not_allowed");
    let (_, v) = check("/accounts/1/custom/ecs/id/ECS01/../../ram/id/RAM01/mcp").await;
    assert_eq!(v["decision"], "invalid_path");
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_the_daemon_keeps_serving() {
    let (_up, _setup, d) = start_with_two_servers("").await.unwrap();
    let sock = d.admin_socket();
    let cases: &[(&str, &str, Option<&str>, u16, &str)] = &[
        ("GET", "/v1/nothing", None, 404, "not_found"),
        ("POST", "/v1/status", None, 405, "method_not_allowed"),
        ("GET", "/v1/reload", None, 405, "method_not_allowed"),
        (
            "POST",
            "/v1/acl/check",
            Some("{not json"),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/acl/check",
            Some(r#"{"path":"/x","extra":1}"#),
            400,
            "bad_request",
        ),
        ("POST", "/v1/acl/check", None, 400, "bad_request"),
        (
            "POST",
            "/v1/reload",
            Some(r#"{"force":true}"#),
            400,
            "bad_request",
        ),
    ];
    for (method, path, body, want, code) in cases {
        let (status, text) = request(&sock, method, path, *body).await.unwrap();
        assert_eq!(status, *want, "{method} {path}: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["error"]["code"], *code, "{text}");
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let huge = format!("{{\"path\":\"/{}\"}}", "a".repeat(200_000));
    let (status, _) = request(&sock, "POST", "/v1/acl/check", Some(&huge))
        .await
        .unwrap();
    assert_eq!(status, 413);
    let (status, _) = get_json(&sock, "/v1/status").await.unwrap();
    assert_eq!(status, 200, "the daemon still answers");
}

#[tokio::test]
async fn reload_applies_the_acl_keeps_streams_and_refuses_invalid_files() {
    let up = upstream::start(UpstreamOptions::default()).await.unwrap();
    let setup = Setup::new().unwrap();
    let config = setup.static_config(&up, TWO_SERVERS).unwrap();
    let path = setup.write_config(&config).unwrap();
    let d = TestDaemon::start(&path, &[]).await.unwrap();
    let sock = d.admin_socket();
    let ram = d.url("/accounts/1/custom/ram/id/RAM01/x");
    let mut events = d.open_slow_stream().await.unwrap();

    std::fs::write(
        &path,
        format!("{config}\n[acl]\nblocked_servers = [\"RAM01\"]\n"),
    )
    .unwrap();
    let (status, v) = post_json(&sock, "/v1/reload", "{}").await.unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["needs_restart"], serde_json::json!([]));
    assert_eq!(proxy_client().get(&ram).send().await.unwrap().status(), 403);

    std::fs::write(
        &path,
        format!("{config}\n[acl]\nblocked_servers = [\"RAM01\"]\n[limits]\nmax_connections = -1\n"),
    )
    .unwrap();
    let (status, v) = post_json(&sock, "/v1/reload", "{}").await.unwrap();
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"]["code"], "invalid_config");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("mcpproxyd.toml:"), "{message}");
    assert_eq!(proxy_client().get(&ram).send().await.unwrap().status(), 403);
    let (_, s) = get_json(&sock, "/v1/status").await.unwrap();
    assert!(s["config"]["last_reload_error"].as_str().is_some());

    // A listen change is reported as needing a restart (--port 0 still overrides the port).
    let moved = config.replace(
        "[auth.test]",
        "[listen]\naddresses = [\"127.0.0.2:8088\"]\n\n[auth.test]",
    );
    std::fs::write(&path, &moved).unwrap();
    let (status, v) = post_json(&sock, "/v1/reload", "").await.unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["needs_restart"], serde_json::json!(["listen.addresses"]));
    // So is another number of proxy worker threads.
    let workers = format!("{moved}\n[limits]\nworkers = 1\n");
    std::fs::write(&path, workers).unwrap();
    let (status, v) = post_json(&sock, "/v1/reload", "").await.unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["needs_restart"], serde_json::json!(["limits.workers"]));

    finish_slow_stream(&up, &mut events).await.unwrap();
    d.wait_for_log("admin action").await.unwrap(); // actions are logged
}

#[tokio::test]
async fn a_second_daemon_on_a_live_socket_is_refused_and_a_stale_one_replaced() {
    let (up, setup, d) = start_with_two_servers("").await.unwrap();
    let sock = d.admin_socket();
    let config = setup.static_config(&up, "").unwrap();
    let second = setup.path("second.toml");
    std::fs::write(
        &second,
        format!(
            "[admin]\nsocket = {:?}\n{config}",
            sock.display().to_string()
        ),
    )
    .unwrap();
    let (code, _, stderr) =
        mcpproxy_tests::daemon::run_once(&["--config", second.to_str().unwrap(), "--port", "0"])
            .await
            .unwrap();
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("already serving the admin socket"),
        "{stderr}"
    );

    // A stale socket file (nothing listening) is replaced.
    let stale_dir = setup.path("stale");
    std::fs::create_dir(&stale_dir).unwrap();
    let stale = stale_dir.join("admin.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    std::fs::write(
        &second,
        format!(
            "[admin]\nsocket = {:?}\n{config}",
            stale.display().to_string()
        ),
    )
    .unwrap();
    let d2 = TestDaemon::start(&second, &[]).await.unwrap();
    let (status, _) = get_json(&stale, "/v1/status").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(std::fs::metadata(&stale).unwrap().uid(), nix_uid());
    drop(d2);
}

fn nix_uid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}
