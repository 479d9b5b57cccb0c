//! Admin endpoints of device logins (RFC 8628): `POST /v1/login` with `"device": true` starts
//! one, `POST /v1/login/{id}/cancel` stops its polling; `GET /v1/login/{id}` serves its status
//! as for any login.

use http::StatusCode;
use mcpproxyd_api::{self as api, codes};

use super::auth::failure;
use super::reply::{json, Failure, Resp};
use crate::auth::login;
use crate::state::Shared;

/// `POST /v1/login` with `"device": true`.
pub async fn login(shared: &Shared, req: api::LoginStart) -> Result<Resp, Failure> {
    if req.paste {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            codes::BAD_REQUEST,
            "a login is either a device login or a pasted one, not both".into(),
        ));
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
        .device_logins
        .start(
            shared.tokens.clone(),
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

/// `POST /v1/login/{id}/cancel`.
pub async fn cancel(shared: &Shared, id: &str) -> Result<Resp, Failure> {
    let status = shared.device_logins.cancel(id).await.map_err(|e| {
        Failure(
            StatusCode::NOT_FOUND,
            codes::NOT_FOUND,
            format!("{e}; only device logins can be cancelled"),
        )
    })?;
    Ok(json(StatusCode::OK, &status))
}
