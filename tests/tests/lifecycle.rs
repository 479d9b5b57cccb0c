//! The daemon's life: start-up banner and errors, reload, graceful shutdown, the README demo.

use mcpproxy_tests::daemon::{
    bin_path, finish_slow_stream, proxy_client, run_once, Setup, TestDaemon, TWO_SERVERS, WAIT,
};
use mcpproxy_tests::upstream::{self, TestUpstream, UpstreamOptions};
use mcpproxy_tests::wait;
use tokio::io::AsyncBufReadExt;

async fn up() -> TestUpstream {
    upstream::start(UpstreamOptions::default()).await.unwrap()
}

#[tokio::test]
async fn banner_lists_servers_with_proxy_urls_and_acl_markers() {
    let up = up().await;
    let setup = Setup::new().unwrap();
    let config = setup
        .static_config(
            &up,
            &format!("{TWO_SERVERS}\n[acl]\nblocked_servers = [\"ram\"]\n"),
        )
        .unwrap();
    let d = TestDaemon::start(&setup.write_config(&config).unwrap(), &[])
        .await
        .unwrap();
    let b = &d.banner;
    assert!(b.starts_with("MCP Proxy Server Started\n"), "{b}");
    assert!(b.contains(&format!("Listen: {}", d.addr)), "{b}");
    assert!(b.contains("Blacklist (blocked servers):\n    - ram"), "{b}");
    assert!(
        b.contains(&format!(
            "  - ecs\n    MCP: http://{}/accounts/1/custom/ecs/id/ECS01/mcp",
            d.addr
        )),
        "{b}"
    );
    assert!(b.contains("  - ram (blocked)"), "{b}");
}

#[tokio::test]
async fn bad_config_exits_64_naming_file_line_and_key() {
    let setup = Setup::new().unwrap();
    let path = setup
        .write_config(
            "[listen]\naddresses = [\"127.0.0.1:0\"]\n\n[limits]\nshutdown_grace = \"soon\"\n",
        )
        .unwrap();
    let p = path.to_str().unwrap();
    let (code, _, stderr) = run_once(&["--config", p]).await.unwrap();
    assert_eq!(code, 64, "{stderr}");
    assert!(
        stderr.contains(&format!("{p}:5: limits.shutdown_grace: ")),
        "{stderr}"
    );
    let (code, _, stderr) = run_once(&["--config", p, "--check-config"]).await.unwrap();
    assert_eq!(code, 64, "{stderr}");
    let (code, _, stderr) = run_once(&["--config", "/nonexistent/mcpproxyd.toml"])
        .await
        .unwrap();
    assert_eq!(code, 64);
    assert!(
        stderr.contains("/nonexistent/mcpproxyd.toml: cannot read"),
        "{stderr}"
    );
    let (code, _, stderr) = run_once(&["--no-such-flag"]).await.unwrap();
    assert_eq!(code, 64, "{stderr}");
    let (code, stdout, _) = run_once(&["--version"]).await.unwrap();
    assert_eq!(code, 0);
    assert!(stdout.starts_with("mcpproxyd "), "{stdout}");
}

#[tokio::test]
async fn check_config_prints_the_effective_config_without_secrets() {
    let up = up().await;
    let setup = Setup::new().unwrap();
    let config = setup.static_config(&up, TWO_SERVERS).unwrap();
    let path = setup.write_config(&config).unwrap();
    let (code, stdout, stderr) = run_once(&[
        "--config",
        path.to_str().unwrap(),
        "--check-config",
        "--port",
        "9999",
        "--blocked-servers",
        "ram",
    ])
    .await
    .unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("\"127.0.0.1:9999\""), "{stdout}");
    assert!(stdout.contains("blocked_servers = [\"ram\"]"), "{stdout}");
    assert!(!stdout.contains(up.token()), "the token was printed");
}

#[tokio::test]
async fn region_flag_on_the_shipped_example_moves_upstream_and_oauth_together() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/mcpproxyd.toml");
    let (code, stdout, stderr) =
        run_once(&["--config", example, "--region", "INTL", "--check-config"])
            .await
            .unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("region = \"INTL\""), "{stdout}");
    assert!(
        stdout.contains("oauth_url = \"https://oauth.alibabacloud.com/\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("url = \"https://openapi-mcp.ap-southeast-1.aliyuncs.com/\""),
        "INTL tokens would go to another region's upstream:\n{stdout}"
    );
    assert!(!stdout.contains("cn-hangzhou"), "{stdout}");
}

#[tokio::test]
async fn reload_applies_acl_changes_keeps_streams_and_refuses_bad_files() {
    let up = up().await;
    let setup = Setup::new().unwrap();
    let config = setup.static_config(&up, TWO_SERVERS).unwrap();
    let path = setup.write_config(&config).unwrap();
    let d = TestDaemon::start(&path, &[]).await.unwrap();
    let ram = d.url("/accounts/1/custom/ram/id/RAM01/raw");
    assert_ne!(proxy_client().get(&ram).send().await.unwrap().status(), 403);

    // An open stream across the reload.
    let mut events = d.open_slow_stream().await.unwrap();

    std::fs::write(
        &path,
        format!("{config}\n[acl]\nblocked_servers = [\"ram\"]\n"),
    )
    .unwrap();
    d.signal("HUP").await.unwrap();
    d.wait_for_log("configuration reloaded").await.unwrap();
    assert_eq!(proxy_client().get(&ram).send().await.unwrap().status(), 403);

    // A broken file changes nothing, and the log says why (with the line).
    std::fs::write(
        &path,
        format!("{config}\n[acl]\nblocked_servers = \"ram\"\n"),
    )
    .unwrap();
    d.signal("HUP").await.unwrap();
    let line = d
        .wait_for_line(|l| l.contains("reload failed"))
        .await
        .unwrap();
    assert!(line.contains("mcpproxyd.toml:"), "{line}");
    assert_eq!(proxy_client().get(&ram).send().await.unwrap().status(), 403);

    finish_slow_stream(&up, &mut events).await.unwrap();
}

#[tokio::test]
async fn sigterm_lets_an_open_stream_finish_then_exits() {
    let up = up().await;
    let setup = Setup::new().unwrap();
    let mut d = setup.static_daemon(&up, "").await.unwrap();
    let mut events = d.open_slow_stream().await.unwrap();

    d.signal("TERM").await.unwrap();
    d.wait_for_log("shutting down").await.unwrap();
    // No new connections once draining: the log line comes just before the listeners close,
    // so wait (bounded) for the port to refuse.
    let addr = d.addr;
    wait::until("the proxy port refuses connections", || async move {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await
    .unwrap();
    // The stream in flight still completes.
    finish_slow_stream(&up, &mut events).await.unwrap();
    let status = d.wait_exit().await.unwrap();
    assert_eq!(status.code(), Some(0));
}

/// Connections accepted in the moment of the shutdown (handed to a worker, not yet taken up
/// by it) once made the daemon stop waiting for any stream: the open one was cut.
#[tokio::test]
async fn sigterm_amid_new_connections_still_lets_the_open_stream_finish() {
    let up = up().await;
    let setup = Setup::new().unwrap();
    let mut d = setup.static_daemon(&up, "").await.unwrap();
    let mut events = d.open_slow_stream().await.unwrap();

    // Connect, and hang up, over and over until the port refuses: some are accepted just as
    // the daemon stops accepting. Bounded in count; WAIT bounds the whole.
    let addr = d.addr;
    let churn = tokio::spawn(async move {
        for _ in 0..100_000 {
            if tokio::net::TcpStream::connect(addr).await.is_err() {
                return true;
            }
        }
        false
    });
    d.signal("TERM").await.unwrap();
    let refused = tokio::time::timeout(WAIT, churn).await.unwrap().unwrap();
    assert!(refused, "the port kept accepting after SIGTERM");

    finish_slow_stream(&up, &mut events).await.unwrap();
    let status = d.wait_exit().await.unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn shutdown_grace_bounds_how_long_a_stream_can_hold_the_exit() {
    let up = up().await;
    let setup = Setup::new().unwrap();
    let mut d = setup
        .static_daemon(&up, "[limits]\nshutdown_grace = \"1s\"\n")
        .await
        .unwrap();
    let mut events = d.open_slow_stream().await.unwrap();
    d.signal("TERM").await.unwrap();
    // Never released: the daemon closes it when the grace period is over.
    let status = d.wait_exit().await.unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(d.logs().contains("grace period over"), "{}", d.logs());
    assert!(
        events.end().await.is_err(),
        "the cut stream must end with an error"
    );
    tokio::time::timeout(WAIT, up.wait_stream_closed(1))
        .await
        .unwrap();
}

#[tokio::test]
async fn second_sigint_exits_at_once() {
    let up = up().await;
    let setup = Setup::new().unwrap();
    let mut d = setup
        .static_daemon(&up, "[limits]\nshutdown_grace = \"10m\"\n")
        .await
        .unwrap();
    let _events = d.open_slow_stream().await.unwrap();
    d.signal("INT").await.unwrap();
    d.wait_for_log("shutting down").await.unwrap();
    d.signal("INT").await.unwrap();
    let status = d.wait_exit().await.unwrap();
    assert_eq!(status.code(), Some(130));
}

/// The README's newcomer path: the test upstream binary, the demo config, one curl-like call.
#[tokio::test]
async fn readme_demo_calls_a_tool_through_the_proxy() {
    let setup = Setup::new().unwrap();
    let state = setup.path("demo");
    let mut upstream = tokio::process::Command::new(bin_path("mcp-test-upstream"))
        .args(["--port", "0", "--state-dir"])
        .arg(&state)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(upstream.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let url = line
        .strip_prefix("Listening: ")
        .expect("Listening line")
        .to_string();
    let demo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/demo.toml"))
        .unwrap()
        .replace("/tmp/mcpproxyd-demo", state.to_str().unwrap())
        .replace("https://127.0.0.1:8089", &url);
    let d = TestDaemon::start(&setup.write_config(&demo).unwrap(), &[])
        .await
        .unwrap();
    let resp = proxy_client()
        .post(d.url("/demo/mcp-demo"))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["result"]["content"][0]["text"], "hi", "{body}");
}
