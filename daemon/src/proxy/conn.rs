//! One client connection's clock: a deadline for its first request (covering the HTTP version
//! sniff, the h2 preface and SETTINGS, and the request head), then an idle timeout whenever no
//! request is in flight. A connection that never sends a request, or sits idle, gives its
//! connection slot back instead of holding it forever.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::watch;

/// Requests seen and in flight on one connection.
#[derive(Debug, Clone, Copy, Default)]
struct State {
    requests: u64,
    in_flight: usize,
}

/// Why a connection was closed by its clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// No complete request head within `limits.header_read_timeout` of the connection opening.
    NoRequest,
    /// No request in flight for `limits.idle_timeout`.
    Idle,
}

/// The activity of one connection, shared by its service (which counts requests) and its task
/// (which waits for [`Activity::expired`]).
#[derive(Debug, Clone)]
pub struct Activity(Arc<watch::Sender<State>>);

impl Default for Activity {
    fn default() -> Self {
        Activity(Arc::new(watch::Sender::new(State::default())))
    }
}

impl Activity {
    /// A request head arrived: the request is in flight until the returned guard drops (with
    /// its response body, when it is sent or abandoned).
    pub fn begin(&self) -> InFlight {
        self.0.send_modify(|s| {
            s.requests += 1;
            s.in_flight += 1;
        });
        InFlight(self.0.clone())
    }

    /// Completes when the connection should be closed: `first` after opening without a request,
    /// or `idle` after the last request in flight ended. Never while a request is in flight.
    pub async fn expired(&self, first: Duration, idle: Duration) -> Expired {
        let mut rx = self.0.subscribe();
        loop {
            let state = *rx.borrow_and_update();
            let wait = match state {
                State { requests: 0, .. } => Some((first, Expired::NoRequest)),
                State { in_flight: 0, .. } => Some((idle, Expired::Idle)),
                _ => None,
            };
            match wait {
                Some((after, why)) => tokio::select! {
                    _ = tokio::time::sleep(after) => return why,
                    _ = rx.changed() => {}
                },
                // The sender lives as long as `self`: `changed` cannot fail here.
                None => {
                    let _ = rx.changed().await;
                }
            }
        }
    }
}

/// One request in flight; dropping it ends the request for the connection's clock.
#[derive(Debug)]
pub struct InFlight(Arc<watch::Sender<State>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .send_modify(|s| s.in_flight = s.in_flight.saturating_sub(1));
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
}
