//! The per-profile refresher task: a loop around "sleep until the refresh is due, or until
//! woken", checking the wall clock (timers stop while a machine sleeps).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::auth::oauth::now;
use crate::auth::slot::Slot;
use crate::auth::tokens::{Phase, Tokens, CLOCK_CHECK};

/// The refresher of one profile.
pub(crate) async fn run(tokens: Arc<Tokens>, slot: Arc<Slot>, stop: CancellationToken) {
    loop {
        slot.beat.store(now(), std::sync::atomic::Ordering::Relaxed);
        let (due, phase, generation) = slot.due();
        let wait = match (phase, due) {
            (Phase::Valid, Some(at)) if at <= now() => {
                let _ = tokens.refresh_slot(&slot, generation).await;
                continue;
            }
            (Phase::Valid, Some(at)) => Duration::from_secs(at - now()).min(CLOCK_CHECK),
            _ => CLOCK_CHECK,
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = slot.woken() => {}
            _ = stop.cancelled() => return,
        }
    }
}
