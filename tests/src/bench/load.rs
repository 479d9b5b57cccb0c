//! The clients and the workloads: JSON-RPC calls, streamed uploads, SSE streams.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use bytes::Bytes;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use tokio::task::JoinSet;

use super::{REQUEST_TIMEOUT, RPC_BODY, RPC_PATH};
use crate::sse::SseParser;
use crate::upstream::TestUpstream;

/// A pooled HTTP/1.1 keep-alive client (ALPN offers only `http/1.1`).
pub(super) fn http1_client(mut tls: rustls::ClientConfig) -> anyhow::Result<reqwest::Client> {
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .http1_only()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(300))
        .connect_timeout(Duration::from_secs(5))
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("building the HTTP client")
}

/// One way to reach the upstream.
#[derive(Clone)]
pub(super) struct Side {
    pub(super) name: &'static str,
    pub(super) client: reqwest::Client,
    pub(super) base: String,
    /// The bearer header for direct access; the proxy adds its own.
    pub(super) auth: Option<String>,
}

impl Side {
    pub(super) fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.client.request(method, format!("{}{path}", self.base));
        match &self.auth {
            Some(auth) => builder.header(AUTHORIZATION, auth),
            None => builder,
        }
    }
}

/// Latencies of one measurement and its wall-clock time.
#[derive(Default)]
pub(super) struct Samples {
    pub(super) latencies: Vec<Duration>,
    pub(super) wall: Duration,
}

impl Samples {
    /// `amount` (requests, MiB) per second of wall-clock time.
    pub(super) fn per_second(&self, amount: f64) -> f64 {
        amount / self.wall.as_secs_f64().max(1e-9)
    }

    /// Nearest-rank quantile.
    pub(super) fn quantile(&self, q: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = (q * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }
}

/// The middle value (the upper one of an even count); `None` for none.
pub(super) fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    (!v.is_empty()).then(|| v[v.len() / 2])
}

/// One echo `tools/call`; checks the answer.
pub(super) async fn rpc_call(side: &Side) -> anyhow::Result<()> {
    let resp = side
        .request(Method::POST, RPC_PATH)
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "application/json, text/event-stream")
        .body(RPC_BODY)
        .send()
        .await?;
    let status = resp.status();
    let body = resp.bytes().await?;
    ensure!(
        status == 200,
        "{} /raw/rpc answered {status}: {}",
        side.name,
        String::from_utf8_lossy(&body[..body.len().min(300)])
    );
    let value: serde_json::Value = serde_json::from_slice(&body)
        .with_context(|| format!("{} /raw/rpc: the answer is not JSON", side.name))?;
    ensure!(
        value["result"]["content"][0]["text"].is_string(),
        "{} /raw/rpc: unexpected answer {value}",
        side.name
    );
    Ok(())
}

/// `n` calls by `conc` workers sharing one counter.
pub(super) async fn rpc_run(side: &Side, n: u64, conc: u64) -> anyhow::Result<Samples> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = JoinSet::new();
    for _ in 0..conc {
        let side = side.clone();
        let next = next.clone();
        workers.spawn(async move {
            let mut latencies = Vec::with_capacity((n / conc + 1) as usize);
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let t = Instant::now();
                rpc_call(&side).await?;
                latencies.push(t.elapsed());
            }
            anyhow::Ok(latencies)
        });
    }
    let mut samples = Samples::default();
    while let Some(joined) = workers.join_next().await {
        samples
            .latencies
            .extend(joined.context("worker panicked")??);
    }
    samples.wall = started.elapsed();
    Ok(samples)
}

/// POSTs `size` bytes to `/raw/count` as a stream of 64 KiB chunks (chunked encoding).
pub(super) async fn upload(side: &Side, size: u64) -> anyhow::Result<()> {
    const CHUNK: usize = 64 * 1024;
    let chunk = Bytes::from(vec![b'x'; CHUNK]);
    let mut left = size as usize;
    let chunks = std::iter::from_fn(move || {
        (left > 0).then(|| {
            let n = left.min(CHUNK);
            left -= n;
            Ok::<_, std::io::Error>(chunk.slice(..n))
        })
    });
    let resp = side
        .request(Method::POST, "/raw/count")
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await?;
    let status = resp.status();
    let body = resp.bytes().await?;
    ensure!(
        status == 200,
        "{} /raw/count answered {status}: {}",
        side.name,
        String::from_utf8_lossy(&body[..body.len().min(300)])
    );
    let value: serde_json::Value = serde_json::from_slice(&body)?;
    ensure!(
        value["bytes"] == size,
        "{} /raw/count counted {value}, sent {size} bytes",
        side.name
    );
    Ok(())
}

/// Opens `/raw/slow-sse` and times the first event (`one`); then lets the upstream finish
/// the stream and reads it to its end, so the connection goes back to the pool.
pub(super) async fn sse_first_event(
    side: &Side,
    upstream: &TestUpstream,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut resp = side
        .request(Method::GET, "/raw/slow-sse")
        .header(ACCEPT, "text/event-stream")
        .send()
        .await?;
    ensure!(
        resp.status() == 200,
        "{} /raw/slow-sse answered {}",
        side.name,
        resp.status()
    );
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    while events.is_empty() {
        let chunk = resp
            .chunk()
            .await?
            .with_context(|| format!("{} /raw/slow-sse ended before an event", side.name))?;
        events.extend(parser.push(&chunk));
    }
    let first = started.elapsed();
    ensure!(
        events[0].data == "one",
        "{} /raw/slow-sse: first event {:?}",
        side.name,
        events[0].data
    );
    upstream.release();
    upstream.release();
    while let Some(chunk) = resp.chunk().await? {
        events.extend(parser.push(&chunk));
    }
    ensure!(
        events.len() == 2 && events[1].data == "two",
        "{} /raw/slow-sse: events {events:?}",
        side.name
    );
    Ok(first)
}

/// HTTP versions of the upstream's requests after the first `since`, with counts.
pub(super) fn versions_since(upstream: &TestUpstream, since: usize) -> String {
    count_versions(
        upstream
            .requests()
            .into_iter()
            .skip(since)
            .map(|r| r.version),
    )
}

/// "HTTP/2.0 for 3 requests, HTTP/1.1 for 1 requests": each version and how often, in order.
pub(super) fn count_versions(versions: impl IntoIterator<Item = String>) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for version in versions {
        match counts.iter_mut().find(|(v, _)| *v == version) {
            Some((_, n)) => *n += 1,
            None => counts.push((version, 1)),
        }
    }
    counts
        .iter()
        .map(|(v, n)| format!("{v} for {n} requests"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A plain-HTTP client for the proxies that keeps no idle connection: every held stream has
/// its own connection, closed when the stream is dropped.
pub(super) fn stream_client() -> anyhow::Result<reqwest::Client> {
    let mut tls = crate::tls::client_config_with_roots(rustls::RootCertStore::empty());
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .http1_only()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .context("building the stream client")
}
