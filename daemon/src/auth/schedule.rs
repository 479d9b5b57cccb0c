//! When to refresh: the schedule maths of a token's lifetime (expiry, margin, jitter,
//! backoff). Pure: times are Unix seconds passed in, nothing here reads a clock or does I/O.

use std::time::Duration;

use crate::auth::token_store::TokenRecord;
use crate::config::RefreshMargin;

/// Lifetime assumed for a token whose response had no `expires_in`.
pub const DEFAULT_LIFETIME: u64 = 3600;
/// The smallest automatic margin.
pub const MIN_AUTO_MARGIN: u64 = 7 * 60;
/// A token this close to expiry is not sent: it could expire in flight.
pub const EXPIRY_SKEW: u64 = 5;
/// Longest wait between refresh retries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Unix seconds the access token expires (the documented default when the server gave none).
pub fn expires_at(r: &TokenRecord) -> u64 {
    r.access_expires_at
        .unwrap_or(r.obtained_at + DEFAULT_LIFETIME)
}

/// The margin before expiry at which to refresh. Auto: the larger of 7 minutes and 10% of the
/// lifetime, capped at half the lifetime.
pub fn margin(r: &TokenRecord, m: RefreshMargin) -> u64 {
    let lifetime = expires_at(r).saturating_sub(r.obtained_at);
    match m {
        RefreshMargin::Fixed(d) => d.as_secs().min(lifetime / 2).max(1.min(lifetime)),
        RefreshMargin::Auto => MIN_AUTO_MARGIN.max(lifetime / 10).min(lifetime / 2),
    }
}

/// When to refresh: `margin` before expiry, a little earlier by a jitter of up to 10% of the
/// margin, so many daemons do not all refresh in the same second.
pub fn refresh_at(r: &TokenRecord, m: RefreshMargin) -> u64 {
    let margin = margin(r, m);
    let jitter = jitter(margin / 10 + 1);
    expires_at(r).saturating_sub(margin).saturating_sub(jitter)
}

/// Still good to send at `now` (not within the skew of expiry; short-lived tokens get a
/// proportionally shorter skew).
pub fn usable(r: &TokenRecord, now: u64) -> bool {
    let lifetime = expires_at(r).saturating_sub(r.obtained_at);
    expires_at(r) > now + EXPIRY_SKEW.min(lifetime / 10)
}

/// Good beyond the refresh margin (no refresh needed).
pub fn fresh(r: &TokenRecord, m: RefreshMargin, now: u64) -> bool {
    expires_at(r).saturating_sub(margin(r, m)) > now
}

/// Capped exponential backoff with jitter: about 1s, 2s, 4s, ... up to five minutes.
pub fn backoff(failures: u32) -> Duration {
    let base = 1u64 << failures.saturating_sub(1).min(9);
    let secs = base.min(MAX_BACKOFF.as_secs());
    Duration::from_secs(secs + jitter(secs / 4 + 1)).min(MAX_BACKOFF)
}

/// A number in `0..bound` that differs between processes and calls (not for cryptography).
fn jitter(bound: u64) -> u64 {
    if bound == 0 {
        return 0;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    (nanos ^ (std::process::id() as u64).wrapping_mul(0x9e37_79b9)) % bound
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn record(obtained: u64, lifetime: Option<u64>) -> TokenRecord {
        TokenRecord {
            access_token: SecretString::from("a"),
            access_expires_at: lifetime.map(|l| obtained + l),
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
            obtained_at: obtained,
        }
    }

    #[test]
    fn auto_margin_is_seven_minutes_or_a_tenth_capped_at_half() {
        assert_eq!(
            margin(&record(0, Some(3 * 3600)), RefreshMargin::Auto),
            1080
        );
        assert_eq!(margin(&record(0, Some(3600)), RefreshMargin::Auto), 420);
        assert_eq!(margin(&record(0, Some(600)), RefreshMargin::Auto), 300);
        assert_eq!(margin(&record(0, Some(10)), RefreshMargin::Auto), 5);
        assert_eq!(margin(&record(0, None), RefreshMargin::Auto), 420);
        let fixed = RefreshMargin::Fixed(Duration::from_secs(120));
        assert_eq!(margin(&record(0, Some(3600)), fixed), 120);
        assert_eq!(margin(&record(0, Some(100)), fixed), 50);
    }

    #[test]
    fn refresh_comes_before_expiry_with_bounded_jitter() {
        let r = record(1000, Some(3600));
        for _ in 0..50 {
            let at = refresh_at(&r, RefreshMargin::Auto);
            assert!(at <= 1000 + 3600 - 420, "{at}");
            assert!(at >= 1000 + 3600 - 420 - 43, "{at}");
        }
    }

    #[test]
    fn usability_and_freshness() {
        let r = record(1000, Some(100));
        assert!(usable(&r, 1000));
        assert!(usable(&r, 1094));
        assert!(!usable(&r, 1095));
        assert!(fresh(&r, RefreshMargin::Auto, 1000));
        assert!(!fresh(&r, RefreshMargin::Auto, 1050));
        let no_expiry = record(1000, None);
        assert!(usable(&no_expiry, 1000 + 3000));
        assert!(!usable(&no_expiry, 1000 + 3600));
    }

    #[test]
    fn short_lived_tokens_are_usable() {
        let r = record(1000, Some(4));
        assert!(usable(&r, 1000));
        assert!(usable(&r, 1003));
        assert!(!usable(&r, 1004));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) >= Duration::from_secs(1) && backoff(1) < Duration::from_secs(3));
        assert!(backoff(4) >= Duration::from_secs(8));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }
}
