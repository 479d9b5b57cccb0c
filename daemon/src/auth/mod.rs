//! The credential plane: the token each auth profile sends upstream, and how it is obtained,
//! kept fresh and stored.
//!
//! - [`tokens`]: the per-profile token state, loaded at start, wiped on revoke.
//! - [`slot`]: one profile's token state and the single-flight lock of its refreshes.
//! - [`schedule`]: when to refresh (expiry, margin, jitter, backoff), pure maths;
//!   [`refresher`]: the per-profile task that refreshes on that schedule.
//! - [`login`]: pending logins (authorization code + PKCE) started from the admin API;
//!   [`terminal_login`]: the foreground `--no-browser` login on a terminal.
//! - [`oauth`]: the OAuth 2.1 client (discovery, registration, token and revocation calls).
//! - [`token_store`]: where tokens live: the OS keyring or an encrypted file.
//! - [`import`]: taking over a login from the seed tool's file.

pub mod import;
pub mod login;
pub mod oauth;
pub mod refresher;
pub mod schedule;
pub mod slot;
pub mod terminal_login;
pub mod token_store;
pub mod tokens;
