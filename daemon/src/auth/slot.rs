//! One auth profile's slot: its profile, HTTP client, token state, the single-flight lock of
//! its refreshes, the wake-up of its refresher and the streams using its token.

use std::sync::Mutex;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::auth::schedule;
use crate::auth::token_store::TokenRecord;
use crate::auth::tokens::Phase;
use crate::config::{AuthProfile, RefreshMargin};

/// One profile's mutable state.
pub(crate) struct Inner {
    pub(crate) record: Option<TokenRecord>,
    pub(crate) phase: Phase,
    pub(crate) last_error: Option<String>,
    /// Unix seconds of the next planned refresh.
    pub(crate) next_refresh: Option<u64>,
    /// Failed refresh attempts in a row, for backoff.
    pub(crate) failures: u32,
    /// Bumped whenever the token changes, so waiters know a refresh happened.
    pub(crate) generation: u64,
}

pub(crate) struct Slot {
    pub(crate) name: String,
    pub(crate) profile: Mutex<AuthProfile>,
    pub(crate) http: Mutex<reqwest::Client>,
    pub(crate) inner: Mutex<Inner>,
    pub(crate) refresh_lock: tokio::sync::Mutex<()>,
    pub(crate) wake: Notify,
    pub(crate) streams: Mutex<CancellationToken>,
    /// Unix seconds the refresher last went round its loop (for the watchdog).
    pub(crate) beat: std::sync::atomic::AtomicU64,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Slot {
    pub(crate) fn snapshot(&self) -> (Option<TokenRecord>, Phase, u64) {
        let i = lock(&self.inner);
        (i.record.clone(), i.phase, i.generation)
    }

    pub(crate) fn margin(&self) -> RefreshMargin {
        match &*lock(&self.profile) {
            AuthProfile::OAuth(o) => o.refresh_margin,
            AuthProfile::Alibaba(a) => a.refresh_margin,
            AuthProfile::Static(_) => RefreshMargin::Auto,
        }
    }

    pub(crate) fn set_valid(&self, record: TokenRecord) {
        let margin = self.margin();
        let mut i = lock(&self.inner);
        i.next_refresh = Some(schedule::refresh_at(&record, margin));
        i.record = Some(record);
        i.phase = Phase::Valid;
        i.failures = 0;
        i.last_error = None;
        i.generation += 1;
        drop(i);
        self.wake.notify_one();
    }

    /// When the next refresh is due, the phase, and the token generation.
    pub(crate) fn due(&self) -> (Option<u64>, Phase, u64) {
        let i = lock(&self.inner);
        (i.next_refresh, i.phase, i.generation)
    }

    /// Resolves when the refresher is woken (new token, new schedule).
    pub(crate) async fn woken(&self) {
        self.wake.notified().await
    }

    /// Closes every open stream of this profile and starts a fresh set.
    pub(crate) fn close_streams(&self) {
        let old = std::mem::take(&mut *lock(&self.streams));
        old.cancel();
    }
}
