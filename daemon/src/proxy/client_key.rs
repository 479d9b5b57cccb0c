//! The client-key part of the guard step: on listeners that require keys (`[listen]
//! require_client_keys`), and wherever a client presents one, the request's
//! `Authorization: Bearer mcpp_…` must name a usable key whose scope covers the server and
//! the tool. The header never goes further: the forward step replaces `Authorization` with
//! the upstream's token. `/callback` is exempt (the login's `state` protects it).
//!
//! Tool scopes are checked here for `tools/call` bodies small enough to be kept in memory
//! (up to `limits.retry_body_limit`); a key with a tool scope may not send a larger body,
//! nor a JSON-RPC batch, which this cheap check cannot read whole.

use std::future::Future as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::Response;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::auth::client_keys::{secret, Authorized, ClientKeys, Presented, Refusal};
use crate::config::AclConfig;
use crate::proxy::acl::Acl;
use crate::proxy::body::{BoxError, ProxyBody};
use crate::proxy::error::ProxyError;
use crate::proxy::forward::OutBody;
use crate::state::{Generation, Shared};

/// The guard's key step for a request on the listener at `local` (`None`: a Unix socket):
/// the key, if one was needed or sent; now and then the keys' last use is saved.
pub fn step(
    shared: &Shared,
    generation: &Generation,
    local: Option<SocketAddr>,
    parts: &Parts,
) -> Result<Option<Authorized>, ProxyError> {
    let required = generation
        .config
        .listen
        .require_client_keys
        .applies_to(local);
    let now = crate::clock::now();
    let key = authenticate(&shared.keys, required, parts, now)?;
    if key.is_some() && shared.keys.flush_due(now) {
        let keys = shared.keys.clone();
        tokio::task::spawn_blocking(move || keys.flush(now));
    }
    Ok(key)
}

/// Checks the request's key: `Ok(None)` when none is needed and none was sent.
pub fn authenticate(
    keys: &ClientKeys,
    required: bool,
    parts: &Parts,
    now: u64,
) -> Result<Option<Authorized>, ProxyError> {
    let values = parts
        .headers
        .get_all(http::header::AUTHORIZATION)
        .iter()
        .map(|v| v.as_bytes());
    match secret::presented(values) {
        Presented::None if required => Err(ProxyError::ClientKey(Refusal::Missing)),
        Presented::None => Ok(None),
        Presented::Malformed => Err(ProxyError::ClientKey(Refusal::Malformed)),
        Presented::Key(hash) => keys
            .authenticate(&hash, now)
            .map(Some)
            .map_err(ProxyError::ClientKey),
    }
}

/// The key's server scope (names, IDs or path prefixes, as in the ACL) covers `local`.
pub fn check_servers(
    key: Option<&Authorized>,
    generation: &Generation,
    local: &str,
) -> Result<(), ProxyError> {
    let Some(key) = key.filter(|k| !k.servers.is_empty()) else {
        return Ok(());
    };
    let scope = AclConfig {
        allowed: key.servers.clone(),
        blocked: Vec::new(),
    };
    if Acl::new(&scope, &generation.catalog)
        .check(local)
        .is_allowed()
    {
        return Ok(());
    }
    Err(ProxyError::ClientKey(Refusal::OutOfScope {
        key: key.name.clone(),
        what: "this server".into(),
    }))
}

/// The key's tool scope covers the `tools/call` in the body (see the module doc).
pub fn check_tool(
    key: Option<&Authorized>,
    parts: &Parts,
    body: &OutBody,
) -> Result<(), ProxyError> {
    let Some(key) = key.filter(|k| !k.tools.is_empty()) else {
        return Ok(());
    };
    if parts.method != http::Method::POST {
        return Ok(());
    }
    let refuse = |what: String| {
        Err(ProxyError::ClientKey(Refusal::OutOfScope {
            key: key.name.clone(),
            what,
        }))
    };
    let (Some(kept), Some(rpc)) = (body.kept(), body.kept_rpc_info()) else {
        return refuse(
            "request bodies over limits.retry_body_limit (the tool cannot be checked)".into(),
        );
    };
    if kept.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return refuse("JSON-RPC batches (the tools cannot be checked)".into());
    }
    // The scan is remembered for the audit line.
    if rpc.method.as_deref() != Some("tools/call") {
        return Ok(());
    }
    match rpc.tool.as_deref() {
        Some(tool)
            if key
                .tools
                .iter()
                .any(|g| crate::auth::client_keys::record::glob(g, tool)) =>
        {
            Ok(())
        }
        Some(tool) => refuse(format!("tool `{tool}`")),
        None => refuse("a tools/call whose tool name cannot be read".into()),
    }
}

/// Ends the response body (an event stream, say) when the key is revoked.
pub fn bind_response(response: Response<ProxyBody>, key: &Authorized) -> Response<ProxyBody> {
    let revoked = Box::pin(key.streams.clone().cancelled_owned());
    response.map(|inner| KeyedBody { inner, revoked }.boxed())
}

/// The key of this stream was revoked.
#[derive(Debug, thiserror::Error)]
#[error("the client key of this stream was revoked")]
pub struct KeyRevoked;

struct KeyedBody {
    inner: ProxyBody,
    revoked: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl Body for KeyedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.revoked.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(KeyRevoked))));
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What a refused client is told: the reason, and how to get a key.
pub fn message(r: &Refusal) -> String {
    let how = "ask the operator for a client key (`mcpproxyctl keys add NAME`) and send it as \
               `Authorization: Bearer mcpp_...`";
    match r {
        Refusal::Missing => format!("this listener requires a client key; {how}"),
        Refusal::Malformed => format!("the client key is malformed; {how}"),
        Refusal::Unknown => format!("the client key is not valid; {how}"),
        Refusal::Revoked(name) => format!("the client key `{name}` was revoked; {how}"),
        Refusal::Expired(name) => format!("the client key `{name}` has expired; {how}"),
        Refusal::OutOfScope { key, what } => format!(
            "the client key `{key}` does not cover {what}; ask the operator for a key whose \
             scope does (`mcpproxyctl keys add NAME --servers ... --tools ...`)"
        ),
    }
}

/// The stable code of each refusal.
pub fn code(r: &Refusal) -> &'static str {
    match r {
        Refusal::Missing => "client_key_required",
        Refusal::Malformed | Refusal::Unknown => "client_key_invalid",
        Refusal::Revoked(_) => "client_key_revoked",
        Refusal::Expired(_) => "client_key_expired",
        Refusal::OutOfScope { .. } => "client_key_out_of_scope",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn parts(auth: Option<&str>, body_method: http::Method) -> Parts {
        let mut b = Request::builder().method(body_method).uri("/mcp");
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn authorized(servers: &[&str], tools: &[&str]) -> Authorized {
        Authorized {
            name: "k".into(),
            servers: servers.iter().map(|s| s.to_string()).collect(),
            tools: tools.iter().map(|s| s.to_string()).collect(),
            streams: Default::default(),
        }
    }

    #[test]
    fn a_required_key_must_be_present_and_valid() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ClientKeys::open(dir.path());
        let (key, _) = keys.add("dify", vec![], vec![], None, 1).unwrap();
        let good = format!("Bearer {}", secret::reveal(&key));
        let get = http::Method::GET;
        let refusal = |r: Result<Option<Authorized>, ProxyError>| match r {
            Err(ProxyError::ClientKey(r)) => r,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            refusal(authenticate(&keys, true, &parts(None, get.clone()), 2)),
            Refusal::Missing
        );
        assert_eq!(
            refusal(authenticate(
                &keys,
                true,
                &parts(Some("Bearer app"), get.clone()),
                2
            )),
            Refusal::Missing
        );
        let wrong = format!("Bearer mcpp_{}", "A".repeat(43));
        assert_eq!(
            refusal(authenticate(
                &keys,
                false,
                &parts(Some(&wrong), get.clone()),
                2
            )),
            Refusal::Unknown,
            "a presented key is checked even where none is required"
        );
        let ok = authenticate(&keys, true, &parts(Some(&good), get.clone()), 2).unwrap();
        assert_eq!(ok.unwrap().name, "dify");
        assert!(authenticate(&keys, false, &parts(None, get), 2)
            .unwrap()
            .is_none());
    }

    #[test]
    fn tool_scope_reads_kept_tools_call_bodies() {
        let post = http::Method::POST;
        let key = authorized(&[], &["echo", "Describe*"]);
        let call = |name: &str| {
            OutBody::from_bytes(Bytes::from(format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{name}"}}}}"#
            )))
        };
        let p = parts(None, post.clone());
        assert!(check_tool(Some(&key), &p, &call("echo")).is_ok());
        assert!(check_tool(Some(&key), &p, &call("DescribeRegions")).is_ok());
        assert!(check_tool(Some(&key), &p, &call("add")).is_err());
        let list = OutBody::from_bytes(Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        ));
        assert!(check_tool(Some(&key), &p, &list).is_ok());
        let batch = OutBody::from_bytes(Bytes::from_static(br#" [{"method":"tools/call"}]"#));
        assert!(check_tool(Some(&key), &p, &batch).is_err());
        // No tool scope, or no key: nothing to check.
        assert!(check_tool(Some(&authorized(&[], &[])), &p, &call("add")).is_ok());
        assert!(check_tool(None, &p, &call("add")).is_ok());
    }

    #[test]
    fn messages_say_how_to_get_a_key() {
        for r in [
            Refusal::Missing,
            Refusal::Malformed,
            Refusal::Unknown,
            Refusal::Revoked("a".into()),
            Refusal::Expired("a".into()),
        ] {
            assert!(message(&r).contains("mcpproxyctl keys add"), "{r:?}");
            assert!(code(&r).starts_with("client_key_"));
        }
    }
}
