//! Requests to an HTTP/2 upstream on the `h2` crate (hyper's own HTTP/2 implementation) driven
//! from the request's task: it queues the headers and a kept body itself and awaits the
//! answer. hyper's client would hand each request to its dispatch task and spawn one more task
//! per request for the answer (and one to pipe the body), two task hops and a spawn for every
//! JSON-RPC call; here only a streamed body gets a task of its own.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::poll_fn;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

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

/// One open HTTP/2 connection: the handle requests are sent on, and what its driver task
/// publishes (the peer's stream limit, read on every poll, and whether it has ended).
#[derive(Clone)]
pub struct Sender {
    send: h2::client::SendRequest<Bytes>,
    pub limit: Arc<AtomicUsize>,
    closed: Arc<AtomicBool>,
}

/// Why a request got no answer.
pub enum SendError {
    /// The connection could take no new stream (it failed or is going away): nothing was
    /// sent, and the request is handed back to be sent on another connection.
    Unsent(h2::Error, Box<Request<UpBody>>),
    Failed(h2::Error),
}

impl From<h2::Error> for SendError {
    fn from(e: h2::Error) -> SendError {
        SendError::Failed(e)
    }
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
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Sends one request (its URI absolute) and waits for the response head. A kept body is
    /// queued with the headers (h2 sends it as the peer's window allows); a streamed one is
    /// piped by a task of its own, so the answer can arrive before the body has all gone.
    pub async fn send(&self, request: Request<UpBody>) -> Result<Response<RecvBody>, SendError> {
        let mut send = self.send.clone();
        if let Err(e) = poll_fn(|cx| send.poll_ready(cx)).await {
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
        let (response, mut stream) = send.send_request(Request::from_parts(head, ()), end)?;
        if !end {
            match body {
                UpBody::Full(Some(b)) => stream.send_data(b, true)?,
                UpBody::Full(None) => stream.send_data(Bytes::new(), true)?,
                streamed @ UpBody::Streamed(_) => {
                    tokio::spawn(pipe(streamed, stream));
                }
            }
        }
        let response = response.await?;
        let length = crate::proxy::forward::content_length(response.headers());
        Ok(response.map(|recv| RecvBody { recv, length }))
    }
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
