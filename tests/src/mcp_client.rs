//! A small MCP client speaking raw JSON-RPC over HTTP (Streamable HTTP), for end-to-end tests.
//!
//! It hides nothing a proxy test may want to see: [`McpClient::request`] returns the
//! notifications that came before the answer and the content type it came as, and
//! [`McpClient::post_raw`] returns the bare HTTP response.

use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::sse::SseParser;

/// The protocol version offered in `initialize`.
pub const PROTOCOL_VERSION: &str = "2025-06-18";

const ACCEPT_BOTH: &str = "application/json, text/event-stream";

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum McpClientError {
    /// The HTTP exchange failed.
    #[error("HTTP request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The server answered a non-success status.
    #[error("HTTP status {status}: {body}")]
    Status {
        /// The status.
        status: StatusCode,
        /// The body, as text.
        body: String,
    },
    /// The answer was neither JSON nor an event stream.
    #[error("unexpected content type {0:?}")]
    ContentType(String),
    /// A body or event was not JSON.
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The stream ended before the response to request `0`.
    #[error("no response to request {0}")]
    NoResponse(u64),
}

/// The answer to one request.
#[derive(Debug, Clone)]
pub struct RpcReply {
    /// The JSON-RPC response (with `result` or `error`) whose id matches the request.
    pub response: Value,
    /// Messages that came before it on the same stream (progress, logs, requests).
    pub notifications: Vec<Value>,
    /// `application/json` or `text/event-stream`.
    pub content_type: String,
}

/// A client bound to one MCP endpoint URL.
#[derive(Debug)]
pub struct McpClient {
    http: reqwest::Client,
    url: String,
    extra_headers: HeaderMap,
    session_id: Option<String>,
    protocol_version: Option<String>,
    next_id: AtomicU64,
}

// === impl McpClient ===

impl McpClient {
    /// A client for the endpoint `url`, not yet initialised.
    pub fn new(http: reqwest::Client, url: impl Into<String>) -> Self {
        Self {
            http,
            url: url.into(),
            extra_headers: HeaderMap::new(),
            session_id: None,
            protocol_version: None,
            next_id: AtomicU64::new(1),
        }
    }

    /// Sends `name: value` on every request (e.g. `Authorization` straight to an upstream).
    ///
    /// # Panics
    /// If `name` or `value` is not a valid header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        let name = HeaderName::try_from(name).expect("valid header name");
        let value = HeaderValue::try_from(value).expect("valid header value");
        self.extra_headers.insert(name, value);
        self
    }

    /// The session id the server assigned in `initialize`, if any.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// The negotiated protocol version, once initialised.
    pub fn protocol_version(&self) -> Option<&str> {
        self.protocol_version.as_deref()
    }

    /// `initialize`, then `notifications/initialized`; keeps the session id and
    /// protocol version for later requests. Returns the `initialize` response.
    pub async fn initialize(&mut self) -> Result<Value, McpClientError> {
        let id = self.next_id();
        let body = json!({
            "jsonrpc": "2.0",
            "id": id,
            "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": { "name": "mcpproxy-tests", "version": env!("CARGO_PKG_VERSION") },
            },
        });
        let resp = check_status(self.post_raw(body.to_string()).await?).await?;
        self.session_id = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let reply = read_reply(resp, id).await?;
        self.protocol_version = reply.response["result"]["protocolVersion"]
            .as_str()
            .map(str::to_owned);
        self.notify("notifications/initialized", None).await?;
        Ok(reply.response)
    }

    /// Sends a request and waits for its response, collecting what came before it.
    pub async fn request(&self, method: &str, params: Value) -> Result<RpcReply, McpClientError> {
        let id = self.next_id();
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        let resp = check_status(self.post_raw(body.to_string()).await?).await?;
        read_reply(resp, id).await
    }

    /// Sends a notification; returns the status (202 from a conforming server).
    pub async fn notify(
        &self,
        method: &str,
        params: Option<Value>,
    ) -> Result<StatusCode, McpClientError> {
        let mut body = json!({ "jsonrpc": "2.0", "method": method });
        if let Some(params) = params {
            body["params"] = params;
        }
        let resp = check_status(self.post_raw(body.to_string()).await?).await?;
        Ok(resp.status())
    }

    /// `tools/call`; returns the JSON-RPC response (`result` or `error`).
    pub async fn call_tool(&self, name: &str, arguments: Value) -> Result<Value, McpClientError> {
        let params = json!({ "name": name, "arguments": arguments });
        Ok(self.request("tools/call", params).await?.response)
    }

    /// `tools/list`; returns the JSON-RPC response.
    pub async fn list_tools(&self) -> Result<Value, McpClientError> {
        Ok(self.request("tools/list", json!({})).await?.response)
    }

    /// POSTs `body` as JSON with the session headers; the response is left unread.
    pub async fn post_raw(
        &self,
        body: impl Into<reqwest::Body>,
    ) -> Result<reqwest::Response, reqwest::Error> {
        self.http
            .post(&self.url)
            .headers(self.session_headers())
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
    }

    /// Opens the server-to-client stream (GET); the response is left unread.
    pub async fn get_stream(&self) -> Result<reqwest::Response, reqwest::Error> {
        self.http
            .get(&self.url)
            .headers(self.session_headers())
            .header(ACCEPT, "text/event-stream")
            .send()
            .await
    }

    /// Ends the session (DELETE); returns the status.
    pub async fn delete_session(&self) -> Result<StatusCode, reqwest::Error> {
        let resp = self
            .http
            .delete(&self.url)
            .headers(self.session_headers())
            .send()
            .await?;
        Ok(resp.status())
    }

    fn session_headers(&self) -> HeaderMap {
        let mut headers = self.extra_headers.clone();
        headers.insert(ACCEPT, HeaderValue::from_static(ACCEPT_BOTH));
        let pairs = [
            ("mcp-session-id", &self.session_id),
            ("mcp-protocol-version", &self.protocol_version),
        ];
        for (name, value) in pairs {
            if let Some(value) = value.as_deref().and_then(|v| HeaderValue::try_from(v).ok()) {
                headers.insert(name, value);
            }
        }
        headers
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

async fn check_status(resp: reqwest::Response) -> Result<reqwest::Response, McpClientError> {
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    Err(McpClientError::Status { status, body })
}

/// Reads a JSON body, or an event stream up to the response with `id`.
async fn read_reply(mut resp: reqwest::Response, id: u64) -> Result<RpcReply, McpClientError> {
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("application/json") {
        let response = serde_json::from_slice(&resp.bytes().await?)?;
        return Ok(RpcReply {
            response,
            notifications: Vec::new(),
            content_type,
        });
    }
    if !essence.eq_ignore_ascii_case("text/event-stream") {
        return Err(McpClientError::ContentType(content_type));
    }
    let mut parser = SseParser::new();
    let mut notifications = Vec::new();
    // Stop at the matching response: the server may keep the stream open after it.
    while let Some(chunk) = resp.chunk().await? {
        for event in parser.push(&chunk) {
            if event.data.is_empty() {
                continue; // priming events carry only an id and a retry
            }
            let message: Value = serde_json::from_str(&event.data)?;
            let is_reply = message.get("id").and_then(Value::as_u64) == Some(id)
                && (message.get("result").is_some() || message.get("error").is_some());
            if is_reply {
                return Ok(RpcReply {
                    response: message,
                    notifications,
                    content_type,
                });
            }
            notifications.push(message);
        }
    }
    Err(McpClientError::NoResponse(id))
}
