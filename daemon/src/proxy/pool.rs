//! The connections to one upstream. HTTP/2 connections are shared up to the peer's
//! `SETTINGS_MAX_CONCURRENT_STREAMS`, counted here by a [`Lease`] that lives until the
//! response body ends: when every open connection is full, another is opened (one HTTP/2
//! connection would queue every stream past its limit inside h2, the client hanging).
//! HTTP/1.1 connections are kept alive, one request at a time, up to [`MAX_IDLE_H1`] idle.
//! Each proxy worker thread has its own connections (see `proxy::workers`).
//!
//! Some upstreams end every HTTP/2 connection after a fixed number of streams (nginx's
//! `keepalive_requests`, 1,000 by default): their `GOAWAY` refuses the streams already on their
//! way past it, and those requests go once more on another connection, a round trip late. When
//! two connections in a row went away after the same number of streams, the pool takes that as
//! the upstream's budget ([`StreamBudget`]): it sends no connection more streams than that,
//! and opens the next connection when three quarters of the budget are used, so the requests
//! move over without a refusal and without waiting for a handshake.

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
    /// Streams sent on it so far.
    taken: AtomicUsize,
    /// When the last stream ended (ms since the pool's epoch), for the idle timeout.
    idle_since: AtomicU64,
    budget: Arc<StreamBudget>,
}

/// What a connection's stream slot means for the connection's budget.
#[derive(PartialEq, Eq)]
enum Budgeted {
    /// Room left, or no budget known.
    Room,
    /// This stream used three quarters of the budget: time to open the next connection.
    OpenNext,
}

impl H2Conn {
    fn new(
        sender: upstream_h2::Sender,
        in_flight: usize,
        now_ms: u64,
        budget: &Arc<StreamBudget>,
    ) -> H2Conn {
        H2Conn {
            sender,
            in_flight: AtomicUsize::new(in_flight),
            taken: AtomicUsize::new(in_flight),
            idle_since: AtomicU64::new(now_ms),
            budget: budget.clone(),
        }
    }

    /// Counts one more stream against the upstream's budget (`None`: over it, the slot is not
    /// taken); the stream that reaches the budget retires the connection.
    fn count(&self, taken: usize) -> Option<Budgeted> {
        let budget = self.budget.per_connection.load(Ordering::Relaxed);
        if budget == 0 {
            return Some(Budgeted::Room);
        }
        if taken >= budget {
            self.sender.retire();
        }
        if taken > budget {
            return None;
        }
        Some(if taken == open_next_at(budget) {
            Budgeted::OpenNext
        } else {
            Budgeted::Room
        })
    }

    fn limit(&self) -> usize {
        match self.sender.limit.load(Ordering::Relaxed) {
            0 => 1,
            n if n == usize::MAX => UNLIMITED_STREAMS,
            n => n,
        }
    }

    /// Takes one stream slot if there is room, under the peer's limit of streams at once and
    /// under the upstream's budget of streams per connection.
    fn reserve(&self) -> Option<Budgeted> {
        let limit = self.limit();
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()?;
        let counted = self.count(self.taken.fetch_add(1, Ordering::AcqRel) + 1);
        if counted.is_none() {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
        counted
    }
}

impl Drop for H2Conn {
    /// The connection is done with (no stream and no pool holds it): what it was taken for
    /// before a `GOAWAY`, if one refused streams, is what the budget learns from.
    fn drop(&mut self) {
        if let Some(taken) = self.sender.taken_before_go_away() {
            self.budget.observe(taken);
        }
    }
}

/// The stream of a connection, under a budget, at which the next connection is opened: three
/// quarters of the budget.
fn open_next_at(budget: usize) -> usize {
    budget - budget / 4
}

/// The streams per HTTP/2 connection the upstream takes before it goes away, learnt from its
/// `GOAWAY`s; one pool's, shared by its threads.
#[derive(Default)]
pub struct StreamBudget {
    /// The upstream's name, for the log.
    upstream: Box<str>,
    /// The budget (0: none known).
    per_connection: AtomicUsize,
    /// What the last connection to go away with refused streams had taken.
    last_seen: AtomicUsize,
}

impl StreamBudget {
    /// A connection's `GOAWAY` refused every stream past its first `taken`. The same count
    /// twice in a row is the upstream's budget; one count alone (a restart, a shutdown) is not.
    fn observe(&self, taken: usize) {
        if taken == 0 || self.last_seen.swap(taken, Ordering::AcqRel) != taken {
            return;
        }
        if self.per_connection.swap(taken, Ordering::AcqRel) != taken {
            tracing::info!(
                upstream = %self.upstream,
                streams = taken,
                "the upstream ends its HTTP/2 connections after a fixed number of streams; \
                 the next connection now opens before then"
            );
        }
    }

    /// The budget learnt (0: none).
    fn per_connection(&self) -> usize {
        self.per_connection.load(Ordering::Relaxed)
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
    budget: Arc<StreamBudget>,
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
    pub fn new(dialer: Dialer, upstream: &str) -> Pool {
        let pool = Pool::unswept(dialer, upstream);
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

    fn unswept(dialer: Dialer, upstream: &str) -> Pool {
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
            budget: Arc::new(StreamBudget {
                upstream: upstream.into(),
                ..StreamBudget::default()
            }),
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
                let conn = self.add_h2(sender.clone(), 1);
                if conn.count(1) == Some(Budgeted::OpenNext) {
                    self.open_next();
                }
                self.h2_conn(sender, conn)
            }
        })
    }

    /// A new HTTP/2 connection among the current thread's, with `in_flight` streams on it.
    fn add_h2(&self, sender: upstream_h2::Sender, in_flight: usize) -> Arc<H2Conn> {
        let conn = Arc::new(H2Conn::new(
            sender,
            in_flight,
            self.now_ms(),
            &self.0.budget,
        ));
        lock(&self.slot().h2).push(conn.clone());
        conn
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
        let (conn, budgeted) = conns.iter().find_map(|c| Some((c, c.reserve()?)))?;
        let conn = conn.clone();
        drop(conns);
        if budgeted == Budgeted::OpenNext {
            self.open_next();
        }
        Some(self.h2_conn(conn.sender.clone(), conn))
    }

    /// Opens the current thread's next HTTP/2 connection, by a task of its own, for the
    /// streams past the open one's budget; unless one with room to spare is open already.
    fn open_next(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool = self.clone();
        runtime.spawn(async move {
            let _one = pool.slot().opening.lock().await;
            let budget = pool.0.budget.per_connection();
            let spare = lock(&pool.slot().h2).iter().any(|c| {
                !c.sender.is_closed() && c.taken.load(Ordering::Acquire) < open_next_at(budget)
            });
            if spare {
                return;
            }
            match Box::pin(pool.0.dialer.dial()).await {
                Ok(Fresh::H2(sender)) => {
                    pool.0.attempts.fetch_add(1, Ordering::AcqRel);
                    pool.add_h2(sender, 0);
                }
                // The upstream changed its protocol: the next request's own open learns it.
                Ok(Fresh::H1(_)) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "opening the next upstream connection failed")
                }
            }
        });
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

#[cfg(test)]
mod tests {
    use super::StreamBudget;

    #[test]
    fn a_budget_is_the_same_count_twice_in_a_row() {
        let budget = StreamBudget::default();
        budget.observe(7);
        assert_eq!(budget.per_connection(), 0, "one count alone");
        budget.observe(9);
        assert_eq!(budget.per_connection(), 0, "two different counts");
        budget.observe(9);
        assert_eq!(budget.per_connection(), 9);
        budget.observe(3);
        assert_eq!(
            budget.per_connection(),
            9,
            "one other count does not move it"
        );
        budget.observe(3);
        assert_eq!(budget.per_connection(), 3);
        budget.observe(0);
        budget.observe(0);
        assert_eq!(budget.per_connection(), 3, "nothing taken is no budget");
    }
}
