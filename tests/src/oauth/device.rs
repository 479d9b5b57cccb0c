//! RFC 8628, the device authorization grant, at the test authorization server, behind
//! [`OAuthOptions::device`](super::OAuthOptions::device) (only then is
//! `device_authorization_endpoint` in the metadata).
//!
//! `POST /device_authorization` hands out a device code and a user code to a known client. The
//! device-code grant at `/token` then answers `authorization_pending` until the test approves
//! or denies ([`OAuthServer::approve_device`], [`OAuthServer::deny_device`]); `slow_down` to the
//! polls [`DeviceOptions::slow_down_polls`] names and to any poll that comes sooner than the
//! interval in force (each adds 5 s to it); `expired_token` past the lifetime or after
//! [`OAuthServer::expire_device`]. Every poll is recorded with when it came and the interval
//! in force, so that a test can check the client's pace without timing anything itself.
//!
//! `GET /device` is the verification page (the user code filled in from `?user_code=`), and
//! `POST /device` its form (`user_code`, `decision` = `approve` | `deny`), for a browser or a
//! test playing one.

use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::json;

use super::reply::{escape, html, json, oauth_error, page, Params, Req, Resp};
use super::state::{new_secret, AuthState, OAuthError, TokenResponse};
use super::{OAuthServer, Shared};

/// The token request's `grant_type` (RFC 8628 §3.4).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// What `slow_down` adds to the interval (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// The device flow's switches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceOptions {
    /// The `interval` announced, in seconds. RFC 8628's default, when a server names none, is
    /// 5; tests announce 1 to stay short, and a client must honour what the server says.
    pub interval: u64,
    /// How long a device code lives (`expires_in`).
    pub lifetime: Duration,
    /// Polls (1 for the first of a device code) answered `slow_down` whatever their pace.
    pub slow_down_polls: Vec<usize>,
    /// Announce `verification_uri_complete` too.
    pub complete_uri: bool,
}

impl Default for DeviceOptions {
    fn default() -> Self {
        Self {
            interval: 1,
            lifetime: Duration::from_secs(600),
            slow_down_polls: Vec::new(),
            complete_uri: true,
        }
    }
}

/// Where a device authorization stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Pending,
    Approved,
    Denied,
    Expired,
    /// Its tokens were issued; the device code is used up.
    Spent,
}

/// One poll of a device code, as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePoll {
    pub at: Instant,
    /// Since the previous poll, or since the device code was issued.
    pub since_last: Duration,
    /// The interval in force when it came.
    pub required: Duration,
    /// The `error` it was answered, or `tokens`.
    pub answer: &'static str,
}

/// One device authorization and its polls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAuthorization {
    pub client_id: String,
    pub device_code: String,
    pub user_code: String,
    pub scope: Option<String>,
    pub resource: Option<String>,
    pub issued_at: Instant,
    /// The interval in force now.
    pub interval: Duration,
    pub decision: Decision,
    pub polls: Vec<DevicePoll>,
}

/// Every device authorization, oldest first.
#[derive(Debug, Default)]
pub(crate) struct DeviceState {
    pub grants: Vec<DeviceAuthorization>,
}

/// `POST /device_authorization` (RFC 8628 §3.1).
pub(crate) fn authorize(shared: &Shared, req: &Req) -> Resp {
    let issued = (|| {
        super::endpoints::require_form(req)?;
        let mut auth = shared.auth();
        let Some(opts) = auth.opts.device.clone() else {
            return Err(OAuthError::invalid_request("no device flow here"));
        };
        let client_id = super::endpoints::authenticate(
            &auth.opts.auth_methods.clone(),
            &shared.issuer,
            &mut auth,
            req,
        )?;
        let params = Params(&req.form);
        let resource = params.get("resource")?.map(str::to_owned);
        auth.check_resource(resource.as_deref())?;
        let device_code = new_secret("dc_");
        let hex = crate::upstream::random_hex().to_ascii_uppercase();
        let user_code = format!("{}-{}", &hex[..4], &hex[4..8]);
        auth.issued.push(device_code.clone());
        auth.device.grants.push(DeviceAuthorization {
            client_id,
            device_code: device_code.clone(),
            user_code: user_code.clone(),
            scope: params.get("scope")?.map(str::to_owned),
            resource,
            issued_at: Instant::now(),
            interval: Duration::from_secs(opts.interval),
            decision: Decision::Pending,
            polls: Vec::new(),
        });
        let page = format!("{}/device", shared.issuer);
        let mut body = json!({
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": page,
            "expires_in": opts.lifetime.as_secs(),
            "interval": opts.interval,
        });
        if opts.complete_uri {
            body["verification_uri_complete"] = json!(format!("{page}?user_code={user_code}"));
        }
        Ok(body)
    })();
    shared.changed.notify_waiters();
    match issued {
        Ok(body) => json(StatusCode::OK, &body),
        Err(err) => oauth_error(&err),
    }
}

/// The device-code grant at `/token` for an authenticated `client_id` (RFC 8628 §3.4, §3.5).
pub(crate) fn grant(
    auth: &mut AuthState,
    client_id: &str,
    params: &Params<'_>,
) -> Result<TokenResponse, OAuthError> {
    let Some(opts) = auth.opts.device.clone() else {
        return Err(OAuthError::new(
            "unsupported_grant_type",
            "no device flow here",
        ));
    };
    let device_code = params.require("device_code")?;
    let resource = params.get("resource")?;
    auth.check_resource(resource)?;
    let Some(g) = auth
        .device
        .grants
        .iter_mut()
        .find(|g| g.device_code == device_code)
    else {
        return Err(OAuthError::invalid_grant("unknown device code"));
    };
    if g.client_id != client_id {
        return Err(OAuthError::invalid_grant("device code of another client"));
    }
    let now = Instant::now();
    let since_last = now - g.polls.last().map_or(g.issued_at, |p| p.at);
    let required = g.interval;
    let nth = g.polls.len() + 1;
    if g.decision == Decision::Pending && now >= g.issued_at + opts.lifetime {
        g.decision = Decision::Expired;
    }
    let answer: Result<(), OAuthError> = match g.decision {
        Decision::Spent => Err(OAuthError::invalid_grant("device code already used")),
        Decision::Expired => Err(OAuthError::new("expired_token", "the device code expired")),
        Decision::Denied => Err(OAuthError::new(
            "access_denied",
            "the user denied the request",
        )),
        _ if since_last < required || opts.slow_down_polls.contains(&nth) => {
            g.interval += SLOW_DOWN_STEP;
            Err(OAuthError::new("slow_down", "poll less often"))
        }
        Decision::Approved => Ok(()),
        Decision::Pending => Err(OAuthError::new(
            "authorization_pending",
            "the user has not approved yet",
        )),
    };
    g.polls.push(DevicePoll {
        at: now,
        since_last,
        required,
        answer: answer.as_ref().map_or_else(|e| e.error, |()| "tokens"),
    });
    answer?;
    g.decision = Decision::Spent;
    let scope = g.scope.clone();
    Ok(auth.device_tokens(client_id, scope))
}

/// `GET /device`: the page the user opens, with a form to approve or deny a user code.
pub(crate) fn verification_page(req: &Req) -> Resp {
    let query = Params(&req.query);
    let code = query.get("user_code").ok().flatten().unwrap_or("");
    let body = format!(
        "<form method=\"post\" action=\"/device\">\n\
         <label>Code <input name=\"user_code\" value=\"{}\"></label>\n\
         <button name=\"decision\" value=\"approve\">Approve</button>\n\
         <button name=\"decision\" value=\"deny\">Deny</button>\n</form>",
        escape(code)
    );
    html(StatusCode::OK, page("Connect a device", &body))
}

/// `POST /device`: the user's decision on a user code.
pub(crate) fn decision(shared: &Shared, req: &Req) -> Resp {
    let params = Params(&req.form);
    let (Ok(Some(code)), Ok(Some(choice))) = (params.get("user_code"), params.get("decision"))
    else {
        return html(StatusCode::BAD_REQUEST, page("Bad decision", ""));
    };
    let decision = match choice {
        "approve" => Decision::Approved,
        "deny" => Decision::Denied,
        _ => return html(StatusCode::BAD_REQUEST, page("Bad decision", "")),
    };
    if !decide(shared, code, decision) {
        return html(
            StatusCode::BAD_REQUEST,
            page(
                "No such pending code",
                "<p>Check the code, or start again.</p>",
            ),
        );
    }
    let title = match decision {
        Decision::Approved => "Device connected",
        _ => "Request denied",
    };
    html(
        StatusCode::OK,
        page(title, "<p>You can close this window.</p>"),
    )
}

/// Decides the pending authorization of `user_code` (codes are compared as typed: case and
/// dashes matter here); false if none waits.
fn decide(shared: &Shared, user_code: &str, decision: Decision) -> bool {
    let mut auth = shared.auth();
    let pending = auth
        .device
        .grants
        .iter_mut()
        .find(|g| g.user_code == user_code && g.decision == Decision::Pending);
    let found = match pending {
        Some(g) => {
            g.decision = decision;
            true
        }
        None => false,
    };
    drop(auth);
    shared.changed.notify_waiters();
    found
}

// === impl OAuthServer ===

impl OAuthServer {
    /// Every device authorization so far, oldest first, with its polls.
    pub fn device_authorizations(&self) -> Vec<DeviceAuthorization> {
        self.shared.auth().device.grants.clone()
    }

    /// Resolves once the device code of `user_code` has been polled `n` times.
    pub async fn wait_device_polls(&self, user_code: &str, n: usize) {
        self.shared
            .wait_until(|s| {
                s.auth()
                    .device
                    .grants
                    .iter()
                    .any(|g| g.user_code == user_code && g.polls.len() >= n)
            })
            .await;
    }

    /// The user approves `user_code`; false if no pending authorization has it.
    pub fn approve_device(&self, user_code: &str) -> bool {
        self.decide(user_code, Decision::Approved)
    }

    /// The user denies `user_code`: its next poll gets `access_denied`.
    pub fn deny_device(&self, user_code: &str) -> bool {
        self.decide(user_code, Decision::Denied)
    }

    /// The device code of `user_code` expires now: its next poll gets `expired_token`.
    pub fn expire_device(&self, user_code: &str) -> bool {
        self.decide(user_code, Decision::Expired)
    }

    fn decide(&self, user_code: &str, decision: Decision) -> bool {
        decide(&self.shared, user_code, decision)
    }
}
