//! The daemon's shared state: the current configuration generation (swapped whole at reload),
//! the addresses actually bound, and the counters that outlive reloads.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use crate::auth::client_keys::ClientKeys;
use crate::auth::login::Logins;
use crate::auth::tokens::Tokens;
use crate::catalog::Catalog;
use crate::config::{self, Config, ConfigError, Overrides, Upstream};
use crate::control::metrics::Metrics;
use crate::http_client::{self, ClientError, ClientOptions};
use crate::proxy::acl::Acl;
use crate::proxy::dial::{Dialer, Target};
use crate::proxy::forward::Forwarder;
use crate::proxy::guard::Guard;
use crate::proxy::policy::ToolPolicies;
use crate::proxy::pool::Pool;

/// Everything that one configuration generation decides.
pub struct Generation {
    pub config: Arc<Config>,
    pub guard: Guard,
    /// The guard of the Unix-socket listeners: `Host: localhost` and the extra hosts.
    pub unix_guard: Guard,
    pub catalog: Catalog,
    pub acl: Acl,
    /// Tool policies (`[[policy]]`).
    pub policies: ToolPolicies,
    /// Upstream indexes ordered by mount length, longest first.
    routes: Vec<usize>,
    clients: HashMap<String, reqwest::Client>,
    /// How each upstream's proxied requests leave (see [`Forwarder`]).
    forwarders: HashMap<String, Forwarder>,
    pub loaded_at: SystemTime,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("upstream `{upstream}`: {source}")]
    Client {
        upstream: String,
        source: ClientError,
    },
}

impl Generation {
    pub fn build(config: Config, bound: &[SocketAddr]) -> Result<Generation, BuildError> {
        Generation::build_with(config, bound, &HashMap::new())
    }

    /// Like [`Generation::build`], with the servers listed so far for `alibaba` catalogs.
    pub fn build_with(
        config: Config,
        bound: &[SocketAddr],
        listed: &HashMap<String, Vec<crate::config::Server>>,
    ) -> Result<Generation, BuildError> {
        let guard = Guard::new(
            bound,
            &config.listen.extra_hosts,
            &config.listen.allowed_origins,
        );
        let unix_guard =
            Guard::for_unix(&config.listen.extra_hosts, &config.listen.allowed_origins);
        let catalog = Catalog::build(&config, listed);
        let acl = Acl::new(&config.acl, &catalog);
        let policies = ToolPolicies::new(&config.policies);
        let mut clients = HashMap::new();
        let mut forwarders = HashMap::new();
        for u in &config.upstreams {
            let opts = ClientOptions::for_upstream(u, config.limits.connect_timeout);
            let client = http_client::build(&opts).map_err(|source| BuildError::Client {
                upstream: u.name.clone(),
                source,
            })?;
            let forwarder = forwarder(u, &opts, &client).map_err(|source| BuildError::Client {
                upstream: u.name.clone(),
                source,
            })?;
            forwarders.insert(u.name.clone(), forwarder);
            clients.insert(u.name.clone(), client);
        }
        let mut routes: Vec<usize> = (0..config.upstreams.len()).collect();
        routes.sort_by_key(|&i| std::cmp::Reverse(config.upstreams[i].mount.len()));
        Ok(Generation {
            config: Arc::new(config),
            guard,
            unix_guard,
            catalog,
            acl,
            policies,
            routes,
            clients,
            forwarders,
            loaded_at: SystemTime::now(),
        })
    }

    /// The upstream whose mount holds `local_path` on whole segments, longest mount first.
    pub fn route(&self, local_path: &str) -> Option<&Upstream> {
        self.routes
            .iter()
            .map(|&i| &self.config.upstreams[i])
            .find(|u| crate::proxy::path::under(local_path, &u.mount))
    }

    /// The guard of the listener at `local` (`None`: a Unix socket).
    pub fn guard_for(&self, local: Option<SocketAddr>) -> &Guard {
        match local {
            Some(_) => &self.guard,
            None => &self.unix_guard,
        }
    }

    pub fn client(&self, upstream: &str) -> Option<&reqwest::Client> {
        self.clients.get(upstream)
    }

    /// How requests to `upstream` are forwarded.
    pub fn forwarder(&self, upstream: &str) -> Option<&Forwarder> {
        self.forwarders.get(upstream)
    }

    /// Every upstream's client, by upstream name.
    pub fn clients(&self) -> &HashMap<String, reqwest::Client> {
        &self.clients
    }
}

/// The daemon's own connection pool for an upstream (its URL parsed here, once), or the
/// reqwest client when an outbound `proxy` is configured (reqwest speaks to proxies).
fn forwarder(
    u: &Upstream,
    opts: &ClientOptions,
    client: &reqwest::Client,
) -> Result<Forwarder, ClientError> {
    if u.proxy.is_some() {
        return Ok(Forwarder::Proxied(client.clone()));
    }
    if u.url.scheme() == "http" && !u.allow_http {
        return Err(ClientError::Build("http:// needs allow_http = true".into()));
    }
    let target = Target::new(&u.url).map_err(|e| ClientError::Build(e.to_string()))?;
    let tls = http_client::tls_config(opts.ca_file.as_deref(), opts.http1_only)?;
    Ok(Forwarder::Pool(Pool::new(
        Dialer::new(target, tls, opts.connect_timeout),
        &u.name,
    )))
}

/// Request counters, kept across reloads.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub denied: AtomicU64,
    pub open_streams: Arc<AtomicUsize>,
}

/// What every connection task shares.
pub struct Shared {
    current: RwLock<Arc<Generation>>,
    pub bound: Vec<SocketAddr>,
    pub config_path: Option<PathBuf>,
    pub overrides: Overrides,
    pub counters: Counters,
    pub metrics: Arc<Metrics>,
    pub tokens: Arc<Tokens>,
    /// Local client keys (`[listen] require_client_keys`).
    pub keys: Arc<ClientKeys>,
    /// Paths of the Unix-socket proxy listeners, once bound.
    pub unix_bound: std::sync::OnceLock<Vec<PathBuf>>,
    pub logins: Logins,
    /// Device logins (RFC 8628) and their polling.
    pub device_logins: crate::auth::device::DeviceLogins,
    pub heartbeat: Heartbeat,
    /// Servers listed by `alibaba` catalogs, by upstream name (kept across reloads).
    listed: Mutex<HashMap<String, Vec<crate::config::Server>>>,
    /// Message endpoints of open legacy SSE streams of policy servers (denials go there).
    pub legacy_sessions: Arc<crate::proxy::legacy_denial::LegacySessions>,
    /// Wakes the catalog refresher (after a reload).
    pub catalog_wake: tokio::sync::Notify,
    /// Serialises rebuilding the generation (reload, new server lists).
    rebuild: Mutex<()>,
    pub started: Instant,
    pub started_at: SystemTime,
    /// Why the last reload failed, until one succeeds.
    pub last_reload_error: Mutex<Option<String>>,
}

/// When things last showed they were alive (milliseconds since `start`).
#[derive(Debug)]
pub struct Heartbeat {
    start: Instant,
    accept: AtomicU64,
    /// Each proxy worker thread's last tick, by worker number (from 1; see `proxy::workers`).
    workers: Mutex<Vec<Arc<AtomicU64>>>,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            start: Instant::now(),
            accept: AtomicU64::new(0),
            workers: Mutex::new(Vec::new()),
        }
    }
}

impl Heartbeat {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Called by the accept loops.
    pub fn accept_alive(&self) {
        self.accept.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A proxy worker's clock, alive as of now; the worker ticks it.
    pub fn worker(&self) -> WorkerBeat {
        let beat = Arc::new(AtomicU64::new(self.now_ms()));
        self.workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(beat.clone());
        WorkerBeat {
            start: self.start,
            beat,
        }
    }

    /// The proxy worker that showed it was alive longest ago (number from 1), and how long
    /// ago; `None` without workers.
    pub fn stalest_worker(&self) -> Option<(usize, Duration)> {
        let now = self.now_ms();
        let workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        workers
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let age = now.saturating_sub(b.load(Ordering::Relaxed));
                (i + 1, Duration::from_millis(age))
            })
            .max_by_key(|(_, age)| *age)
    }

    /// How long ago the accept loops last showed they were alive (for the watchdog).
    pub fn accept_age(&self) -> Duration {
        Duration::from_millis(
            self.now_ms()
                .saturating_sub(self.accept.load(Ordering::Relaxed)),
        )
    }
}

/// One proxy worker's heartbeat, ticked from its thread.
#[derive(Debug, Clone)]
pub struct WorkerBeat {
    start: Instant,
    beat: Arc<AtomicU64>,
}

impl WorkerBeat {
    pub fn alive(&self) {
        self.beat
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

/// The outcome of a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Settings that changed in the file but only take effect after a restart.
    pub needs_restart: Vec<String>,
}

impl Shared {
    pub fn new(
        generation: Generation,
        bound: Vec<SocketAddr>,
        config_path: Option<PathBuf>,
        overrides: Overrides,
        tokens: Arc<Tokens>,
        metrics: Arc<Metrics>,
    ) -> Shared {
        let keys_dir = crate::auth::token_store::state_dir(&generation.config.store);
        Shared {
            keys: Arc::new(ClientKeys::open(&keys_dir)),
            unix_bound: Default::default(),
            current: RwLock::new(Arc::new(generation)),
            bound,
            config_path,
            overrides,
            counters: Counters::default(),
            metrics,
            tokens,
            logins: Logins::default(),
            device_logins: Default::default(),
            heartbeat: Default::default(),
            listed: Mutex::new(HashMap::new()),
            legacy_sessions: Default::default(),
            catalog_wake: tokio::sync::Notify::new(),
            rebuild: Mutex::new(()),
            started: Instant::now(),
            started_at: SystemTime::now(),
            last_reload_error: Mutex::new(None),
        }
    }

    /// The configuration generation in force now.
    pub fn current(&self) -> Arc<Generation> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-reads the config file with the same flags on top. On any error nothing changes.
    /// Requests already in flight finish under the generation they started with.
    pub fn reload(&self) -> Result<Reloaded, BuildError> {
        let result = self.try_reload();
        *self
            .last_reload_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = result.as_ref().err().map(|e| e.to_string());
        result
    }

    /// [`Shared::reload`], with the outcome in the log; the catalog refresher is woken after a
    /// good one. What systemd hears of it is `control::systemd::reload`'s business.
    pub fn reload_logged(&self, via: &str) -> Result<Reloaded, BuildError> {
        let result = self.reload();
        match &result {
            Ok(r) if r.needs_restart.is_empty() => {
                self.catalog_wake.notify_one();
                tracing::info!(via, "configuration reloaded")
            }
            Ok(r) => {
                self.catalog_wake.notify_one();
                tracing::warn!(
                via,
                settings = %r.needs_restart.join(", "),
                "configuration reloaded; some changes need a restart"
                )
            }
            Err(e) => {
                tracing::error!(via, error = %e, "reload failed; the old configuration stays")
            }
        }
        result
    }

    fn try_reload(&self) -> Result<Reloaded, BuildError> {
        let _serial = lock(&self.rebuild);
        let config = config::load(self.config_path.as_deref(), &self.overrides)?;
        let old = self.current();
        let mut needs_restart = Vec::new();
        if listen_spec(&old.config) != listen_spec(&config) {
            needs_restart.push("listen.addresses".to_string());
        }
        let unix_socket = |c: &Config| {
            let u = &c.listen.unix;
            (u.paths.clone(), u.mode, u.group.clone())
        };
        if unix_socket(&old.config) != unix_socket(&config) {
            needs_restart.push("listen.unix".to_string());
        }
        if old.config.limits.max_connections != config.limits.max_connections {
            needs_restart.push("limits.max_connections".to_string());
        }
        if old.config.limits.workers != config.limits.workers {
            needs_restart.push("limits.workers".to_string());
        }
        if old.config.admin.socket != config.admin.socket {
            needs_restart.push("admin.socket".to_string());
        }
        if old.config.admin.metrics_address != config.admin.metrics_address {
            needs_restart.push("admin.metrics_address".to_string());
        }
        let listed = lock(&self.listed).clone();
        let generation = Generation::build_with(config, &self.bound, &listed)?;
        self.tokens.apply(&generation.config);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(generation);
        Ok(Reloaded { needs_restart })
    }

    /// A new server list for an `alibaba` catalog: the generation is rebuilt around it (same
    /// configuration), so the ACL's names and IDs resolve against it at once.
    pub fn set_listed(
        &self,
        upstream: &str,
        servers: Vec<crate::config::Server>,
    ) -> Result<(), BuildError> {
        let _serial = lock(&self.rebuild);
        lock(&self.listed).insert(upstream.to_string(), servers);
        let listed = lock(&self.listed).clone();
        let config = (*self.current().config).clone();
        let generation = Generation::build_with(config, &self.bound, &listed)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(generation);
        Ok(())
    }

    /// The redirect URI of a login: `/callback` on the first proxy address.
    pub fn callback_uri(&self) -> String {
        let addr = self
            .bound
            .first()
            .copied()
            .unwrap_or_else(|| ([127, 0, 0, 1], 0).into());
        let addr = if addr.ip().is_unspecified() {
            SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
        } else {
            addr
        };
        format!("http://{addr}/callback")
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn listen_spec(c: &Config) -> Vec<SocketAddr> {
    c.listen.addresses.clone()
}
