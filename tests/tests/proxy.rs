//! End to end through the real daemon: MCP round trips, streaming, headers, failures.

use futures_util::StreamExt;
use mcpproxy_tests::daemon::{
    proxy_client, raw_get, raw_http, EventReader, Setup, TestDaemon, WAIT,
};
use mcpproxy_tests::mcp_client::McpClient;
use mcpproxy_tests::sse::SseParser;
use mcpproxy_tests::upstream::{self, EndpointStyle, TestUpstream, UpstreamOptions};
use serde_json::json;

async fn upstream_with(opts: UpstreamOptions) -> TestUpstream {
    upstream::start(opts).await.expect("test upstream")
}

fn text_of(result: &serde_json::Value) -> &str {
    result["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test]
async fn streamable_http_session_round_trip_with_sse_and_json_answers() {
    let up = upstream_with(UpstreamOptions::default()).await;
    let setup = Setup::new().unwrap();
    let d = setup.static_daemon(&up, "").await.unwrap();

    let mut client = McpClient::new(proxy_client(), d.url("/accounts/1/custom/ecs/id/E1/mcp"));
    client.initialize().await.unwrap();
    let session = client
        .session_id()
        .expect("Mcp-Session-Id passed back")
        .to_string();
    let echo = client
        .call_tool("echo", json!({"text": "through the proxy"}))
        .await
        .unwrap();
    assert_eq!(text_of(&echo), "through the proxy");
    let sum = client
        .call_tool("add", json!({"a": 2, "b": 40}))
        .await
        .unwrap();
    assert_eq!(text_of(&sum), "42");
    assert!(client.delete_session().await.unwrap().is_success());

    // The upstream saw the proxy's token, the session header and the protocol version.
    let reqs = up.requests();
    let posts: Vec<_> = reqs.iter().filter(|r| r.path.ends_with("/mcp")).collect();
    assert!(posts.len() >= 4, "{posts:?}");
    for r in &posts {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {}", up.token()).as_str())
        );
    }
    // Pooled upstream connections speak HTTP/2 when the upstream offers it (ALPN).
    assert!(posts.iter().all(|r| r.version == "HTTP/2.0"), "{posts:?}");
    let later = posts.last().unwrap();
    assert_eq!(later.header("mcp-session-id"), Some(session.as_str()));
    assert!(later.header("mcp-protocol-version").is_some());

    // JSON answers (stateless endpoint) come back as JSON.
    let json_client = McpClient::new(proxy_client(), d.url("/demo/mcp-demo"));
    let reply = json_client
        .request(
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "j"}}),
        )
        .await
        .unwrap();
    assert!(
        reply.content_type.starts_with("application/json"),
        "{}",
        reply.content_type
    );
    assert_eq!(text_of(&reply.response), "j");
}

#[tokio::test]
async fn client_authorization_never_reaches_the_upstream() {
    let up = upstream_with(UpstreamOptions::default()).await;
    let setup = Setup::new().unwrap();
    let d = setup.static_daemon(&up, "").await.unwrap();
    let resp = proxy_client()
        .get(d.url("/raw/echo?x=1"))
        .header("Authorization", "Bearer client-own-token")
        .header("Proxy-Authorization", "Basic c2VjcmV0")
        .header("Connection", "x-private")
        .header("X-Private", "hop")
        .header("Origin", "http://127.0.0.1:1")
        .send()
        .await
        .unwrap();
    // The Origin above is not configured: refused before anything is forwarded.
    assert_eq!(resp.status(), 403);
    assert!(up.requests().is_empty());

    let resp = proxy_client()
        .get(d.url("/raw/echo?x=1"))
        .header("Authorization", "Bearer client-own-token")
        .header("Proxy-Authorization", "Basic c2VjcmV0")
        .header("Connection", "x-private")
        .header("X-Private", "hop")
        .header("Last-Event-ID", "41")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Hop-by-hop headers from the upstream are dropped; end-to-end ones pass.
    assert_eq!(resp.headers()["mcp-session-id"], "raw-session");
    assert!(resp.headers().get("x-hop").is_none());
    assert!(resp.headers().get("www-authenticate").is_none());
    let echoed: serde_json::Value = resp.json().await.unwrap();
    let headers = &echoed["headers"];
    assert_eq!(headers["authorization"], format!("Bearer {}", up.token()));
    assert!(headers.get("proxy-authorization").is_none());
    assert!(headers.get("x-private").is_none());
    assert_eq!(headers["last-event-id"], "41");
    assert_eq!(echoed["query"], "x=1");
    assert!(!d.logs().contains("client-own-token"));
    assert!(
        !d.logs().contains(up.token()),
        "the token leaked into the logs"
    );
}

#[tokio::test]
async fn sse_events_arrive_while_the_upstream_stream_is_open() {
    let up = upstream_with(UpstreamOptions::default()).await;
    let setup = Setup::new().unwrap();
    let d = setup.static_daemon(&up, "").await.unwrap();
    let resp = proxy_client()
        .get(d.url("/raw/slow-sse"))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut events = EventReader::new(resp);
    // "one" arrives before the upstream is allowed to send "two": nothing is buffered.
    assert_eq!(events.next_event().await.unwrap().data, "one");
    up.release();
    assert_eq!(events.next_event().await.unwrap().data, "two");
    up.release();
}

#[tokio::test]
async fn client_disconnect_cancels_the_upstream_request() {
    let up = upstream_with(UpstreamOptions::default()).await;
    let setup = Setup::new().unwrap();
    let d = setup.static_daemon(&up, "").await.unwrap();

    // A stream the client walks away from.
    let resp = proxy_client()
        .get(d.url("/raw/slow-sse"))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("one"));
    drop(body);
    up.wait_stream_closed(1).await;

    // A request whose answer never comes.
    // (The URL is made out here: a task owning the daemon would kill it when aborted.)
    let client = proxy_client();
    let url = d.url("/raw/hang");
    let pending = tokio::spawn(async move { client.get(url).send().await });
    up.wait_requests(up.requests().len() + 1).await;
    pending.abort();
    tokio::time::timeout(WAIT, up.wait_stream_closed(2))
        .await
        .expect("upstream request cancelled");
    // By the daemon, which goes on serving.
    d.expect_ok("/raw/reflect").await;
}

#[tokio::test]
async fn legacy_sse_endpoint_is_rewritten_so_messages_go_through_the_proxy() {
    for style in [EndpointStyle::Relative, EndpointStyle::Absolute] {
        let up = upstream_with(UpstreamOptions {
            legacy_endpoint: style,
            ..Default::default()
        })
        .await;
        let setup = Setup::new().unwrap();
        // Mounted under a prefix so a relative endpoint must be rewritten too.
        let config = setup.static_config(&up, "").unwrap().replace(
            "name = \"test\"\n",
            "name = \"test\"\nmount = \"/legacy\"\n",
        );
        let d = TestDaemon::start(&setup.write_config(&config).unwrap(), &[])
            .await
            .unwrap();
        let resp = proxy_client()
            .get(d.url("/legacy/srv/sse"))
            .header("Accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut body = resp.bytes_stream();
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        while events.is_empty() {
            let chunk = tokio::time::timeout(WAIT, body.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            events.extend(parser.push(&chunk));
        }
        let endpoint = &events[0];
        assert_eq!(endpoint.event.as_deref(), Some("endpoint"));
        let expected_prefix = match style {
            EndpointStyle::Relative => "/legacy/srv/message?".to_string(),
            EndpointStyle::Absolute => format!("http://{}/legacy/srv/message?", d.addr),
        };
        assert!(
            endpoint.data.starts_with(&expected_prefix),
            "{style:?}: endpoint {:?}",
            endpoint.data
        );
        let target = match style {
            EndpointStyle::Relative => d.url(&endpoint.data),
            EndpointStyle::Absolute => endpoint.data.clone(),
        };
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2024-11-05", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}});
        let r = proxy_client()
            .post(&target)
            .json(&init)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let mut reply = None;
        while reply.is_none() {
            let chunk = tokio::time::timeout(WAIT, body.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            reply = parser
                .push(&chunk)
                .into_iter()
                .find(|e| e.event.as_deref() == Some("message") && e.data.contains("\"id\":1"));
        }
        let posted = up
            .requests()
            .into_iter()
            .find(|r| r.method == "POST")
            .expect("message POST reached the upstream");
        assert_eq!(posted.path, "/srv/message");
    }
}

#[tokio::test]
async fn callback_and_oauth_discovery_are_never_forwarded() {
    let up = upstream_with(UpstreamOptions::default()).await;
    let setup = Setup::new().unwrap();
    let d = setup.static_daemon(&up, "").await.unwrap();
    // The login callback is the proxy's own: without a pending login's state it is refused.
    for path in [
        "/callback?code=SECRETCODE&state=x",
        "/callback",
        "/callback?code=SECRETCODE",
    ] {
        let resp = proxy_client().get(d.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{path}");
        assert_eq!(resp.headers()["cache-control"], "no-store");
        assert_eq!(resp.headers()["referrer-policy"], "no-referrer");
        assert!(!resp.text().await.unwrap().contains("SECRETCODE"));
    }
    for path in [
        "/callback/x",
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/.well-known/oauth-protected-resource/accounts/1/mcp",
    ] {
        let resp = proxy_client().get(d.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
        assert!(resp.headers().get("www-authenticate").is_none());
    }
    assert!(up.requests().is_empty(), "{:?}", up.requests());
    assert!(
        !d.logs().contains("SECRETCODE"),
        "a query string reached the log"
    );
}

#[tokio::test]
async fn upstream_401_loses_its_www_authenticate() {
    let up = upstream_with(UpstreamOptions::default()).await;
    let setup = Setup::new().unwrap();
    let d = setup.static_daemon(&up, "").await.unwrap();
    let resp = proxy_client()
        .get(d.url("/raw/status/401"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().get("www-authenticate").is_none());
}

#[tokio::test]
async fn redirects_are_passed_back_not_followed() {
    let up = upstream_with(UpstreamOptions::default()).await;
    let setup = Setup::new().unwrap();
    let d = setup.static_daemon(&up, "").await.unwrap();
    let resp = proxy_client()
        .get(d.url("/raw/redirect"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(up.requests().len(), 1);
}

#[tokio::test]
async fn unreachable_slow_and_oversized_get_clear_errors() {
    let up = upstream_with(UpstreamOptions::default()).await;
    let setup = Setup::new().unwrap();
    let d = setup
        .static_daemon(
            &up,
            "[limits]\nmax_request_body = \"1KiB\"\nretry_body_limit = \"1KiB\"\nresponse_header_timeout = \"1s\"\n",
        )
        .await
        .unwrap();
    // Body over the limit, announced by Content-Length: refused before forwarding.
    let resp = proxy_client()
        .post(d.url("/raw/count"))
        .body(vec![b'x'; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    // Streamed (chunked) body over the limit: cut off, 413.
    let chunks =
        futures_util::stream::iter((0..8).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 512])));
    let resp = proxy_client()
        .post(d.url("/raw/count"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    // Under the limit: forwarded whole.
    let resp = proxy_client()
        .post(d.url("/raw/count"))
        .body(vec![b'z'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["bytes"],
        1000
    );
    // No answer within response_header_timeout: 504.
    let resp = proxy_client().get(d.url("/raw/hang")).send().await.unwrap();
    assert_eq!(resp.status(), 504);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_timeout");
    // Upstream gone: 502.
    up.shutdown();
    let resp = proxy_client().get(d.url("/raw/echo")).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_unreachable");
}

#[tokio::test]
async fn oauth_profile_without_login_gets_401_with_advice() {
    let up = upstream_with(UpstreamOptions::default()).await;
    let setup = Setup::new().unwrap();
    let config = format!(
        "[auth.corp]\nkind = \"oauth\"\nissuer = \"https://127.0.0.1:1\"\n\n\
         [[upstream]]\nname = \"corp\"\nurl = {:?}\nauth = \"corp\"\nca_file = {:?}\n",
        up.base_url(),
        {
            std::fs::write(setup.path("ca.pem"), up.ca_pem().unwrap()).unwrap();
            setup.path("ca.pem")
        }
    );
    let d = TestDaemon::start(&setup.write_config(&config).unwrap(), &[])
        .await
        .unwrap();
    let resp = proxy_client().get(d.url("/mcp")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().get("www-authenticate").is_none());
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("mcpproxyctl login"));
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn raw_requests_with_bodies_keep_alive_over_one_connection() {
    let up = upstream_with(UpstreamOptions::default()).await;
    let setup = Setup::new().unwrap();
    let d = setup.static_daemon(&up, "").await.unwrap();
    let host = d.addr.to_string();
    let req = format!(
        "POST /raw/count HTTP/1.1\r\nHost: {host}\r\nContent-Length: 3\r\n\r\nabc\
         GET /raw/echo HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    );
    let (status, text) = raw_http(d.addr, &req).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(text.matches("HTTP/1.1 200").count(), 2, "{text}");
    let (status, _) = raw_get(d.addr, "/raw/echo", &host).await.unwrap();
    assert_eq!(status, 200);
}
