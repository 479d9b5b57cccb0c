//! An upstream `403` with `WWW-Authenticate: Bearer error="insufficient_scope"`: the scopes it
//! names are recorded for the profile's next login (see [`crate::auth::step_up`]) and the client
//! is told, as a JSON-RPC error for its request when it sent one, that `mcpproxyctl login` must
//! grant more. The upstream's challenge itself never reaches the client.

use http::HeaderMap;

use crate::auth::step_up::{insufficient_scope, Challenged};
use crate::config::Upstream;
use crate::proxy::error::ProxyError;
use crate::proxy::forward::OutBody;
use crate::state::Shared;

/// `Err` when the upstream's 403 asked for more scopes; `Ok` for any other 403.
pub fn check(
    shared: &Shared,
    upstream: &Upstream,
    out: &OutBody,
    headers: &HeaderMap,
) -> Result<(), ProxyError> {
    let Some(asked) = headers
        .get_all(http::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(insufficient_scope)
    else {
        return Ok(());
    };
    let profile = &upstream.auth;
    let Some(challenged) = shared.tokens.insufficient_scope(profile, &asked) else {
        return Ok(());
    };
    let message = match &challenged {
        Challenged::LoginNeeded { scopes } => format!(
            "the upstream `{}` needs more scopes than the login of profile `{profile}` granted: \
             run `mcpproxyctl login --profile {profile}` to grant `{}`",
            upstream.name,
            scopes.join(" ")
        ),
        Challenged::GivenUp { scopes } => format!(
            "the upstream `{}` keeps refusing scopes the token of profile `{profile}` already \
             holds (`{}`); a new login will not help: check the server's configuration",
            upstream.name,
            scopes.join(" ")
        ),
    };
    Err(ProxyError::InsufficientScope {
        profile: profile.clone(),
        scopes: match challenged {
            Challenged::LoginNeeded { scopes } | Challenged::GivenUp { scopes } => scopes,
        },
        rpc_id: rpc_id(out),
        message,
    })
}

/// The `id` of a kept JSON-RPC request body, if it is one request with an id.
fn rpc_id(out: &OutBody) -> Option<serde_json::Value> {
    let body = out.kept()?;
    let value: serde_json::Value = serde_json::from_slice(&body).ok()?;
    value.get("id").filter(|id| !id.is_null()).cloned()
}
