//! Local client keys: who may use a proxy listener that requires them.
//!
//! `mcpproxyctl keys add NAME` makes a key (`mcpp_` + 32 random bytes, base64url, see
//! [`secret`]) and shows it once; the daemon keeps only its SHA-256 digest, with the name, the
//! scope (servers, tools) and the times, in `client-keys.json` in the state directory, written
//! with the token store's crash-safe [`write_atomic`] (a crash leaves the old or the new file).
//! A request's key is looked up by its digest, then compared in constant time ([`KeyHash::ct_eq`]).
//! Revoking a key refuses its next request and ends its open streams.
//!
//! - [`secret`]: making, reading and hashing keys.
//! - [`record`]: the stored record, expiry, tool globs, and the file format.

pub mod record;
pub mod secret;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::auth::token_store::{ensure_private_dir, write_atomic};
pub use record::{KeyRecord, Unusable};
pub use secret::{KeyHash, Presented};

/// The key file's name in the state directory.
pub const FILE_NAME: &str = "client-keys.json";

/// `last_used` reaches the file at most this often (seconds); every change of a key at once.
const LAST_USE_FLUSH_SECS: u64 = 60;

/// Why a key operation failed. Messages never contain a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeysError {
    #[error("{0}")]
    InvalidName(String),
    #[error("a key named `{0}` exists; revoke it first, or choose another name")]
    Exists(String),
    #[error("no key named `{0}`")]
    Unknown(String),
    #[error("the client key file {path} is unusable ({reason}); fix or remove it")]
    Broken { path: String, reason: String },
    #[error("cannot save the client keys: {0}")]
    Write(String),
    #[error(transparent)]
    Random(#[from] secret::RandomFailed),
}

/// Why a request's key was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The listener requires a key and none was sent.
    Missing,
    /// `Bearer mcpp_…` that cannot be a key.
    Malformed,
    /// A well-formed key that is not (or no longer) in the store.
    Unknown,
    Revoked(String),
    Expired(String),
    /// The key's scope does not cover this server or tool.
    OutOfScope {
        key: String,
        what: String,
    },
}

/// A request's key, accepted.
#[derive(Debug, Clone)]
pub struct Authorized {
    pub name: String,
    pub servers: Vec<String>,
    pub tools: Vec<String>,
    /// Cancelled when the key is revoked: its streams end.
    pub streams: CancellationToken,
}

#[derive(Default)]
struct Inner {
    keys: Vec<KeyRecord>,
    by_hash: HashMap<KeyHash, usize>,
    streams: HashMap<String, CancellationToken>,
    /// Why the file could not be read: then nothing is written over it.
    broken: Option<String>,
    /// A `last_used` changed since the last save.
    dirty: bool,
    last_saved: u64,
}

impl Inner {
    fn index(&mut self) {
        self.by_hash = self
            .keys
            .iter()
            .enumerate()
            .filter_map(|(i, k)| k.hash().map(|h| (h, i)))
            .collect();
    }

    fn snapshot(&self) -> record::KeyFile {
        record::KeyFile {
            version: record::FILE_VERSION,
            keys: self.keys.clone(),
        }
    }
}

/// The daemon's client keys, loaded at start and saved on every change.
pub struct ClientKeys {
    path: PathBuf,
    inner: Mutex<Inner>,
    /// Held across snapshot and write, so a later state is never overwritten by an earlier one.
    write: Mutex<()>,
    seq: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ClientKeys {
    /// Loads `DIR/client-keys.json` (none: no keys). An unreadable file is logged and leaves
    /// the daemon with no usable key, and refuses changes, until it is fixed.
    pub fn open(dir: &Path) -> ClientKeys {
        let path = dir.join(FILE_NAME);
        remove_stale_temporaries(dir);
        let mut inner = Inner::default();
        match std::fs::read(&path) {
            Ok(bytes) => match record::KeyFile::parse(&bytes) {
                Ok(file) => inner.keys = file.keys,
                Err(e) => inner.broken = Some(e.to_string()),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => inner.broken = Some(e.to_string()),
        }
        if let Some(reason) = &inner.broken {
            tracing::error!(file = %path.display(), reason = %reason, "client keys cannot be read; no key is accepted until the file is fixed");
        } else if !inner.keys.is_empty() {
            tracing::info!(file = %path.display(), keys = inner.keys.len(), "client keys loaded");
        }
        inner.index();
        ClientKeys {
            path,
            inner: Mutex::new(inner),
            write: Mutex::new(()),
            seq: AtomicU64::new(0),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every key, in creation order.
    pub fn list(&self) -> Vec<KeyRecord> {
        lock(&self.inner).keys.clone()
    }

    pub fn get(&self, name: &str) -> Option<KeyRecord> {
        lock(&self.inner)
            .keys
            .iter()
            .find(|k| k.name == name)
            .cloned()
    }

    /// Makes and saves a new key; returns it (shown once, never stored) and its record. A
    /// revoked or expired key of the same name is replaced.
    pub fn add(
        &self,
        name: &str,
        servers: Vec<String>,
        tools: Vec<String>,
        expires_at: Option<u64>,
        now: u64,
    ) -> Result<(SecretString, KeyRecord), KeysError> {
        record::check_name(name).map_err(KeysError::InvalidName)?;
        let (key, hash) = secret::generate()?;
        let rec = KeyRecord {
            name: name.to_string(),
            sha256: hash.to_hex(),
            servers,
            tools,
            created: now,
            last_used: None,
            expires_at,
            revoked_at: None,
        };
        self.change(now, |inner| {
            if let Some(i) = inner.keys.iter().position(|k| k.name == name) {
                if inner.keys[i].usable(now).is_ok() {
                    return Err(KeysError::Exists(name.to_string()));
                }
                inner.keys.remove(i);
            }
            inner.keys.push(rec.clone());
            Ok(())
        })?;
        Ok((key, rec))
    }

    /// Revokes a key: saved first, then its open streams are closed. Revoking a revoked key
    /// again changes nothing.
    pub fn revoke(&self, name: &str, now: u64) -> Result<KeyRecord, KeysError> {
        let mut out = None;
        self.change(now, |inner| {
            let k = inner
                .keys
                .iter_mut()
                .find(|k| k.name == name)
                .ok_or_else(|| KeysError::Unknown(name.to_string()))?;
            k.revoked_at.get_or_insert(now);
            out = Some(k.clone());
            Ok(())
        })?;
        if let Some(streams) = lock(&self.inner).streams.remove(name) {
            streams.cancel();
        }
        out.ok_or_else(|| KeysError::Unknown(name.to_string()))
    }

    /// Applies `edit` and saves; on any error the keys are as before.
    fn change(
        &self,
        now: u64,
        edit: impl FnOnce(&mut Inner) -> Result<(), KeysError>,
    ) -> Result<(), KeysError> {
        let _serial = lock(&self.write);
        let (before, bytes) = {
            let mut inner = lock(&self.inner);
            if let Some(reason) = &inner.broken {
                return Err(KeysError::Broken {
                    path: self.path.display().to_string(),
                    reason: reason.clone(),
                });
            }
            let before = inner.keys.clone();
            edit(&mut inner)?;
            inner.index();
            (before, inner.snapshot().to_bytes())
        };
        if let Err(e) = self.write_file(&bytes) {
            let mut inner = lock(&self.inner);
            inner.keys = before;
            inner.index();
            return Err(e);
        }
        let mut inner = lock(&self.inner);
        inner.dirty = false;
        inner.last_saved = now;
        Ok(())
    }

    fn write_file(&self, bytes: &[u8]) -> Result<(), KeysError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        ensure_private_dir(dir).map_err(|e| KeysError::Write(e.to_string()))?;
        let unique = format!(
            "{}-{}",
            std::process::id(),
            self.seq.fetch_add(1, Ordering::Relaxed)
        );
        write_atomic(&self.path, bytes, &unique).map_err(|e| KeysError::Write(e.to_string()))
    }

    /// The key with digest `presented`, if it may be used at `now`; records the use.
    pub fn authenticate(&self, presented: &KeyHash, now: u64) -> Result<Authorized, Refusal> {
        let mut inner = lock(&self.inner);
        let i = *inner.by_hash.get(presented).ok_or(Refusal::Unknown)?;
        let k = &inner.keys[i];
        // The map lookup found it by digest; the constant-time comparison is what decides.
        if !k.hash().is_some_and(|h| h.ct_eq(presented)) {
            return Err(Refusal::Unknown);
        }
        match k.usable(now) {
            Err(Unusable::Revoked) => return Err(Refusal::Revoked(k.name.clone())),
            Err(Unusable::Expired) => return Err(Refusal::Expired(k.name.clone())),
            Ok(()) => {}
        }
        let (name, servers, tools) = (k.name.clone(), k.servers.clone(), k.tools.clone());
        if inner.keys[i].last_used != Some(now) {
            inner.keys[i].last_used = Some(now);
            inner.dirty = true;
        }
        let streams = inner.streams.entry(name.clone()).or_default().clone();
        Ok(Authorized {
            name,
            servers,
            tools,
            streams,
        })
    }

    /// `last_used` changed and was last saved a while ago: time to [`ClientKeys::flush`].
    pub fn flush_due(&self, now: u64) -> bool {
        let inner = lock(&self.inner);
        inner.dirty && now.saturating_sub(inner.last_saved) >= LAST_USE_FLUSH_SECS
    }

    /// Saves the `last_used` times (at shutdown, and now and then while serving).
    pub fn flush(&self, now: u64) {
        if !lock(&self.inner).dirty {
            return;
        }
        if let Err(e) = self.change(now, |_| Ok(())) {
            tracing::warn!(error = %e, "cannot save the client keys' last use");
        }
    }
}

/// Temporary files of writes that a crash interrupted; the target file is intact.
fn remove_stale_temporaries(dir: &Path) {
    let prefix = format!(".{FILE_NAME}.");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&prefix) && name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
