//! The admin API's replies, shared by the handlers: JSON bodies, JSON errors with a stable
//! code, the refusal of a caller, and strict, size-limited JSON request bodies.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use mcpproxyd_api::{self as api, codes};
use serde::de::DeserializeOwned;

pub(super) type Resp = Response<Full<Bytes>>;

/// An admin error: status, stable code, message.
pub(super) struct Failure(pub StatusCode, pub &'static str, pub String);

pub(super) fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Resp {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

pub(super) fn error(f: Failure) -> Resp {
    json(f.0, &api::ErrorBody::new(f.1, f.2))
}

/// The raw HTTP answer for a caller the peer-credential check refused (nothing was read).
pub fn refusal(why: &str) -> Vec<u8> {
    let body = serde_json::to_string(&api::ErrorBody::new(
        codes::PEER_REFUSED,
        format!("refused: {why}"),
    ))
    .unwrap_or_default();
    format!(
        "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads a size-limited JSON body; `None` when there is none.
pub(super) async fn read_json<T: DeserializeOwned>(
    req: Request<Incoming>,
) -> Result<Option<T>, Failure> {
    let too_large = || {
        Failure(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::BODY_TOO_LARGE,
            format!(
                "request bodies are limited to {} bytes",
                api::MAX_REQUEST_BODY
            ),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > api::MAX_REQUEST_BODY as u64) {
        return Err(too_large());
    }
    let is_json = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        });
    let bytes = Limited::new(req.into_body(), api::MAX_REQUEST_BODY)
        .collect()
        .await
        .map_err(|_| too_large())?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if is_json == Some(false) {
        return Err(Failure(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            codes::UNSUPPORTED_MEDIA_TYPE,
            "send the body as Content-Type: application/json".into(),
        ));
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        Failure(
            StatusCode::BAD_REQUEST,
            codes::BAD_REQUEST,
            format!("invalid JSON body: {e}"),
        )
    })
}
