//! A fake of the AccessKey-signed Alibaba Cloud services the `alibaba` preset uses, on one
//! HTTPS port of loopback with a fresh [`TestCa`]:
//!
//! - IMS 2019-08-15, RPC style (`POST /` or `GET /`, `x-acs-action`): `ListApplications`,
//!   `GetApplication`, `CreateApplication`, `UpdateApplication` on in-memory applications;
//!   errors `{"RequestId", "Code", "Message"}` with a 4xx.
//! - OpenAPI Explorer 2024-11-30, ROA style: `GET /apimcpservers` (`ListApiMcpServers`), a
//!   configurable number of servers, paged with `maxResults` / `nextToken`; [`ListingFault`]s
//!   make it answer 503 or repeat its page token.
//!
//! Every request must carry a valid signature V3 for the configured AccessKey, checked by the
//! fake's own verifier ([`verify`]), a fresh nonce and a date within 15 minutes; otherwise the
//! answer is Alibaba's error (`SignatureDoesNotMatch`, `InvalidAccessKeyId.NotFound`,
//! `SignatureNonceUsed`, …). Every request is recorded with its outcome.
//!
//! The sign-in and OAuth token endpoints are not here: [`crate::oauth`] plays them.

mod http;
mod ims;
pub mod listing;
pub mod verify;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::tls::TestCa;
pub use verify::FakeKey;

/// The AccessKey id of [`AliyunFakeOptions::default`].
pub const DEFAULT_ACCESS_KEY_ID: &str = "LTAI5tFakeTestKeyId";
/// The AccessKey secret of [`AliyunFakeOptions::default`].
pub const DEFAULT_ACCESS_KEY_SECRET: &str = "fake-access-key-secret-for-tests";
/// The account id in the servers' paths.
pub const DEFAULT_ACCOUNT: &str = "1001";

/// An OAuth application as the fake keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeApp {
    pub app_id: String,
    pub app_name: String,
    pub display_name: String,
    pub app_type: String,
    pub redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    pub protocol_version: Option<String>,
    pub access_token_validity: Option<u64>,
    pub refresh_token_validity: Option<u64>,
}

impl FakeApp {
    /// An application of `app_type` with these scopes and redirect URIs.
    pub fn new(app_id: &str, name: &str, app_type: &str, scopes: &[&str], uris: &[&str]) -> Self {
        let owned = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
        FakeApp {
            app_id: app_id.into(),
            app_name: name.into(),
            display_name: name.into(),
            app_type: app_type.into(),
            redirect_uris: owned(uris),
            scopes: owned(scopes),
            protocol_version: Some("2.1".into()),
            access_token_validity: None,
            refresh_token_validity: None,
        }
    }

    /// A `NativeApp`.
    pub fn native(app_id: &str, name: &str, scopes: &[&str], uris: &[&str]) -> Self {
        FakeApp::new(app_id, name, "NativeApp", scopes, uris)
    }
}

/// How the listing misbehaves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ListingFault {
    #[default]
    None,
    /// 503 `ServiceUnavailable` to every listing request.
    Unavailable,
    /// Every page answers the same `nextToken`, so a client that follows tokens never ends.
    RepeatToken,
}

/// What to start.
#[derive(Debug, Clone)]
pub struct AliyunFakeOptions {
    /// The one AccessKey accepted.
    pub key: FakeKey,
    /// Applications present from the start.
    pub applications: Vec<FakeApp>,
    /// How many MCP servers the listing has.
    pub servers: usize,
    /// The account id in the servers' paths.
    pub account: String,
}

impl Default for AliyunFakeOptions {
    fn default() -> Self {
        AliyunFakeOptions {
            key: FakeKey {
                id: DEFAULT_ACCESS_KEY_ID.into(),
                secret: DEFAULT_ACCESS_KEY_SECRET.into(),
                security_token: None,
            },
            applications: Vec::new(),
            servers: 3,
            account: DEFAULT_ACCOUNT.into(),
        }
    }
}

/// One request as received, and how it was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// `x-acs-action`, if sent.
    pub action: Option<String>,
    /// Query parameters, decoded, in order.
    pub query: Vec<(String, String)>,
    pub status: u16,
    /// The error code answered, if any.
    pub code: Option<String>,
}

impl Recorded {
    /// The first query parameter `name`.
    pub fn query_value(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the signature was accepted (the request reached a service).
    pub fn signature_ok(&self) -> bool {
        !matches!(
            self.code.as_deref(),
            Some(
                "SignatureDoesNotMatch"
                    | "IncompleteSignature"
                    | "MissingAuthorization"
                    | "InvalidAccessKeyId.NotFound"
                    | "InvalidSecurityToken.Mismatch"
                    | "SignatureNonceUsed"
                    | "InvalidTimeStamp.Format"
                    | "InvalidTimeStamp.Expired"
            )
        )
    }
}

/// An answer: status and JSON body (the request id is added on the way out).
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    pub fn ok(body: Value) -> Reply {
        Reply { status: 200, body }
    }

    pub fn error(status: u16, code: &str, message: impl Into<String>) -> Reply {
        Reply {
            status,
            body: serde_json::json!({ "Code": code, "Message": message.into() }),
        }
    }
}

/// Mutable state of the fake.
pub(crate) struct FakeState {
    pub key: FakeKey,
    pub apps: Vec<FakeApp>,
    pub next_app_id: u64,
    pub servers: usize,
    pub account: String,
    pub listing_fault: ListingFault,
    pub ims_unavailable: bool,
    pub nonces: HashSet<String>,
}

/// State shared by the accept loop, every connection and the handle.
pub(crate) struct Shared {
    origin: String,
    state: Mutex<FakeState>,
    records: Mutex<Vec<Recorded>>,
    shutdown: CancellationToken,
}

impl Shared {
    // A panicking test thread must not hide the state from the others.
    pub(crate) fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn records(&self) -> MutexGuard<'_, Vec<Recorded>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn record(&self, entry: Recorded) {
        self.records().push(entry);
    }
}

/// A running fake; dropping it shuts it down.
pub struct AliyunFake {
    addr: SocketAddr,
    ca: TestCa,
    http: reqwest::Client,
    shared: Arc<Shared>,
}

/// Starts a fake on `127.0.0.1:0` with a fresh [`TestCa`].
pub async fn start(opts: AliyunFakeOptions) -> anyhow::Result<AliyunFake> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    serve(listener, opts)
}

/// Serves on an already-bound listener.
pub fn serve(listener: TcpListener, opts: AliyunFakeOptions) -> anyhow::Result<AliyunFake> {
    let addr = listener.local_addr()?;
    let ca = TestCa::new();
    let shared = Arc::new(Shared {
        origin: format!("https://{addr}"),
        state: Mutex::new(FakeState {
            key: opts.key,
            apps: opts.applications,
            next_app_id: 4_000_000_000_000_000_000,
            servers: opts.servers,
            account: opts.account,
            listing_fault: ListingFault::None,
            ims_unavailable: false,
            nonces: HashSet::new(),
        }),
        records: Mutex::new(Vec::new()),
        shutdown: CancellationToken::new(),
    });
    let acceptor = TlsAcceptor::from(ca.server_config());
    let handler = shared.clone();
    crate::accept::serve(
        listener,
        Some(acceptor),
        shared.shutdown.clone(),
        move |req, _| http::handle(handler.clone(), req),
    );
    let http = crate::tls::reqwest_client(ca.client_config());
    Ok(AliyunFake {
        addr,
        ca,
        http,
        shared,
    })
}

// === impl AliyunFake ===

impl AliyunFake {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`, without a trailing slash: the IMS endpoint and the MCP
    /// endpoint both.
    pub fn url(&self) -> &str {
        &self.shared.origin
    }

    /// The CA that signed the fake's certificate.
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    /// The CA certificate as PEM (for a `ca_file`).
    pub fn ca_pem(&self) -> String {
        self.ca.ca_pem()
    }

    /// A reqwest client trusting the fake; it does not follow redirects.
    pub fn http_client(&self) -> reqwest::Client {
        self.http.clone()
    }

    /// The AccessKey the fake accepts.
    pub fn key(&self) -> FakeKey {
        self.shared.state().key.clone()
    }

    /// The applications as they are now.
    pub fn applications(&self) -> Vec<FakeApp> {
        self.shared.state().apps.clone()
    }

    pub fn add_application(&self, app: FakeApp) {
        self.shared.state().apps.push(app);
    }

    /// How many MCP servers the listing has from now on.
    pub fn set_server_count(&self, count: usize) {
        self.shared.state().servers = count;
    }

    pub fn set_listing_fault(&self, fault: ListingFault) {
        self.shared.state().listing_fault = fault;
    }

    /// Makes every IMS action answer 503 (or not).
    pub fn set_ims_unavailable(&self, on: bool) {
        self.shared.state().ims_unavailable = on;
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.records().clone()
    }

    /// The actions of the requests so far, in order.
    pub fn actions(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter_map(|r| r.action)
            .collect()
    }

    /// How many requests named `action`.
    pub fn count(&self, action: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.action.as_deref() == Some(action))
            .count()
    }

    /// Name, id and upstream base path of listed server `i`.
    pub fn server(&self, i: usize) -> (String, String, String) {
        listing::server_names(i, &self.shared.state().account)
    }

    /// Stops accepting and drops every connection.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }
}

impl Drop for AliyunFake {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for AliyunFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AliyunFake")
            .field("origin", &self.shared.origin)
            .finish_non_exhaustive()
    }
}
