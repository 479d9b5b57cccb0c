//! Bodies in flight: the response body streamed back to the client (idle timeout, SSE endpoint
//! rewriting, open-stream accounting) and the test for a request body over its limit.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
    inner: Pin<Box<B>>,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    rewriter: Option<Rewriter>,
    _stream: Option<StreamGuard>,
    /// Fires when the token this response was fetched with is revoked.
    revoked: Option<Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>>,
}

impl<B> ResponseBody<B> {
    pub fn new(
        inner: B,
        idle: Duration,
        rewriter: Option<Rewriter>,
        stream: Option<StreamGuard>,
        revoked: Option<tokio_util::sync::CancellationToken>,
    ) -> Self {
        ResponseBody {
            inner: Box::pin(inner),
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            rewriter,
            _stream: stream,
            revoked: revoked.map(|t| Box::pin(t.cancelled_owned())),
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
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
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    this.deadline.as_mut().reset(Instant::now() + this.idle);
                    let frame = match (frame.into_data(), this.rewriter.as_mut()) {
                        (Ok(data), Some(rewriter)) => {
                            let out = match rewriter.feed(data) {
                                Ok(out) => out,
                                Err(e) => return Poll::Ready(Some(Err(Box::new(e)))),
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
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {
                    if this.deadline.as_mut().poll(cx).is_ready() {
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

/// The client's request body on its way upstream, streamed, cut off past `limit` bytes. The
/// flag tells the proxy afterwards that the failure was the limit, whatever the HTTP client
/// made of the error.
pub struct RequestBody<B> {
    inner: Pin<Box<B>>,
    seen: u64,
    limit: u64,
    exceeded: Arc<AtomicBool>,
    /// A copy of the first bytes, for the audit log's JSON-RPC scan.
    capture: Option<Arc<std::sync::Mutex<Vec<u8>>>>,
}

impl<B> RequestBody<B> {
    pub fn new(inner: B, limit: u64, exceeded: Arc<AtomicBool>) -> Self {
        RequestBody {
            inner: Box::pin(inner),
            seen: 0,
            limit,
            exceeded,
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
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if let Some(capture) = &this.capture {
                        let mut c = capture.lock().unwrap_or_else(|e| e.into_inner());
                        let room = crate::proxy::rpc_scan::SCAN_LIMIT.saturating_sub(c.len());
                        c.extend_from_slice(&data[..room.min(data.len())]);
                    }
                    this.seen += data.len() as u64;
                    if this.seen > this.limit {
                        this.exceeded.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge(this.limit)))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
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
