//! The start-up banner, in the seed tool's words: where the proxy listens, the access control in
//! force, and the servers with their proxy URLs.

use std::fmt::Write;
use std::net::SocketAddr;

use crate::config::AuthProfile;
use crate::proxy::acl::Decision;
use crate::state::Generation;

/// `http://HOST:PORT` for a bound address.
pub fn base_url(addr: &SocketAddr) -> String {
    format!("http://{addr}")
}

/// The marker the seed prints after a server the ACL refuses.
pub fn marker(decision: &Decision) -> &'static str {
    match decision {
        Decision::Allowed { .. } => "",
        Decision::Blocked { .. } => " (blocked)",
        Decision::NotAllowed => " (not in the allowed list)",
    }
}

pub fn render(
    generation: &Generation,
    bound: &[SocketAddr],
    tokens: &crate::auth::tokens::Tokens,
) -> String {
    let config = &generation.config;
    let mut out = String::from("MCP Proxy Server Started\n");
    for addr in bound {
        let _ = writeln!(out, "Listen: {addr}");
    }
    let regions: Vec<String> = config
        .auth
        .values()
        .filter_map(|p| match p {
            AuthProfile::Alibaba(a) => Some(a.region.to_string()),
            _ => None,
        })
        .collect();
    if let Some(region) = regions.first() {
        let _ = writeln!(out, "Region: {region}");
    }
    for u in &config.upstreams {
        let _ = writeln!(
            out,
            "Upstream: {} {} -> {} (auth {}: {})",
            u.name,
            u.mount,
            u.url,
            u.auth,
            tokens
                .views()
                .iter()
                .find(|v| v.name == u.auth)
                .map(|v| v.phase.words())
                .unwrap_or("unknown")
        );
    }
    let acl = &generation.acl;
    let blocked: Vec<&str> = acl.blocked_entries().collect();
    let allowed: Vec<&str> = acl.allowed_entries().collect();
    out.push_str("Access Control:\n");
    if blocked.is_empty() && allowed.is_empty() {
        out.push_str("  (none: every server is reachable)\n");
    }
    if !blocked.is_empty() {
        out.push_str("  Blacklist (blocked servers):\n");
        for b in blocked {
            let _ = writeln!(out, "    - {b}");
        }
    }
    if !allowed.is_empty() {
        out.push_str("  Whitelist (allowed servers):\n");
        for a in allowed {
            let _ = writeln!(out, "    - {a}");
        }
    }
    let base = bound.first().map(base_url).unwrap_or_default();
    out.push_str("Available Servers:\n");
    if generation.catalog.servers.is_empty() {
        out.push_str("  (none in the catalog)\n");
    }
    for s in &generation.catalog.servers {
        let probe = s.mcp.as_deref().or(s.sse.as_deref()).unwrap_or("/");
        let _ = writeln!(out, "  - {}{}", s.name, marker(&acl.check(probe)));
        if let Some(p) = &s.mcp {
            let _ = writeln!(out, "    MCP: {base}{p}");
        }
        if let Some(p) = &s.sse {
            let _ = writeln!(out, "    SSE: {base}{p}");
        }
    }
    // A blank line ends the banner, for scripts that read it.
    out.push('\n');
    out
}
