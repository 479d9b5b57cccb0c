//! The file store: one encrypted file per profile, for headless services that must keep their
//! login across reboots.
//!
//! Layout of the state directory (0700; files 0600):
//! - `tokens/<profile>.json.enc`: the record, sealed as described in `key.rs`;
//! - `token.key`: the key, unless systemd passes the `mcpproxyd-token-key` credential;
//! - `<profile>.lock`: the profile's [`StoreLock`] file.
//!
//! Profile names become file names with every byte outside `[A-Za-z0-9_-]` as `%XX`.
//! Writes are write-temp, fsync, rename, fsync-dir, so a crash leaves the old or the new
//! record; a temporary file left by a crash is ignored (it is encrypted like the record).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};

use super::error::StoreError;
use super::key::{hex, KeySource, TokenKey};
use super::lock::Locks;
use super::lock::StoreLock;
use super::paths::{ensure_private_dir, file_stem, sync_dir, write_atomic};
use super::record::TokenRecord;
use super::record::{decode, encode};
use super::store::{StoreInfo, TokenStore};

/// The directory under the state directory that holds the sealed records.
const TOKENS_DIR: &str = "tokens";
const SUFFIX: &str = ".json.enc";

/// Token records in encrypted files under a state directory.
pub struct FileStore {
    tokens: PathBuf,
    key: TokenKey,
    locks: Locks,
    rng: SystemRandom,
}

impl FileStore {
    /// Opens (creating as needed) the store in `state_dir`. The key is the systemd credential
    /// `mcpproxyd-token-key` in `credentials_dir` (pass `$CREDENTIALS_DIRECTORY`) if present,
    /// else `<state_dir>/token.key`, created on first use.
    pub fn new(state_dir: PathBuf, credentials_dir: Option<PathBuf>) -> Result<Self, StoreError> {
        ensure_private_dir(&state_dir)?;
        let tokens = state_dir.join(TOKENS_DIR);
        ensure_private_dir(&tokens)?;
        let rng = SystemRandom::new();
        let key = TokenKey::load(&state_dir, credentials_dir.as_deref(), &rng)?;
        Ok(FileStore {
            tokens,
            key,
            locks: Locks::new(&state_dir),
            rng,
        })
    }

    /// Takes the lock of `profile` if it is free; `None` if another holder has it.
    pub fn try_lock(&self, profile: &str) -> Result<Option<StoreLock>, StoreError> {
        self.locks.try_lock(profile)
    }

    fn path(&self, profile: &str) -> Result<PathBuf, StoreError> {
        Ok(self.tokens.join(format!("{}{SUFFIX}", file_stem(profile)?)))
    }
}

impl TokenStore for FileStore {
    fn info(&self) -> StoreInfo {
        let key = match &self.key.source {
            KeySource::Credential => "systemd credential".to_string(),
            KeySource::KeyFile(path) => format!("key file {}", path.display()),
        };
        StoreInfo {
            name: format!("file {} (key: {key})", self.tokens.display()),
            survives_reboot: true,
        }
    }

    fn load(&self, profile: &str) -> Result<Option<TokenRecord>, StoreError> {
        let path = self.path(profile)?;
        let sealed = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Io {
                    action: "read",
                    path,
                    source,
                })
            }
        };
        let json = self.key.open(profile, &sealed)?;
        decode(profile, &json).map(Some)
    }

    fn save(&self, profile: &str, record: &TokenRecord) -> Result<(), StoreError> {
        let path = self.path(profile)?;
        let sealed = self.key.seal(profile, &encode(record), &self.rng)?;
        let mut unique = [0u8; 8];
        self.rng.fill(&mut unique).map_err(|_| StoreError::Random)?;
        write_atomic(&path, &sealed, &hex(&unique))
    }

    fn delete(&self, profile: &str) -> Result<(), StoreError> {
        let path = self.path(profile)?;
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(path.parent().unwrap_or(Path::new("."))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Io {
                action: "remove",
                path,
                source,
            }),
        }
    }

    fn lock(&self, profile: &str) -> Result<StoreLock, StoreError> {
        self.locks.lock(profile)
    }
}

#[cfg(test)]
mod tests;
