//! A bare HTTP/2 upstream on the `h2` crate, for what hyper's server cannot be made to do:
//! refuse a stream without processing it (`RST_STREAM REFUSED_STREAM`, RFC 9113 section 8.7),
//! as a server at its limits or shutting down does. It refuses the first `refuse` streams it
//! is sent and answers every other one, after reading its body, with 200 and
//! `{"answered":N}`, N the stream's place among all it was sent (from 1). HTTPS with a fresh
//! [`TestCa`], ALPN `h2` only; no token check.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::Response;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::bare_h2;
use crate::tls::TestCa;

/// The running upstream; stopped when dropped.
pub struct RefusingUpstream {
    pub addr: std::net::SocketAddr,
    pub ca: TestCa,
    seen: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    stop: CancellationToken,
}

impl RefusingUpstream {
    /// Streams it was sent, refused or not.
    pub fn seen(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }

    /// Streams it refused.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

impl Drop for RefusingUpstream {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Starts it on `127.0.0.1:0`.
pub async fn start(refuse: usize) -> anyhow::Result<RefusingUpstream> {
    let (listener, acceptor, ca) = bare_h2::listen().await?;
    let up = RefusingUpstream {
        addr: listener.local_addr()?,
        ca,
        seen: Arc::default(),
        refused: Arc::default(),
        stop: CancellationToken::new(),
    };
    let (seen, refused) = (up.seen.clone(), up.refused.clone());
    crate::accept::accept_until(listener, up.stop.clone(), move |tcp, _| {
        serve(acceptor.clone(), tcp, refuse, seen.clone(), refused.clone())
    });
    Ok(up)
}

async fn serve(
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    refuse: usize,
    seen: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
) -> anyhow::Result<()> {
    let tls = acceptor.accept(tcp).await?;
    let mut conn = h2::server::handshake(tls).await?;
    while let Some(accepted) = conn.accept().await {
        let (request, mut respond) = accepted?;
        let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= refuse {
            refused.fetch_add(1, Ordering::SeqCst);
            respond.send_reset(h2::Reason::REFUSED_STREAM);
            continue;
        }
        tokio::spawn(async move {
            let mut body = request.into_body();
            while let Some(data) = body.data().await {
                let data = data?;
                let _ = body.flow_control().release_capacity(data.len());
            }
            let head = Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(())?;
            let mut send = respond.send_response(head, false)?;
            send.send_data(Bytes::from(format!("{{\"answered\":{n}}}")), true)?;
            anyhow::Ok(())
        });
    }
    Ok(())
}
