//! One auth profile's slot: its profile and HTTP client, its `Lifecycle`, the single-flight
//! lock of its refreshes, the wake-up of its refresher and the streams using its token.
//!
//! A refresh is single-flight: callers pass the token generation they saw, and whoever gets
//! the lock second finds the generation moved on and uses the token the first one got.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use secrecy::SecretString;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::auth::errors::{RefreshError, TokenError};
use crate::auth::lifecycle::{Lifecycle, Phase};
use crate::auth::machine;
use crate::auth::oauth::{self, AuthMethod, Endpoints, Grant, OAuthError};
use crate::auth::schedule;
use crate::auth::step_up::StepUp;
use crate::auth::token_store::{StoreLock, TokenRecord, TokenStore};
use crate::clock::Clock;
use crate::config::{AuthProfile, OAuthProfile, RefreshMargin};
use crate::control::metrics::Metrics;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a slot shares with the manager: the store, the metrics and the clock.
#[derive(Clone)]
pub(crate) struct Deps {
    pub(crate) store: Option<Arc<dyn TokenStore>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) clock: Clock,
}

pub(crate) struct Slot {
    pub(crate) name: String,
    pub(crate) profile: Mutex<AuthProfile>,
    pub(crate) http: Mutex<reqwest::Client>,
    life: Mutex<Lifecycle>,
    refresh_lock: tokio::sync::Mutex<()>,
    wake: Notify,
    streams: Mutex<CancellationToken>,
    /// Unix seconds the refresher last went round its loop (for the watchdog).
    beat: AtomicU64,
    /// Scopes the profile's upstreams asked for beyond its token.
    pub(crate) step_up: Mutex<StepUp>,
    deps: Deps,
}

// === impl Slot: state ===

impl Slot {
    pub(crate) fn new(name: &str, profile: AuthProfile, http: reqwest::Client, deps: Deps) -> Slot {
        Slot {
            name: name.to_string(),
            profile: Mutex::new(profile),
            http: Mutex::new(http),
            life: Mutex::new(Lifecycle::default()),
            refresh_lock: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            streams: Mutex::new(CancellationToken::new()),
            beat: AtomicU64::new(deps.clock.now()),
            step_up: Mutex::new(StepUp::default()),
            deps,
        }
    }

    pub(crate) fn clock(&self) -> &Clock {
        &self.deps.clock
    }

    /// Reads the lifecycle under its lock.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Lifecycle) -> R) -> R {
        f(&lock(&self.life))
    }

    /// The token, the phase and the token generation.
    pub(crate) fn snapshot(&self) -> (Option<TokenRecord>, Phase, u64) {
        self.read(|l| (l.record().cloned(), l.phase(), l.generation()))
    }

    /// When the next refresh is due, the phase, and the token generation.
    pub(crate) fn due(&self) -> (Option<u64>, Phase, u64) {
        self.read(|l| (l.next_refresh(), l.phase(), l.generation()))
    }

    pub(crate) fn is_static(&self) -> bool {
        matches!(&*lock(&self.profile), AuthProfile::Static(_))
    }

    /// A `client_credentials` profile: tokens are fetched, never logged in to.
    pub(crate) fn machine(&self) -> Option<OAuthProfile> {
        match &*lock(&self.profile) {
            AuthProfile::OAuth(o) if machine::is_machine(o) => Some(o.clone()),
            _ => None,
        }
    }

    fn margin(&self) -> RefreshMargin {
        match &*lock(&self.profile) {
            AuthProfile::OAuth(o) => o.refresh_margin,
            AuthProfile::Alibaba(a) => a.refresh_margin,
            AuthProfile::Static(_) => RefreshMargin::Auto,
        }
    }

    /// A new token: used from now on, and the refresher re-plans.
    pub(crate) fn set_valid(&self, record: TokenRecord) {
        let margin = self.margin();
        let machine = self.machine().is_some();
        let mut life = lock(&self.life);
        life.valid(record, margin);
        if machine {
            life.plan_renewal(margin);
        }
        drop(life);
        self.wake.notify_one();
    }

    pub(crate) fn load_failed(&self, error: String) {
        lock(&self.life).load_failed(error);
    }

    /// Resolves when the refresher is woken (new token, new schedule).
    pub(crate) async fn woken(&self) {
        self.wake.notified().await
    }

    /// The refresher went round its loop.
    pub(crate) fn beat(&self) {
        self.beat.store(self.deps.clock.now(), Ordering::Relaxed);
    }

    pub(crate) fn last_beat(&self) -> u64 {
        self.beat.load(Ordering::Relaxed)
    }

    /// The handle that closes the streams using the current token.
    pub(crate) fn streams(&self) -> CancellationToken {
        lock(&self.streams).clone()
    }

    /// Closes every open stream of this profile and starts a fresh set.
    fn close_streams(&self) {
        let old = std::mem::take(&mut *lock(&self.streams));
        old.cancel();
    }
}

// === impl Slot: refresh ===

impl Slot {
    /// Refreshes the token unless someone else did since `seen_generation`.
    pub(crate) async fn refresh(&self, seen_generation: u64) -> Result<(), RefreshError> {
        self.single_flight(seen_generation, || self.refresh_now())
            .await
    }

    /// Runs `op` under the refresh lock, unless the token generation moved on from `seen` while
    /// waiting for the lock (then the token another caller got is the answer).
    pub(crate) async fn single_flight<F, Fut>(&self, seen: u64, op: F) -> Result<(), RefreshError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), RefreshError>>,
    {
        let _flight = self.refresh_lock.lock().await;
        if self.read(Lifecycle::generation) != seen {
            return Ok(());
        }
        op().await
    }

    /// One refresh, under the refresh lock: lock the store and read it, adopt a newer token
    /// another process stored, else spend the refresh token and persist what comes back.
    async fn refresh_now(&self) -> Result<(), RefreshError> {
        let record = self.read(|l| l.record().cloned());
        let machine = self.machine();
        if machine.is_some() {
            // Requests never hurry a failing token endpoint: they wait for the backoff too.
            self.not_backing_off()?;
        }
        if record.is_none() && machine.is_none() {
            return Err(TokenError::NotLoggedIn.into());
        }
        let store = self.deps.store.clone().ok_or(TokenError::NoStore)?;
        lock(&self.life).refreshing();
        let (guard, stored) = match lock_and_load(&store, &self.name).await {
            Ok(v) => v,
            Err(e) => return Err(self.failed(e.into())),
        };
        if let Some(s) = stored {
            let now = self.deps.clock.now();
            let newer = record
                .as_ref()
                .is_none_or(|r| s.obtained_at > r.obtained_at);
            if newer && schedule::fresh(&s, self.margin(), now) {
                tracing::info!(profile = %self.name, "adopting a token refreshed by another process");
                self.set_valid(s);
                return Ok(());
            }
        }
        let spent = match (&machine, &record) {
            (Some(profile), _) => {
                let http = lock(&self.http).clone();
                machine::fetch(profile, &http).await
            }
            (None, Some(record)) => self.spend(record).await,
            (None, None) => return Err(TokenError::NotLoggedIn.into()),
        };
        let new = match spent {
            Ok(new) => new,
            Err(e) => return Err(self.failed(e.into())),
        };
        // Persist the rotated refresh token before the new access token is used.
        if let Err(e) = save_then_unlock(&store, &self.name, &new, guard).await {
            tracing::error!(profile = %self.name, error = %e, "cannot persist the refreshed token; using it for now");
        }
        self.deps.metrics.refresh(&self.name, "ok");
        let now = self.deps.clock.now();
        tracing::info!(profile = %self.name, valid_for_s = new.access_expires_at.map(|t| t.saturating_sub(now)), "token refreshed");
        self.set_valid(new);
        Ok(())
    }

    /// The refresh grant at the record's authorization server.
    async fn spend(&self, record: &TokenRecord) -> Result<TokenRecord, OAuthError> {
        let refresh_token: &SecretString = record
            .refresh_token
            .as_ref()
            .ok_or(OAuthError::NoRefreshToken)?;
        let endpoints = Endpoints::of_record(record);
        let configured = self.configured_secret(&record.client_id).is_some();
        let secret = self.client_auth(record);
        let grant = Grant {
            endpoints: &endpoints,
            client_id: &record.client_id,
            secret: secret.as_ref().map(|(s, m)| (s, *m)),
            keep_secret: !configured && secret.is_some(),
            resource: record.resource.as_deref(),
        };
        let http = lock(&self.http).clone();
        oauth::refresh(&http, &grant, refresh_token).await
    }

    /// How the client of `record` authenticates at its authorization server (refresh,
    /// revocation): the secret the config gives that client, else the one its registration
    /// returned, sent by the method the login chose; `None` for a public client.
    pub(crate) fn client_auth(&self, record: &TokenRecord) -> Option<(SecretString, AuthMethod)> {
        if AuthMethod::parse(record.auth_method.as_deref()) == AuthMethod::PrivateKeyJwt {
            let endpoints = Endpoints::of_record(record);
            let audience = oauth::assertion_audience(&endpoints);
            let assertion = self.assertion(&record.client_id, audience)?;
            return Some((assertion, AuthMethod::PrivateKeyJwt));
        }
        let secret = self
            .configured_secret(&record.client_id)
            .or_else(|| record.client_secret.clone())?;
        let method = AuthMethod::parse(record.auth_method.as_deref());
        Some((secret, method))
    }

    /// A fresh client assertion of `client_id` for `audience`, signed with the key the
    /// profile's config gives that client (`private_key_jwt`); `None` without one.
    pub(crate) fn assertion(&self, client_id: &str, audience: &str) -> Option<SecretString> {
        let key = match &*lock(&self.profile) {
            AuthProfile::OAuth(o) if o.client_id.as_deref() == Some(client_id) => {
                o.private_key.as_ref()?.key.clone()
            }
            _ => return None,
        };
        match key.assertion(client_id, audience, self.deps.clock.now()) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::error!(profile = %self.name, error = %e, "cannot sign the client assertion");
                None
            }
        }
    }

    /// The secret the profile's config gives the client `client_id`, if it is that client.
    fn configured_secret(&self, client_id: &str) -> Option<SecretString> {
        match &*lock(&self.profile) {
            AuthProfile::OAuth(o) if o.client_id.as_deref() == Some(client_id) => {
                o.client_secret.as_ref().map(|c| c.secret.clone())
            }
            _ => None,
        }
    }

    /// The error to answer while failed attempts back off: when the next one is, and why the
    /// last one failed.
    fn not_backing_off(&self) -> Result<(), TokenError> {
        let now = self.deps.clock.now();
        self.read(|l| match l.backing_off(now) {
            Some(at) => Err(TokenError::BackingOff {
                last_error: l.last_error().unwrap_or_default().to_string(),
                retry_in: at - now,
            }),
            None => Ok(()),
        })
    }

    /// A refresh that failed: `NeedsLogin` if the server refused the grant, else a retry after
    /// a backoff. A machine profile has no login to wait for: it always backs off (a refused
    /// client too, as its secret may be fixed by a reload). Returns the error for the caller.
    pub(crate) fn failed(&self, e: RefreshError) -> RefreshError {
        let machine = self.machine().is_some();
        let mut life = lock(&self.life);
        if e.needs_login() && !machine {
            life.needs_login(e.to_string());
            self.deps.metrics.refresh(&self.name, "needs_login");
            tracing::error!(profile = %self.name, error = %e, "refresh refused: the profile needs a new login (`mcpproxyctl login`)");
        } else {
            let attempt = life.retry_later(e.to_string(), self.deps.clock.now());
            let retry_at = life.next_refresh();
            drop(life);
            // The failure may have come from a request: the refresher re-plans its sleep.
            self.wake.notify_one();
            self.deps.metrics.refresh(&self.name, "transient");
            tracing::warn!(profile = %self.name, error = %e, attempt, ?retry_at, "refresh failed; retrying with backoff");
        }
        e
    }
}

// === impl Slot: login and wipe ===

impl Slot {
    /// A finished login: persisted, then used.
    pub(crate) async fn logged_in(&self, record: TokenRecord) -> Result<(), TokenError> {
        let store = self.deps.store.clone().ok_or(TokenError::NoStore)?;
        let name = self.name.clone();
        let to_save = record.clone();
        tokio::task::spawn_blocking(move || store.save(&name, &to_save))
            .await?
            .map_err(TokenError::Save)?;
        lock(&self.step_up).granted(&record.scopes());
        self.set_valid(record);
        Ok(())
    }

    /// Wipes the token locally and closes its streams; returns the record it had.
    pub(crate) async fn wipe(&self, revoked: bool) -> Result<Option<TokenRecord>, TokenError> {
        let _flight = self.refresh_lock.lock().await;
        let old = lock(&self.life).wiped(revoked);
        self.close_streams();
        if let Some(store) = self.deps.store.clone() {
            let name = self.name.clone();
            tokio::task::spawn_blocking(move || store.delete(&name))
                .await?
                .map_err(TokenError::Delete)?;
        }
        Ok(old)
    }
}

/// Takes the store's cross-process lock and reads the stored record: another daemon on the same
/// store may have rotated the refresh token already.
async fn lock_and_load(
    store: &Arc<dyn TokenStore>,
    name: &str,
) -> Result<(StoreLock, Option<TokenRecord>), TokenError> {
    let (store, name) = (store.clone(), name.to_string());
    let locked = tokio::task::spawn_blocking(move || {
        let guard = store.lock(&name)?;
        Ok((guard, store.load(&name)?))
    })
    .await?;
    locked.map_err(TokenError::Store)
}

/// Saves the refreshed record, and only then lets other processes refresh.
async fn save_then_unlock(
    store: &Arc<dyn TokenStore>,
    name: &str,
    record: &TokenRecord,
    guard: StoreLock,
) -> Result<(), TokenError> {
    let (store, name, record) = (store.clone(), name.to_string(), record.clone());
    tokio::task::spawn_blocking(move || {
        let r = store.save(&name, &record);
        drop(guard);
        r
    })
    .await?
    .map_err(TokenError::Save)
}
