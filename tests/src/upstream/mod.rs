//! The test MCP upstream: a real HTTPS (or HTTP) server on an ephemeral loopback port.
//!
//! Every request needs `Authorization: Bearer <token>`. Routes, by path:
//! - `…/mcp`: rmcp's Streamable HTTP server, stateful (`Mcp-Session-Id`), SSE answers.
//! - `…/mcp-json`, `…/mcp?json=1`, `…/mcp-demo`: rmcp in stateless mode with JSON
//!   answers (rmcp offers JSON answers only without sessions); a lone `tools/call`
//!   works without `initialize`.
//! - `…/sse` (GET) and `…/message?sessionId=` (POST): the legacy HTTP+SSE transport.
//! - `/raw/…`: plain HTTP helpers for proxy tests (see [`raw`]).
//! - `…/catalog-mcp` (POST): a lax JSON-RPC server with Alibaba tool names that records the
//!   tools it is asked to run (see [`catalog`]).
//! - `/.well-known/oauth-protected-resource[/…]`: RFC 9728 metadata when
//!   [`UpstreamOptions::authorization_server`] is set, else 404; the one route
//!   served without a token, as on real servers.
//! - With [`UpstreamOptions::oauth_front`], the OAuth paths of an authorization server at this
//!   origin (see [`oauth_front`]), also without a token.
//!
//! Tools: `echo`, `add`, `slow_count` ([`tools::TestTools`]).

pub mod bench;
pub mod catalog;
mod legacy;
mod oauth_front;
pub mod prm;
pub mod raw;
mod router;
pub mod tools;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::tls::TestCa;
pub use oauth_front::OAuthFront;
pub use prm::{ResourceOptions, ScopeLookup};
use tools::TestTools;

/// How the legacy SSE `endpoint` event names the message URL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EndpointStyle {
    /// A path: `/accounts/1/x/message?sessionId=ID`.
    #[default]
    Relative,
    /// An absolute URL on this server's origin: `https://127.0.0.1:PORT/accounts/1/x/message?sessionId=ID`.
    Absolute,
}

/// Decides whether a bearer token is accepted (e.g. asks the test authorization server).
#[derive(Clone)]
pub struct TokenValidator(pub Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl std::fmt::Debug for TokenValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenValidator")
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct UpstreamOptions {
    /// The only accepted bearer token (unless `validator` is set).
    pub token: String,
    /// Accepts the tokens this says are good instead of `token`.
    pub validator: Option<TokenValidator>,
    /// HTTPS with a fresh [`TestCa`] (default), else plain HTTP.
    pub tls: bool,
    /// Form of the legacy SSE `endpoint` event.
    pub legacy_endpoint: EndpointStyle,
    /// Issuer URL advertised in the protected-resource metadata; `None` answers it with 404.
    pub authorization_server: Option<String>,
    /// The shape of the challenge and metadata.
    pub resource: ResourceOptions,
    /// An authorization server served at this origin (the 2025-03-26 layout).
    pub oauth_front: Option<OAuthFront>,
}

impl Default for UpstreamOptions {
    fn default() -> Self {
        Self {
            token: DEFAULT_TOKEN.to_owned(),
            validator: None,
            tls: true,
            legacy_endpoint: EndpointStyle::Relative,
            authorization_server: None,
            resource: ResourceOptions::default(),
            oauth_front: None,
        }
    }
}

/// Token of [`UpstreamOptions::default`].
pub const DEFAULT_TOKEN: &str = "test-upstream-token";

/// One request as received, recorded even when it was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, as sent.
    pub path: String,
    /// The raw query string, without `?`.
    pub query: Option<String>,
    /// All headers in arrival order, names lower-case.
    pub headers: Vec<(String, String)>,
    /// Body bytes the server has read so far (all of them once a route has read the body).
    pub body_len: usize,
    /// HTTP version, e.g. `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Which closed-stream counter a stream reports to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StreamKind {
    /// `/raw/slow-sse` and `/raw/hang`.
    Raw,
    /// Legacy SSE `GET …/sse`.
    Legacy,
}

/// State shared by the accept loop, every connection and the handle.
pub(crate) struct Shared {
    token: String,
    validator: Option<TokenValidator>,
    base_url: String,
    legacy_endpoint: EndpointStyle,
    authorization_server: Option<String>,
    resource: ResourceOptions,
    oauth_front: Option<OAuthFront>,
    records: Mutex<Vec<RecordedRequest>>,
    requests_seen: watch::Sender<usize>,
    release: Semaphore,
    closed_raw: watch::Sender<usize>,
    closed_legacy: watch::Sender<usize>,
    legacy_sessions: Mutex<HashMap<String, mpsc::Sender<ClientJsonRpcMessage>>>,
    /// Tools `…/catalog-mcp` was asked to run, in order.
    tool_calls: Mutex<Vec<String>>,
    mcp: StreamableHttpService<TestTools, LocalSessionManager>,
    mcp_stateless: StreamableHttpService<TestTools, NeverSessionManager>,
    shutdown: CancellationToken,
}

impl Shared {
    fn counter(&self, kind: StreamKind) -> &watch::Sender<usize> {
        match kind {
            StreamKind::Raw => &self.closed_raw,
            StreamKind::Legacy => &self.closed_legacy,
        }
    }

    fn stream_closed(&self, kind: StreamKind) {
        self.counter(kind).send_modify(|n| *n += 1);
    }

    fn records(&self) -> MutexGuard<'_, Vec<RecordedRequest>> {
        // A panicking test thread must not hide the other requests.
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn tool_calls(&self) -> MutexGuard<'_, Vec<String>> {
        self.tool_calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn legacy_sessions(
        &self,
    ) -> MutexGuard<'_, HashMap<String, mpsc::Sender<ClientJsonRpcMessage>>> {
        self.legacy_sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

/// Counts a stream as closed by the client when dropped before [`finish`](Self::finish).
pub(crate) struct ClosedGuard {
    shared: Arc<Shared>,
    kind: StreamKind,
    finished: bool,
}

impl ClosedGuard {
    pub(crate) fn new(shared: Arc<Shared>, kind: StreamKind) -> Self {
        Self {
            shared,
            kind,
            finished: false,
        }
    }

    /// The server ended the stream itself: the drop is not the client's doing.
    pub(crate) fn finish(&mut self) {
        self.finished = true;
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl Drop for ClosedGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.shared.stream_closed(self.kind);
        }
    }
}

/// A running test upstream; dropping it shuts it down.
pub struct TestUpstream {
    addr: SocketAddr,
    /// The CA whose leaf the server presents; `None` for plain HTTP.
    pub ca: Option<TestCa>,
    shared: Arc<Shared>,
}

/// Starts a test upstream on `127.0.0.1:0`.
pub async fn start(opts: UpstreamOptions) -> anyhow::Result<TestUpstream> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    serve(listener, opts)
}

/// Serves on an already-bound listener (the binary binds `--host`/`--port` itself).
pub fn serve(listener: TcpListener, opts: UpstreamOptions) -> anyhow::Result<TestUpstream> {
    let addr = listener.local_addr()?;
    let ca = opts.tls.then(TestCa::new);
    let scheme = if opts.tls { "https" } else { "http" };
    let base_url = format!("{scheme}://{addr}");
    let shutdown = CancellationToken::new();

    let mcp_config =
        || StreamableHttpServerConfig::default().with_cancellation_token(shutdown.child_token());
    let mcp = StreamableHttpService::new(
        || Ok(TestTools::new()),
        Arc::new(LocalSessionManager::default()),
        mcp_config(),
    );
    let mcp_stateless = StreamableHttpService::new(
        || Ok(TestTools::new()),
        Arc::new(NeverSessionManager::default()),
        mcp_config()
            .with_legacy_session_mode(false)
            .with_json_response(true),
    );

    let shared = Arc::new(Shared {
        token: opts.token,
        validator: opts.validator,
        base_url,
        legacy_endpoint: opts.legacy_endpoint,
        authorization_server: opts.authorization_server,
        resource: opts.resource,
        oauth_front: opts.oauth_front,
        records: Mutex::new(Vec::new()),
        requests_seen: watch::Sender::new(0),
        release: Semaphore::new(0),
        closed_raw: watch::Sender::new(0),
        closed_legacy: watch::Sender::new(0),
        legacy_sessions: Mutex::new(HashMap::new()),
        tool_calls: Mutex::new(Vec::new()),
        mcp,
        mcp_stateless,
        shutdown,
    });
    let acceptor = ca.as_ref().map(|ca| TlsAcceptor::from(ca.server_config()));
    let handler = shared.clone();
    crate::accept::serve(
        listener,
        acceptor,
        shared.shutdown.clone(),
        move |req, _| router::handle(handler.clone(), req),
    );
    Ok(TestUpstream { addr, ca, shared })
}

// === impl TestUpstream ===

impl TestUpstream {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT` (or `http://…`), without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// `base_url()` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.shared.base_url)
    }

    /// The accepted bearer token.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// The CA certificate as PEM; `None` for plain HTTP.
    pub fn ca_pem(&self) -> Option<String> {
        self.ca.as_ref().map(TestCa::ca_pem)
    }

    /// A client config trusting this server (any config for plain HTTP).
    pub fn client_config(&self) -> rustls::ClientConfig {
        match &self.ca {
            Some(ca) => ca.client_config(),
            None => crate::tls::client_config_with_roots(rustls::RootCertStore::empty()),
        }
    }

    /// A reqwest client trusting this server; it does not follow redirects.
    pub fn http_client(&self) -> reqwest::Client {
        crate::tls::reqwest_client(self.client_config())
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.records().clone()
    }

    /// Resolves once at least `n` requests have arrived (before any of them is answered).
    pub async fn wait_requests(&self, n: usize) {
        wait_at_least(&self.shared.requests_seen, n).await;
    }

    /// The tools `…/catalog-mcp` was asked to run so far, in order.
    pub fn tool_calls(&self) -> Vec<String> {
        self.shared.tool_calls().clone()
    }

    /// Lets one more `/raw/slow-sse` step go (remembered if none is waiting yet).
    pub fn release(&self) {
        self.shared.release.add_permits(1);
    }

    /// How many `/raw/slow-sse` streams and `/raw/hang` requests the client side dropped
    /// before they finished.
    pub fn closed_streams(&self) -> usize {
        *self.shared.closed_raw.borrow()
    }

    /// Resolves once [`closed_streams`](Self::closed_streams) is at least `n`.
    pub async fn wait_stream_closed(&self, n: usize) {
        wait_at_least(&self.shared.closed_raw, n).await;
    }

    /// How many legacy SSE streams the client side dropped.
    pub fn closed_legacy_streams(&self) -> usize {
        *self.shared.closed_legacy.borrow()
    }

    /// Resolves once [`closed_legacy_streams`](Self::closed_legacy_streams) is at least `n`.
    pub async fn wait_legacy_stream_closed(&self, n: usize) {
        wait_at_least(&self.shared.closed_legacy, n).await;
    }

    /// Stops accepting, drops every connection and ends every MCP session.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for TestUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestUpstream")
            .field("base_url", &self.shared.base_url)
            .finish_non_exhaustive()
    }
}

async fn wait_at_least(counter: &watch::Sender<usize>, n: usize) {
    let mut rx = counter.subscribe();
    // The sender lives in `Shared`, which `&self` keeps alive: only the deadline can fail.
    let waited = tokio::time::timeout(crate::daemon::WAIT, rx.wait_for(|&seen| seen >= n))
        .await
        .is_ok();
    let seen = *rx.borrow();
    assert!(waited, "the test upstream counted {seen}, not {n}, in time");
}

/// 32 random hex characters (token and session ids).
pub fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    crate::tls::provider()
        .secure_random
        .fill(&mut bytes)
        .expect("system randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
