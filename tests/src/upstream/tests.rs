//! The test upstream against a real reqwest client over loopback.

use futures_util::StreamExt;
use serde_json::{json, Value};

use super::*;
use crate::mcp_client::McpClient;
use crate::sse::{SseEvent, SseParser};

const ECS_MCP: &str = "/accounts/1001/custom/ecs/id/ECS01/mcp";

fn bearer(up: &TestUpstream) -> String {
    format!("Bearer {}", up.token())
}

fn mcp_client(up: &TestUpstream, path: &str) -> McpClient {
    McpClient::new(up.http_client(), up.url(path)).with_header("authorization", &bearer(up))
}

fn tool_text(response: &Value) -> &str {
    response["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text content in {response}"))
}

/// Reads SSE events off a response body as they arrive.
struct EventReader {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    parser: SseParser,
    pending: std::collections::VecDeque<SseEvent>,
}

impl EventReader {
    fn new(resp: reqwest::Response) -> Self {
        Self {
            body: resp.bytes_stream().boxed(),
            parser: SseParser::new(),
            pending: Default::default(),
        }
    }

    /// The next event, or `None` when the stream ends.
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            let chunk = self.body.next().await?.expect("body chunk");
            self.pending.extend(self.parser.push(&chunk));
        }
    }
}

#[tokio::test]
async fn rejects_requests_without_the_exact_token() {
    let up = start(UpstreamOptions::default()).await.unwrap();
    let http = up.http_client();
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("bearer test-upstream-token"),
    ] {
        let mut req = http.get(up.url("/raw/echo"));
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{auth:?}");
        let challenge = resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            challenge,
            format!(
                "Bearer resource_metadata=\"{}/.well-known/oauth-protected-resource\"",
                up.base_url()
            )
        );
        let body: Value = resp.json_body().await;
        assert_eq!(body["error"], "invalid_token");
    }
    let recorded = up.requests();
    assert_eq!(recorded.len(), 3);
    assert_eq!(recorded[1].header("Authorization"), Some("Bearer wrong"));
    assert_eq!(recorded[0].path, "/raw/echo");
}

#[tokio::test]
async fn protected_resource_metadata_is_public() {
    let opts = UpstreamOptions {
        authorization_server: Some("https://127.0.0.1:9/issuer".into()),
        ..Default::default()
    };
    let up = start(opts).await.unwrap();
    let resp = up
        .http_client()
        .get(up.url("/.well-known/oauth-protected-resource/mcp"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json_body().await;
    assert_eq!(body["resource"], format!("{}/mcp", up.base_url()));
    assert_eq!(
        body["authorization_servers"][0],
        "https://127.0.0.1:9/issuer"
    );
}

#[tokio::test]
async fn streamable_http_session_round_trip() {
    let up = start(UpstreamOptions::default()).await.unwrap();
    let mut client = mcp_client(&up, ECS_MCP);
    let init = client.initialize().await.unwrap();
    assert_eq!(init["result"]["serverInfo"]["name"], "mcp-test-upstream");
    assert!(client.session_id().is_some_and(|s| !s.is_empty()));

    let echo = client
        .call_tool("echo", json!({ "text": "hi" }))
        .await
        .unwrap();
    assert_eq!(tool_text(&echo), "hi");
    let sum = client
        .call_tool("add", json!({ "a": 1, "b": 2 }))
        .await
        .unwrap();
    assert_eq!(tool_text(&sum), "3");
    let tools = client.list_tools().await.unwrap();
    let mut names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["add", "echo", "slow_count"]);

    let post = up
        .requests()
        .into_iter()
        .rfind(|r| r.method == "POST")
        .unwrap();
    assert_eq!(post.path, ECS_MCP);
    assert_eq!(post.header("mcp-session-id"), client.session_id());
    assert!(post.body_len > 0);

    assert!(client.delete_session().await.unwrap().is_success());
    let err = client
        .call_tool("echo", json!({ "text": "x" }))
        .await
        .unwrap_err();
    assert!(
        matches!(err, crate::mcp_client::McpClientError::Status { status, .. } if status == 404)
    );
}

#[tokio::test]
async fn slow_count_streams_progress_before_the_result() {
    let up = start(UpstreamOptions::default()).await.unwrap();
    let mut client = mcp_client(&up, "/mcp");
    client.initialize().await.unwrap();
    let params = json!({
        "name": "slow_count",
        "arguments": { "n": 3 },
        "_meta": { "progressToken": "p1" },
    });
    let reply = client.request("tools/call", params).await.unwrap();
    assert!(reply.content_type.starts_with("text/event-stream"));
    assert_eq!(tool_text(&reply.response), "3");
    let progress: Vec<f64> = reply
        .notifications
        .iter()
        .filter(|n| n["method"] == "notifications/progress")
        .map(|n| n["params"]["progress"].as_f64().unwrap())
        .collect();
    assert_eq!(progress, [1.0, 2.0, 3.0]);
}

#[tokio::test]
async fn slow_count_without_token_logs_on_the_get_stream() {
    let up = start(UpstreamOptions::default()).await.unwrap();
    let mut client = mcp_client(&up, "/mcp");
    client.initialize().await.unwrap();
    let stream = client.get_stream().await.unwrap();
    assert_eq!(stream.status(), 200);
    let mut events = EventReader::new(stream);
    let reply = client
        .call_tool("slow_count", json!({ "n": 2 }))
        .await
        .unwrap();
    assert_eq!(tool_text(&reply), "2");
    let mut counts = Vec::new();
    while counts.len() < 2 {
        let event = events.next().await.expect("GET stream event");
        if event.data.is_empty() {
            continue; // priming event
        }
        let message: Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(message["method"], "notifications/message");
        counts.push(message["params"]["data"]["count"].as_u64().unwrap());
    }
    assert_eq!(counts, [1, 2]);
}

#[tokio::test]
async fn demo_endpoint_answers_one_tools_call_with_json() {
    let up = start(UpstreamOptions::default()).await.unwrap();
    let resp = up
        .http_client()
        .post(up.url("/mcp-demo"))
        .header("authorization", bearer(&up))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json_body().await;
    assert_eq!(tool_text(&body), "hi");
}

#[tokio::test]
async fn json_query_and_suffix_answer_json() {
    let up = start(UpstreamOptions::default()).await.unwrap();
    for path in ["/x/mcp?json=1", "/x/mcp-json"] {
        let mut client = mcp_client(&up, path);
        client.initialize().await.unwrap();
        let reply = client
            .request(
                "tools/call",
                json!({ "name": "add", "arguments": { "a": 2, "b": 2 } }),
            )
            .await
            .unwrap();
        assert_eq!(reply.content_type, "application/json", "{path}");
        assert_eq!(tool_text(&reply.response), "4");
    }
}

async fn legacy_post(up: &TestUpstream, url: &str, body: Value) -> reqwest::StatusCode {
    let resp = up
        .http_client()
        .post(url)
        .header("authorization", bearer(up))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    resp.status()
}

async fn next_message(events: &mut EventReader) -> Value {
    let event = events.next().await.expect("message event");
    assert_eq!(event.event.as_deref(), Some("message"));
    serde_json::from_str(&event.data).unwrap()
}

#[tokio::test]
async fn legacy_sse_round_trip() {
    let up = start(UpstreamOptions::default()).await.unwrap();
    let resp = up
        .http_client()
        .get(up.url("/accounts/1/x/sse"))
        .header("authorization", bearer(&up))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut events = EventReader::new(resp);
    let endpoint = events.next().await.unwrap();
    assert_eq!(endpoint.event.as_deref(), Some("endpoint"));
    assert!(
        endpoint
            .data
            .starts_with("/accounts/1/x/message?sessionId="),
        "{}",
        endpoint.data
    );
    let url = up.url(&endpoint.data);

    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    assert_eq!(legacy_post(&up, &url, init).await, 202);
    let reply = next_message(&mut events).await;
    assert_eq!(reply["id"], 1);
    assert_eq!(reply["result"]["serverInfo"]["name"], "mcp-test-upstream");

    let initialized = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    assert_eq!(legacy_post(&up, &url, initialized).await, 202);
    let call = json!({"jsonrpc":"2.0","id":2,"method":"tools/call",
        "params":{"name":"echo","arguments":{"text":"legacy"}}});
    assert_eq!(legacy_post(&up, &url, call).await, 202);
    let reply = next_message(&mut events).await;
    assert_eq!(reply["id"], 2);
    assert_eq!(tool_text(&reply), "legacy");

    let ping = json!({"jsonrpc":"2.0","id":3,"method":"ping"});
    assert_eq!(legacy_post(&up, &url, ping.clone()).await, 202);
    assert_eq!(next_message(&mut events).await["id"], 3);

    let unknown = up.url("/accounts/1/x/message?sessionId=nope");
    assert_eq!(legacy_post(&up, &unknown, ping.clone()).await, 404);

    drop(events);
    up.wait_legacy_stream_closed(1).await;
    assert_eq!(legacy_post(&up, &url, ping).await, 404);
}

#[tokio::test]
async fn legacy_sse_absolute_endpoint_names_the_origin() {
    let opts = UpstreamOptions {
        legacy_endpoint: EndpointStyle::Absolute,
        ..Default::default()
    };
    let up = start(opts).await.unwrap();
    let resp = up
        .http_client()
        .get(up.url("/sse"))
        .header("authorization", bearer(&up))
        .send()
        .await
        .unwrap();
    let endpoint = EventReader::new(resp).next().await.unwrap();
    let prefix = format!("{}/message?sessionId=", up.base_url());
    assert!(endpoint.data.starts_with(&prefix), "{}", endpoint.data);
}

async fn get_raw(up: &TestUpstream, http: &reqwest::Client, path: &str) -> reqwest::Response {
    http.get(up.url(path))
        .header("authorization", bearer(up))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn slow_sse_waits_for_release_and_ends() {
    let up = start(UpstreamOptions::default()).await.unwrap();
    let resp = get_raw(&up, &up.http_client(), "/raw/slow-sse").await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut events = EventReader::new(resp);
    assert_eq!(events.next().await.unwrap().data, "one");
    up.release();
    assert_eq!(events.next().await.unwrap().data, "two");
    up.release();
    assert_eq!(events.next().await, None);
    assert_eq!(up.closed_streams(), 0);
}

#[tokio::test]
async fn slow_sse_dropped_by_the_client_counts_as_closed() {
    let up = start(UpstreamOptions::default()).await.unwrap();
    // Both HTTP versions: the drop is noticed differently (EOF vs RST_STREAM).
    for (n, alpn) in [(1, "h2"), (2, "http/1.1")] {
        let mut tls = up.client_config();
        tls.alpn_protocols = vec![alpn.as_bytes().to_vec()];
        let http = crate::tls::reqwest_client(tls);
        let resp = get_raw(&up, &http, "/raw/slow-sse").await;
        let mut events = EventReader::new(resp);
        assert_eq!(events.next().await.unwrap().data, "one");
        drop(events);
        drop(http);
        up.wait_stream_closed(n).await;
    }
    assert_eq!(up.closed_streams(), 2);
    let versions: Vec<String> = up.requests().into_iter().map(|r| r.version).collect();
    assert_eq!(versions, ["HTTP/2.0", "HTTP/1.1"]);
}

#[tokio::test]
async fn hang_counts_as_closed_when_the_client_gives_up() {
    let up = start(UpstreamOptions::default()).await.unwrap();
    for (n, alpn) in [(1, "h2"), (2, "http/1.1")] {
        let mut tls = up.client_config();
        tls.alpn_protocols = vec![alpn.as_bytes().to_vec()];
        let http = crate::tls::reqwest_client(tls);
        let request = http
            .get(up.url("/raw/hang"))
            .header("authorization", bearer(&up))
            .send();
        let task = tokio::spawn(request);
        up.wait_requests(n).await;
        task.abort();
        let _ = task.await;
        drop(http);
        up.wait_stream_closed(n).await;
    }
}

#[tokio::test]
async fn echo_reports_the_request_and_sets_awkward_headers() {
    let up = start(UpstreamOptions::default()).await.unwrap();
    let resp = up
        .http_client()
        .post(up.url("/raw/echo?a=1&b=2"))
        .header("authorization", bearer(&up))
        .header("x-custom", "yes")
        .body(vec![7u8; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["mcp-session-id"], "raw-session");
    assert_eq!(resp.headers()["set-cookie"], "a=b");
    assert_eq!(resp.headers()["www-authenticate"], "Basic realm=\"x\"");
    let body: Value = resp.json_body().await;
    assert_eq!(body["method"], "POST");
    assert_eq!(body["path"], "/raw/echo");
    assert_eq!(body["query"], "a=1&b=2");
    assert_eq!(body["headers"]["x-custom"], "yes");
    assert_eq!(body["body_len"], 1000);
    assert_eq!(up.requests()[0].body_len, 1000);
}

#[tokio::test]
async fn status_redirect_count_and_not_found() {
    let up = start(UpstreamOptions::default()).await.unwrap();
    let http = up.http_client();
    let resp = get_raw(&up, &http, "/raw/status/503").await;
    assert_eq!(resp.status(), 503);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );

    let resp = get_raw(&up, &http, "/raw/redirect").await;
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["location"], raw::REDIRECT_LOCATION);

    let resp = http
        .post(up.url("/raw/count"))
        .header("authorization", bearer(&up))
        .body(vec![0u8; 70_000])
        .send()
        .await
        .unwrap();
    let body: Value = resp.json_body().await;
    assert_eq!(body["bytes"], 70_000);

    assert_eq!(get_raw(&up, &http, "/raw/nothing").await.status(), 404);
    assert_eq!(get_raw(&up, &http, "/elsewhere").await.status(), 404);
}

#[tokio::test]
async fn plain_http_serves_the_same_routes() {
    let opts = UpstreamOptions {
        tls: false,
        ..Default::default()
    };
    let up = start(opts).await.unwrap();
    assert!(up.base_url().starts_with("http://127.0.0.1:"));
    assert!(up.ca.is_none());
    let mut client = mcp_client(&up, "/mcp");
    client.initialize().await.unwrap();
    let echo = client
        .call_tool("echo", json!({ "text": "plain" }))
        .await
        .unwrap();
    assert_eq!(tool_text(&echo), "plain");
}

/// `resp.json()` needs reqwest's `json` feature, which the workspace leaves off.
trait JsonBody {
    async fn json_body(self) -> Value;
}

impl JsonBody for reqwest::Response {
    async fn json_body(self) -> Value {
        serde_json::from_slice(&self.bytes().await.unwrap()).unwrap()
    }
}
