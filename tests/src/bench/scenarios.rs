//! Each scenario on the three columns (direct, mcpproxyd, nginx), into the report.

use std::time::{Duration, Instant};

use anyhow::Context;

use super::load::{
    count_versions, median, rpc_call, rpc_run, sse_first_event, upload as upload_once,
    versions_since, Samples, Side,
};
use super::procstat::{self, ProcStat};
use super::report::{Kind, Report};
use super::streams::{self, StreamCost};
use super::{wrk, Args, Daemon, Env, MIB, RPC_PATH};

/// Warms every column up: pooled connections, the proxies' upstream connections, lazy state.
pub(super) async fn warm_up(args: &Args, env: &Env, report: &mut Report) -> anyhow::Result<()> {
    let conc = args.concurrency.iter().copied().max().unwrap_or(1).min(64);
    for side in env.sides().into_iter().flatten() {
        let seen_before = env.upstream.requests().len();
        rpc_call(side).await.with_context(|| {
            format!(
                "first request ({}) failed{}",
                side.name,
                env.daemon.stderr_hint()
            )
        })?;
        rpc_run(side, args.warmup.max(conc), conc).await?;
        upload_once(side, MIB).await?;
        sse_first_event(side, &env.upstream).await?;
        if side.name != "direct" {
            let versions = versions_since(&env.upstream, seen_before);
            report.fact(&format!("{} to upstream", side.name), versions);
        }
    }
    if let (Some(sides), Some(up)) = (&env.static_sides, &env.static_up) {
        for side in sides {
            let seen_before = up.logged_protocols().len();
            rpc_call(side)
                .await
                .with_context(|| format!("first request to the static upstream ({})", side.name))?;
            rpc_run(side, args.warmup.max(conc), conc).await?;
            let seen = up.logged_protocols().split_off(seen_before);
            report.fact(
                &format!("{} to the static upstream", side.name),
                count_versions(seen),
            );
        }
    }
    Ok(())
}

/// User and system CPU time spent between two readings.
fn cpu_used(before: ProcStat, after: ProcStat) -> Duration {
    (after.user + after.system).saturating_sub(before.user + before.system)
}

/// One load run of one column.
struct Run {
    per_second: f64,
    p50: Duration,
    p99: Duration,
    requests: u64,
}

/// JSON-RPC `tools/call` at each concurrency: wrk when installed, else the built-in generator;
/// `sides` the three columns' clients, `pids` whose CPU is counted, `label` before `c=…`.
pub(super) async fn rpc(
    args: &Args,
    env: &Env,
    sides: [Option<&Side>; 3],
    pids: [Option<u32>; 3],
    label: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let wrk_bin = wrk::find_in_path("wrk");
    let script = env.setup.path("tools-call.lua");
    if wrk_bin.is_some() {
        wrk::write_script(&script)?;
    }
    match &wrk_bin {
        // Both JSON-RPC scenarios run the same load.
        _ if report.has_fact("JSON-RPC load") => {}
        Some(bin) => {
            report.fact(
                "JSON-RPC load",
                format!(
                    "{} -d{} s per column and round, {} rounds in turn (medians), keep-alive, POST {RPC_PATH}",
                    bin.display(),
                    args.seconds,
                    args.rounds
                ),
            );
        }
        None => {
            report.fact(
                "JSON-RPC load",
                format!(
                    "built-in generator (wrk not installed), {} requests per column and round, {} rounds in turn (medians)",
                    args.requests, args.rounds
                ),
            );
        }
    }
    for &conc in &args.concurrency {
        let problems_before = env.daemon.problems().count;
        let label = format!("JSON-RPC tools/call, {label}c={conc}");
        // Each round runs every column once, in turn: a burst of noise on the shared machine
        // lands on one round of one column, and the medians leave it out.
        let mut runs: [Vec<Run>; 3] = Default::default();
        let mut cpu_total = [Duration::ZERO; 3];
        let mut requests_total = [0u64; 3];
        let mut errors = 0;
        for _ in 0..args.rounds {
            for (i, side) in sides.into_iter().enumerate() {
                let Some(side) = side else { continue };
                let before = pids[i].map(procstat::read);
                let run = match &wrk_bin {
                    Some(bin) => {
                        let url = format!("{}{RPC_PATH}", side.base);
                        let r =
                            wrk::run(bin, &script, &url, side.auth.as_deref(), conc, args.seconds)
                                .await?;
                        errors += r.errors;
                        Run {
                            per_second: r.per_second,
                            p50: r.p50,
                            p99: r.p99,
                            requests: r.requests,
                        }
                    }
                    None => {
                        let s = rpc_run(side, args.requests, conc).await?;
                        Run {
                            per_second: s.per_second(args.requests as f64),
                            p50: s.quantile(0.5),
                            p99: s.quantile(0.99),
                            requests: args.requests,
                        }
                    }
                };
                if let (Some(before), Some(pid)) = (before, pids[i]) {
                    cpu_total[i] += cpu_used(before, procstat::read(pid));
                }
                requests_total[i] += run.requests;
                runs[i].push(run);
            }
        }
        let medians = |f: fn(&Run) -> f64| -> [Option<f64>; 3] {
            std::array::from_fn(|i| median(runs[i].iter().map(f).collect()))
        };
        let as_duration = |v: [Option<f64>; 3]| v.map(|secs| secs.map(Duration::from_secs_f64));
        let rate = medians(|r| r.per_second);
        let p50 = as_duration(medians(|r| r.p50.as_secs_f64()));
        let p99 = as_duration(medians(|r| r.p99.as_secs_f64()));
        let cpu: [Option<f64>; 3] = std::array::from_fn(|i| {
            pids[i].map(|_| cpu_total[i].as_secs_f64() * 1e6 / requests_total[i].max(1) as f64)
        });
        report.row(&label, "requests/s", Kind::Rate, rate);
        report.latency(&label, "p50", p50);
        report.latency(&label, "p99", p99);
        report.row(
            &label,
            "proxy CPU per request (µs, user+sys)",
            Kind::Cost,
            cpu,
        );
        if errors > 0 {
            report.note(format!(
                "{label}: wrk counted {errors} errors or non-2xx answers"
            ));
        }
        let problems = env.daemon.problems().count - problems_before;
        if problems > 0 {
            report.note(format!(
                "{label}: the daemon logged {problems} warnings or errors (see the end)"
            ));
        }
        println!("  done: {label}");
    }
    Ok(())
}

/// A series of streamed uploads, one at a time.
pub(super) async fn upload(args: &Args, env: &Env, report: &mut Report) -> anyhow::Result<()> {
    let size = args.upload_mib * MIB;
    let label = format!("{} MiB POST (streamed), c=1", args.upload_mib);
    let mut rate = [None; 3];
    let mut p50 = [None; 3];
    for (i, side) in env.sides().into_iter().enumerate() {
        let Some(side) = side else { continue };
        let mut samples = Samples::default();
        let t0 = Instant::now();
        for _ in 0..args.uploads {
            let t = Instant::now();
            upload_once(side, size).await?;
            samples.latencies.push(t.elapsed());
        }
        samples.wall = t0.elapsed();
        rate[i] = Some(samples.per_second((args.uploads * args.upload_mib) as f64));
        p50[i] = Some(samples.quantile(0.5));
    }
    report.row(&label, "MiB/s", Kind::Rate, rate);
    report.latency(&label, "p50", p50);
    println!("  done: {label}");
    Ok(())
}

/// Time to the first event of a stream; then per-event latency of long streams (one a round).
pub(super) async fn sse(args: &Args, env: &Env, report: &mut Report) -> anyhow::Result<()> {
    let label = "SSE time to first event, c=1";
    let mut p50 = [None; 3];
    let mut p99 = [None; 3];
    for (i, side) in env.sides().into_iter().enumerate() {
        let Some(side) = side else { continue };
        let mut samples = Samples::default();
        for _ in 0..args.sse_streams {
            samples
                .latencies
                .push(sse_first_event(side, &env.upstream).await?);
        }
        p50[i] = Some(samples.quantile(0.5));
        p99[i] = Some(samples.quantile(0.99));
    }
    report.latency(label, "p50", p50);
    report.latency(label, "p99", p99);
    println!("  done: {label}");

    // The events are split over the rounds, one stream per column a round, in turn; the
    // quantiles are of all of a column's events.
    let per_round = args.ticks.div_ceil(args.rounds).max(1);
    let label = format!(
        "SSE {} events, 1 per {} µs, {} stream(s) per column",
        per_round * args.rounds,
        args.tick_us,
        args.rounds
    );
    let mut events: [Option<Samples>; 3] = Default::default();
    let mut batched = [None; 3];
    for _ in 0..args.rounds {
        for (i, side) in env.sides().into_iter().enumerate() {
            let Some(side) = side else { continue };
            let tls = match i {
                0 => env.upstream.client_config(),
                _ => crate::tls::client_config_with_roots(rustls::RootCertStore::empty()),
            };
            let (samples, most) = streams::ticks_alone(side, tls, per_round, args.tick_us).await?;
            events[i]
                .get_or_insert_with(Samples::default)
                .latencies
                .extend(samples.latencies);
            let most = most as f64;
            batched[i] = Some(batched[i].map_or(most, |m: f64| m.max(most)));
        }
    }
    let p50 = events
        .each_ref()
        .map(|s| s.as_ref().map(|s| s.quantile(0.5)));
    let p99 = events
        .each_ref()
        .map(|s| s.as_ref().map(|s| s.quantile(0.99)));
    report.latency(&label, "per-event p50", p50);
    report.latency(&label, "per-event p99", p99);
    report.row(
        &label,
        "most events in one read (1 = never batched)",
        Kind::Plain,
        batched,
    );
    println!("  done: {label}");
    Ok(())
}

/// The open-file limit of this process (streams need a client and an upstream-side file here).
fn nofile_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        })
        .unwrap_or(1024)
}

/// N concurrent idle SSE streams through each proxy: memory and files per stream, and after.
pub(super) async fn streams(args: &Args, env: &Env, report: &mut Report) -> anyhow::Result<()> {
    // This process holds the client's and the upstream's end of every stream.
    let cap = nofile_limit().saturating_sub(1000) / 2;
    let n = args.streams.min(cap);
    if n < args.streams {
        report.note(format!(
            "concurrent streams: {n} instead of {} (this process's open-file limit is {})",
            args.streams,
            nofile_limit()
        ));
    }
    let label = format!("{n} concurrent idle SSE streams");
    let deadline = Duration::from_secs(if args.quick { 20 } else { 120 });
    let mut costs: [Option<StreamCost>; 3] = [None; 3];
    let pids = [None, env.daemon.pid(), env.nginx_pid()];
    for (i, side) in env.sides().into_iter().enumerate() {
        let (Some(side), Some(pid)) = (side, pids[i]) else {
            continue;
        };
        costs[i] = Some(streams::hold_many(side, n, pid, deadline).await?);
        println!("    {}: {:?}", side.name, costs[i]);
    }
    let col = |f: &dyn Fn(&StreamCost) -> f64| costs.map(|c| c.as_ref().map(f));
    report.row(
        &label,
        "streams opened",
        Kind::Plain,
        col(&|c| c.opened as f64),
    );
    report.row(
        &label,
        "seconds to open them all",
        Kind::Cost,
        col(&|c| c.open_seconds),
    );
    report.row(
        &label,
        "KiB per stream (RSS)",
        Kind::Cost,
        col(&|c| c.kib_per_stream()),
    );
    report.row(
        &label,
        "open files per stream",
        Kind::Cost,
        col(&|c| (c.open.fds as f64 - c.idle.fds as f64) / c.opened.max(1) as f64),
    );
    report.row(
        &label,
        "RSS after close - idle (KiB)",
        Kind::Cost,
        col(&|c| c.after.rss_kib as f64 - c.idle.rss_kib as f64),
    );
    report.row(
        &label,
        "open files after close - idle",
        Kind::Cost,
        col(&|c| c.after.fds as f64 - c.idle.fds as f64),
    );
    println!("  done: {label}");
    Ok(())
}

/// A second daemon with `max_connections = 4`: 4 held streams, then one more request.
pub(super) async fn over_max(env: &Env, report: &mut Report) -> anyhow::Result<()> {
    const MAX: u64 = 4;
    let dir = env.setup.path("over-max");
    std::fs::create_dir_all(&dir)?;
    let config_text = env.setup.static_config(
        &env.upstream,
        &format!("[limits]\nmax_connections = {MAX}\n"),
    )?;
    let config = dir.join("mcpproxyd.toml");
    std::fs::write(&config, config_text)?;
    let mut daemon = Daemon::start(&env.daemon_bin, &config, &dir).await?;
    let side = Side {
        base: format!("http://{}", daemon.addr),
        ..env.proxy.clone()
    };
    let outcome = over_max_outcome(&side, MAX).await;
    daemon.stop().await;
    report.fact(
        &format!("connection {} over max_connections = {MAX}", MAX + 1),
        outcome,
    );
    println!("  done: over max_connections");
    Ok(())
}

async fn over_max_outcome(side: &Side, max: u64) -> String {
    let client = match super::load::stream_client() {
        Ok(c) => c,
        Err(e) => return format!("not measured: {e}"),
    };
    let side = Side {
        client,
        ..side.clone()
    };
    let mut held = Vec::new();
    for _ in 0..max {
        let open = side.request(reqwest::Method::GET, "/raw/hold").send();
        match tokio::time::timeout(Duration::from_secs(10), open).await {
            Ok(Ok(resp)) => held.push(resp),
            _ => {
                return format!(
                    "not measured: stream {} of {max} did not open",
                    held.len() + 1
                )
            }
        }
    }
    let t = Instant::now();
    let one_more = side
        .request(reqwest::Method::POST, RPC_PATH)
        .body(super::RPC_BODY)
        .send();
    let outcome = match tokio::time::timeout(Duration::from_secs(3), one_more).await {
        Ok(Ok(resp)) => format!(
            "answered {} in {:.1} ms",
            resp.status(),
            t.elapsed().as_secs_f64() * 1e3
        ),
        Ok(Err(e)) => format!("refused in {:.1} ms ({e})", t.elapsed().as_secs_f64() * 1e3),
        Err(_) => "no answer within 3 s: the client hangs in the accept backlog".to_owned(),
    };
    drop(held);
    outcome
}
