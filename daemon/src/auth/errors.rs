//! Why the credential plane could not do what was asked: the token manager (a profile or store
//! it does not have, a store that failed, or for a refresh the authorization server's answer),
//! and logins.

use crate::auth::oauth::OAuthError;
use crate::auth::token_store::StoreError;

/// A token operation that failed on the daemon's side (not the authorization server's).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no profile `{0}`")]
    UnknownProfile(String),
    #[error("no token store is open")]
    NoStore,
    #[error("not logged in")]
    NotLoggedIn,
    /// Failed attempts back off: nothing is sent to the server before the next one is due.
    #[error("the last token request failed ({last_error}); next attempt in {retry_in}s")]
    BackingOff { last_error: String, retry_in: u64 },
    /// Locking or reading the store around a refresh.
    #[error("token store: {0}")]
    Store(#[source] StoreError),
    #[error("cannot store the token: {0}")]
    Save(#[source] StoreError),
    #[error("cannot delete the stored token: {0}")]
    Delete(#[source] StoreError),
    /// The blocking task that talks to the store panicked or was cancelled.
    #[error("the token store task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Why a refresh did not give a new token.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    #[error(transparent)]
    Token(#[from] TokenError),
}

impl RefreshError {
    /// The user must log in again (the server refused the grant); anything else is worth a
    /// retry while the token lasts.
    pub fn needs_login(&self) -> bool {
        matches!(self, RefreshError::OAuth(e) if e.needs_login())
    }
}

/// Why a login could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("{0}")]
    Profile(String),
    #[error("{0}")]
    OAuth(#[from] OAuthError),
    #[error("no login {0} is pending (it finished, failed or expired)")]
    Unknown(String),
    #[error("{0}")]
    BadCode(String),
}
