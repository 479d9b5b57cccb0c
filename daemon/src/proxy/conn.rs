//! One client connection's clock: a deadline for its first request (covering the HTTP version
//! sniff, the h2 preface and SETTINGS, and the request head), then an idle timeout whenever no
//! request is in flight. A connection that never sends a request, or sits idle, gives its
//! connection slot back instead of holding it forever.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;

/// Why a connection was closed by its clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// No complete request head within `limits.header_read_timeout` of the connection opening.
    NoRequest,
    /// No request in flight for `limits.idle_timeout`.
    Idle,
}

/// Requests seen and in flight on one connection, and when the last one ended. Counters, not a
/// channel: a request costs a few atomic updates and wakes nothing; the clock looks at them
/// when its deadline comes.
#[derive(Debug)]
struct State {
    opened: Instant,
    requests: AtomicU64,
    in_flight: AtomicUsize,
    /// When the last request ended, in µs since `opened`.
    last_end: AtomicU64,
}

/// The activity of one connection, shared by its service (which counts requests) and its task
/// (which waits for [`Activity::expired`]).
#[derive(Debug, Clone)]
pub struct Activity(Arc<State>);

impl Default for Activity {
    fn default() -> Self {
        Activity(Arc::new(State {
            opened: Instant::now(),
            requests: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            last_end: AtomicU64::new(0),
        }))
    }
}

impl Activity {
    /// A request head arrived: the request is in flight until the returned guard drops (with
    /// its response body, when it is sent or abandoned).
    pub fn begin(&self) -> InFlight {
        self.0.requests.fetch_add(1, Ordering::Relaxed);
        self.0.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.0.clone())
    }

    /// Completes when the connection should be closed: `first` after opening without a request,
    /// or `idle` after the last request in flight ended. Never while a request is in flight
    /// (the clock then looks again every `idle`).
    pub async fn expired(&self, first: Duration, idle: Duration) -> Expired {
        let state = &self.0;
        let mut deadline = state.opened + first;
        loop {
            tokio::time::sleep_until(deadline).await;
            if state.requests.load(Ordering::Relaxed) == 0 {
                return Expired::NoRequest;
            }
            let now = Instant::now();
            if state.in_flight.load(Ordering::Acquire) > 0 {
                deadline = now + idle;
                continue;
            }
            let ended =
                state.opened + Duration::from_micros(state.last_end.load(Ordering::Acquire));
            if now >= ended + idle {
                return Expired::Idle;
            }
            deadline = ended + idle;
        }
    }
}

/// One request in flight; dropping it ends the request for the connection's clock.
#[derive(Debug)]
pub struct InFlight(Arc<State>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let state = &self.0;
        // The end time first: a clock that sees nothing in flight also sees when it ended.
        let since = state.opened.elapsed().as_micros() as u64;
        state.last_end.fetch_max(since, Ordering::AcqRel);
        state.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request in flight until it is finished or dropped.
pub struct Tracked<B> {
    /// Held in place (a boxed body is `Unpin`): no allocation of its own.
    inner: B,
    _request: InFlight,
}

impl<B> Tracked<B> {
    pub fn new(inner: B, request: InFlight) -> Self {
        Tracked {
            inner,
            _request: request,
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: Duration = Duration::from_secs(5);
    const IDLE: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn no_request_expires_at_the_first_deadline() {
        let a = Activity::default();
        let started = tokio::time::Instant::now();
        assert_eq!(a.expired(FIRST, IDLE).await, Expired::NoRequest);
        assert_eq!(started.elapsed(), FIRST);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_counts_from_the_end_of_the_last_request() {
        let a = Activity::default();
        let clock = a.clone();
        let watcher = tokio::spawn(async move { clock.expired(FIRST, IDLE).await });
        tokio::time::sleep(FIRST / 2).await;
        let request = a.begin();
        // A request in flight for far longer than both timeouts keeps the connection.
        tokio::time::sleep(IDLE * 3).await;
        assert!(!watcher.is_finished());
        let ended = tokio::time::Instant::now();
        drop(request);
        assert_eq!(watcher.await.unwrap(), Expired::Idle);
        assert_eq!(ended.elapsed(), IDLE);
    }

    #[tokio::test(start_paused = true)]
    async fn overlapping_requests_keep_the_connection_until_the_last_one_ends() {
        let a = Activity::default();
        let clock = a.clone();
        let watcher = tokio::spawn(async move { clock.expired(FIRST, IDLE).await });
        let one = a.begin();
        let two = a.begin();
        tokio::time::sleep(IDLE / 2).await;
        drop(one);
        // The other is still in flight well past the idle timeout since the first ended.
        tokio::time::sleep(IDLE * 2).await;
        assert!(!watcher.is_finished());
        let ended = tokio::time::Instant::now();
        drop(two);
        assert_eq!(watcher.await.unwrap(), Expired::Idle);
        assert_eq!(ended.elapsed(), IDLE);
    }
}
