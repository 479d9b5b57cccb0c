//! The proxy's errors and the one place that maps each to an HTTP status and a JSON body.

use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{Response, StatusCode};

use crate::auth::client_keys::Refusal;
use crate::proxy::acl::Decision;
use crate::proxy::body::ProxyBody;
use crate::proxy::guard::GuardError;
use crate::proxy::path::PathError;

/// Why the proxy answered a request itself instead of forwarding the upstream's answer.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{0}")]
    Guard(#[from] GuardError),
    #[error("{0}; the proxy forwards paths only in normal form")]
    BadPath(PathError),
    #[error("unsupported request target; send an origin-form path such as /mcp")]
    BadTarget,
    #[error("no upstream is mounted at this path")]
    NoRoute,
    #[error("{0}")]
    Reserved(&'static str),
    #[error("access denied: {}", .0.reason())]
    Denied(Decision),
    #[error("{message}")]
    NotLoggedIn { profile: String, message: String },
    #[error("{message}")]
    TokenUnavailable { profile: String, message: String },
    /// The upstream answered 403 `insufficient_scope` (step-up).
    #[error("{message}")]
    InsufficientScope {
        profile: String,
        scopes: Vec<String>,
        rpc_id: Option<serde_json::Value>,
        message: String,
    },
    #[error("the request body could not be read")]
    BadBody,
    #[error(
        "the request body stopped arriving for longer than limits.body_read_timeout ({timeout:?})"
    )]
    BodyTimeout { timeout: std::time::Duration },
    #[error("the method {0} is not forwarded; MCP uses GET, POST and DELETE (and HEAD, OPTIONS)")]
    MethodNotAllowed(http::Method),
    #[error("the request body is larger than limits.max_request_body ({limit} bytes)")]
    BodyTooLarge { limit: u64 },
    #[error("the upstream `{upstream}` could not be reached")]
    UpstreamUnreachable { upstream: String },
    #[error("the upstream `{upstream}` did not answer within limits.response_header_timeout")]
    UpstreamTimeout { upstream: String },
    /// No usable client key on a listener that requires one, or a key that does not cover
    /// the request (see `client_key`).
    #[error("{}", crate::proxy::client_key::message(.0))]
    ClientKey(Refusal),
}

impl ProxyError {
    /// The status and the stable machine-readable code of each error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ProxyError::Guard(GuardError::MissingHost) => (StatusCode::BAD_REQUEST, "missing_host"),
            ProxyError::Guard(GuardError::Duplicate) => {
                (StatusCode::BAD_REQUEST, "duplicate_header")
            }
            ProxyError::Guard(GuardError::BadHost(_)) => {
                (StatusCode::FORBIDDEN, "host_not_allowed")
            }
            ProxyError::Guard(GuardError::BadOrigin(_)) => {
                (StatusCode::FORBIDDEN, "origin_not_allowed")
            }
            ProxyError::BadPath(_) => (StatusCode::BAD_REQUEST, "path_not_normal"),
            ProxyError::BadTarget => (StatusCode::BAD_REQUEST, "bad_target"),
            ProxyError::NoRoute => (StatusCode::NOT_FOUND, "no_route"),
            ProxyError::Reserved(_) => (StatusCode::NOT_FOUND, "not_found"),
            ProxyError::Denied(_) => (StatusCode::FORBIDDEN, "access_denied"),
            ProxyError::NotLoggedIn { .. } => (StatusCode::UNAUTHORIZED, "login_required"),
            ProxyError::InsufficientScope { .. } => (StatusCode::FORBIDDEN, "insufficient_scope"),
            ProxyError::BodyTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            ProxyError::TokenUnavailable { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "token_unavailable")
            }
            ProxyError::BadBody => (StatusCode::BAD_REQUEST, "bad_body"),
            ProxyError::BodyTimeout { .. } => (StatusCode::REQUEST_TIMEOUT, "body_timeout"),
            ProxyError::MethodNotAllowed(_) => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
            }
            ProxyError::UpstreamUnreachable { .. } => {
                (StatusCode::BAD_GATEWAY, "upstream_unreachable")
            }
            ProxyError::UpstreamTimeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
            ProxyError::ClientKey(r) => {
                (StatusCode::UNAUTHORIZED, crate::proxy::client_key::code(r))
            }
        }
    }

    /// The JSON error response. A 401 deliberately carries no `WWW-Authenticate`: the local app
    /// must not start an OAuth flow of its own.
    pub fn into_response(self) -> Response<ProxyBody> {
        let (status, code) = self.status_and_code();
        if let ProxyError::InsufficientScope {
            profile,
            scopes,
            rpc_id: Some(id),
            message,
        } = &self
        {
            // Answered to the JSON-RPC request, so the app sees why its call failed.
            let body = serde_json::json!({
                "jsonrpc": "2.0", "id": id,
                "error": { "code": -32001, "message": message,
                           "data": { "code": code, "profile": profile, "needed_scopes": scopes } },
            });
            return json_response(StatusCode::OK, &body);
        }
        let mut body = serde_json::json!({
            "error": { "code": code, "message": self.to_string() }
        });
        if let ProxyError::Denied(decision) = &self {
            body["error"]["rule"] = serde_json::Value::String(decision.rule());
        }
        if let ProxyError::NotLoggedIn { profile, .. } = &self {
            body["error"]["profile"] = serde_json::Value::String(profile.clone());
        }
        let mut response = json_response(status, &body);
        match &self {
            ProxyError::MethodNotAllowed(_) => {
                response.headers_mut().insert(
                    http::header::ALLOW,
                    HeaderValue::from_static(ALLOWED_METHODS),
                );
            }
            // The rest of the body may still be on its way: don't wait for it.
            ProxyError::BodyTimeout { .. } => {
                response
                    .headers_mut()
                    .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

/// The methods the proxy forwards, as an `Allow` value: those of the MCP transports.
pub const ALLOWED_METHODS: &str = "GET, POST, DELETE, HEAD, OPTIONS";

/// A small JSON response made by the proxy itself.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<ProxyBody> {
    let mut text = body.to_string();
    text.push('\n');
    let mut resp = Response::new(crate::proxy::body::full(text));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
