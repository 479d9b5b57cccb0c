//! Connections over `[limits] max_connections` are answered at once and logged, never left
//! waiting in the accept backlog.

use mcpproxy_tests::daemon::{proxy_client, raw_get, Setup, WAIT};
use mcpproxy_tests::upstream::{self, UpstreamOptions};

#[tokio::test]
async fn a_connection_over_max_connections_gets_503_json_at_once_and_a_log_line() {
    let up = upstream::start(UpstreamOptions::default()).await.unwrap();
    let setup = Setup::new().unwrap();
    let d = setup
        .static_daemon(&up, "[limits]\nmax_connections = 1\n")
        .await
        .unwrap();
    let host = d.addr.to_string();
    // The held stream takes the only connection slot.
    let held = proxy_client()
        .get(d.url("/raw/hold"))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(held.status(), 200);

    // raw_get reads to the end within WAIT: a connection left in the backlog fails here.
    let (status, text) = raw_get(d.addr, "/raw/echo", &host).await.unwrap();
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("content-type: application/json"), "{text}");
    let body: serde_json::Value =
        serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["error"]["code"], "too_many_connections");
    d.wait_for_log("limits.max_connections reached")
        .await
        .unwrap();

    // The slot comes back once the stream closes: a new connection is served again.
    drop(held);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, text) = raw_get(d.addr, "/raw/echo", &host).await.unwrap();
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{text}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot never came back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
