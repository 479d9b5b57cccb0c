//! The per-profile refresher task, in the shape of mini-redis's expiry task: a loop around
//! `select! { sleep_until(next), notified() }` that refreshes when the schedule says so.
//!
//! It never sleeps longer than [`CLOCK_CHECK`] and compares the plan with the slot's wall
//! clock each time round: timers stop while a machine sleeps, the wall clock does not, so after
//! a suspend the refresh still happens within a minute.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use crate::auth::lifecycle::Phase;
use crate::auth::slot::Slot;

/// How long the refresher waits between checks of the wall clock while a refresh is far off.
pub const CLOCK_CHECK: Duration = Duration::from_secs(60);

/// The refresher of one profile, until `stop`.
pub(crate) async fn run(slot: Arc<Slot>, stop: CancellationToken) {
    run_with(&slot, stop, |generation| {
        let slot = slot.clone();
        async move {
            // Failures are recorded in the slot (phase, backoff); nothing else to do here.
            let _ = slot.refresh(generation).await;
        }
    })
    .await
}

/// The loop, with what it does when a refresh is due given as `refresh(generation)`.
async fn run_with<F, Fut>(slot: &Slot, stop: CancellationToken, mut refresh: F)
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        slot.beat();
        let now = slot.clock().now();
        let (due, phase, generation) = slot.due();
        let wait = match (phase, due) {
            // `LoggedOut` with a plan: a machine profile retrying its first token.
            (Phase::Valid | Phase::LoggedOut, Some(at)) if at <= now => {
                refresh(generation).await;
                continue;
            }
            (Phase::Valid | Phase::LoggedOut, Some(at)) => {
                Duration::from_secs(at - now).min(CLOCK_CHECK)
            }
            _ => CLOCK_CHECK,
        };
        tokio::select! {
            _ = sleep_until(Instant::now() + wait) => {}
            _ = slot.woken() => {}
            _ = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
#[path = "refresher_tests.rs"]
mod tests;
