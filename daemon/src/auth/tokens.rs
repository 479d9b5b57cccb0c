//! The token of each auth profile, kept valid: loaded from the store at start, refreshed ahead
//! of expiry by one task per profile (single-flight: requests that need a token wait for the
//! refresh in progress), persisted before use, wiped on revoke.
//!
//! State per profile: `LoggedOut → Valid → Refreshing → Valid | NeedsLogin | Revoked`. Static
//! profiles are always `Valid`. The manager outlives reloads; `apply` updates the profiles.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::auth::oauth::{self, now, Endpoints, Grant, OAuthError};
use crate::auth::refresher;
use crate::auth::schedule;
use crate::auth::slot::{lock, Inner, Slot};
use crate::auth::token_store::{StoreInfo, TokenRecord, TokenStore};
use crate::config::{AuthProfile, Config};
use crate::control::metrics::Metrics;
use crate::http_client::{self, ClientOptions};

pub use mcpproxyd_api::ProfileState as Phase;

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
    pub last_error: Option<String>,
}

/// The token manager.
pub struct Tokens {
    slots: Mutex<BTreeMap<String, Arc<Slot>>>,
    store: Option<Arc<dyn TokenStore>>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
}

impl Tokens {
    /// A manager for `config`'s profiles. `store` is needed only by OAuth and Alibaba profiles.
    pub fn new(
        config: &Config,
        store: Option<Arc<dyn TokenStore>>,
        metrics: Arc<Metrics>,
    ) -> Arc<Tokens> {
        let t = Arc::new(Tokens {
            slots: Mutex::new(BTreeMap::new()),
            store,
            metrics,
            stop: CancellationToken::new(),
        });
        t.apply(config);
        t
    }

    pub fn store_info(&self) -> Option<StoreInfo> {
        self.store.as_ref().map(|s| s.info())
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
                    slot.set_valid(static_record(&s.token));
                }
                continue;
            }
            let slot = Arc::new(Slot {
                name: name.clone(),
                profile: Mutex::new(profile.clone()),
                http: Mutex::new(http),
                inner: Mutex::new(Inner {
                    record: None,
                    phase: Phase::LoggedOut,
                    last_error: None,
                    next_refresh: None,
                    failures: 0,
                    generation: 0,
                }),
                refresh_lock: tokio::sync::Mutex::new(()),
                wake: Notify::new(),
                streams: Mutex::new(CancellationToken::new()),
                beat: std::sync::atomic::AtomicU64::new(now()),
            });
            match profile {
                AuthProfile::Static(s) => slot.set_valid(static_record(&s.token)),
                _ => {
                    self.load_stored(&slot);
                    if tokio::runtime::Handle::try_current().is_ok() {
                        tokio::spawn(refresher::run(
                            self.clone(),
                            slot.clone(),
                            self.stop.clone(),
                        ));
                    }
                }
            }
            slots.insert(name.clone(), slot);
        }
    }

    fn load_stored(&self, slot: &Arc<Slot>) {
        let Some(store) = &self.store else { return };
        match store.load(&slot.name) {
            Ok(Some(record)) => {
                tracing::info!(profile = %slot.name, store = %store.info().name, "token loaded from the store");
                slot.set_valid(record);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(profile = %slot.name, error = %e, "cannot load the stored token");
                lock(&slot.inner).last_error = Some(e.to_string());
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

    pub(crate) fn slot(&self, profile: &str) -> Option<Arc<Slot>> {
        lock(&self.slots).get(profile).cloned()
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
        let streams = Some(lock(&slot.streams).clone());
        if let AuthProfile::Static(s) = &*lock(&slot.profile) {
            return Lease {
                state: TokenState::Token(s.token.clone()),
                streams,
            };
        }
        for _ in 0..2 {
            let (record, phase, generation) = slot.snapshot();
            let state = match (phase, record) {
                (Phase::Valid | Phase::Refreshing, Some(r)) if schedule::usable(&r, now()) => {
                    TokenState::Token(r.access_token)
                }
                (Phase::Valid | Phase::Refreshing, Some(_)) => {
                    match self.refresh_slot(&slot, generation).await {
                        Ok(()) => continue,
                        Err(e) if e.needs_login() => TokenState::NeedsLogin(needs_login_message(profile, &e)),
                        Err(e) => TokenState::Unavailable(format!(
                            "the token of profile `{profile}` expired and could not be renewed: {e}"
                        )),
                    }
                }
                (Phase::Revoked, _) => TokenState::NeedsLogin(format!(
                    "the token of profile `{profile}` was revoked; run `mcpproxyctl login --profile {profile}`"
                )),
                (Phase::NeedsLogin, _) => TokenState::NeedsLogin(format!(
                    "profile `{profile}` needs a new login: {}; run `mcpproxyctl login --profile {profile}`",
                    lock(&slot.inner).last_error.clone().unwrap_or_default()
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
    pub async fn after_unauthorized(
        &self,
        profile: &str,
        sent: &SecretString,
    ) -> Option<SecretString> {
        let slot = self.slot(profile)?;
        if matches!(&*lock(&slot.profile), AuthProfile::Static(_)) {
            return None;
        }
        let (record, _, generation) = slot.snapshot();
        let record = record?;
        if record.access_token.expose_secret() == sent.expose_secret() {
            if let Err(e) = self.refresh_slot(&slot, generation).await {
                tracing::warn!(profile, error = %e, "refresh after an upstream 401 failed");
                return None;
            }
        }
        let (record, phase, _) = slot.snapshot();
        let fresh = record?.access_token;
        (phase == Phase::Valid && fresh.expose_secret() != sent.expose_secret()).then_some(fresh)
    }

    /// Refreshes `slot` unless someone else did since `seen_generation`.
    pub(crate) async fn refresh_slot(
        &self,
        slot: &Arc<Slot>,
        seen_generation: u64,
    ) -> Result<(), OAuthError> {
        let _flight = slot.refresh_lock.lock().await;
        if lock(&slot.inner).generation != seen_generation {
            return Ok(());
        }
        let Some(record) = lock(&slot.inner).record.clone() else {
            return Err(OAuthError::Config("not logged in".into()));
        };
        let Some(store) = self.store.clone() else {
            return Err(OAuthError::Config("no token store".into()));
        };
        lock(&slot.inner).phase = Phase::Refreshing;
        // Another daemon on the same store may have rotated the refresh token: take the lock,
        // and adopt a newer stored record instead of spending the old refresh token.
        let name = slot.name.clone();
        let store2 = store.clone();
        let locked = tokio::task::spawn_blocking(move || {
            let guard = store2.lock(&name)?;
            let stored = store2.load(&name)?;
            Ok::<_, crate::auth::token_store::StoreError>((guard, stored))
        })
        .await
        .map_err(|e| OAuthError::Config(e.to_string()))?;
        let (guard, stored) = match locked {
            Ok(v) => v,
            Err(e) => {
                return Err(
                    self.refresh_failed(slot, OAuthError::Config(format!("token store: {e}")))
                )
            }
        };
        if let Some(s) = stored {
            if s.obtained_at > record.obtained_at && schedule::fresh(&s, slot.margin(), now()) {
                tracing::info!(profile = %slot.name, "adopting a token refreshed by another process");
                slot.set_valid(s);
                return Ok(());
            }
        }
        let Some(refresh_token) = record.refresh_token.clone() else {
            return Err(self.refresh_failed(slot, OAuthError::NoRefreshToken));
        };
        let endpoints = Endpoints::of_record(&record);
        let grant = Grant {
            endpoints: &endpoints,
            client_id: &record.client_id,
            resource: record.resource.as_deref(),
        };
        let http = lock(&slot.http).clone();
        match oauth::refresh(&http, &grant, &refresh_token).await {
            Ok(new) => {
                // Persist the rotated refresh token before the new access token is used.
                let name = slot.name.clone();
                let to_save = new.clone();
                let saved = tokio::task::spawn_blocking(move || {
                    let r = store.save(&name, &to_save);
                    drop(guard);
                    r
                })
                .await
                .map_err(|e| OAuthError::Config(e.to_string()))?;
                if let Err(e) = saved {
                    tracing::error!(profile = %slot.name, error = %e, "cannot persist the refreshed token; using it for now");
                }
                self.metrics.refresh(&slot.name, "ok");
                tracing::info!(profile = %slot.name, valid_for_s = new.access_expires_at.map(|t| t.saturating_sub(now())), "token refreshed");
                slot.set_valid(new);
                Ok(())
            }
            Err(e) => Err(self.refresh_failed(slot, e)),
        }
    }

    fn refresh_failed(&self, slot: &Slot, e: OAuthError) -> OAuthError {
        let mut i = lock(&slot.inner);
        i.last_error = Some(e.to_string());
        if e.needs_login() {
            i.phase = Phase::NeedsLogin;
            i.next_refresh = None;
            self.metrics.refresh(&slot.name, "needs_login");
            tracing::error!(profile = %slot.name, error = %e, "refresh refused: the profile needs a new login (`mcpproxyctl login`)");
        } else {
            i.phase = Phase::Valid;
            i.failures += 1;
            i.next_refresh = Some(now() + schedule::backoff(i.failures).as_secs());
            self.metrics.refresh(&slot.name, "transient");
            tracing::warn!(profile = %slot.name, error = %e, attempt = i.failures, "refresh failed; retrying with backoff");
        }
        e
    }

    /// A finished login: persisted, then used.
    pub async fn logged_in(&self, profile: &str, record: TokenRecord) -> Result<(), String> {
        let slot = self
            .slot(profile)
            .ok_or_else(|| format!("no profile `{profile}`"))?;
        let store = self.store.clone().ok_or("no token store is open")?;
        let name = profile.to_string();
        let to_save = record.clone();
        tokio::task::spawn_blocking(move || store.save(&name, &to_save))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot store the token: {e}"))?;
        slot.set_valid(record);
        Ok(())
    }

    /// Wipes the profile's token locally and closes its streams; returns the record it had.
    pub async fn wipe(&self, profile: &str, revoked: bool) -> Result<Option<TokenRecord>, String> {
        let slot = self
            .slot(profile)
            .ok_or_else(|| format!("no profile `{profile}`"))?;
        let _flight = slot.refresh_lock.lock().await;
        let old = {
            let mut i = lock(&slot.inner);
            i.phase = if revoked {
                Phase::Revoked
            } else {
                Phase::LoggedOut
            };
            i.next_refresh = None;
            i.generation += 1;
            i.record.take()
        };
        slot.close_streams();
        if let Some(store) = self.store.clone() {
            let name = profile.to_string();
            tokio::task::spawn_blocking(move || store.delete(&name))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("cannot delete the stored token: {e}"))?;
        }
        Ok(old)
    }

    /// A profile whose refresher has not gone round its loop for far longer than it should.
    pub fn stuck_refresher(&self) -> Option<String> {
        let limit = now().saturating_sub(3 * CLOCK_CHECK.as_secs() + 30);
        lock(&self.slots)
            .values()
            .filter(|s| !matches!(&*lock(&s.profile), AuthProfile::Static(_)))
            .find(|s| s.beat.load(std::sync::atomic::Ordering::Relaxed) < limit)
            .map(|s| s.name.clone())
    }

    /// What `status` shows, by profile name.
    pub fn views(&self) -> Vec<ProfileView> {
        lock(&self.slots)
            .values()
            .map(|slot| {
                let kind = lock(&slot.profile).kind();
                let i = lock(&slot.inner);
                let is_static = kind == "static";
                ProfileView {
                    name: slot.name.clone(),
                    kind,
                    phase: i.phase,
                    valid_until: if is_static {
                        None
                    } else {
                        i.record.as_ref().map(schedule::expires_at)
                    },
                    refresh_at: if is_static { None } else { i.next_refresh },
                    refresh_expires_at: i.record.as_ref().and_then(|r| r.refresh_expires_at),
                    last_error: i.last_error.clone(),
                }
            })
            .collect()
    }
}

fn needs_login_message(profile: &str, e: &OAuthError) -> String {
    format!(
        "profile `{profile}` needs a new login ({e}); run `mcpproxyctl login --profile {profile}`"
    )
}

/// A static token as a record that never expires.
fn static_record(token: &SecretString) -> TokenRecord {
    TokenRecord {
        access_token: token.clone(),
        access_expires_at: None,
        refresh_token: None,
        refresh_expires_at: None,
        issuer: None,
        token_endpoint: None,
        revocation_endpoint: None,
        client_id: String::new(),
        scope: None,
        resource: None,
        obtained_at: now(),
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

/// How long the proxy waits between checks of the wall clock while a refresh is far off
/// (timers stop while a machine sleeps; the clock does not).
pub const CLOCK_CHECK: Duration = Duration::from_secs(60);
