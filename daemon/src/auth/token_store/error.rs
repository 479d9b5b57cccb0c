//! Why a token store could not do what was asked. Messages never contain a secret.

use std::path::PathBuf;

/// Why the store could not do what was asked. Messages never contain a secret.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} is accessible by other users (mode {mode:03o}) and belongs to uid {owner}, not to \
         this user: refusing to keep tokens there; make it mode 0700",
        .path.display()
    )]
    InsecureDir {
        path: PathBuf,
        mode: u32,
        owner: u32,
    },
    #[error(
        "the token key file {} can be read or written by other users (mode {mode:03o}); \
         refusing to use it: make it mode 0600, or remove it and log in again",
        .path.display()
    )]
    InsecureKeyFile { path: PathBuf, mode: u32 },
    #[error("the token key {origin} is unusable: {reason}")]
    BadKey {
        origin: String,
        reason: &'static str,
    },
    #[error(
        "the stored tokens of profile `{profile}` were written by a newer mcpproxyd (format \
         {found}; this one reads up to {supported}): upgrade mcpproxyd, or log in again"
    )]
    NewerVersion {
        profile: String,
        found: u32,
        supported: u32,
    },
    #[error("the stored tokens of profile `{profile}` are corrupt ({reason}); log in again")]
    Corrupt { profile: String, reason: String },
    #[error(
        "the stored tokens of profile `{profile}` cannot be decrypted: the token key changed, or \
         the file was altered or copied from another profile; log in again"
    )]
    Undecryptable { profile: String },
    #[error("the profile name {0:?} cannot name stored tokens: {1}")]
    InvalidProfile(String, &'static str),
    #[error("{backend}: {message}")]
    Keyring {
        backend: &'static str,
        message: String,
    },
    #[error("no Secret Service: {0}")]
    SecretServiceUnavailable(String),
    #[error("the system's random number generator failed")]
    Random,
}
