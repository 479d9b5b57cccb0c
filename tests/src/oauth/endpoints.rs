//! The JSON endpoints: metadata (RFC 8414), token (RFC 6749 §3.2), revocation (RFC 7009),
//! introspection (RFC 7662) and dynamic client registration (RFC 7591).

use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::reply::{json, oauth_error, Params, Req, Resp};
use super::state::{new_secret, CodeExchange, OAuthError, RefreshGrant, TokenResponse};
use super::{ClientSpec, Fault, Shared};

/// `GET /.well-known/oauth-authorization-server` (and `openid-configuration`).
pub(crate) fn metadata(shared: &Shared) -> Resp {
    let issuer = &shared.issuer;
    let auth = shared.auth();
    let mut doc = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "introspection_endpoint": format!("{issuer}/introspect"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": auth.opts.auth_methods,
        "revocation_endpoint_auth_methods_supported": if auth.opts.revocation_requires_client_auth {
            json!(auth.opts.auth_methods)
        } else {
            json!(["none"])
        },
        "authorization_response_iss_parameter_supported": true,
    });
    if auth.opts.registration {
        doc["registration_endpoint"] = json!(format!("{issuer}/register"));
    }
    if !auth.opts.scopes_supported.is_empty() {
        doc["scopes_supported"] = json!(auth.opts.scopes_supported);
    }
    if auth.opts.client_id_metadata_documents {
        doc["client_id_metadata_document_supported"] = json!(true);
    }
    if auth.opts.device.is_some() {
        doc["device_authorization_endpoint"] = json!(format!("{issuer}/device_authorization"));
        doc["grant_types_supported"]
            .as_array_mut()
            .expect("grant_types_supported is a list")
            .push(json!(super::device::GRANT_TYPE));
    }
    if auth
        .opts
        .auth_methods
        .iter()
        .any(|m| m == "private_key_jwt")
    {
        doc["token_endpoint_auth_signing_alg_values_supported"] = json!(["ES256", "RS256"]);
    }
    json(StatusCode::OK, &doc)
}

/// `POST /token`.
pub(crate) fn token(shared: &Shared, req: &Req) -> Resp {
    let answer = grant(shared, req);
    // Device polls are recorded as they are answered: wake whoever waits for them.
    shared.changed.notify_waiters();
    match answer {
        Ok(resp) => json(
            StatusCode::OK,
            &serde_json::to_value(resp).expect("token response serializes"),
        ),
        Err(err) => oauth_error(&err),
    }
}

fn grant(shared: &Shared, req: &Req) -> Result<TokenResponse, OAuthError> {
    let mut auth = shared.auth();
    // Kept before any check, so that a test can look for every verifier ever sent.
    let verifiers = req.form.iter().filter(|(n, _)| n == "code_verifier");
    auth.issued.extend(verifiers.map(|(_, v)| v.clone()));
    require_form(req)?;
    let params = Params(&req.form);
    let grant_type = params.require("grant_type")?;
    if !matches!(
        grant_type,
        "authorization_code" | "refresh_token" | "client_credentials" | super::device::GRANT_TYPE
    ) {
        return Err(OAuthError::new(
            "unsupported_grant_type",
            format!("grant_type {grant_type} is not supported"),
        ));
    }
    let methods = auth.opts.auth_methods.clone();
    let client_id = authenticate(&methods, &shared.issuer, &mut auth, req)?;
    let client_id = client_id.as_str();
    let resource = params.get("resource")?;
    if grant_type == "client_credentials" {
        let has_key = auth
            .opts
            .assertion_keys
            .iter()
            .any(|k| k.client_id == client_id);
        if !has_key && auth.client(client_id).is_some_and(|c| c.secret.is_none()) {
            return Err(OAuthError::new(
                "unauthorized_client",
                "client_credentials needs a confidential client",
            ));
        }
        return Ok(auth.client_credentials(client_id, params.get("scope")?));
    }
    if grant_type == super::device::GRANT_TYPE {
        return super::device::grant(&mut auth, client_id, &params);
    }
    if grant_type == "authorization_code" {
        return auth.exchange_code(CodeExchange {
            code: params.require("code")?,
            client_id,
            redirect_uri: params.require("redirect_uri")?,
            code_verifier: params.require("code_verifier")?,
            resource,
        });
    }
    let grant = RefreshGrant {
        refresh_token: params.require("refresh_token")?,
        client_id,
        scope: params.get("scope")?,
        resource,
    };
    if shared.fault() == Fault::InvalidGrant {
        return Err(OAuthError::invalid_grant("injected fault"));
    }
    auth.refresh(grant)
}

/// The client of a token request, authenticated as its kind and the advertised methods say.
pub(super) fn authenticate(
    methods: &[String],
    issuer: &str,
    auth: &mut super::state::AuthState,
    req: &Req,
) -> Result<String, OAuthError> {
    let params = Params(&req.form);
    if super::assertion::present(&params) {
        if !methods.iter().any(|m| m == "private_key_jwt") {
            return Err(OAuthError::new(
                "invalid_client",
                "private_key_jwt is not an advertised authentication method",
            ));
        }
        return super::assertion::verify(auth, issuer, &params);
    }
    let (client_id, secret, method) = match &req.basic {
        Some((id, secret)) => (id.clone(), Some(secret.clone()), "client_secret_basic"),
        None => {
            let id = params.require("client_id")?.to_string();
            match params.get("client_secret")? {
                Some(s) => (id, Some(s.to_string()), "client_secret_post"),
                None => (id, None, "none"),
            }
        }
    };
    if auth
        .opts
        .assertion_keys
        .iter()
        .any(|k| k.client_id == client_id)
    {
        return Err(OAuthError::new(
            "invalid_client",
            "this client authenticates with private_key_jwt",
        ));
    }
    let Some(client) = auth.client(&client_id) else {
        return Err(OAuthError::new("invalid_client", "unknown client_id"));
    };
    if client.secret.is_some() && !methods.iter().any(|m| m == method) {
        return Err(OAuthError::new(
            "invalid_client",
            format!("{method} is not an advertised authentication method"),
        ));
    }
    if client.secret != secret {
        return Err(OAuthError::new(
            "invalid_client",
            "client authentication failed",
        ));
    }
    Ok(client_id)
}

/// `POST /revoke`: 200 for any token, known or not, once the request is well formed.
pub(crate) fn revoke(shared: &Shared, req: &Req) -> Resp {
    let result = (|| {
        require_form(req)?;
        let params = Params(&req.form);
        let token = params.require("token")?;
        match params.get("token_type_hint")? {
            None | Some("access_token" | "refresh_token") => {}
            Some(other) => {
                return Err(OAuthError::new(
                    "unsupported_token_type",
                    format!("token_type_hint {other} is not supported"),
                ))
            }
        }
        let mut auth = shared.auth();
        if auth.opts.revocation_requires_client_auth {
            let methods = auth.opts.auth_methods.clone();
            let client_id = authenticate(&methods, &shared.issuer, &mut auth, req)?;
            return auth.revoke(token, Some(&client_id));
        }
        let client_id = params.get("client_id")?;
        if client_id.is_some_and(|id| auth.client(id).is_none()) {
            return Err(OAuthError::new("invalid_client", "unknown client_id"));
        }
        auth.revoke(token, client_id)
    })();
    match result {
        Ok(()) => json(StatusCode::OK, &json!({})),
        Err(err) => oauth_error(&err),
    }
}

/// `POST /introspect`: no client authentication, this is a test server.
pub(crate) fn introspect(shared: &Shared, req: &Req) -> Resp {
    let params = Params(&req.form);
    let token = match require_form(req).and_then(|()| params.require("token")) {
        Ok(token) => token,
        Err(err) => return oauth_error(&err),
    };
    let auth = shared.auth();
    let owner = auth.token_owner(token).filter(|_| auth.is_active(token));
    let body = match owner {
        None => json!({ "active": false }),
        Some((client_id, scope)) => {
            let mut body =
                json!({ "active": true, "client_id": client_id, "token_type": "Bearer" });
            if let Some(scope) = scope {
                body["scope"] = json!(scope);
            }
            body
        }
    };
    json(StatusCode::OK, &body)
}

/// The client metadata a registration may carry (RFC 7591 §2); others are ignored.
#[derive(Debug, Deserialize)]
struct Registration {
    redirect_uris: Option<Vec<String>>,
    client_name: Option<String>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
}

/// `POST /register`: public clients (`token_endpoint_auth_method` `none`), and with
/// [`super::OAuthOptions::confidential_registration`] confidential ones, issued a secret.
pub(crate) fn register(shared: &Shared, req: &Req) -> Resp {
    let registration = match serde_json::from_slice::<Registration>(&req.body) {
        Ok(registration) => registration,
        Err(e) => return registration_error("invalid_client_metadata", &e.to_string()),
    };
    let confidential = shared.auth().opts.confidential_registration;
    if let Err(err) = check_registration(&registration, confidential) {
        return registration_error(err.error, &err.description);
    }
    let method = registration
        .token_endpoint_auth_method
        .clone()
        .unwrap_or_else(|| "client_secret_basic".into());
    let secret = (confidential && method != "none").then(|| new_secret("cs_"));
    let client = ClientSpec {
        client_id: new_secret("dcr_"),
        redirect_uris: registration.redirect_uris.unwrap_or_default(),
        secret: secret.clone(),
    };
    let issued_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut body = json!({
        "client_id": client.client_id,
        "client_id_issued_at": issued_at,
        "redirect_uris": client.redirect_uris,
        "token_endpoint_auth_method": if secret.is_some() { method.as_str() } else { "none" },
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    });
    if let Some(secret) = secret {
        body["client_secret"] = json!(secret);
        shared.auth().issued.push(secret);
    }
    if let Some(name) = registration.client_name {
        body["client_name"] = json!(name);
    }
    shared.auth().add_client(client);
    json(StatusCode::CREATED, &body)
}

fn check_registration(registration: &Registration, confidential: bool) -> Result<(), OAuthError> {
    let metadata = |d: &str| OAuthError::new("invalid_client_metadata", d);
    match registration.token_endpoint_auth_method.as_deref() {
        None | Some("none") => {}
        Some("client_secret_basic" | "client_secret_post") if confidential => {}
        Some(_) => return Err(metadata("only public clients (none) are supported")),
    }
    let mut grants = registration.grant_types.iter().flatten();
    let known = |g: &str| {
        matches!(g, "authorization_code" | "refresh_token") || g == super::device::GRANT_TYPE
    };
    if let Some(g) = grants.find(|g| !known(g)) {
        return Err(metadata(&format!("grant type {g} is not supported")));
    }
    if let Some(r) = registration
        .response_types
        .iter()
        .flatten()
        .find(|r| *r != "code")
    {
        return Err(metadata(&format!("response type {r} is not supported")));
    }
    let uris = registration.redirect_uris.as_deref().unwrap_or_default();
    if uris.is_empty() {
        return Err(OAuthError::new(
            "invalid_redirect_uri",
            "redirect_uris required",
        ));
    }
    let bad = |u: &String| {
        url::Url::parse(u).map_or(true, |url| {
            !matches!(url.scheme(), "http" | "https") || url.fragment().is_some()
        })
    };
    if let Some(u) = uris.iter().find(|u| bad(u)) {
        return Err(OAuthError::new(
            "invalid_redirect_uri",
            format!("redirect URI {u} must be an absolute http(s) URI without fragment"),
        ));
    }
    Ok(())
}

fn registration_error(error: &str, description: &str) -> Resp {
    json(
        StatusCode::BAD_REQUEST,
        &json!({ "error": error, "error_description": description }),
    )
}

pub(super) fn require_form(req: &Req) -> Result<(), OAuthError> {
    if req.is_form {
        Ok(())
    } else {
        Err(OAuthError::invalid_request(
            "body must be application/x-www-form-urlencoded",
        ))
    }
}
