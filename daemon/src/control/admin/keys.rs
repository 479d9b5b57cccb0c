//! Admin endpoints of client keys: `GET /v1/keys`, `POST /v1/keys` (the key is in this answer
//! and nowhere else), `POST /v1/keys/{name}/revoke`; and what status and `acl check --key`
//! show of them.

use std::sync::Arc;

use http::StatusCode;
use mcpproxyd_api::{self as api, codes};

use super::reply::{json, Failure};
use crate::auth::client_keys::{secret, ClientKeys, KeyRecord, KeysError, Unusable};
use crate::config::units::parse_duration;
use crate::state::Shared;

type Resp = http::Response<http_body_util::Full<bytes::Bytes>>;

/// The API view of a stored key at `now`.
pub fn info(k: &KeyRecord, now: u64) -> api::KeyInfo {
    api::KeyInfo {
        name: k.name.clone(),
        state: match k.usable(now) {
            Ok(()) => api::KeyState::Active,
            Err(Unusable::Expired) => api::KeyState::Expired,
            Err(Unusable::Revoked) => api::KeyState::Revoked,
        },
        servers: k.servers.clone(),
        tools: k.tools.clone(),
        created: k.created,
        last_used: k.last_used,
        expires_at: k.expires_at,
        revoked_at: k.revoked_at,
    }
}

fn failure(e: KeysError) -> Failure {
    let status = match e {
        KeysError::InvalidName(_) => StatusCode::BAD_REQUEST,
        KeysError::Exists(_) => StatusCode::CONFLICT,
        KeysError::Unknown(_) => StatusCode::NOT_FOUND,
        KeysError::Broken { .. } | KeysError::Write(_) | KeysError::Random(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    let code = match e {
        KeysError::InvalidName(_) => codes::BAD_REQUEST,
        KeysError::Exists(_) => "key_exists",
        KeysError::Unknown(_) => codes::NOT_FOUND,
        _ => codes::INTERNAL,
    };
    Failure(status, code, e.to_string())
}

pub fn list(shared: &Shared) -> Resp {
    let now = crate::clock::now();
    let keys = shared.keys.list().iter().map(|k| info(k, now)).collect();
    json(
        StatusCode::OK,
        &api::Keys {
            keys,
            file: shared.keys.path().display().to_string(),
        },
    )
}

/// Runs a blocking key-file operation off the async workers (it syncs to disk).
async fn blocking<T: Send + 'static>(
    keys: Arc<ClientKeys>,
    f: impl FnOnce(&ClientKeys) -> Result<T, KeysError> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(move || f(&keys))
        .await
        .map_err(|e| {
            Failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                codes::INTERNAL,
                e.to_string(),
            )
        })?
        .map_err(failure)
}

pub async fn add(shared: &Shared, req: api::KeyAdd) -> Result<Resp, Failure> {
    let bad = |m: String| Failure(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, m);
    let now = crate::clock::now();
    let expires_at = match req.expires.as_deref() {
        None => None,
        Some(text) => {
            let d = parse_duration(text).map_err(|m| bad(format!("expires: {m}")))?;
            if d.as_secs() == 0 {
                return Err(bad("expires: a key must live at least one second".into()));
            }
            Some(now.saturating_add(d.as_secs()))
        }
    };
    let clean = |list: Vec<String>, what: &str| -> Result<Vec<String>, Failure> {
        let list: Vec<String> = list.into_iter().map(|s| s.trim().to_string()).collect();
        if list.iter().any(String::is_empty) {
            return Err(bad(format!("{what}: empty entry")));
        }
        Ok(list)
    };
    let servers = clean(req.servers, "servers")?;
    let tools = clean(req.tools, "tools")?;
    let name = req.name.clone();
    let (key, record) = blocking(shared.keys.clone(), move |keys| {
        keys.add(&name, servers, tools, expires_at, now)
    })
    .await?;
    let unresolved: Vec<&String> = {
        let g = shared.current();
        record
            .servers
            .iter()
            .filter(|s| !s.starts_with('/') && g.catalog.find(s).next().is_none())
            .collect()
    };
    tracing::info!(
        key = %record.name,
        servers = %record.servers.join(","),
        tools = %record.tools.join(","),
        expires_at = record.expires_at,
        "client key added"
    );
    if !unresolved.is_empty() {
        tracing::warn!(key = %record.name, servers = ?unresolved, "client key names servers that are not in the catalog (they match nothing until they are)");
    }
    Ok(json(
        StatusCode::OK,
        &api::KeyAdded {
            key: secret::reveal(&key).to_string(),
            info: info(&record, now),
        },
    ))
}

pub async fn revoke(shared: &Shared, name: &str) -> Result<Resp, Failure> {
    let now = crate::clock::now();
    let owned = name.to_string();
    let record = blocking(shared.keys.clone(), move |keys| keys.revoke(&owned, now)).await?;
    tracing::warn!(key = %record.name, "client key revoked; its streams are closed");
    Ok(json(StatusCode::OK, &info(&record, now)))
}

/// The key part of `GET /v1/status`.
pub fn status(shared: &Shared) -> api::ClientKeysStatus {
    let now = crate::clock::now();
    let g = shared.current();
    let require = g.config.listen.require_client_keys;
    let mut required_on: Vec<String> = shared
        .bound
        .iter()
        .filter(|a| require.applies_to(Some(**a)))
        .map(|a| a.to_string())
        .collect();
    if require.applies_to(None) {
        for p in shared.unix_bound.get().into_iter().flatten() {
            required_on.push(format!("unix:{}", p.display()));
        }
    }
    let all: Vec<api::KeyInfo> = shared.keys.list().iter().map(|k| info(k, now)).collect();
    let inactive = all
        .iter()
        .filter(|k| k.state != api::KeyState::Active)
        .count();
    api::ClientKeysStatus {
        required_on,
        active: all
            .into_iter()
            .filter(|k| k.state == api::KeyState::Active)
            .collect(),
        inactive,
    }
}

/// `acl check --key NAME`: the key's state and scope applied to an ACL verdict.
pub fn apply_to_verdict(shared: &Shared, req: &api::AclCheck, v: &mut api::AclVerdict) {
    let Some(name) = &req.key else {
        return;
    };
    v.key = Some(name.clone());
    let now = crate::clock::now();
    let Some(k) = shared.keys.get(name) else {
        deny(v, "key_unknown", format!("there is no client key `{name}`"));
        return;
    };
    match k.usable(now) {
        Err(Unusable::Revoked) => {
            return deny(v, "key_revoked", format!("client key `{name}` is revoked"))
        }
        Err(Unusable::Expired) => {
            return deny(v, "key_expired", format!("client key `{name}` has expired"))
        }
        Ok(()) => {}
    }
    if !v.allowed {
        return;
    }
    let local = req.path.split('?').next().unwrap_or_default();
    if !k.servers.is_empty() {
        let scope = crate::config::AclConfig {
            allowed: k.servers.clone(),
            blocked: Vec::new(),
        };
        let g = shared.current();
        if !crate::proxy::acl::Acl::new(&scope, &g.catalog)
            .check(local)
            .is_allowed()
        {
            let m = format!("client key `{name}` is scoped to {}", k.servers.join(", "));
            return deny(v, "key_out_of_scope", m);
        }
    }
    if let Some(tool) = &req.tool {
        if !k.allows_tool(tool) {
            let m = format!("client key `{name}` may call only {}", k.tools.join(", "));
            return deny(v, "key_out_of_scope", m);
        }
    }
    v.reason = format!("{}; client key `{name}` covers it", v.reason);
}

fn deny(v: &mut api::AclVerdict, decision: &str, reason: String) {
    v.allowed = false;
    v.decision = decision.to_string();
    v.reason = reason;
}
