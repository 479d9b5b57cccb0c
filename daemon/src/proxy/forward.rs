//! Step 5 of the pipeline: sending the request upstream with the profile's token. A small body
//! (up to `limits.retry_body_limit`) is kept so the request can be sent once more after an
//! upstream 401 and a refresh; anything larger streams through, never buffered. Either way the
//! client must keep its body coming (`limits.body_read_timeout`), and a body the client broke is
//! answered as the client's fault.

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http_body::Body as _;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use secrecy::{ExposeSecret, SecretString};

use crate::config::{Limits, Upstream};
use crate::proxy::body::{Fault, FaultCell, RequestBody};
use crate::proxy::error::ProxyError;
use crate::proxy::headers;

/// The client's request body, kept or waiting to be streamed.
pub enum OutBody {
    Kept(Bytes),
    /// The body, until it is sent, and the copy of its first bytes.
    Streamed(Option<Incoming>, Arc<std::sync::Mutex<Vec<u8>>>),
}

impl OutBody {
    /// Keeps the body when it is known to be small; refuses one announced over the limit.
    pub async fn new(
        parts: &Parts,
        body: Incoming,
        limits: &Limits,
    ) -> Result<OutBody, ProxyError> {
        let too_large = ProxyError::BodyTooLarge {
            limit: limits.max_request_body,
        };
        let declared = declared_length(parts);
        if declared.is_some_and(|n| n > limits.max_request_body) {
            return Err(too_large);
        }
        let exact = body.size_hint().exact();
        let small = body.is_end_stream()
            || declared
                .or(exact)
                .is_some_and(|n| n <= limits.retry_body_limit);
        if !small {
            return Ok(OutBody::Streamed(Some(body), Default::default()));
        }
        let limit = limits.retry_body_limit.min(limits.max_request_body) as usize;
        let fault = Arc::new(FaultCell::default());
        let timed = RequestBody::new(body, u64::MAX, limits.body_read_timeout, fault.clone());
        match Limited::new(timed, limit).collect().await {
            Ok(collected) => Ok(OutBody::Kept(collected.to_bytes())),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large),
            // The client stalled, went away or sent a broken body: nothing to forward.
            Err(_) => Err(client_fault(fault.get(), limits).unwrap_or(ProxyError::BadBody)),
        }
    }

    /// The bytes, if kept (so the request can be repeated).
    pub fn kept(&self) -> Option<Bytes> {
        match self {
            OutBody::Kept(b) => Some(b.clone()),
            OutBody::Streamed(..) => None,
        }
    }

    /// The JSON-RPC method and tool, from the body's first bytes seen so far.
    pub fn rpc_info(&self) -> crate::proxy::rpc_scan::RpcInfo {
        match self {
            OutBody::Kept(b) => crate::proxy::rpc_scan::scan(b),
            OutBody::Streamed(_, captured) => {
                crate::proxy::rpc_scan::scan(&captured.lock().unwrap_or_else(|e| e.into_inner()))
            }
        }
    }

    fn take(&mut self, limits: &Limits, fault: Arc<FaultCell>) -> reqwest::Body {
        match self {
            OutBody::Kept(b) => reqwest::Body::from(b.clone()),
            OutBody::Streamed(body, captured) => match body.take() {
                Some(b) => reqwest::Body::wrap(
                    RequestBody::new(b, limits.max_request_body, limits.body_read_timeout, fault)
                        .capturing(captured.clone()),
                ),
                None => reqwest::Body::from(Bytes::new()),
            },
        }
    }
}

/// Sends the request once with `token`; maps failures to the proxy's errors.
pub async fn send(
    client: &reqwest::Client,
    upstream: &Upstream,
    parts: &Parts,
    url: url::Url,
    token: &SecretString,
    body: &mut OutBody,
    limits: &Limits,
) -> Result<reqwest::Response, ProxyError> {
    let out_headers =
        headers::request_headers(&parts.headers, token.expose_secret()).map_err(|_| {
            ProxyError::NotLoggedIn {
                profile: upstream.auth.clone(),
                message: "the stored token cannot be sent in a header; log in again".into(),
            }
        })?;
    let fault = Arc::new(FaultCell::default());
    let request = client
        .request(parts.method.clone(), url)
        .headers(out_headers)
        .body(body.take(limits, fault.clone()));
    match tokio::time::timeout(limits.response_header_timeout, request.send()).await {
        Err(_) => Err(ProxyError::UpstreamTimeout {
            upstream: upstream.name.clone(),
        }),
        Ok(Err(_)) if fault.get().is_some() => {
            Err(client_fault(fault.get(), limits).unwrap_or(ProxyError::BadBody))
        }
        Ok(Err(e)) => {
            // Without the URL: it would carry the query string into the log.
            tracing::warn!(upstream = %upstream.name, error = %error_chain(&e.without_url()), "upstream request failed");
            Err(ProxyError::UpstreamUnreachable {
                upstream: upstream.name.clone(),
            })
        }
        Ok(Ok(mut r)) => {
            headers::drop_echoed_token(r.headers_mut(), token.expose_secret());
            Ok(r)
        }
    }
}

/// The body length the client announced in `Content-Length`, if it did.
pub(crate) fn declared_length(parts: &Parts) -> Option<u64> {
    parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// The proxy's answer to a request body the client got wrong.
pub(crate) fn client_fault(fault: Option<Fault>, limits: &Limits) -> Option<ProxyError> {
    Some(match fault? {
        Fault::TooLarge => ProxyError::BodyTooLarge {
            limit: limits.max_request_body,
        },
        Fault::Broken => ProxyError::BadBody,
        Fault::TimedOut => ProxyError::BodyTimeout {
            timeout: limits.body_read_timeout,
        },
    })
}

/// The error and its causes on one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}
