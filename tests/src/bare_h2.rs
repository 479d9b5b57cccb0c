//! What the bare HTTP/2 test upstreams ([`refusing`](crate::refusing), [`capped`](crate::capped))
//! share: a loopback listener with TLS from a fresh [`TestCa`] offering ALPN `h2` only, and an
//! accept loop that serves each connection in a task of its own until stopped.

use std::future::Future;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::tls::TestCa;

/// A listener on `127.0.0.1:0`, its TLS acceptor (`h2` only) and the CA that signed it.
pub(crate) async fn listen() -> anyhow::Result<(TcpListener, TlsAcceptor, TestCa)> {
    let ca = TestCa::new();
    let mut config = (*ca.server_config()).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    Ok((listener, TlsAcceptor::from(Arc::new(config)), ca))
}

/// Accepts connections until `stop`, each served by `serve` in a task of its own that is
/// dropped at `stop` too.
pub(crate) fn accept_until<S, F>(listener: TcpListener, stop: CancellationToken, serve: S)
where
    S: Fn(TcpStream) -> F + Send + 'static,
    F: Future + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let tcp = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _)) => tcp,
                    Err(_) => continue,
                },
                _ = stop.cancelled() => return,
            };
            let conn = serve(tcp);
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = conn => {}
                    _ = stop.cancelled() => {}
                }
            });
        }
    });
}
