//! The connections to one upstream. HTTP/2 connections are shared up to the peer's
//! `SETTINGS_MAX_CONCURRENT_STREAMS`, counted here by a [`Lease`] that lives until the
//! response body ends: when every open connection is full, another is opened (one HTTP/2
//! connection would queue every stream past its limit inside h2, the client hanging).
//! HTTP/1.1 connections are kept alive, one request at a time, up to [`MAX_IDLE_H1`] idle.
//! Each proxy worker thread has its own connections (see `proxy::workers`).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::client::conn::http1;

use crate::proxy::dial::{DialError, Dialer, Fresh};
use crate::proxy::forward::UpBody;
use crate::proxy::upstream_h2;
use crate::proxy::workers;

/// Idle HTTP/1.1 connections kept per upstream.
pub const MAX_IDLE_H1: usize = 256;
/// How long an unused connection is kept (reqwest's default before, too).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How long an HTTP/2 connection past the first of its thread may go without a stream: it was
/// opened for a burst of streams, and its socket is given back soon after the burst.
const EXTRA_IDLE: Duration = Duration::from_secs(5);
/// How often idle connections are looked for, between requests too.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Streams per HTTP/2 connection when the peer sets no limit of its own.
const UNLIMITED_STREAMS: usize = 256;

/// One HTTP/2 connection and the streams in flight on it.
struct H2Conn {
    /// With the peer's current stream limit.
    sender: upstream_h2::Sender,
    in_flight: AtomicUsize,
    /// When the last stream ended (ms since the pool's epoch), for the idle timeout.
    idle_since: AtomicU64,
}

impl H2Conn {
    fn limit(&self) -> usize {
        match self.sender.limit.load(Ordering::Relaxed) {
            0 => 1,
            n if n == usize::MAX => UNLIMITED_STREAMS,
            n => n,
        }
    }

    /// Takes one stream slot if there is room.
    fn reserve(&self) -> bool {
        let limit = self.limit();
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok()
    }
}

/// What the pool learnt the upstream speaks (from ALPN on the first connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Unknown,
    H1,
    H2,
}

struct Inner {
    dialer: Dialer,
    epoch: Instant,
    /// One set of connections per proxy worker (and one for the main runtime): a request uses
    /// the connections driven on its own thread.
    slots: Box<[Slot]>,
    proto: Mutex<Proto>,
    /// Open attempts so far, and whether the last one failed: waiters behind a failed attempt
    /// share its failure instead of each waiting out a connect timeout in turn.
    attempts: AtomicU64,
    last_failed: std::sync::atomic::AtomicBool,
}

/// The connections of one thread.
#[derive(Default)]
struct Slot {
    h2: Mutex<Vec<Arc<H2Conn>>>,
    h1_idle: Mutex<Vec<(http1::SendRequest<UpBody>, Instant)>>,
    /// One opener at a time while the protocol is unknown or HTTP/2 (waiters then find room
    /// on the connection just opened instead of each opening one).
    opening: tokio::sync::Mutex<()>,
}

/// The connection pool of one upstream (cheap to clone).
#[derive(Clone)]
pub struct Pool(Arc<Inner>);

/// A connection checked out for one request.
pub enum Conn {
    H1(http1::SendRequest<UpBody>, Lease),
    H2(upstream_h2::Sender, Lease),
}

/// Holds a request's place on its connection until the response body ends or is dropped:
/// an HTTP/2 stream slot, or the HTTP/1.1 connection itself (back to the pool if the body was
/// read to its end).
pub struct Lease {
    pool: Pool,
    kind: LeaseKind,
}

enum LeaseKind {
    H1 {
        sender: Option<http1::SendRequest<UpBody>>,
    },
    H2(Arc<H2Conn>),
    Done,
}

impl Pool {
    /// A pool; inside a runtime, also the task that closes its idle connections (it ends with
    /// the pool).
    pub fn new(dialer: Dialer) -> Pool {
        let pool = Pool::unswept(dialer);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&pool.0);
            runtime.spawn(async move {
                let mut every = tokio::time::interval(SWEEP_EVERY);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    every.tick().await;
                    let Some(inner) = weak.upgrade() else { return };
                    Pool(inner).sweep();
                }
            });
        }
        pool
    }

    fn unswept(dialer: Dialer) -> Pool {
        Pool(Arc::new(Inner {
            dialer,
            epoch: Instant::now(),
            // Every worker there can be (a slot is a few empty lists), and the main runtime.
            slots: (0..=workers::MAX_WORKERS)
                .map(|_| Slot::default())
                .collect(),
            proto: Mutex::new(Proto::Unknown),
            attempts: AtomicU64::new(0),
            last_failed: Default::default(),
        }))
    }

    pub fn target(&self) -> &crate::proxy::dial::Target {
        &self.0.dialer.target
    }

    /// The current thread's connections.
    fn slot(&self) -> &Slot {
        &self.0.slots[workers::current() % self.0.slots.len()]
    }

    fn now_ms(&self) -> u64 {
        self.0.epoch.elapsed().as_millis() as u64
    }

    /// A connection for one request: a shared HTTP/2 connection with room, an idle HTTP/1.1
    /// one, or a new one. `fresh_only` skips pooled connections (a retry after one failed).
    pub async fn checkout(&self, fresh_only: bool) -> Result<Conn, DialError> {
        if !fresh_only {
            if let Some(c) = self.shared_h2() {
                return Ok(c);
            }
        }
        let proto = *lock(&self.0.proto);
        if proto == Proto::H1 {
            if !fresh_only {
                if let Some(sender) = self.idle_h1().await {
                    return Ok(self.h1_conn(sender));
                }
            }
            return self.open().await;
        }
        let seen = self.0.attempts.load(Ordering::Acquire);
        let _one = self.slot().opening.lock().await;
        let opened_meanwhile = self.0.attempts.load(Ordering::Acquire) != seen;
        // A retry takes a connection opened while it waited: when a connection goes away with
        // many requests on it, they share the one that replaces it instead of each opening
        // its own, one after the other (the connection that failed is retired, not offered).
        if !fresh_only || opened_meanwhile {
            if let Some(c) = self.shared_h2() {
                return Ok(c);
            }
        }
        if opened_meanwhile && self.0.last_failed.load(Ordering::Acquire) {
            return Err(DialError::Connect(std::io::Error::other(
                "the connection opened just before failed",
            )));
        }
        self.open().await
    }

    async fn open(&self) -> Result<Conn, DialError> {
        // Boxed: the dial (TCP, TLS, handshake) is a large future that only a new connection
        // needs; unboxed, it would size the future of every request (~7.8 KB of ~10 KB).
        let fresh = Box::pin(self.0.dialer.dial()).await;
        self.0.last_failed.store(fresh.is_err(), Ordering::Release);
        self.0.attempts.fetch_add(1, Ordering::AcqRel);
        Ok(match fresh? {
            Fresh::H1(sender) => {
                *lock(&self.0.proto) = Proto::H1;
                self.h1_conn(sender)
            }
            Fresh::H2(sender) => {
                *lock(&self.0.proto) = Proto::H2;
                let conn = Arc::new(H2Conn {
                    sender: sender.clone(),
                    in_flight: AtomicUsize::new(1),
                    idle_since: AtomicU64::new(self.now_ms()),
                });
                lock(&self.slot().h2).push(conn.clone());
                self.h2_conn(sender, conn)
            }
        })
    }

    fn h1_conn(&self, sender: http1::SendRequest<UpBody>) -> Conn {
        Conn::H1(
            sender,
            Lease {
                pool: self.clone(),
                kind: LeaseKind::H1 { sender: None },
            },
        )
    }

    fn h2_conn(&self, sender: upstream_h2::Sender, conn: Arc<H2Conn>) -> Conn {
        Conn::H2(
            sender,
            Lease {
                pool: self.clone(),
                kind: LeaseKind::H2(conn),
            },
        )
    }

    /// An open HTTP/2 connection with a free stream slot; closed ones and idle extra
    /// connections are dropped on the way.
    fn shared_h2(&self) -> Option<Conn> {
        let now = self.now_ms();
        let mut conns = lock(&self.slot().h2);
        prune(&mut conns, now);
        let conn = conns.iter().find(|c| c.reserve())?;
        let conn = conn.clone();
        drop(conns);
        Some(self.h2_conn(conn.sender.clone(), conn))
    }

    /// Drops every thread's closed connections and idle extra HTTP/2 ones (their sockets
    /// close once the last handle is gone) and HTTP/1.1 ones idle past the timeout.
    fn sweep(&self) {
        let now = self.now_ms();
        for slot in self.0.slots.iter() {
            prune(&mut lock(&slot.h2), now);
            lock(&slot.h1_idle).retain(|(sender, since)| !stale_h1(sender, *since));
        }
    }

    /// The most recently used idle HTTP/1.1 connection that is still open.
    async fn idle_h1(&self) -> Option<http1::SendRequest<UpBody>> {
        loop {
            let (mut sender, since) = lock(&self.slot().h1_idle).pop()?;
            if stale_h1(&sender, since) {
                continue;
            }
            // Ready at once unless the connection task has not yet seen the last response end.
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    fn put_idle_h1(&self, sender: http1::SendRequest<UpBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = lock(&self.slot().h1_idle);
        if idle.len() >= MAX_IDLE_H1 {
            idle.remove(0);
        }
        idle.push((sender, Instant::now()));
    }

    /// How many HTTP/2 connections are open, on every thread (for tests and the log).
    pub fn h2_connections(&self) -> usize {
        self.0.slots.iter().map(|s| lock(&s.h2).len()).sum()
    }
}

impl Lease {
    /// Keeps the HTTP/1.1 sender, to go back to the pool when the body ends.
    pub fn hold(&mut self, sender: http1::SendRequest<UpBody>) {
        if let LeaseKind::H1 { sender: s } = &mut self.kind {
            *s = Some(sender);
        }
    }

    /// The response body ended: the connection (or its stream slot) is free again.
    pub fn release(&mut self) {
        match std::mem::replace(&mut self.kind, LeaseKind::Done) {
            LeaseKind::H1 {
                sender: Some(sender),
            } => self.pool.put_idle_h1(sender),
            LeaseKind::H2(conn) => self.free_stream(&conn),
            LeaseKind::H1 { sender: None } | LeaseKind::Done => {}
        }
    }

    fn free_stream(&self, conn: &H2Conn) {
        if conn.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            conn.idle_since.store(self.pool.now_ms(), Ordering::Relaxed);
        }
    }
}

impl Drop for Lease {
    /// A body dropped before its end: an HTTP/1.1 connection cannot be reused (hyper closes
    /// it); an HTTP/2 stream slot is free again (the stream is reset).
    fn drop(&mut self) {
        if let LeaseKind::H2(conn) = std::mem::replace(&mut self.kind, LeaseKind::Done) {
            self.free_stream(&conn);
        }
    }
}

/// An idle HTTP/1.1 connection not to use again: closed, or idle for over [`IDLE_TIMEOUT`].
fn stale_h1(sender: &http1::SendRequest<UpBody>, idle_since: Instant) -> bool {
    sender.is_closed() || idle_since.elapsed() > IDLE_TIMEOUT
}

/// Keeps a thread's open HTTP/2 connections but for extra ones without a stream for
/// [`EXTRA_IDLE`]; the first open one stays however long it is idle.
fn prune(conns: &mut Vec<Arc<H2Conn>>, now_ms: u64) {
    let mut first = true;
    conns.retain(|c| {
        let idle = c.in_flight.load(Ordering::Acquire) == 0
            && now_ms.saturating_sub(c.idle_since.load(Ordering::Relaxed))
                > EXTRA_IDLE.as_millis() as u64;
        let keep = !c.sender.is_closed() && (first || !idle);
        first &= !keep;
        keep
    });
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
