//! `/raw/…` routes for `mcpproxy-bench`: cheap answers, so that the bench measures the proxy
//! and not the upstream.
//!
//! - `POST /raw/rpc`: reads the body, answers a fixed JSON-RPC result of about 1 KB.
//! - `GET /raw/ticks?n=N&every_us=U[&typed=1]`: N events `data: <µs since the Unix epoch>`,
//!   one every U µs (N <= 1,000,000, U <= 1 s), then the end; the client computes each event's
//!   latency. With `typed=1` each event has an `event: message` line first, as MCP servers send.
//! - `GET /raw/hold`: `data: open`, then holds the stream open until the client drops it.
//! - `GET /raw/bytes?n=N`: N bytes (N <= 1 GiB) of `x` with `Content-Length: N`, streamed in
//!   64 KiB frames of one static buffer: the upstream holds no copy of the body.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::stream;
use http::{header, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::json;

use super::router::{json, Req, RespBody};
use super::{ClosedGuard, Shared, StreamKind};

/// The fixed `tools/call` result of `/raw/rpc`: about 1 KB of JSON.
pub fn rpc_answer() -> Bytes {
    static ANSWER: OnceLock<Bytes> = OnceLock::new();
    ANSWER
        .get_or_init(|| {
            let text = "x".repeat(900);
            let body = json!({"jsonrpc": "2.0", "id": 1,
                "result": {"content": [{"type": "text", "text": text}], "isError": false}});
            Bytes::from(body.to_string())
        })
        .clone()
}

pub(crate) async fn rpc(req: Req) -> Response<RespBody> {
    if let Err(e) = req.into_body().collect().await {
        return json(StatusCode::BAD_REQUEST, &json!({"error": e.to_string()}));
    }
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(rpc_answer()).map_err(|e| match e {}).boxed())
        .expect("static response parts are valid")
}

fn query_u64(req: &Req, key: &str) -> Option<u64> {
    req.uri()
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))?
        .parse()
        .ok()
}

fn sse_response(body: RespBody) -> Response<RespBody> {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
        .expect("static response parts are valid")
}

/// Microseconds since the Unix epoch (the bench and this upstream share the machine's clock).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

pub(crate) fn ticks(req: &Req) -> Response<RespBody> {
    let n = query_u64(req, "n").unwrap_or(100).min(1_000_000);
    let every = Duration::from_micros(query_u64(req, "every_us").unwrap_or(1000).min(1_000_000));
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let kind = if query_u64(req, "typed") == Some(1) {
        "event: message\n"
    } else {
        ""
    };
    let events = stream::unfold((0u64, interval), move |(i, mut interval)| async move {
        if i == n {
            return None;
        }
        interval.tick().await;
        let line = format!("{kind}data: {}\n\n", now_us());
        Some((Ok(Frame::data(Bytes::from(line))), (i + 1, interval)))
    });
    sse_response(StreamBody::new(events).boxed())
}

/// The largest body `/raw/bytes` sends.
const MAX_BYTES: u64 = 1 << 30;
/// One frame of `/raw/bytes`.
const CHUNK: usize = 64 * 1024;

pub(crate) fn bytes(req: &Req) -> Response<RespBody> {
    static BUF: [u8; CHUNK] = [b'x'; CHUNK];
    let n = query_u64(req, "n").unwrap_or(0).min(MAX_BYTES);
    let frames = stream::unfold(n, |left| async move {
        if left == 0 {
            return None;
        }
        let len = left.min(CHUNK as u64);
        let frame = Frame::data(Bytes::from_static(&BUF[..len as usize]));
        Some((Ok(frame), left - len))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, n)
        .body(StreamBody::new(frames).boxed())
        .expect("static response parts are valid")
}

pub(crate) fn hold(shared: Arc<Shared>) -> Response<RespBody> {
    let guard = ClosedGuard::new(shared, StreamKind::Raw);
    // The guard lives in the stream's state: dropped (and counted) when the client goes away.
    let events = stream::unfold((true, guard), |(first, guard)| async move {
        if !first {
            std::future::pending::<()>().await;
        }
        let frame = Frame::data(Bytes::from_static(b"data: open\n\n"));
        Some((Ok(frame), (false, guard)))
    });
    sse_response(StreamBody::new(events).boxed())
}
