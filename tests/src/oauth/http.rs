//! Per-request pipeline: read and record the request, apply the fault, route.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use tokio_util::sync::CancellationToken;

use super::state::OAuthError;
use super::{authorize, endpoints, Fault, Recorded, Shared};

/// Response type of every route.
pub(crate) type Resp = Response<Full<Bytes>>;

/// Request bodies beyond this are refused; every legitimate one is tiny.
const MAX_BODY: usize = 64 * 1024;

/// A request read in full.
pub(crate) struct Req {
    pub method: Method,
    pub query: Vec<(String, String)>,
    /// Decoded form parameters; empty unless the body is form-encoded.
    pub form: Vec<(String, String)>,
    pub is_form: bool,
    pub body: Bytes,
    /// Client id and secret of an `Authorization: Basic` header (RFC 6749 §2.3.1).
    pub basic: Option<(String, String)>,
}

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
        "/authorize" => method_not_allowed("GET"),
        "/authorize/decision" | "/token" | "/revoke" | "/introspect" => method_not_allowed("POST"),
        _ => json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({ "error": "not_found" }),
        ),
    }
}

/// Parameters of a query or form body: each at most once, and an empty value is absent
/// (RFC 6749 §3.1).
pub(crate) struct Params<'a>(pub &'a [(String, String)]);

impl Params<'_> {
    pub fn get(&self, name: &str) -> Result<Option<&str>, OAuthError> {
        let mut values = self.0.iter().filter(|(n, _)| n == name).map(|(_, v)| v);
        match (values.next(), values.next()) {
            (_, Some(_)) => Err(OAuthError::invalid_request(format!(
                "parameter {name} repeated"
            ))),
            (Some(v), None) if !v.is_empty() => Ok(Some(v)),
            _ => Ok(None),
        }
    }

    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)?
            .ok_or_else(|| OAuthError::invalid_request(format!("missing {name}")))
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

/// A JSON response; nothing the server says may be cached (RFC 6749 §5.1).
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Resp {
    response(status, "application/json", value.to_string())
}

/// 400 with `{"error", "error_description"}` (RFC 6749 §5.2).
pub(crate) fn oauth_error(err: &OAuthError) -> Resp {
    json(
        StatusCode::BAD_REQUEST,
        &serde_json::json!({ "error": err.error, "error_description": err.description }),
    )
}

/// An HTML page.
pub(crate) fn html(status: StatusCode, body: String) -> Resp {
    response(status, "text/html; charset=utf-8", body)
}

/// 302 to `location`.
pub(crate) fn redirect(location: &str) -> Resp {
    let mut resp = response(StatusCode::FOUND, "text/plain", "");
    match header::HeaderValue::from_str(location) {
        Ok(value) => {
            resp.headers_mut().insert(header::LOCATION, value);
            resp
        }
        Err(_) => html(StatusCode::BAD_REQUEST, page("Bad redirect", "")),
    }
}

/// A minimal HTML document; `body` must already be escaped.
pub(crate) fn page(title: &str, body: &str) -> String {
    let title = escape(title);
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body><h1>{title}</h1>\n{body}\n</body></html>\n"
    )
}

/// Escapes text for HTML content and double-quoted attributes.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
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

fn response(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::PRAGMA, "no-cache")
        .body(Full::new(body.into()))
        .expect("static response parts are valid")
}
