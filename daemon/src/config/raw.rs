//! The configuration file exactly as users write it: every key documented, unknown keys refused.
//!
//! Values stay close to their text form here (durations and sizes as strings); `config::validate`
//! turns them into the typed [`super::Config`], with the file line of any bad value.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// Where the proxy port listens and which `Host`/`Origin` values it accepts.
    pub listen: RawListen,
    /// The admin socket.
    pub admin: RawAdmin,
    /// Where tokens are kept.
    pub store: RawStore,
    /// Timeouts and size limits.
    pub limits: RawLimits,
    /// Logging.
    pub log: RawLog,
    /// Which servers may be reached.
    pub acl: RawAcl,
    /// The remote MCP servers (default: the Alibaba Cloud preset).
    pub upstream: Option<Vec<RawUpstream>>,
    /// Credential profiles, by name.
    pub auth: BTreeMap<String, RawAuth>,
    /// Tool policies (`[[policy]]`).
    pub policy: Vec<super::validate_policy::RawPolicy>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawListen {
    /// `IP:PORT` addresses; `--host`/`--port` replace the first; port 0 picks a free one.
    pub addresses: Option<Vec<String>>,
    /// `0.0.0.0` / `::` are refused unless this is true.
    pub allow_public_bind: bool,
    /// Extra `Host` values accepted, e.g. the Docker bridge address `172.17.0.1:8088`.
    pub extra_hosts: Vec<String>,
    /// `Origin` values accepted (a request without `Origin` is fine).
    pub allowed_origins: Vec<String>,
    /// Unix socket paths the proxy is also served on.
    pub unix: Vec<String>,
    /// Octal mode of those sockets, e.g. `"0660"`.
    pub unix_mode: Option<String>,
    /// Group owning those sockets; its members may connect.
    pub unix_group: String,
    /// Peer uids allowed on the Unix sockets (root and the daemon's user always are).
    pub unix_allowed_uids: Vec<u32>,
    /// `"auto"` (on for non-loopback binds), `true` or `false`.
    pub require_client_keys: Option<RawRequireKeys>,
}

/// `require_client_keys`: a boolean, or the string `"auto"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawRequireKeys {
    Bool(bool),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAdmin {
    /// Admin socket path; empty: the default for the runtime directory.
    pub socket: String,
    /// Optional loopback `IP:PORT` serving only `GET /metrics`.
    pub metrics_address: String,
    /// Members of this group may use the admin socket.
    pub group: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStore {
    /// `auto` | `keyring` | `file`.
    pub kind: Option<String>,
    /// State directory for the file store; empty: the default.
    pub dir: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimits {
    pub connect_timeout: Option<String>,
    pub header_read_timeout: Option<String>,
    pub response_header_timeout: Option<String>,
    pub stream_idle_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub body_read_timeout: Option<String>,
    pub max_request_body: Option<String>,
    pub retry_body_limit: Option<String>,
    pub max_connections: Option<u64>,
    pub workers: Option<u64>,
    pub shutdown_grace: Option<String>,
    pub login_timeout: Option<String>,
    pub refresh_token_warning: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    /// `auto` | `journald` | `stderr`.
    pub target: Option<String>,
    /// A tracing filter such as `info` or `mcpproxyd=debug`; `RUST_LOG` overrides.
    pub level: Option<String>,
    /// Record JSON-RPC method and tool name of requests.
    pub audit_rpc: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAcl {
    /// Server names, IDs, or path prefixes starting with `/`.
    pub allowed_servers: Vec<String>,
    pub blocked_servers: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawUpstream {
    pub name: Option<String>,
    /// Local path prefix, on whole segments.
    pub mount: Option<String>,
    /// The remote server's base URL; its path replaces the mount prefix.
    pub url: Option<String>,
    /// The `[auth.NAME]` profile whose token is sent.
    pub auth: Option<String>,
    /// Extra PEM trust anchors.
    pub ca_file: String,
    /// `alibaba` | `static`.
    pub catalog: Option<String>,
    /// Plain `http://`, only to a loopback address.
    pub allow_http: bool,
    /// Outbound HTTP(S) proxy URL; environment variables are ignored.
    pub proxy: String,
    /// `auto` (HTTP/2 when the server offers it) | `1.1`.
    pub http_version: Option<String>,
    /// How often an `alibaba` catalog is listed again.
    pub catalog_refresh: Option<String>,
    /// Static catalog entries.
    pub servers: Vec<RawServer>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    pub name: String,
    pub id: String,
    /// Upstream path of the Streamable HTTP endpoint.
    pub mcp: String,
    /// Upstream path of the legacy SSE endpoint.
    pub sse: String,
}

/// One credential profile. Keys of every kind are listed; `validate` refuses the ones that do not
/// belong to the profile's kind, so a typo never silently falls back to a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAuth {
    /// `alibaba` | `oauth` | `static`.
    pub kind: Option<String>,
    // --- alibaba ---
    pub region: Option<String>,
    pub oauth_app_name: Option<String>,
    pub scope: Option<String>,
    pub redirect_uri: Option<String>,
    pub signin_url: Option<String>,
    pub oauth_url: Option<String>,
    pub ims_endpoint: Option<String>,
    pub access_key: Option<String>,
    // --- oauth ---
    pub issuer: Option<String>,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub revocation_endpoint: Option<String>,
    pub client_id: Option<String>,
    /// Refused: a secret never sits in the config file.
    pub client_secret: Option<String>,
    pub client_secret_file: Option<String>,
    pub client_secret_credential: Option<String>,
    /// A PEM private key for `private_key_jwt`: a 0600 file, or a systemd credential.
    pub private_key_file: Option<String>,
    pub private_key_credential: Option<String>,
    /// The `kid` of the client assertions' JWS header.
    pub private_key_id: Option<String>,
    /// `auto` (from the key) | `ES256` | `RS256`.
    pub private_key_alg: Option<String>,
    /// The `aud` of the client assertions, for servers that want another value than their
    /// issuer (some want the token endpoint URL).
    pub private_key_audience: Option<String>,
    /// `authorization_code` | `client_credentials`.
    pub grant: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub resource: Option<String>,
    // --- alibaba and oauth ---
    pub refresh_margin: Option<String>,
    // --- every kind that talks to a server ---
    pub ca_file: Option<String>,
    // --- static ---
    pub token_file: Option<String>,
    pub credential: Option<String>,
}

impl RawAuth {
    /// The keys that are set, by name, so `validate` can refuse those foreign to the kind.
    pub fn set_keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        macro_rules! collect {
            ($($field:ident),*) => { $( if self.$field.is_some() { keys.push(stringify!($field)); } )* };
        }
        collect!(
            region,
            oauth_app_name,
            scope,
            redirect_uri,
            signin_url,
            oauth_url,
            ims_endpoint,
            access_key,
            issuer,
            authorization_endpoint,
            token_endpoint,
            revocation_endpoint,
            client_id,
            client_secret,
            client_secret_file,
            client_secret_credential,
            private_key_file,
            private_key_credential,
            private_key_id,
            private_key_alg,
            private_key_audience,
            grant,
            scopes,
            resource,
            refresh_margin,
            ca_file,
            token_file,
            credential
        );
        keys
    }
}
