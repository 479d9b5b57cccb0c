//! The token record of one auth profile and its versioned JSON form.
//!
//! The record's secrets are `secrecy` types; its JSON form carries a `version` so an older
//! mcpproxyd refuses, with a clear message, what a newer one wrote. Serialization goes through
//! private mirrors, and every plaintext buffer is a [`Zeroizing`] one that never reallocates
//! without wiping the old allocation (see `ZeroizingWriter`).

use std::io;

use secrecy::{ExposeSecret, SecretString};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use super::error::StoreError;

/// The format of the stored record; a record with a larger number is refused.
pub const RECORD_VERSION: u32 = 1;

/// The tokens of one auth profile and what is needed to refresh and revoke them.
///
/// `Debug` shows `[REDACTED]` for the tokens (the `secrecy` types do).
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub access_token: SecretString,
    /// Unix seconds.
    pub access_expires_at: Option<u64>,
    pub refresh_token: Option<SecretString>,
    /// Unix seconds.
    pub refresh_expires_at: Option<u64>,
    pub issuer: Option<String>,
    pub token_endpoint: Option<String>,
    pub revocation_endpoint: Option<String>,
    pub client_id: String,
    /// The secret dynamic registration issued with `client_id` (RFC 7591 §3.2.1).
    pub client_secret: Option<SecretString>,
    /// The token endpoint authentication method in use: `client_secret_basic`,
    /// `client_secret_post` or `none` (none recorded: `none`).
    pub auth_method: Option<String>,
    pub scope: Option<String>,
    pub resource: Option<String>,
    /// Unix seconds.
    pub obtained_at: u64,
}

impl TokenRecord {
    /// The scopes granted, as the token response named them (empty when it did not).
    pub fn scopes(&self) -> Vec<String> {
        let granted = self.scope.as_deref().unwrap_or_default();
        granted.split_whitespace().map(str::to_string).collect()
    }
}

/// The JSON written: borrows the secrets, so they are not copied before serialization.
#[derive(Serialize)]
struct RecordOut<'a> {
    version: u32,
    access_token: &'a str,
    access_expires_at: Option<u64>,
    refresh_token: Option<&'a str>,
    refresh_expires_at: Option<u64>,
    issuer: Option<&'a str>,
    token_endpoint: Option<&'a str>,
    revocation_endpoint: Option<&'a str>,
    client_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_method: Option<&'a str>,
    scope: Option<&'a str>,
    resource: Option<&'a str>,
    obtained_at: u64,
}

/// The JSON read (version 1); the strings move into `SecretString`s at once.
#[derive(Deserialize)]
struct RecordIn {
    version: u32,
    access_token: String,
    #[serde(default)]
    access_expires_at: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    refresh_expires_at: Option<u64>,
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    token_endpoint: Option<String>,
    #[serde(default)]
    revocation_endpoint: Option<String>,
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    auth_method: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    resource: Option<String>,
    obtained_at: u64,
}

/// Only the version, read first so a newer format is named as such, not as a type error.
#[derive(Deserialize)]
struct VersionOnly {
    version: Option<u32>,
}

// === impl TokenRecord ===

impl<'a> From<&'a TokenRecord> for RecordOut<'a> {
    fn from(r: &'a TokenRecord) -> Self {
        RecordOut {
            version: RECORD_VERSION,
            access_token: r.access_token.expose_secret(),
            access_expires_at: r.access_expires_at,
            refresh_token: r.refresh_token.as_ref().map(|t| t.expose_secret()),
            refresh_expires_at: r.refresh_expires_at,
            issuer: r.issuer.as_deref(),
            token_endpoint: r.token_endpoint.as_deref(),
            revocation_endpoint: r.revocation_endpoint.as_deref(),
            client_id: &r.client_id,
            client_secret: r.client_secret.as_ref().map(|t| t.expose_secret()),
            auth_method: r.auth_method.as_deref(),
            scope: r.scope.as_deref(),
            resource: r.resource.as_deref(),
            obtained_at: r.obtained_at,
        }
    }
}

impl From<RecordIn> for TokenRecord {
    fn from(r: RecordIn) -> Self {
        TokenRecord {
            access_token: r.access_token.into(),
            access_expires_at: r.access_expires_at,
            refresh_token: r.refresh_token.map(Into::into),
            refresh_expires_at: r.refresh_expires_at,
            issuer: r.issuer,
            token_endpoint: r.token_endpoint,
            revocation_endpoint: r.revocation_endpoint,
            client_id: r.client_id,
            client_secret: r.client_secret.map(Into::into),
            auth_method: r.auth_method,
            scope: r.scope,
            resource: r.resource,
            obtained_at: r.obtained_at,
        }
    }
}

impl Serialize for TokenRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        RecordOut::from(self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for TokenRecord {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let record = RecordIn::deserialize(deserializer)?;
        match record.version {
            RECORD_VERSION => Ok(record.into()),
            v if v > RECORD_VERSION => Err(D::Error::custom(format!(
                "token record written by a newer mcpproxyd (format {v}; this one reads {RECORD_VERSION})"
            ))),
            v => Err(D::Error::custom(format!("unknown token record format {v}"))),
        }
    }
}

/// The record as versioned JSON, in a buffer that is wiped when dropped.
pub(crate) fn encode(record: &TokenRecord) -> Zeroizing<Vec<u8>> {
    let secrets = record.access_token.expose_secret().len()
        + record
            .refresh_token
            .as_ref()
            .map_or(0, |t| t.expose_secret().len());
    let mut out = ZeroizingWriter::with_capacity(1024 + 2 * secrets);
    serde_json::to_writer(&mut out, &RecordOut::from(record))
        .expect("a token record always serializes to JSON");
    out.0
}

/// Reads a stored record of `profile`. Errors name the profile and never quote the input:
/// serde_json's messages can include string values, which here are tokens.
pub(crate) fn decode(profile: &str, json: &[u8]) -> Result<TokenRecord, StoreError> {
    let corrupt = |e: serde_json::Error| StoreError::Corrupt {
        profile: profile.to_string(),
        reason: describe_json_error(&e),
    };
    let version = serde_json::from_slice::<VersionOnly>(json)
        .map_err(corrupt)?
        .version;
    match version {
        Some(RECORD_VERSION) => {}
        Some(v) if v > RECORD_VERSION => {
            return Err(StoreError::NewerVersion {
                profile: profile.to_string(),
                found: v,
                supported: RECORD_VERSION,
            })
        }
        Some(v) => {
            return Err(StoreError::Corrupt {
                profile: profile.to_string(),
                reason: format!("unknown record format {v}"),
            })
        }
        None => {
            return Err(StoreError::Corrupt {
                profile: profile.to_string(),
                reason: "the record has no format version".to_string(),
            })
        }
    }
    serde_json::from_slice::<RecordIn>(json)
        .map(TokenRecord::from)
        .map_err(corrupt)
}

/// Where and what kind of JSON error, without serde_json's text (it may quote a token).
fn describe_json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let kind = match e.classify() {
        Category::Io => "unreadable",
        Category::Syntax => "not valid JSON",
        Category::Data => "a field is missing or has the wrong type",
        Category::Eof => "the record is cut short",
    };
    format!("{kind} at line {} column {}", e.line(), e.column())
}

/// A `Vec` writer that, when it must grow, moves into a larger zeroizing buffer so the old
/// allocation is wiped rather than freed with plaintext in it.
pub(crate) struct ZeroizingWriter(pub(crate) Zeroizing<Vec<u8>>);

impl ZeroizingWriter {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        ZeroizingWriter(Zeroizing::new(Vec::with_capacity(capacity)))
    }
}

impl io::Write for ZeroizingWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let needed = self.0.len() + data.len();
        if needed > self.0.capacity() {
            let mut bigger = Vec::with_capacity(needed.max(2 * self.0.capacity()));
            bigger.extend_from_slice(&self.0);
            // The old buffer is wiped as it drops.
            self.0 = Zeroizing::new(bigger);
        }
        self.0.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;

    use super::*;

    pub(crate) const ACCESS: &str = "at-SECRET-access-0123456789";
    pub(crate) const REFRESH: &str = "rt-SECRET-refresh-9876543210";

    pub(crate) fn sample() -> TokenRecord {
        TokenRecord {
            access_token: ACCESS.into(),
            access_expires_at: Some(1_900_000_000),
            refresh_token: Some(REFRESH.into()),
            refresh_expires_at: None,
            issuer: Some("https://as.example".into()),
            token_endpoint: Some("https://as.example/token".into()),
            revocation_endpoint: None,
            client_id: "client-1".into(),
            client_secret: None,
            auth_method: None,
            scope: Some("/acs/mcp-server".into()),
            resource: None,
            obtained_at: 1_800_000_000,
        }
    }

    pub(crate) fn assert_same(a: &TokenRecord, b: &TokenRecord) {
        assert_eq!(
            a.access_token.expose_secret(),
            b.access_token.expose_secret()
        );
        assert_eq!(
            a.refresh_token.as_ref().map(|t| t.expose_secret()),
            b.refresh_token.as_ref().map(|t| t.expose_secret())
        );
        assert_eq!(a.access_expires_at, b.access_expires_at);
        assert_eq!(a.refresh_expires_at, b.refresh_expires_at);
        assert_eq!(a.issuer, b.issuer);
        assert_eq!(a.token_endpoint, b.token_endpoint);
        assert_eq!(a.revocation_endpoint, b.revocation_endpoint);
        assert_eq!(a.client_id, b.client_id);
        assert_eq!(a.scope, b.scope);
        assert_eq!(a.resource, b.resource);
        assert_eq!(a.obtained_at, b.obtained_at);
    }

    #[test]
    fn round_trips_with_its_version() {
        let json = encode(&sample());
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(value["version"], RECORD_VERSION);
        assert_same(&decode("p", &json).unwrap(), &sample());
    }

    #[test]
    fn serde_impls_match_the_stored_form() {
        let json = serde_json::to_vec(&sample()).unwrap();
        assert_same(&decode("p", &json).unwrap(), &sample());
        let back: TokenRecord = serde_json::from_slice(&json).unwrap();
        assert_same(&back, &sample());
    }

    #[test]
    fn debug_hides_the_tokens() {
        let shown = format!("{:?}", sample());
        assert!(
            !shown.contains(ACCESS) && !shown.contains(REFRESH),
            "{shown}"
        );
        assert!(shown.contains("client-1"));
    }

    #[test]
    fn newer_version_is_named() {
        let json = br#"{"version": 2, "something": "else"}"#;
        let err = decode("work", json).unwrap_err();
        assert!(
            matches!(err, StoreError::NewerVersion { found: 2, .. }),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("newer mcpproxyd") && msg.contains("`work`"),
            "{msg}"
        );
        let serde_err = serde_json::from_slice::<TokenRecord>(
            br#"{"version":2,"access_token":"a","client_id":"c","obtained_at":1}"#,
        )
        .unwrap_err();
        assert!(serde_err.to_string().contains("newer mcpproxyd"));
    }

    #[test]
    fn corrupt_record_names_the_profile_but_no_token() {
        for json in [
            &br#"{"version": 1, "access_token": 5, "client_id": "c", "obtained_at": 1}"#[..],
            br#"{"version": 1, "access_token": "at-LEAK", "client_id": 7, "obtained_at": 1}"#,
            br#"{"access_token": "at-LEAK"}"#,
            br#"{"version": 1, "access_token": "at-LEAK""#,
            b"garbage",
        ] {
            let err = decode("work", json).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, StoreError::Corrupt { .. }), "{msg}");
            assert!(msg.contains("`work`") && !msg.contains("LEAK"), "{msg}");
        }
    }

    #[test]
    fn zeroizing_writer_grows_and_keeps_everything() {
        let mut w = ZeroizingWriter::with_capacity(2);
        for chunk in [&b"ab"[..], b"cdefg", b"", b"h"] {
            w.write_all(chunk).unwrap();
        }
        assert_eq!(&w.0[..], b"abcdefgh");
    }
}
