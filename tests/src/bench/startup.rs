//! Start-up: the time from exec to ready, and the resident memory then, median of N starts.
//!
//! mcpproxyd: exec to its `READY=1` notification (`NOTIFY_SOCKET`, as systemd receives it),
//! with the bench's static-token config. nginx: exec to the first accepted connection on its
//! port (it has no readiness notification outside systemd). Each process is stopped before
//! the next starts.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::process::Command;

use super::load::median;
use super::nginx::Nginx;
use super::procstat;
use super::report::{Kind, Report};
use super::{Args, Env, START_TIMEOUT};

/// One start: its time to ready and its RSS at that moment.
#[derive(Clone, Copy)]
struct Start {
    ready: Duration,
    rss_kib: u64,
}

/// Waits for a datagram with a `READY=1` line, up to `deadline`.
async fn wait_ready(sock: &tokio::net::UnixDatagram, deadline: Instant) -> anyhow::Result<()> {
    let mut buf = vec![0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, sock.recv(&mut buf))
            .await
            .context("no READY=1 notification in time")??;
        if String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "READY=1")
        {
            return Ok(());
        }
    }
}

/// Starts the daemon once in `dir` with `config`; stops it after it is ready.
async fn daemon_once(bin: &Path, config: &Path, dir: &Path) -> anyhow::Result<Start> {
    std::fs::create_dir_all(dir.join("run"))?;
    std::fs::create_dir_all(dir.join("state"))?;
    let notify_path = dir.join("notify.sock");
    let std_sock = UnixDatagram::bind(&notify_path)?;
    std_sock.set_nonblocking(true)?;
    let sock = tokio::net::UnixDatagram::from_std(std_sock)?;
    let t = Instant::now();
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(config)
        .arg("--port")
        .arg("0")
        .env("RUNTIME_DIRECTORY", dir.join("run"))
        .env("STATE_DIRECTORY", dir.join("state"))
        .env("NOTIFY_SOCKET", &notify_path)
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .env_remove("WATCHDOG_USEC")
        .env_remove("LISTEN_FDS")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let ready = wait_ready(&sock, t + START_TIMEOUT).await;
    let elapsed = t.elapsed();
    let rss_kib = child.id().map_or(0, |pid| procstat::read(pid).rss_kib);
    if let Some(pid) = child.id() {
        let term = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        let _ = tokio::time::timeout(Duration::from_secs(5), term).await;
    }
    if tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .is_err()
    {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    ready?;
    Ok(Start {
        ready: elapsed,
        rss_kib,
    })
}

async fn nginx_once(env: &Env, dir: &Path) -> Result<Start, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let mut nginx = Nginx::start(&env.upstream, dir, None).await?;
    let start = Start {
        ready: nginx.started_in,
        rss_kib: nginx.pid().map_or(0, |pid| procstat::read(pid).rss_kib),
    };
    nginx.stop().await;
    Ok(start)
}

/// `--starts` starts of each proxy, one after the other.
pub(super) async fn startup(args: &Args, env: &Env, report: &mut Report) -> anyhow::Result<()> {
    let root = env.setup.path("startup");
    let config = env.setup.path("mcpproxyd.toml");
    let mut daemon = Vec::new();
    for i in 0..args.starts {
        let dir = root.join(format!("mcpproxyd-{i}"));
        daemon.push(daemon_once(&env.daemon_bin, &config, &dir).await?);
    }
    let mut nginx = Vec::new();
    if env.nginx.is_some() {
        for i in 0..args.starts {
            match nginx_once(env, &root.join(format!("nginx-{i}"))).await {
                Ok(s) => nginx.push(s),
                Err(why) => bail!("nginx start {i} for the start-up scenario: {why}"),
            }
        }
    }
    let label = format!("start-up, median of {} starts", args.starts);
    let ms = |v: &[Start]| median(v.iter().map(|s| s.ready.as_secs_f64() * 1e3).collect());
    let mib = |v: &[Start]| median(v.iter().map(|s| s.rss_kib as f64 / 1024.0).collect());
    report.row(
        &label,
        "exec to ready (ms; mcpproxyd READY=1, nginx accepting)",
        Kind::Cost,
        [None, ms(&daemon), ms(&nginx)],
    );
    report.row(
        &label,
        "RSS when ready (MiB)",
        Kind::Cost,
        [None, mib(&daemon), mib(&nginx)],
    );
    println!("  done: {label}");
    Ok(())
}
