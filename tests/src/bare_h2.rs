//! What the bare HTTP/2 test upstreams ([`refusing`](crate::refusing), [`capped`](crate::capped))
//! share: a loopback listener with TLS from a fresh [`TestCa`] offering ALPN `h2` only (they
//! accept on it with [`crate::accept::accept_until`]).

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::tls::TestCa;

/// A listener on `127.0.0.1:0`, its TLS acceptor (`h2` only) and the CA that signed it.
pub(crate) async fn listen() -> anyhow::Result<(TcpListener, TlsAcceptor, TestCa)> {
    let ca = TestCa::new();
    let mut config = (*ca.server_config()).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    Ok((listener, TlsAcceptor::from(Arc::new(config)), ca))
}
