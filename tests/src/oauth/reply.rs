//! What the endpoints share: the request as read, its parameters, and the responses they
//! answer with (never cached, RFC 6749 §5.1).

use bytes::Bytes;
use http::{header, Method, Response, StatusCode};
use http_body_util::Full;

use super::state::OAuthError;

/// Response type of every route.
pub(crate) type Resp = Response<Full<Bytes>>;

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

pub(crate) fn response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Resp {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::PRAGMA, "no-cache")
        .body(Full::new(body.into()))
        .expect("static response parts are valid")
}
