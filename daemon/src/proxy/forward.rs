//! Step 5 of the pipeline: sending the request upstream with the profile's token. A small body
//! (up to `limits.retry_body_limit`) is kept so the request can be sent once more after an
//! upstream 401 and a refresh; anything larger streams through, never buffered. Either way the
//! client must keep its body coming (`limits.body_read_timeout`), and a body the client broke is
//! answered as the client's fault.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use secrecy::{ExposeSecret, SecretString};

use crate::config::{Limits, Upstream};
use crate::proxy::body::{BoxError, Fault, FaultCell, RequestBody};
use crate::proxy::dial;
use crate::proxy::error::ProxyError;
use crate::proxy::headers;
use crate::proxy::pool::{Conn, Lease, Pool};
use crate::proxy::rpc_scan::{self, RpcInfo};
use crate::proxy::upstream_h2;

/// The client's request body, kept or waiting to be streamed.
pub enum OutBody {
    /// The bytes, and what the JSON-RPC scan found in them once asked (the client key's tool
    /// scope and the audit line both ask: scanned once).
    Kept(Bytes, std::sync::OnceLock<RpcInfo>),
    /// The body, until it is sent, and the copy of its first bytes.
    Streamed(Option<Incoming>, Arc<std::sync::Mutex<Vec<u8>>>),
}

impl OutBody {
    /// Known bytes, not scanned yet.
    pub fn from_bytes(bytes: Bytes) -> OutBody {
        OutBody::Kept(bytes, Default::default())
    }

    /// Keeps the body when it is known to be small; refuses one announced over the limit.
    pub async fn new(
        parts: &Parts,
        body: Incoming,
        limits: &Limits,
    ) -> Result<OutBody, ProxyError> {
        let too_large = ProxyError::BodyTooLarge {
            limit: limits.max_request_body,
        };
        let declared = declared_length(parts);
        if declared.is_some_and(|n| n > limits.max_request_body) {
            return Err(too_large);
        }
        let exact = body.size_hint().exact();
        let small = body.is_end_stream()
            || declared
                .or(exact)
                .is_some_and(|n| n <= limits.retry_body_limit);
        if !small {
            return Ok(OutBody::Streamed(Some(body), Default::default()));
        }
        let limit = limits.retry_body_limit.min(limits.max_request_body) as usize;
        let fault = Arc::new(FaultCell::default());
        let timed = RequestBody::new(body, u64::MAX, limits.body_read_timeout, fault.clone());
        match Limited::new(timed, limit).collect().await {
            Ok(collected) => Ok(OutBody::from_bytes(collected.to_bytes())),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large),
            // The client stalled, went away or sent a broken body: nothing to forward.
            Err(_) => Err(client_fault(fault.get(), limits).unwrap_or(ProxyError::BadBody)),
        }
    }

    /// The bytes, if kept (so the request can be repeated).
    pub fn kept(&self) -> Option<Bytes> {
        match self {
            OutBody::Kept(b, _) => Some(b.clone()),
            OutBody::Streamed(..) => None,
        }
    }

    /// What the JSON-RPC scan finds in kept bytes (scanned on the first call only).
    pub fn kept_rpc_info(&self) -> Option<&RpcInfo> {
        match self {
            OutBody::Kept(b, scanned) => Some(scanned.get_or_init(|| rpc_scan::scan(b))),
            OutBody::Streamed(..) => None,
        }
    }

    /// The JSON-RPC method and tool, from the body's first bytes seen so far (a kept body's
    /// earlier scan handed over, not repeated).
    pub fn take_rpc_info(&mut self) -> RpcInfo {
        match self {
            OutBody::Kept(b, scanned) => scanned.take().unwrap_or_else(|| rpc_scan::scan(b)),
            OutBody::Streamed(_, captured) => {
                rpc_scan::scan(&captured.lock().unwrap_or_else(|e| e.into_inner()))
            }
        }
    }

    /// The body to send (a kept one again on a retry; a streamed one only once), and for a
    /// streamed one the cell its fault will be told in (known bytes cannot fail).
    fn take(&mut self, limits: &Limits) -> (UpBody, Option<Arc<FaultCell>>) {
        match self {
            OutBody::Kept(b, _) => (UpBody::full(b.clone()), None),
            OutBody::Streamed(body, captured) => match body.take() {
                Some(b) => {
                    let fault = Arc::new(FaultCell::default());
                    let timeout = limits.body_read_timeout;
                    let body = RequestBody::new(b, limits.max_request_body, timeout, fault.clone())
                        .capturing(captured.clone());
                    (UpBody::Streamed(body), Some(fault))
                }
                None => (UpBody::full(Bytes::new()), None),
            },
        }
    }
}

/// How an upstream's requests leave: the daemon's own pool (hyper), or, for an upstream with
/// an outbound `proxy`, the reqwest client that speaks to that proxy.
#[derive(Clone)]
pub enum Forwarder {
    Pool(Pool),
    Proxied(reqwest::Client),
}

/// The request body on its way upstream.
pub enum UpBody {
    /// Known bytes (`None` once sent, or when empty).
    Full(Option<Bytes>),
    Streamed(RequestBody<Incoming>),
}

impl UpBody {
    fn full(b: Bytes) -> UpBody {
        UpBody::Full((!b.is_empty()).then_some(b))
    }
}

impl http_body::Body for UpBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            UpBody::Streamed(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpBody::Full(b) => b.is_none(),
            UpBody::Streamed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            UpBody::Streamed(b) => b.size_hint(),
        }
    }
}

/// The upstream's response body: from the pool (its connection held until the end), or from
/// reqwest.
pub enum UpstreamBody {
    Pooled(Incoming, Lease),
    H2(upstream_h2::RecvBody, Lease),
    Proxied(reqwest::Body),
}

impl UpstreamBody {
    fn pooled(body: Incoming, mut lease: Lease) -> UpstreamBody {
        if body.is_end_stream() {
            lease.release();
        }
        UpstreamBody::Pooled(body, lease)
    }

    fn h2(body: upstream_h2::RecvBody, mut lease: Lease) -> UpstreamBody {
        if body.is_end_stream() {
            lease.release();
        }
        UpstreamBody::H2(body, lease)
    }
}

/// Polls a pooled body, freeing its connection (or stream slot) once it has ended.
fn poll_leased<B>(
    body: &mut B,
    lease: &mut Lease,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, BoxError>>>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let polled = Pin::new(&mut *body).poll_frame(cx);
    let ended = match &polled {
        Poll::Ready(None) => true,
        Poll::Ready(Some(Ok(_))) => body.is_end_stream(),
        _ => false,
    };
    if ended {
        lease.release();
    }
    polled.map_err(Into::into)
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpstreamBody::Pooled(body, lease) => poll_leased(body, lease, cx),
            UpstreamBody::H2(body, lease) => poll_leased(body, lease, cx),
            UpstreamBody::Proxied(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Pooled(b, _) => b.is_end_stream(),
            UpstreamBody::H2(b, _) => b.is_end_stream(),
            UpstreamBody::Proxied(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Pooled(b, _) => b.size_hint(),
            UpstreamBody::H2(b, _) => b.size_hint(),
            UpstreamBody::Proxied(b) => b.size_hint(),
        }
    }
}

/// Where a request goes upstream: the path (mount replaced by the upstream's base) and the
/// query as received, checked to come through whole.
pub fn upstream_target(upstream: &Upstream, parts: &Parts) -> Result<PathAndQuery, ProxyError> {
    let upstream_path =
        crate::proxy::path::to_upstream(&upstream.mount, &upstream.base_path, parts.uri.path());
    dial::path_and_query(&upstream_path, parts.uri.query()).ok_or(ProxyError::BadPath(
        crate::proxy::path::PathError::Character('%'),
    ))
}

/// Sends the request once with `token`; maps failures to the proxy's errors.
pub async fn send(
    forwarder: &Forwarder,
    upstream: &Upstream,
    parts: &Parts,
    target: &PathAndQuery,
    token: &SecretString,
    body: &mut OutBody,
    limits: &Limits,
) -> Result<Response<UpstreamBody>, ProxyError> {
    let out_headers =
        headers::request_headers(&parts.headers, token.expose_secret()).map_err(|_| {
            ProxyError::NotLoggedIn {
                profile: upstream.auth.clone(),
                message: "the stored token cannot be sent in a header; log in again".into(),
            }
        })?;
    let (out, fault) = body.take(limits);
    let fault = || fault.as_ref().and_then(|f| f.get());
    let sent = match forwarder {
        Forwarder::Pool(pool) => {
            let request = pooled_request(parts, out_headers, out);
            let sent = async {
                match send_pooled(pool, target, request).await {
                    Err(Failure::Refused(e)) => {
                        let kept = body.kept();
                        send_refused_again(pool, upstream, parts, target, token, kept, e).await
                    }
                    other => other.map_err(Failure::into_message),
                }
            };
            tokio::time::timeout(limits.response_header_timeout, sent).await
        }
        Forwarder::Proxied(client) => {
            let url = proxied_url(upstream, target);
            let request = client
                .request(parts.method.clone(), url)
                .headers(out_headers)
                .body(reqwest::Body::wrap(out));
            tokio::time::timeout(limits.response_header_timeout, async {
                match request.send().await {
                    Ok(r) => Ok(Response::from(r).map(UpstreamBody::Proxied)),
                    // Without the URL: it would carry the query string into the log.
                    Err(e) => Err(error_chain(&e.without_url())),
                }
            })
            .await
        }
    };
    match sent {
        Err(_) => Err(ProxyError::UpstreamTimeout {
            upstream: upstream.name.clone(),
        }),
        Ok(Err(_)) if fault().is_some() => {
            Err(client_fault(fault(), limits).unwrap_or(ProxyError::BadBody))
        }
        Ok(Err(error)) => {
            tracing::warn!(upstream = %upstream.name, error = %error, "upstream request failed");
            Err(ProxyError::UpstreamUnreachable {
                upstream: upstream.name.clone(),
            })
        }
        Ok(Ok(mut r)) => {
            headers::drop_echoed_token(r.headers_mut(), token.expose_secret());
            Ok(r)
        }
    }
}

/// The request as it leaves (its URI and `Host` are set per connection).
fn pooled_request(parts: &Parts, headers: http::HeaderMap, body: UpBody) -> Request<UpBody> {
    let mut request = Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.headers_mut() = headers;
    request
        .headers_mut()
        .entry(http::header::ACCEPT)
        // What reqwest sent when the client named no `Accept`.
        .or_insert(HeaderValue::from_static("*/*"));
    request
}

/// A request the upstream refused unprocessed goes once more if its body was `kept` (a
/// streamed one cannot); else the refusal `e` stands.
async fn send_refused_again(
    pool: &Pool,
    upstream: &Upstream,
    parts: &Parts,
    target: &PathAndQuery,
    token: &SecretString,
    kept: Option<Bytes>,
    e: String,
) -> Result<Response<UpstreamBody>, String> {
    let Some(kept) = kept else { return Err(e) };
    tracing::debug!(
        upstream = %upstream.name,
        error = %e,
        "the upstream refused the stream unprocessed; sending it again"
    );
    let headers = headers::request_headers(&parts.headers, token.expose_secret()).map_err(|_| e)?;
    let request = pooled_request(parts, headers, UpBody::full(kept));
    send_pooled(pool, target, request)
        .await
        .map_err(Failure::into_message)
}

/// Why a pooled send got no answer, as the error chain to log.
enum Failure {
    /// The upstream refused the stream unprocessed: the request may go again.
    Refused(String),
    Other(String),
}

impl Failure {
    fn into_message(self) -> String {
        match self {
            Failure::Refused(m) | Failure::Other(m) => m,
        }
    }
}

/// Sends on a pooled connection; once more on a fresh one when a pooled connection closed
/// before the request went out (an upstream may close idle connections at any time).
async fn send_pooled(
    pool: &Pool,
    target: &PathAndQuery,
    mut request: Request<UpBody>,
) -> Result<Response<UpstreamBody>, Failure> {
    let mut fresh_only = false;
    loop {
        let conn = pool
            .checkout(fresh_only)
            .await
            .map_err(|e| Failure::Other(error_chain(&e)))?;
        let (sent, lease) = match conn {
            Conn::H1(mut sender, mut lease) => {
                aim(pool, &mut request, target, false);
                let sent = sender.try_send_request(request).await;
                lease.hold(sender);
                (sent, lease)
            }
            Conn::H2(sender, lease) => {
                aim(pool, &mut request, target, true);
                match sender.send(request, lease).await {
                    Ok((response, lease)) => {
                        return Ok(response.map(|b| UpstreamBody::h2(b, lease)));
                    }
                    Err(upstream_h2::SendError::Unsent(_, unsent)) if !fresh_only => {
                        fresh_only = true;
                        request = *unsent;
                        continue;
                    }
                    Err(upstream_h2::SendError::Refused(e)) => {
                        return Err(Failure::Refused(error_chain(&e)))
                    }
                    Err(upstream_h2::SendError::Unsent(e, _))
                    | Err(upstream_h2::SendError::Failed(e)) => {
                        return Err(Failure::Other(error_chain(&e)))
                    }
                }
            }
        };
        match sent {
            Ok(response) => return Ok(response.map(|b| UpstreamBody::pooled(b, lease))),
            Err(mut e) => match e.take_message() {
                Some(unsent) if !fresh_only => {
                    fresh_only = true;
                    request = unsent;
                }
                _ => return Err(Failure::Other(error_chain(&e.into_error()))),
            },
        }
    }
}

/// The URI (and for HTTP/1.1 the `Host`) of a request on a connection of that protocol.
fn aim(pool: &Pool, request: &mut Request<UpBody>, target: &PathAndQuery, h2: bool) {
    let t = pool.target();
    *request.uri_mut() = t.uri(target.clone(), h2);
    if h2 {
        request.headers_mut().remove(http::header::HOST);
    } else {
        request
            .headers_mut()
            .insert(http::header::HOST, t.host_header.clone());
    }
}

/// The full URL for the reqwest client of a proxied upstream.
fn proxied_url(upstream: &Upstream, target: &PathAndQuery) -> url::Url {
    let mut url = upstream.url.clone();
    url.set_path(target.path());
    url.set_query(target.query());
    url
}

/// The body length the client announced in `Content-Length`, if it did.
pub(crate) fn declared_length(parts: &Parts) -> Option<u64> {
    content_length(&parts.headers)
}

/// The `Content-Length` of a message, if it has a valid one.
pub(crate) fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// The proxy's answer to a request body the client got wrong.
pub(crate) fn client_fault(fault: Option<Fault>, limits: &Limits) -> Option<ProxyError> {
    Some(match fault? {
        Fault::TooLarge => ProxyError::BodyTooLarge {
            limit: limits.max_request_body,
        },
        Fault::Broken => ProxyError::BadBody,
        Fault::TimedOut => ProxyError::BodyTimeout {
            timeout: limits.body_read_timeout,
        },
    })
}

/// The error and its causes on one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}
