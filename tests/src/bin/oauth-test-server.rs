//! `oauth-test-server`: the test OAuth 2.1 authorization server as a process.
//!
//! Prints one line, `Listening: https://127.0.0.1:PORT` (the issuer), once bound, then
//! serves until SIGINT or SIGTERM. With `--state-dir` the CA certificate is written
//! there as `ca.pem`, for the proxy's `ca_file`.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use mcpproxy_tests::oauth::{self, ClientSpec, OAuthOptions};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

/// An OAuth 2.1 authorization server for tests: code + PKCE, refresh rotation,
/// revocation, dynamic client registration, optionally the device flow.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Port to listen on (127.0.0.1 only); 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Access token lifetime: seconds, or a number with s, m, h or d (`90s`, `1h`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1h")]
    access_lifetime: Duration,
    /// Refresh token lifetime (reported as `refresh_expires_in`), or `never`.
    #[arg(long, value_name = "DURATION", value_parser = parse_lifetime, default_value = "30d")]
    refresh_lifetime: Lifetime,
    /// Issue no refresh tokens.
    #[arg(long)]
    no_refresh_token: bool,
    /// Issue refresh tokens only to grants whose scope holds `offline_access`.
    #[arg(long)]
    refresh_needs_offline_access: bool,
    /// Keep refresh tokens across refresh grants instead of rotating them.
    #[arg(long)]
    no_rotate_refresh: bool,
    /// A client allowed any loopback redirect URI; repeatable (default: `test-client`).
    #[arg(long = "client-id", value_name = "ID")]
    client_ids: Vec<String>,
    /// Require this RFC 8707 `resource` on authorization and token requests.
    #[arg(long, value_name = "URL")]
    resource: Option<String>,
    /// A supported scope; repeatable (default: any scope is accepted).
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// Turn dynamic client registration (`/register`) off.
    #[arg(long)]
    no_registration: bool,
    /// Directory (created 0700) to write `ca.pem` into.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Approve every authorization request at once (the default).
    #[arg(long, overrides_with = "manual")]
    auto_approve: bool,
    /// Show an approval page instead of approving at once.
    #[arg(long, overrides_with = "auto_approve")]
    manual: bool,
    /// Offer the device authorization grant (RFC 8628); approve codes at `/device`.
    #[arg(long)]
    device: bool,
    /// The device flow's polling interval in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 5, requires = "device")]
    device_interval: u64,
}

/// A lifetime that may be unlimited.
#[derive(Debug, Clone, Copy)]
struct Lifetime(Option<Duration>);

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("oauth-test-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oauth-test-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("bind {addr}"))?;
    let server = oauth::serve(listener, options(&args))?;
    if let Some(dir) = &args.state_dir {
        write_state(dir, &server.ca_pem())
            .with_context(|| format!("state dir {}", dir.display()))?;
    }

    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "Listening: {}", server.issuer())?;
    stdout.flush()?;
    drop(stdout);

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    server.shutdown();
    Ok(())
}

fn options(args: &Args) -> OAuthOptions {
    let defaults = OAuthOptions::default();
    OAuthOptions {
        auto_approve: !args.manual,
        access_lifetime: args.access_lifetime,
        refresh_lifetime: args.refresh_lifetime.0,
        issue_refresh_token: !args.no_refresh_token,
        refresh_needs_offline_access: args.refresh_needs_offline_access,
        rotate_refresh: !args.no_rotate_refresh,
        registration: !args.no_registration,
        clients: if args.client_ids.is_empty() {
            defaults.clients.clone()
        } else {
            args.client_ids.iter().map(ClientSpec::loopback).collect()
        },
        resource: args.resource.clone(),
        scopes_supported: args.scopes.clone(),
        device: args.device.then(|| oauth::device::DeviceOptions {
            interval: args.device_interval,
            ..Default::default()
        }),
        ..defaults
    }
}

/// `90`, `90s`, `15m`, `1h`, `30d`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let seconds_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("unit of {text:?} must be s, m, h or d")),
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 15m, 1h or 30d"))?;
    number
        .checked_mul(seconds_per_unit)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long"))
}

fn parse_lifetime(text: &str) -> Result<Lifetime, String> {
    if text == "never" {
        return Ok(Lifetime(None));
    }
    parse_duration(text).map(|d| Lifetime(Some(d)))
}

fn write_state(dir: &Path, ca_pem: &str) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // An existing directory keeps its mode under DirBuilder: tighten it explicitly.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(dir.join("ca.pem"))?;
    file.write_all(ca_pem.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86400)));
        for bad in ["", "h", "1w", "1.5h", "-1", "1 h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert!(parse_lifetime("never").unwrap().0.is_none());
    }

    #[test]
    fn flags_map_to_options() {
        let args = Args::parse_from([
            "oauth-test-server",
            "--manual",
            "--client-id",
            "a",
            "--client-id",
            "b",
            "--no-refresh-token",
            "--access-lifetime",
            "2m",
        ]);
        let opts = options(&args);
        assert!(!opts.auto_approve && !opts.issue_refresh_token);
        assert_eq!(opts.access_lifetime, Duration::from_secs(120));
        assert_eq!(opts.clients.len(), 2);
        let args = Args::parse_from(["oauth-test-server", "--manual", "--auto-approve"]);
        assert!(options(&args).auto_approve);
        let opts = options(&Args::parse_from(["oauth-test-server"]));
        assert_eq!(opts.clients[0].client_id, oauth::DEFAULT_CLIENT_ID);
        assert_eq!(opts.refresh_lifetime, Some(oauth::DEFAULT_REFRESH_LIFETIME));
    }
}
