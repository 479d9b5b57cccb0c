//! Per-request pipeline: read, verify the signature and nonce, route to IMS or the listing,
//! record, answer.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

use super::verify::{self, Rejection};
use super::{ims, listing, Recorded, Reply, Shared};

/// Every legitimate request body is empty.
const MAX_BODY: usize = 64 * 1024;

pub(crate) async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let action = parts
        .headers
        .get("x-acs-action")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let query = pairs(&raw_query);
    let reply = match Limited::new(body, MAX_BODY).collect().await {
        Err(_) => Reply::error(413, "RequestTooLarge", "the body is too large"),
        Ok(body) => {
            let body = body.to_bytes();
            let incoming = verify::Incoming {
                method: parts.method.as_str(),
                raw_path: parts.uri.path(),
                raw_query: &raw_query,
                headers: &parts.headers,
                authority: parts.uri.authority().map(|a| a.as_str()),
                body: &body,
            };
            route(
                &shared,
                &parts.method,
                &path,
                action.as_deref(),
                &incoming,
                &query,
            )
        }
    };
    let rpc = path == "/";
    shared.record(Recorded {
        method: parts.method.to_string(),
        path,
        action,
        query,
        status: reply.status,
        code: reply
            .body
            .get("Code")
            .and_then(|c| c.as_str())
            .map(str::to_string),
    });
    Ok(respond(reply, rpc))
}

fn route(
    shared: &Shared,
    method: &Method,
    path: &str,
    action: Option<&str>,
    incoming: &verify::Incoming<'_>,
    query: &[(String, String)],
) -> Reply {
    let service = match (path, method) {
        ("/", &Method::GET | &Method::POST) => Service::Ims,
        (listing::PATH, &Method::GET) => Service::Listing,
        _ => return Reply::error(404, "InvalidApi.NotFound", "no such API path"),
    };
    let mut state = shared.state();
    if let Err(rejection) = verify::verify(incoming, &state.key, Some(SystemTime::now())) {
        return rejected(rejection);
    }
    let nonce = incoming
        .headers
        .get("x-acs-signature-nonce")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !state.nonces.insert(nonce.to_string()) {
        return Reply::error(
            400,
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        );
    }
    let version = incoming
        .headers
        .get("x-acs-version")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let action = action.unwrap_or_default();
    match service {
        Service::Ims => {
            if version != ims::VERSION {
                return invalid_version(version);
            }
            if state.ims_unavailable {
                return unavailable();
            }
            let state = &mut *state;
            ims::handle(&mut state.apps, &mut state.next_app_id, action, query)
        }
        Service::Listing => {
            if action != listing::ACTION {
                return Reply::error(
                    404,
                    "InvalidAction.NotFound",
                    format!("Specified api {action} is not found"),
                );
            }
            if version != listing::VERSION {
                return invalid_version(version);
            }
            listing::handle(
                state.servers,
                &state.account,
                &shared.origin,
                state.listing_fault,
                query,
            )
        }
    }
}

enum Service {
    Ims,
    Listing,
}

fn rejected(r: Rejection) -> Reply {
    Reply::error(r.status, r.code, r.message)
}

fn invalid_version(version: &str) -> Reply {
    Reply::error(
        400,
        "InvalidVersion",
        format!("Specified parameter Version {version} is not valid."),
    )
}

fn unavailable() -> Reply {
    Reply::error(
        503,
        "ServiceUnavailable",
        "The request has failed due to a temporary failure of the server.",
    )
}

/// The reply as JSON, with `RequestId` (RPC) or `requestId` (ROA, on success) added.
fn respond(mut reply: Reply, rpc: bool) -> Response<Full<Bytes>> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = format!(
        "FAKE-{:08}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    if let Some(obj) = reply.body.as_object_mut() {
        let key = if rpc || obj.contains_key("Code") {
            "RequestId"
        } else {
            "requestId"
        };
        obj.insert(key.into(), id.into());
    }
    Response::builder()
        .status(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json;charset=utf-8")
        .body(Full::new(Bytes::from(reply.body.to_string())))
        .expect("static response parts are valid")
}

fn pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            (unescape(n), unescape(v))
        })
        .collect()
}

/// Percent-decoding for the record (not for the signature, which [`verify`] rebuilds itself).
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |j: usize| bytes.get(j).and_then(|b| (*b as char).to_digit(16));
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
