//! `mcpproxy-bench`: what the proxy costs, measured in one run against the same upstream.
//!
//! Starts the in-process test MCP upstream (HTTPS, test CA, a bearer token) and the real
//! `mcpproxyd` binary with a static-token config, both on ephemeral loopback ports, then runs
//! each workload twice with the same client code: direct to the upstream (HTTPS + bearer) and
//! through the proxy (plain HTTP). Each side has one reqwest client with a pooled HTTP/1.1
//! keep-alive connection set, warmed up before anything is timed.
//!
//! Workloads: a small JSON-RPC `tools/call` (echo) to `/mcp-demo` at each concurrency level;
//! a streamed POST of a large body to `/raw/count`; time to the first server-sent event of
//! `/raw/slow-sse`. Everything is bounded in count and in time (`--max-seconds`).
//!
//! A second daemon with a `[[policy]]` measures the tool policy's cost (see `bench/policy.rs`).
//!
//! Absolute numbers depend on the machine and its load; the proxy/direct ratios of one run are
//! what to compare.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context};
use bytes::Bytes;
use clap::Parser;
use mcpproxy_tests::daemon::Setup;
use mcpproxy_tests::sse::SseParser;
use mcpproxy_tests::upstream::{self, TestUpstream, UpstreamOptions};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;

#[path = "bench/policy.rs"]
mod policy;

/// How long the daemon may take to print its banner.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Any single request (or stream) taking longer than this fails the run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The daemon's `[limits] max_request_body` default: uploads must stay below it.
const MAX_UPLOAD_MIB: u64 = 15;
const MIB: u64 = 1024 * 1024;
/// The `tools/call` every JSON-RPC request sends.
const RPC_BODY: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"bench"}}}"#;

/// Measures mcpproxyd against direct access to the same in-process test MCP upstream.
///
/// Everything runs on loopback with ephemeral ports. The daemon is the real binary:
/// target/release/mcpproxyd if it exists, else target/debug/mcpproxyd (not representative).
/// The machine's noise affects both sides: compare the proxy/direct ratios of one run.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// JSON-RPC requests per side at each concurrency level.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    requests: u64,
    /// Concurrency levels of the JSON-RPC workload (comma-separated, each 1..=256).
    #[arg(long, value_delimiter = ',', default_value = "1,32",
          value_parser = clap::value_parser!(u64).range(1..=256))]
    concurrency: Vec<u64>,
    /// Streamed uploads to /raw/count per side (one at a time).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    uploads: u64,
    /// Size of each upload in MiB (the daemon refuses bodies over 16 MiB by default).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=MAX_UPLOAD_MIB))]
    upload_mib: u64,
    /// SSE streams per side (one at a time; each is read to its end).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    sse_streams: u64,
    /// Warm-up JSON-RPC requests per side, at the highest concurrency level.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    warmup: u64,
    /// Also write the results as Markdown to FILE.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// The daemon binary (default: target/release/mcpproxyd, else target/debug/mcpproxyd,
    /// beside this binary's target directory).
    #[arg(long, value_name = "PATH")]
    daemon: Option<PathBuf>,
    /// The daemon's `[log] level`; `info` logs one line per request, as in production.
    #[arg(long, default_value = "info", value_name = "FILTER")]
    daemon_log: String,
    /// Give up (exit 1) if setup and measuring take longer than this many seconds.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    max_seconds: u64,
    /// After measuring, keep the upstream and the daemon running until Ctrl-C (to run the
    /// printed wrk commands against them).
    #[arg(long)]
    hold: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mcpproxy-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcpproxy-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let budget = Duration::from_secs(args.max_seconds);
    let (mut env, report) = match tokio::time::timeout(budget, setup_and_measure(&args)).await {
        Ok(result) => result?,
        Err(_) => bail!(
            "gave up after {} s (--max-seconds); the machine may be overloaded",
            args.max_seconds
        ),
    };
    print!("{}", report.text());
    if let Some(path) = &args.markdown {
        std::fs::write(path, report.markdown())
            .with_context(|| format!("writing {}", path.display()))?;
        println!("\nMarkdown written to {}", path.display());
    }
    env.print_wrk_commands()?;
    if args.hold {
        println!(
            "\nHolding: upstream {} and proxy http://{} run until Ctrl-C.",
            env.upstream.base_url(),
            env.daemon.addr
        );
        tokio::signal::ctrl_c().await?;
    }
    env.daemon.stop().await;
    Ok(())
}

/// The servers under test and the two clients.
struct Env {
    upstream: Arc<TestUpstream>,
    daemon: Daemon,
    direct: Side,
    proxy: Side,
    setup: Setup,
}

async fn setup_and_measure(args: &Args) -> anyhow::Result<(Env, Report)> {
    let started = Instant::now();
    let mut report = Report::new(args);
    let daemon_bin = find_daemon(args.daemon.as_deref())?;
    report.daemon_bin = daemon_bin.display().to_string();
    report.daemon_debug = daemon_bin
        .parent()
        .is_some_and(|dir| dir.ends_with("debug"));
    println!("Daemon: {}", daemon_bin.display());
    if report.daemon_debug {
        println!(
            "WARNING: this is a debug build of mcpproxyd: its numbers are not representative."
        );
        println!("         Build it with `cargo build --release -p mcpproxyd` first.");
    }
    if cfg!(debug_assertions) {
        println!("WARNING: mcpproxy-bench itself is a debug build: the client and the upstream are slow.");
    }
    report.daemon_version = daemon_version(&daemon_bin).await;

    let upstream = Arc::new(
        upstream::start(UpstreamOptions {
            tls: true,
            token: upstream::random_hex(),
            ..Default::default()
        })
        .await
        .context("starting the test upstream")?,
    );
    let setup = Setup::new()?;
    let extra = format!("[log]\nlevel = {:?}\n", args.daemon_log);
    let config = setup.write_config(&setup.static_config(&upstream, &extra)?)?;
    let daemon = Daemon::start(&daemon_bin, &config, setup.dir.path()).await?;
    println!("Upstream: {}", upstream.base_url());
    println!("Proxy:    http://{}", daemon.addr);

    let direct = Side {
        name: "direct",
        client: http1_client(upstream.client_config())?,
        base: upstream.base_url().to_owned(),
        auth: Some(format!("Bearer {}", upstream.token())),
    };
    let proxy = Side {
        name: "proxy",
        client: http1_client(mcpproxy_tests::tls::client_config_with_roots(
            rustls::RootCertStore::empty(),
        ))?,
        base: format!("http://{}", daemon.addr),
        auth: None,
    };
    let env = Env {
        upstream,
        daemon,
        direct,
        proxy,
        setup,
    };

    // Warm up both sides: pooled connections, the proxy's upstream connections, lazy state.
    let warm_conc = args.concurrency.iter().copied().max().unwrap_or(1);
    for side in [&env.direct, &env.proxy] {
        let seen_before = env.upstream.requests().len();
        rpc_call(side).await.with_context(|| {
            format!(
                "first request ({}) failed{}",
                side.name,
                env.daemon.stderr_hint()
            )
        })?;
        rpc_run(side, args.warmup.max(warm_conc), warm_conc).await?;
        upload(side, MIB).await?;
        sse_first_event(side, &env.upstream).await?;
        if side.name == "proxy" {
            report.proxy_upstream_versions = versions_since(&env.upstream, seen_before);
        }
    }
    println!("Warmed up; measuring.\n");

    for &conc in &args.concurrency {
        let label = format!("JSON-RPC tools/call, c={conc}");
        let direct = rpc_run(&env.direct, args.requests, conc).await?;
        let proxy = rpc_run(&env.proxy, args.requests, conc).await?;
        report.rate(
            &label,
            "requests/s",
            direct.per_second(args.requests as f64),
            proxy.per_second(args.requests as f64),
        );
        report.latency(&label, "p50", direct.quantile(0.50), proxy.quantile(0.50));
        report.latency(&label, "p99", direct.quantile(0.99), proxy.quantile(0.99));
        println!("  done: {label}");
    }

    let size = args.upload_mib * MIB;
    let label = format!("{} MiB POST (streamed), c=1", args.upload_mib);
    let mut up = Vec::new();
    for side in [&env.direct, &env.proxy] {
        let mut samples = Samples::default();
        let t0 = Instant::now();
        for _ in 0..args.uploads {
            let t = Instant::now();
            upload(side, size).await?;
            samples.latencies.push(t.elapsed());
        }
        samples.wall = t0.elapsed();
        up.push(samples);
    }
    let mib_total = (args.uploads * args.upload_mib) as f64;
    report.rate(
        &label,
        "MiB/s",
        up[0].per_second(mib_total),
        up[1].per_second(mib_total),
    );
    report.latency(&label, "p50", up[0].quantile(0.5), up[1].quantile(0.5));
    report.latency(&label, "p99", up[0].quantile(0.99), up[1].quantile(0.99));
    println!("  done: {label}");

    let label = "SSE time to first event, c=1".to_owned();
    let mut sse = Vec::new();
    for side in [&env.direct, &env.proxy] {
        let mut samples = Samples::default();
        let t0 = Instant::now();
        for _ in 0..args.sse_streams {
            samples
                .latencies
                .push(sse_first_event(side, &env.upstream).await?);
        }
        samples.wall = t0.elapsed();
        sse.push(samples);
    }
    report.latency(&label, "p50", sse[0].quantile(0.5), sse[1].quantile(0.5));
    report.latency(&label, "p99", sse[0].quantile(0.99), sse[1].quantile(0.99));
    println!("  done: {label}");

    let mut pol = policy::measure(args, &env, &daemon_bin).await?;
    report.policy_text = pol.render(false);
    report.policy_markdown = pol.render(true);
    pol.stop().await;
    println!();

    report.elapsed = started.elapsed();
    report.load_after = loadavg();
    Ok((env, report))
}

// === the daemon ===

/// `--daemon`, else `mcpproxyd` in the release, then the debug directory of the target
/// directory this binary was built into.
fn find_daemon(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        ensure!(path.exists(), "--daemon {}: no such file", path.display());
        return Ok(path.to_path_buf());
    }
    let exe = std::env::current_exe().context("finding this executable")?;
    let mut dir = exe.parent().context("executable directory")?.to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let target = dir.parent().context("target directory")?;
    let candidates = ["release", "debug"].map(|p| target.join(p).join("mcpproxyd"));
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .with_context(|| {
            format!(
                "mcpproxyd not found ({} nor {}): run `cargo build --release -p mcpproxyd` first",
                candidates[0].display(),
                candidates[1].display()
            )
        })
}

async fn daemon_version(bin: &Path) -> String {
    let out = Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .output();
    match tokio::time::timeout(Duration::from_secs(10), out).await {
        Ok(Ok(out)) => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        _ => "unknown".to_owned(),
    }
}

/// The running daemon; killed when dropped.
struct Daemon {
    child: Child,
    addr: SocketAddr,
    /// The last lines the daemon wrote to stderr.
    stderr_tail: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    const TAIL: usize = 40;

    /// `BIN --config CONFIG --port 0`, its runtime and state directories under `dir`; waits
    /// for the banner's `Listen:` line.
    async fn start(bin: &Path, config: &Path, dir: &Path) -> anyhow::Result<Daemon> {
        let runtime_dir = dir.join("run");
        let state_dir = dir.join("state");
        for d in [&runtime_dir, &state_dir] {
            std::fs::create_dir_all(d)?;
        }
        let mut child = Command::new(bin)
            .arg("--config")
            .arg(config)
            .arg("--port")
            .arg("0")
            .env("RUNTIME_DIRECTORY", &runtime_dir)
            .env("STATE_DIRECTORY", &state_dir)
            .env_remove("RUST_LOG")
            .env_remove("JOURNAL_STREAM")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("INVOCATION_ID")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run {}", bin.display()))?;
        let stderr_tail = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().context("daemon stderr")?;
        let tail = stderr_tail.clone();
        let stderr_reader = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
                if t.len() == Self::TAIL {
                    t.remove(0);
                }
                t.push(line);
            }
        });
        let stdout = child.stdout.take().context("daemon stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let read_banner = async {
            let mut addr = None;
            while let Some(line) = lines.next_line().await? {
                if let Some(a) = line.strip_prefix("Listen: ") {
                    addr.get_or_insert(a.trim().parse::<SocketAddr>()?);
                }
                if line.is_empty() {
                    break;
                }
            }
            anyhow::Ok(addr)
        };
        let outcome = tokio::time::timeout(START_TIMEOUT, read_banner).await;
        let mut daemon = Daemon {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr_tail,
        };
        let why = match outcome {
            Ok(Ok(Some(addr))) => {
                daemon.addr = addr;
                // Keep draining stdout so the daemon never blocks on a full pipe.
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                return Ok(daemon);
            }
            Ok(Ok(None)) => "it printed no `Listen:` line".to_owned(),
            Ok(Err(e)) => format!("reading its banner failed: {e}"),
            Err(_) => format!("no banner within {START_TIMEOUT:?}"),
        };
        let status = match tokio::time::timeout(Duration::from_secs(2), daemon.child.wait()).await {
            Ok(Ok(status)) => format!("it exited ({status})"),
            _ => {
                daemon.stop().await;
                "it was stopped".to_owned()
            }
        };
        // The reader ends when the daemon's stderr closes, i.e. once it has taken the last lines.
        let _ = tokio::time::timeout(Duration::from_secs(2), stderr_reader).await;
        bail!(
            "the daemon {} did not start: {why}; {status}{}",
            bin.display(),
            daemon.stderr_hint()
        )
    }

    /// The stderr tail, formatted for an error message (empty when there is none).
    fn stderr_hint(&self) -> String {
        let tail = self.stderr_tail.lock().unwrap_or_else(|e| e.into_inner());
        if tail.is_empty() {
            String::new()
        } else {
            format!("\n--- daemon stderr (last lines) ---\n{}", tail.join("\n"))
        }
    }

    async fn stop(&mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

// === clients and workloads ===

/// A pooled HTTP/1.1 keep-alive client (ALPN offers only `http/1.1`).
fn http1_client(mut tls: rustls::ClientConfig) -> anyhow::Result<reqwest::Client> {
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
struct Side {
    name: &'static str,
    client: reqwest::Client,
    base: String,
    /// The bearer header for direct access; the proxy adds its own.
    auth: Option<String>,
}

impl Side {
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.client.request(method, format!("{}{path}", self.base));
        match &self.auth {
            Some(auth) => builder.header(AUTHORIZATION, auth),
            None => builder,
        }
    }
}

/// Latencies of one measurement and its wall-clock time.
#[derive(Default)]
struct Samples {
    latencies: Vec<Duration>,
    wall: Duration,
}

impl Samples {
    /// `amount` (requests, MiB) per second of wall-clock time.
    fn per_second(&self, amount: f64) -> f64 {
        amount / self.wall.as_secs_f64().max(1e-9)
    }

    /// Nearest-rank quantile.
    fn quantile(&self, q: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = (q * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }
}

/// One echo `tools/call`; checks the answer.
async fn rpc_call(side: &Side) -> anyhow::Result<()> {
    let resp = side
        .request(Method::POST, "/mcp-demo")
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "application/json, text/event-stream")
        .body(RPC_BODY)
        .send()
        .await?;
    let status = resp.status();
    let body = resp.bytes().await?;
    ensure!(
        status == 200,
        "{} /mcp-demo answered {status}: {}",
        side.name,
        String::from_utf8_lossy(&body[..body.len().min(300)])
    );
    let value: serde_json::Value = serde_json::from_slice(&body)
        .with_context(|| format!("{} /mcp-demo: the answer is not JSON", side.name))?;
    ensure!(
        value["result"]["content"][0]["text"] == "bench",
        "{} /mcp-demo: unexpected answer {value}",
        side.name
    );
    Ok(())
}

/// `n` calls by `conc` workers sharing one counter.
async fn rpc_run(side: &Side, n: u64, conc: u64) -> anyhow::Result<Samples> {
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
async fn upload(side: &Side, size: u64) -> anyhow::Result<()> {
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
async fn sse_first_event(side: &Side, upstream: &TestUpstream) -> anyhow::Result<Duration> {
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
fn versions_since(upstream: &TestUpstream, since: usize) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for r in upstream.requests().into_iter().skip(since) {
        match counts.iter_mut().find(|(v, _)| *v == r.version) {
            Some((_, n)) => *n += 1,
            None => counts.push((r.version, 1)),
        }
    }
    counts
        .iter()
        .map(|(v, n)| format!("{v} for {n} requests"))
        .collect::<Vec<_>>()
        .join(", ")
}

// === wrk ===

impl Env {
    /// If `wrk` is installed: the equivalent JSON-RPC load as wrk command lines.
    fn print_wrk_commands(&self) -> anyhow::Result<()> {
        let Some(wrk) = find_in_path("wrk") else {
            println!("\n(wrk not found on PATH: no wrk command lines for an independent check.)");
            return Ok(());
        };
        let script = self.setup.path("tools-call.lua");
        std::fs::write(
            &script,
            format!(
                "wrk.method = \"POST\"\nwrk.body = '{RPC_BODY}'\n\
                 wrk.headers[\"Content-Type\"] = \"application/json\"\n\
                 wrk.headers[\"Accept\"] = \"application/json, text/event-stream\"\n"
            ),
        )?;
        let script = script.display();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        println!(
            "\nwrk ({}) command lines for the same JSON-RPC load; they need the servers, which \
             stop when this program ends (run it with --hold to keep them):",
            wrk.display()
        );
        println!(
            "  wrk -t{threads} -c32 -d10s --latency -s {script} -H 'Authorization: Bearer {}' {}/mcp-demo",
            self.upstream.token(),
            self.upstream.base_url()
        );
        println!(
            "  wrk -t{threads} -c32 -d10s --latency -s {script} http://{}/mcp-demo",
            self.daemon.addr
        );
        Ok(())
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

// === the report ===

enum Kind {
    /// More is better; the ratio is proxy/direct.
    Rate,
    /// Less is better; also shows the time the proxy adds.
    Latency,
}

struct Row {
    workload: String,
    metric: String,
    kind: Kind,
    direct: f64,
    proxy: f64,
}

struct Report {
    date: String,
    command: String,
    nproc: usize,
    cpu: String,
    kernel: String,
    load_before: String,
    load_after: String,
    daemon_bin: String,
    daemon_version: String,
    daemon_debug: bool,
    daemon_log: String,
    proxy_upstream_versions: String,
    settings: String,
    rows: Vec<Row>,
    /// The tool policy table, as text and as Markdown.
    policy_text: String,
    policy_markdown: String,
    elapsed: Duration,
}

impl Report {
    fn new(args: &Args) -> Report {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("unknown".to_owned(), |(_, m)| m.trim().to_owned());
        let concurrency: Vec<String> = args.concurrency.iter().map(u64::to_string).collect();
        Report {
            date: utc_now(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or("unknown".to_owned(), |s| s.trim().to_owned()),
            load_before: loadavg(),
            load_after: String::new(),
            daemon_bin: String::new(),
            daemon_version: String::new(),
            daemon_debug: false,
            daemon_log: args.daemon_log.clone(),
            proxy_upstream_versions: String::new(),
            settings: format!(
                "{} JSON-RPC requests per side at concurrency {}; {} uploads of {} MiB; \
                 {} SSE streams; {} warm-up requests per side",
                args.requests,
                concurrency.join(", "),
                args.uploads,
                args.upload_mib,
                args.sse_streams,
                args.warmup
                    .max(args.concurrency.iter().copied().max().unwrap_or(1)),
            ),
            rows: Vec::new(),
            policy_text: String::new(),
            policy_markdown: String::new(),
            elapsed: Duration::ZERO,
        }
    }

    fn rate(&mut self, workload: &str, metric: &str, direct: f64, proxy: f64) {
        self.rows.push(Row {
            workload: workload.to_owned(),
            metric: metric.to_owned(),
            kind: Kind::Rate,
            direct,
            proxy,
        });
    }

    fn latency(&mut self, workload: &str, metric: &str, direct: Duration, proxy: Duration) {
        self.rows.push(Row {
            workload: workload.to_owned(),
            metric: format!("{metric} latency (ms)"),
            kind: Kind::Latency,
            direct: direct.as_secs_f64() * 1000.0,
            proxy: proxy.as_secs_f64() * 1000.0,
        });
    }

    /// Cells: workload, metric, direct, proxy, proxy/direct, added by the proxy.
    fn cells(&self) -> Vec<[String; 6]> {
        self.rows
            .iter()
            .map(|r| {
                let ratio = if r.direct > 0.0 {
                    format!("{:.2}x", r.proxy / r.direct)
                } else {
                    "-".to_owned()
                };
                let (direct, proxy, added) = match r.kind {
                    Kind::Rate => (
                        format!("{:.1}", r.direct),
                        format!("{:.1}", r.proxy),
                        String::new(),
                    ),
                    Kind::Latency => (
                        format!("{:.3}", r.direct),
                        format!("{:.3}", r.proxy),
                        format!("{:+.3} ms", r.proxy - r.direct),
                    ),
                };
                [
                    r.workload.clone(),
                    r.metric.clone(),
                    direct,
                    proxy,
                    ratio,
                    added,
                ]
            })
            .collect()
    }

    const HEADERS: [&'static str; 6] = [
        "workload",
        "metric",
        "direct",
        "proxy",
        "proxy/direct",
        "added by proxy",
    ];

    fn facts(&self) -> Vec<(&'static str, String)> {
        let mut daemon = format!("{} ({})", self.daemon_bin, self.daemon_version);
        if self.daemon_debug {
            daemon.push_str(": DEBUG BUILD, not representative");
        }
        vec![
            ("date (UTC)", self.date.clone()),
            ("command", self.command.clone()),
            ("machine", format!("nproc {}, {}", self.nproc, self.cpu)),
            ("kernel", self.kernel.clone()),
            (
                "load average (1/5/15 min)",
                format!("{} before, {} after", self.load_before, self.load_after),
            ),
            ("daemon", daemon),
            ("daemon log level", self.daemon_log.clone()),
            (
                "bench build",
                if cfg!(debug_assertions) {
                    "debug (not representative)"
                } else {
                    "release"
                }
                .to_owned(),
            ),
            (
                "clients",
                "reqwest, one pooled HTTP/1.1 keep-alive client per side; direct = HTTPS + \
                 bearer to the in-process test upstream, proxy = plain HTTP to mcpproxyd"
                    .to_owned(),
            ),
            (
                "proxy to upstream",
                format!(
                    "{} (mcpproxyd offers h2 and http/1.1 by ALPN)",
                    self.proxy_upstream_versions
                ),
            ),
            ("settings", self.settings.clone()),
            ("run time", format!("{:.1} s", self.elapsed.as_secs_f64())),
        ]
    }

    fn text(&self) -> String {
        let mut out = String::new();
        for (k, v) in self.facts() {
            let _ = writeln!(out, "{:<26} {v}", format!("{k}:"));
        }
        out.push('\n');
        let cells = self.cells();
        let mut widths = Self::HEADERS.map(str::len);
        for row in &cells {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.len());
            }
        }
        let line = |row: &[String]| {
            let mut s = String::new();
            for (i, (c, w)) in row.iter().zip(widths).enumerate() {
                if i < 2 {
                    let _ = write!(s, "{c:<w$}  ");
                } else {
                    let _ = write!(s, "{c:>w$}  ");
                }
            }
            s.trim_end().to_owned()
        };
        let headers = Self::HEADERS.map(str::to_owned);
        let _ = writeln!(out, "{}", line(&headers));
        let _ = writeln!(out, "{}", "-".repeat(widths.iter().sum::<usize>() + 10));
        for row in &cells {
            let _ = writeln!(out, "{}", line(row));
        }
        out.push_str(&self.policy_text);
        out.push_str(
            "\nRates: higher is better (ratio < 1 = the proxy is slower). Latencies: lower is \
             better.\nThe machine may be shared and noisy: compare the ratios of one run, not \
             absolute numbers across runs.\n",
        );
        out
    }

    fn markdown(&self) -> String {
        let mut out = String::new();
        for (k, v) in self.facts() {
            let v = if k == "command" { format!("`{v}`") } else { v };
            let _ = writeln!(out, "- {k}: {v}");
        }
        out.push('\n');
        let _ = writeln!(out, "| {} |", Self::HEADERS.join(" | "));
        let _ = writeln!(out, "|---|---|--:|--:|--:|--:|");
        for row in self.cells() {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        out.push_str(&self.policy_markdown);
        out.push_str(
            "\nRates: higher is better (ratio < 1 = the proxy is slower). Latencies: lower is \
             better. The machine may be shared and noisy: compare the ratios of one run, not \
             absolute numbers across runs.\n",
        );
        out
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}
