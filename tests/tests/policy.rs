//! Tool policy end to end: the real daemon in front of the test upstream's lax `catalog-mcp`
//! server, which records every tool it is asked to run. A denied call must never get there,
//! in whatever shape it is sent; allowed calls work; `tools/list` is filtered in JSON and SSE
//! answers; each call's outcome reaches the log and the metrics.

use mcpproxy_tests::admin;
use mcpproxy_tests::daemon::{proxy_client, EventReader, Setup, TestDaemon};
use mcpproxy_tests::upstream::{self, catalog, TestUpstream, UpstreamOptions};
use serde_json::{json, Value};

const ECS: &str = "/accounts/1/custom/ecs/id/ECS01";
const RAM: &str = "/accounts/1/custom/ram/id/RAM01";
/// The JSON-RPC error code of a denied tool call (documented in the README).
const DENIED: i64 = -32050;
const HEADER_MISMATCH: i64 = -32020;

/// `ecs` has a read-only policy (and no secrets); `ram` has none.
const POLICY: &str = "[[upstream.servers]]\nname = \"ecs\"\nid = \"ECS01\"\n\
    mcp = \"/accounts/1/custom/ecs/id/ECS01/catalog-mcp\"\n\
    [[upstream.servers]]\nname = \"ram\"\nid = \"RAM01\"\n\
    mcp = \"/accounts/1/custom/ram/id/RAM01/catalog-mcp\"\n\n\
    [[policy]]\nname = \"ecs-read-only\"\nservers = [\"ecs\"]\nread_only = true\n\
    blocked_tools = [\"*Secret*\"]\n";

async fn start(extra: &str) -> (TestUpstream, Setup, TestDaemon) {
    let up = upstream::start(UpstreamOptions::default()).await.unwrap();
    let setup = Setup::new().unwrap();
    let d = setup
        .static_daemon(&up, &format!("{POLICY}{extra}"))
        .await
        .unwrap();
    (up, setup, d)
}

fn call(id: i64, tool: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": {"secret": "never logged"}}})
    .to_string()
}

/// POSTs `body` to `server`'s catalog endpoint with extra headers; (status, content type, text).
async fn post(
    d: &TestDaemon,
    server: &str,
    query: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut req = proxy_client()
        .post(d.url(&format!("{server}/catalog-mcp{query}")))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string());
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, ct, resp.text().await.unwrap())
}

async fn post_json(d: &TestDaemon, server: &str, body: &str) -> (u16, Value) {
    let (status, _, text) = post(d, server, "", body, &[]).await;
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, value)
}

fn names(list: &Value) -> Vec<String> {
    list["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {list}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

fn read_only_names() -> Vec<String> {
    let mut want: Vec<String> = catalog::fixture_tools()
        .into_iter()
        .filter(|(_, read)| *read)
        .map(|(n, _)| n)
        .collect();
    want.push("echo".into());
    want
}

#[tokio::test]
async fn denied_call_never_reaches_the_upstream_and_allowed_call_works() {
    let (up, _s, d) = start("").await;
    let (status, v) = post_json(&d, ECS, &call(41, "DeleteInstance")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["id"], 41, "{v}");
    assert_eq!(v["error"]["code"], DENIED, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("DeleteInstance") && message.contains("ecs-read-only"),
        "{message}"
    );
    assert_eq!(v["error"]["data"]["policy"], "ecs-read-only");
    assert!(up.tool_calls().is_empty(), "{:?}", up.tool_calls());
    d.wait_for_log("tool call refused").await.unwrap();
    let logs = d.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("tool call refused"))
        .unwrap();
    assert!(
        line.contains("DeleteInstance") && line.contains("ecs-read-only"),
        "{line}"
    );
    assert!(!logs.contains("never logged"), "arguments reached the log");

    let (status, v) = post_json(&d, ECS, &call(42, "DescribeInstances")).await;
    assert_eq!(
        (status, &v["result"]["content"][0]["text"]),
        (200, &json!("called DescribeInstances")),
        "{v}"
    );
    assert_eq!(up.tool_calls(), ["DescribeInstances"]);

    let (_, v) = post_json(&d, ECS, &call(43, "DescribeSecretKeys")).await;
    assert_eq!(v["error"]["code"], DENIED, "blocked_tools: {v}");
    // The same tools on a server without a policy go through.
    let (_, v) = post_json(&d, RAM, &call(44, "DeleteInstance")).await;
    assert_eq!(v["result"]["content"][0]["text"], "called DeleteInstance");
    assert_eq!(up.tool_calls(), ["DescribeInstances", "DeleteInstance"]);
}

#[tokio::test]
async fn denial_comes_as_an_event_stream_when_that_is_all_the_client_accepts() {
    let (up, _s, d) = start("").await;
    let resp = proxy_client()
        .post(d.url(&format!("{ECS}/catalog-mcp")))
        .header("content-type", "application/json")
        .header("accept", "text/event-stream")
        .body(call(7, "RebootInstance"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut events = EventReader::new(resp);
    let event = events.next_event().await.unwrap();
    let v: Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(
        (v["id"].clone(), v["error"]["code"].clone()),
        (json!(7), json!(DENIED))
    );
    events.end().await.unwrap();
    assert!(up.tool_calls().is_empty());
}

#[tokio::test]
async fn tools_list_offers_only_allowed_tools_in_json_and_sse() {
    let (_up, _s, d) = start("").await;
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();
    // The read-only set keeps exactly the fixture's read tools of the Alibaba catalog.
    let (_, v) = post_json(&d, ECS, &list).await;
    assert_eq!(names(&v), read_only_names());

    let (status, ct, text) = post(&d, ECS, "?sse=1", &list, &[]).await;
    assert_eq!((status, ct.as_str()), (200, "text/event-stream"));
    let data = text
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap_or_else(|| panic!("no event in {text}"));
    assert_eq!(
        names(&serde_json::from_str(data).unwrap()),
        read_only_names()
    );
    assert!(
        text.starts_with("event: message\n") && text.ends_with("\n\n"),
        "{text}"
    );

    // Without a policy, the whole list.
    let (_, v) = post_json(&d, RAM, &list).await;
    assert_eq!(names(&v).len(), catalog::fixture_tools().len() + 1);

    // A compressed list cannot be filtered: refused, never passed on.
    let (status, _, text) = post(&d, ECS, "?gzip=1", &list, &[]).await;
    assert_eq!(status, 502, "{text}");
    assert!(!text.contains("DeleteInstance"), "{text}");
}

#[tokio::test]
async fn smuggled_calls_are_refused() {
    let (up, _s, d) = start("").await;
    let batch = format!(
        "[{},{}]",
        call(1, "DescribeInstances"),
        call(2, "DeleteInstance")
    );
    let (status, v) = post_json(&d, ECS, &batch).await;
    assert_eq!(status, 200, "{v}");
    let errors: Vec<i64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["error"]["code"].as_i64().unwrap())
        .collect();
    assert_eq!(errors, [DENIED, DENIED], "the whole batch is refused: {v}");

    let cases: Vec<(&str, String, u16)> = vec![
        (
            "duplicate key",
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"DescribeInstances","name":"DeleteInstance"}}"#.into(),
            400,
        ),
        (
            "method in another case",
            r#"{"jsonrpc":"2.0","id":4,"method":"Tools/Call","params":{"name":"DeleteInstance"}}"#.into(),
            400,
        ),
        (
            "method key in another case",
            r#"{"jsonrpc":"2.0","id":5,"method":"ping","METHOD":"tools/call","params":{"name":"DeleteInstance"}}"#.into(),
            400,
        ),
        (
            "name key in another case",
            r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"DescribeInstances","NAME":"DeleteInstance"}}"#.into(),
            400,
        ),
        (
            "unicode escapes",
            r#"{"jsonrpc":"2.0","id":8,"method":"tools\u002fcall","params":{"name":"\u0044elete\u0049nstance"}}"#.into(),
            200,
        ),
        ("nested batch", format!("[[{}]]", call(9, "DeleteInstance")), 400),
    ];
    for (what, body, want) in &cases {
        let (status, _, text) = post(&d, ECS, "", body, &[]).await;
        assert_eq!(status, *want, "{what}: {text}");
        let v: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: {e}: {text}"));
        assert!(v["error"]["code"].is_i64(), "{what}: {v}");
    }

    // Mcp-Name names an allowed tool over a body that calls a denied one.
    let (status, _, text) = post(
        &d,
        ECS,
        "",
        &call(10, "DeleteInstance"),
        &[
            ("mcp-method", "tools/call"),
            ("mcp-name", "DescribeInstances"),
        ],
    )
    .await;
    assert_eq!(status, 400, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (v["id"].clone(), v["error"]["code"].clone()),
        (json!(10), json!(HEADER_MISMATCH))
    );
    // Headers that agree are fine, and the decision is still the body's.
    let agree = [
        ("mcp-method", "tools/call"),
        ("mcp-name", "=?base64?RGVzY3JpYmVJbnN0YW5jZXM=?="),
    ];
    let (status, _, text) = post(&d, ECS, "", &call(11, "DescribeInstances"), &agree).await;
    assert!(
        status == 200 && text.contains("called DescribeInstances"),
        "{text}"
    );

    assert_eq!(
        up.tool_calls(),
        ["DescribeInstances"],
        "only the last, honest call reached the upstream"
    );
}

#[tokio::test]
async fn bodies_that_are_not_json_rpc_are_refused_only_where_a_policy_applies() {
    let (up, _s, d) = start("").await;
    let (status, _, text) = post(&d, ECS, "", "not json", &[]).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("refused by tool policy"), "{text}");
    let before = up.requests().len();
    let (status, _, text) = post(&d, RAM, "", "not json", &[]).await;
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("not json") && !text.contains("tool policy"),
        "the upstream answered: {text}"
    );
    assert_eq!(up.requests().len(), before + 1);
}

#[tokio::test]
async fn tool_call_outcomes_reach_the_log_and_the_metrics() {
    let (_up, _s, d) = start("").await;
    for (id, tool) in [(1, "echo"), (2, "FailThis"), (3, "RpcFail")] {
        post(&d, RAM, "", &call(id, tool), &[("mcp-session-id", "s-123")]).await;
    }
    post(&d, ECS, "?sse=1", &call(4, "FailSse"), &[]).await;
    post(&d, ECS, "", &call(5, "DeleteInstance"), &[]).await;
    d.wait_for_log("tool=FailSse").await.unwrap();
    let logs = d.logs();
    let finished = |tool: &str| {
        logs.lines()
            .find(|l| l.contains("tool call finished") && l.contains(&format!("tool={tool}")))
            .unwrap_or_else(|| panic!("no record for {tool}:\n{logs}"))
            .to_string()
    };
    assert!(
        finished("echo").contains("outcome=\"ok\""),
        "{}",
        finished("echo")
    );
    let fail = finished("FailThis");
    assert!(
        fail.contains("tool_is_error=true") && fail.contains("rpc_id=\"2\""),
        "{fail}"
    );
    assert!(
        !fail.contains("s-123"),
        "the session id itself is never logged: {fail}"
    );
    assert!(fail.contains("session="), "{fail}");
    assert!(
        finished("RpcFail").contains("rpc_error=-32603"),
        "{}",
        finished("RpcFail")
    );
    assert!(finished("FailSse").contains("tool_is_error=true"));
    assert!(!logs.contains("never logged") && !logs.contains("called FailThis"));

    let (status, metrics) = admin::request(&d.admin_socket(), "GET", "/v1/metrics", None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    for line in [
        r#"mcpproxyd_tool_calls_total{upstream="test",server="ram",tool="echo",outcome="ok"} 1"#,
        r#"mcpproxyd_tool_calls_total{upstream="test",server="ram",tool="FailThis",outcome="tool_error"} 1"#,
        r#"mcpproxyd_tool_calls_total{upstream="test",server="ram",tool="RpcFail",outcome="rpc_error"} 1"#,
        r#"mcpproxyd_tool_calls_total{upstream="test",server="ecs",tool="FailSse",outcome="tool_error"} 1"#,
        r#"mcpproxyd_tool_calls_total{upstream="test",server="ecs",tool="DeleteInstance",outcome="denied"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
}

#[tokio::test]
async fn reload_applies_new_tool_rules() {
    let (up, setup, d) = start("").await;
    let (_, v) = post_json(&d, RAM, &call(1, "echo")).await;
    assert_eq!(v["result"]["content"][0]["text"], "called echo");
    let config = setup
        .static_config(
            &up,
            &format!("{POLICY}\n[[policy]]\nname = \"no-echo\"\nservers = [\"RAM01\"]\nblocked_tools = [\"echo\"]\n"),
        )
        .unwrap();
    setup.write_config(&config).unwrap();
    let (status, _) = admin::post_json(&d.admin_socket(), "/v1/reload", "{}")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (_, v) = post_json(&d, RAM, &call(2, "echo")).await;
    assert_eq!(v["error"]["code"], DENIED, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("no-echo"));
    assert_eq!(up.tool_calls(), ["echo"]);
}

fn ctl(socket: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(mcpproxy_tests::daemon::bin_path("mcpproxyctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("MCPPROXYD_SOCKET")
        .output()
        .expect("run mcpproxyctl");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn ctl_checks_tools_and_shows_policies_and_denials() {
    let (_up, _s, d) = start("").await;
    let sock = d.admin_socket();
    let path = format!("{ECS}/catalog-mcp");
    let (code, text) = ctl(&sock, &["acl", "check", &path, "--tool", "DeleteInstance"]);
    assert_eq!(code, 1, "acl check exits 1 when denied: {text}");
    assert!(text.starts_with(&format!("denied: {path}")), "{text}");
    assert!(
        text.contains("tool_denied") && text.contains("ecs-read-only"),
        "{text}"
    );
    let (_, text) = ctl(
        &sock,
        &["acl", "check", &path, "--tool", "DescribeInstances"],
    );
    assert!(text.starts_with("allowed: "), "{text}");
    let (_, json) = ctl(
        &sock,
        &["acl", "check", &path, "--tool", "StopInstance", "--json"],
    );
    let v: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(v["tool"]["policy"], "ecs-read-only", "{v}");
    let (_, text) = ctl(
        &sock,
        &[
            "acl",
            "check",
            &format!("{RAM}/catalog-mcp"),
            "--tool",
            "DeleteInstance",
        ],
    );
    assert!(text.starts_with("allowed: "), "no policy on ram: {text}");

    let (_, text) = ctl(&sock, &["servers"]);
    assert!(
        text.contains("  policy  ecs-read-only: read-only, blocked *Secret*"),
        "{text}"
    );
    assert_eq!(
        text.matches("  policy  ").count(),
        1,
        "ram has none: {text}"
    );

    post(&d, ECS, "", &call(1, "DeleteInstance"), &[]).await;
    let (_, text) = ctl(&sock, &["status"]);
    assert!(text.contains("1 denied (1 tool calls)"), "{text}");
    let (_, metrics) = ctl(&sock, &["metrics"]);
    assert!(
        metrics.contains("mcpproxyd_denied_total{rule=\"ecs-read-only:read_only\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn journal_records_name_outcomes_and_denials() {
    let up = upstream::start(UpstreamOptions::default()).await.unwrap();
    let setup = Setup::new().unwrap();
    let text = setup
        .static_config(&up, &format!("{POLICY}\n[log]\ntarget = \"journald\"\n"))
        .unwrap();
    let config = setup.write_config(&text).unwrap();
    let journal_path = setup.path("journal.sock");
    let journal = std::os::unix::net::UnixDatagram::bind(&journal_path).unwrap();
    journal
        .set_read_timeout(Some(mcpproxy_tests::daemon::WAIT))
        .unwrap();
    let mut cmd = tokio::process::Command::new(mcpproxy_tests::daemon::bin_path("mcpproxyd"));
    cmd.arg("--config")
        .arg(&config)
        .args(["--port", "0"])
        .env("MCPPROXYD_JOURNAL_SOCKET", &journal_path);
    let d = TestDaemon::spawn(cmd).await.unwrap();
    let session = [("mcp-session-id", "SECRETSESSION")];
    post(&d, RAM, "", &call(2, "FailThis"), &session).await;
    post(&d, RAM, "", &call(3, "RpcFail"), &session).await;
    post(&d, ECS, "", &call(4, "DeleteInstance"), &session).await;

    let mut records: Vec<String> = Vec::new();
    let mut buf = vec![0u8; 65536];
    let deadline = std::time::Instant::now() + mcpproxy_tests::daemon::WAIT;
    let find = |records: &[String], needles: &[&str]| {
        records
            .iter()
            .find(|r| needles.iter().all(|n| r.contains(n)))
            .cloned()
    };
    let wanted: [&[&str]; 3] = [
        &["MCP_TOOL=FailThis", "MCP_OUTCOME=tool_error"],
        &["MCP_TOOL=RpcFail", "MCP_OUTCOME=rpc_error"],
        &["MCP_TOOL=DeleteInstance", "MCP_DECISION=denied"],
    ];
    while std::time::Instant::now() < deadline
        && !wanted.iter().all(|w| find(&records, w).is_some())
    {
        let n = journal.recv(&mut buf).unwrap();
        records.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let all = records.join("\n----\n");
    let fail = find(&records, wanted[0]).unwrap_or_else(|| panic!("{all}"));
    for field in [
        "MCP_TOOL_IS_ERROR=true",
        "MCP_RPC_ID=2",
        "MCP_SERVER=ram",
        "MCP_SESSION=",
    ] {
        assert!(fail.contains(field), "{field} missing in {fail}");
    }
    let rpc = find(&records, wanted[1]).unwrap_or_else(|| panic!("{all}"));
    assert!(
        rpc.contains("MCP_RPC_ERROR=-32603") && rpc.contains("MCP_TOOL_IS_ERROR=false"),
        "{rpc}"
    );
    let denied = find(&records, wanted[2]).unwrap_or_else(|| panic!("{all}"));
    for field in [
        "MCP_RULE=ecs-read-only:read_only",
        "MCP_RPC_ID=4",
        "MCP_SERVER=ecs",
    ] {
        assert!(denied.contains(field), "{field} missing in {denied}");
    }
    for secret in ["SECRETSESSION", "never logged", "called FailThis"] {
        assert!(!all.contains(secret), "{secret} reached the journal");
    }
}

/// A policy server's body is read whole before it is checked: a client that stops sending it
/// is dropped after `limits.body_read_timeout` like anywhere else (408), and holds no slot.
#[tokio::test]
async fn a_policy_servers_body_that_stops_arriving_is_dropped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (up, _s, d) = start("[limits]\nbody_read_timeout = \"1s\"\n").await;
    let before = up.requests().len();
    let head = format!(
        "POST {ECS}/catalog-mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: 100\r\n\r\n{{\"js",
        d.addr
    );
    let mut s = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(mcpproxy_tests::daemon::WAIT, s.read_to_end(&mut got))
        .await
        .expect("the daemon never answered a stalled body")
        .unwrap();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"code\":\"body_timeout\""), "{text}");
    assert_eq!(up.requests().len(), before, "a partial body went upstream");
}
