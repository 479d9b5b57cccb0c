//! A bare HTTP/2 upstream written frame by frame (RFC 9113), for what neither hyper's nor h2's
//! server does: end every connection after a fixed number of streams, as nginx does at its
//! `keepalive_requests`. When a connection's `cap`-th stream arrives, it sends a `GOAWAY` whose
//! last stream id is that stream's; the streams the client had already sent past it are
//! refused (ignored, section 6.8), and the connection closes once the streams it took are
//! answered, lingering for the client's close. Each is answered, once its request has ended, with 200 and `{"answered":N}`, N
//! the stream's place among all it took (from 1). HTTPS with a fresh [`TestCa`], ALPN `h2`
//! only; no token check, and the header blocks are not decoded.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{ensure, Context};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::bare_h2;
use crate::tls::TestCa;

const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
/// `:status: 200` (static table index 8), and `content-type: application/json` as a literal
/// without indexing, its name from the static table (index 31) (RFC 7541).
const ANSWER_HEAD: &[u8] = b"\x88\x0f\x10\x10application/json";

/// The running upstream; stopped when dropped.
pub struct CappedUpstream {
    pub addr: std::net::SocketAddr,
    pub ca: TestCa,
    stats: Arc<Stats>,
    stop: CancellationToken,
}

#[derive(Default)]
struct Stats {
    connections: AtomicUsize,
    answered: AtomicUsize,
    refused: AtomicUsize,
}

impl CappedUpstream {
    /// Connections it accepted.
    pub fn connections(&self) -> usize {
        self.stats.connections.load(Ordering::SeqCst)
    }

    /// Streams it answered.
    pub fn answered(&self) -> usize {
        self.stats.answered.load(Ordering::SeqCst)
    }

    /// Streams it refused: sent past a connection's `GOAWAY`.
    pub fn refused(&self) -> usize {
        self.stats.refused.load(Ordering::SeqCst)
    }
}

impl Drop for CappedUpstream {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Starts it on `127.0.0.1:0`; each connection takes `cap` streams (at least 1).
pub async fn start(cap: usize) -> anyhow::Result<CappedUpstream> {
    let (listener, acceptor, ca) = bare_h2::listen().await?;
    let up = CappedUpstream {
        addr: listener.local_addr()?,
        ca,
        stats: Arc::default(),
        stop: CancellationToken::new(),
    };
    let stats = up.stats.clone();
    crate::accept::accept_until(listener, up.stop.clone(), move |tcp, _| {
        stats.connections.fetch_add(1, Ordering::SeqCst);
        let (acceptor, stats) = (acceptor.clone(), stats.clone());
        async move { serve(acceptor, tcp, cap.max(1), &stats).await }
    });
    Ok(up)
}

async fn serve(
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    cap: usize,
    stats: &Stats,
) -> anyhow::Result<()> {
    let tls = acceptor.accept(tcp).await?;
    let (mut rd, mut wr) = tokio::io::split(tls);
    let mut preface = [0; 24];
    rd.read_exact(&mut preface).await?;
    ensure!(&preface == PREFACE, "not an HTTP/2 client");
    write_frame(&mut wr, SETTINGS, 0, 0, &[]).await?;
    let mut taken = 0;
    // The last stream id of the GOAWAY sent, once sent.
    let mut last: Option<u32> = None;
    // Streams taken whose request has not ended yet.
    let mut open = HashSet::new();
    loop {
        let Some((kind, flags, stream, payload)) = read_frame(&mut rd).await? else {
            return Ok(());
        };
        let ended = flags & END_STREAM != 0;
        match kind {
            SETTINGS if flags & ACK == 0 => write_frame(&mut wr, SETTINGS, ACK, 0, &[]).await?,
            PING if flags & ACK == 0 => write_frame(&mut wr, PING, ACK, 0, &payload).await?,
            GOAWAY => return Ok(()),
            HEADERS if last.is_some_and(|l| stream > l) => {
                stats.refused.fetch_add(1, Ordering::SeqCst);
            }
            HEADERS => {
                taken += 1;
                if ended {
                    answer(&mut wr, stream, stats).await?;
                } else {
                    open.insert(stream);
                }
                if taken == cap {
                    let mut goaway = stream.to_be_bytes().to_vec();
                    goaway.extend_from_slice(&0u32.to_be_bytes()); // NO_ERROR
                    write_frame(&mut wr, GOAWAY, 0, 0, &goaway).await?;
                    last = Some(stream);
                }
            }
            DATA => {
                // Every DATA frame counts against the connection's window, refused or not.
                if !payload.is_empty() {
                    let grant = (payload.len() as u32).to_be_bytes();
                    write_frame(&mut wr, WINDOW_UPDATE, 0, 0, &grant).await?;
                }
                if ended && open.remove(&stream) {
                    answer(&mut wr, stream, stats).await?;
                }
            }
            _ => {}
        }
        if last.is_some() && open.is_empty() {
            // Lingering, as nginx does: what the client sent past the GOAWAY is read (its
            // streams counted as refused) until it closes, or for a while, so that no reset
            // cuts off what it has not read yet.
            wr.shutdown().await?;
            let linger = async {
                while let Some((kind, ..)) = read_frame(&mut rd).await? {
                    if kind == HEADERS {
                        stats.refused.fetch_add(1, Ordering::SeqCst);
                    }
                }
                anyhow::Ok(())
            };
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), linger).await;
            return Ok(());
        }
    }
}

async fn answer<W: AsyncWrite + Unpin>(
    wr: &mut W,
    stream: u32,
    stats: &Stats,
) -> anyhow::Result<()> {
    let n = stats.answered.fetch_add(1, Ordering::SeqCst) + 1;
    write_frame(wr, HEADERS, END_HEADERS, stream, ANSWER_HEAD).await?;
    let body = format!("{{\"answered\":{n}}}");
    write_frame(wr, DATA, END_STREAM, stream, body.as_bytes()).await
}

/// One frame: its type, flags, stream id and payload; `None` at the end of the connection.
async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
) -> anyhow::Result<Option<(u8, u8, u32, Vec<u8>)>> {
    let mut head = [0; 9];
    if let Err(e) = rd.read_exact(&mut head).await {
        return match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Ok(None),
            _ => Err(e.into()),
        };
    }
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    ensure!(len <= 1 << 14, "a frame of {len} bytes");
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0; len];
    rd.read_exact(&mut payload)
        .await
        .context("a frame's payload")?;
    Ok(Some((head[3], head[4], stream, payload)))
}

async fn write_frame<W: AsyncWrite + Unpin>(
    wr: &mut W,
    kind: u8,
    flags: u8,
    stream: u32,
    payload: &[u8],
) -> anyhow::Result<()> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut frame = Vec::with_capacity(9 + payload.len());
    frame.extend_from_slice(&len[1..]);
    frame.extend_from_slice(&[kind, flags]);
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    wr.write_all(&frame).await?;
    wr.flush().await?;
    Ok(())
}
