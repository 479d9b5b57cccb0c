//! `POST …/catalog-mcp`: a deliberately lax JSON-RPC server with the Alibaba tool names of
//! `tests/fixtures/alibaba_tools.txt` (plus `echo`), for tool policy tests.
//!
//! It reads what a careless server would: keys and methods in any case, the last of duplicate
//! keys, batches; and it records every tool it was asked to run
//! ([`TestUpstream::tool_calls`](super::TestUpstream::tool_calls)), so a test can tell that a
//! denied call never got here whatever shape it was smuggled in. Answers are JSON, or with
//! `?sse=1` one event per answer; `?gzip=1` labels them `Content-Encoding: gzip` (the bytes
//! stay plain: a proxy must refuse to pass on what it cannot read, whatever the bytes are). Tools: any name is "run"; a name starting with `Fail`
//! returns `isError: true`, `RpcFail` a JSON-RPC error -32603.

use std::sync::Arc;

use http::{header, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Map, Value};

use super::router::{full, json, Req, RespBody};
use super::Shared;

/// The fixture: `(name, read_only_allowed)` for every tool.
pub fn fixture_tools() -> Vec<(String, bool)> {
    include_str!("../../fixtures/alibaba_tools.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_once(' '))
        .map(|(kind, name)| (name.to_string(), kind == "r"))
        .collect()
}

pub(crate) async fn handle(shared: &Arc<Shared>, req: Req) -> Response<RespBody> {
    let flag = |name: &str| {
        req.uri()
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv == format!("{name}=1")))
    };
    let (sse, gzip) = (flag("sse"), flag("gzip"));
    let Ok(collected) = req.into_body().collect().await else {
        return json(StatusCode::BAD_REQUEST, &json!({ "error": "body" }));
    };
    let Ok(value) = serde_json::from_slice::<Value>(&collected.to_bytes()) else {
        return json(StatusCode::BAD_REQUEST, &json!({ "error": "not json" }));
    };
    let (messages, batch) = match value {
        Value::Array(items) => (items, true),
        other => (vec![other], false),
    };
    let answers: Vec<Value> = messages
        .iter()
        .filter_map(|m| answer(shared, m.as_object()?))
        .collect();
    if answers.is_empty() {
        return Response::builder()
            .status(StatusCode::ACCEPTED)
            .body(full(""))
            .expect("static parts");
    }
    if sse {
        let text: String = answers
            .iter()
            .map(|a| format!("event: message\ndata: {a}\n\n"))
            .collect();
        return Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .body(full(text))
            .expect("static parts");
    }
    let body = if batch {
        Value::Array(answers)
    } else {
        answers.into_iter().next().unwrap_or(Value::Null)
    };
    let mut resp = json(StatusCode::OK, &body);
    if gzip {
        resp.headers_mut().insert(
            header::CONTENT_ENCODING,
            header::HeaderValue::from_static("gzip"),
        );
    }
    resp
}

/// The value of the key that equals `name` ignoring case (a lax decoder's reading).
fn lax<'a>(o: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    o.iter()
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn answer(shared: &Shared, m: &Map<String, Value>) -> Option<Value> {
    let id = lax(m, "id")?.clone();
    let method = lax(m, "method")?.as_str()?.trim().to_ascii_lowercase();
    let result = match method.as_str() {
        "initialize" => json!({
            "protocolVersion": "2025-06-18",
            "capabilities": { "tools": {} },
            "serverInfo": { "name": "catalog-mcp", "version": "1" },
        }),
        "tools/list" => {
            let mut tools: Vec<Value> = fixture_tools()
                .into_iter()
                .map(|(name, _)| json!({ "name": name, "inputSchema": { "type": "object" } }))
                .collect();
            tools.push(json!({ "name": "echo", "inputSchema": { "type": "object" } }));
            json!({ "tools": tools })
        }
        "tools/call" => {
            let params = lax(m, "params")?.as_object()?;
            let name = lax(params, "name")?.as_str()?.trim().to_string();
            shared.tool_calls().push(name.clone());
            if name == "RpcFail" {
                return Some(json!({
                    "jsonrpc": "2.0", "id": id,
                    "error": { "code": -32603, "message": "failed on purpose" },
                }));
            }
            json!({
                "content": [{ "type": "text", "text": format!("called {name}") }],
                "isError": name.starts_with("Fail"),
            })
        }
        _ => json!({}),
    };
    Some(json!({ "jsonrpc": "2.0", "id": id, "result": result }))
}
