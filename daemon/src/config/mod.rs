//! The daemon's configuration: the one place that reads the file, applies the flags and validates.
//!
//! `raw` is the file as written; [`load`] parses it, lays the command-line [`Overrides`] on top
//! (they win at every reload too), and `validate` produces the typed [`Config`] the rest of the
//! daemon uses. Every error names the file, the line and the key.

mod locate;
pub mod preset;
mod raw;
mod render;
pub mod units;
mod validate;
mod validate_auth;
mod validate_client_key;
mod validate_listen;
mod validate_policy;
mod validate_upstream;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

pub use preset::{KeySource, Region};
pub use validate_policy::PolicyConfig;

/// Default listen address, as with the seed's tool.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8088";
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_RESPONSE_HEADER_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A client connection with no request in flight for this long is closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(2 * 60);
/// A request body that sends nothing for this long is abandoned (408).
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_REQUEST_BODY: u64 = 16 << 20;
pub const DEFAULT_RETRY_BODY_LIMIT: u64 = 1 << 20;
/// Sized to the units' `LimitNOFILE=16384`: each client connection may hold a second file for
/// its upstream connection (HTTP/1.1), 2 x 7168 = 14336, leaving 2048 for everything else.
/// 5,000 concurrent SSE streams fit; connections over it get a 503 at once (proxy::overload).
pub const DEFAULT_MAX_CONNECTIONS: usize = 7168;
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
pub const DEFAULT_CATALOG_REFRESH: Duration = Duration::from_secs(600);
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(600);
pub const DEFAULT_REFRESH_TOKEN_WARNING: Duration = Duration::from_secs(7 * 86_400);

/// A configuration error: which file, which line, which key, and what is wrong.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{}", self.render())]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

impl ConfigError {
    fn render(&self) -> String {
        let mut out = self.file.clone();
        if let Some(line) = self.line {
            out.push_str(&format!(":{line}"));
        }
        out.push_str(": ");
        if !self.key.is_empty() {
            out.push_str(&format!("{}: ", self.key));
        }
        out.push_str(&self.message);
        out
    }
}

/// Command-line values that replace parts of the file, at start and at every reload.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub region: Option<String>,
    pub upstream: Option<String>,
    pub allowed_servers: Option<Vec<String>>,
    pub blocked_servers: Option<Vec<String>>,
    pub no_browser: bool,
    pub oauth_app_name: Option<String>,
    pub scope: Option<String>,
}

/// Where the configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    /// No file at the default location: the built-in Alibaba Cloud preset.
    Defaults,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Defaults => f.write_str("(built-in defaults)"),
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: Source,
    pub listen: Listen,
    pub admin: Admin,
    pub store: Store,
    pub limits: Limits,
    pub log: Log,
    pub acl: AclConfig,
    pub upstreams: Vec<Upstream>,
    pub auth: BTreeMap<String, AuthProfile>,
    /// Tool policies, in file order.
    pub policies: Vec<PolicyConfig>,
    /// `--no-browser`: log in by pasting the code (used by the OAuth login).
    pub no_browser: bool,
}

#[derive(Debug, Clone)]
pub struct Listen {
    pub addresses: Vec<SocketAddr>,
    pub allow_public_bind: bool,
    /// Lower-cased `host[:port]` values.
    pub extra_hosts: Vec<String>,
    /// Serialised origins (`scheme://host[:port]`, lower case).
    pub allowed_origins: Vec<String>,
    /// The Unix-socket proxy listeners.
    pub unix: UnixListen,
    /// Which listeners require a client key.
    pub require_client_keys: RequireKeys,
}

/// Default mode of the Unix-socket proxy listeners.
pub const DEFAULT_UNIX_MODE: u32 = 0o660;

/// `[listen] unix*`: the proxy served on Unix sockets, peers checked by `SO_PEERCRED`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnixListen {
    pub paths: Vec<PathBuf>,
    pub mode: u32,
    pub group: Option<String>,
    pub allowed_uids: Vec<u32>,
}

/// `require_client_keys`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RequireKeys {
    /// On for non-loopback TCP binds; off for loopback binds and Unix sockets (whose peers
    /// are checked by uid).
    #[default]
    Auto,
    Always,
    Never,
}

impl RequireKeys {
    /// Whether a listener requires keys: `local` is its TCP address, `None` for a Unix socket.
    pub fn applies_to(self, local: Option<SocketAddr>) -> bool {
        match self {
            RequireKeys::Always => true,
            RequireKeys::Never => false,
            RequireKeys::Auto => local.is_some_and(|a| !a.ip().is_loopback()),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Admin {
    pub socket: Option<PathBuf>,
    pub metrics_address: Option<SocketAddr>,
    pub group: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Auto,
    Keyring,
    File,
}

#[derive(Debug, Clone)]
pub struct Store {
    pub kind: StoreKind,
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub connect_timeout: Duration,
    pub header_read_timeout: Duration,
    pub response_header_timeout: Duration,
    pub stream_idle_timeout: Duration,
    /// A client connection with no request in flight for this long is closed (HTTP/1.1
    /// keep-alive and HTTP/2 alike).
    pub idle_timeout: Duration,
    /// The longest pause allowed between bytes of a client's request body.
    pub body_read_timeout: Duration,
    pub max_request_body: u64,
    pub retry_body_limit: u64,
    pub max_connections: usize,
    /// Threads that serve proxy connections; `None`: one per core (see `proxy::workers`).
    pub workers: Option<usize>,
    pub shutdown_grace: Duration,
    pub login_timeout: Duration,
    /// `status` warns this long before a login (its refresh token) expires.
    pub refresh_token_warning: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            response_header_timeout: DEFAULT_RESPONSE_HEADER_TIMEOUT,
            stream_idle_timeout: DEFAULT_STREAM_IDLE_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            max_request_body: DEFAULT_MAX_REQUEST_BODY,
            retry_body_limit: DEFAULT_RETRY_BODY_LIMIT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            workers: None,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            login_timeout: DEFAULT_LOGIN_TIMEOUT,
            refresh_token_warning: DEFAULT_REFRESH_TOKEN_WARNING,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    Auto,
    Journald,
    Stderr,
}

#[derive(Debug, Clone)]
pub struct Log {
    pub target: LogTarget,
    pub level: String,
    pub audit_rpc: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclConfig {
    pub allowed: Vec<String>,
    pub blocked: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogSource {
    /// Alibaba Cloud's `ListApiMcpServers`.
    Alibaba,
    /// The `[[upstream.servers]]` entries.
    Static,
}

#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: String,
    /// `/` or a normal path without a trailing slash.
    pub mount: String,
    pub url: Url,
    /// The URL's path without a trailing slash (`""` for the root).
    pub base_path: String,
    pub auth: String,
    pub ca_file: Option<PathBuf>,
    pub catalog: CatalogSource,
    /// How often an `alibaba` catalog is listed again.
    pub catalog_refresh: Duration,
    pub allow_http: bool,
    pub proxy: Option<Url>,
    pub http_version: HttpVersion,
    pub servers: Vec<Server>,
}

/// Which HTTP the daemon speaks to an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpVersion {
    /// HTTP/2 when the server offers it in the TLS handshake (ALPN), else HTTP/1.1.
    #[default]
    Auto,
    /// HTTP/1.1 only, even to a server that offers HTTP/2.
    Http11,
}

impl HttpVersion {
    /// As the config file writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpVersion::Auto => "auto",
            HttpVersion::Http11 => "1.1",
        }
    }
}

/// A catalog entry: upstream paths of one MCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub name: String,
    pub id: String,
    pub mcp: Option<String>,
    pub sse: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshMargin {
    Auto,
    Fixed(Duration),
}

// A config holds a handful of profiles, built once per generation and shared by `Arc`:
// boxing the large OAuth variant would buy nothing and add a deref to every match.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum AuthProfile {
    Static(StaticAuth),
    OAuth(OAuthProfile),
    Alibaba(AlibabaProfile),
}

impl AuthProfile {
    pub fn kind(&self) -> &'static str {
        match self {
            AuthProfile::Static(_) => "static",
            AuthProfile::OAuth(_) => "oauth",
            AuthProfile::Alibaba(_) => "alibaba",
        }
    }
}

/// The OAuth grant of a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    /// A user logs in (`mcpproxyctl login`); refresh tokens keep it going.
    AuthorizationCode,
    /// Machine to machine (OAuth 2.1 §4.2): the daemon fetches and renews tokens itself.
    ClientCredentials,
}

/// A client secret and where it was read from (`Debug` shows `[REDACTED]`).
#[derive(Debug, Clone)]
pub struct ClientSecret {
    pub source: TokenSource,
    pub secret: SecretString,
}

/// A pre-registered client's private key for `private_key_jwt`, where it was read from
/// (`Debug` shows no key material).
#[derive(Debug, Clone)]
pub struct ClientKey {
    pub source: TokenSource,
    pub key: crate::auth::oauth::jws::SigningKey,
}

#[derive(Debug, Clone)]
pub enum TokenSource {
    File(PathBuf),
    /// A systemd credential: `$CREDENTIALS_DIRECTORY/NAME`.
    Credential(String),
}

#[derive(Debug, Clone)]
pub struct StaticAuth {
    pub source: TokenSource,
    pub token: SecretString,
}

#[derive(Debug, Clone)]
pub struct OAuthProfile {
    pub issuer: Option<Url>,
    pub authorization_endpoint: Option<Url>,
    pub token_endpoint: Option<Url>,
    pub revocation_endpoint: Option<Url>,
    pub client_id: Option<String>,
    /// A pre-registered (confidential) client's secret.
    pub client_secret: Option<ClientSecret>,
    /// A pre-registered client's private key (`private_key_jwt`, RFC 7523).
    pub private_key: Option<ClientKey>,
    /// How tokens are obtained: a user's login, or the client's own credentials.
    pub grant: GrantType,
    pub scopes: Vec<String>,
    pub resource: Resource,
    pub refresh_margin: RefreshMargin,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Auto,
    Off,
    Uri(Url),
}

#[derive(Debug, Clone)]
pub struct AlibabaProfile {
    pub region: Region,
    pub oauth_app_name: String,
    pub scope: String,
    pub refresh_margin: RefreshMargin,
    pub redirect_uri: Option<Url>,
    pub signin_url: Url,
    pub oauth_url: Url,
    pub ims_endpoint: Url,
    pub access_key: String,
    pub ca_file: Option<PathBuf>,
}

impl Config {
    /// The upstream with this name.
    pub fn upstream(&self, name: &str) -> Option<&Upstream> {
        self.upstreams.iter().find(|u| u.name == name)
    }

    /// The effective configuration as TOML, secrets left out, for `--check-config`.
    pub fn render(&self) -> String {
        render::render(self)
    }
}

/// The default config file: `/etc/mcpproxyd/mcpproxyd.toml` for root, else the XDG config dir.
pub fn default_path() -> Option<PathBuf> {
    if nix::unistd::geteuid().is_root() {
        return Some(PathBuf::from("/etc/mcpproxyd/mcpproxyd.toml"));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("mcpproxyd").join("mcpproxyd.toml"))
}

/// Loads the configuration: the named file (which must exist), else the default file if it
/// exists, else the built-in defaults; then applies the flags and validates.
pub fn load(explicit: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
    let (source, text) = match explicit {
        Some(path) => (Source::File(path.to_path_buf()), Some(read(path)?)),
        None => match default_path() {
            Some(path) if path.exists() => (Source::File(path.clone()), Some(read(&path)?)),
            _ => (Source::Defaults, None),
        },
    };
    load_str(source, text.as_deref().unwrap_or(""), overrides)
}

/// Parses and validates configuration text (the file's contents, or "" for the defaults).
pub fn load_str(source: Source, text: &str, overrides: &Overrides) -> Result<Config, ConfigError> {
    let file = source.to_string();
    let located = locate::Locator::new(&file, text);
    let raw: raw::RawConfig = toml::from_str(text).map_err(|e| located.parse_error(&e))?;
    validate::validate(raw, source, overrides, &located)
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.display().to_string(),
        line: None,
        key: String::new(),
        message: format!("cannot read the config file: {e}"),
    })
}
