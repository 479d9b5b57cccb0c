//! Where the OAuth tokens of each auth profile live between runs: the OS keyring or an
//! encrypted file, behind one [`TokenStore`] trait.
//!
//! - [`record`]: the [`TokenRecord`] and its versioned JSON form.
//! - [`file`](mod@file): [`FileStore`], one AEAD-encrypted file per profile in the state directory, for
//!   headless services that must keep their login across reboots.
//! - [`keyring`]: [`KeyringStore`], the Secret Service of a desktop session, or the kernel's
//!   keyutils keyring (lost at reboot).
//! - [`lock`]: [`StoreLock`], the cross-process lock two daemons on one store take around a
//!   refresh, so neither invalidates the other's rotated refresh token.
//! - `paths`, `key`, `secret_service`: the state directory, the file store's key, and the
//!   Secret Service detection.
//!
//! [`open`] picks the store the `[store]` config asks for. All methods block: async callers use
//! `spawn_blocking`. No error message contains a token.

use std::path::PathBuf;

use crate::config::{Store, StoreKind};

pub mod file;
mod key;
pub mod keyring;
pub mod lock;
mod paths;
pub mod record;
mod secret_service;

pub use file::FileStore;
pub use keyring::KeyringStore;
pub use lock::StoreLock;
pub use paths::default_state_dir;
pub(crate) use paths::{ensure_private_dir, write_atomic};
pub use record::{TokenRecord, RECORD_VERSION};

/// Which store is in use, for `status` and the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreInfo {
    /// E.g. `file /var/lib/mcpproxyd/tokens (key: systemd credential)`, `keyring (Secret
    /// Service)`, `keyring (kernel keyutils, lost at reboot)`.
    pub name: String,
    pub survives_reboot: bool,
}

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

/// A place for token records, one per auth profile.
pub trait TokenStore: Send + Sync {
    /// Which store this is, for `status`.
    fn info(&self) -> StoreInfo;
    /// The record of `profile`, or `None` when there is none.
    fn load(&self, profile: &str) -> Result<Option<TokenRecord>, StoreError>;
    /// Replaces the record of `profile` atomically: a crash leaves the old or the new one.
    fn save(&self, profile: &str, record: &TokenRecord) -> Result<(), StoreError>;
    /// Removes the record of `profile`; no record is fine.
    fn delete(&self, profile: &str) -> Result<(), StoreError>;
    /// Waits for the exclusive cross-process lock of `profile`; released on drop.
    fn lock(&self, profile: &str) -> Result<StoreLock, StoreError>;
}

/// The state directory: `[store] dir`, else [`default_state_dir`]. Tokens and the saved
/// server lists live here.
pub fn state_dir(config: &Store) -> PathBuf {
    config.dir.clone().unwrap_or_else(default_state_dir)
}

/// Opens the store that `[store]` asks for.
///
/// - `file`: [`FileStore`] in `dir` (default [`default_state_dir`]), its key from
///   `$CREDENTIALS_DIRECTORY` when systemd passes one.
/// - `auto`: the first store that survives a reboot: the Secret Service if a session bus has
///   one, else the file store.
/// - `keyring`: the Secret Service, else kernel keyutils (with a warning: lost at reboot).
pub fn open(config: &Store) -> Result<Box<dyn TokenStore>, StoreError> {
    let dir = state_dir(config);
    let file_store = |dir| -> Result<Box<dyn TokenStore>, StoreError> {
        let credentials = std::env::var_os("CREDENTIALS_DIRECTORY")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from);
        Ok(Box::new(FileStore::new(dir, credentials)?))
    };
    match config.kind {
        StoreKind::File => file_store(dir),
        StoreKind::Auto => match KeyringStore::secret_service(dir.clone()) {
            Ok(store) => Ok(Box::new(store)),
            Err(e) => {
                tracing::debug!(reason = %e, "token store: no Secret Service, using the file store");
                file_store(dir)
            }
        },
        StoreKind::Keyring => match KeyringStore::secret_service(dir.clone()) {
            Ok(store) => Ok(Box::new(store)),
            Err(e) => {
                tracing::warn!(
                    reason = %e,
                    "token store: no Secret Service; using the kernel keyring (keyutils), whose \
                     tokens are lost at reboot (under systemd it also needs KeyringMode=)"
                );
                Ok(Box::new(KeyringStore::keyutils(dir)?))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_file_kind_gives_the_file_store_in_the_configured_dir() {
        let dir = tempfile::tempdir().unwrap();
        let config = Store {
            kind: StoreKind::File,
            dir: Some(dir.path().join("state")),
        };
        let store = open(&config).unwrap();
        let info = store.info();
        assert!(info.survives_reboot);
        assert!(info.name.starts_with("file "), "{}", info.name);
        assert!(
            info.name.contains(&dir.path().display().to_string()),
            "{}",
            info.name
        );
        store.save("p", &record::tests::sample()).unwrap();
        record::tests::assert_same(&store.load("p").unwrap().unwrap(), &record::tests::sample());
    }

    #[test]
    fn errors_are_send_and_sync_and_stores_are_objects() {
        fn check<T: Send + Sync + std::error::Error>() {}
        check::<StoreError>();
        let _: Option<Box<dyn TokenStore>> = None;
    }
}
