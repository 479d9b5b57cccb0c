//! The keyring store: the OS keyring through the keyring-core crate, backend chosen explicitly.
//!
//! - Secret Service (GNOME Keyring, KWallet, KeePassXC) over D-Bus, when the session bus has
//!   one ([`KeyringStore::secret_service`]); survives reboots.
//! - The kernel's keyutils keyring ([`KeyringStore::keyutils`]): always there on Linux, but
//!   only in memory, so lost at reboot. Keys go to the session keyring and are linked to the
//!   user's persistent keyring; under systemd the unit needs `KeyringMode=` for them to
//!   outlive the service process.
//!
//! Entries are service `mcpproxyd`, user = the profile name; the value is the versioned JSON
//! record. The mock store of keyring-core is never used. Locks are lock files in the state
//! directory, as for the file store.

use std::path::PathBuf;
use std::sync::Arc;

use keyring_core::api::CredentialStoreApi as _;
use keyring_core::{CredentialStore, Entry, Error as KeyringError};
use zeroize::Zeroize;

use super::error::StoreError;
use super::lock::Locks;
use super::lock::StoreLock;
use super::paths::ensure_private_dir;
use super::record::TokenRecord;
use super::record::{decode, encode};
use super::secret_service::{probe, session_bus_address, PROBE_TIMEOUT};
use super::store::{StoreInfo, TokenStore};

/// The keyring service name of every entry.
pub const SERVICE: &str = "mcpproxyd";

/// Which keyring backs a [`KeyringStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    SecretService,
    Keyutils,
}

impl Backend {
    fn label(self) -> &'static str {
        match self {
            Backend::SecretService => "keyring (Secret Service)",
            Backend::Keyutils => "keyring (kernel keyutils, lost at reboot)",
        }
    }
}

/// Token records in the OS keyring.
pub struct KeyringStore {
    backend: Backend,
    store: Arc<CredentialStore>,
    locks: Locks,
}

impl KeyringStore {
    /// The Secret Service of the session bus, if one answers within a few seconds. Its lock
    /// files go to `state_dir`.
    pub fn secret_service(state_dir: PathBuf) -> Result<Self, StoreError> {
        probe(session_bus_address().as_deref(), PROBE_TIMEOUT)
            .map_err(StoreError::SecretServiceUnavailable)?;
        let store = dbus_secret_service_keyring_store::Store::new()
            .map_err(|e| keyring_error(Backend::SecretService, e))?;
        KeyringStore::with(Backend::SecretService, store, state_dir)
    }

    /// The kernel keyutils keyring (lost at reboot). Its lock files go to `state_dir`.
    pub fn keyutils(state_dir: PathBuf) -> Result<Self, StoreError> {
        let store = linux_keyutils_keyring_store::Store::new()
            .map_err(|e| keyring_error(Backend::Keyutils, e))?;
        // Building an entry looks up the session keyring: fails where keyutils is unavailable
        // (e.g. blocked by a seccomp filter), so say so now rather than at the first save.
        store
            .build(SERVICE, "probe", None)
            .map_err(|e| keyring_error(Backend::Keyutils, e))?;
        KeyringStore::with(Backend::Keyutils, store, state_dir)
    }

    fn with(
        backend: Backend,
        store: Arc<CredentialStore>,
        state_dir: PathBuf,
    ) -> Result<Self, StoreError> {
        ensure_private_dir(&state_dir)?;
        Ok(KeyringStore {
            backend,
            store,
            locks: Locks::new(&state_dir),
        })
    }

    /// Which keyring this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Takes the lock of `profile` if it is free; `None` if another holder has it.
    pub fn try_lock(&self, profile: &str) -> Result<Option<StoreLock>, StoreError> {
        self.locks.try_lock(profile)
    }

    fn entry(&self, profile: &str) -> Result<Entry, StoreError> {
        if profile.is_empty() {
            return Err(StoreError::InvalidProfile(String::new(), "it is empty"));
        }
        self.store
            .build(SERVICE, profile, None)
            .map_err(|e| keyring_error(self.backend, e))
    }
}

impl TokenStore for KeyringStore {
    fn info(&self) -> StoreInfo {
        StoreInfo {
            name: self.backend.label().to_string(),
            survives_reboot: self.backend == Backend::SecretService,
        }
    }

    fn load(&self, profile: &str) -> Result<Option<TokenRecord>, StoreError> {
        match self.entry(profile)?.get_secret() {
            Ok(json) => decode(profile, &zeroize::Zeroizing::new(json)).map(Some),
            Err(KeyringError::NoEntry) => Ok(None),
            Err(e) => Err(keyring_error(self.backend, e)),
        }
    }

    fn save(&self, profile: &str, record: &TokenRecord) -> Result<(), StoreError> {
        // One call that replaces the value: keyutils' add_key and the Secret Service's
        // CreateItem(replace=true) swap it whole.
        self.entry(profile)?
            .set_secret(&encode(record))
            .map_err(|e| keyring_error(self.backend, e))
    }

    fn delete(&self, profile: &str) -> Result<(), StoreError> {
        match self.entry(profile)?.delete_credential() {
            Ok(()) | Err(KeyringError::NoEntry) => Ok(()),
            Err(e) => Err(keyring_error(self.backend, e)),
        }
    }

    fn lock(&self, profile: &str) -> Result<StoreLock, StoreError> {
        self.locks.lock(profile)
    }
}

/// A keyring error as a message without secrets: the variants that carry the stored bytes
/// have them wiped and are described in words.
fn keyring_error(backend: Backend, e: KeyringError) -> StoreError {
    let message = match e {
        KeyringError::BadEncoding(mut bytes) => {
            bytes.zeroize();
            "the stored value is not UTF-8".to_string()
        }
        KeyringError::BadDataFormat(mut bytes, _) => {
            bytes.zeroize();
            "the stored value is malformed".to_string()
        }
        KeyringError::Ambiguous(entries) => {
            format!(
                "{} keyring items match; remove the extra ones",
                entries.len()
            )
        }
        KeyringError::NoStorageAccess(inner) => format!("no access to the keyring: {inner}"),
        KeyringError::PlatformFailure(inner) => format!("the keyring failed: {inner}"),
        other => other.to_string(),
    };
    StoreError::Keyring {
        backend: backend.label(),
        message,
    }
}

#[cfg(test)]
mod tests;
