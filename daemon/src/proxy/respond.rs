//! Step 6 of the pipeline, respond: what the upstream answered, on its way to the client.

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use http::request::Parts;
use http::{Method, Response};
use http_body_util::BodyExt;
use tokio_util::sync::CancellationToken;

use crate::config::Upstream;
use crate::proxy::body::{ProxyBody, ResponseBody, StreamGuard};
use crate::proxy::forward::UpstreamBody;
use crate::proxy::headers;
use crate::proxy::sse::{EndpointMap, Rewriter};
use crate::state::{Generation, Shared};

/// Step 6, respond: the upstream's status and headers (hop-by-hop and token-carrying ones
/// dropped, `Location` mapped), its body streamed; event streams counted and rewritten.
pub(super) fn respond(
    shared: &Shared,
    generation: &Generation,
    upstream: &Upstream,
    parts: &Parts,
    upstream_response: Response<UpstreamBody>,
    revoked: Option<CancellationToken>,
) -> Response<ProxyBody> {
    let (mut head, upstream_body) = upstream_response.into_parts();
    headers::response_headers(&mut head.headers);
    // The endpoint map costs a few strings: only made for a response that needs it.
    let map = || EndpointMap {
        upstream_origin: upstream.url.origin().ascii_serialization(),
        upstream_base: upstream.base_path.clone(),
        mount: upstream.mount.clone(),
        proxy_origin: proxy_origin(parts),
    };
    if head.headers.contains_key(LOCATION) {
        headers::rewrite_location(&mut head.headers, &upstream.url, &map());
    }
    let is_sse = head
        .headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| is_event_stream(v.as_bytes()));
    let (rewriter, stream) = if is_sse {
        head.headers.remove(CONTENT_LENGTH);
        let guard = StreamGuard::new(shared.counters.open_streams.clone());
        (Some(Rewriter::new(map())), Some(guard))
    } else {
        (None, None)
    };
    let idle = if is_listen(parts) {
        LISTEN_IDLE
    } else {
        generation.config.limits.stream_idle_timeout
    };
    let body = ResponseBody::new(
        upstream_body,
        idle,
        rewriter,
        stream,
        revoked,
        &upstream.name,
    )
    .boxed();
    Response::from_parts(head, body)
}

/// `text/event-stream` (any case, leading white space and parameters allowed).
fn is_event_stream(v: &[u8]) -> bool {
    let v = v.trim_ascii_start();
    v.len() >= 17 && v[..17].eq_ignore_ascii_case(b"text/event-stream")
}

/// How long a `subscriptions/listen` stream may stay quiet: it is meant to be open for as long
/// as the client listens, so no idle timeout applies (a year stands for "never").
const LISTEN_IDLE: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

/// A 2026-07-28 `subscriptions/listen` POST (named by its `Mcp-Method` header).
fn is_listen(parts: &Parts) -> bool {
    parts.method == Method::POST
        && parts
            .headers
            .get(MCP_METHOD)
            .is_some_and(|v| v.as_bytes() == b"subscriptions/listen")
}

/// Looked up by name, not by `&str` (which is parsed and checked on every look-up).
const MCP_METHOD: http::HeaderName = http::HeaderName::from_static("mcp-method");

/// `http://HOST` as the client addressed the proxy (already accepted by the guard).
fn proxy_origin(parts: &Parts) -> String {
    let host = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            parts
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default();
    format!("http://{host}")
}
