//! The token of each auth profile, kept valid: loaded from the store at start, refreshed ahead
//! of expiry by one task per profile (single-flight: requests that need a token wait for the
//! refresh in progress), persisted before use, wiped on revoke.
//!
//! The manager holds one slot ([`slot`](crate::auth::slot)) per profile; the state machine is
//! [`lifecycle`](crate::auth::lifecycle)'s, the schedule [`schedule`]'s, the loop
//! [`refresher`]'s. Static profiles are always `Valid`. The manager outlives reloads; `apply`
//! updates the profiles.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

use crate::auth::errors::{RefreshError, TokenError};
use crate::auth::refresher::{self, CLOCK_CHECK};
use crate::auth::schedule;
use crate::auth::slot::{lock, Deps, Slot};
use crate::auth::step_up::Challenged;
use crate::auth::token_store::{StoreInfo, TokenRecord, TokenStore};
use crate::clock::Clock;
use crate::config::{AuthProfile, Config};
use crate::control::metrics::Metrics;
use crate::http_client::{self, ClientOptions};

pub use crate::auth::lifecycle::Phase;

/// What the proxy can send for a profile right now.
#[derive(Debug, Clone)]
pub enum TokenState {
    /// A token to send as `Authorization: Bearer`.
    Token(SecretString),
    /// No usable token: the user must log in (the message says how).
    NeedsLogin(String),
    /// A token exists but could not be renewed just now (the message says why).
    Unavailable(String),
}

/// A token together with the handle that closes the streams using it on revoke.
pub struct Lease {
    pub state: TokenState,
    pub streams: Option<CancellationToken>,
}

/// What `status` shows of a profile.
pub struct ProfileView {
    pub name: String,
    pub kind: &'static str,
    pub phase: Phase,
    pub valid_until: Option<u64>,
    pub refresh_at: Option<u64>,
    pub refresh_expires_at: Option<u64>,
    /// The token held has a refresh token (false: the login ends with the access token).
    pub refreshable: bool,
    /// Scopes an upstream asked for that a new login must grant.
    pub needed_scopes: Vec<String>,
    pub last_error: Option<String>,
}

/// The token manager.
pub struct Tokens {
    slots: Mutex<BTreeMap<String, Arc<Slot>>>,
    deps: Deps,
    stop: CancellationToken,
}

impl Tokens {
    /// A manager for `config`'s profiles. `store` is needed only by OAuth and Alibaba profiles.
    pub fn new(
        config: &Config,
        store: Option<Arc<dyn TokenStore>>,
        metrics: Arc<Metrics>,
    ) -> Arc<Tokens> {
        Tokens::with_clock(config, store, metrics, Clock::system())
    }

    /// As [`Tokens::new`], reading the wall clock from `clock`.
    pub fn with_clock(
        config: &Config,
        store: Option<Arc<dyn TokenStore>>,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> Arc<Tokens> {
        let t = Arc::new(Tokens {
            slots: Mutex::new(BTreeMap::new()),
            deps: Deps {
                store,
                metrics,
                clock,
            },
            stop: CancellationToken::new(),
        });
        t.apply(config);
        t
    }

    pub fn store_info(&self) -> Option<StoreInfo> {
        self.deps.store.as_ref().map(|s| s.info())
    }

    /// Takes the profiles of a (re)loaded config: new ones are added and loaded from the store,
    /// changed ones updated, removed ones dropped. Tokens already held are kept.
    pub fn apply(self: &Arc<Self>, config: &Config) {
        let mut slots = lock(&self.slots);
        slots.retain(|name, _| config.auth.contains_key(name));
        for (name, profile) in &config.auth {
            let http = profile_http(profile, config);
            if let Some(slot) = slots.get(name) {
                *lock(&slot.profile) = profile.clone();
                *lock(&slot.http) = http;
                if let AuthProfile::Static(s) = profile {
                    slot.set_valid(static_record(&s.token, self.deps.clock.now()));
                }
                continue;
            }
            let slot = Arc::new(Slot::new(name, profile.clone(), http, self.deps.clone()));
            match profile {
                AuthProfile::Static(s) => {
                    slot.set_valid(static_record(&s.token, self.deps.clock.now()))
                }
                _ => {
                    self.load_stored(&slot);
                    if tokio::runtime::Handle::try_current().is_ok() {
                        tokio::spawn(refresher::run(slot.clone(), self.stop.clone()));
                    }
                }
            }
            slots.insert(name.clone(), slot);
        }
    }

    fn load_stored(&self, slot: &Arc<Slot>) {
        let Some(store) = &self.deps.store else {
            return;
        };
        match store.load(&slot.name) {
            Ok(Some(record)) if !issued_by_profile(&record, &lock(&slot.profile)) => {
                // Keyed by issuer: a token never goes back to another authorization server.
                tracing::warn!(profile = %slot.name, "the stored token was issued by another authorization server than the profile names; a new login is needed");
            }
            Ok(Some(record)) => {
                tracing::info!(profile = %slot.name, store = %store.info().name, "token loaded from the store");
                slot.set_valid(record);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(profile = %slot.name, error = %e, "cannot load the stored token");
                slot.load_failed(e.to_string());
            }
        }
    }

    /// Stops the refresher tasks.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }

    /// The HTTP client for a profile's authorization server.
    pub fn http_for(&self, profile: &str) -> reqwest::Client {
        match self.slot(profile) {
            Some(slot) => lock(&slot.http).clone(),
            None => http_client::build(&ClientOptions::default()).expect("a default client builds"),
        }
    }

    fn slot(&self, profile: &str) -> Option<Arc<Slot>> {
        lock(&self.slots).get(profile).cloned()
    }

    fn known(&self, profile: &str) -> Result<Arc<Slot>, TokenError> {
        self.slot(profile)
            .ok_or_else(|| TokenError::UnknownProfile(profile.to_string()))
    }

    /// The token to send now. An expired token is refreshed first (single-flight).
    pub async fn current(&self, profile: &str) -> Lease {
        let Some(slot) = self.slot(profile) else {
            return Lease {
                state: TokenState::NeedsLogin(format!(
                    "auth profile `{profile}` is not configured"
                )),
                streams: None,
            };
        };
        let streams = Some(slot.streams());
        if let AuthProfile::Static(s) = &*lock(&slot.profile) {
            return Lease {
                state: TokenState::Token(s.token.clone()),
                streams,
            };
        }
        // The refreshes below are boxed: their state is large and rarely needed, and inline it
        // would size the future of every proxied request.
        for _ in 0..2 {
            // Only the access token is copied out (and only when it is usable), not the whole
            // record: this runs for every proxied request.
            let now = slot.clock().now();
            let (usable, phase, generation) = slot.read(|l| {
                let usable = l
                    .record()
                    .map(|r| schedule::usable(r, now).then(|| r.access_token.clone()));
                (usable, l.phase(), l.generation())
            });
            let state = match (phase, usable) {
                (Phase::Valid | Phase::Refreshing, Some(Some(token))) => TokenState::Token(token),
                (Phase::Valid | Phase::Refreshing, Some(None)) => {
                    match Box::pin(slot.refresh(generation)).await {
                        Ok(()) => continue,
                        Err(e) if e.needs_login() => TokenState::NeedsLogin(needs_login_message(profile, &e)),
                        Err(e) => TokenState::Unavailable(format!(
                            "the token of profile `{profile}` expired and could not be renewed: {e}"
                        )),
                    }
                }
                (Phase::LoggedOut | Phase::NeedsLogin, _) if slot.machine().is_some() => {
                    // No login for a machine profile: fetch a token now (single-flight).
                    match Box::pin(slot.refresh(generation)).await {
                        Ok(()) => continue,
                        Err(e) => TokenState::Unavailable(format!(
                            "profile `{profile}` could not fetch a token with its client credentials: {e}"
                        )),
                    }
                }
                (Phase::Revoked, _) => TokenState::NeedsLogin(format!(
                    "the token of profile `{profile}` was revoked; run `mcpproxyctl login --profile {profile}`"
                )),
                (Phase::NeedsLogin, _) => TokenState::NeedsLogin(format!(
                    "profile `{profile}` needs a new login: {}; run `mcpproxyctl login --profile {profile}`",
                    slot.read(|l| l.last_error().unwrap_or_default().to_string())
                )),
                _ => TokenState::NeedsLogin(format!(
                    "auth profile `{profile}` is not logged in; run `mcpproxyctl login --profile {profile}`"
                )),
            };
            return Lease { state, streams };
        }
        Lease {
            state: TokenState::Unavailable("the token changed during the request; retry".into()),
            streams,
        }
    }

    /// After the upstream answered 401 to `sent`: one forced refresh (single-flight), unless
    /// the token already changed since. Returns the token to retry with, if there is one.
    ///
    /// `Err(message)` when the forced refresh showed that the profile needs a new login (no
    /// refresh token, or the grant refused): the client is told so instead of getting the
    /// upstream's opaque 401.
    pub async fn after_unauthorized(
        &self,
        profile: &str,
        sent: &SecretString,
    ) -> Result<Option<SecretString>, String> {
        let Some(slot) = self.slot(profile) else {
            return Ok(None);
        };
        if slot.is_static() {
            return Ok(None);
        }
        let (record, _, generation) = slot.snapshot();
        let Some(record) = record else {
            return Ok(None);
        };
        if record.access_token.expose_secret() == sent.expose_secret() {
            if let Err(e) = slot.refresh(generation).await {
                tracing::warn!(profile, error = %e, "refresh after an upstream 401 failed");
                if e.needs_login() && slot.machine().is_none() {
                    return Err(needs_login_message(profile, &e));
                }
                return Ok(None);
            }
        }
        let (record, phase, _) = slot.snapshot();
        Ok(retry_with(record, phase, sent, slot.clock().now()))
    }

    /// A finished login: persisted, then used.
    pub async fn logged_in(&self, profile: &str, record: TokenRecord) -> Result<(), TokenError> {
        self.known(profile)?.logged_in(record).await
    }

    /// An upstream of `profile` answered 403 `insufficient_scope` asking for `asked`: recorded
    /// (with the scopes the token holds) for the next login.
    pub fn insufficient_scope(&self, profile: &str, asked: &[String]) -> Option<Challenged> {
        let slot = self.slot(profile)?;
        let held = slot.read(|l| l.record().map(TokenRecord::scopes).unwrap_or_default());
        let challenged = lock(&slot.step_up).challenged(asked, &held);
        self.deps.metrics.step_up(profile);
        tracing::warn!(profile, asked = %asked.join(" "), "the upstream needs more scopes: `mcpproxyctl login` must grant them");
        Some(challenged)
    }

    /// The scopes a new login of `profile` must ask for beyond its own (step-up).
    pub fn needed_scopes(&self, profile: &str) -> Vec<String> {
        self.slot(profile)
            .map(|s| lock(&s.step_up).scopes())
            .unwrap_or_default()
    }

    /// How the client of `record`, a token of `profile`, authenticates at its authorization
    /// server (for revocation): its secret and method, `None` for a public client.
    pub fn client_auth(
        &self,
        profile: &str,
        record: &TokenRecord,
    ) -> Option<(SecretString, crate::auth::oauth::AuthMethod)> {
        self.slot(profile)?.client_auth(record)
    }

    /// A fresh assertion for one request of a login's client when `secret` says it signs
    /// them (`private_key_jwt`: each assertion's `jti` is good once); `None` for other clients.
    pub fn login_assertion(
        &self,
        profile: &str,
        client_id: &str,
        endpoints: &crate::auth::oauth::Endpoints,
        secret: &Option<(SecretString, crate::auth::oauth::AuthMethod)>,
    ) -> Option<SecretString> {
        match secret {
            Some((_, crate::auth::oauth::AuthMethod::PrivateKeyJwt)) => self.assertion(
                profile,
                client_id,
                crate::auth::oauth::assertion_audience(endpoints),
            ),
            _ => None,
        }
    }

    /// A fresh `private_key_jwt` assertion of `client_id` (the client `profile` configures) for
    /// the authorization server `audience`.
    pub fn assertion(
        &self,
        profile: &str,
        client_id: &str,
        audience: &str,
    ) -> Option<SecretString> {
        self.slot(profile)?.assertion(client_id, audience)
    }

    /// Wipes the profile's token locally and closes its streams; returns the record it had.
    pub async fn wipe(
        &self,
        profile: &str,
        revoked: bool,
    ) -> Result<Option<TokenRecord>, TokenError> {
        self.known(profile)?.wipe(revoked).await
    }

    /// A profile whose refresher has not gone round its loop for far longer than it should.
    pub fn stuck_refresher(&self) -> Option<String> {
        let limit = self
            .deps
            .clock
            .now()
            .saturating_sub(3 * CLOCK_CHECK.as_secs() + 30);
        lock(&self.slots)
            .values()
            .filter(|s| !s.is_static())
            .find(|s| s.last_beat() < limit)
            .map(|s| s.name.clone())
    }

    /// What `status` shows, by profile name.
    pub fn views(&self) -> Vec<ProfileView> {
        lock(&self.slots).values().map(|slot| view(slot)).collect()
    }
}

fn view(slot: &Slot) -> ProfileView {
    let kind = lock(&slot.profile).kind();
    let is_static = kind == "static";
    slot.read(|l| ProfileView {
        name: slot.name.clone(),
        kind,
        phase: l.phase(),
        valid_until: if is_static {
            None
        } else {
            l.record().map(schedule::expires_at)
        },
        refresh_at: if is_static { None } else { l.next_refresh() },
        refresh_expires_at: l.record().and_then(|r| r.refresh_expires_at),
        refreshable: l.record().is_some_and(|r| r.refresh_token.is_some()),
        needed_scopes: lock(&slot.step_up).scopes(),
        last_error: l.last_error().map(str::to_string),
    })
}

/// Whether `record` comes from the authorization server `profile` names (always, where the
/// profile names none: it was discovered).
/// The token to retry with after the upstream refused `sent`: the current one, if it is
/// another and may still be sent. Also while the next refresh is in flight (`Refreshing`): the
/// current token is good until that refresh replaces it, and with short-lived tokens under
/// load a request that left with the token before last meets a refresh in progress often.
fn retry_with(
    record: Option<TokenRecord>,
    phase: Phase,
    sent: &SecretString,
    now: u64,
) -> Option<SecretString> {
    let record = record?;
    let holds = matches!(phase, Phase::Valid | Phase::Refreshing) && schedule::usable(&record, now);
    (holds && record.access_token.expose_secret() != sent.expose_secret())
        .then_some(record.access_token)
}

fn issued_by_profile(record: &TokenRecord, profile: &AuthProfile) -> bool {
    let AuthProfile::OAuth(o) = profile else {
        return true;
    };
    let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
    match (&o.issuer, &record.issuer) {
        (Some(configured), Some(stored)) => same(configured.as_str(), stored),
        _ => true,
    }
}

fn needs_login_message(profile: &str, e: &RefreshError) -> String {
    format!(
        "profile `{profile}` needs a new login ({e}); run `mcpproxyctl login --profile {profile}`"
    )
}

/// A static token as a record that never expires.
fn static_record(token: &SecretString, now: u64) -> TokenRecord {
    TokenRecord {
        access_token: token.clone(),
        access_expires_at: None,
        refresh_token: None,
        refresh_expires_at: None,
        issuer: None,
        token_endpoint: None,
        revocation_endpoint: None,
        client_id: String::new(),
        client_secret: None,
        auth_method: None,
        scope: None,
        resource: None,
        obtained_at: now,
    }
}

/// The HTTP client for a profile's authorization server (its own CA, no proxy variables).
fn profile_http(profile: &AuthProfile, config: &Config) -> reqwest::Client {
    let ca_file = match profile {
        AuthProfile::OAuth(o) => o.ca_file.clone(),
        AuthProfile::Alibaba(a) => a.ca_file.clone(),
        AuthProfile::Static(_) => None,
    };
    let opts = ClientOptions {
        ca_file,
        proxy: None,
        connect_timeout: config.limits.connect_timeout,
        allow_http: false,
        http1_only: false,
    };
    http_client::build(&opts).unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot build the authorization server client; using the system trust anchors only");
        http_client::build(&ClientOptions {
            ca_file: None,
            ..opts
        })
        .expect("a client without extra CA builds")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::token_store::record::tests::sample;

    const NOW: u64 = 1_800_000_000;

    fn current(access: &str) -> Option<TokenRecord> {
        Some(TokenRecord {
            access_token: SecretString::from(access),
            obtained_at: NOW - 1,
            access_expires_at: Some(NOW + 1),
            ..sample()
        })
    }

    fn retried(record: Option<TokenRecord>, phase: Phase, sent: &str) -> Option<String> {
        retry_with(record, phase, &SecretString::from(sent), NOW)
            .map(|t| t.expose_secret().to_owned())
    }

    #[test]
    fn a_401_is_retried_with_the_current_token_also_while_the_next_refresh_runs() {
        assert_eq!(
            retried(current("b"), Phase::Valid, "a").as_deref(),
            Some("b")
        );
        // The token before last came back 401 while the refresher renews the current one.
        assert_eq!(
            retried(current("b"), Phase::Refreshing, "a").as_deref(),
            Some("b")
        );
    }

    #[test]
    fn a_401_is_not_retried_with_the_same_an_expired_or_a_dead_token() {
        assert_eq!(retried(current("a"), Phase::Valid, "a"), None);
        let expired = current("b").map(|r| TokenRecord {
            access_expires_at: Some(NOW),
            ..r
        });
        assert_eq!(retried(expired, Phase::Valid, "a"), None);
        for phase in [Phase::NeedsLogin, Phase::Revoked, Phase::LoggedOut] {
            assert_eq!(retried(current("b"), phase, "a"), None);
        }
        assert_eq!(retried(None, Phase::Valid, "a"), None);
    }
}
