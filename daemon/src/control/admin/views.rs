//! The admin API's answers, built from the daemon's state.

use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use mcpproxyd_api as api;

use crate::auth::tokens::ProfileView;
use crate::config::{AuthProfile, CatalogSource, Config, TokenSource};
use crate::control::banner;
use crate::control::metrics::Gauges;
use crate::proxy::acl::Decision;
use crate::proxy::path;
use crate::proxy::policy::ToolDecision;
use crate::state::{Generation, Shared};

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn status(shared: &Shared) -> api::Status {
    let g = shared.current();
    let c = &g.config;
    api::Status {
        version: env!("CARGO_PKG_VERSION").into(),
        pid: std::process::id(),
        started_at: unix(shared.started_at),
        uptime_seconds: shared.started.elapsed().as_secs(),
        listen: shared.bound.iter().map(|a| a.to_string()).collect(),
        config: api::ConfigInfo {
            source: c.source.to_string(),
            loaded_at: unix(g.loaded_at),
            last_reload_error: shared
                .last_reload_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        },
        upstreams: upstreams(&g),
        profiles: profiles(shared, c),
        token_store: token_store(shared, c),
        acl: api::AclSummary {
            allowed: g.acl.allowed_entries().map(str::to_string).collect(),
            blocked: g.acl.blocked_entries().map(str::to_string).collect(),
            unresolved: g.acl.unresolved(),
        },
        counters: api::Counters {
            requests: shared.counters.requests.load(Ordering::Relaxed),
            denied: shared.counters.denied.load(Ordering::Relaxed),
            open_streams: shared.counters.open_streams.load(Ordering::Relaxed) as u64,
            tool_denied: shared.metrics.tools.denied(),
        },
        listen_unix: shared
            .unix_bound
            .get()
            .into_iter()
            .flatten()
            .map(|p| p.display().to_string())
            .collect(),
        client_keys: super::keys::status(shared),
    }
}

/// Each upstream, with how many catalogued servers it has.
fn upstreams(g: &Generation) -> Vec<api::UpstreamStatus> {
    g.config
        .upstreams
        .iter()
        .map(|u| api::UpstreamStatus {
            name: u.name.clone(),
            mount: u.mount.clone(),
            url: u.url.to_string(),
            auth: u.auth.clone(),
            catalog: match u.catalog {
                CatalogSource::Alibaba => "alibaba".into(),
                CatalogSource::Static => "static".into(),
            },
            servers: g
                .catalog
                .servers
                .iter()
                .filter(|s| s.upstream == u.name)
                .count(),
        })
        .collect()
}

/// Each auth profile: its token's state, what to do about it, and a warning before the login
/// itself runs out.
fn profiles(shared: &Shared, c: &Config) -> Vec<api::ProfileStatus> {
    let now = crate::clock::now();
    let warn_within = c.limits.refresh_token_warning.as_secs();
    shared
        .tokens
        .views()
        .into_iter()
        .map(|v| api::ProfileStatus {
            name: v.name.clone(),
            kind: v.kind.into(),
            state: v.phase,
            valid_until: v.valid_until,
            refresh_at: v.refresh_at,
            detail: detail(&v, c.auth.get(&v.name), now),
            warning: step_up_warning(&v).or_else(|| {
                v.refresh_expires_at
                    .and_then(|t| login_warning(&v.name, t, now, warn_within))
            }),
            needed_scopes: v.needed_scopes.clone(),
            last_error: v.last_error,
        })
        .collect()
}

/// What `status` says of a machine profile: where its tokens come from, and while its token
/// requests fail, when the next one is.
fn machine_detail(v: &ProfileView, now: u64) -> String {
    let source = "client credentials: the daemon fetches and renews its tokens itself (no login)";
    match (&v.last_error, v.refresh_at) {
        (Some(_), Some(at)) if at > now => format!(
            "{source}; the last token request failed, next attempt in {}s",
            at - now
        ),
        _ => source.to_string(),
    }
}

/// One line on where a profile's token comes from, or what to run to get one.
fn detail(v: &ProfileView, profile: Option<&AuthProfile>, now: u64) -> String {
    if let Some(AuthProfile::Static(st)) = profile {
        return match &st.source {
            TokenSource::File(f) => format!("static token from {}", f.display()),
            TokenSource::Credential(n) => format!("static token from systemd credential {n}"),
        };
    }
    if let Some(AuthProfile::OAuth(o)) = profile {
        if crate::auth::machine::is_machine(o) {
            return machine_detail(v, now);
        }
    }
    match v.phase {
        api::ProfileState::LoggedOut => format!(
            "not logged in: run `mcpproxyctl login --profile {}`",
            v.name
        ),
        api::ProfileState::NeedsLogin if !v.refreshable => format!(
            "the login ended with its access token (the authorization server issued no refresh \
             token{}): run `mcpproxyctl login --profile {}`",
            no_refresh_hint(profile),
            v.name
        ),
        api::ProfileState::NeedsLogin => format!(
            "the server refused the refresh: run `mcpproxyctl login --profile {}`",
            v.name
        ),
        api::ProfileState::Revoked => format!(
            "revoked: run `mcpproxyctl login --profile {}` for a new token",
            v.name
        ),
        _ if !v.refreshable => format!(
            "OAuth token without a refresh token: the login lasts only until the access token \
             expires at {} (the authorization server issued no refresh token{}); then run \
             `mcpproxyctl login --profile {}`",
            v.valid_until.unwrap_or_default(),
            no_refresh_hint(profile),
            v.name
        ),
        _ => match v.refresh_expires_at {
            Some(t) => format!("OAuth token; the login itself lasts until {}", t),
            None => "OAuth token".to_string(),
        },
    }
}

/// A warning when an upstream asked for scopes the token lacks.
fn step_up_warning(v: &ProfileView) -> Option<String> {
    if v.needed_scopes.is_empty() {
        return None;
    }
    Some(format!(
        "an upstream needs more scopes: run `mcpproxyctl login --profile {}` to grant `{}`",
        v.name,
        v.needed_scopes.join(" ")
    ))
}

/// Why a server would issue no refresh token, where the profile's kind tells.
fn no_refresh_hint(profile: Option<&AuthProfile>) -> &'static str {
    match profile {
        Some(AuthProfile::Alibaba(_)) => {
            "; for Alibaba Cloud the OAuth application must be a native (public) application and \
             the user a real account or RAM user: an assumed RAM role cannot obtain a refresh token"
        }
        _ => "",
    }
}

/// A warning when the login (the refresh token) ends at `t`, within `warn_within` of `now`.
fn login_warning(profile: &str, t: u64, now: u64, warn_within: u64) -> Option<String> {
    if t > now + warn_within {
        return None;
    }
    Some(if t <= now {
        format!("the login expired; run `mcpproxyctl login --profile {profile}`")
    } else {
        format!(
            "the login expires in {}h; run `mcpproxyctl login --profile {profile}` before then",
            (t - now) / 3600
        )
    })
}

fn token_store(shared: &Shared, c: &Config) -> String {
    match shared.tokens.store_info() {
        Some(info) if info.survives_reboot => info.name,
        Some(info) => format!("{} (tokens are lost at reboot)", info.name),
        None if c.auth.values().all(|p| matches!(p, AuthProfile::Static(_))) => {
            "none needed: static tokens only".to_string()
        }
        None => "unavailable: the token store could not be opened (see the log)".to_string(),
    }
}

fn access(d: &Decision) -> (api::Access, Option<String>) {
    match d {
        Decision::Allowed { rule } => (api::Access::Allowed, rule.clone()),
        Decision::Blocked { rule, .. } => (api::Access::Blocked, Some(rule.clone())),
        Decision::NotAllowed => (api::Access::NotAllowed, None),
    }
}

pub fn servers(shared: &Shared) -> api::Servers {
    let g = shared.current();
    let base = shared
        .bound
        .first()
        .map(banner::base_url)
        .unwrap_or_default();
    let servers = g
        .catalog
        .servers
        .iter()
        .map(|s| {
            let probe = s.mcp.as_deref().or(s.sse.as_deref()).unwrap_or("/");
            let (access, rule) = access(&g.acl.check(probe));
            api::ServerInfo {
                name: s.name.clone(),
                id: s.id.clone(),
                upstream: s.upstream.clone(),
                mcp_url: s.mcp.as_ref().map(|p| format!("{base}{p}")),
                sse_url: s.sse.as_ref().map(|p| format!("{base}{p}")),
                access,
                rule,
                policies: g
                    .policies
                    .applied(&s.upstream, Some(s))
                    .summaries()
                    .into_iter()
                    .map(|p| api::PolicyInfo {
                        name: p.name,
                        allowed_tools: p.allowed_tools,
                        blocked_tools: p.blocked_tools,
                        read_only: p.read_only,
                    })
                    .collect(),
            }
        })
        .collect();
    api::Servers { servers }
}

pub fn acl_check(shared: &Shared, req: &api::AclCheck) -> api::AclVerdict {
    let g = shared.current();
    let verdict =
        |decision: &str, allowed: bool, rule: Option<String>, reason: String| api::AclVerdict {
            path: req.path.clone(),
            allowed,
            decision: decision.into(),
            rule,
            reason,
            upstream: None,
            server: None,
            key: None,
            tool: None,
        };
    // The proxy sees the path without its query; accept one here too.
    let local = req.path.split('?').next().unwrap_or_default();
    if let Err(e) = path::check_normal(local) {
        return verdict(
            "invalid_path",
            false,
            None,
            format!("refused with 400: {e}"),
        );
    }
    let Some(upstream) = g.route(local) else {
        return verdict(
            "no_route",
            false,
            None,
            "no upstream is mounted at this path (404)".into(),
        );
    };
    let decision = g.acl.check(local);
    let (_, rule) = access(&decision);
    let name = match &decision {
        Decision::Allowed { .. } => "allowed",
        Decision::Blocked { .. } => "blocked",
        Decision::NotAllowed => "not_allowed",
    };
    let mut v = verdict(name, decision.is_allowed(), rule, decision.reason());
    v.upstream = Some(upstream.name.clone());
    let server = g.catalog.server_for(local);
    v.server = server.map(|s| s.name.clone());
    if let Some(tool) = &req.tool {
        let t = crate::proxy::tool_policy::server_policy(&g, upstream, server)
            .map_or(ToolDecision::Allowed, |p| p.tool_allowed(tool));
        if v.allowed && !t.is_allowed() {
            v.allowed = false;
            v.decision = "tool_denied".into();
            v.rule = Some(t.rule());
            v.reason = t.reason();
        }
        v.tool = Some(api::ToolVerdict {
            tool: tool.clone(),
            allowed: t.is_allowed(),
            policy: match &t {
                ToolDecision::Denied { policy, .. } => Some(policy.clone()),
                ToolDecision::Allowed => None,
            },
            reason: t.reason(),
        });
    }
    super::keys::apply_to_verdict(shared, req, &mut v);
    v
}

pub fn metrics(shared: &Shared) -> String {
    let gauges = Gauges {
        open_streams: shared.counters.open_streams.load(Ordering::Relaxed) as u64,
        token_expiry: Vec::new(),
    };
    shared.metrics.render(&gauges)
}
