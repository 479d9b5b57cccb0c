//! Big bodies through each column: one download of `--big-mib` MiB from `/raw/bytes` and one
//! streamed (chunked) upload of as much to `/raw/count`; MiB/s, and how far each proxy's peak
//! RSS (`VmHWM`, reset before each transfer) rose above its RSS before it. A proxy that
//! streams stays flat; one that buffers grows by the body's size.

use std::time::Instant;

use anyhow::{ensure, Context};
use reqwest::Method;

use super::load::{upload, Side};
use super::procstat::{self, ProcStat};
use super::report::{Kind, Report};
use super::{Args, Env, MIB};

#[derive(Clone, Copy)]
enum Direction {
    Response,
    Request,
}

/// GETs `/raw/bytes?n=SIZE` and counts the body as it arrives (nothing is kept).
async fn download(side: &Side, size: u64) -> anyhow::Result<()> {
    let mut resp = side
        .request(Method::GET, &format!("/raw/bytes?n={size}"))
        .send()
        .await?;
    ensure!(
        resp.status() == 200,
        "{} /raw/bytes answered {}",
        side.name,
        resp.status()
    );
    let mut got = 0u64;
    while let Some(chunk) = resp
        .chunk()
        .await
        .with_context(|| format!("{} /raw/bytes after {got} bytes", side.name))?
    {
        got += chunk.len() as u64;
    }
    ensure!(
        got == size,
        "{} /raw/bytes: {got} bytes, expected {size}",
        side.name
    );
    Ok(())
}

/// The proxy's reading before a transfer, its peak reset; `reset` is false when the kernel
/// refused the reset (then the growth is the rise of the old peak, a lower bound).
fn before(pid: u32) -> (ProcStat, bool) {
    let reset = procstat::reset_peak(pid).is_ok();
    (procstat::read(pid), reset)
}

fn growth_mib(before: ProcStat, reset: bool, after: ProcStat) -> f64 {
    let base = if reset {
        before.rss_kib
    } else {
        before.peak_rss_kib
    };
    after.peak_rss_kib.saturating_sub(base) as f64 / 1024.0
}

/// One download and one upload of `--big-mib` MiB per column. Returns the highest peak RSS
/// (KiB) of each proxy seen before or during the resets, for the whole run's peak.
pub(super) async fn big_bodies(
    args: &Args,
    env: &Env,
    report: &mut Report,
) -> anyhow::Result<[u64; 3]> {
    let size = args.big_mib * MIB;
    let pids = [None, env.daemon.pid(), env.nginx_pid()];
    let mut unreset = Vec::new();
    let mut peaks = pids.map(|p| p.map_or(0, |p| procstat::read(p).peak_rss_kib));
    for dir in [Direction::Response, Direction::Request] {
        let label = match dir {
            Direction::Response => format!("{} MiB response body (GET), c=1", args.big_mib),
            Direction::Request => format!("{} MiB request body (POST, chunked), c=1", args.big_mib),
        };
        let mut rate = [None; 3];
        let mut growth = [None; 3];
        for (i, side) in env.sides().into_iter().enumerate() {
            let Some(side) = side else { continue };
            let start = pids[i].map(before);
            let t = Instant::now();
            match dir {
                Direction::Response => download(side, size).await?,
                Direction::Request => upload(side, size).await?,
            }
            rate[i] = Some(args.big_mib as f64 / t.elapsed().as_secs_f64().max(1e-9));
            if let (Some(pid), Some((b, reset))) = (pids[i], start) {
                let after = procstat::read(pid);
                peaks[i] = peaks[i].max(after.peak_rss_kib);
                growth[i] = Some(growth_mib(b, reset, after));
                if !reset && !unreset.contains(&side.name) {
                    unreset.push(side.name);
                }
            }
        }
        report.row(&label, "MiB/s", Kind::Rate, rate);
        report.row(
            &label,
            "proxy peak RSS growth (MiB, VmHWM - RSS before)",
            Kind::Cost,
            growth,
        );
        println!("  done: {label}");
    }
    if !unreset.is_empty() {
        report.note(format!(
            "big bodies: the peak RSS of {} could not be reset (/proc/PID/clear_refs): \
             the growth shown is the rise of the earlier peak, a lower bound",
            unreset.join(", ")
        ));
    }
    Ok(peaks)
}
