//! The [`TokenStore`] trait every store implements, and what a store says about itself.

use super::error::StoreError;
use super::lock::StoreLock;
use super::record::TokenRecord;

/// Which store is in use, for `status` and the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreInfo {
    /// E.g. `file /var/lib/mcpproxyd/tokens (key: systemd credential)`, `keyring (Secret
    /// Service)`, `keyring (kernel keyutils, lost at reboot)`.
    pub name: String,
    pub survives_reboot: bool,
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
