//! The test OAuth 2.1 authorization server: real HTTPS on an ephemeral loopback port.
//!
//! Endpoints:
//! - `GET /.well-known/oauth-authorization-server`, `GET /.well-known/openid-configuration`:
//!   RFC 8414 metadata.
//! - `GET /authorize`: authorization code + PKCE S256 (required); with auto-approve it
//!   redirects straight back, else it shows an approval page (see
//!   [`OAuthServer::approve_next`]); `POST /authorize/decision` is that page's form.
//! - `POST /token`: `authorization_code` and `refresh_token` grants for public clients,
//!   refresh token rotation with reuse detection, Alibaba's `refresh_expires_in`.
//! - Client authentication: `client_secret_basic`, `client_secret_post`, `none`, and
//!   `private_key_jwt` verified with the client's public key ([`assertion`]).
//! - `POST /revoke`: RFC 7009. `POST /introspect`: RFC 7662, `{"active": bool, …}`.
//! - `POST /register`: RFC 7591 dynamic client registration, when enabled.
//! - `POST /device_authorization`, the device-code grant and the verification page
//!   `/device`: RFC 8628, when [`OAuthOptions::device`] is set (see [`device`]).
//!
//! [`Fault`]s make `/token` and `/revoke` misbehave on demand. Every code and token the
//! server issues, and every PKCE verifier it receives, is kept so that tests can look
//! for them where they must not appear (logs, files).

pub mod assertion;
mod authorize;
pub mod device;
mod endpoints;
mod http;
pub mod pkce;
mod reply;
mod state;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::tls::TestCa;
pub use assertion::AssertionKey;
use state::AuthState;

/// Lifetime of access tokens unless configured.
pub const DEFAULT_ACCESS_LIFETIME: Duration = Duration::from_secs(3600);
/// Lifetime of refresh tokens unless configured.
pub const DEFAULT_REFRESH_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// Lifetime of authorization codes unless configured.
pub const DEFAULT_CODE_LIFETIME: Duration = Duration::from_secs(60);
/// The client of [`OAuthOptions::default`].
pub const DEFAULT_CLIENT_ID: &str = "test-client";

/// A client the server knows without registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSpec {
    pub client_id: String,
    /// Exact redirect URIs; empty allows any `http://127.0.0.1:*`, `http://localhost:*`
    /// or `http://[::1]:*` URI (RFC 8252 loopback redirects).
    pub redirect_uris: Vec<String>,
    /// A confidential client's secret: token requests must authenticate with it, by
    /// `client_secret_basic` or `client_secret_post` as advertised.
    pub secret: Option<String>,
}

impl ClientSpec {
    /// A client allowed any loopback redirect URI.
    pub fn loopback(client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            redirect_uris: Vec::new(),
            secret: None,
        }
    }

    /// A confidential client with `secret`, allowed any loopback redirect URI.
    pub fn confidential(client_id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            secret: Some(secret.into()),
            ..Self::loopback(client_id)
        }
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct OAuthOptions {
    /// Approve every valid authorization request at once (else: an approval page).
    pub auto_approve: bool,
    /// `expires_in` of access tokens; changeable later with
    /// [`OAuthServer::set_access_lifetime`].
    pub access_lifetime: Duration,
    /// Lifetime of each refresh token, reported as `refresh_expires_in`; `None`: never
    /// expires and the field is left out.
    pub refresh_lifetime: Option<Duration>,
    /// Lifetime of authorization codes.
    pub code_lifetime: Duration,
    /// Issue refresh tokens at all.
    pub issue_refresh_token: bool,
    /// Issue refresh tokens only to grants whose scope holds `offline_access` (SEP-2207).
    pub refresh_needs_offline_access: bool,
    /// Each refresh grant returns a new refresh token and spends the old one; without
    /// rotation the response carries no refresh token and the old one stays valid.
    pub rotate_refresh: bool,
    /// Serve RFC 7591 dynamic client registration at `/register`.
    pub registration: bool,
    /// Clients known from the start.
    pub clients: Vec<ClientSpec>,
    /// When set, authorization and token requests must carry RFC 8707 `resource`
    /// equal to it (else `invalid_target`).
    pub resource: Option<String>,
    /// Advertise `client_id_metadata_document_supported` (the document itself is not fetched:
    /// list the URL in `clients`).
    pub client_id_metadata_documents: bool,
    /// Registration issues a `client_secret` to clients that ask for a secret-based method.
    pub confidential_registration: bool,
    /// Advertised `token_endpoint_auth_methods_supported`; a confidential client must use
    /// one of them.
    pub auth_methods: Vec<String>,
    /// Advertised scopes; when not empty, requests for other scopes fail with
    /// `invalid_scope` and a request without `scope` is granted all of them.
    pub scopes_supported: Vec<String>,
    /// Serve and advertise the device authorization grant (RFC 8628).
    pub device: Option<device::DeviceOptions>,
    /// The issuer to advertise (metadata, `iss`, endpoint URLs) instead of the server's own
    /// origin: for a server reached through another origin, as MCP servers of the 2025-03-26
    /// revision served their authorization server (see [`crate::upstream::OAuthFront`]).
    pub issuer: Option<String>,
    /// `/revoke` authenticates confidential clients as `/token` does (RFC 7009 §2.1): without
    /// their secret, 401 `invalid_client` and nothing revoked.
    pub revocation_requires_client_auth: bool,
    /// Clients that authenticate by `private_key_jwt` (list it in `auth_methods` too), with
    /// the key their assertions must be signed with.
    pub assertion_keys: Vec<AssertionKey>,
}

impl Default for OAuthOptions {
    fn default() -> Self {
        Self {
            auto_approve: true,
            access_lifetime: DEFAULT_ACCESS_LIFETIME,
            refresh_lifetime: Some(DEFAULT_REFRESH_LIFETIME),
            code_lifetime: DEFAULT_CODE_LIFETIME,
            issue_refresh_token: true,
            refresh_needs_offline_access: false,
            rotate_refresh: true,
            registration: true,
            clients: vec![ClientSpec::loopback(DEFAULT_CLIENT_ID)],
            resource: None,
            scopes_supported: Vec::new(),
            auth_methods: vec!["none".into()],
            confidential_registration: false,
            client_id_metadata_documents: false,
            device: None,
            issuer: None,
            revocation_requires_client_auth: false,
            assertion_keys: Vec::new(),
        }
    }
}

/// How `/token` and `/revoke` misbehave.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fault {
    /// Answer normally.
    #[default]
    None,
    /// Close the connection without answering.
    Down,
    /// Wait this long before handling the request.
    Slow(Duration),
    /// Answer 503 with `{"error": "temporarily_unavailable"}`.
    ServerError,
    /// Answer every refresh grant 400 `invalid_grant` (authorization codes still work).
    InvalidGrant,
}

/// One request as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Query parameters, decoded, in order.
    pub query: Vec<(String, String)>,
    /// Form parameters of an `application/x-www-form-urlencoded` body, decoded, in order.
    pub form: Vec<(String, String)>,
    /// The client id of an `Authorization: Basic` header.
    pub basic_client: Option<String>,
    /// When it arrived (before any fault delayed it), for tests of backoff schedules.
    pub at: std::time::Instant,
}

impl Recorded {
    /// The first form parameter `name`.
    pub fn form_value(&self, name: &str) -> Option<&str> {
        first(&self.form, name)
    }

    /// The first query parameter `name`.
    pub fn query_value(&self, name: &str) -> Option<&str> {
        first(&self.query, name)
    }
}

fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// A validated authorization request, waiting for approval or turned into a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub code_challenge: String,
    pub scope: Option<String>,
    pub resource: Option<String>,
}

/// State shared by the accept loop, every connection and the handle.
pub(crate) struct Shared {
    issuer: String,
    auth: Mutex<AuthState>,
    fault: Mutex<Fault>,
    records: Mutex<Vec<Recorded>>,
    /// Woken after every record and every new pending authorization.
    changed: Notify,
    shutdown: CancellationToken,
}

impl Shared {
    // A panicking test thread must not hide the state from the others.
    fn auth(&self) -> MutexGuard<'_, AuthState> {
        self.auth.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn records(&self) -> MutexGuard<'_, Vec<Recorded>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fault(&self) -> Fault {
        *self.fault.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, entry: Recorded) {
        self.records().push(entry);
        self.changed.notify_waiters();
    }

    /// Resolves once `done` holds, re-checking after every change; panics after
    /// [`crate::daemon::WAIT`] (a test that waits for what never comes fails, never hangs).
    async fn wait_until(&self, done: impl FnMut(&Shared) -> bool) {
        tokio::time::timeout(crate::daemon::WAIT, self.wait_until_unbounded(done))
            .await
            .expect("the awaited requests did not reach the test authorization server in time");
    }

    async fn wait_until_unbounded(&self, mut done: impl FnMut(&Shared) -> bool) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the check, so a change in between is not missed.
            changed.as_mut().enable();
            if done(self) {
                return;
            }
            changed.await;
        }
    }
}

/// A running test authorization server; dropping it shuts it down.
pub struct OAuthServer {
    addr: SocketAddr,
    ca: TestCa,
    /// One client, so that tests share its connections instead of a handshake a request.
    http: reqwest::Client,
    shared: Arc<Shared>,
}

/// Starts a server on `127.0.0.1:0` with a fresh [`TestCa`].
pub async fn start(opts: OAuthOptions) -> anyhow::Result<OAuthServer> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    serve(listener, opts)
}

/// Serves on an already-bound listener (the binary binds `--port` itself).
pub fn serve(listener: TcpListener, opts: OAuthOptions) -> anyhow::Result<OAuthServer> {
    let addr = listener.local_addr()?;
    let ca = TestCa::new();
    let shared = Arc::new(Shared {
        issuer: opts
            .issuer
            .clone()
            .unwrap_or_else(|| format!("https://{addr}")),
        auth: Mutex::new(AuthState::new(opts)),
        fault: Mutex::new(Fault::None),
        records: Mutex::new(Vec::new()),
        changed: Notify::new(),
        shutdown: CancellationToken::new(),
    });
    let acceptor = TlsAcceptor::from(ca.server_config());
    let handler = shared.clone();
    // A handler cancels its connection's token to drop it (Fault::Down).
    crate::accept::serve(
        listener,
        Some(acceptor),
        shared.shutdown.clone(),
        move |req, conn| http::handle(handler.clone(), conn, req),
    );
    let http = crate::tls::reqwest_client(ca.client_config());
    Ok(OAuthServer {
        addr,
        ca,
        http,
        shared,
    })
}

// === impl OAuthServer ===

impl OAuthServer {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`, without a trailing slash.
    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    /// `issuer()` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.shared.issuer)
    }

    /// The CA that signed the server's certificate.
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    /// The CA certificate as PEM (for the proxy's `ca_file`).
    pub fn ca_pem(&self) -> String {
        self.ca.ca_pem()
    }

    /// A reqwest client trusting this server; it does not follow redirects.
    pub fn http_client(&self) -> reqwest::Client {
        self.http.clone()
    }

    /// Makes `/token` and `/revoke` misbehave from the next request on.
    pub fn set_fault(&self, fault: Fault) {
        *self.shared.fault.lock().unwrap_or_else(|e| e.into_inner()) = fault;
    }

    /// `expires_in` of access tokens issued from now on.
    pub fn set_access_lifetime(&self, lifetime: Duration) {
        self.shared.auth().opts.access_lifetime = lifetime;
    }

    /// Switches between redirecting at once and holding requests for approval.
    pub fn set_auto_approve(&self, on: bool) {
        self.shared.auth().opts.auto_approve = on;
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.records().clone()
    }

    /// How many `POST /token` requests with this `grant_type` have arrived (answered or not).
    pub fn token_requests(&self, grant_type: &str) -> usize {
        count_token_requests(&self.shared, grant_type)
    }

    /// When each `POST /token` request with this `grant_type` arrived, in order.
    pub fn token_request_times(&self, grant_type: &str) -> Vec<std::time::Instant> {
        self.shared
            .records()
            .iter()
            .filter(|r| r.method == "POST" && r.path == "/token")
            .filter(|r| r.form_value("grant_type") == Some(grant_type))
            .map(|r| r.at)
            .collect()
    }

    /// Resolves once [`token_requests`](Self::token_requests) reaches `n`.
    pub async fn wait_token_requests(&self, grant_type: &str, n: usize) {
        self.shared
            .wait_until(|s| count_token_requests(s, grant_type) >= n)
            .await;
    }

    /// Every authorization code, access token and refresh token issued, and every PKCE
    /// verifier received.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.shared.auth().issued.clone()
    }

    /// Every token revoked, whether asked for at `/revoke` or by reuse detection.
    pub fn revoked(&self) -> Vec<String> {
        self.shared.auth().revoked.clone()
    }

    /// Whether `token` would be accepted now (not expired, revoked or rotated away).
    pub fn is_active(&self, token: &str) -> bool {
        self.shared.auth().is_active(token)
    }

    /// The space-separated scope granted to an active `token`.
    pub fn scope_of(&self, token: &str) -> Option<String> {
        let auth = self.shared.auth();
        if !auth.is_active(token) {
            return None;
        }
        auth.token_owner(token)
            .and_then(|(_, s)| s.map(str::to_string))
    }

    /// Revokes `token` at once, as an operator at the server would.
    pub fn revoke_token(&self, token: &str) {
        let _ = self.shared.auth().revoke(token, None);
    }

    /// Clients configured or registered so far.
    pub fn clients(&self) -> Vec<ClientSpec> {
        self.shared.auth().clients().to_vec()
    }

    /// Authorization requests waiting for approval, oldest first.
    pub fn pending_authorizations(&self) -> Vec<AuthorizationRequest> {
        self.shared.auth().pending.iter().cloned().collect()
    }

    /// Resolves once at least `n` authorization requests wait for approval.
    pub async fn wait_pending_authorizations(&self, n: usize) {
        self.shared
            .wait_until(|s| s.auth().pending.len() >= n)
            .await;
    }

    /// Approves the oldest pending request: the redirect URL with `code`, `state`, `iss`
    /// that the browser would be sent to; `None` when nothing waits.
    pub fn approve_next(&self) -> Option<String> {
        let request = self.shared.auth().pending.pop_front()?;
        Some(authorize::approve(&self.shared, request))
    }

    /// Denies the oldest pending request: the redirect URL with `error=access_denied`,
    /// `error_description`, `state` and `iss`; `None` when nothing waits.
    pub fn deny_next(&self) -> Option<String> {
        let request = self.shared.auth().pending.pop_front()?;
        Some(authorize::deny(&self.shared, &request))
    }

    /// Stops accepting and drops every connection.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }
}

impl Drop for OAuthServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for OAuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthServer")
            .field("issuer", &self.shared.issuer)
            .finish_non_exhaustive()
    }
}

fn count_token_requests(shared: &Shared, grant_type: &str) -> usize {
    shared
        .records()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/token")
        .filter(|r| r.form_value("grant_type") == Some(grant_type))
        .count()
}
