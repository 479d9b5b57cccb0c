//! RFC 8628, the device authorization grant, on the wire: the device authorization request and
//! one poll of the token endpoint, each authenticated as the profile's client. When to poll is
//! [`crate::auth::device_poll`]'s business.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{
    record_from, AuthMethod, Grant, OAuthError, TokenResp, WithoutUrlString, AUTH_SERVER_TIMEOUT,
};
use crate::auth::token_store::TokenRecord;

/// The token request's `grant_type` (RFC 8628 §3.4).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The polling interval when the server names none (RFC 8628 §3.2: clients MUST use 5 s).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// The longest user code shown; real ones are 8 or 9 characters.
const MAX_USER_CODE: usize = 64;

/// The device authorization response (RFC 8628 §3.2), checked. Its `Debug` leaves the device
/// code out.
pub struct DeviceAuthorization {
    pub device_code: SecretString,
    /// What the user types at `verification_uri`; not a credential (it only lets a signed-in
    /// user approve this one request).
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub expires_in: Duration,
    pub interval: Duration,
}

impl std::fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("verification_uri", &self.verification_uri)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// As sent; `device_code` moves into a `SecretString` at once.
#[derive(Deserialize)]
struct Answer {
    device_code: String,
    user_code: String,
    verification_uri: Option<String>,
    /// The spelling of drafts that some servers kept.
    verification_url: Option<String>,
    verification_uri_complete: Option<String>,
    expires_in: u64,
    interval: Option<u64>,
}

/// One poll's answer (RFC 8628 §3.5).
#[derive(Debug)]
pub enum Poll<T> {
    Tokens(T),
    /// `authorization_pending`: the user has not finished yet.
    Pending,
    /// `slow_down`: poll 5 s less often from now on.
    SlowDown,
    /// `access_denied`, with the server's description.
    Denied(Option<String>),
    /// `expired_token`: the device code is dead; a new login must start.
    Expired,
}

/// Asks `endpoint` for a device code and user code, for `scopes` (and `resource`).
pub async fn authorize(
    http: &reqwest::Client,
    grant: &Grant<'_>,
    endpoint: &str,
    scopes: &[String],
) -> Result<DeviceAuthorization, OAuthError> {
    let scope = scopes.join(" ");
    let mut params = Vec::new();
    if !scope.is_empty() {
        params.push(("scope", scope.as_str()));
    }
    if let Some(r) = grant.resource {
        params.push(("resource", r));
    }
    let (status, body) = post_form(http, endpoint, grant, &params).await?;
    if !status.is_success() {
        return Err(error_of(status, &body));
    }
    let a: Answer = serde_json::from_slice(&body)
        .map_err(|e| OAuthError::BadResponse(format!("device authorization response: {e}")))?;
    let device_code = SecretString::from(a.device_code);
    if device_code.expose_secret().is_empty() {
        return Err(OAuthError::BadResponse("empty device_code".into()));
    }
    let shown = |what: &str, text: &str| -> Result<String, OAuthError> {
        let bad = text.is_empty()
            || text.len() > MAX_USER_CODE
            || text.chars().any(|c| c.is_control() || c.is_whitespace());
        if bad {
            return Err(OAuthError::BadResponse(format!(
                "the {what} is empty, too long or holds spaces or control characters"
            )));
        }
        Ok(text.to_string())
    };
    let uri = a
        .verification_uri
        .or(a.verification_url)
        .ok_or_else(|| OAuthError::BadResponse("no verification_uri".into()))?;
    Ok(DeviceAuthorization {
        device_code,
        user_code: shown("user code", &a.user_code)?,
        verification_uri: web_url("verification_uri", &uri)?,
        verification_uri_complete: a
            .verification_uri_complete
            .map(|u| web_url("verification_uri_complete", &u))
            .transpose()?,
        expires_in: Duration::from_secs(a.expires_in),
        interval: a.interval.map_or(DEFAULT_INTERVAL, Duration::from_secs),
    })
}

/// A page for the user's browser: an absolute http(s) URL, normalised (so nothing that
/// could steer a terminal reaches ctl's output).
fn web_url(what: &str, text: &str) -> Result<String, OAuthError> {
    match url::Url::parse(text) {
        Ok(u) if matches!(u.scheme(), "https" | "http") => Ok(u.to_string()),
        _ => Err(OAuthError::BadResponse(format!(
            "the {what} is not an http(s) URL"
        ))),
    }
}

/// One token request for `device_code`.
pub async fn poll(
    http: &reqwest::Client,
    grant: &Grant<'_>,
    device_code: &SecretString,
) -> Result<Poll<TokenRecord>, OAuthError> {
    let mut params = vec![
        ("grant_type", GRANT_TYPE),
        ("device_code", device_code.expose_secret()),
    ];
    if let Some(r) = grant.resource {
        params.push(("resource", r));
    }
    let (status, body) = post_form(http, &grant.endpoints.token, grant, &params).await?;
    if status.is_success() {
        let resp: TokenResp = serde_json::from_slice(&body)
            .map_err(|e| OAuthError::BadResponse(format!("token response: {e}")))?;
        return record_from(&resp, grant, None).map(Poll::Tokens);
    }
    match error_of(status, &body) {
        OAuthError::Rejected { code, description } => Ok(match code.as_str() {
            "authorization_pending" => Poll::Pending,
            "slow_down" => Poll::SlowDown,
            "access_denied" => Poll::Denied(description),
            "expired_token" => Poll::Expired,
            _ => return Err(OAuthError::Rejected { code, description }),
        }),
        other => Err(other),
    }
}

/// The OAuth error of a non-2xx answer (RFC 6749 §5.2); 5xx and pages that are no OAuth
/// error are transient.
fn error_of(status: reqwest::StatusCode, body: &[u8]) -> OAuthError {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: String,
        error_description: Option<String>,
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) if matches!(e.error.as_str(), "temporarily_unavailable" | "server_error") => {
            OAuthError::Transient(e.error)
        }
        Ok(e) if !status.is_server_error() => OAuthError::Rejected {
            code: e.error,
            description: e.error_description,
        },
        _ if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS => {
            OAuthError::Transient(format!("the server answered {status}"))
        }
        _ => OAuthError::BadResponse(format!(
            "the server answered {status} without an OAuth error"
        )),
    }
}

/// A form POST authenticated as the grant's client: HTTP Basic with the form-encoded id and
/// secret (RFC 6749 §2.3.1), or both in the form, or a client assertion (RFC 7523), or the id
/// alone for a public client.
async fn post_form(
    http: &reqwest::Client,
    url: &str,
    grant: &Grant<'_>,
    params: &[(&str, &str)],
) -> Result<(reqwest::StatusCode, bytes::Bytes), OAuthError> {
    let mut req = http.post(url).timeout(AUTH_SERVER_TIMEOUT);
    // Built before any await: the serializer is not `Send`.
    let body = {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.extend_pairs(params);
        match grant.secret {
            Some((secret, AuthMethod::Basic)) => {
                let enc = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                req = req.basic_auth(enc(grant.client_id), Some(enc(secret.expose_secret())));
            }
            Some((secret, AuthMethod::Post)) => {
                form.append_pair("client_id", grant.client_id);
                form.append_pair("client_secret", secret.expose_secret());
            }
            Some((assertion, AuthMethod::PrivateKeyJwt)) => {
                form.append_pair("client_id", grant.client_id);
                form.append_pair("client_assertion_type", super::jws::JWT_BEARER);
                form.append_pair("client_assertion", assertion.expose_secret());
            }
            Some((_, AuthMethod::None)) | None => {
                form.append_pair("client_id", grant.client_id);
            }
        }
        form.finish()
    };
    let resp = req
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| OAuthError::Transient(transport(&e)))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| OAuthError::Transient(transport(&e)))?;
    Ok((status, body))
}

fn transport(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        e.without_url_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oauth_errors_are_sorted_into_retry_and_refusal() {
        let bad = reqwest::StatusCode::BAD_REQUEST;
        let pending = error_of(bad, br#"{"error":"authorization_pending"}"#);
        assert!(
            matches!(pending, OAuthError::Rejected { code, .. } if code == "authorization_pending")
        );
        let busy = error_of(
            reqwest::StatusCode::SERVICE_UNAVAILABLE,
            b"<html>busy</html>",
        );
        assert!(matches!(busy, OAuthError::Transient(_)));
        let unavailable = error_of(bad, br#"{"error":"temporarily_unavailable"}"#);
        assert!(matches!(unavailable, OAuthError::Transient(_)));
        assert!(matches!(
            error_of(bad, b"nonsense"),
            OAuthError::BadResponse(_)
        ));
    }

    #[test]
    fn verification_pages_must_be_web_urls() {
        assert_eq!(
            web_url("u", "https://as.example/device").unwrap(),
            "https://as.example/device"
        );
        assert!(web_url("u", "javascript:alert(1)").is_err());
        assert!(web_url("u", "device").is_err());
        // Control characters cannot survive normalisation into ctl's output.
        let u = web_url("u", "https://as.example/d\u{1b}[2J").unwrap();
        assert!(!u.contains('\u{1b}'), "{u}");
    }
}
