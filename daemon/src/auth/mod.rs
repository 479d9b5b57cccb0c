//! The credential plane: the token each auth profile sends upstream, and how it is obtained,
//! kept fresh and stored.
//!
//! - [`tokens`]: the token manager, one slot per profile, loaded at start, wiped on revoke;
//!   [`slot`]: one profile's token, its single-flight refresh, login and wipe;
//!   [`lifecycle`]: the state machine of a profile's token, one method per transition;
//!   [`schedule`]: when to refresh (expiry, margin, jitter, backoff), pure maths;
//!   [`refresher`]: the per-profile task that refreshes on that schedule;
//!   [`errors`]: what the token manager and logins report when they cannot do what was asked.
//! - [`login`]: pending logins (authorization code + PKCE) started from the admin API, each
//!   after its [`login_plan`] (endpoints, client id, resource);
//!   [`terminal_login`]: the foreground `--no-browser` login on a terminal;
//!   [`device`]: device logins (RFC 8628, `login --device`), polled on [`device_poll`]'s
//!   schedule.
//! - [`oauth`]: the OAuth 2.1 client (discovery, registration, token and revocation calls).
//! - [`token_store`]: where tokens live: the OS keyring or an encrypted file.
//! - [`import`]: taking over a login from the seed tool's file.
//! - [`client_keys`]: local client keys, who may use a listener that requires them.

pub mod client_keys;
pub mod device;
pub mod device_poll;
pub mod errors;
pub mod import;
pub mod lifecycle;
pub mod login;
pub mod login_plan;
pub mod machine;
pub mod oauth;
pub mod refresher;
pub mod schedule;
pub mod slot;
pub mod step_up;
pub mod terminal_login;
pub mod token_store;
pub mod tokens;
