//! An authorization server at the MCP server's own origin, as the 2025-03-26 revision of the MCP
//! authorization spec had it: the OAuth paths are forwarded to the test authorization server
//! (started with [`crate::oauth::OAuthOptions::issuer`] set to this origin) and its answers
//! passed back as they are.

use http::{header, StatusCode};
use http_body_util::BodyExt;

use super::router::{full, json, Req, RespBody};
use super::Shared;

/// Where an upstream sends the OAuth paths of its origin.
#[derive(Debug, Clone)]
pub struct OAuthFront {
    /// The authorization server's own origin, e.g. `https://127.0.0.1:PORT`.
    pub target: String,
    /// A client trusting it.
    pub client: reqwest::Client,
    /// Pass its RFC 8414 metadata on too; else 404, and clients must fall back to the default
    /// endpoints `/authorize`, `/token` and `/register`.
    pub metadata: bool,
}

const METADATA: [&str; 2] = [
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
];
const ENDPOINTS: [&str; 5] = [
    "/authorize",
    "/authorize/decision",
    "/token",
    "/register",
    "/revoke",
];

/// Whether the front answers `path`.
pub(crate) fn serves(shared: &Shared, path: &str) -> bool {
    shared.oauth_front.is_some() && (METADATA.contains(&path) || ENDPOINTS.contains(&path))
}

/// The authorization server's answer to `req`.
pub(crate) async fn forward(shared: &Shared, req: Req) -> http::Response<RespBody> {
    let front = shared.oauth_front.as_ref().expect("checked by serves()");
    let path = req.uri().path().to_string();
    if METADATA.contains(&path.as_str()) && !front.metadata {
        return json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({ "error": "not_found" }),
        );
    }
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let (parts, body) = req.into_parts();
    let Ok(body) = body.collect().await else {
        return json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({ "error": "unreadable body" }),
        );
    };
    let mut out = front
        .client
        .request(parts.method, format!("{}{path}{query}", front.target))
        .body(body.to_bytes());
    for name in [header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT] {
        if let Some(v) = parts.headers.get(&name) {
            out = out.header(name, v);
        }
    }
    let answer = match out.send().await {
        Ok(answer) => answer,
        Err(e) => {
            let msg = format!("authorization server: {e}");
            return json(
                StatusCode::BAD_GATEWAY,
                &serde_json::json!({ "error": msg }),
            );
        }
    };
    let mut resp = http::Response::builder().status(answer.status());
    for name in [
        header::CONTENT_TYPE,
        header::LOCATION,
        header::CACHE_CONTROL,
    ] {
        if let Some(v) = answer.headers().get(&name) {
            resp = resp.header(name, v);
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    resp.body(full(bytes)).expect("copied parts are valid")
}
