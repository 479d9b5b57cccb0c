//! SSE through each side: per-event latency of one long stream, and what many concurrent idle
//! streams cost the proxy process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use reqwest::header::ACCEPT;
use reqwest::Method;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::load::{Samples, Side};
use super::procstat::{self, ProcStat};
use crate::sse::SseParser;
use crate::upstream::bench::now_us;

/// [`ticks`] read by a client of its own on a thread of its own (a single-threaded runtime):
/// the clock is read as each event arrives, not when a work-stealing runtime shared with the
/// test upstream (which produces the events) and the other clients gets round to it. On the
/// bench's shared runtime the client's reads queued behind the upstream's work, more so when
/// the upstream served the stream over HTTP/2 (as it does to the daemon), and that wait was
/// counted as the proxy's. `tls` is the client's configuration for the side's base URL.
pub(super) async fn ticks_alone(
    side: &Side,
    tls: rustls::ClientConfig,
    n: u64,
    every_us: u64,
) -> anyhow::Result<(Samples, usize)> {
    let mut side = side.clone();
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("sse-ticks-client".into())
        .spawn(move || {
            let outcome = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the SSE client's runtime")
                .and_then(|runtime| {
                    runtime.block_on(async move {
                        // A new client: a pooled connection would still be driven by the
                        // runtime that opened it.
                        side.client = super::load::http1_client(tls)?;
                        ticks(&side, n, every_us).await
                    })
                });
            let _ = done.send(outcome);
        })
        .context("starting the SSE client's thread")?;
    result
        .await
        .context("the SSE client's thread ended without an answer")?
}

/// Per-event latencies of `/raw/ticks` (n events, one every `every_us`), and the most events
/// that arrived in one read (1 = never batched).
async fn ticks(side: &Side, n: u64, every_us: u64) -> anyhow::Result<(Samples, usize)> {
    let started = Instant::now();
    let mut resp = side
        .request(
            Method::GET,
            &format!("/raw/ticks?n={n}&every_us={every_us}&typed=1"),
        )
        .header(ACCEPT, "text/event-stream")
        .send()
        .await?;
    ensure!(
        resp.status() == 200,
        "{} /raw/ticks answered {}",
        side.name,
        resp.status()
    );
    let mut parser = SseParser::new();
    let mut samples = Samples::default();
    let mut most_per_read = 0;
    while let Some(chunk) = resp.chunk().await? {
        let now = now_us();
        let events = parser.push(&chunk);
        most_per_read = most_per_read.max(events.len());
        for e in events {
            ensure!(
                e.event.as_deref() == Some("message"),
                "{} /raw/ticks: an event of type {:?}, not message",
                side.name,
                e.event
            );
            let sent: u64 = e
                .data
                .parse()
                .context("a /raw/ticks event is not a number")?;
            samples
                .latencies
                .push(Duration::from_micros(now.saturating_sub(sent)));
        }
    }
    samples.wall = started.elapsed();
    ensure!(
        samples.latencies.len() as u64 == n,
        "{} /raw/ticks: {} events of {n}",
        side.name,
        samples.latencies.len()
    );
    Ok((samples, most_per_read))
}

/// How close to idle the RSS must come back after the streams close (the target) before
/// the wait for it ends early.
const RSS_SLACK_KIB: u64 = 8 * 1024;

/// What `n` concurrent idle streams cost the process `pid`.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub(super) struct StreamCost {
    pub(super) wanted: u64,
    pub(super) opened: u64,
    pub(super) idle: ProcStat,
    pub(super) open: ProcStat,
    /// After every stream closed and the RSS came back within 8 MiB of idle (or 15 s passed).
    pub(super) after: ProcStat,
    pub(super) open_seconds: f64,
}

impl StreamCost {
    pub(super) fn kib_per_stream(&self) -> f64 {
        (self.open.rss_kib as f64 - self.idle.rss_kib as f64) / self.opened.max(1) as f64
    }
}

/// Opens `n` `/raw/hold` streams through `side` (64 at a time, each within `deadline` of the
/// start), reads `pid` while they are open, closes them all and waits (bounded) for the
/// process's open files to come back to idle.
pub(super) async fn hold_many(
    side: &Side,
    n: u64,
    pid: u32,
    deadline: Duration,
) -> anyhow::Result<StreamCost> {
    let client = super::load::stream_client()?;
    let side = Side {
        client,
        ..side.clone()
    };
    let idle = procstat::read(pid);
    let started = Instant::now();
    let (close_tx, close_rx) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(64));
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::channel::<bool>(1024);
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let side = side.clone();
        let gate = gate.clone();
        let mut close = close_rx.clone();
        let opened = opened_tx.clone();
        tasks.spawn(async move {
            let open = async {
                let _permit = gate.acquire().await.ok()?;
                let mut resp = side
                    .request(Method::GET, "/raw/hold")
                    .header(ACCEPT, "text/event-stream")
                    .send()
                    .await
                    .ok()?;
                (resp.status() == 200).then_some(())?;
                resp.chunk().await.ok()??;
                Some(resp)
            };
            let resp = tokio::time::timeout(deadline, open).await.ok().flatten();
            let _ = opened.send(resp.is_some()).await;
            let _ = close.wait_for(|c| *c).await;
            drop(resp);
        });
    }
    drop(opened_tx);
    let (mut opened, mut answered) = (0, 0);
    while answered < n {
        match opened_rx.recv().await {
            Some(ok) => {
                answered += 1;
                opened += u64::from(ok);
            }
            None => break,
        }
    }
    let open_seconds = started.elapsed().as_secs_f64();
    let open = procstat::read(pid);
    let _ = close_tx.send(true);
    while tasks.join_next().await.is_some() {}
    // Bounded wait for the process to close its side of every connection and for its
    // allocator to hand the memory back (allocators that return memory do so after a delay).
    let settle = Instant::now() + Duration::from_secs(15);
    let settled = |s: &ProcStat| s.fds <= idle.fds + 2 && s.rss_kib <= idle.rss_kib + RSS_SLACK_KIB;
    let mut after = procstat::read(pid);
    while !settled(&after) && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = procstat::read(pid);
    }
    Ok(StreamCost {
        wanted: n,
        opened,
        idle,
        open,
        after,
        open_seconds,
    })
}
