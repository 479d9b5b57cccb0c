//! Turns the raw file plus the flags into a typed [`Config`], refusing anything doubtful.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use url::Url;

use super::locate::{Locator, Seg};
use super::raw::{RawAuth, RawConfig, RawUpstream};
use super::units::{parse_duration, parse_size};
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

fn upstream(
    i: usize,
    u: &RawUpstream,
    auth: &BTreeMap<String, AuthProfile>,
    flags: &Overrides,
    at: &Locator<'_>,
) -> Result<Upstream> {
    let key = |k: &'static str| [Seg::Key("upstream"), Seg::Index(i), Seg::Key(k)];
    let name = u
        .name
        .clone()
        .unwrap_or_else(|| format!("upstream-{}", i + 1));
    let auth_name = match &u.auth {
        Some(a) => a.clone(),
        None if auth.len() == 1 => auth.keys().next().cloned().unwrap_or_default(),
        None => {
            return Err(at.error(
                &key("name"),
                "set `auth` to the name of an [auth.NAME] profile",
            ))
        }
    };
    let Some(profile) = auth.get(&auth_name) else {
        let known: Vec<_> = auth.keys().map(String::as_str).collect();
        return Err(at.error(
            &key("auth"),
            format!(
                "no [auth.{auth_name}] profile (profiles: {})",
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            ),
        ));
    };
    let url_key = if i == 0 && flags.upstream.is_some() {
        vec![Seg::Key("--upstream")]
    } else {
        key("url").to_vec()
    };
    let url_text = match (&u.url, profile) {
        (Some(url), _) => url.clone(),
        (None, AuthProfile::Alibaba(p)) => p.region.preset().mcp_endpoint.to_string(),
        (None, _) => return Err(at.error(&key("name"), "`url` is required")),
    };
    let url = upstream_url(&url_text, u.allow_http).map_err(|m| at.error(&url_key, m))?;
    let base_path = url.path().trim_end_matches('/').to_string();

    let mount_text = u.mount.clone().unwrap_or_else(|| "/".into());
    let mount = normal_mount(&mount_text).map_err(|m| at.error(&key("mount"), m))?;
    let catalog = match u.catalog.as_deref() {
        Some("alibaba") => CatalogSource::Alibaba,
        Some("static") => CatalogSource::Static,
        None if matches!(profile, AuthProfile::Alibaba(_)) && u.servers.is_empty() => {
            CatalogSource::Alibaba
        }
        None => CatalogSource::Static,
        Some(other) => {
            return Err(at.error(
                &key("catalog"),
                format!("unknown catalog `{other}`; use alibaba or static"),
            ))
        }
    };
    let mut servers = Vec::new();
    for (j, s) in u.servers.iter().enumerate() {
        let skey = |k: &'static str| {
            [
                Seg::Key("upstream"),
                Seg::Index(i),
                Seg::Key("servers"),
                Seg::Index(j),
                Seg::Key(k),
            ]
        };
        if s.name.trim().is_empty() {
            return Err(at.error(&skey("name"), "every server needs a name"));
        }
        let mut paths = [None, None];
        for (slot, (field, text)) in [("mcp", &s.mcp), ("sse", &s.sse)].into_iter().enumerate() {
            if text.is_empty() {
                continue;
            }
            path::check_normal(text)
                .map_err(|e| at.error(&skey(field), format!("`{text}`: {e}")))?;
            if !path::under(text, &base_path) {
                return Err(at.error(
                    &skey(field),
                    format!("`{text}` is not under the upstream URL's path `{base_path}`"),
                ));
            }
            paths[slot] = Some(text.clone());
        }
        if paths.iter().all(Option::is_none) {
            return Err(at.error(&skey("mcp"), "set `mcp` and/or `sse`"));
        }
        let [mcp, sse] = paths;
        servers.push(Server {
            name: s.name.trim().to_string(),
            id: s.id.trim().to_string(),
            mcp,
            sse,
        });
    }
    let catalog_refresh = match &u.catalog_refresh {
        None => DEFAULT_CATALOG_REFRESH,
        Some(text) => {
            let d = parse_duration(text).map_err(|m| at.error(&key("catalog_refresh"), m))?;
            if d < std::time::Duration::from_secs(10) {
                return Err(at.error(&key("catalog_refresh"), "must be at least 10s"));
            }
            d
        }
    };
    let ca_file = non_empty(&u.ca_file).map(PathBuf::from);
    if let Some(f) = &ca_file {
        if !f.is_file() {
            return Err(at.error(&key("ca_file"), format!("{} does not exist", f.display())));
        }
    }
    let proxy = match non_empty(&u.proxy) {
        None => None,
        Some(text) => {
            let p = Url::parse(text)
                .ok()
                .filter(|p| matches!(p.scheme(), "http" | "https") && p.host().is_some())
                .ok_or_else(|| {
                    at.error(
                        &key("proxy"),
                        format!("`{text}` is not an http(s):// proxy URL"),
                    )
                })?;
            Some(p)
        }
    };
    Ok(Upstream {
        name,
        mount,
        url,
        base_path,
        auth: auth_name,
        ca_file,
        catalog,
        catalog_refresh,
        allow_http: u.allow_http,
        proxy,
        servers,
    })
}

/// An upstream URL: `https://`, or `http://` to a loopback address when explicitly allowed.
fn upstream_url(text: &str, allow_http: bool) -> std::result::Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if url.host().is_none() {
        return Err(format!("`{text}` has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in the URL are not allowed; use an [auth] profile".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`{text}`: an upstream URL has no query or fragment"
        ));
    }
    path::check_normal(url.path()).map_err(|e| format!("`{text}`: {e}"))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if !allow_http => Err(format!(
            "`{text}` is plain http: the token would cross the network unencrypted; use https, \
             or for a loopback test server set allow_http = true"
        )),
        "http" if !is_loopback_host(&url) => Err(format!(
            "`{text}`: plain http is only allowed to a loopback address"
        )),
        "http" => Ok(url),
        other => Err(format!("`{text}`: unsupported scheme `{other}`; use https")),
    }
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

fn normal_mount(text: &str) -> std::result::Result<String, String> {
    if !text.starts_with('/') {
        return Err(format!("`{text}` must start with `/`"));
    }
    path::check_normal(text).map_err(|e| format!("`{text}`: {e}"))?;
    if text.contains(['?', '#']) {
        return Err(format!("`{text}`: a mount is a path only"));
    }
    let trimmed = text.trim_end_matches('/');
    Ok(if trimmed.is_empty() {
        "/".into()
    } else {
        trimmed.into()
    })
}

fn check_unique_upstreams(upstreams: &[Upstream], at: &Locator<'_>) -> Result<()> {
    for (i, u) in upstreams.iter().enumerate() {
        for other in &upstreams[..i] {
            if other.name == u.name {
                return Err(at.error(
                    &[Seg::Key("upstream"), Seg::Index(i), Seg::Key("name")],
                    format!("upstream name `{}` is used twice", u.name),
                ));
            }
            if other.mount == u.mount {
                return Err(at.error(
                    &[Seg::Key("upstream"), Seg::Index(i), Seg::Key("mount")],
                    format!(
                        "mount `{}` is used by upstream `{}` already",
                        u.mount, other.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn auth_profile(name: &str, p: &RawAuth, at: &Locator<'_>) -> Result<AuthProfile> {
    super::validate_auth::profile(name, p, at)
}

pub(super) fn non_empty(s: &str) -> Option<&str> {
    let t = s.trim();
    (!t.is_empty()).then_some(t)
}
