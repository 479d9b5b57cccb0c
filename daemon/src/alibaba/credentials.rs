//! AccessKey credentials for the AK-signed Alibaba Cloud APIs (IMS, the server listing), read
//! from where Alibaba tooling keeps them. The `access_key` setting names the source:
//!
//! - `env`: `ALIBABA_CLOUD_ACCESS_KEY_ID`, `ALIBABA_CLOUD_ACCESS_KEY_SECRET` and, for STS
//!   credentials, `ALIBABA_CLOUD_SECURITY_TOKEN`.
//! - `profile:NAME`: profile NAME of the Alibaba Cloud CLI's `~/.aliyun/config.json`
//!   (`{"current": .., "profiles": [{"name", "mode", "access_key_id", "access_key_secret",
//!   "sts_token", ..}]}`); modes `AK` and `StsToken`. `profile:` alone is the `current` one.
//! - `credential:NAME`: the systemd credential `$CREDENTIALS_DIRECTORY/NAME`, for services that
//!   cannot read a home directory. Either JSON, `{"access_key_id": "..", "access_key_secret":
//!   "..", "security_token": ".."}` (the token optional), or one line `ID:SECRET`.
//!
//! Every source is passed in through [`Sources`], so tests need no process environment.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

pub use crate::config::preset::{BadKeySource, KeySource};

pub const ENV_ACCESS_KEY_ID: &str = "ALIBABA_CLOUD_ACCESS_KEY_ID";
pub const ENV_ACCESS_KEY_SECRET: &str = "ALIBABA_CLOUD_ACCESS_KEY_SECRET";
pub const ENV_SECURITY_TOKEN: &str = "ALIBABA_CLOUD_SECURITY_TOKEN";

/// An AccessKey pair, with the STS token that goes with temporary keys. `Debug` shows neither
/// the secret nor the token, and only the start of the id.
#[derive(Clone)]
pub struct AccessKey {
    pub id: String,
    pub secret: SecretString,
    pub security_token: Option<SecretString>,
    /// Where it came from, for messages (`environment`, `profile default of …`).
    pub source: String,
}

impl AccessKey {
    /// The id shortened for logs: `LTAI…`.
    pub fn masked_id(&self) -> String {
        let head: String = self.id.chars().take(4).collect();
        format!("{head}…")
    }
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKey")
            .field("id", &self.masked_id())
            .field("secret", &"[REDACTED]")
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("source", &self.source)
            .finish()
    }
}

/// The environment, home directory and credentials directory to read from.
#[derive(Clone, Default)]
pub struct Sources {
    env: BTreeMap<String, String>,
    home: Option<PathBuf>,
    credentials_dir: Option<PathBuf>,
}

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sources")
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("home", &self.home)
            .field("credentials_dir", &self.credentials_dir)
            .finish()
    }
}

impl Sources {
    /// This process's: the three variables, `$HOME`, `$CREDENTIALS_DIRECTORY`.
    pub fn from_process() -> Sources {
        let mut sources = Sources::default();
        for name in [ENV_ACCESS_KEY_ID, ENV_ACCESS_KEY_SECRET, ENV_SECURITY_TOKEN] {
            if let Ok(value) = std::env::var(name) {
                sources.env.insert(name.to_string(), value);
            }
        }
        sources.home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        sources.credentials_dir = std::env::var_os("CREDENTIALS_DIRECTORY")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from);
        sources
    }

    pub fn with_env(mut self, name: &str, value: &str) -> Sources {
        self.env.insert(name.to_string(), value.to_string());
        self
    }

    pub fn with_home(mut self, home: impl Into<PathBuf>) -> Sources {
        self.home = Some(home.into());
        self
    }

    pub fn with_credentials_dir(mut self, dir: impl Into<PathBuf>) -> Sources {
        self.credentials_dir = Some(dir.into());
        self
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }
}

/// Why no AccessKey could be read. No message carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(transparent)]
    BadSource(#[from] BadKeySource),
    #[error(
        "{missing} is not set: set {ENV_ACCESS_KEY_ID} and {ENV_ACCESS_KEY_SECRET}, or use \
         access_key = \"profile:NAME\" or \"credential:NAME\""
    )]
    MissingEnv { missing: &'static str },
    #[error("no home directory to find ~/.aliyun/config.json in ($HOME is not set)")]
    NoHome,
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path} is not valid JSON ({detail})")]
    Json { path: PathBuf, detail: String },
    #[error("{path} names no current profile; use access_key = \"profile:NAME\"")]
    NoCurrentProfile { path: PathBuf },
    #[error("no profile `{name}` in {path} (it has: {available})")]
    UnknownProfile {
        name: String,
        path: PathBuf,
        available: String,
    },
    #[error(
        "profile `{name}` in {path} has mode {mode}, which holds no AccessKey the proxy can use; \
         use an AK or StsToken profile (`aliyun configure --mode AK --profile NAME`)"
    )]
    UnsupportedMode {
        name: String,
        path: PathBuf,
        mode: String,
    },
    #[error("{what} in {path} has no {field}")]
    Incomplete {
        what: String,
        path: PathBuf,
        field: &'static str,
    },
    #[error(
        "credential `{name}` needs $CREDENTIALS_DIRECTORY (set by systemd's LoadCredential= or \
         SetCredential=)"
    )]
    NoCredentialsDirectory { name: String },
    #[error(
        "{path} holds neither JSON with access_key_id and access_key_secret nor one line \
         ID:SECRET"
    )]
    CredentialFormat { path: PathBuf },
}

/// Reads the AccessKey that `source` names.
pub fn load(source: &KeySource, sources: &Sources) -> Result<AccessKey, CredentialsError> {
    match source {
        KeySource::Env => from_env(sources),
        KeySource::Profile(name) => {
            let home = sources.home.as_ref().ok_or(CredentialsError::NoHome)?;
            from_profile(&home.join(".aliyun/config.json"), name.as_deref())
        }
        KeySource::Credential(name) => {
            let dir = sources
                .credentials_dir
                .as_ref()
                .ok_or_else(|| CredentialsError::NoCredentialsDirectory { name: name.clone() })?;
            from_credential(&dir.join(name), name)
        }
    }
}

fn from_env(sources: &Sources) -> Result<AccessKey, CredentialsError> {
    let id = sources
        .var(ENV_ACCESS_KEY_ID)
        .ok_or(CredentialsError::MissingEnv {
            missing: ENV_ACCESS_KEY_ID,
        })?;
    let secret = sources
        .var(ENV_ACCESS_KEY_SECRET)
        .ok_or(CredentialsError::MissingEnv {
            missing: ENV_ACCESS_KEY_SECRET,
        })?;
    Ok(AccessKey {
        id: id.to_string(),
        secret: SecretString::from(secret.to_string()),
        security_token: sources
            .var(ENV_SECURITY_TOKEN)
            .map(|t| SecretString::from(t.to_string())),
        source: "environment".into(),
    })
}

#[derive(Deserialize)]
struct CliConfig {
    #[serde(default)]
    current: String,
    #[serde(default)]
    profiles: Vec<CliProfile>,
}

#[derive(Deserialize)]
struct CliProfile {
    #[serde(default)]
    name: String,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    access_key_id: String,
    #[serde(default)]
    access_key_secret: String,
    #[serde(default)]
    sts_token: String,
}

fn from_profile(path: &Path, name: Option<&str>) -> Result<AccessKey, CredentialsError> {
    let config: CliConfig = read_json(path)?;
    let name = match name {
        Some(n) => n.to_string(),
        None if !config.current.is_empty() => config.current.clone(),
        None => {
            return Err(CredentialsError::NoCurrentProfile {
                path: path.to_path_buf(),
            })
        }
    };
    let profile = config
        .profiles
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| CredentialsError::UnknownProfile {
            name: name.clone(),
            path: path.to_path_buf(),
            available: list_or_none(config.profiles.iter().map(|p| p.name.as_str())),
        })?;
    let with_token = match profile.mode.as_str() {
        // The CLI writes no mode for profiles made by old versions: those were AK profiles.
        "AK" | "" => false,
        "StsToken" => true,
        other => {
            return Err(CredentialsError::UnsupportedMode {
                name,
                path: path.to_path_buf(),
                mode: other.to_string(),
            })
        }
    };
    let what = format!("profile `{name}`");
    let need = |value: &str, field: &'static str| {
        let value = value.trim();
        if value.is_empty() {
            Err(CredentialsError::Incomplete {
                what: what.clone(),
                path: path.to_path_buf(),
                field,
            })
        } else {
            Ok(value.to_string())
        }
    };
    Ok(AccessKey {
        id: need(&profile.access_key_id, "access_key_id")?,
        secret: SecretString::from(need(&profile.access_key_secret, "access_key_secret")?),
        security_token: if with_token {
            Some(SecretString::from(need(&profile.sts_token, "sts_token")?))
        } else {
            None
        },
        source: format!("profile {name} of {}", path.display()),
    })
}

#[derive(Deserialize)]
struct CredentialFile {
    #[serde(default)]
    access_key_id: String,
    #[serde(default)]
    access_key_secret: String,
    #[serde(default)]
    security_token: String,
}

fn from_credential(path: &Path, name: &str) -> Result<AccessKey, CredentialsError> {
    let text = std::fs::read_to_string(path).map_err(|e| CredentialsError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let text = text.trim();
    let source = format!("systemd credential {name}");
    let format_error = || CredentialsError::CredentialFormat {
        path: path.to_path_buf(),
    };
    let (id, secret, token) = if text.starts_with('{') {
        let file: CredentialFile = parse_json(path, text.as_bytes())?;
        let token = Some(file.security_token.trim().to_string()).filter(|t| !t.is_empty());
        (
            file.access_key_id.trim().to_string(),
            file.access_key_secret.trim().to_string(),
            token,
        )
    } else {
        let (id, secret) = text.split_once(':').ok_or_else(format_error)?;
        (id.to_string(), secret.to_string(), None)
    };
    let plain = |s: &str| !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control());
    if !plain(&id) || !plain(&secret) {
        return Err(format_error());
    }
    Ok(AccessKey {
        id,
        secret: SecretString::from(secret),
        security_token: token.map(SecretString::from),
        source,
    })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, CredentialsError> {
    let bytes = std::fs::read(path).map_err(|e| CredentialsError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    parse_json(path, &bytes)
}

/// serde_json's messages can quote the input, which holds secrets: only the position is kept.
fn parse_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    bytes: &[u8],
) -> Result<T, CredentialsError> {
    serde_json::from_slice(bytes).map_err(|e| CredentialsError::Json {
        path: path.to_path_buf(),
        detail: format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        ),
    })
}

fn list_or_none<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    if names.is_empty() {
        "no profiles".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
#[path = "credentials_tests.rs"]
mod tests;
