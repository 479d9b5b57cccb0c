//! Per-request pipeline: read and record the request, apply the fault, route.

use std::convert::Infallible;
use std::sync::Arc;

use http::{header, HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio_util::sync::CancellationToken;

use super::reply::{json, Req, Resp};
use super::{authorize, endpoints, Fault, Recorded, Shared};

/// Request bodies beyond this are refused; every legitimate one is tiny.
const MAX_BODY: usize = 64 * 1024;

pub(crate) async fn handle(
    shared: Arc<Shared>,
    conn: CancellationToken,
    req: Request<Incoming>,
) -> Result<Resp, Infallible> {
    let (parts, body) = req.into_parts();
    // Alibaba Cloud's OAuth service answers at /v1/token and /v1/revoke: the same endpoints.
    let path = match parts.uri.path() {
        "/v1/token" => "/token".to_owned(),
        "/v1/revoke" => "/revoke".to_owned(),
        other => other.to_owned(),
    };
    let Ok(body) = Limited::new(body, MAX_BODY).collect().await else {
        return Ok(json(
            StatusCode::PAYLOAD_TOO_LARGE,
            &serde_json::json!({ "error": "invalid_request", "error_description": "body too large or unreadable" }),
        ));
    };
    let body = body.to_bytes();
    let is_form = is_form(&parts.headers);
    let req = Req {
        query: pairs(parts.uri.query().unwrap_or("").as_bytes()),
        form: if is_form { pairs(&body) } else { Vec::new() },
        method: parts.method,
        is_form,
        body,
        basic: basic(&parts.headers),
    };
    shared.record(Recorded {
        method: req.method.to_string(),
        path: path.clone(),
        query: req.query.clone(),
        form: req.form.clone(),
        basic_client: req.basic.as_ref().map(|(id, _)| id.clone()),
        at: std::time::Instant::now(),
    });
    if matches!(path.as_str(), "/token" | "/revoke") {
        match shared.fault() {
            Fault::Down => {
                // Ends the connection task, which drops this future with it: no answer.
                conn.cancel();
                return std::future::pending().await;
            }
            Fault::Slow(delay) => tokio::time::sleep(delay).await,
            Fault::ServerError => {
                return Ok(json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &serde_json::json!({
                        "error": "temporarily_unavailable",
                        "error_description": "injected fault",
                    }),
                ));
            }
            Fault::None | Fault::InvalidGrant => {}
        }
    }
    Ok(route(&shared, &path, req))
}

/// The form-urlencoded id and secret of `Authorization: Basic` (RFC 6749 §2.3.1).
fn basic(headers: &http::HeaderMap) -> Option<(String, String)> {
    use base64::Engine as _;
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

fn route(shared: &Shared, path: &str, req: Req) -> Resp {
    let post = req.method == Method::POST;
    // Not HEAD: with auto-approval, a GET of /authorize issues a code.
    let get = req.method == Method::GET;
    match path {
        "/.well-known/oauth-authorization-server" | "/.well-known/openid-configuration" => {
            if get || req.method == Method::HEAD {
                endpoints::metadata(shared)
            } else {
                method_not_allowed("GET")
            }
        }
        "/authorize" if get => authorize::get(shared, &req),
        "/authorize/decision" if post => authorize::decision(shared, &req),
        "/token" if post => endpoints::token(shared, &req),
        "/revoke" if post => endpoints::revoke(shared, &req),
        "/introspect" if post => endpoints::introspect(shared, &req),
        "/register" if post && shared.auth().opts.registration => endpoints::register(shared, &req),
        "/device_authorization" if post && shared.auth().opts.device.is_some() => {
            super::device::authorize(shared, &req)
        }
        "/device" if get && shared.auth().opts.device.is_some() => {
            super::device::verification_page(&req)
        }
        "/device" if post && shared.auth().opts.device.is_some() => {
            super::device::decision(shared, &req)
        }
        "/authorize" => method_not_allowed("GET"),
        "/authorize/decision" | "/token" | "/revoke" | "/introspect" => method_not_allowed("POST"),
        _ => json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({ "error": "not_found" }),
        ),
    }
}

fn pairs(encoded: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(encoded)
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect()
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

fn method_not_allowed(allow: &'static str) -> Resp {
    let mut resp = json(
        StatusCode::METHOD_NOT_ALLOWED,
        &serde_json::json!({ "error": "method_not_allowed" }),
    );
    resp.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    resp
}
