//! Requests to an HTTP/2 upstream on the `h2` crate (hyper's own HTTP/2 implementation) driven
//! from the request's task: it queues the headers and a kept body itself and awaits the
//! answer. hyper's client would hand each request to its dispatch task and spawn one more task
//! per request for the answer (and one to pipe the body), two task hops and a spawn for every
//! JSON-RPC call; here only a streamed body gets a task of its own.
//!
//! A request whose client leaves before the upstream has answered its head is not reset at
//! once: its stream is kept for up to [`SETTLE_WINDOW`] after it was sent, the answer read and
//! dropped, and only then, if it has not ended, reset. HTTP/2 servers count streams reset
//! before they took them up as a rapid-reset attack (CVE-2023-44487): hyper's server closes the
//! whole connection after 20 of them (`GOAWAY ENHANCE_YOUR_CALM`), so when many clients left
//! together (a client restarting its workers, the end of a load test), every other request on
//! that connection failed with them (`502`, "stream closed because of a broken pipe").

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::poll_fn;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::time::Instant;

use crate::proxy::forward::UpBody;

/// The flow-control windows the daemon grants an upstream: fixed, not the adaptive ones that
/// start at 64 KiB. h2 caps the small DATA frames buffered on a connection at half its target
/// window, and many concurrent small answers on a fresh connection overran 32 KiB (GOAWAY
/// "too_many_data_frames", a 502 for every request on it). The windows are credit, not memory
/// allocated up front.
const STREAM_WINDOW: u32 = 1 << 20;
const CONNECTION_WINDOW: u32 = 4 << 20;
/// Largest DATA frame the daemon accepts, and the send buffer per stream (hyper's defaults).
const MAX_FRAME: u32 = 16 << 10;
const MAX_SEND_BUFFER: usize = 1 << 20;
const MAX_HEADER_LIST: u32 = 16 << 10;
/// Streams to allow before the peer's `SETTINGS` arrive (hyper's default).
const INITIAL_MAX_SEND_STREAMS: usize = 100;
/// How long after it was sent a request left by its client keeps its stream (see the module
/// notes). Long past the moment an upstream takes a stream up, and what Envoy counts as a
/// premature reset (1 s); short enough that an abandoned call is cancelled soon.
const SETTLE_WINDOW: Duration = Duration::from_secs(2);
/// Most streams kept at once for clients that left; past it, a left request is reset at once,
/// so a client that sends and leaves in a loop cannot make the daemon hold upstream streams
/// without bound.
const MAX_SETTLING: usize = 1024;
/// Most answer bytes read from a stream its client left; a longer answer is reset.
const SETTLE_DRAIN: usize = 64 << 10;
static SETTLING: AtomicUsize = AtomicUsize::new(0);

/// One open HTTP/2 connection: the handle requests are sent on, and what its driver task
/// publishes (the peer's stream limit, read on every poll, and whether it has ended).
#[derive(Clone)]
pub struct Sender {
    send: h2::client::SendRequest<Bytes>,
    pub limit: Arc<AtomicUsize>,
    closed: Arc<AtomicBool>,
    /// The lowest id of a stream the peer's `GOAWAY` refused (`u32::MAX`: none), which tells
    /// how many streams the peer took on this connection before it went away.
    refused_from: Arc<AtomicU32>,
}

/// Why a request got no answer.
pub enum SendError {
    /// The connection could take no new stream (it failed or is going away): nothing was
    /// sent, and the request is handed back to be sent on another connection.
    Unsent(h2::Error, Box<Request<UpBody>>),
    /// The upstream refused the stream without processing it: reset with `REFUSED_STREAM`,
    /// or above the last stream id of its `GOAWAY` (RFC 9113 sections 8.7 and 6.8): safe to
    /// send again, if the body can be.
    Refused(h2::Error),
    Failed(h2::Error),
}

/// Whether the upstream said it did not process the stream. h2 gives a stream a remote
/// `GOAWAY` error only when its id is above the frame's last stream id; the streams at or
/// below it go on, and end with their own answer or error.
fn refused(e: &h2::Error) -> bool {
    e.is_remote()
        && ((e.is_reset() && e.reason() == Some(h2::Reason::REFUSED_STREAM)) || e.is_go_away())
}

/// The HTTP/2 handshake on an open (TLS) connection; the connection is driven by a task of its
/// own until the peer or the daemon closes it.
pub async fn handshake<T>(io: T) -> Result<Sender, h2::Error>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = h2::client::Builder::new()
        .initial_max_send_streams(INITIAL_MAX_SEND_STREAMS)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME)
        .max_send_buffer_size(MAX_SEND_BUFFER)
        .max_header_list_size(MAX_HEADER_LIST)
        .enable_push(false)
        .handshake(io)
        .await?;
    let sender = Sender {
        send,
        limit: Arc::new(AtomicUsize::new(conn.max_concurrent_send_streams())),
        closed: Arc::new(AtomicBool::new(false)),
        refused_from: Arc::new(AtomicU32::new(u32::MAX)),
    };
    tokio::spawn(Driven {
        conn,
        limit: sender.limit.clone(),
        closed: sender.closed.clone(),
    });
    Ok(sender)
}

/// Drives a connection; publishes the peer's stream limit whenever it is polled (every
/// frame), so the pool learns it from the peer's `SETTINGS`, and marks the end.
struct Driven<T> {
    conn: h2::client::Connection<T, Bytes>,
    limit: Arc<AtomicUsize>,
    closed: Arc<AtomicBool>,
}

impl<T> std::future::Future for Driven<T>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.conn).poll(cx);
        this.limit
            .store(this.conn.max_concurrent_send_streams(), Ordering::Relaxed);
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                this.closed.store(true, Ordering::Release);
                if let Err(e) = result {
                    tracing::debug!(error = %e, "upstream HTTP/2 connection ended");
                }
                Poll::Ready(())
            }
        }
    }
}

impl Sender {
    /// Whether the connection takes no new stream: it ended, or the peer is going away.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Offers the connection for no new stream (its streams in flight go on).
    pub fn retire(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// How many streams the peer took before its `GOAWAY` refused the rest, when it refused
    /// any: client streams have the odd ids from 1, one after another, so the streams below the
    /// lowest refused id are the ones it took.
    pub fn taken_before_go_away(&self) -> Option<usize> {
        match self.refused_from.load(Ordering::Acquire) {
            u32::MAX => None,
            id => Some((id / 2) as usize),
        }
    }

    /// What an h2 error of a sent (or being sent) stream means: after a `GOAWAY` the
    /// connection is retired; a stream the upstream refused unprocessed may go again.
    fn failure(&self, e: h2::Error) -> SendError {
        if e.is_go_away() {
            self.retire();
        }
        if refused(&e) {
            SendError::Refused(e)
        } else {
            SendError::Failed(e)
        }
    }

    /// Sends one request (its URI absolute) and waits for the response head. A kept body is
    /// queued with the headers (h2 sends it as the peer's window allows); a streamed one is
    /// piped by a task of its own, so the answer can arrive before the body has all gone.
    /// `keep` (the request's place in the pool) is handed back with the answer, or kept with
    /// the stream while it settles if the caller drops this future before the answer.
    pub async fn send<K>(
        &self,
        request: Request<UpBody>,
        keep: K,
    ) -> Result<(Response<RecvBody>, K), SendError>
    where
        K: Send + Unpin + 'static,
    {
        let mut send = self.send.clone();
        if let Err(e) = poll_fn(|cx| send.poll_ready(cx)).await {
            self.retire();
            return Err(SendError::Unsent(e, Box::new(request)));
        }
        let (mut head, body) = request.into_parts();
        if let Some(len) = body.size_hint().exact() {
            if len != 0 || method_has_payload(&head.method) {
                head.headers
                    .entry(http::header::CONTENT_LENGTH)
                    .or_insert_with(|| http::HeaderValue::from(len));
            }
        }
        let end = body.is_end_stream();
        let sent = Instant::now();
        let (response, mut stream) = send
            .send_request(Request::from_parts(head, ()), end)
            .map_err(|e| self.failure(e))?;
        if !end {
            match body {
                UpBody::Full(Some(b)) => stream.send_data(b, true).map_err(|e| self.failure(e))?,
                UpBody::Full(None) => stream
                    .send_data(Bytes::new(), true)
                    .map_err(|e| self.failure(e))?,
                streamed @ UpBody::Streamed(_) => {
                    tokio::spawn(pipe(streamed, stream));
                }
            }
        }
        let answer = Answer {
            response: Some(response),
            keep: Some(keep),
            sent,
        };
        let (response, keep) = answer.await.map_err(|(e, id)| {
            if refused(&e) && e.is_go_away() {
                self.refused_from.fetch_min(id, Ordering::AcqRel);
            }
            self.failure(e)
        })?;
        let length = crate::proxy::forward::content_length(response.headers());
        Ok((response.map(|recv| RecvBody { recv, length }), keep))
    }
}

/// The answer to a sent request; dropped before it arrived, it lets the stream settle.
struct Answer<K: Send + Unpin + 'static> {
    response: Option<h2::client::ResponseFuture>,
    keep: Option<K>,
    sent: Instant,
}

impl<K: Send + Unpin + 'static> std::future::Future for Answer<K> {
    /// The answer, or why there is none and the stream's id.
    type Output = Result<(Response<h2::RecvStream>, K), (h2::Error, u32)>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some(response) = this.response.as_mut() else {
            return Poll::Pending;
        };
        let result = ready!(Pin::new(&mut *response).poll(cx))
            .map_err(|e| (e, u32::from(response.stream_id())));
        this.response = None;
        Poll::Ready(result.map(|r| (r, this.keep.take().expect("an answer is taken once"))))
    }
}

impl<K: Send + Unpin + 'static> Drop for Answer<K> {
    fn drop(&mut self) {
        if let Some(response) = self.response.take() {
            settle(response, self.keep.take(), self.sent + SETTLE_WINDOW);
        }
    }
}

/// Counts a settling stream while it lives (made right after the count is raised).
struct Settling;

impl Drop for Settling {
    fn drop(&mut self) {
        SETTLING.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Keeps a stream whose client left until the upstream's answer has been read to its end
/// (then nothing is reset) or `until` (then it is reset, as it is at once when `until` has
/// passed, when [`MAX_SETTLING`] streams are settling, or outside a runtime).
fn settle<K: Send + 'static>(
    response: h2::client::ResponseFuture,
    keep: Option<K>,
    until: Instant,
) {
    if Instant::now() >= until {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let settling = SETTLING.fetch_add(1, Ordering::AcqRel);
    let counted = Settling;
    if settling >= MAX_SETTLING {
        return;
    }
    tracing::debug!("keeping a left request's stream until its answer has been read");
    runtime.spawn(async move {
        let _counted = counted;
        let _keep = keep;
        let outcome = tokio::time::timeout_at(until, drain(response)).await;
        match outcome {
            Ok(Ok(true)) => tracing::debug!("a left request's answer was read to its end"),
            Ok(Ok(false)) => {
                tracing::debug!("a left request's answer was longer than 64 KiB; reset")
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "a left request's stream failed"),
            Err(_) => tracing::debug!("a left request was not answered in time; reset"),
        }
    });
}

/// Reads an answer and drops it: `true` when it ended, `false` past [`SETTLE_DRAIN`] bytes.
async fn drain(response: h2::client::ResponseFuture) -> Result<bool, h2::Error> {
    let mut body = response.await?.into_body();
    let mut read = 0;
    while let Some(data) = body.data().await {
        let data = data?;
        read += data.len();
        let _ = body.flow_control().release_capacity(data.len());
        if read > SETTLE_DRAIN {
            return Ok(false);
        }
    }
    body.trailers().await?;
    Ok(true)
}

/// Methods whose empty body is still sent with `Content-Length: 0` (as hyper does).
fn method_has_payload(method: &http::Method) -> bool {
    use http::Method;
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::DELETE | Method::CONNECT
    )
}

/// Sends a streamed body as the peer's window allows; stops when the peer resets the stream
/// or the body fails (then the stream is reset, and the answer, if any, is the upstream's).
async fn pipe(mut body: UpBody, mut stream: h2::SendStream<Bytes>) {
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            _ = poll_fn(|cx| stream.poll_reset(cx)) => return,
        };
        match frame {
            None => {
                let _ = stream.send_data(Bytes::new(), true);
                return;
            }
            Some(Err(_)) => {
                stream.send_reset(h2::Reason::CANCEL);
                return;
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    if send_all(&mut stream, data, body.is_end_stream())
                        .await
                        .is_err()
                    {
                        return;
                    }
                    if body.is_end_stream() {
                        return;
                    }
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        let _ = stream.send_trailers(trailers);
                    }
                    return;
                }
            },
        }
    }
}

/// One chunk, in pieces as the window grants capacity.
async fn send_all(
    stream: &mut h2::SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
) -> Result<(), h2::Error> {
    if data.is_empty() {
        return if end {
            stream.send_data(data, true)
        } else {
            Ok(())
        };
    }
    while !data.is_empty() {
        stream.reserve_capacity(data.len());
        let granted = match poll_fn(|cx| stream.poll_capacity(cx)).await {
            Some(granted) => granted?,
            None => return Err(h2::Error::from(h2::Reason::STREAM_CLOSED)),
        };
        if granted == 0 {
            continue;
        }
        let piece = data.split_to(granted.min(data.len()));
        stream.send_data(piece, end && data.is_empty())?;
    }
    Ok(())
}

/// The upstream's response body; the window is given back as the data is passed on.
pub struct RecvBody {
    recv: h2::RecvStream,
    /// What is left of a `Content-Length` (h2 checks that the data matches it).
    length: Option<u64>,
}

impl Body for RecvBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let this = &mut *self;
        let recv = &mut this.recv;
        match recv.poll_data(cx) {
            Poll::Ready(Some(Ok(data))) => {
                let _ = recv.flow_control().release_capacity(data.len());
                if let Some(left) = &mut this.length {
                    *left = left.saturating_sub(data.len() as u64);
                }
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => {}
            Poll::Pending => return Poll::Pending,
        }
        match recv.poll_trailers(cx) {
            Poll::Ready(Ok(Some(trailers))) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Poll::Ready(Ok(None)) => Poll::Ready(None),
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.length
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}
