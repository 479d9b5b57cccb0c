//! Admin endpoints that change who the proxy is: login, logout, revoke.

use http::StatusCode;
use mcpproxyd_api::{self as api, codes};

use super::reply::{json, Failure, Resp};
use crate::auth::login::{self, LoginError};
use crate::auth::oauth::{self, Endpoints};
use crate::state::Shared;

pub(super) fn failure(e: LoginError) -> Failure {
    match e {
        LoginError::Unknown(_) => Failure(StatusCode::NOT_FOUND, codes::NOT_FOUND, e.to_string()),
        LoginError::Profile(_) | LoginError::BadCode(_) => {
            Failure(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, e.to_string())
        }
        LoginError::OAuth(ref o) if o.needs_login() => {
            Failure(StatusCode::BAD_REQUEST, "login_refused", e.to_string())
        }
        LoginError::OAuth(_) => Failure(
            StatusCode::BAD_GATEWAY,
            "authorization_server",
            e.to_string(),
        ),
    }
}

pub async fn login(shared: &Shared, req: api::LoginStart) -> Result<Resp, Failure> {
    if req.device {
        return super::device::login(shared, req).await;
    }
    let generation = shared.current();
    let profile =
        login::pick_profile(&generation.config, req.profile.as_deref()).map_err(failure)?;
    let http = shared.tokens.http_for(&profile);
    let clients = login::Clients {
        auth: &http,
        upstreams: generation.clients(),
    };
    let started = shared
        .logins
        .start(
            &generation.config,
            &clients,
            &profile,
            &shared.callback_uri(),
            &shared.tokens.needed_scopes(&profile),
        )
        .await
        .map_err(failure)?;
    Ok(json(StatusCode::OK, &started))
}

pub async fn login_status(
    shared: &Shared,
    id: &str,
    wait: std::time::Duration,
) -> Result<Resp, Failure> {
    if let Some(status) = shared.device_logins.status(id, wait).await {
        return Ok(json(StatusCode::OK, &status));
    }
    let status = shared.logins.status(id, wait).await.map_err(failure)?;
    Ok(json(StatusCode::OK, &status))
}

pub async fn login_code(shared: &Shared, id: &str, body: api::LoginCode) -> Result<Resp, Failure> {
    let status = shared
        .logins
        .paste(
            &shared.tokens,
            id,
            body.code.as_deref(),
            body.url.as_deref(),
        )
        .await
        .map_err(failure)?;
    Ok(json(StatusCode::OK, &status))
}

fn profile_of(shared: &Shared, named: Option<String>) -> Result<String, Failure> {
    login::pick_profile(&shared.current().config, named.as_deref()).map_err(failure)
}

pub async fn logout(shared: &Shared, req: api::ProfileRequest) -> Result<Resp, Failure> {
    let profile = profile_of(shared, req.profile)?;
    let old = shared.tokens.wipe(&profile, false).await.map_err(|e| {
        Failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL,
            e.to_string(),
        )
    })?;
    tracing::info!(profile, had_token = old.is_some(), "logged out");
    Ok(json(
        StatusCode::OK,
        &api::LoggedOut {
            profile,
            had_token: old.is_some(),
        },
    ))
}

/// Incident response: wipe locally first (so the proxy stops using the token at once, whatever
/// the server does), close the profile's streams, then revoke at the server.
pub async fn revoke(shared: &Shared, req: api::ProfileRequest) -> Result<Resp, Failure> {
    let profile = profile_of(shared, req.profile)?;
    let old = shared.tokens.wipe(&profile, true).await.map_err(|e| {
        Failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL,
            e.to_string(),
        )
    })?;
    tracing::warn!(profile, "token revoked locally; its streams are closed");
    let (server, server_error) = match old {
        None => ("nothing_to_revoke".to_string(), None),
        Some(record) if record.revocation_endpoint.is_none() => ("not_supported".to_string(), None),
        Some(record) => {
            let endpoints = Endpoints::of_record(&record);
            let http = shared.tokens.http_for(&profile);
            // A confidential client authenticates (RFC 7009 §2.1), as it does for refreshes;
            // each request its own credential (an assertion is for one request).
            let auth = || shared.tokens.client_auth(&profile, &record);
            let mut error = None;
            if let Some(rt) = &record.refresh_token {
                let auth = auth();
                let secret = auth.as_ref().map(|(s, m)| (s, *m));
                if let Err(e) =
                    oauth::revoke(&http, &endpoints, &record.client_id, secret, rt, true).await
                {
                    error = Some(e.to_string());
                }
            }
            let auth = auth();
            let secret = auth.as_ref().map(|(s, m)| (s, *m));
            if let Err(e) = oauth::revoke(
                &http,
                &endpoints,
                &record.client_id,
                secret,
                &record.access_token,
                false,
            )
            .await
            {
                error.get_or_insert(e.to_string());
            }
            match error {
                None => {
                    tracing::warn!(profile, "token revoked at the authorization server");
                    ("revoked".to_string(), None)
                }
                Some(e) => {
                    tracing::error!(profile, error = %e, "server-side revocation failed; the token is wiped locally");
                    ("failed".to_string(), Some(e))
                }
            }
        }
    };
    Ok(json(
        StatusCode::OK,
        &api::Revoked {
            profile,
            wiped: true,
            server,
            server_error,
        },
    ))
}

/// `POST /v1/import/aliyun`: the seed tool's login, stored like a login of our own.
pub async fn import_aliyun(shared: &Shared, req: api::ImportAliyun) -> Result<Resp, Failure> {
    let bad = |e: crate::auth::import::ImportError| {
        Failure(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, e.to_string())
    };
    let generation = shared.current();
    let profile = crate::auth::import::pick_alibaba(&generation.config, req.profile.as_deref())
        .map_err(bad)?;
    let (record, app_id) =
        crate::auth::import::record(&generation.config, &profile, &req.file).map_err(bad)?;
    let (valid_until, refresh_expires_at) = (record.access_expires_at, record.refresh_expires_at);
    shared
        .tokens
        .logged_in(&profile, record)
        .await
        .map_err(|e| {
            Failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                codes::INTERNAL,
                e.to_string(),
            )
        })?;
    tracing::info!(profile, app_id = %app_id, "imported the login of aliyun mcp-proxy");
    Ok(json(
        StatusCode::OK,
        &api::Imported {
            profile,
            app_id,
            valid_until,
            refresh_expires_at,
        },
    ))
}

/// `POST /v1/app/fix`: adds the redirect URI the daemon uses to the profile's Alibaba Cloud
/// application, when the operator asks (the login reports the mismatch and names this fix).
pub async fn app_fix(shared: &Shared, req: api::ProfileRequest) -> Result<Resp, Failure> {
    use crate::alibaba::provision::{FixOutcome, ProvisionError};
    use crate::config::AuthProfile;
    let generation = shared.current();
    let config = &generation.config;
    let profile = match req.profile {
        Some(p) => p,
        None => crate::auth::import::pick_alibaba(config, None)
            .map_err(|e| Failure(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, e.to_string()))?,
    };
    let Some(AuthProfile::Alibaba(a)) = config.auth.get(&profile) else {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            codes::BAD_REQUEST,
            format!("`{profile}` is not an alibaba profile"),
        ));
    };
    // The profile's own client (its CA) reaches IMS.
    let http = shared.tokens.http_for(&profile);
    let sources = crate::alibaba::credentials::Sources::from_process();
    let outcome = crate::alibaba::fix_app(a, &http, &shared.callback_uri(), &sources)
        .await
        .map_err(|e| {
            let status = match e {
                ProvisionError::Ims(_) => StatusCode::BAD_GATEWAY,
                _ => StatusCode::CONFLICT,
            };
            Failure(status, "app_fix_failed", e.to_string())
        })?;
    let (app, changed) = match outcome {
        FixOutcome::Added(app) => (app, true),
        FixOutcome::AlreadyPresent(app) => (app, false),
    };
    tracing::info!(profile, app_id = %app.app_id, changed, "application redirect URI checked");
    Ok(json(
        StatusCode::OK,
        &api::AppFixed {
            profile,
            app_id: app.app_id,
            changed,
            redirect_uris: app.redirect_uris,
        },
    ))
}
