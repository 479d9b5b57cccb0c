//! The request pipeline, one pass in this order: guard → path and route → ACL → tool policy →
//! token → forward → respond. Each step is one function (`guard_step`, `route_step`,
//! `acl_step`, `tool_policy::check`, `token_step`, `forward_step`, then `log_proxied` and
//! `respond`), called in order by `pipeline`; a step either hands the next one what it needs,
//! answers the request itself, or fails with a [`ProxyError`], the proxy's own answer.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use http::header::CONTENT_TYPE;
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::auth::tokens::TokenState;
use crate::config::Upstream;
use crate::proxy::body::{self, ProxyBody};
use crate::proxy::client_key;
use crate::proxy::error::ProxyError;
use crate::proxy::forward;
use crate::proxy::guard;
use crate::proxy::listener::ClientAddr;
use crate::proxy::path;
use crate::proxy::respond;
use crate::proxy::rpc_scan::RpcInfo;
use crate::proxy::tool_policy;
use crate::state::{Generation, Shared};

/// Per-connection facts a request needs.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub addr: ClientAddr,
    /// The TCP address the connection came in on; `None` on a Unix socket.
    pub local: Option<SocketAddr>,
}

/// What the pipeline learnt about a request, for logs and metrics; names borrowed from the
/// request's configuration generation.
#[derive(Debug, Default)]
struct Trace<'g> {
    origin: Option<String>,
    upstream: &'g str,
    server: &'g str,
    /// The client key's name, never the key.
    key: Option<crate::auth::client_keys::Authorized>,
}

impl Trace<'_> {
    fn key_name(&self) -> Option<&str> {
        self.key.as_ref().map(|k| k.name.as_str())
    }
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
                ProxyError::Guard(_)
                | ProxyError::BadPath(_)
                | ProxyError::BadTarget
                | ProxyError::ClientKey(_) => ("denied", code.to_string()),
                _ => ("error", String::new()),
            };
            if decision == "denied" {
                shared.counters.denied.fetch_add(1, Ordering::Relaxed);
                shared.metrics.denial(&rule);
            }
            tracing::warn!(
                client = %peer.addr,
                key = trace.key_name(),
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
        .request(trace.upstream, trace.server, response.status().as_u16());
    if let Some(key) = &trace.key {
        shared
            .metrics
            .key_request(&key.name, response.status().as_u16());
        response = client_key::bind_response(response, key);
    }
    tracing::debug!(
        client = %peer.addr,
        key = trace.key_name(),
        method = %method,
        path = %path_for_log,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_millis() as u64,
        "response headers sent"
    );
    Ok(response)
}

/// The path for logs: never the query, which can hold session ids and codes; every byte that
/// is not printable ASCII percent-encoded, so no control, line or bidi character reaches a log.
/// Escaped only when a line is written (the refusal and the debug line).
fn log_path(parts: &Parts) -> crate::control::logging::Escaped<'_> {
    crate::control::logging::Escaped::new(parts.uri.path(), 512)
}

async fn pipeline<'g>(
    shared: &Shared,
    generation: &'g Generation,
    peer: Peer,
    parts: &Parts,
    body: Incoming,
    trace: &mut Trace<'g>,
) -> Result<Response<ProxyBody>, ProxyError> {
    if let Some(answer) = guard_step(generation, peer, parts, trace)? {
        return Ok(answer);
    }
    let upstream = match route_step(shared, generation, peer, parts, trace).await? {
        Routed::To(upstream) => upstream,
        Routed::Answered(answer) => return Ok(answer),
    };
    acl_step(generation, parts, trace)?;
    let (body, policy) =
        match tool_policy::check(shared, generation, upstream, peer, parts, body).await? {
            tool_policy::Step::Answer(response) => return Ok(response),
            tool_policy::Step::Forward(body, policy) => (body, policy),
        };
    let (token, streams) = token_step(shared, upstream).await?;
    let mut left = Left {
        peer,
        key: trace.key_name(),
        upstream,
        server: trace.server,
        parts,
        started: Instant::now(),
        metrics: &shared.metrics,
        policy: &policy,
        rpc: None,
        armed: true,
    };
    let forwarded = forward_step(shared, generation, body, &token, trace, &mut left).await;
    let scanned = left.disarm();
    let mut forwarded = forwarded?;
    let rpc = log_proxied(
        generation,
        peer,
        upstream,
        parts,
        trace,
        &mut forwarded,
        scanned,
    );
    let response = respond::respond(
        shared,
        generation,
        upstream,
        parts,
        forwarded.response,
        streams,
    );
    Ok(tool_policy::respond(shared, policy, parts, &rpc, response))
}

/// Step 1, the guard: `Host` and `Origin` (as the listener the request came in on accepts
/// them), the methods MCP uses; answers CORS preflights of allowed origins itself.
fn guard_step(
    generation: &Generation,
    peer: Peer,
    parts: &Parts,
    trace: &mut Trace<'_>,
) -> Result<Option<Response<ProxyBody>>, ProxyError> {
    trace.origin = generation.guard_for(peer.local).check(parts)?;
    if parts.method == Method::CONNECT {
        return Err(ProxyError::BadTarget);
    }
    // Only what the MCP transports use: a TRACE answered by the upstream (or anything between)
    // would echo the proxy's `Authorization` back to the client.
    if !matches!(
        parts.method,
        Method::GET | Method::POST | Method::DELETE | Method::HEAD | Method::OPTIONS
    ) {
        return Err(ProxyError::MethodNotAllowed(parts.method.clone()));
    }
    if let Some(origin) = &trace.origin {
        if parts.method == Method::OPTIONS
            && parts.headers.contains_key("access-control-request-method")
        {
            return Ok(Some(preflight(origin, parts)));
        }
    }
    Ok(None)
}

/// Where step 2 sends a request.
enum Routed<'g> {
    To(&'g Upstream),
    /// The proxy's own path (the login callback), answered.
    Answered(Response<ProxyBody>),
}

/// Step 2, path and route: the normal-form check, the proxy's own paths, the client key where
/// the listener requires one, the upstream whose mount holds the path.
async fn route_step<'g>(
    shared: &Shared,
    generation: &'g Generation,
    peer: Peer,
    parts: &Parts,
    trace: &mut Trace<'g>,
) -> Result<Routed<'g>, ProxyError> {
    let local = parts.uri.path();
    path::check_normal(local).map_err(ProxyError::BadPath)?;
    if local == "/callback" {
        // Boxed: a login's state is large and rare; inline it would size every request's future.
        return Ok(Routed::Answered(Box::pin(callback(shared, parts)).await));
    }
    trace.key = client_key::step(shared, generation, peer.local, parts)?;
    reserved(local)?;
    let upstream = generation.route(local).ok_or(ProxyError::NoRoute)?;
    trace.upstream = &upstream.name;
    trace.server = generation
        .catalog
        .server_for(local)
        .map_or("", |s| s.name.as_str());
    Ok(Routed::To(upstream))
}

/// Step 3, the ACL, then the client key's own server scope (never wider than the ACL).
fn acl_step(generation: &Generation, parts: &Parts, trace: &Trace<'_>) -> Result<(), ProxyError> {
    let local = parts.uri.path();
    let decision = generation.acl.check(local);
    if !decision.is_allowed() {
        return Err(ProxyError::Denied(decision));
    }
    client_key::check_servers(trace.key.as_ref(), generation, local)?;
    Ok(())
}

/// Step 4, the token: the profile's current access token, and the signal that ends streams
/// when it is revoked.
async fn token_step(
    shared: &Shared,
    upstream: &Upstream,
) -> Result<(SecretString, Option<CancellationToken>), ProxyError> {
    let lease = shared.tokens.current(&upstream.auth).await;
    match lease.state {
        TokenState::Token(t) => Ok((t, lease.streams)),
        TokenState::NeedsLogin(message) => Err(ProxyError::NotLoggedIn {
            profile: upstream.auth.clone(),
            message,
        }),
        TokenState::Unavailable(message) => Err(ProxyError::TokenUnavailable {
            profile: upstream.auth.clone(),
            message,
        }),
    }
}

/// What step 5 brought back.
struct Forwarded {
    response: Response<forward::UpstreamBody>,
    body: forward::OutBody,
    started: Instant,
}

/// Step 5, forward: the request sent upstream; after an upstream 401, one forced refresh and
/// one retry when the body was small enough to keep. A kept body's JSON-RPC scan goes to
/// `left` before the request is sent, for its record if the client leaves meanwhile.
async fn forward_step(
    shared: &Shared,
    generation: &Generation,
    body: tool_policy::PolicyBody,
    token: &SecretString,
    trace: &Trace<'_>,
    left: &mut Left<'_>,
) -> Result<Forwarded, ProxyError> {
    let (upstream, parts) = (left.upstream, left.parts);
    let started = Instant::now();
    let limits = &generation.config.limits;
    let target = forward::upstream_target(upstream, parts)?;
    let forwarder =
        generation
            .forwarder(&upstream.name)
            .ok_or_else(|| ProxyError::UpstreamUnreachable {
                upstream: upstream.name.clone(),
            })?;
    let mut out = body.into_out(parts, limits).await?;
    client_key::check_tool(trace.key.as_ref(), parts, &out)?;
    if matches!(out, forward::OutBody::Kept(..)) && audits_rpc(generation, parts) {
        left.rpc = Some(out.take_rpc_info());
    }
    let mut response =
        forward::send(forwarder, upstream, parts, &target, token, &mut out, limits).await?;
    if response.status() == StatusCode::UNAUTHORIZED && out.kept().is_some() {
        // The token may have been revoked or expired early: one forced refresh, one retry.
        // Boxed, as a refresh is rare: inline it would size every request's future.
        let after = Box::pin(shared.tokens.after_unauthorized(&upstream.auth, token)).await;
        let after = after.map_err(|message| ProxyError::NotLoggedIn {
            profile: upstream.auth.clone(),
            message,
        })?;
        if let Some(fresh) = after {
            tracing::info!(upstream = %upstream.name, "upstream answered 401; retrying once with a refreshed token");
            response = forward::send(
                forwarder, upstream, parts, &target, &fresh, &mut out, limits,
            )
            .await?;
        }
    }
    if response.status() == StatusCode::FORBIDDEN {
        crate::proxy::step_up::check(shared, upstream, &out, response.headers())?;
    }
    shared
        .metrics
        .upstream_latency(&upstream.name, started.elapsed());
    Ok(Forwarded {
        response,
        body: out,
        started,
    })
}

/// The audit line of a forwarded request whose client left before the upstream's answer
/// (nginx's 499), and the records of its tool calls (outcome `unknown`): hyper drops the
/// pipeline with the connection, so they are written when this is dropped mid-forward, and
/// not once the forward step has returned (`disarm`). The request has gone to the
/// upstream, which may act on it; without them it would leave no trace.
struct Left<'a> {
    peer: Peer,
    key: Option<&'a str>,
    upstream: &'a Upstream,
    server: &'a str,
    parts: &'a Parts,
    started: Instant,
    metrics: &'a crate::control::metrics::Metrics,
    policy: &'a tool_policy::PolicyContext<'a>,
    /// The JSON-RPC scan of a kept body, once the forward step made it.
    rpc: Option<RpcInfo>,
    armed: bool,
}

impl Left<'_> {
    /// The forward step returned: nothing is written; what it scanned is handed on.
    fn disarm(mut self) -> Option<RpcInfo> {
        self.armed = false;
        self.rpc.take()
    }
}

impl Drop for Left<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let rpc = self.rpc.take().unwrap_or_default();
        tracing::info!(
            client = %self.peer.addr,
            key = self.key,
            upstream = %self.upstream.name,
            server = %self.server,
            profile = %self.upstream.auth,
            method = %self.parts.method,
            path = %self.parts.uri.path(),
            decision = "allowed",
            rpc_method = rpc.method.as_deref(),
            tool = rpc.tool.as_deref(),
            latency_ms = self.started.elapsed().as_millis() as u64,
            "the client left before the upstream answered"
        );
        tool_policy::unanswered(self.metrics, self.policy, self.parts, &rpc);
    }
}

/// Whether a request's JSON-RPC method and tool go in its audit line (`[log] audit_rpc`; only
/// a POST carries a JSON-RPC body).
fn audits_rpc(generation: &Generation, parts: &Parts) -> bool {
    generation.config.log.audit_rpc && parts.method == Method::POST
}

/// Step 6 begins with the audit line of a forwarded request; returns what the JSON-RPC scan
/// of its body found, for the tool policy's view of the response.
fn log_proxied(
    generation: &Generation,
    peer: Peer,
    upstream: &Upstream,
    parts: &Parts,
    trace: &Trace<'_>,
    forwarded: &mut Forwarded,
    scanned: Option<RpcInfo>,
) -> RpcInfo {
    let rpc = match scanned {
        Some(rpc) => rpc,
        None if audits_rpc(generation, parts) => forwarded.body.take_rpc_info(),
        None => Default::default(),
    };
    tracing::info!(
        client = %peer.addr,
        key = trace.key_name(),
        upstream = %upstream.name,
        server = %trace.server,
        profile = %upstream.auth,
        method = %parts.method,
        path = %parts.uri.path(),
        status = forwarded.response.status().as_u16(),
        decision = "allowed",
        rpc_method = rpc.method.as_deref(),
        tool = rpc.tool.as_deref(),
        latency_ms = forwarded.started.elapsed().as_millis() as u64,
        "proxied"
    );
    rpc
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

fn preflight(origin: &str, parts: &Parts) -> Response<ProxyBody> {
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    *response.headers_mut() =
        guard::preflight_headers(origin, parts.headers.get("access-control-request-headers"));
    response
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
#[path = "pipeline_tests.rs"]
mod tests;
