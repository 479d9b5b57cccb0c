//! Step 6 of the pipeline, respond: what the upstream answered, on its way to the client.

use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::request::Parts;
use http::{Method, Response};
use http_body_util::BodyExt;
use tokio_util::sync::CancellationToken;

use crate::config::Upstream;
use crate::proxy::body::{ProxyBody, ResponseBody, StreamGuard};
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
    upstream_response: reqwest::Response,
    revoked: Option<CancellationToken>,
) -> Response<ProxyBody> {
    let response: Response<reqwest::Body> = upstream_response.into();
    let (mut head, upstream_body) = response.into_parts();
    head.headers = headers::response_headers(&head.headers);
    let map = EndpointMap {
        upstream_origin: upstream.url.origin().ascii_serialization(),
        upstream_base: upstream.base_path.clone(),
        mount: upstream.mount.clone(),
        proxy_origin: proxy_origin(parts),
    };
    headers::rewrite_location(&mut head.headers, &upstream.url, &map);
    let is_sse = head
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/event-stream")
        });
    let (rewriter, stream) = if is_sse {
        head.headers.remove(CONTENT_LENGTH);
        let guard = StreamGuard::new(shared.counters.open_streams.clone());
        (Some(Rewriter::new(map)), Some(guard))
    } else {
        (None, None)
    };
    let idle = if is_listen(parts) {
        LISTEN_IDLE
    } else {
        generation.config.limits.stream_idle_timeout
    };
    let body = ResponseBody::new(upstream_body, idle, rewriter, stream, revoked).boxed();
    Response::from_parts(head, body)
}

/// How long a `subscriptions/listen` stream may stay quiet: it is meant to be open for as long
/// as the client listens, so no idle timeout applies (a year stands for "never").
const LISTEN_IDLE: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

/// A 2026-07-28 `subscriptions/listen` POST (named by its `Mcp-Method` header).
fn is_listen(parts: &Parts) -> bool {
    parts.method == Method::POST
        && parts
            .headers
            .get("mcp-method")
            .is_some_and(|v| v.as_bytes() == b"subscriptions/listen")
}

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
