//! Turns the raw file plus the flags into a typed [`Config`], refusing anything doubtful.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use super::locate::{Locator, Seg};
use super::raw::{RawAuth, RawConfig, RawUpstream};
use super::units::{non_empty, parse_duration, parse_size};
use super::validate_upstream::{check_unique_upstreams, upstream};
use super::*;
use crate::proxy::path;

type Result<T> = std::result::Result<T, ConfigError>;

/// Name of the auth profile and upstream of the built-in Alibaba Cloud preset.
const PRESET_NAME: &str = "alibaba";

pub(super) fn validate(
    mut raw: RawConfig,
    source: Source,
    flags: &Overrides,
    at: &Locator<'_>,
) -> Result<Config> {
    let upstreams_given = raw.upstream.is_some();
    let mut raw_upstreams = raw.upstream.take().unwrap_or_else(|| {
        vec![RawUpstream {
            name: Some(PRESET_NAME.into()),
            auth: Some(PRESET_NAME.into()),
            ..Default::default()
        }]
    });
    if !upstreams_given && !raw.auth.contains_key(PRESET_NAME) {
        raw.auth.insert(
            PRESET_NAME.into(),
            RawAuth {
                kind: Some("alibaba".into()),
                ..Default::default()
            },
        );
    }
    if raw_upstreams.is_empty() {
        return Err(at.error(
            &[Seg::Key("upstream")],
            "at least one [[upstream]] is needed",
        ));
    }
    apply_auth_flags(&mut raw, &raw_upstreams, flags);
    if let Some(url) = &flags.upstream {
        raw_upstreams[0].url = Some(url.clone());
    }
    if let Some(list) = &flags.allowed_servers {
        raw.acl.allowed_servers = list.clone();
    }
    if let Some(list) = &flags.blocked_servers {
        raw.acl.blocked_servers = list.clone();
    }

    let mut auth = BTreeMap::new();
    for (name, profile) in &raw.auth {
        auth.insert(name.clone(), auth_profile(name, profile, at)?);
    }
    let mut upstreams = Vec::new();
    for (i, u) in raw_upstreams.iter().enumerate() {
        upstreams.push(upstream(i, u, &auth, flags, at)?);
    }
    check_unique_upstreams(&upstreams, at)?;
    let upstream_names: Vec<String> = upstreams.iter().map(|u| u.name.clone()).collect();
    let policies = super::validate_policy::policies(&raw.policy, &upstream_names, at)?;

    Ok(Config {
        source,
        listen: listen(&raw, flags, at)?,
        admin: admin(&raw, at)?,
        store: store(&raw, at)?,
        limits: limits(&raw, at)?,
        log: log(&raw, at)?,
        acl: acl(&raw, at)?,
        upstreams,
        auth,
        policies,
        no_browser: flags.no_browser,
    })
}

/// `--region`, `--oauth-app-name` and `--scope` go to the first upstream's profile if it is an
/// `alibaba` one, else to the first `alibaba` profile.
fn apply_auth_flags(raw: &mut RawConfig, upstreams: &[RawUpstream], flags: &Overrides) {
    let is_alibaba = |p: &RawAuth| p.kind.as_deref() == Some("alibaba");
    let first = upstreams[0]
        .auth
        .clone()
        .filter(|n| raw.auth.get(n).is_some_and(is_alibaba))
        .or_else(|| {
            raw.auth
                .iter()
                .find(|(_, p)| is_alibaba(p))
                .map(|(n, _)| n.clone())
        });
    let Some(profile) = first.and_then(|n| raw.auth.get_mut(&n)) else {
        return;
    };
    if let Some(r) = &flags.region {
        profile.region = Some(r.clone());
    }
    if let Some(n) = &flags.oauth_app_name {
        profile.oauth_app_name = Some(n.clone());
    }
    if let Some(s) = &flags.scope {
        profile.scope = Some(s.clone());
    }
}

fn listen(raw: &RawConfig, flags: &Overrides, at: &Locator<'_>) -> Result<Listen> {
    let key = [Seg::Key("listen"), Seg::Key("addresses")];
    let texts = raw
        .listen
        .addresses
        .clone()
        .unwrap_or_else(|| vec![DEFAULT_LISTEN.to_string()]);
    if texts.is_empty() {
        return Err(at.error(&key, "at least one listen address is needed"));
    }
    let mut addresses = Vec::new();
    for text in &texts {
        let addr = parse_listen_addr(text).map_err(|m| at.error(&key, m))?;
        addresses.push(addr);
    }
    if let Some(host) = &flags.host {
        let ip = parse_host_ip(host).map_err(|m| at.error(&[Seg::Key("--host")], m))?;
        addresses[0].set_ip(ip);
    }
    if let Some(port) = flags.port {
        addresses[0].set_port(port);
    }
    for addr in &addresses {
        if addr.ip().is_unspecified() && !raw.listen.allow_public_bind {
            let m = format!(
                "{addr} listens on every interface, which exposes your credentials to the network; \
                 bind a specific address, or set listen.allow_public_bind = true"
            );
            return Err(at.error(&key, m));
        }
    }
    let mut seen = BTreeSet::new();
    for addr in &addresses {
        if addr.port() != 0 && !seen.insert(*addr) {
            return Err(at.error(&key, format!("{addr} is listed twice")));
        }
    }
    let hosts_key = [Seg::Key("listen"), Seg::Key("extra_hosts")];
    let mut extra_hosts = Vec::new();
    for h in &raw.listen.extra_hosts {
        extra_hosts.push(crate::proxy::guard::parse_host_value(h).ok_or_else(|| {
            at.error(
                &hosts_key,
                format!(
                    "`{h}` is not a Host value; write HOST or HOST:PORT, e.g. \"172.17.0.1:8088\""
                ),
            )
        })?);
    }
    let origins_key = [Seg::Key("listen"), Seg::Key("allowed_origins")];
    let mut allowed_origins = Vec::new();
    for o in &raw.listen.allowed_origins {
        allowed_origins.push(crate::proxy::guard::normalize_origin(o).ok_or_else(|| {
            at.error(
                &origins_key,
                format!("`{o}` is not an origin; write SCHEME://HOST[:PORT], e.g. \"http://localhost:3000\""),
            )
        })?);
    }
    Ok(Listen {
        addresses,
        allow_public_bind: raw.listen.allow_public_bind,
        extra_hosts,
        allowed_origins,
        unix: super::validate_listen::unix(raw, at)?,
        require_client_keys: super::validate_listen::require_client_keys(raw, at)?,
    })
}

/// `IP:PORT`, `[IPv6]:PORT` or `localhost:PORT`.
fn parse_listen_addr(text: &str) -> std::result::Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Some(port) = text.strip_prefix("localhost:") {
        if let Ok(port) = port.parse::<u16>() {
            return Ok(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port));
        }
    }
    Err(format!(
        "`{text}` is not a listen address; write IP:PORT, e.g. \"127.0.0.1:8088\" or \"[::1]:8088\""
    ))
}

fn parse_host_ip(text: &str) -> std::result::Result<IpAddr, String> {
    if text.eq_ignore_ascii_case("localhost") {
        return Ok(Ipv4Addr::LOCALHOST.into());
    }
    text.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| format!("`{text}` is not an IP address (e.g. 127.0.0.1 or ::1)"))
}

fn admin(raw: &RawConfig, at: &Locator<'_>) -> Result<Admin> {
    let socket = non_empty(&raw.admin.socket).map(PathBuf::from);
    if let Some(s) = &socket {
        if !s.is_absolute() {
            return Err(at.error(
                &[Seg::Key("admin"), Seg::Key("socket")],
                "the admin socket path must be absolute",
            ));
        }
    }
    let metrics_address = match non_empty(&raw.admin.metrics_address) {
        None => None,
        Some(text) => {
            let key = [Seg::Key("admin"), Seg::Key("metrics_address")];
            let addr = parse_listen_addr(text).map_err(|m| at.error(&key, m))?;
            if !addr.ip().is_loopback() {
                return Err(at.error(&key, "the metrics address must be a loopback address"));
            }
            Some(addr)
        }
    };
    Ok(Admin {
        socket,
        metrics_address,
        group: non_empty(&raw.admin.group).map(str::to_string),
    })
}

fn store(raw: &RawConfig, at: &Locator<'_>) -> Result<Store> {
    let kind = match raw.store.kind.as_deref().unwrap_or("auto") {
        "auto" => StoreKind::Auto,
        "keyring" => StoreKind::Keyring,
        "file" => StoreKind::File,
        other => {
            return Err(at.error(
                &[Seg::Key("store"), Seg::Key("kind")],
                format!("unknown store kind `{other}`; use auto, keyring or file"),
            ))
        }
    };
    let dir = non_empty(&raw.store.dir).map(PathBuf::from);
    Ok(Store { kind, dir })
}

fn limits(raw: &RawConfig, at: &Locator<'_>) -> Result<Limits> {
    let l = &raw.limits;
    let d = Limits::default();
    let dur = |name: &'static str, v: &Option<String>, default| -> Result<_> {
        let Some(text) = v else { return Ok(default) };
        let key = [Seg::Key("limits"), Seg::Key(name)];
        let value = parse_duration(text).map_err(|m| at.error(&key, m))?;
        if value.is_zero() {
            return Err(at.error(&key, "must be more than zero"));
        }
        Ok(value)
    };
    let size = |name: &'static str, v: &Option<String>, default| -> Result<_> {
        let Some(text) = v else { return Ok(default) };
        parse_size(text).map_err(|m| at.error(&[Seg::Key("limits"), Seg::Key(name)], m))
    };
    let limits = Limits {
        connect_timeout: dur("connect_timeout", &l.connect_timeout, d.connect_timeout)?,
        header_read_timeout: dur(
            "header_read_timeout",
            &l.header_read_timeout,
            d.header_read_timeout,
        )?,
        response_header_timeout: dur(
            "response_header_timeout",
            &l.response_header_timeout,
            d.response_header_timeout,
        )?,
        stream_idle_timeout: dur(
            "stream_idle_timeout",
            &l.stream_idle_timeout,
            d.stream_idle_timeout,
        )?,
        idle_timeout: dur("idle_timeout", &l.idle_timeout, d.idle_timeout)?,
        body_read_timeout: dur(
            "body_read_timeout",
            &l.body_read_timeout,
            d.body_read_timeout,
        )?,
        max_request_body: size("max_request_body", &l.max_request_body, d.max_request_body)?,
        retry_body_limit: size("retry_body_limit", &l.retry_body_limit, d.retry_body_limit)?,
        max_connections: match l.max_connections {
            None => d.max_connections,
            Some(0) => {
                return Err(at.error(
                    &[Seg::Key("limits"), Seg::Key("max_connections")],
                    "must be at least 1",
                ))
            }
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        },
        workers: match l.workers {
            None => None,
            Some(n) if (1..=crate::proxy::workers::MAX_WORKERS as u64).contains(&n) => {
                Some(n as usize)
            }
            Some(_) => {
                return Err(at.error(
                    &[Seg::Key("limits"), Seg::Key("workers")],
                    format!(
                        "must be from 1 to {} (or left out: one per core)",
                        crate::proxy::workers::MAX_WORKERS
                    ),
                ))
            }
        },
        shutdown_grace: dur("shutdown_grace", &l.shutdown_grace, d.shutdown_grace)?,
        login_timeout: dur("login_timeout", &l.login_timeout, d.login_timeout)?,
        refresh_token_warning: dur(
            "refresh_token_warning",
            &l.refresh_token_warning,
            d.refresh_token_warning,
        )?,
    };
    if limits.retry_body_limit > limits.max_request_body {
        return Err(at.error(
            &[Seg::Key("limits"), Seg::Key("retry_body_limit")],
            "must not be larger than max_request_body",
        ));
    }
    Ok(limits)
}

fn log(raw: &RawConfig, at: &Locator<'_>) -> Result<Log> {
    let target = match raw.log.target.as_deref().unwrap_or("auto") {
        "auto" => LogTarget::Auto,
        "journald" => LogTarget::Journald,
        "stderr" => LogTarget::Stderr,
        other => {
            return Err(at.error(
                &[Seg::Key("log"), Seg::Key("target")],
                format!("unknown log target `{other}`; use auto, journald or stderr"),
            ))
        }
    };
    let level = raw.log.level.clone().unwrap_or_else(|| "info".into());
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&level) {
        return Err(at.error(
            &[Seg::Key("log"), Seg::Key("level")],
            format!("not a log filter: {e}"),
        ));
    }
    Ok(Log {
        target,
        level,
        audit_rpc: raw.log.audit_rpc.unwrap_or(true),
    })
}

fn acl(raw: &RawConfig, at: &Locator<'_>) -> Result<AclConfig> {
    let check = |name: &'static str, list: &[String]| -> Result<Vec<String>> {
        let key = [Seg::Key("acl"), Seg::Key(name)];
        let mut out = Vec::new();
        for entry in list {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            if entry.starts_with('/') {
                path::check_normal(entry).map_err(|e| {
                    at.error(&key, format!("`{entry}` is not a normal path prefix: {e}"))
                })?;
            }
            let entry = if entry.starts_with('/') {
                entry.trim_end_matches('/')
            } else {
                entry
            };
            if entry.is_empty() {
                return Err(at.error(&key, "`/` matches every path; leave the list empty instead"));
            }
            out.push(entry.to_string());
        }
        Ok(out)
    };
    Ok(AclConfig {
        allowed: check("allowed_servers", &raw.acl.allowed_servers)?,
        blocked: check("blocked_servers", &raw.acl.blocked_servers)?,
    })
}

fn auth_profile(name: &str, p: &RawAuth, at: &Locator<'_>) -> Result<AuthProfile> {
    super::validate_auth::profile(name, p, at)
}
