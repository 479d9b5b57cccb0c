//! systemd integration: readiness and state notifications (`Type=notify`), a one-line
//! `STATUS=`, watchdog pings that stop when the proxy's accept loop or a token refresher is
//! stuck, and sockets passed by socket activation (`LISTEN_FDS`, matched by
//! `FileDescriptorName=`: `proxy` for the proxy port, `proxy-unix` for the proxy's Unix
//! sockets, `admin` for the admin socket).
//! Everything here is a no-op when the daemon does not run under systemd.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::state::{BuildError, Reloaded, Shared};

/// How often the accept loops show they are alive, and how often `STATUS=` is refreshed.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// Sends states to the service manager; errors are logged once at debug level and ignored
/// (no `NOTIFY_SOCKET` means no systemd, which is fine).
pub fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now]),
        Err(_) => notify(&[NotifyState::Reloading]),
    }
}

/// A reload (SIGHUP or the admin API), bracketed by `RELOADING=1` and `READY=1` with the new
/// `STATUS=`: the state reloads and logs, this module tells systemd.
pub fn reload(shared: &Shared, via: &str) -> Result<Reloaded, BuildError> {
    reloading();
    let result = shared.reload_logged(via);
    ready(&status_line(shared));
    result
}

pub fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("draining")]);
}

/// Sockets systemd passed to us.
#[derive(Debug, Default)]
pub struct Activated {
    pub proxy: Vec<std::net::TcpListener>,
    /// `[listen] unix` sockets (`FileDescriptorName=proxy-unix`).
    pub proxy_unix: Vec<std::os::unix::net::UnixListener>,
    pub admin: Option<std::os::unix::net::UnixListener>,
}

/// Takes the sockets passed by socket activation, if any. Call before any thread starts: it
/// removes the `LISTEN_*` variables so children do not inherit them.
pub fn take_activated() -> Result<Option<Activated>, String> {
    let fds: Vec<(RawFd, String)> = sd_notify::listen_fds_with_names()
        .map_err(|e| format!("invalid socket activation variables: {e}"))?
        .collect();
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    if fds.is_empty() {
        return Ok(None);
    }
    let mut out = Activated::default();
    for (fd, name) in fds {
        // SAFETY: `listen_fds_with_names` only yields descriptors of the LISTEN_FDS protocol:
        // numbers 3..3+LISTEN_FDS, passed open by systemd to this very process (LISTEN_PID was
        // checked to be ours). The variables are removed above, so each descriptor is taken
        // exactly once, here, and nothing else in the process owns or closes it.
        #[allow(unsafe_code)]
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        match name.as_str() {
            "proxy" => {
                let l = std::net::TcpListener::from(owned);
                l.local_addr()
                    .map_err(|e| format!("socket `proxy` (fd {fd}) is not a TCP listener: {e}"))?;
                l.set_nonblocking(true).map_err(|e| e.to_string())?;
                out.proxy.push(l);
            }
            "proxy-unix" => {
                let l = std::os::unix::net::UnixListener::from(owned);
                l.local_addr().map_err(|e| {
                    format!("socket `proxy-unix` (fd {fd}) is not a Unix listener: {e}")
                })?;
                l.set_nonblocking(true).map_err(|e| e.to_string())?;
                out.proxy_unix.push(l);
            }
            "admin" => {
                let l = std::os::unix::net::UnixListener::from(owned);
                l.local_addr()
                    .map_err(|e| format!("socket `admin` (fd {fd}) is not a Unix listener: {e}"))?;
                l.set_nonblocking(true).map_err(|e| e.to_string())?;
                out.admin = Some(l);
            }
            other => {
                // Closed by dropping `owned`.
                eprintln!(
                    "mcpproxyd: ignoring passed socket `{other}` (fd {fd}); name it proxy, proxy-unix or admin"
                );
            }
        }
    }
    Ok(Some(out))
}

/// The one-line state for `STATUS=`.
pub fn status_line(shared: &Shared) -> String {
    let mut parts = Vec::new();
    let listen: Vec<String> = shared.bound.iter().map(|a| a.to_string()).collect();
    parts.push(format!("serving {}", listen.join(", ")));
    let now = crate::clock::now();
    for v in shared.tokens.views() {
        if v.kind == "static" {
            continue;
        }
        let state = match (v.phase, v.valid_until) {
            (mcpproxyd_api::ProfileState::Valid, Some(t)) => {
                format!("token valid {}", span(t.saturating_sub(now)))
            }
            (p, _) => p.words().to_string(),
        };
        parts.push(format!("{}: {state}", v.name));
    }
    let streams = shared.counters.open_streams.load(Ordering::Relaxed);
    parts.push(format!("{streams} streams"));
    parts.join("; ")
}

fn span(secs: u64) -> String {
    match secs {
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Keeps `STATUS=` current and pings the watchdog while the daemon is healthy.
pub async fn supervise(shared: Arc<Shared>, stop: CancellationToken) {
    let watchdog = sd_notify::watchdog_enabled();
    let tick = watchdog
        .map(|w| (w / 2).min(HEARTBEAT))
        .unwrap_or(HEARTBEAT);
    let mut last_status = String::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stop.cancelled() => return,
        }
        let line = status_line(&shared);
        if line != last_status {
            notify(&[NotifyState::Status(&line)]);
            last_status = line;
        }
        if watchdog.is_some() {
            match health(&shared) {
                Ok(()) => notify(&[NotifyState::Watchdog]),
                Err(why) => tracing::error!(reason = %why, "not pinging the watchdog"),
            }
        }
    }
}

/// Healthy: the accept loops and every proxy worker ran recently, and every refresher looped
/// recently.
fn health(shared: &Shared) -> Result<(), String> {
    let accept = shared.heartbeat.accept_age();
    if accept > HEARTBEAT * 3 {
        return Err(format!("the accept loop has not run for {accept:?}"));
    }
    if let Some((worker, age)) = shared.heartbeat.stalest_worker() {
        if age > HEARTBEAT * 3 {
            return Err(format!("proxy worker {worker} has not run for {age:?}"));
        }
    }
    if let Some(profile) = shared.tokens.stuck_refresher() {
        return Err(format!("the token refresher of `{profile}` is stuck"));
    }
    Ok(())
}
