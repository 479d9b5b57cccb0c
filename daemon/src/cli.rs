//! The `mcpproxyd` command line: the seed tool's flags, config loading before the runtime starts
//! (a bad config exits 64 with one clear message), binding, the banner, signals.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use futures_util::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_tokio::Signals;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Overrides};
use crate::control::{admin, banner, logging, systemd, terminal};
use crate::proxy::listener::UnixProxyListener;
use crate::proxy::server;
use crate::state::{Generation, Shared};

/// EX_USAGE: bad flags or configuration (systemd must not restart-loop on it).
pub const EXIT_USAGE: i32 = 64;
/// Start-up failed for a reason a restart may fix (port in use, ...).
pub const EXIT_FAILURE: i32 = 1;

/// Authenticating MCP proxy: local apps call remote OAuth-protected MCP servers through it.
#[derive(Debug, Parser)]
#[command(name = "mcpproxyd", version, about)]
pub struct Args {
    /// Config file (default: /etc/mcpproxyd/mcpproxyd.toml for root, else
    /// $XDG_CONFIG_HOME/mcpproxyd/mcpproxyd.toml; missing default: built-in Alibaba CN preset)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on (replaces the first listen address's host)
    #[arg(long, value_name = "IP")]
    pub host: Option<String>,
    /// Port to listen on (replaces the first listen address's port; 0 picks a free one)
    #[arg(long)]
    pub port: Option<u16>,
    /// Alibaba Cloud site: CN or INTL (any case)
    #[arg(long, value_name = "CN|INTL")]
    pub region: Option<String>,
    /// Upstream MCP server URL (replaces the first upstream's URL; its path is kept)
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// Comma-separated server names, IDs or /path prefixes that may be reached
    #[arg(long, value_name = "LIST")]
    pub allowed_servers: Option<String>,
    /// Comma-separated server names, IDs or /path prefixes that are refused (wins over allowed)
    #[arg(long, value_name = "LIST")]
    pub blocked_servers: Option<String>,
    /// Log in by pasting the code instead of opening a browser
    #[arg(long)]
    pub no_browser: bool,
    /// Name of the OAuth application to use
    #[arg(long, value_name = "NAME")]
    pub oauth_app_name: Option<String>,
    /// OAuth scope
    #[arg(long, value_name = "SCOPE")]
    pub scope: Option<String>,
    /// Validate the configuration, print it (without secrets) and exit 0, or 64 if invalid
    #[arg(long)]
    pub check_config: bool,
}

fn split_list(text: &Option<String>) -> Option<Vec<String>> {
    text.as_ref().map(|t| {
        t.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
}

impl Args {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            host: self.host.clone(),
            port: self.port,
            region: self.region.clone(),
            upstream: self.upstream.clone(),
            allowed_servers: split_list(&self.allowed_servers),
            blocked_servers: split_list(&self.blocked_servers),
            no_browser: self.no_browser,
            oauth_app_name: self.oauth_app_name.clone(),
            scope: self.scope.clone(),
        }
    }
}

/// The whole program; returns the exit code.
pub fn main() -> i32 {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return 0;
        }
        Err(e) => {
            let _ = e.print();
            return EXIT_USAGE;
        }
    };
    let overrides = args.overrides();
    let config = match config::load(args.config.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mcpproxyd: {e}");
            return EXIT_USAGE;
        }
    };
    if args.check_config {
        return check_config(config);
    }
    let foreground = terminal::Foreground::at_start();
    // Before any thread exists: the LISTEN_* variables are read and removed.
    let activated = match systemd::take_activated() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mcpproxyd: {e}");
            return EXIT_FAILURE;
        }
    };
    if let Err(e) = logging::init(&config.log) {
        eprintln!("mcpproxyd: {e}");
        return EXIT_USAGE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mcpproxyd: cannot start the runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    let config_path = match &config.source {
        config::Source::File(p) => Some(p.clone()),
        config::Source::Defaults => args.config.clone(),
    };
    runtime.block_on(serve(config, config_path, overrides, activated, foreground))
}

fn check_config(config: config::Config) -> i32 {
    let addrs = config.listen.addresses.clone();
    let rendered = config.render();
    let generation = match Generation::build(config, &addrs) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("mcpproxyd: {e}");
            return EXIT_USAGE;
        }
    };
    let unresolved = generation.acl.unresolved();
    let static_catalog = generation
        .config
        .upstreams
        .iter()
        .all(|u| u.catalog == config::CatalogSource::Static);
    if static_catalog && !unresolved.is_empty() {
        eprintln!(
            "mcpproxyd: {}: acl: {} not in the catalog (names and IDs must match a [[upstream.servers]] entry)",
            generation.config.source,
            unresolved.join(", ")
        );
        return EXIT_USAGE;
    }
    let unresolved = generation.policies.unresolved(&generation.catalog);
    if static_catalog && !unresolved.is_empty() {
        eprintln!(
            "mcpproxyd: {}: policy: servers {} not in the catalog (names and IDs must match a [[upstream.servers]] entry)",
            generation.config.source,
            unresolved.join(", ")
        );
        return EXIT_USAGE;
    }
    print!("{rendered}");
    0
}

/// The proxy listeners and the admin socket: passed by systemd, or bound here.
struct Sockets {
    proxy: Vec<tokio::net::TcpListener>,
    proxy_unix: Vec<UnixProxyListener>,
    admin: tokio::net::UnixListener,
    admin_path: PathBuf,
    /// We created the admin socket file (and remove it on exit); systemd owns a passed one.
    admin_owned: bool,
}

async fn sockets(
    config: &config::Config,
    activated: Option<systemd::Activated>,
) -> Result<Sockets, String> {
    let activated = activated.unwrap_or_default();
    let proxy = if activated.proxy.is_empty() {
        server::bind(config).await.map_err(|e| e.to_string())?
    } else {
        tracing::info!(
            count = activated.proxy.len(),
            "using the proxy sockets passed by systemd; listen.addresses is not used"
        );
        activated
            .proxy
            .into_iter()
            .map(tokio::net::TcpListener::from_std)
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?
    };
    let proxy_unix = unix_sockets(config, activated.proxy_unix).await?;
    let (admin, admin_path, admin_owned) = match activated.admin {
        Some(l) => {
            let path = l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| p.to_path_buf()))
                .unwrap_or_default();
            let l = tokio::net::UnixListener::from_std(l).map_err(|e| e.to_string())?;
            (l, path, false)
        }
        None => {
            let path = config
                .admin
                .socket
                .clone()
                .unwrap_or_else(admin::default_socket_path);
            (
                admin::bind(&path).await.map_err(|e| e.to_string())?,
                path,
                true,
            )
        }
    };
    Ok(Sockets {
        proxy,
        proxy_unix,
        admin,
        admin_path,
        admin_owned,
    })
}

/// The proxy's Unix sockets: passed by systemd (`proxy-unix`), else `[listen] unix` bound here.
async fn unix_sockets(
    config: &config::Config,
    activated: Vec<std::os::unix::net::UnixListener>,
) -> Result<Vec<UnixProxyListener>, String> {
    if !activated.is_empty() {
        tracing::info!(
            count = activated.len(),
            "using the proxy Unix sockets passed by systemd; listen.unix is not used"
        );
        return activated
            .into_iter()
            .map(|l| tokio::net::UnixListener::from_std(l).map(UnixProxyListener::activated))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string());
    }
    let unix = &config.listen.unix;
    let mut out = Vec::new();
    for path in &unix.paths {
        let l = UnixProxyListener::bind(path, unix.mode, unix.group.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        out.push(l);
    }
    Ok(out)
}

/// A root run outside systemd uses, unless told otherwise, the paths the packaged service
/// uses (/run/mcpproxyd, /var/lib/mcpproxyd): say where, before writing there.
fn tell_where_root_writes(config: &config::Config) {
    let under_systemd = ["INVOCATION_ID", "NOTIFY_SOCKET"]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
    if under_systemd || !nix::unistd::geteuid().is_root() {
        return;
    }
    let socket = config
        .admin
        .socket
        .clone()
        .unwrap_or_else(admin::default_socket_path);
    let state = crate::auth::token_store::state_dir(&config.store);
    tracing::info!(
        admin_socket = %socket.display(),
        state_dir = %state.display(),
        "running as root outside systemd: the admin socket and the state directory (tokens, \
         saved server lists) are these, the service's own places unless set; for a private run \
         set [admin] socket and [store] dir, or RUNTIME_DIRECTORY and STATE_DIRECTORY"
    );
}

async fn serve(
    config: config::Config,
    config_path: Option<PathBuf>,
    overrides: Overrides,
    activated: Option<systemd::Activated>,
    foreground: terminal::Foreground,
) -> i32 {
    tell_where_root_writes(&config);
    let Sockets {
        proxy: listeners,
        proxy_unix,
        admin: admin_listener,
        admin_path,
        admin_owned,
    } = match sockets(&config, activated).await {
        Ok(s) => s,
        Err(e) => {
            // Once: the log goes to stderr too, and a second copy only confuses.
            eprintln!("mcpproxyd: {e}");
            return EXIT_FAILURE;
        }
    };
    let metrics_listener = match config.admin.metrics_address {
        None => None,
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("mcpproxyd: cannot listen on the metrics address {addr}: {e}");
                return EXIT_FAILURE;
            }
        },
    };
    let daemon = match server::Daemon::new(config, config_path, overrides, listeners) {
        Ok(d) => d.with_unix(proxy_unix),
        Err(e) => {
            eprintln!("mcpproxyd: {e}");
            return EXIT_USAGE;
        }
    };
    let shared = daemon.shared();
    let admin_stop = CancellationToken::new();
    tracing::info!(socket = %admin_path.display(), "admin socket ready");
    let admin_task = tokio::spawn(admin::serve(
        admin_listener,
        shared.clone(),
        admin_stop.clone(),
        admin_owned,
    ));
    if let Some(l) = metrics_listener {
        tracing::info!(address = ?l.local_addr().ok(), "metrics endpoint ready");
        tokio::spawn(admin::serve_metrics(l, shared.clone(), admin_stop.clone()));
    }
    // The banner lists the servers: list alibaba catalogs first (bounded by request timeouts).
    crate::catalog::task::refresh_all(&shared).await;
    tokio::spawn(crate::catalog::task::run(
        shared.clone(),
        admin_stop.clone(),
    ));
    announce(&shared);
    systemd::ready(&systemd::status_line(&shared));
    if shared.current().config.no_browser && crate::auth::terminal_login::may_prompt() {
        tokio::spawn(crate::auth::terminal_login::run(shared.clone()));
    }
    tokio::spawn(systemd::supervise(shared.clone(), admin_stop.clone()));
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let signals = match Signals::new([SIGTERM, SIGINT, SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mcpproxyd: cannot install signal handlers: {e}");
            return EXIT_FAILURE;
        }
    };
    let handle = signals.handle();
    tokio::spawn(handle_signals(signals, shared.clone(), stop_tx, foreground));
    daemon
        .serve(async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        })
        .await;
    handle.close();
    admin_stop.cancel();
    let _ = admin_task.await;
    tracing::info!("stopped");
    0
}

/// The banner on stdout and the start-up warnings in the log.
fn announce(shared: &Arc<Shared>) {
    let generation = shared.current();
    let require = generation.config.listen.require_client_keys;
    for addr in &shared.bound {
        if require.applies_to(Some(*addr)) {
            tracing::info!(listen = %addr, "client keys are required on this listener");
        } else if !addr.ip().is_loopback() {
            tracing::warn!(
                listen = %addr,
                "listening on a non-loopback address: anyone who can reach it uses your MCP credentials; restrict it with a firewall and the ACL, or set listen.require_client_keys"
            );
        }
        tracing::info!(listen = %addr, "listening");
    }
    for path in shared.unix_bound.get().into_iter().flatten() {
        tracing::info!(socket = %path.display(), "listening on a Unix socket");
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(banner::render(&generation, &shared.bound, &shared.tokens).as_bytes());
    let _ = stdout.flush();
}

async fn handle_signals(
    mut signals: Signals,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    foreground: terminal::Foreground,
) {
    while let Some(signal) = signals.next().await {
        match signal {
            SIGHUP if foreground.terminal_lost() => {
                tracing::info!("the terminal closed (SIGHUP): stopping");
                let _ = stop.send(true);
            }
            SIGHUP => {
                let _ = systemd::reload(&shared, "SIGHUP");
            }
            _ if *stop.borrow() => {
                tracing::warn!("second stop signal: exiting at once");
                std::process::exit(130);
            }
            _ => {
                let _ = stop.send(true);
            }
        }
    }
}
