//! Hands freed memory back to the system after a burst of connections ends. glibc's malloc
//! keeps what thousands of connections freed in its per-thread arenas (measured: 85 MiB above
//! idle after 3,000 SSE streams closed, for good); `malloc_trim` returns it (to +2.4 MiB).
//! The accept loops record the most connections open at once; a check every few seconds
//! trims when that many have closed since.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// How often to look at the connection count.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// Connections that must have closed since the high-water mark before a trim is worth it
/// (each held about 30 KiB: 256 of them, about 8 MiB).
const MIN_CLOSED: usize = 256;

/// The most connections open at once since the last trim, raised by the accept loops.
#[derive(Debug)]
pub struct HighWater {
    peak: AtomicUsize,
    /// The permits `slots` started with (`limits.max_connections` at start).
    max: usize,
}

impl HighWater {
    pub fn new(max: usize) -> HighWater {
        HighWater {
            peak: AtomicUsize::new(0),
            max,
        }
    }

    fn open(&self, slots: &Semaphore) -> usize {
        self.max.saturating_sub(slots.available_permits())
    }

    /// Called with a connection's permit taken.
    pub fn record(&self, slots: &Semaphore) {
        self.peak.fetch_max(self.open(slots), Ordering::Relaxed);
    }
}

/// Whether enough connections closed since the high-water mark for a trim.
fn worth_trimming(high: usize, open: usize) -> bool {
    high >= open + MIN_CLOSED && open <= high / 2
}

/// Checks every [`CHECK_EVERY`] until `stop`; `slots` lacks one permit per open connection.
pub async fn run(high: Arc<HighWater>, slots: Arc<Semaphore>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let open = high.open(&slots);
        let peak = high.peak.load(Ordering::Relaxed);
        if worth_trimming(peak, open) {
            high.peak.store(open, Ordering::Relaxed);
            // A few milliseconds of walking the arenas: off the runtime's workers.
            let _ = tokio::task::spawn_blocking(trim).await;
            tracing::debug!(peak, open, "connections closed; freed memory returned");
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() {
    // SAFETY: malloc_trim takes no pointers and locks each arena it walks; it is safe to call
    // from any thread at any time under glibc, which this cfg guarantees.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_only_after_a_burst_closed() {
        assert!(!worth_trimming(0, 0));
        assert!(!worth_trimming(100, 0), "too few connections to matter");
        assert!(worth_trimming(5000, 0));
        assert!(worth_trimming(5000, 2500));
        assert!(!worth_trimming(5000, 4000), "most are still open");
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_burst_resets_the_high_water_mark() {
        let slots = Arc::new(Semaphore::new(10_000));
        let high = Arc::new(HighWater::new(10_000));
        let held = slots.clone().acquire_many_owned(5000).await.unwrap();
        high.record(&slots);
        assert_eq!(high.peak.load(Ordering::Relaxed), 5000);
        drop(held);
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(high.clone(), slots.clone(), stop.clone()));
        tokio::time::sleep(CHECK_EVERY * 2).await;
        assert_eq!(high.peak.load(Ordering::Relaxed), 0);
        stop.cancel();
        task.await.unwrap();
    }
}
