//! The wall clock, through one seam: Unix seconds for token expiry, login deadlines and cache
//! ages; and the one calendar conversion (days to a date) that log lines and request signatures
//! share.
//!
//! The daemon compares expiry times with the wall clock, not with a monotonic timer, because
//! timers stop while a machine sleeps and the wall clock does not: after a suspend the token may
//! have expired although no timer fired. [`Clock::system`] reads `SystemTime`; a clock made by
//! [`Clock::tokio_at`] moves with tokio's time instead, so tests can freeze it with
//! `tokio::time::pause()`, move it with `advance()`, and [`Clock::jump`] it as a suspend would.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of Unix seconds. Cheap to clone; clones of a test clock share its jumps.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    kind: Kind,
}

#[derive(Debug, Clone, Default)]
enum Kind {
    #[default]
    System,
    Tokio {
        base: u64,
        start: tokio::time::Instant,
        jumped: Arc<AtomicU64>,
    },
}

impl Clock {
    /// The machine's wall clock.
    pub fn system() -> Clock {
        Clock { kind: Kind::System }
    }

    /// A clock that reads `base` now and then moves with tokio's time (paused in tests).
    pub fn tokio_at(base: u64) -> Clock {
        Clock {
            kind: Kind::Tokio {
                base,
                start: tokio::time::Instant::now(),
                jumped: Arc::new(AtomicU64::new(0)),
            },
        }
    }

    /// Unix seconds now.
    pub fn now(&self) -> u64 {
        match &self.kind {
            Kind::System => now(),
            Kind::Tokio {
                base,
                start,
                jumped,
            } => base + start.elapsed().as_secs() + jumped.load(Ordering::Relaxed),
        }
    }

    /// Moves a tokio clock on by `secs` without moving tokio's timers, as a suspend does to the
    /// wall clock. The system clock cannot be moved: nothing happens.
    pub fn jump(&self, secs: u64) {
        if let Kind::Tokio { jumped, .. } = &self.kind {
            jumped.fetch_add(secs, Ordering::Relaxed);
        }
    }
}

/// Unix seconds now, from the machine's wall clock (0 before 1970).
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_tokio_clock_moves_with_advance_and_jumps() {
        let clock = Clock::tokio_at(1_000);
        assert_eq!(clock.now(), 1_000);
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(clock.now(), 1_090);
        clock.clone().jump(3_600);
        assert_eq!(clock.now(), 4_690);
    }

    #[test]
    fn the_system_clock_is_the_wall_clock() {
        let before = now();
        let read = Clock::system().now();
        assert!(read >= before && read <= now());
        assert!(read > 1_700_000_000);
    }
}
