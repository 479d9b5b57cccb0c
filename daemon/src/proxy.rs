//! The request pipeline, one pass in this order: guard → path and route → ACL → token →
//! forward → respond. Each step is one function; the proxy's own answers are [`ProxyError`]s.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use secrecy::ExposeSecret;

use crate::body::{self, ProxyBody, RequestBody, ResponseBody, StreamGuard};
use crate::config::Upstream;
use crate::error::ProxyError;
use crate::guard;
use crate::headers;
use crate::path;
use crate::sse::{EndpointMap, Rewriter};
use crate::state::{Generation, Shared};
use crate::tokens::TokenState;

/// Per-connection facts a request needs.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub addr: SocketAddr,
}

/// What the pipeline learnt about a request, for logs and metrics.
#[derive(Debug, Default)]
struct Trace {
    origin: Option<String>,
    upstream: String,
    server: String,
}

/// The hyper service function: never fails, every problem becomes a response.
pub async fn handle(
    shared: Arc<Shared>,
    peer: Peer,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    shared.counters.requests.fetch_add(1, Ordering::Relaxed);
    let generation = shared.current();
    let (parts, body) = req.into_parts();
    let method = parts.method.clone();
    let path_for_log = log_path(&parts);
    let mut trace = Trace::default();
    let result = pipeline(&shared, &generation, peer, &parts, body, &mut trace).await;
    let mut response = match result {
        Ok(response) => response,
        Err(err) => {
            let (status, code) = err.status_and_code();
            let (decision, rule) = match &err {
                ProxyError::Denied(d) => ("denied", d.rule()),
                ProxyError::Guard(_) | ProxyError::BadPath(_) | ProxyError::BadTarget => {
                    ("denied", code.to_string())
                }
                _ => ("error", String::new()),
            };
            if decision == "denied" {
                shared.counters.denied.fetch_add(1, Ordering::Relaxed);
                shared.metrics.denial(&rule);
            }
            tracing::warn!(
                client = %peer.addr,
                method = %method,
                path = %path_for_log,
                status = status.as_u16(),
                decision,
                code,
                rule = %rule,
                reason = %err,
                "request refused"
            );
            err.into_response()
        }
    };
    if let Some(origin) = &trace.origin {
        guard::add_cors_headers(response.headers_mut(), origin);
    }
    shared
        .metrics
        .request(&trace.upstream, &trace.server, response.status().as_u16());
    tracing::debug!(
        client = %peer.addr,
        method = %method,
        path = %path_for_log,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_millis() as u64,
        "response headers sent"
    );
    Ok(response)
}

/// The path for logs: never the query, which can hold session ids and codes.
fn log_path(parts: &Parts) -> String {
    parts.uri.path().chars().take(512).collect()
}

async fn pipeline(
    shared: &Shared,
    generation: &Generation,
    peer: Peer,
    parts: &Parts,
    body: Incoming,
    trace: &mut Trace,
) -> Result<Response<ProxyBody>, ProxyError> {
    // 1. Guard.
    let origin = generation.guard.check(parts)?;
    trace.origin = origin.clone();
    if parts.method == Method::CONNECT {
        return Err(ProxyError::BadTarget);
    }
    if let Some(origin) = &origin {
        if parts.method == Method::OPTIONS
            && parts.headers.contains_key("access-control-request-method")
        {
            return Ok(preflight(origin, parts));
        }
    }
    // 2. Path and route.
    let local = parts.uri.path();
    path::check_normal(local).map_err(ProxyError::BadPath)?;
    reserved(local)?;
    let upstream = generation.route(local).ok_or(ProxyError::NoRoute)?;
    trace.upstream = upstream.name.clone();
    trace.server = generation
        .catalog
        .server_for(local)
        .map(|s| s.name.clone())
        .unwrap_or_default();
    // 3. ACL.
    let decision = generation.acl.check(local);
    if !decision.is_allowed() {
        return Err(ProxyError::Denied(decision));
    }
    // 4. Token.
    let token = match generation.tokens.get(&upstream.auth) {
        TokenState::Token(t) => t,
        TokenState::NeedsLogin(message) => {
            return Err(ProxyError::NotLoggedIn {
                profile: upstream.auth.clone(),
                message,
            })
        }
    };
    // 5. Forward.
    let started = Instant::now();
    let limits = &generation.config.limits;
    let target = target_url(upstream, parts)?;
    let out_headers =
        headers::request_headers(&parts.headers, token.expose_secret()).map_err(|_| {
            ProxyError::NotLoggedIn {
                profile: upstream.auth.clone(),
                message: "the stored token cannot be sent; log in again".into(),
            }
        })?;
    if let Some(len) = content_length(parts) {
        if len > limits.max_request_body {
            return Err(ProxyError::BodyTooLarge {
                limit: limits.max_request_body,
            });
        }
    }
    let client =
        generation
            .client(&upstream.name)
            .ok_or_else(|| ProxyError::UpstreamUnreachable {
                upstream: upstream.name.clone(),
            })?;
    let body_too_large = Arc::new(AtomicBool::new(false));
    let request = client
        .request(parts.method.clone(), target)
        .headers(out_headers)
        .body(reqwest::Body::wrap(RequestBody::new(
            body,
            limits.max_request_body,
            body_too_large.clone(),
        )));
    let sent = tokio::time::timeout(limits.response_header_timeout, request.send()).await;
    let upstream_response = match sent {
        Err(_) => {
            return Err(ProxyError::UpstreamTimeout {
                upstream: upstream.name.clone(),
            })
        }
        Ok(Err(_)) if body_too_large.load(Ordering::Relaxed) => {
            return Err(ProxyError::BodyTooLarge {
                limit: limits.max_request_body,
            })
        }
        Ok(Err(e)) => {
            // Without the URL: it would carry the query string into the log.
            tracing::warn!(upstream = %upstream.name, error = %error_chain(&e.without_url()), "upstream request failed");
            return Err(ProxyError::UpstreamUnreachable {
                upstream: upstream.name.clone(),
            });
        }
        Ok(Ok(r)) => r,
    };
    // 6. Respond.
    shared
        .metrics
        .upstream_latency(&upstream.name, started.elapsed());
    tracing::info!(
        client = %peer.addr,
        upstream = %upstream.name,
        server = %trace.server,
        method = %parts.method,
        path = %local,
        status = upstream_response.status().as_u16(),
        decision = "allowed",
        latency_ms = started.elapsed().as_millis() as u64,
        "proxied"
    );
    Ok(respond(
        shared,
        generation,
        upstream,
        parts,
        upstream_response,
    ))
}

/// Paths the proxy answers itself whatever is mounted: the OAuth redirect target, and OAuth
/// discovery documents (a local app must never discover the upstream's authorization server).
fn reserved(local: &str) -> Result<(), ProxyError> {
    if local == "/callback" || local.starts_with("/callback/") {
        return Err(ProxyError::Reserved("no login is waiting for a callback"));
    }
    let mut segments = local.split('/');
    while let Some(seg) = segments.next() {
        if seg == ".well-known" {
            if let Some(next) = segments.next() {
                if next.starts_with("oauth-") || next == "openid-configuration" {
                    return Err(ProxyError::Reserved(
                        "authorization is handled by the proxy; use `mcpproxyctl login`",
                    ));
                }
            }
        }
    }
    Ok(())
}

fn content_length(parts: &Parts) -> Option<u64> {
    parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// The upstream URL: the mount replaced by the upstream URL's path, the query as received.
fn target_url(upstream: &Upstream, parts: &Parts) -> Result<url::Url, ProxyError> {
    let local = parts.uri.path();
    let upstream_path = path::to_upstream(&upstream.mount, &upstream.base_path, local);
    let mut url = upstream.url.clone();
    url.set_path(&upstream_path);
    url.set_query(parts.uri.query());
    // Normal form means the URL parser has nothing to change; if it did, refuse.
    if url.path() != upstream_path {
        return Err(ProxyError::BadPath(path::PathError::Character('%')));
    }
    Ok(url)
}

fn preflight(origin: &str, parts: &Parts) -> Response<ProxyBody> {
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    *response.headers_mut() =
        guard::preflight_headers(origin, parts.headers.get("access-control-request-headers"));
    response
}

fn respond(
    shared: &Shared,
    generation: &Generation,
    upstream: &Upstream,
    parts: &Parts,
    upstream_response: reqwest::Response,
) -> Response<ProxyBody> {
    let response: Response<reqwest::Body> = upstream_response.into();
    let (mut head, upstream_body) = response.into_parts();
    head.headers = headers::response_headers(&head.headers);
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
        let map = EndpointMap {
            upstream_origin: upstream.url.origin().ascii_serialization(),
            upstream_base: upstream.base_path.clone(),
            mount: upstream.mount.clone(),
            proxy_origin: proxy_origin(parts),
        };
        let guard = StreamGuard::new(shared.counters.open_streams.clone());
        (Some(Rewriter::new(map)), Some(guard))
    } else {
        (None, None)
    };
    let idle = generation.config.limits.stream_idle_timeout;
    let body = ResponseBody::new(upstream_body, idle, rewriter, stream).boxed();
    Response::from_parts(head, body)
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

/// The error and its causes on one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_paths() {
        assert!(reserved("/callback").is_err());
        assert!(reserved("/callback/x").is_err());
        assert!(reserved("/.well-known/oauth-protected-resource").is_err());
        assert!(reserved("/.well-known/oauth-authorization-server/x").is_err());
        assert!(reserved("/.well-known/openid-configuration").is_err());
        assert!(reserved("/gh/.well-known/oauth-protected-resource").is_err());
        assert!(reserved("/callbacks").is_ok());
        assert!(reserved("/x/callback").is_ok());
        assert!(reserved("/.well-known/other").is_ok());
        assert!(reserved("/mcp").is_ok());
    }
}
