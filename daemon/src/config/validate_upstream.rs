//! Validation of `[[upstream]]` tables: the URL the token goes to, the mount, the catalog and
//! its static servers, and the outbound proxy.

use std::collections::BTreeMap;
use std::path::PathBuf;

use url::Url;

use super::locate::{Locator, Seg};
use super::raw::RawUpstream;
use super::units::{non_empty, parse_duration};
use super::*;
use crate::proxy::path;

type Result<T> = std::result::Result<T, ConfigError>;

pub(super) fn upstream(
    i: usize,
    u: &RawUpstream,
    auth: &BTreeMap<String, AuthProfile>,
    flags: &Overrides,
    at: &Locator<'_>,
) -> Result<Upstream> {
    let at = Here { i, at };
    let name = u
        .name
        .clone()
        .unwrap_or_else(|| format!("upstream-{}", i + 1));
    let (auth_name, profile) = profile_of(u, auth, at)?;
    let url = url_of(u, profile, i == 0 && flags.upstream.is_some(), at)?;
    let base_path = url.path().trim_end_matches('/').to_string();
    let mount_text = u.mount.clone().unwrap_or_else(|| "/".into());
    let mount = normal_mount(&mount_text).map_err(|m| at.error("mount", m))?;
    // Fields are checked in the order they are written, so the first error reported is the
    // same as ever.
    Ok(Upstream {
        name,
        mount,
        catalog: catalog_of(u, profile, at)?,
        servers: servers(u, &base_path, at)?,
        url,
        base_path,
        auth: auth_name,
        catalog_refresh: catalog_refresh(u, at)?,
        ca_file: ca_file(u, at)?,
        allow_http: u.allow_http,
        proxy: proxy(u, at)?,
        http_version: http_version(u, at)?,
    })
}

/// Where in the file an upstream's errors point: `upstream[i].KEY`.
#[derive(Clone, Copy)]
struct Here<'a, 'b> {
    i: usize,
    at: &'a Locator<'b>,
}

impl Here<'_, '_> {
    fn error(&self, k: &'static str, message: impl Into<String>) -> ConfigError {
        let key = [Seg::Key("upstream"), Seg::Index(self.i), Seg::Key(k)];
        self.at.error(&key, message)
    }
}

/// The `[auth.NAME]` profile the upstream names (or the only one there is).
fn profile_of<'p>(
    u: &RawUpstream,
    auth: &'p BTreeMap<String, AuthProfile>,
    at: Here<'_, '_>,
) -> Result<(String, &'p AuthProfile)> {
    let auth_name = match &u.auth {
        Some(a) => a.clone(),
        None if auth.len() == 1 => auth.keys().next().cloned().unwrap_or_default(),
        None => return Err(at.error("name", "set `auth` to the name of an [auth.NAME] profile")),
    };
    let Some(profile) = auth.get(&auth_name) else {
        let known: Vec<_> = auth.keys().map(String::as_str).collect();
        return Err(at.error(
            "auth",
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
    Ok((auth_name, profile))
}

/// The URL the token goes to: as written (or by `--upstream`), else the region's endpoint of
/// an `alibaba` profile.
fn url_of(
    u: &RawUpstream,
    profile: &AuthProfile,
    from_flag: bool,
    at: Here<'_, '_>,
) -> Result<Url> {
    let url_text = match (u.url.as_deref().and_then(non_empty), profile) {
        (Some(url), _) => url.to_string(),
        (None, AuthProfile::Alibaba(p)) => p.region.preset().mcp_endpoint.to_string(),
        (None, _) => return Err(at.error("name", "`url` is required")),
    };
    let mut url = upstream_url(&url_text, u.allow_http).map_err(|m| {
        if from_flag {
            at.at.error(&[Seg::Key("--upstream")], m)
        } else {
            at.error("url", m)
        }
    })?;
    if let AuthProfile::Alibaba(p) = profile {
        url = follow_region(url, p.region, from_flag);
    }
    Ok(url)
}

fn catalog_of(u: &RawUpstream, profile: &AuthProfile, at: Here<'_, '_>) -> Result<CatalogSource> {
    Ok(match u.catalog.as_deref() {
        Some("alibaba") => CatalogSource::Alibaba,
        Some("static") => CatalogSource::Static,
        None if matches!(profile, AuthProfile::Alibaba(_)) && u.servers.is_empty() => {
            CatalogSource::Alibaba
        }
        None => CatalogSource::Static,
        Some(other) => {
            return Err(at.error(
                "catalog",
                format!("unknown catalog `{other}`; use alibaba or static"),
            ))
        }
    })
}

/// The static catalog entries: each needs a name and normal paths under the URL's own path.
fn servers(u: &RawUpstream, base_path: &str, at: Here<'_, '_>) -> Result<Vec<Server>> {
    let mut servers = Vec::new();
    for (j, s) in u.servers.iter().enumerate() {
        let skey = |k: &'static str| {
            [
                Seg::Key("upstream"),
                Seg::Index(at.i),
                Seg::Key("servers"),
                Seg::Index(j),
                Seg::Key(k),
            ]
        };
        if s.name.trim().is_empty() {
            return Err(at.at.error(&skey("name"), "every server needs a name"));
        }
        let mut paths = [None, None];
        for (slot, (field, text)) in [("mcp", &s.mcp), ("sse", &s.sse)].into_iter().enumerate() {
            if text.is_empty() {
                continue;
            }
            path::check_normal(text)
                .map_err(|e| at.at.error(&skey(field), format!("`{text}`: {e}")))?;
            if !path::under(text, base_path) {
                return Err(at.at.error(
                    &skey(field),
                    format!("`{text}` is not under the upstream URL's path `{base_path}`"),
                ));
            }
            paths[slot] = Some(text.clone());
        }
        if paths.iter().all(Option::is_none) {
            return Err(at.at.error(&skey("mcp"), "set `mcp` and/or `sse`"));
        }
        let [mcp, sse] = paths;
        servers.push(Server {
            name: s.name.trim().to_string(),
            id: s.id.trim().to_string(),
            mcp,
            sse,
        });
    }
    Ok(servers)
}

fn catalog_refresh(u: &RawUpstream, at: Here<'_, '_>) -> Result<std::time::Duration> {
    match &u.catalog_refresh {
        None => Ok(DEFAULT_CATALOG_REFRESH),
        Some(text) => {
            let d = parse_duration(text).map_err(|m| at.error("catalog_refresh", m))?;
            if d < std::time::Duration::from_secs(10) {
                return Err(at.error("catalog_refresh", "must be at least 10s"));
            }
            Ok(d)
        }
    }
}

fn http_version(u: &RawUpstream, at: Here<'_, '_>) -> Result<crate::config::HttpVersion> {
    use crate::config::HttpVersion;
    match u.http_version.as_deref() {
        None | Some("auto") => Ok(HttpVersion::Auto),
        Some("1.1") => Ok(HttpVersion::Http11),
        Some(other) => Err(at.error(
            "http_version",
            format!(
                "unknown HTTP version {other:?}: \"auto\" (HTTP/2 when the server offers it, \
                 else HTTP/1.1) or \"1.1\" (HTTP/1.1 only)"
            ),
        )),
    }
}

fn ca_file(u: &RawUpstream, at: Here<'_, '_>) -> Result<Option<PathBuf>> {
    let ca_file = non_empty(&u.ca_file).map(PathBuf::from);
    if let Some(f) = &ca_file {
        if !f.is_file() {
            return Err(at.error("ca_file", format!("{} does not exist", f.display())));
        }
    }
    Ok(ca_file)
}

fn proxy(u: &RawUpstream, at: Here<'_, '_>) -> Result<Option<Url>> {
    let Some(text) = non_empty(&u.proxy) else {
        return Ok(None);
    };
    Url::parse(text)
        .ok()
        .filter(|p| matches!(p.scheme(), "http" | "https") && p.host().is_some())
        .map(Some)
        .ok_or_else(|| at.error("proxy", format!("`{text}` is not an http(s):// proxy URL")))
}

/// A region's preset MCP endpoint written out in the file is not a URL of the operator's own: it
/// follows the profile's region, so `--region INTL` never sends INTL tokens to the CN endpoint.
/// Any other URL, and whatever `--upstream` says, is kept as it is.
fn follow_region(url: Url, region: Region, from_flag: bool) -> Url {
    match Region::of_mcp_endpoint(&url) {
        Some(preset) if preset != region && !from_flag => {
            Url::parse(region.preset().mcp_endpoint).expect("preset URLs are valid")
        }
        _ => url,
    }
}

/// An upstream URL: `https://`, or `http://` to a loopback address when explicitly allowed.
fn upstream_url(text: &str, allow_http: bool) -> std::result::Result<Url, String> {
    let url = super::units::parse_url(text)?;
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

pub(super) fn check_unique_upstreams(upstreams: &[Upstream], at: &Locator<'_>) -> Result<()> {
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
