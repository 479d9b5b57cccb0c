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
//! - `store` and `error`: the trait and what a store reports; `paths`, `key`,
//!   `secret_service`: the state directory, the file store's key, and the Secret Service
//!   detection.
//!
//! [`open`] picks the store the `[store]` config asks for. All methods block: async callers use
//! `spawn_blocking`. No error message contains a token.

use std::path::PathBuf;

use crate::config::{Store, StoreKind};

mod error;
pub mod file;
mod key;
pub mod keyring;
pub mod lock;
mod paths;
pub mod record;
mod secret_service;
mod store;

pub use error::StoreError;
pub use store::{StoreInfo, TokenStore};

pub use file::FileStore;
pub use keyring::KeyringStore;
pub use lock::StoreLock;
pub use paths::default_state_dir;
pub(crate) use paths::{ensure_private_dir, write_atomic};
pub use record::{TokenRecord, RECORD_VERSION};

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
