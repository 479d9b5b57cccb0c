//! The request pipeline, one pass in this order: guard → path and route → ACL → token →
//! forward → respond. Each step is one function; the proxy's own answers are [`ProxyError`]s.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::auth::tokens::TokenState;
use crate::config::Upstream;
use crate::proxy::body::{self, ProxyBody, ResponseBody, StreamGuard};
use crate::proxy::error::ProxyError;
use crate::proxy::forward::{self, OutBody};
use crate::proxy::guard;
use crate::proxy::headers;
use crate::proxy::path;
use crate::proxy::sse::{EndpointMap, Rewriter};
use crate::state::{Generation, Shared};

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
    if local == "/callback" {
        return Ok(callback(shared, parts).await);
    }
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
    let lease = shared.tokens.current(&upstream.auth).await;
    let token = match lease.state {
        TokenState::Token(t) => t,
        TokenState::NeedsLogin(message) => {
            return Err(ProxyError::NotLoggedIn {
                profile: upstream.auth.clone(),
                message,
            })
        }
        TokenState::Unavailable(message) => {
            return Err(ProxyError::TokenUnavailable {
                profile: upstream.auth.clone(),
                message,
            })
        }
    };
    // 5. Forward.
    let started = Instant::now();
    let limits = &generation.config.limits;
    let target = target_url(upstream, parts)?;
    let client =
        generation
            .client(&upstream.name)
            .ok_or_else(|| ProxyError::UpstreamUnreachable {
                upstream: upstream.name.clone(),
            })?;
    let mut out = OutBody::new(parts, body, limits).await?;
    let mut upstream_response = forward::send(
        client,
        upstream,
        parts,
        target.clone(),
        &token,
        &mut out,
        limits,
    )
    .await?;
    if upstream_response.status() == StatusCode::UNAUTHORIZED && out.kept().is_some() {
        // The token may have been revoked or expired early: one forced refresh, one retry.
        if let Some(fresh) = shared
            .tokens
            .after_unauthorized(&upstream.auth, &token)
            .await
        {
            tracing::info!(upstream = %upstream.name, "upstream answered 401; retrying once with a refreshed token");
            upstream_response =
                forward::send(client, upstream, parts, target, &fresh, &mut out, limits).await?;
        }
    }
    if upstream_response.status() == StatusCode::FORBIDDEN {
        crate::proxy::step_up::check(shared, upstream, &out, upstream_response.headers())?;
    }
    // 6. Respond.
    shared
        .metrics
        .upstream_latency(&upstream.name, started.elapsed());
    let rpc = if generation.config.log.audit_rpc && parts.method == Method::POST {
        out.rpc_info()
    } else {
        Default::default()
    };
    tracing::info!(
        client = %peer.addr,
        upstream = %upstream.name,
        server = %trace.server,
        profile = %upstream.auth,
        method = %parts.method,
        path = %local,
        status = upstream_response.status().as_u16(),
        decision = "allowed",
        rpc_method = rpc.method.as_deref(),
        tool = rpc.tool.as_deref(),
        latency_ms = started.elapsed().as_millis() as u64,
        "proxied"
    );
    Ok(respond(
        shared,
        generation,
        upstream,
        parts,
        upstream_response,
        lease.streams,
    ))
}

/// Paths the proxy answers itself whatever is mounted: the OAuth redirect target, and OAuth
/// discovery documents (a local app must never discover the upstream's authorization server).
fn reserved(local: &str) -> Result<(), ProxyError> {
    if local.starts_with("/callback/") {
        return Err(ProxyError::Reserved("the login callback is /callback"));
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
    revoked: Option<tokio_util::sync::CancellationToken>,
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

/// The OAuth redirect: finishes the pending login its `state` names. The page never shows the
/// code, and is neither cached nor sent on as a referrer.
async fn callback(shared: &Shared, parts: &Parts) -> Response<ProxyBody> {
    let query = parts.uri.query().unwrap_or("");
    let result = shared.logins.callback(&shared.tokens, query).await;
    let (status, html) = crate::auth::login::callback_page(&result);
    let mut response = Response::new(body::full(html));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let h = response.headers_mut();
    h.insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    h.insert(
        "referrer-policy",
        http::HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_paths() {
        assert!(
            reserved("/callback").is_ok(),
            "answered by the login, not refused"
        );
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
