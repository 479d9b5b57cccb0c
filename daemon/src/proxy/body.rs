//! Bodies in flight: the response body streamed back to the client (idle timeout, SSE endpoint
//! rewriting, open-stream accounting) and the client's request body (its size limit, its read
//! timeout, and what went wrong with it, for the status of the answer).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::proxy::sse::Rewriter;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every response body the proxy sends.
pub type ProxyBody = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// The upstream went quiet for longer than `limits.stream_idle_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the upstream sent nothing for {0:?}; the stream was closed")]
pub struct IdleTimeout(Duration);

/// The token was revoked: streams that use it end.
#[derive(Debug, thiserror::Error)]
#[error("the token of this stream was revoked")]
pub struct Revoked;

/// Counts an open event stream while it lives.
#[derive(Debug)]
pub struct StreamGuard(Arc<AtomicUsize>);

impl StreamGuard {
    pub fn new(counter: Arc<AtomicUsize>) -> StreamGuard {
        counter.fetch_add(1, Ordering::Relaxed);
        StreamGuard(counter)
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The upstream's response body on its way to the client, frame by frame as it arrives.
pub struct ResponseBody<B> {
    /// Held in place (the upstream's bodies are `Unpin`): no allocation of its own.
    inner: B,
    idle: Duration,
    /// When the last frame came (or the body began).
    last: Instant,
    /// Armed at the first wait, and moved on only when it fires early (a frame came since):
    /// not re-armed on every frame, which costs a timer-wheel update per SSE event.
    deadline: Option<Pin<Box<Sleep>>>,
    rewriter: Option<Rewriter>,
    _stream: Option<StreamGuard>,
    /// Fires when the token this response was fetched with is revoked.
    revoked: Option<Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>>,
    /// The upstream's name, for the line that says why a body ended early.
    upstream: Box<str>,
}

impl<B> ResponseBody<B> {
    pub fn new(
        inner: B,
        idle: Duration,
        rewriter: Option<Rewriter>,
        stream: Option<StreamGuard>,
        revoked: Option<tokio_util::sync::CancellationToken>,
        upstream: &str,
    ) -> Self {
        ResponseBody {
            inner,
            idle,
            last: Instant::now(),
            deadline: None,
            rewriter,
            _stream: stream,
            revoked: revoked.map(|t| Box::pin(t.cancelled_owned())),
            upstream: upstream.into(),
        }
    }
}

/// Whether `due` has passed; otherwise `timer` is armed (made at the first wait) and will wake
/// `cx` when it may have. `due` only moves later (a frame came): the timer is moved on when it
/// fires early, not each time `due` moves.
fn expired(timer: &mut Option<Pin<Box<Sleep>>>, due: Instant, cx: &mut Context<'_>) -> bool {
    let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
    loop {
        if timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        if timer.deadline() >= due {
            return true;
        }
        timer.as_mut().reset(due);
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(revoked) = this.revoked.as_mut() {
            if revoked.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Some(Err(Box::new(Revoked))));
            }
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    this.last = Instant::now();
                    let frame = match (frame.into_data(), this.rewriter.as_mut()) {
                        (Ok(data), Some(rewriter)) => {
                            let out = match rewriter.feed(data) {
                                Ok(out) => out,
                                Err(e) => {
                                    tracing::info!(
                                        cap = crate::proxy::sse::MAX_HELD_EVENT,
                                        "SSE endpoint event over the size cap; the stream was closed"
                                    );
                                    return Poll::Ready(Some(Err(Box::new(e))));
                                }
                            };
                            if out.is_empty() {
                                continue;
                            }
                            Frame::data(out)
                        }
                        (Ok(data), None) => Frame::data(data),
                        (Err(frame), _) => frame,
                    };
                    return Poll::Ready(Some(Ok(frame)));
                }
                Poll::Ready(Some(Err(e))) => {
                    // reqwest's errors (an upstream behind an outbound proxy) name the URL,
                    // query and all: the line names the upstream instead.
                    let e: BoxError = match e.into().downcast::<reqwest::Error>() {
                        Ok(e) => Box::new(e.without_url()),
                        Err(e) => e,
                    };
                    // The head has gone out: the client learns of it only as a cut body.
                    tracing::warn!(
                        upstream = %this.upstream,
                        error = &*e as &(dyn std::error::Error + 'static),
                        "the upstream's response body failed; the client's connection was closed"
                    );
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {
                    if expired(&mut this.deadline, this.last + this.idle, cx) {
                        tracing::info!(
                            upstream = %this.upstream,
                            timeout = ?this.idle,
                            "the upstream sent nothing for the stream's idle timeout; the stream was closed"
                        );
                        return Poll::Ready(Some(Err(Box::new(IdleTimeout(this.idle)))));
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rewriter.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.rewriter.is_some() {
            SizeHint::default()
        } else {
            self.inner.size_hint()
        }
    }
}

/// The request body exceeded `limits.max_request_body`.
#[derive(Debug, thiserror::Error)]
#[error("the request body exceeds {0} bytes")]
pub struct BodyTooLarge(pub u64);

/// The client paused its request body for longer than `limits.body_read_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the request body sent nothing for {0:?}")]
pub struct BodyTimeout(pub Duration);

/// What went wrong with a client's request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Over `limits.max_request_body`.
    TooLarge,
    /// Malformed (e.g. broken chunked encoding) or cut off by the client.
    Broken,
    /// Stalled past `limits.body_read_timeout`.
    TimedOut,
}

/// The first [`Fault`] of a body, told to the proxy afterwards whatever the HTTP client made
/// of the error: the client's fault is a 4xx, never an upstream 502.
#[derive(Debug, Default)]
pub struct FaultCell(AtomicU8);

impl FaultCell {
    fn set(&self, fault: Fault) {
        let code = match fault {
            Fault::TooLarge => 1,
            Fault::Broken => 2,
            Fault::TimedOut => 3,
        };
        let _ = self
            .0
            .compare_exchange(0, code, Ordering::Relaxed, Ordering::Relaxed);
    }

    pub fn get(&self) -> Option<Fault> {
        match self.0.load(Ordering::Relaxed) {
            1 => Some(Fault::TooLarge),
            2 => Some(Fault::Broken),
            3 => Some(Fault::TimedOut),
            _ => None,
        }
    }
}

/// The client's request body on its way upstream (or into memory for a retry), cut off past
/// `limit` bytes or after a pause of `timeout`; any failure is recorded in the [`FaultCell`].
pub struct RequestBody<B> {
    /// Held in place (the client's body is `Unpin`): no allocation of its own.
    inner: B,
    seen: u64,
    limit: u64,
    fault: Arc<FaultCell>,
    timeout: Duration,
    /// When the current wait for the client began.
    since: Instant,
    /// Armed at the first wait, moved on only when it fires early (as for [`ResponseBody`]).
    deadline: Option<Pin<Box<Sleep>>>,
    /// The last poll found nothing: the deadline is running. (Time the reader spent not asking,
    /// e.g. while the upstream applied backpressure, is not the client's pause.)
    waiting: bool,
    /// A copy of the first bytes, for the audit log's JSON-RPC scan.
    capture: Option<Arc<std::sync::Mutex<Vec<u8>>>>,
}

impl<B> RequestBody<B> {
    pub fn new(inner: B, limit: u64, timeout: Duration, fault: Arc<FaultCell>) -> Self {
        RequestBody {
            inner,
            seen: 0,
            limit,
            fault,
            timeout,
            since: Instant::now(),
            deadline: None,
            waiting: false,
            capture: None,
        }
    }

    /// Also copies the first [`crate::proxy::rpc_scan::SCAN_LIMIT`] bytes into `into` as they pass.
    pub fn capturing(mut self, into: Arc<std::sync::Mutex<Vec<u8>>>) -> Self {
        self.capture = Some(into);
        self
    }
}

impl<B> Body for RequestBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if !std::mem::replace(&mut this.waiting, false) {
            this.since = Instant::now();
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if let Some(capture) = &this.capture {
                        let mut c = capture.lock().unwrap_or_else(|e| e.into_inner());
                        let room = crate::proxy::rpc_scan::SCAN_LIMIT.saturating_sub(c.len());
                        c.extend_from_slice(&data[..room.min(data.len())]);
                    }
                    this.seen += data.len() as u64;
                    if this.seen > this.limit {
                        this.fault.set(Fault::TooLarge);
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge(this.limit)))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.fault.set(Fault::Broken);
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if expired(&mut this.deadline, this.since + this.timeout, cx) {
                    this.fault.set(Fault::TimedOut);
                    return Poll::Ready(Some(Err(Box::new(BodyTimeout(this.timeout)))));
                }
                this.waiting = true;
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An empty body.
pub fn empty() -> ProxyBody {
    use http_body_util::BodyExt;
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}

/// A body of known bytes.
pub fn full(data: impl Into<Bytes>) -> ProxyBody {
    use http_body_util::BodyExt;
    http_body_util::Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    /// A body whose frames are sent through a channel.
    struct Channel(mpsc::Receiver<Bytes>);

    impl Body for Channel {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            self.0
                .poll_recv(cx)
                .map(|data| data.map(|d| Ok(Frame::data(d))))
        }
    }

    fn idle_body(idle: Duration) -> (mpsc::Sender<Bytes>, ResponseBody<Channel>) {
        let (tx, rx) = mpsc::channel(4);
        (
            tx,
            ResponseBody::new(Channel(rx), idle, None, None, None, "u"),
        )
    }

    async fn next(body: &mut ResponseBody<Channel>) -> Option<Result<Frame<Bytes>, BoxError>> {
        std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
    }

    #[tokio::test(start_paused = true)]
    async fn the_idle_timeout_counts_from_the_last_frame() {
        let idle = Duration::from_secs(10);
        let (tx, mut body) = idle_body(idle);
        let start = Instant::now();
        // A frame at 6 s: the body waited from the start, so the timer was armed for 10 s.
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(6)).await;
            tx.send(Bytes::from_static(b"a")).await.unwrap();
            // Held open, silent, until the body gives up.
            tx.closed().await;
        });
        let frame = next(&mut body).await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "a");
        assert_eq!(start.elapsed(), Duration::from_secs(6));
        // Silent since 6 s: the end comes at 16 s, not at the first timer's 10 s.
        let end = next(&mut body).await.unwrap();
        assert!(end.unwrap_err().is::<IdleTimeout>());
        assert_eq!(start.elapsed(), Duration::from_secs(16));
        drop(body);
        sender.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_body_times_out_a_pause_not_the_whole_upload() {
        let timeout = Duration::from_secs(10);
        let (tx, rx) = mpsc::channel(4);
        let fault = Arc::new(FaultCell::default());
        let mut body = RequestBody::new(Channel(rx), u64::MAX, timeout, fault.clone());
        let start = Instant::now();
        let sender = tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_secs(8)).await;
                tx.send(Bytes::from_static(b"c")).await.unwrap();
            }
            tx.closed().await;
        });
        for _ in 0..3 {
            let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
            assert!(frame.unwrap().is_ok());
        }
        // 24 s of upload, never 10 s without a chunk; then silence from 24 s: out at 34 s.
        assert_eq!(start.elapsed(), Duration::from_secs(24));
        let end = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        assert!(end.unwrap().unwrap_err().is::<BodyTimeout>());
        assert_eq!(start.elapsed(), Duration::from_secs(34));
        assert_eq!(fault.get(), Some(Fault::TimedOut));
        drop(body);
        sender.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn frames_within_the_idle_timeout_keep_the_stream() {
        let idle = Duration::from_secs(10);
        let (tx, mut body) = idle_body(idle);
        let start = Instant::now();
        let sender = tokio::spawn(async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_secs(7)).await;
                tx.send(Bytes::from_static(b"e")).await.unwrap();
            }
        });
        for _ in 0..5 {
            assert!(next(&mut body).await.unwrap().is_ok());
        }
        // 35 s with a frame every 7 s: never 10 s of silence.
        assert_eq!(start.elapsed(), Duration::from_secs(35));
        // The sender is gone: the body ends, it does not time out.
        assert!(next(&mut body).await.is_none());
        sender.await.unwrap();
    }
}
