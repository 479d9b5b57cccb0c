//! Step 3b of the pipeline, after the ACL: tool policy. For a server that no `[[policy]]`
//! names, the request body streams on untouched. Otherwise a POST body is read whole (up to
//! `limits.max_request_body`) and decided on: not JSON-RPC, or a shape another parser could
//! read differently (see [`crate::proxy::jsonrpc`]), is 400; `Mcp-Method`/`Mcp-Name`
//! headers that disagree with the body are 400 `HeaderMismatch`; a `tools/call` of a denied tool is answered by the
//! proxy with a JSON-RPC error ([`DENIED_CODE`]) and never reaches the upstream. On the way
//! back, `tools/list` results are filtered ([`crate::proxy::tool_filter`]) and tool call
//! outcomes audited ([`crate::proxy::tool_audit`]).

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::config::{Limits, Upstream};
use crate::control::metrics::Metrics;
use crate::control::tool_metrics::Outcome;
use crate::proxy::body::{self, FaultCell, ProxyBody, RequestBody};
use crate::proxy::error::ProxyError;
use crate::proxy::forward::{self, OutBody};
use crate::proxy::jsonrpc::{self, Message, RpcBody, RpcRefusal};
use crate::proxy::pipeline::Peer;
use crate::proxy::policy::{ServerPolicy, ToolDecision};
use crate::proxy::rpc_scan::RpcInfo;
use crate::proxy::tool_audit::{self, Audited, CallRecord};
use crate::proxy::tool_filter::{JsonFiltered, SseFiltered};
use crate::proxy::tool_reply::{error_object, headers_agree, rpc_error, rpc_response};
use crate::state::{Generation, Shared};

/// The JSON-RPC error code of a tool call refused by policy. JSON-RPC leaves -32000 to -32099
/// to implementations; MCP uses -32000, -32001, -32002, -32020 and -32042 of them, and its
/// SDKs none near this one.
pub const DENIED_CODE: i64 = -32050;
/// The 2026-07-28 MCP revision's code for headers that disagree with the body (HTTP 400).
pub const HEADER_MISMATCH_CODE: i64 = -32020;
/// JSON-RPC's own codes for what is not a request the proxy will decide on.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;

/// The request body after the policy step.
pub enum PolicyBody {
    /// No policy applies: it streams as before.
    Untouched(Incoming),
    /// Read whole and checked.
    Read(Bytes),
}

impl PolicyBody {
    /// The body to forward (step 5).
    pub async fn into_out(self, parts: &Parts, limits: &Limits) -> Result<OutBody, ProxyError> {
        match self {
            PolicyBody::Untouched(b) => OutBody::new(parts, b, limits).await,
            PolicyBody::Read(bytes) => Ok(OutBody::from_bytes(bytes)),
        }
    }
}

/// What the response needs from the request (names borrowed from the configuration generation).
#[derive(Debug, Default)]
pub struct PolicyContext<'g> {
    /// The policies of the server, if any apply.
    policy: Option<ServerPolicy>,
    upstream: &'g str,
    server: &'g str,
    /// Tool calls of a policy server's body (exact); `None`: scan the prefix (no policy).
    calls: Option<Vec<Message>>,
    /// The body asks for `tools/list`.
    lists: bool,
}

/// The outcome of the step.
pub enum Step<'g> {
    /// The proxy answers itself.
    Answer(Response<ProxyBody>),
    Forward(PolicyBody, PolicyContext<'g>),
}

/// Decides a request routed to `upstream` (after the ACL allowed it).
pub async fn check<'g>(
    shared: &Shared,
    generation: &'g Generation,
    upstream: &'g Upstream,
    peer: Peer,
    parts: &Parts,
    body: Incoming,
) -> Result<Step<'g>, ProxyError> {
    let server = generation.catalog.server_for(parts.uri.path());
    let mut ctx = PolicyContext {
        upstream: &upstream.name,
        server: server.map_or("", |s| s.name.as_str()),
        ..Default::default()
    };
    let Some(policy) = server_policy(generation, upstream, server) else {
        return Ok(Step::Forward(PolicyBody::Untouched(body), ctx));
    };
    ctx.policy = Some(policy.clone());
    if parts.method != Method::POST {
        return Ok(Step::Forward(PolicyBody::Untouched(body), ctx));
    }
    let bytes = read_whole(parts, body, &generation.config.limits).await?;
    let refuse = |status, code, rule: &str, id: Option<&Value>, message: String| {
        log_refusal(shared, peer, parts, &ctx, rule, None, &message);
        Step::Answer(rpc_error(parts, status, code, id, &message, None))
    };
    let rpc = match jsonrpc::inspect(&bytes) {
        Ok(rpc) => rpc,
        Err(e) => {
            let code = match e {
                RpcRefusal::Parse(_) => PARSE_ERROR,
                _ => INVALID_REQUEST,
            };
            let message = format!("refused by tool policy: {e}");
            return Ok(refuse(
                StatusCode::BAD_REQUEST,
                code,
                "tool_policy:bad_rpc",
                None,
                message,
            ));
        }
    };
    if let Err(message) = headers_agree(parts, &rpc) {
        let id = first_id(&rpc);
        return Ok(refuse(
            StatusCode::BAD_REQUEST,
            HEADER_MISMATCH_CODE,
            "tool_policy:header_mismatch",
            id,
            message,
        ));
    }
    let decisions: Vec<ToolDecision> = rpc
        .messages
        .iter()
        .map(|m| match &m.tool {
            Some(tool) => policy.tool_allowed(tool),
            None => ToolDecision::Allowed,
        })
        .collect();
    if decisions.iter().any(|d| !d.is_allowed()) {
        return Ok(Step::Answer(deny(
            shared, peer, parts, &ctx, &rpc, &decisions,
        )));
    }
    ctx.lists = rpc.has_method("tools/list");
    ctx.calls = Some(
        rpc.messages
            .into_iter()
            .filter(|m| m.tool.is_some())
            .collect(),
    );
    Ok(Step::Forward(PolicyBody::Read(bytes), ctx))
}

/// The policies for a request to `server` (of `upstream`), or `None` when none applies. A path
/// of no catalogued server of an `alibaba` catalog is one the listing has not named yet: while
/// some policy names servers, its tool calls are denied rather than let through unchecked.
pub fn server_policy(
    generation: &Generation,
    upstream: &Upstream,
    server: Option<&crate::catalog::CatalogServer>,
) -> Option<ServerPolicy> {
    let applied = generation.policies.applied(&upstream.name, server);
    let unlisted = server.is_none()
        && upstream.catalog == crate::config::CatalogSource::Alibaba
        && generation.policies.names_servers();
    match (applied.any(), unlisted) {
        (false, false) => None,
        (_, false) => Some(applied.owned()),
        (_, true) => Some(applied.owned().unlisted()),
    }
}

/// The whole body, as every other body is read: at most `max_request_body` bytes, and a client
/// that pauses longer than `body_read_timeout` is dropped (408), never holding its slot.
async fn read_whole(parts: &Parts, body: Incoming, limits: &Limits) -> Result<Bytes, ProxyError> {
    let max = limits.max_request_body;
    let too_large = ProxyError::BodyTooLarge { limit: max };
    if forward::declared_length(parts)
        .or(body.size_hint().exact())
        .is_some_and(|n| n > max)
    {
        return Err(too_large);
    }
    let fault = std::sync::Arc::new(FaultCell::default());
    let timed = RequestBody::new(body, max, limits.body_read_timeout, fault.clone());
    match timed.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(_) => Err(forward::client_fault(fault.get(), limits).unwrap_or(ProxyError::BadBody)),
    }
}

fn first_id(rpc: &RpcBody) -> Option<&Value> {
    rpc.messages.iter().find_map(|m| m.id.as_ref())
}

/// The JSON-RPC error answer to a body with a denied tool call: each request of a batch gets
/// an error, the denied ones naming their policy.
fn deny(
    shared: &Shared,
    peer: Peer,
    parts: &Parts,
    ctx: &PolicyContext<'_>,
    rpc: &RpcBody,
    decisions: &[ToolDecision],
) -> Response<ProxyBody> {
    let mut answers = Vec::new();
    for (m, d) in rpc.messages.iter().zip(decisions) {
        let tool = m.tool.as_deref().unwrap_or_default();
        let message = match d {
            ToolDecision::Allowed => {
                "refused by tool policy: this batch also calls a denied tool".to_string()
            }
            denied => {
                let reason = denied.reason();
                log_refusal(
                    shared,
                    peer,
                    parts,
                    ctx,
                    &denied.rule(),
                    Some((m, tool)),
                    &reason,
                );
                shared
                    .metrics
                    .tools
                    .call(ctx.upstream, ctx.server, tool, Outcome::Denied);
                format!("tool `{}` {reason}", tool_audit::clean(tool))
            }
        };
        if let Some(id) = &m.id {
            let data = match d {
                ToolDecision::Denied { policy, reason } => {
                    Some(json!({ "policy": policy, "tool": tool, "reason": reason }))
                }
                ToolDecision::Allowed => None,
            };
            answers.push(error_object(Some(id), DENIED_CODE, &message, data));
        }
    }
    let answer = match (rpc.batch, answers.len()) {
        (_, 0) => {
            // Only notifications: nothing to answer, nothing forwarded.
            let mut r = Response::new(body::empty());
            *r.status_mut() = StatusCode::ACCEPTED;
            return r;
        }
        (false, _) => answers.remove(0),
        (true, _) => Value::Array(answers),
    };
    // A legacy HTTP+SSE client reads answers from its GET stream, not from the POST.
    let event = Bytes::from(format!("event: message\ndata: {answer}\n\n"));
    if shared
        .legacy_sessions
        .inject(parts.uri.path(), parts.uri.query(), event)
    {
        let mut r = Response::new(body::empty());
        *r.status_mut() = StatusCode::ACCEPTED;
        return r;
    }
    rpc_response(parts, StatusCode::OK, &answer)
}

fn log_refusal(
    shared: &Shared,
    peer: Peer,
    parts: &Parts,
    ctx: &PolicyContext<'_>,
    rule: &str,
    call: Option<(&Message, &str)>,
    reason: &str,
) {
    shared.counters.denied.fetch_add(1, Ordering::Relaxed);
    shared.metrics.denial(rule);
    let rpc_id = call.and_then(|(m, _)| m.id.as_ref()).map(id_text);
    tracing::warn!(
        client = %peer.addr,
        upstream = %ctx.upstream,
        server = %ctx.server,
        method = %parts.method,
        path = %parts.uri.path().chars().take(512).collect::<String>(),
        decision = "denied",
        rule = %rule,
        rpc_method = call.map(|_| "tools/call"),
        tool = call.map(|(_, t)| tool_audit::clean(t)),
        rpc_id,
        session = tool_audit::session_tag(parts).as_deref(),
        reason = %reason,
        "tool call refused"
    );
}

fn id_text(id: &Value) -> String {
    match id {
        Value::String(s) => tool_audit::clean(s),
        other => tool_audit::clean(&other.to_string()),
    }
}

/// Step 6's part: the response filtered (policy servers) and audited (tool calls).
pub fn respond(
    shared: &Shared,
    ctx: PolicyContext<'_>,
    parts: &Parts,
    rpc: &RpcInfo,
    response: Response<ProxyBody>,
) -> Response<ProxyBody> {
    let (mut head, mut body) = response.into_parts();
    let content_type = head
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map_or("", str::trim_start);
    let is_sse = starts_with_ignore_case(content_type, "text/event-stream");
    let is_json = starts_with_ignore_case(content_type, "application/json");
    if let Some(policy) = &ctx.policy {
        // GET streams (and the legacy transport's) may carry any response, even a resumed one.
        let get = parts.method == Method::GET;
        let filter = (is_sse && (ctx.lists || get)) || (is_json && ctx.lists);
        let encoded = head
            .headers
            .get(http::header::CONTENT_ENCODING)
            .is_some_and(|v| !v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity"));
        if filter && encoded {
            // A compressed answer cannot be filtered: fail closed rather than pass it on.
            let message = "the upstream compressed an answer the tool policy must filter; \
                           it was not passed on (send Accept-Encoding: identity)";
            tracing::warn!(upstream = %ctx.upstream, server = %ctx.server, "compressed answer refused by the tool policy");
            return rpc_error(parts, StatusCode::BAD_GATEWAY, -32603, None, message, None);
        }
        if is_sse && (ctx.lists || get) {
            let legacy =
                get.then(|| (shared.legacy_sessions.clone(), parts.uri.path().to_string()));
            body = SseFiltered::new(body, policy.clone(), legacy).boxed();
        } else if is_json && ctx.lists {
            head.headers.remove(http::header::CONTENT_LENGTH);
            body = JsonFiltered::new(body, policy.clone()).boxed();
        }
    }
    let calls = records(&ctx, parts, rpc);
    if !calls.is_empty() && (is_sse || is_json) {
        body = Audited::new(body, calls, shared.metrics.clone()).boxed();
    }
    Response::from_parts(head, body)
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// Counts and logs the tool calls of a request whose client left before the upstream
/// answered (outcome `unknown`), as their answer's end would have.
pub fn unanswered(metrics: &Metrics, ctx: &PolicyContext<'_>, parts: &Parts, rpc: &RpcInfo) {
    let calls = records(ctx, parts, rpc);
    tool_audit::record_unanswered(&calls, metrics);
}

fn records(ctx: &PolicyContext<'_>, parts: &Parts, rpc: &RpcInfo) -> Vec<CallRecord> {
    let is_call = ctx.calls.as_ref().is_some_and(|c| !c.is_empty())
        || rpc.method.as_deref() == Some("tools/call");
    if !is_call {
        return Vec::new();
    }
    // Hashed only for tool calls: other requests pay nothing for the audit.
    let session = tool_audit::session_tag(parts);
    let record = |tool: &str, rpc_id: Option<String>, batched| CallRecord {
        upstream: ctx.upstream.to_string(),
        server: ctx.server.to_string(),
        tool: tool_audit::clean(tool),
        rpc_id,
        session: session.clone(),
        batched,
    };
    match &ctx.calls {
        Some(calls) => {
            let batched = calls.len() > 1;
            calls
                .iter()
                .filter_map(|m| {
                    let tool = m.tool.as_deref()?;
                    Some(record(tool, m.id.as_ref().map(id_text), batched))
                })
                .collect()
        }
        None if parts.method == Method::POST && rpc.method.as_deref() == Some("tools/call") => {
            let Some(tool) = rpc.tool.as_deref() else {
                return Vec::new();
            };
            vec![record(tool, rpc.id.clone(), false)]
        }
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_str, Overrides, Source};

    fn generation(text: &str) -> Generation {
        let config = load_str(Source::Defaults, text, &Overrides::default()).unwrap();
        Generation::build(config, &[]).unwrap()
    }

    #[test]
    fn unlisted_paths_of_an_alibaba_catalog_fail_closed() {
        // The built-in Alibaba upstream, its catalog not listed yet.
        let g = generation("[[policy]]\nservers = [\"ecs\"]\nread_only = true\n");
        let up = &g.config.upstreams[0];
        let p = server_policy(&g, up, None).expect("a policy applies");
        assert_eq!(
            p.tool_allowed("DescribeInstances").rule(),
            "catalog:unlisted"
        );
        let star = generation("[[policy]]\nservers = [\"*\"]\nread_only = true\n");
        let p = server_policy(&star, &star.config.upstreams[0], None).unwrap();
        assert!(p.tool_allowed("DescribeInstances").is_allowed());
        assert!(!p.tool_allowed("DeleteInstance").is_allowed());
        let none = generation("");
        assert!(server_policy(&none, &none.config.upstreams[0], None).is_none());
    }
}
