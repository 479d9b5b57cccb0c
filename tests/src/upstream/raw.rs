//! `/raw/…` helpers: plain HTTP behaviours a proxy must pass on faithfully.
//!
//! - `GET` or `POST /raw/slow-sse`: `data: one`, then after [`release`] `data: two`, then after
//!   another release the end; dropped early it counts in [`closed_streams`].
//! - `GET /raw/hang`: never answers; dropped it counts in [`closed_streams`].
//! - `POST /raw/held`: reads the body, then after [`release`] answers `{"held":"answered"}`;
//!   dropped before that (the stream reset) it counts in [`closed_streams`].
//! - `ANY /raw/echo`: the request as JSON, with awkward response headers
//!   (`Mcp-Session-Id`, `Set-Cookie`, a hop-by-hop `X-Hop` named by `Connection`,
//!   `WWW-Authenticate: Basic`).
//! - `GET /raw/status/{code}`: that status, with `WWW-Authenticate: Bearer error="invalid_token"`.
//! - `GET /raw/redirect`: 302 to `https://127.0.0.1:1/elsewhere`.
//! - `POST /raw/count`: `{"bytes":N}` after streaming the body.
//! - `GET /raw/redirect-self`: 302 to this server's own `/raw/echo` (absolute URL).
//! - `GET /raw/endpoint-data-first`: an SSE `endpoint` event naming this server's
//!   `/raw/echo` by absolute URL, its `data:` line before its `event:` line, then the end.
//! - `GET /raw/big-endpoint`: an SSE `endpoint` event of 70 000 bytes, then the end.
//! - `GET /raw/reflect`: `{}` with the request's `Authorization` reflected in the response
//!   header `X-Seen-Authorization`, as a careless server or debugging middlebox might.
//! - `/raw/rpc`, `/raw/ticks`, `/raw/hold`, `/raw/bytes`: cheap routes for the bench (see `bench.rs`).
//!
//! [`release`]: super::TestUpstream::release
//! [`closed_streams`]: super::TestUpstream::closed_streams

use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream;
use http::{header, HeaderValue, Method, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use serde_json::json;

use super::router::{is, json, method_not_allowed, Req, RespBody};
use super::{ClosedGuard, Shared, StreamKind};

/// Where `/raw/redirect` points: a loopback port nothing listens on.
pub const REDIRECT_LOCATION: &str = "https://127.0.0.1:1/elsewhere";

pub(crate) async fn handle(shared: &Arc<Shared>, req: Req) -> Response<RespBody> {
    let path = req.uri().path().to_owned();
    match path.as_str() {
        // POST too: a 2026-07-28 `subscriptions/listen` stream is a POST.
        "/raw/slow-sse" if is(&req, Method::GET) || is(&req, Method::POST) => {
            slow_sse(shared.clone())
        }
        "/raw/hang" if is(&req, Method::GET) => hang(shared.clone()).await,
        "/raw/held" if is(&req, Method::POST) => held(shared.clone(), req).await,
        "/raw/echo" => echo(req).await,
        "/raw/redirect" if is(&req, Method::GET) => redirect(),
        "/raw/redirect-self" if is(&req, Method::GET) => redirect_self(shared),
        "/raw/reflect" if is(&req, Method::GET) => reflect(&req),
        "/raw/endpoint-data-first" if is(&req, Method::GET) => sse_once(format!(
            "data: {}/raw/echo\nevent: endpoint\n\n",
            shared.base_url
        )),
        "/raw/big-endpoint" if is(&req, Method::GET) => sse_once(format!(
            "event: endpoint\ndata: /{}\n\n",
            "a".repeat(70_000)
        )),
        "/raw/count" if is(&req, Method::POST) => count(req).await,
        "/raw/rpc" if is(&req, Method::POST) => super::bench::rpc(req).await,
        "/raw/ticks" if is(&req, Method::GET) => super::bench::ticks(&req),
        "/raw/hold" if is(&req, Method::GET) => super::bench::hold(shared.clone()),
        "/raw/bytes" if is(&req, Method::GET) => super::bench::bytes(&req),
        p if p.starts_with("/raw/status/") && is(&req, Method::GET) => status(p),
        "/raw/slow-sse" | "/raw/hang" | "/raw/redirect" => method_not_allowed("GET"),
        "/raw/count" | "/raw/held" => method_not_allowed("POST"),
        _ => json(
            StatusCode::NOT_FOUND,
            &json!({ "error": "not_found", "path": path }),
        ),
    }
}

#[derive(Clone, Copy)]
enum SlowStep {
    One,
    Two,
    End,
}

fn slow_sse(shared: Arc<Shared>) -> Response<RespBody> {
    let guard = ClosedGuard::new(shared, StreamKind::Raw);
    let events = stream::unfold((SlowStep::One, guard), |(step, mut guard)| async move {
        match step {
            SlowStep::One => Some((frame("data: one\n\n"), (SlowStep::Two, guard))),
            SlowStep::Two => {
                wait_release(guard.shared()).await;
                Some((frame("data: two\n\n"), (SlowStep::End, guard)))
            }
            SlowStep::End => {
                wait_release(guard.shared()).await;
                guard.finish();
                None
            }
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(StreamBody::new(events).boxed())
        .expect("static response parts are valid")
}

async fn wait_release(shared: &Shared) {
    // The semaphore is never closed.
    if let Ok(permit) = shared.release.acquire().await {
        permit.forget();
    }
}

fn frame(text: &'static str) -> Result<Frame<Bytes>, std::convert::Infallible> {
    Ok(Frame::data(Bytes::from_static(text.as_bytes())))
}

async fn hang(shared: Arc<Shared>) -> Response<RespBody> {
    let _guard = ClosedGuard::new(shared, StreamKind::Raw);
    std::future::pending().await
}

async fn held(shared: Arc<Shared>, req: Req) -> Response<RespBody> {
    let mut guard = ClosedGuard::new(shared, StreamKind::Raw);
    if let Err(e) = req.into_body().collect().await {
        return body_error(&e);
    }
    wait_release(guard.shared()).await;
    guard.finish();
    json(StatusCode::OK, &json!({ "held": "answered" }))
}

async fn echo(req: Req) -> Response<RespBody> {
    let (parts, body) = req.into_parts();
    let body_len = match body.collect().await {
        Ok(collected) => collected.to_bytes().len(),
        Err(e) => return body_error(&e),
    };
    let mut headers = serde_json::Map::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.get_mut(name.as_str()) {
            Some(serde_json::Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), value.into());
            }
        }
    }
    let mut resp = json(
        StatusCode::OK,
        &json!({
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": parts.uri.query(),
            "headers": headers,
            "body_len": body_len,
        }),
    );
    let h = resp.headers_mut();
    h.insert("mcp-session-id", HeaderValue::from_static("raw-session"));
    h.insert(header::SET_COOKIE, HeaderValue::from_static("a=b"));
    h.insert(header::CONNECTION, HeaderValue::from_static("x-hop"));
    h.insert("x-hop", HeaderValue::from_static("1"));
    h.insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"x\""),
    );
    resp
}

fn status(path: &str) -> Response<RespBody> {
    let code = path["/raw/status/".len()..]
        .parse::<u16>()
        .ok()
        .filter(|c| (200..=599).contains(c))
        .and_then(|c| StatusCode::from_u16(c).ok());
    let Some(code) = code else {
        return json(
            StatusCode::BAD_REQUEST,
            &json!({ "error": "bad_status_code" }),
        );
    };
    let mut resp = json(code, &json!({ "status": code.as_u16() }));
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    resp
}

fn redirect() -> Response<RespBody> {
    let mut resp = json(StatusCode::FOUND, &json!({ "location": REDIRECT_LOCATION }));
    resp.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_static(REDIRECT_LOCATION),
    );
    resp
}

fn redirect_self(shared: &Shared) -> Response<RespBody> {
    let location = format!("{}/raw/echo", shared.base_url);
    let mut resp = json(StatusCode::FOUND, &json!({ "location": location }));
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn reflect(req: &Req) -> Response<RespBody> {
    let mut resp = json(StatusCode::OK, &json!({}));
    if let Some(v) = req.headers().get(header::AUTHORIZATION) {
        resp.headers_mut().insert("x-seen-authorization", v.clone());
    }
    resp
}

/// An event stream of `text`, then its end.
fn sse_once(text: String) -> Response<RespBody> {
    let body = stream::iter([Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(
        text,
    )))]);
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(StreamBody::new(body).boxed())
        .expect("static response parts are valid")
}

async fn count(req: Req) -> Response<RespBody> {
    let mut body = req.into_body();
    let mut bytes = 0usize;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => bytes += frame.data_ref().map_or(0, Bytes::len),
            Err(e) => return body_error(&e),
        }
    }
    json(StatusCode::OK, &json!({ "bytes": bytes }))
}

fn body_error(e: &hyper::Error) -> Response<RespBody> {
    json(
        StatusCode::BAD_REQUEST,
        &json!({ "error": "body", "detail": e.to_string() }),
    )
}
