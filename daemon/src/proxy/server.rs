//! The proxy port: accept loops over already-bound listeners, a bound on open connections,
//! HTTP/1.1 and HTTP/2 (h2c) per connection with their deadlines (see [`conn`]), and graceful
//! shutdown.
//!
//! [`conn`]: crate::proxy::conn

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::auth::token_store::{self, TokenStore};
use crate::auth::tokens::Tokens;
use crate::config::{Config, Overrides};
use crate::proxy::conn::{Activity, Expired, Tracked};
use crate::proxy::listener::{Accept, ClientAddr, Peek, UnixProxyListener};
use crate::proxy::pipeline::{self, Peer};
use crate::proxy::trim::HighWater;
use crate::proxy::workers::{Portable, Workers};
use crate::state::{BuildError, Generation, Shared};

/// How long to wait before accepting again when the process is out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The most time between HTTP/2 keep-alive pings on a connection (fewer with a shorter
/// `limits.idle_timeout`): a client that vanished with a stream open is noticed.
const H2_PING_INTERVAL: Duration = Duration::from_secs(30);
/// How long a ping may go unanswered before the connection is closed.
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// A daemon ready to serve: configuration built, listeners bound.
pub struct Daemon {
    shared: Arc<Shared>,
    listeners: Vec<TcpListener>,
    unix: Vec<UnixProxyListener>,
}

impl Daemon {
    /// Builds the daemon over listeners the caller bound (port 0 is fine: the bound addresses
    /// are read back from them). `config_path` and `overrides` are used again at every reload.
    pub fn new(
        config: Config,
        config_path: Option<PathBuf>,
        overrides: Overrides,
        listeners: Vec<TcpListener>,
    ) -> Result<Daemon, BuildError> {
        let bound: Vec<SocketAddr> = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        let metrics = Arc::new(crate::control::metrics::Metrics::default());
        let store = open_store(&config);
        let tokens = Tokens::new(&config, store, metrics.clone());
        let generation = Generation::build(config, &bound)?;
        let shared = Arc::new(Shared::new(
            generation,
            bound,
            config_path,
            overrides,
            tokens,
            metrics,
        ));
        Ok(Daemon {
            shared,
            listeners,
            unix: Vec::new(),
        })
    }

    /// Also serves the proxy on these Unix sockets (`[listen] unix`).
    pub fn with_unix(mut self, unix: Vec<UnixProxyListener>) -> Daemon {
        let paths = unix.iter().map(|l| l.path().to_path_buf()).collect();
        let _ = self.shared.unix_bound.set(paths);
        self.unix = unix;
        self
    }

    /// The state shared with reload, status and the tests.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Serves until `shutdown` completes; then stops accepting, lets requests and streams in
    /// flight finish for up to `limits.shutdown_grace`, and closes what is left.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let stop = CancellationToken::new();
        let force = CancellationToken::new();
        let graceful = Arc::new(GracefulShutdown::new());
        let limits = self.shared.current().config.limits.clone();
        crate::proxy::nofile::check(limits.max_connections);
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        let high = Arc::new(HighWater::new(limits.max_connections));
        let trimmer = tokio::spawn(crate::proxy::trim::run(
            high.clone(),
            slots.clone(),
            stop.clone(),
        ));
        let workers = match Workers::start(limits.workers, &self.shared.heartbeat) {
            Ok(w) => Some(Arc::new(w)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the proxy's worker threads; serving on the main runtime");
                None
            }
        };
        let ctx = LoopCtx {
            shared: self.shared.clone(),
            slots: slots.clone(),
            high: high.clone(),
            graceful: graceful.clone(),
            stop: stop.clone(),
            force: force.clone(),
            workers: workers.clone(),
        };
        let mut loops = Vec::new();
        for listener in self.listeners {
            loops.push(tokio::spawn(accept_loop(listener, ctx.clone())));
        }
        for listener in self.unix {
            loops.push(tokio::spawn(accept_loop(listener, ctx.clone())));
        }
        drop(ctx);
        shutdown.await;
        crate::control::systemd::stopping();
        tracing::info!(
            grace = ?limits.shutdown_grace,
            "shutting down: no new connections; waiting for requests in flight"
        );
        stop.cancel();
        for l in loops {
            let _ = l.await;
        }
        let _ = trimmer.await;
        // Every loop has ended, and a connection still waiting in a worker's queue holds its
        // watcher, not the loops' context: this is the last handle.
        let grace = self.shared.current().config.limits.shutdown_grace;
        match Arc::try_unwrap(graceful) {
            Ok(graceful) => {
                if tokio::time::timeout(grace, graceful.shutdown())
                    .await
                    .is_err()
                {
                    tracing::warn!(
                        "shutdown grace period over; closing the connections still open"
                    );
                }
            }
            Err(_) => {
                debug_assert!(false, "the accept loops' context outlived them");
                tracing::error!("cannot wait for the requests in flight; closing them");
            }
        }
        force.cancel();
        if let Some(workers) = workers.and_then(|w| Arc::try_unwrap(w).ok()) {
            workers.stop().await;
        }
        self.shared.tokens.shutdown();
        self.shared.keys.flush(crate::clock::now());
    }
}

/// Opens the token store when a profile needs one (OAuth and Alibaba logins); static tokens
/// need none. A store that cannot be opened is logged, and logins report it.
fn open_store(config: &Config) -> Option<Arc<dyn TokenStore>> {
    let needed = config
        .auth
        .values()
        .any(|p| !matches!(p, crate::config::AuthProfile::Static(_)));
    if !needed {
        return None;
    }
    match token_store::open(&config.store) {
        Ok(store) => {
            let info = store.info();
            if info.survives_reboot {
                tracing::info!(store = %info.name, "token store opened");
            } else {
                tracing::warn!(store = %info.name, "token store opened; its tokens do not survive a reboot");
            }
            Some(Arc::from(store))
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot open the token store; logins will fail until this is fixed");
            None
        }
    }
}

/// Builds the daemon and serves until `shutdown`: the whole proxy for callers that need no
/// handle on it.
pub async fn run(
    config: Config,
    listeners: Vec<TcpListener>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), BuildError> {
    let daemon = Daemon::new(config, None, Overrides::default(), listeners)?;
    daemon.serve(shutdown).await;
    Ok(())
}

/// Binds every configured listen address.
pub async fn bind(config: &Config) -> io::Result<Vec<TcpListener>> {
    let mut out = Vec::new();
    for addr in &config.listen.addresses {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        out.push(listener);
    }
    Ok(out)
}

fn out_of_resources(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == nix::libc::EMFILE
            || code == nix::libc::ENFILE
            || code == nix::libc::ENOBUFS
            || code == nix::libc::ENOMEM
    )
}

/// What a connection needs once accepted, handed with it to its worker. Not the loops'
/// context: a connection still queued at shutdown must not keep the shutdown's handle shared.
struct ConnCtx {
    shared: Arc<Shared>,
    force: CancellationToken,
    /// Taken at accept: a connection accepted before the shutdown is told of it even when its
    /// worker takes it over only after.
    watcher: Watcher,
}

/// What every accept loop shares.
#[derive(Clone)]
struct LoopCtx {
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    high: Arc<HighWater>,
    graceful: Arc<GracefulShutdown>,
    stop: CancellationToken,
    force: CancellationToken,
    /// Where connections are served; `None`: on this runtime.
    workers: Option<Arc<Workers>>,
}

async fn accept_loop<L: Accept>(listener: L, ctx: LoopCtx) {
    let LoopCtx {
        shared,
        slots,
        high,
        stop,
        ..
    } = &ctx;
    let local = listener.describe();
    loop {
        let mut tick = tokio::time::interval(crate::control::systemd::HEARTBEAT);
        let accepted = loop {
            tokio::select! {
                r = listener.accept(shared) => break r,
                _ = tick.tick() => shared.heartbeat.accept_alive(),
                _ = stop.cancelled() => return,
            }
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) if out_of_resources(&e) => {
                tracing::warn!(error = %e, listen = %local, "cannot accept: out of resources; backing off");
                tokio::select! {
                    _ = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    _ = stop.cancelled() => return,
                }
                continue;
            }
            Err(e) => {
                tracing::debug!(error = %e, "accept failed");
                continue;
            }
        };
        // Over the limit: answered at once (503) rather than left hanging in the backlog.
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(tokio::sync::TryAcquireError::Closed) => return,
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                let max = shared.current().config.limits.max_connections;
                crate::proxy::overload::refuse(stream, peer.addr, max);
                continue;
            }
        };
        high.record(slots);
        let conn = ConnCtx {
            shared: shared.clone(),
            force: ctx.force.clone(),
            watcher: ctx.graceful.watcher(),
        };
        let Some(workers) = &ctx.workers else {
            spawn_connection(stream, peer, permit, conn);
            continue;
        };
        let std = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(client = %peer.addr, error = %e, "cannot hand the connection over");
                continue;
            }
        };
        workers.hand(Box::new(move || match L::Io::from_std(std) {
            Ok(stream) => spawn_connection(stream, peer, permit, conn),
            Err(e) => {
                tracing::debug!(client = %peer.addr, error = %e, "cannot take the connection over");
            }
        }));
    }
}

/// Serves one connection on the current runtime, within its clocks, holding its slot.
fn spawn_connection<Io>(
    stream: Io,
    peer: Peer,
    permit: tokio::sync::OwnedSemaphorePermit,
    ctx: ConnCtx,
) where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Peek + Unpin + Send + 'static,
{
    let addr = peer.addr;
    let limits = ctx.shared.current().config.limits.clone();
    let activity = Activity::default();
    let conn = serve_connection(
        stream,
        peer,
        ctx.shared,
        limits.clone(),
        activity.clone(),
        ctx.watcher,
    );
    let force = ctx.force;
    tokio::spawn(async move {
        let _permit = permit;
        tokio::select! {
            r = conn => if let Err(e) = r {
                tracing::debug!(client = %addr, error = %e, "connection ended with an error");
            },
            why = activity.expired(limits.header_read_timeout, limits.idle_timeout) => {
                log_expired(why, addr, &limits);
            }
            _ = force.cancelled() => {}
        }
    });
}

/// Which protocol a connection speaks, from its first bytes (peeked, not consumed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Http1,
    Http2,
    /// Too few bytes to tell, or a socket that cannot peek: hyper-util's own sniffing decides.
    Unknown,
}

/// How long to wait for a connection's first bytes to peek at. A client writes its request as
/// it connects; one that waits longer gets hyper-util's sniffing (which also ends at once on
/// graceful shutdown, where a pending peek would hold the shutdown up).
const PEEK_WAIT: Duration = Duration::from_millis(50);

/// The HTTP/2 connection preface (RFC 9113 section 3.4): what an h2c client sends first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// HTTP/2 when the bytes begin the preface (its first three, `PRI`, start no HTTP/1.1 request
/// the proxy serves), HTTP/1.1 when they cannot, undecided on fewer than three that could.
fn classify(first: &[u8]) -> Proto {
    let n = first.len().min(H2_PREFACE.len());
    if n == 0 {
        Proto::Unknown
    } else if first[..n] != H2_PREFACE[..n] {
        Proto::Http1
    } else if n >= 3 {
        Proto::Http2
    } else {
        Proto::Unknown
    }
}

/// One connection, watched for graceful shutdown: HTTP/1.1 or h2c as the client's first bytes
/// say, every request counted in `activity` until its response body is done.
///
/// The first bytes are peeked rather than read by hyper-util's `auto` builder: `auto` hands
/// hyper the bytes it sniffed as a separate first read, and hyper's read buffer then grows
/// from 8 KiB to 16 KiB on every connection; peeked, it stays at 8 KiB (measured in
/// BENCHMARKS.md). Unix sockets and undecided starts still go through `auto`.
async fn serve_connection<Io>(
    stream: Io,
    peer: Peer,
    shared: Arc<Shared>,
    limits: crate::config::Limits,
    activity: Activity,
    watcher: Watcher,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Peek + Unpin + Send + 'static,
{
    let mut first = [0u8; 24];
    let proto = match tokio::time::timeout(PEEK_WAIT, stream.peek_first(&mut first)).await {
        Ok(Some(n)) => classify(&first[..n]),
        Ok(None) | Err(_) => Proto::Unknown,
    };
    let service = service_fn(move |req| {
        let request = activity.begin();
        // Boxed: hyper's HTTP/1 dispatcher keeps a slot the size of the service's future for
        // the connection's whole life, and the pipeline's future is about 9 KiB. Boxed, that
        // slot is a pointer and the pipeline's state is freed once the response head is out,
        // which is what an idle stream or keep-alive connection should cost.
        let response = Box::pin(pipeline::handle(shared.clone(), peer, req));
        async move {
            let response = response.await?;
            Ok::<_, std::convert::Infallible>(
                response.map(|body| Tracked::new(body, request).boxed()),
            )
        }
    });
    let io = TokioIo::new(stream);
    let h2_ping = limits.idle_timeout.min(H2_PING_INTERVAL);
    match proto {
        Proto::Http1 => {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            Ok(watcher.watch(builder.serve_connection(io, service)).await?)
        }
        Proto::Http2 => {
            let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            builder
                .timer(TokioTimer::new())
                .keep_alive_interval(Some(h2_ping))
                .keep_alive_timeout(H2_PING_TIMEOUT);
            Ok(watcher.watch(builder.serve_connection(io, service)).await?)
        }
        Proto::Unknown => {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            builder
                .http2()
                .timer(TokioTimer::new())
                .keep_alive_interval(Some(h2_ping))
                .keep_alive_timeout(H2_PING_TIMEOUT);
            let conn = builder.serve_connection(io, service).into_owned();
            watcher.watch(conn).await
        }
    }
}

/// A connection closed by its clock: a slow or silent client is worth a line at info, an idle
/// keep-alive connection is routine.
fn log_expired(why: Expired, client: ClientAddr, limits: &crate::config::Limits) {
    match why {
        Expired::NoRequest => tracing::info!(
            client = %client,
            timeout = ?limits.header_read_timeout,
            "client sent no request within limits.header_read_timeout; connection closed"
        ),
        Expired::Idle => tracing::debug!(
            client = %client,
            timeout = ?limits.idle_timeout,
            "connection idle for limits.idle_timeout; closed"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::{classify, Proto};

    #[test]
    fn first_bytes_pick_the_protocol() {
        assert_eq!(classify(b"GET /mcp HTTP/1.1\r\n"), Proto::Http1);
        assert_eq!(classify(b"POST /mcp HTTP/1.1\r\n"), Proto::Http1);
        assert_eq!(classify(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Proto::Http2);
        assert_eq!(classify(b"PRI * HT"), Proto::Http2);
        // "P" or "PR" could still be POST or PUT: left to hyper-util's sniffing.
        assert_eq!(classify(b"P"), Proto::Unknown);
        assert_eq!(classify(b"PR"), Proto::Unknown);
        assert_eq!(classify(b"PO"), Proto::Http1);
        assert_eq!(classify(b""), Proto::Unknown);
        // Bytes past the preface do not matter (the client's SETTINGS follow it).
        assert_eq!(
            classify(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0"),
            Proto::Http2
        );
    }
}
