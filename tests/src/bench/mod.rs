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
//! Absolute numbers depend on the machine and its load; the proxy/direct ratios of one run are
//! what to compare.
//!
//! Files by concern: [`daemon`] starts and stops the daemon under test, [`load`] has the
//! clients and the workloads, [`wrk`] prints equivalent `wrk` command lines, [`report`]
//! formats the results.

mod daemon;
mod load;
mod report;
mod wrk;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;

use crate::daemon::Setup;
use crate::upstream::{self, TestUpstream, UpstreamOptions};
use daemon::{daemon_version, find_daemon, Daemon};
use load::{
    http1_client, rpc_call, rpc_run, sse_first_event, upload, versions_since, Samples, Side,
};
use report::{loadavg, Report};

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
pub(crate) struct Args {
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

/// The `mcpproxy-bench` program: parses the arguments, runs, reports.
pub fn main() -> ExitCode {
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
        client: http1_client(crate::tls::client_config_with_roots(
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
    println!("  done: {label}\n");

    report.elapsed = started.elapsed();
    report.load_after = loadavg();
    Ok((env, report))
}
