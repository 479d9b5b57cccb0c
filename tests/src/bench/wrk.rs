//! The JSON-RPC load from `wrk` (bounded by its `-d`), when it is installed: `POST /raw/rpc`
//! with a ~300 B `tools/call`, keep-alive, its latency distribution parsed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::process::Command;

use super::RPC_BODY;

pub(super) fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The Lua script that makes wrk POST the `tools/call`.
pub(super) fn write_script(path: &Path) -> anyhow::Result<()> {
    std::fs::write(
        path,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{RPC_BODY}'\n\
             wrk.headers[\"Content-Type\"] = \"application/json\"\n\
             wrk.headers[\"Accept\"] = \"application/json, text/event-stream\"\n"
        ),
    )?;
    Ok(())
}

/// One wrk run's figures.
#[derive(Debug, Clone, Copy)]
pub(super) struct WrkResult {
    pub(super) requests: u64,
    pub(super) per_second: f64,
    pub(super) p50: Duration,
    pub(super) p99: Duration,
    /// Non-2xx answers plus socket errors.
    pub(super) errors: u64,
}

/// `wrk -c CONC -d SECS --latency -s SCRIPT [-H auth] URL`.
pub(super) async fn run(
    wrk: &Path,
    script: &Path,
    url: &str,
    auth: Option<&str>,
    conc: u64,
    secs: u64,
) -> anyhow::Result<WrkResult> {
    let threads = conc.min(std::thread::available_parallelism().map_or(1, |n| n.get()) as u64);
    let mut cmd = Command::new(wrk);
    cmd.arg(format!("-t{threads}"))
        .arg(format!("-c{conc}"))
        .arg(format!("-d{secs}s"))
        .arg("--timeout")
        .arg("10s")
        .arg("--latency")
        .arg("-s")
        .arg(script);
    if let Some(auth) = auth {
        cmd.arg("-H").arg(format!("Authorization: {auth}"));
    }
    cmd.arg(url).stdin(Stdio::null()).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(secs + 30), cmd.output())
        .await
        .context("wrk did not finish")??;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "wrk failed ({}): {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse(&text).with_context(|| format!("cannot read wrk's output:\n{text}"))
}

fn duration(s: &str) -> Option<Duration> {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let v: f64 = num.parse().ok()?;
    let secs = match unit {
        "us" => v / 1e6,
        "ms" => v / 1e3,
        "s" => v,
        "m" => v * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

fn parse(text: &str) -> Option<WrkResult> {
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
    };
    let requests = text
        .lines()
        .find(|l| l.contains(" requests in "))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let mut errors = 0;
    if let Some(n) = field("Non-2xx or 3xx responses:") {
        errors += n.parse::<u64>().ok()?;
    }
    if let Some(socket) = field("Socket errors:") {
        for part in socket.split(',') {
            errors += part.split_whitespace().last()?.parse::<u64>().ok()?;
        }
    }
    Some(WrkResult {
        requests,
        per_second: field("Requests/sec:")?.parse().ok()?,
        p50: duration(field("50%")?)?,
        p99: duration(field("99%")?)?,
        errors,
    })
}
