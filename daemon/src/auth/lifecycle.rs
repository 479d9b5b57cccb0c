//! The token state machine of one auth profile, its one owner:
//! `LoggedOut → Valid → Refreshing → Valid | NeedsLogin | Revoked`, one method per transition.
//! Pure: times and records are passed in; no clock, no store, no network.

use crate::auth::schedule;
use crate::auth::token_store::TokenRecord;
use crate::config::RefreshMargin;

pub use mcpproxyd_api::ProfileState as Phase;

/// One profile's token and where it stands.
pub(crate) struct Lifecycle {
    record: Option<TokenRecord>,
    phase: Phase,
    last_error: Option<String>,
    /// Unix seconds of the next planned refresh.
    next_refresh: Option<u64>,
    /// Failed refresh attempts in a row, for backoff.
    failures: u32,
    /// Bumped whenever the token changes, so waiters know a refresh happened.
    generation: u64,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            record: None,
            phase: Phase::LoggedOut,
            last_error: None,
            next_refresh: None,
            failures: 0,
            generation: 0,
        }
    }
}

// === impl Lifecycle: reads ===

impl Lifecycle {
    pub(crate) fn record(&self) -> Option<&TokenRecord> {
        self.record.as_ref()
    }

    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    pub(crate) fn next_refresh(&self) -> Option<u64> {
        self.next_refresh
    }

    pub(crate) fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Unix seconds of the next attempt while failed attempts back off (none once one
    /// succeeded or the planned attempt is due).
    pub(crate) fn backing_off(&self, now: u64) -> Option<u64> {
        self.next_refresh
            .filter(|&at| self.failures > 0 && at > now)
    }
}

// === impl Lifecycle: transitions ===

impl Lifecycle {
    /// Any phase → `Valid`: a token from a login, the store, a refresh or a static profile. The
    /// next refresh is planned `margin` before its expiry (none without a refresh token: such a
    /// login ends with its access token); failures and errors are forgotten.
    pub(crate) fn valid(&mut self, record: TokenRecord, margin: RefreshMargin) {
        self.next_refresh = record
            .refresh_token
            .as_ref()
            .map(|_| schedule::refresh_at(&record, margin));
        self.record = Some(record);
        self.phase = Phase::Valid;
        self.failures = 0;
        self.last_error = None;
        self.generation += 1;
    }

    /// Plans a renewal `margin` before expiry even without a refresh token (a machine profile
    /// fetches a new token instead).
    pub(crate) fn plan_renewal(&mut self, margin: RefreshMargin) {
        self.next_refresh = self
            .record
            .as_ref()
            .map(|r| schedule::refresh_at(r, margin));
    }

    /// `Valid` (or any phase holding a token) → `Refreshing`.
    pub(crate) fn refreshing(&mut self) {
        self.phase = Phase::Refreshing;
    }

    /// `Refreshing` → `NeedsLogin`: the server refused the grant. The token is kept until the
    /// user acts, and no refresh is planned.
    pub(crate) fn needs_login(&mut self, error: String) {
        self.last_error = Some(error);
        self.phase = Phase::NeedsLogin;
        self.next_refresh = None;
    }

    /// `Refreshing` → `Valid` (`LoggedOut` for a machine profile that has no token yet), to be
    /// retried after a backoff (network trouble, a store that could not be locked). The next
    /// attempt is planned from the end of the current second, so that the wait is never
    /// shorter than the backoff on a clock of whole seconds. Returns the failures in a row.
    pub(crate) fn retry_later(&mut self, error: String, now: u64) -> u32 {
        self.last_error = Some(error);
        self.phase = if self.record.is_some() {
            Phase::Valid
        } else {
            Phase::LoggedOut
        };
        self.failures += 1;
        self.next_refresh = Some(now + 1 + schedule::backoff(self.failures).as_secs());
        self.failures
    }

    /// Any phase → `Revoked` (incident response) or `LoggedOut`: the token is dropped and
    /// returned, and waiters see a new generation.
    pub(crate) fn wiped(&mut self, revoked: bool) -> Option<TokenRecord> {
        self.phase = if revoked {
            Phase::Revoked
        } else {
            Phase::LoggedOut
        };
        self.next_refresh = None;
        self.generation += 1;
        self.record.take()
    }

    /// The stored token could not be read: the phase stays, `status` shows why.
    pub(crate) fn load_failed(&mut self, error: String) {
        self.last_error = Some(error);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::auth::token_store::record::tests::sample;

    fn record(obtained: u64, lifetime: u64) -> TokenRecord {
        TokenRecord {
            obtained_at: obtained,
            access_expires_at: Some(obtained + lifetime),
            ..sample()
        }
    }

    #[test]
    fn a_new_token_plans_its_refresh_before_expiry_and_bumps_the_generation() {
        let mut l = Lifecycle::default();
        assert_eq!(l.phase(), Phase::LoggedOut);
        l.valid(
            record(1_000, 3_600),
            RefreshMargin::Fixed(Duration::from_secs(600)),
        );
        assert_eq!(l.phase(), Phase::Valid);
        assert_eq!(l.generation(), 1);
        let at = l.next_refresh().unwrap();
        assert!((4_000 - 61..=4_000).contains(&at), "{at}");
    }

    #[test]
    fn a_token_without_refresh_token_plans_no_refresh() {
        let mut l = Lifecycle::default();
        let r = TokenRecord {
            refresh_token: None,
            ..record(1_000, 3_600)
        };
        l.valid(r, RefreshMargin::Auto);
        assert_eq!(l.phase(), Phase::Valid);
        assert_eq!(l.next_refresh(), None);
    }

    #[test]
    fn transient_failures_back_off_and_a_new_token_resets_them() {
        let mut l = Lifecycle::default();
        l.valid(record(1_000, 3_600), RefreshMargin::Auto);
        l.refreshing();
        assert_eq!(l.phase(), Phase::Refreshing);
        assert_eq!(l.retry_later("down".into(), 4_000), 1);
        assert_eq!(l.phase(), Phase::Valid);
        assert_eq!(l.next_refresh(), Some(4_002));
        assert_eq!(l.backing_off(4_001), Some(4_002));
        assert_eq!(l.backing_off(4_002), None, "due: no longer backing off");
        l.refreshing();
        assert_eq!(l.retry_later("down".into(), 4_002), 2);
        assert_eq!(l.next_refresh(), Some(4_005));
        assert_eq!(l.last_error(), Some("down"));
        l.valid(record(4_005, 3_600), RefreshMargin::Auto);
        assert_eq!(l.last_error(), None);
        l.refreshing();
        assert_eq!(l.retry_later("down".into(), 5_000), 1);
    }

    #[test]
    fn a_failure_without_a_token_stays_logged_out_and_backs_off() {
        let mut l = Lifecycle::default();
        l.refreshing();
        assert_eq!(l.retry_later("invalid_client".into(), 4_000), 1);
        assert_eq!(l.phase(), Phase::LoggedOut);
        assert_eq!(l.backing_off(4_000), Some(4_002));
    }

    #[test]
    fn a_refused_grant_keeps_the_token_and_plans_nothing() {
        let mut l = Lifecycle::default();
        l.valid(record(1_000, 3_600), RefreshMargin::Auto);
        l.refreshing();
        l.needs_login("invalid_grant".into());
        assert_eq!(l.phase(), Phase::NeedsLogin);
        assert!(l.record().is_some(), "tokens are kept until the user acts");
        assert_eq!(l.next_refresh(), None);
    }

    #[test]
    fn wiping_drops_the_token_and_says_why() {
        let mut l = Lifecycle::default();
        l.valid(record(1_000, 3_600), RefreshMargin::Auto);
        assert!(l.wiped(true).is_some());
        assert_eq!(l.phase(), Phase::Revoked);
        assert_eq!(l.generation(), 2);
        assert!(l.record().is_none() && l.next_refresh().is_none());
        assert!(l.wiped(false).is_none());
        assert_eq!(l.phase(), Phase::LoggedOut);
    }
}
