//! The first step of the pipeline: DNS-rebinding guard (`Host`, absolute-form targets) and
//! `Origin` checks, and the CORS answers for allowed origins.
//!
//! A web page can make a browser send requests to `127.0.0.1:8088` under a hostname it controls
//! (DNS rebinding); the `Host` check stops those, and the `Origin` check stops cross-site pages.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use http::header::{HeaderMap, HeaderValue, HOST, ORIGIN, VARY};
use http::request::Parts;

/// Why the guard refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("the request has no Host header")]
    MissingHost,
    #[error("Host `{0}` is not an address of this proxy (DNS rebinding protection); add it to listen.extra_hosts if it is yours")]
    BadHost(String),
    #[error("Origin `{0}` is not allowed; add it to listen.allowed_origins if it is yours")]
    BadOrigin(String),
    #[error("the request has more than one Host or Origin header")]
    Duplicate,
}

/// The `Host` and `Origin` values this proxy accepts.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    hosts: HashSet<String>,
    origins: HashSet<String>,
}

fn bare(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

impl Guard {
    /// `bound` are the addresses actually listened on (ports resolved); `extra_hosts` and
    /// `origins` are already normalised by the config.
    pub fn new(bound: &[SocketAddr], extra_hosts: &[String], origins: &[String]) -> Guard {
        let mut hosts = HashSet::new();
        let mut add = |host: String, port: u16| {
            if port == 80 {
                hosts.insert(host.clone());
            }
            hosts.insert(format!("{host}:{port}"));
        };
        for addr in bound {
            let port = addr.port();
            add(bare(addr.ip()), port);
            if addr.ip().is_loopback() || addr.ip().is_unspecified() {
                for alias in ["localhost", "127.0.0.1", "[::1]"] {
                    add(alias.to_string(), port);
                }
            }
        }
        for extra in extra_hosts {
            if has_port(extra) {
                hosts.insert(extra.clone());
            } else {
                for addr in bound {
                    hosts.insert(format!("{extra}:{}", addr.port()));
                }
                hosts.insert(extra.clone());
            }
        }
        Guard {
            hosts,
            origins: origins.iter().cloned().collect(),
        }
    }

    /// The guard of a Unix-socket listener: there is no address to name, so `localhost` (what
    /// `curl --unix-socket` and HTTP-over-socket clients send) and the extra hosts.
    pub fn for_unix(extra_hosts: &[String], origins: &[String]) -> Guard {
        let mut hosts: HashSet<String> = extra_hosts.iter().cloned().collect();
        hosts.insert("localhost".to_string());
        hosts.insert("localhost:80".to_string());
        Guard {
            hosts,
            origins: origins.iter().cloned().collect(),
        }
    }

    /// Checks a request's target host and origin; returns the allowed `Origin`, if one was sent.
    pub fn check(&self, parts: &Parts) -> Result<Option<String>, GuardError> {
        let mut hosts = parts.headers.get_all(HOST).iter();
        let header = hosts.next();
        if hosts.next().is_some() {
            return Err(GuardError::Duplicate);
        }
        // The authority of an absolute-form target (or HTTP/2's :authority) must be ours too.
        let authority = parts.uri.authority().map(|a| a.as_str());
        if authority.is_none() && header.is_none() {
            return Err(GuardError::MissingHost);
        }
        if let Some(scheme) = parts.uri.scheme_str() {
            if scheme != "http" {
                return Err(GuardError::BadHost(format!("{scheme}://")));
            }
        }
        for value in authority.into_iter().chain(header.map(header_text)) {
            // The usual `Host` is already in normal form: looked up as sent, nothing allocated.
            if already_normal(value) && self.hosts.contains(value) {
                continue;
            }
            let normal = parse_host_value(value).unwrap_or_default();
            if !self.hosts.contains(&normal) {
                return Err(GuardError::BadHost(printable(value)));
            }
        }
        let mut origins = parts.headers.get_all(ORIGIN).iter();
        let origin = origins.next();
        if origins.next().is_some() {
            return Err(GuardError::Duplicate);
        }
        match origin {
            None => Ok(None),
            Some(value) => {
                let text = header_text(value);
                match normalize_origin(text) {
                    Some(o) if self.origins.contains(&o) => Ok(Some(text.to_string())),
                    _ => Err(GuardError::BadOrigin(printable(text))),
                }
            }
        }
    }
}

fn header_text(v: &HeaderValue) -> &str {
    v.to_str().unwrap_or("\u{fffd}")
}

/// A value safe to put in a log line or error body: short, printable ASCII.
fn printable(text: &str) -> String {
    text.chars()
        .take(100)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

fn has_port(host: &str) -> bool {
    match host.rfind(':') {
        Some(i) => !host[i..].contains(']'),
        None => false,
    }
}

/// A `Host` value that [`parse_host_value`] returns unchanged: a lower-case name or IPv4
/// address, and a port (if any) without leading zeros.
fn already_normal(text: &str) -> bool {
    let (host, port) = match text.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (text, None),
    };
    let host_ok = !host.is_empty()
        && host.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'_')
        });
    host_ok
        && port.is_none_or(|p| {
            p.bytes().all(|b| b.is_ascii_digit())
                && (p == "0" || !p.starts_with('0'))
                && p.parse::<u16>().is_ok()
        })
}

/// Normalises a `Host` value (`host`, `host:port`, `[v6]:port`) to lower case; `None` if it is
/// not one.
pub fn parse_host_value(text: &str) -> Option<String> {
    let text = text.trim().to_ascii_lowercase();
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let end = rest.find(']')?;
        let ip: std::net::Ipv6Addr = rest[..end].parse().ok()?;
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return None,
        };
        (format!("[{ip}]"), port)
    } else {
        let (host, port) = match text.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text.as_str(), None),
        };
        let ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !ok {
            return None;
        }
        (host.to_string(), port)
    };
    match port {
        None => Some(host),
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            let port: u16 = p.parse().ok()?;
            Some(format!("{host}:{port}"))
        }
        Some(_) => None,
    }
}

/// Normalises an origin to `scheme://host[:port]` in lower case (default ports dropped).
pub fn normalize_origin(text: &str) -> Option<String> {
    let url = url::Url::parse(text.trim()).ok()?;
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return None;
    }
    if !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let host = url.host_str()?;
    let mut out = format!("{}://{}", url.scheme(), host.to_ascii_lowercase());
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    Some(out)
}

/// MCP headers a browser app may read (2025-06-18 and the 2026-07-28 transport).
const EXPOSED: &str = "Mcp-Session-Id, MCP-Protocol-Version, Mcp-Method, Mcp-Name";

/// Headers for a response to an allowed cross-origin request. The response's own
/// `Mcp-Param-*` headers (named per request) are exposed too.
pub fn add_cors_headers(headers: &mut HeaderMap, origin: &str) {
    if let Ok(v) = HeaderValue::from_str(origin) {
        headers.insert("access-control-allow-origin", v);
        let mut exposed = EXPOSED.to_string();
        for name in headers.keys() {
            if name.as_str().starts_with("mcp-param-") {
                exposed.push_str(", ");
                exposed.push_str(name.as_str());
            }
        }
        if let Ok(v) = HeaderValue::from_str(&exposed) {
            headers.insert("access-control-expose-headers", v);
        }
        headers.append(VARY, HeaderValue::from_static("Origin"));
    }
}

/// The headers answering a CORS preflight from an allowed origin.
pub fn preflight_headers(origin: &str, request_headers: Option<&HeaderValue>) -> HeaderMap {
    let mut h = HeaderMap::new();
    add_cors_headers(&mut h, origin);
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
    );
    let allowed = request_headers
        .filter(|v| {
            v.as_bytes()
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b',' | b' '))
        })
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_static(
                "Content-Type, Accept, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID, \
                 Mcp-Method, Mcp-Name",
            )
        });
    h.insert("access-control-allow-headers", allowed);
    h.insert("access-control-max-age", HeaderValue::from_static("600"));
    h.append(
        VARY,
        HeaderValue::from_static("Access-Control-Request-Method, Access-Control-Request-Headers"),
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn guard() -> Guard {
        let bound = ["127.0.0.1:8088".parse().unwrap()];
        Guard::new(
            &bound,
            &["172.17.0.1:8088".into(), "proxy.internal".into()],
            &[normalize_origin("http://localhost:3000").unwrap()],
        )
    }

    fn check(uri: &str, headers: &[(&str, &str)]) -> Result<Option<String>, GuardError> {
        let mut b = Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let (parts, ()) = b.body(()).unwrap().into_parts();
        guard().check(&parts)
    }

    #[test]
    fn accepts_own_addresses_and_loopback_aliases() {
        for host in [
            "127.0.0.1:8088",
            "localhost:8088",
            "LOCALHOST:8088",
            "[::1]:8088",
            "172.17.0.1:8088",
            "proxy.internal:8088",
            "proxy.internal",
        ] {
            assert_eq!(check("/mcp", &[("host", host)]), Ok(None), "{host}");
        }
    }

    #[test]
    fn refuses_foreign_hosts() {
        for host in [
            "evil.example:8088",
            "127.0.0.1:8089",
            "127.0.0.1",
            "localhost",
            "172.17.0.1:9999",
            "127.0.0.1:8088.evil.example",
            "localhost:8088@evil",
            "",
        ] {
            assert!(
                matches!(
                    check("/mcp", &[("host", host)]),
                    Err(GuardError::BadHost(_))
                ),
                "{host}"
            );
        }
        assert_eq!(check("/mcp", &[]), Err(GuardError::MissingHost));
        assert_eq!(
            check("/mcp", &[("host", "localhost:8088"), ("host", "evil:1")]),
            Err(GuardError::Duplicate)
        );
    }

    #[test]
    fn absolute_form_must_name_the_proxy() {
        assert_eq!(
            check("http://127.0.0.1:8088/mcp", &[("host", "127.0.0.1:8088")]),
            Ok(None)
        );
        assert!(check("http://evil.example/mcp", &[("host", "127.0.0.1:8088")]).is_err());
        assert!(check("http://127.0.0.1:8088/mcp", &[("host", "evil.example")]).is_err());
        assert!(check("https://127.0.0.1:8088/mcp", &[("host", "127.0.0.1:8088")]).is_err());
    }

    #[test]
    fn origin_must_be_configured() {
        let host = ("host", "localhost:8088");
        assert_eq!(
            check("/mcp", &[host, ("origin", "http://localhost:3000")]),
            Ok(Some("http://localhost:3000".into()))
        );
        for origin in [
            "http://evil.example",
            "null",
            "http://localhost:3001",
            "https://localhost:3000",
        ] {
            assert!(
                matches!(
                    check("/mcp", &[host, ("origin", origin)]),
                    Err(GuardError::BadOrigin(_))
                ),
                "{origin}"
            );
        }
    }

    #[test]
    fn unix_listeners_accept_localhost_and_extra_hosts() {
        let g = Guard::for_unix(&["proxy.internal".into()], &[]);
        let check = |host: &str| {
            let (parts, ()) = Request::builder()
                .uri("/mcp")
                .header("host", host)
                .body(())
                .unwrap()
                .into_parts();
            g.check(&parts)
        };
        for ok in ["localhost", "LOCALHOST", "localhost:80", "proxy.internal"] {
            assert_eq!(check(ok), Ok(None), "{ok}");
        }
        for bad in ["evil.example", "127.0.0.1:8088", "localhost:8088"] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_values_normalise() {
        assert_eq!(
            parse_host_value("LocalHost:80"),
            Some("localhost:80".into())
        );
        assert_eq!(parse_host_value("[::1]:8088"), Some("[::1]:8088".into()));
        assert_eq!(parse_host_value("[0:0::1]"), Some("[::1]".into()));
        assert_eq!(parse_host_value("a b"), None);
        assert_eq!(parse_host_value("h:"), None);
        assert_eq!(parse_host_value("h:99999"), None);
        assert_eq!(parse_host_value("http://h"), None);
        for v in ["localhost", "127.0.0.1:8088", "a-b.c_d:0", "h:80"] {
            assert!(already_normal(v), "{v}");
            assert_eq!(parse_host_value(v).as_deref(), Some(v), "{v}");
        }
        for v in [
            "LocalHost",
            "h:080",
            "h:",
            "h:99999",
            "[::1]:80",
            " h",
            "a:1:2",
            "",
        ] {
            assert!(!already_normal(v), "{v}");
        }
    }
}
