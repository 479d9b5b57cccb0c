//! The accept loop the three test peers (MCP upstream, OAuth server, Alibaba fake) share: take
//! connections from an already-bound listener, do TLS when given an acceptor, serve HTTP/1 or
//! HTTP/2 with hyper, and drop everything on shutdown.

use std::convert::Infallible;
use std::future::Future;

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// Serves `listener` in a task until `shutdown`. Each connection gets a child token of
/// `shutdown`, passed to `handle` with every request: cancelling it drops that connection
/// (how a peer plays a server that goes away mid-exchange).
pub(crate) fn serve<H, Fut, B>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
    handle: H,
) where
    H: Fn(Request<Incoming>, CancellationToken) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    accept_until(listener, shutdown, move |stream, conn| {
        connection(stream, tls.clone(), conn, handle.clone())
    });
}

/// Accepts connections until `stop`, each served by `serve` in a task of its own. Each gets a
/// child token of `stop`: the connection's task is dropped when it is cancelled, and so at
/// `stop` too.
pub(crate) fn accept_until<S, F>(listener: TcpListener, stop: CancellationToken, serve: S)
where
    S: Fn(TcpStream, CancellationToken) -> F + Send + 'static,
    F: Future + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
                () = stop.cancelled() => return,
            };
            let conn = stop.child_token();
            let served = serve(stream, conn.clone());
            tokio::spawn(async move {
                tokio::select! {
                    _ = served => {}
                    () = conn.cancelled() => {}
                }
            });
        }
    });
}

async fn connection<H, Fut, B>(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    conn: CancellationToken,
    handle: H,
) where
    H: Fn(Request<Incoming>, CancellationToken) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // As a real server would: small frames must not wait for delayed ACKs.
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req| handle(req, conn.clone()));
    let builder = auto::Builder::new(TokioExecutor::new());
    // Connection errors (client resets, bad TLS, dropped connections) are part of what tests
    // provoke, not the peer's concern.
    let _ = match tls {
        Some(acceptor) => match acceptor.accept(stream).await {
            Ok(tls) => builder.serve_connection(TokioIo::new(tls), service).await,
            Err(_) => return,
        },
        None => {
            builder
                .serve_connection(TokioIo::new(stream), service)
                .await
        }
    };
}
