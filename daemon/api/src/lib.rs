//! The admin API of `mcpproxyd`: HTTP/1.1 + JSON on a Unix socket. These are the request and
//! response types, in the one place both the daemon and `mcpproxyctl` use.
//!
//! | method path | body in | body out |
//! |---|---|---|
//! | `GET /v1/status` | – | [`Status`] |
//! | `GET /v1/servers` | – | [`Servers`] |
//! | `POST /v1/reload` | – (or `{}`) | [`Reloaded`] |
//! | `POST /v1/acl/check` | [`AclCheck`] | [`AclVerdict`] |
//! | `GET /v1/metrics` | – | Prometheus text |
//! | `POST /v1/login` | [`LoginStart`] | [`LoginStarted`] |
//! | `GET /v1/login/{id}?wait=SECONDS` | – | [`LoginStatus`] (waits up to 60 s for a change) |
//! | `POST /v1/login/{id}/code` | [`LoginCode`] | [`LoginStatus`] |
//! | `POST /v1/login/{id}/cancel` | – | [`LoginStatus`] (a device login stops polling) |
//! | `POST /v1/logout` | [`ProfileRequest`] | [`LoggedOut`] |
//! | `POST /v1/revoke` | [`ProfileRequest`] | [`Revoked`] |
//! | `POST /v1/import/aliyun` | [`ImportAliyun`] | [`Imported`] |
//! | `POST /v1/app/fix` | [`ProfileRequest`] | [`AppFixed`] |
//! | `GET /v1/keys` | – | [`Keys`] |
//! | `POST /v1/keys` | [`KeyAdd`] | [`KeyAdded`] (the only time the key is shown) |
//! | `POST /v1/keys/{name}/revoke` | – | [`KeyInfo`] |
//!
//! Every error is [`ErrorBody`] with a status that fits it. Requests are parsed strictly
//! (unknown fields are errors); responses leniently, so an older `mcpproxyctl` can read a newer
//! daemon's answers.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

/// The largest request body the admin API reads.
pub const MAX_REQUEST_BODY: usize = 64 * 1024;

/// Socket path environment variable read by `mcpproxyctl`.
pub const SOCKET_ENV: &str = "MCPPROXYD_SOCKET";

/// `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: &str, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message: message.into(),
            },
        }
    }
}

/// Stable error codes.
pub mod codes {
    /// The peer-credential check refused the caller (HTTP 403).
    pub const PEER_REFUSED: &str = "peer_refused";
    pub const NOT_FOUND: &str = "not_found";
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    pub const BAD_REQUEST: &str = "bad_request";
    pub const BODY_TOO_LARGE: &str = "body_too_large";
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
    /// The new configuration is invalid; nothing changed (HTTP 422).
    pub const INVALID_CONFIG: &str = "invalid_config";
    pub const INTERNAL: &str = "internal";
}

/// `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub pid: u32,
    /// Unix seconds.
    pub started_at: u64,
    pub uptime_seconds: u64,
    /// Bound proxy addresses.
    pub listen: Vec<String>,
    pub config: ConfigInfo,
    pub upstreams: Vec<UpstreamStatus>,
    pub profiles: Vec<ProfileStatus>,
    /// The token store in use, and whether it survives a reboot.
    pub token_store: String,
    pub acl: AclSummary,
    pub counters: Counters,
    /// The proxy's Unix sockets (`[listen] unix`).
    #[serde(default)]
    pub listen_unix: Vec<String>,
    /// Client keys: where they are required, and the keys that may be used.
    #[serde(default)]
    pub client_keys: ClientKeysStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientKeysStatus {
    /// Listeners that require a key (`[listen] require_client_keys`).
    pub required_on: Vec<String>,
    /// Keys that are neither revoked nor expired, with their last use.
    pub active: Vec<KeyInfo>,
    /// Keys revoked or expired.
    pub inactive: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigInfo {
    /// The file, or `(built-in defaults)`.
    pub source: String,
    /// Unix seconds of the last successful load.
    pub loaded_at: u64,
    /// The last reload error, if the last reload failed.
    pub last_reload_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamStatus {
    pub name: String,
    pub mount: String,
    pub url: String,
    pub auth: String,
    pub catalog: String,
    pub servers: usize,
}

/// Where an auth profile's token stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileState {
    LoggedOut,
    LoggingIn,
    Valid,
    Refreshing,
    NeedsLogin,
    Revoked,
}

impl ProfileState {
    /// In words, for people.
    pub fn words(self) -> &'static str {
        match self {
            ProfileState::LoggedOut => "logged out",
            ProfileState::LoggingIn => "logging in",
            ProfileState::Valid => "valid",
            ProfileState::Refreshing => "refreshing",
            ProfileState::NeedsLogin => "needs login",
            ProfileState::Revoked => "revoked",
        }
    }

    /// States that need an operator (`mcpproxyctl status --check` exits 1).
    pub fn needs_attention(self) -> bool {
        matches!(
            self,
            ProfileState::NeedsLogin | ProfileState::Revoked | ProfileState::LoggedOut
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileStatus {
    pub name: String,
    /// `static`, `oauth` or `alibaba`.
    pub kind: String,
    pub state: ProfileState,
    /// Unix seconds the access token expires; none for tokens without expiry.
    pub valid_until: Option<u64>,
    /// Unix seconds of the next planned refresh.
    pub refresh_at: Option<u64>,
    pub last_error: Option<String>,
    /// Something the operator should act on soon (the login itself expiring).
    #[serde(default)]
    pub warning: Option<String>,
    /// One line on where the token comes from.
    pub detail: String,
    /// Scopes an upstream asked for (403 `insufficient_scope`) that the next login will ask
    /// for, together with those held.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needed_scopes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclSummary {
    pub allowed: Vec<String>,
    pub blocked: Vec<String>,
    /// Names and IDs that match no catalogued server.
    pub unresolved: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub requests: u64,
    /// Requests refused by the guard, path check, ACL or a tool policy.
    pub denied: u64,
    pub open_streams: u64,
    /// Tool calls refused by a tool policy (also counted in `denied`).
    #[serde(default)]
    pub tool_denied: u64,
}

/// `GET /v1/servers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Servers {
    pub servers: Vec<ServerInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    pub name: String,
    pub id: String,
    pub upstream: String,
    /// Streamable HTTP URL on the proxy.
    pub mcp_url: Option<String>,
    /// Legacy SSE URL on the proxy.
    pub sse_url: Option<String>,
    pub access: Access,
    /// The ACL entry that decided, if one did.
    pub rule: Option<String>,
    /// The tool policies that apply to this server (empty: every tool, bodies not read).
    #[serde(default)]
    pub policies: Vec<PolicyInfo>,
}

/// One `[[policy]]` as it applies to a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyInfo {
    pub name: String,
    pub allowed_tools: Vec<String>,
    pub blocked_tools: Vec<String>,
    pub read_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Allowed,
    Blocked,
    NotAllowed,
}

/// `POST /v1/reload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reloaded {
    pub source: String,
    /// Settings that changed but take effect only after a restart.
    pub needs_restart: Vec<String>,
}

/// `POST /v1/acl/check` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclCheck {
    /// A proxy path, e.g. `/accounts/1/custom/ecs/id/E1/mcp`.
    pub path: String,
    /// A tool name: the verdict then covers the tool policies too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// A client key name: its scope applies too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// `POST /v1/acl/check` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclVerdict {
    pub path: String,
    pub allowed: bool,
    /// `allowed`, `blocked`, `not_allowed`, `invalid_path` or `no_route`.
    pub decision: String,
    pub rule: Option<String>,
    /// One sentence saying why.
    pub reason: String,
    pub upstream: Option<String>,
    pub server: Option<String>,
    /// The client key asked about, if one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The tool policies' verdict, when a tool was asked about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<ToolVerdict>,
}

/// The verdict on one tool for the path's server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolVerdict {
    pub tool: String,
    pub allowed: bool,
    /// The policy that denied it.
    pub policy: Option<String>,
    /// One sentence saying why.
    pub reason: String,
}

/// `POST /v1/keys`: a new client key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyAdd {
    /// 1 to 64 of `A-Z a-z 0-9 . _ -`.
    pub name: String,
    /// Servers (names, IDs, or path prefixes starting with `/`) the key may reach; empty: all
    /// that the ACL allows.
    #[serde(default)]
    pub servers: Vec<String>,
    /// Tool-name globs the key may call; empty: all.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Lifetime, e.g. `"30d"`; none: until revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

/// A client key's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    Active,
    Expired,
    Revoked,
}

/// One client key as the daemon knows it (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub name: String,
    pub state: KeyState,
    pub servers: Vec<String>,
    pub tools: Vec<String>,
    /// Unix seconds.
    pub created: u64,
    pub last_used: Option<u64>,
    pub expires_at: Option<u64>,
    pub revoked_at: Option<u64>,
}

/// `GET /v1/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keys {
    pub keys: Vec<KeyInfo>,
    /// Where they are kept (only digests are).
    pub file: String,
}

/// `POST /v1/keys` answer: the key, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAdded {
    /// `mcpp_…`: give it to the app as `Authorization: Bearer mcpp_…`.
    pub key: String,
    pub info: KeyInfo,
}
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginStart {
    /// The auth profile; may be left out when only one profile needs a login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The user will paste the code or the redirect URL (`--no-browser`).
    #[serde(default)]
    pub paste: bool,
    /// A device login (RFC 8628, `--device`): the user approves on any device with a
    /// browser while the daemon polls; the answer's `device` says where and with what code.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub device: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginStarted {
    pub id: String,
    pub profile: String,
    /// Open this in a browser.
    pub url: String,
    /// Empty for a device login.
    pub redirect_uri: String,
    /// Unix seconds the pending login expires.
    pub expires_at: u64,
    /// A device login's user code and verification page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceLogin>,
}

/// What the user of a device login needs (RFC 8628 §3.2); the device code stays in the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceLogin {
    /// Type this at `verification_uri`.
    pub user_code: String,
    pub verification_uri: String,
    /// The page with the code filled in, where the server offers one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_uri_complete: Option<String>,
    /// Seconds the code lives.
    pub expires_in: u64,
    /// Seconds the daemon waits between polls, as the server asked at the start.
    pub interval: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginPhase {
    Pending,
    Succeeded,
    Failed,
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginStatus {
    pub id: String,
    pub profile: String,
    pub status: LoginPhase,
    /// Why it failed, or a word on success.
    pub message: Option<String>,
    /// Unix seconds the new access token expires.
    pub valid_until: Option<u64>,
    /// Unix seconds the pending login expires.
    pub expires_at: u64,
}

/// `POST /v1/login/{id}/code`: the code, or the whole redirect URL, as the user pasted it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginCode {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// `POST /v1/logout` and `POST /v1/revoke`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedOut {
    pub profile: String,
    /// A token was held and is now wiped.
    pub had_token: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    pub profile: String,
    /// The token was wiped from memory and the store, and its streams closed.
    pub wiped: bool,
    /// `revoked`, `not_supported` (no revocation endpoint), `nothing_to_revoke`, or `failed`.
    pub server: String,
    /// Why server-side revocation failed.
    pub server_error: Option<String>,
}

/// `POST /v1/import/aliyun`: the contents of the seed tool's `~/.aliyun/.mcpproxy_config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportAliyun {
    /// The `alibaba` profile to store the tokens under; may be left out when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The file's JSON, as read.
    pub file: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Imported {
    pub profile: String,
    pub app_id: String,
    pub valid_until: Option<u64>,
    pub refresh_expires_at: Option<u64>,
}

/// `POST /v1/app/fix`: the profile's redirect URI added to its Alibaba Cloud application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppFixed {
    pub profile: String,
    pub app_id: String,
    /// The URI was added (false: it was there already).
    pub changed: bool,
    pub redirect_uris: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_strict() {
        assert!(serde_json::from_str::<AclCheck>(r#"{"path":"/x"}"#).is_ok());
        assert!(serde_json::from_str::<AclCheck>(r#"{"path":"/x","tool":"t"}"#).is_ok());
        assert!(serde_json::from_str::<AclCheck>(r#"{"path":"/x","bogus":1}"#).is_err());
        assert!(serde_json::from_str::<AclCheck>(r#"{}"#).is_err());
        assert!(serde_json::from_str::<KeyAdd>(r#"{"name":"a"}"#).is_ok());
        assert!(serde_json::from_str::<KeyAdd>(r#"{"name":"a","key":"x"}"#).is_err());
    }

    #[test]
    fn states_serialise_in_snake_case() {
        assert_eq!(
            serde_json::to_string(&ProfileState::NeedsLogin).unwrap(),
            "\"needs_login\""
        );
        assert!(ProfileState::Revoked.needs_attention());
        assert!(!ProfileState::Valid.needs_attention());
    }
}
