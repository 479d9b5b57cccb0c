//! `GET /authorize` (RFC 6749 §4.1.1 with PKCE required) and the approval page's decision.
//!
//! Until the client and its redirect URI are known good, errors are a 400 page; after
//! that they go back to the client as `error`, `error_description`, `state` (RFC 6749
//! §4.1.2.1) and `iss` (RFC 9207).

use http::StatusCode;

use super::pkce;
use super::reply::{escape, html, page, redirect, Params, Req, Resp};
use super::state::{AuthState, OAuthError};
use super::{AuthorizationRequest, ClientSpec, Shared};

/// Why a request cannot be approved.
enum Invalid {
    /// The redirect URI is unknown: tell the user, not the client.
    Page(String),
    /// Send the error back to the client.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: OAuthError,
    },
}

pub(crate) fn get(shared: &Shared, req: &Req) -> Resp {
    let mut auth = shared.auth();
    let request = match validate(&auth, &Params(&req.query)) {
        Ok(request) => request,
        Err(Invalid::Page(message)) => {
            let body = format!("<p>{}</p>", escape(&message));
            return html(
                StatusCode::BAD_REQUEST,
                page("Invalid authorization request", &body),
            );
        }
        Err(Invalid::Redirect {
            redirect_uri,
            state,
            error,
        }) => {
            return redirect(&error_url(
                &shared.issuer,
                &redirect_uri,
                state.as_deref(),
                &error,
            ))
        }
    };
    if auth.opts.auto_approve {
        let code = auth.issue_code(request.clone());
        return redirect(&code_url(&shared.issuer, &request, &code));
    }
    auth.pending.push_back(request.clone());
    drop(auth);
    shared.changed.notify_waiters();
    html(StatusCode::OK, approval_page(&request))
}

/// `POST /authorize/decision`: the approval page's buttons.
pub(crate) fn decision(shared: &Shared, req: &Req) -> Resp {
    let params = Params(&req.form);
    let (Ok(Some(challenge)), Ok(Some(choice))) = (params.get("challenge"), params.get("decision"))
    else {
        return html(StatusCode::BAD_REQUEST, page("Bad decision", ""));
    };
    let request = {
        let mut auth = shared.auth();
        let position = auth
            .pending
            .iter()
            .position(|r| r.code_challenge == challenge);
        position.and_then(|i| auth.pending.remove(i))
    };
    match (request, choice) {
        (Some(request), "approve") => redirect(&approve(shared, request)),
        (Some(request), _) => redirect(&deny(shared, &request)),
        (None, _) => html(
            StatusCode::BAD_REQUEST,
            page("No such pending authorization", ""),
        ),
    }
}

/// Issues the code for `request`: the URL the browser goes back to.
pub(crate) fn approve(shared: &Shared, request: AuthorizationRequest) -> String {
    let code = shared.auth().issue_code(request.clone());
    code_url(&shared.issuer, &request, &code)
}

/// The `access_denied` URL the browser goes back to.
pub(crate) fn deny(shared: &Shared, request: &AuthorizationRequest) -> String {
    let error = OAuthError::new("access_denied", "the resource owner denied the request");
    error_url(
        &shared.issuer,
        &request.redirect_uri,
        request.state.as_deref(),
        &error,
    )
}

fn validate(auth: &AuthState, params: &Params<'_>) -> Result<AuthorizationRequest, Invalid> {
    let page = |e: OAuthError| Invalid::Page(e.to_string());
    let client_id = params.require("client_id").map_err(page)?;
    let Some(client) = auth.client(client_id) else {
        return Err(Invalid::Page(format!("unknown client_id {client_id}")));
    };
    let redirect_uri = params.require("redirect_uri").map_err(page)?;
    if !redirect_allowed(client, redirect_uri) {
        return Err(Invalid::Page(format!(
            "redirect_uri {redirect_uri} is not registered for {client_id}"
        )));
    }
    let state = params.get("state").ok().flatten().map(str::to_owned);
    let grant = check_grant(auth, params).map_err(|error| Invalid::Redirect {
        redirect_uri: redirect_uri.to_owned(),
        state: state.clone(),
        error,
    })?;
    Ok(AuthorizationRequest {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        state,
        code_challenge: grant.0,
        scope: grant.1,
        resource: grant.2,
    })
}

/// The checks whose failures go back to the client: (challenge, scope, resource).
fn check_grant(
    auth: &AuthState,
    params: &Params<'_>,
) -> Result<(String, Option<String>, Option<String>), OAuthError> {
    params.get("state")?;
    match params.require("response_type")? {
        "code" => {}
        _ => {
            return Err(OAuthError::new(
                "unsupported_response_type",
                "only response_type=code is supported",
            ))
        }
    }
    let challenge = params.require("code_challenge")?;
    match params.get("code_challenge_method")? {
        Some("S256") => {}
        Some(_) => {
            return Err(OAuthError::invalid_request(
                "transform algorithm not supported: use S256",
            ))
        }
        None => {
            return Err(OAuthError::invalid_request(
                "code_challenge_method=S256 required",
            ))
        }
    }
    if !pkce::is_valid_s256_challenge(challenge) {
        return Err(OAuthError::invalid_request(
            "code_challenge is not a base64url SHA-256",
        ));
    }
    let resource = params.get("resource")?;
    if let Some(expected) = &auth.opts.resource {
        if resource != Some(expected.as_str()) {
            return Err(OAuthError::new(
                "invalid_target",
                format!("resource must be {expected}"),
            ));
        }
    }
    let scope = scope(&auth.opts.scopes_supported, params.get("scope")?)?;
    Ok((challenge.to_owned(), scope, resource.map(str::to_owned)))
}

/// The scope granted for `asked`: with a list of supported scopes, only those, and all
/// of them when none is asked for.
fn scope(supported: &[String], asked: Option<&str>) -> Result<Option<String>, OAuthError> {
    if supported.is_empty() {
        return Ok(asked.map(str::to_owned));
    }
    let Some(asked) = asked else {
        return Ok(Some(supported.join(" ")));
    };
    match asked.split(' ').find(|s| !supported.iter().any(|x| x == s)) {
        Some(unknown) => Err(OAuthError::new(
            "invalid_scope",
            format!("unknown scope {unknown}"),
        )),
        None => Ok(Some(asked.to_owned())),
    }
}

/// Exact match against registered URIs, else any loopback `http` URI (RFC 8252 §7.3).
pub(crate) fn redirect_allowed(client: &ClientSpec, uri: &str) -> bool {
    if !client.redirect_uris.is_empty() {
        return client.redirect_uris.iter().any(|r| r == uri);
    }
    let Ok(url) = url::Url::parse(uri) else {
        return false;
    };
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    url.scheme() == "http" && loopback && url.fragment().is_none() && url.username().is_empty()
}

fn code_url(issuer: &str, request: &AuthorizationRequest, code: &str) -> String {
    let mut pairs = vec![("code", code)];
    pairs.extend(request.state.as_deref().map(|s| ("state", s)));
    pairs.push(("iss", issuer));
    with_query(&request.redirect_uri, &pairs)
}

fn error_url(issuer: &str, redirect_uri: &str, state: Option<&str>, error: &OAuthError) -> String {
    let mut pairs = vec![
        ("error", error.error),
        ("error_description", error.description.as_str()),
    ];
    pairs.extend(state.map(|s| ("state", s)));
    pairs.push(("iss", issuer));
    with_query(redirect_uri, &pairs)
}

/// `uri` with `pairs` added to its query (a redirect URI may have a query of its own).
fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let separator = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{separator}{query}")
}

fn approval_page(request: &AuthorizationRequest) -> String {
    let body = format!(
        "<p>Client <code>{client}</code> asks for scope <code>{scope}</code>; \
         it will be sent back to <code>{redirect}</code>.</p>\n\
         <form method=\"post\" action=\"/authorize/decision\">\n\
         <input type=\"hidden\" name=\"challenge\" value=\"{challenge}\">\n\
         <button name=\"decision\" value=\"approve\">Approve</button>\n\
         <button name=\"decision\" value=\"deny\">Deny</button>\n</form>",
        client = escape(&request.client_id),
        scope = escape(request.scope.as_deref().unwrap_or("")),
        redirect = escape(&request.redirect_uri),
        challenge = escape(&request.code_challenge),
    );
    page("Authorize access", &body)
}
