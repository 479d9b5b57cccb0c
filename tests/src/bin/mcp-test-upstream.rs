//! `mcp-test-upstream`: the test MCP upstream as a process, for end-to-end tests and demos.
//!
//! Prints one line, `Listening: https://127.0.0.1:PORT`, once bound, then serves until
//! SIGINT or SIGTERM. With `--state-dir` the CA certificate and token are written there
//! for the proxy's `ca_file` and static token profile (each file atomically, before the
//! `Listening:` line: a reader that waits for that line finds both complete).

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use mcpproxy_tests::upstream::{self, EndpointStyle, UpstreamOptions};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

/// Exit status for a bad command line (EX_USAGE).
const EX_USAGE: u8 = 64;

/// A test MCP server (Streamable HTTP, legacy SSE, raw HTTP helpers) behind a bearer token.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Loopback address to listen on; other addresses are refused.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Accepted bearer token (default: 32 random hex characters).
    #[arg(long)]
    token: Option<String>,
    /// Serve plain HTTP instead of HTTPS with a fresh test CA.
    #[arg(long)]
    plain_http: bool,
    /// Directory (created 0700) to write `ca.pem` and `token` (0600) into.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Form of the legacy SSE `endpoint` event.
    #[arg(long, value_enum, default_value_t = Endpoint::Relative)]
    legacy_endpoint: Endpoint,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Endpoint {
    /// A path, `/…/message?sessionId=ID`.
    Relative,
    /// An absolute URL on this server's origin.
    Absolute,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !args.host.is_loopback() {
        eprintln!(
            "mcp-test-upstream: --host {} is not a loopback address",
            args.host
        );
        return ExitCode::from(EX_USAGE);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mcp-test-upstream: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-test-upstream: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let addr = SocketAddr::new(args.host, args.port);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("bind {addr}"))?;
    let opts = UpstreamOptions {
        token: args.token.unwrap_or_else(upstream::random_hex),
        tls: !args.plain_http,
        legacy_endpoint: match args.legacy_endpoint {
            Endpoint::Relative => EndpointStyle::Relative,
            Endpoint::Absolute => EndpointStyle::Absolute,
        },
        authorization_server: None,
        validator: None,
        resource: Default::default(),
        oauth_front: None,
    };
    let server = upstream::serve(listener, opts)?;
    if let Some(dir) = &args.state_dir {
        write_state(dir, &server).with_context(|| format!("state dir {}", dir.display()))?;
    }

    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "Listening: {}", server.base_url())?;
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

fn write_state(dir: &Path, server: &upstream::TestUpstream) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // An existing directory keeps its mode under DirBuilder: tighten it explicitly.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    if let Some(pem) = server.ca_pem() {
        write_private(&dir.join("ca.pem"), pem.as_bytes())?;
    }
    write_private(&dir.join("token"), server.token().as_bytes())
}

/// Written to a temporary name, then renamed: whoever reads `path` sees the old file or the
/// whole new one, never a half-written token.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    // A pre-existing file keeps its mode under OpenOptions: tighten it explicitly.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
