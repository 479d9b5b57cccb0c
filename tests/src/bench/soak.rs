//! The soak: the daemon under a mixed load for `--soak-seconds`, in cycles, its RSS and open
//! files read after every cycle. A daemon that runs for months must come back to the same
//! footprint after each cycle: a leak shows as a climb from the first cycle's end to the
//! last's, whatever the machine's speed.

use std::time::{Duration, Instant};

use anyhow::Context;

use super::procstat::{self, ProcStat};
use super::report::{Kind, Report};
use super::{load, streams, Args, Env, MIB};

/// What one cycle does, at most (`--quick` and small `--requests`, `--streams`, `--uploads`
/// shrink it).
const CYCLE_CALLS: u64 = 2000;
const CYCLE_STREAMS: u64 = 64;
const CYCLE_UPLOADS: u64 = 4;
/// Concurrency of the cycle's `tools/call`s.
const CYCLE_CONCURRENCY: u64 = 32;

/// What the soak saw.
#[derive(Debug, Default)]
struct Soak {
    /// The daemon after each cycle.
    after: Vec<ProcStat>,
    calls: u64,
    streams: u64,
    uploads: u64,
}

impl Soak {
    fn first(&self) -> ProcStat {
        self.after.first().copied().unwrap_or_default()
    }

    fn last(&self) -> ProcStat {
        self.after.last().copied().unwrap_or_default()
    }
}

/// Cycles of `tools/call`s at c=32 (each answer checked), SSE streams opened together and
/// closed, and streamed 1 MiB uploads, through the main daemon, until `--soak-seconds` have
/// passed (at least one cycle).
pub(super) async fn soak(args: &Args, env: &Env, report: &mut Report) -> anyhow::Result<()> {
    let pid = env.daemon.pid().context("the daemon's pid")?;
    let calls = args.requests.min(CYCLE_CALLS);
    let n_streams = args.streams.min(CYCLE_STREAMS);
    let uploads = args.uploads.min(CYCLE_UPLOADS);
    let stream_deadline = Duration::from_secs(if args.quick { 20 } else { 60 });
    let problems_before = env.daemon.problems().count;
    let started = Instant::now();
    let until = started + Duration::from_secs(args.soak_seconds);
    let before = procstat::read(pid);
    let mut soak = Soak::default();
    loop {
        soak.calls += load::rpc_run(&env.proxy, calls, CYCLE_CONCURRENCY)
            .await?
            .latencies
            .len() as u64;
        let held = streams::hold_many(&env.proxy, n_streams, pid, stream_deadline).await?;
        anyhow::ensure!(
            held.opened == n_streams,
            "soak: {} of {n_streams} SSE streams opened",
            held.opened
        );
        soak.streams += held.opened;
        for _ in 0..uploads {
            load::upload(&env.proxy, MIB).await?;
        }
        soak.uploads += uploads;
        soak.after.push(procstat::read(pid));
        if Instant::now() >= until {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let label = format!(
        "soak, {seconds:.0} s: {} cycles of {calls} tools/calls at c={CYCLE_CONCURRENCY}, {n_streams} SSE streams, {uploads} x 1 MiB uploads",
        soak.after.len()
    );
    let only = |v: f64| [None, Some(v), None];
    let kib = |s: ProcStat| s.rss_kib as f64;
    report.row(
        &label,
        "requests (calls + streams + uploads)",
        Kind::Plain,
        only((soak.calls + soak.streams + soak.uploads) as f64),
    );
    report.row(&label, "RSS before (KiB)", Kind::Cost, only(kib(before)));
    report.row(
        &label,
        "RSS after the first cycle (KiB)",
        Kind::Cost,
        only(kib(soak.first())),
    );
    report.row(
        &label,
        "RSS after the last cycle (KiB)",
        Kind::Cost,
        only(kib(soak.last())),
    );
    report.row(
        &label,
        "RSS growth, first cycle to last (KiB)",
        Kind::Cost,
        only(kib(soak.last()) - kib(soak.first())),
    );
    // The first cycles also warm the daemon up (its allocator's arenas, its upstream
    // connections): the second half is the cleaner leak signal.
    let middle = soak.after[soak.after.len() / 2];
    report.row(
        &label,
        "RSS growth over the second half of the cycles (KiB)",
        Kind::Cost,
        only(kib(soak.last()) - kib(middle)),
    );
    let highest = soak.after.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    report.row(
        &label,
        "highest RSS after a cycle (KiB)",
        Kind::Cost,
        only(highest as f64),
    );
    report.row(
        &label,
        "open files after the last cycle - before",
        Kind::Plain,
        only(soak.last().fds as f64 - before.fds as f64),
    );
    report.note(format!(
        "soak: open files before {}, after the first cycle {}, after the last {}; RSS after each cycle (KiB): {}",
        before.fds,
        soak.first().fds,
        soak.last().fds,
        soak.after
            .iter()
            .map(|s| s.rss_kib.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    ));
    let problems = env.daemon.problems().count - problems_before;
    report.fact(
        "mcpproxyd warnings and errors during the soak",
        problems.to_string(),
    );
    println!("  done: {label}");
    Ok(())
}
