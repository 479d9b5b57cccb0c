//! The catalog: which MCP servers exist behind each upstream, and the local paths that belong to
//! each. It feeds the ACL's names and IDs, the banner and `mcpproxyctl servers`.

pub mod task;

use std::collections::HashMap;

use crate::config::{CatalogSource, Config, Server, Upstream};
use crate::proxy::path;

/// One MCP server as the proxy serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogServer {
    pub upstream: String,
    pub name: String,
    pub id: String,
    /// Local (proxy) path of the Streamable HTTP endpoint.
    pub mcp: Option<String>,
    /// Local path of the legacy SSE endpoint.
    pub sse: Option<String>,
    /// Local path prefixes that belong to this server (its base: e.g. the message endpoint of
    /// the SSE transport lives beside `/sse`).
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    pub servers: Vec<CatalogServer>,
}

impl Catalog {
    /// The static catalog of every upstream in the config.
    pub fn from_config(config: &Config) -> Catalog {
        Catalog::build(config, &HashMap::new())
    }

    /// The config's static entries, and for `alibaba` catalogs the servers listed so far (by
    /// upstream name); listed paths outside the upstream's base path are left out.
    pub fn build(config: &Config, listed: &HashMap<String, Vec<Server>>) -> Catalog {
        let mut servers = Vec::new();
        for u in &config.upstreams {
            let entries = match u.catalog {
                CatalogSource::Static => &u.servers,
                CatalogSource::Alibaba => match listed.get(&u.name) {
                    Some(l) => l,
                    None => continue,
                },
            };
            for s in entries {
                let inside = |p: &Option<String>| {
                    p.as_deref().is_none_or(|p| {
                        path::under(p, &u.base_path) && path::check_normal(p).is_ok()
                    })
                };
                if inside(&s.mcp) && inside(&s.sse) {
                    servers.push(CatalogServer::new(u, s));
                }
            }
        }
        Catalog { servers }
    }

    /// Servers whose name or ID is `entry`.
    pub fn find<'a>(&'a self, entry: &'a str) -> impl Iterator<Item = &'a CatalogServer> + 'a {
        self.servers
            .iter()
            .filter(move |s| s.name == entry || (!s.id.is_empty() && s.id == entry))
    }

    /// The server a local path belongs to (the longest matching scope; escapes compare
    /// whatever their hex case, as in the ACL).
    pub fn server_for(&self, local_path: &str) -> Option<&CatalogServer> {
        let local_path = &*path::canonical_escapes(local_path);
        self.servers
            .iter()
            .flat_map(|s| s.scopes.iter().map(move |p| (p, s)))
            .filter(|(p, _)| path::under(local_path, &path::canonical_escapes(p)))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, s)| s)
    }
}

impl CatalogServer {
    pub fn new(upstream: &Upstream, server: &Server) -> CatalogServer {
        let local = |p: &Option<String>| {
            p.as_deref()
                .map(|p| path::to_local(&upstream.mount, &upstream.base_path, p))
        };
        let mcp = local(&server.mcp);
        let sse = local(&server.sse);
        let mut scopes: Vec<String> = Vec::new();
        for p in mcp.iter().chain(sse.iter()) {
            let scope = base_of(p, &upstream.mount);
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        CatalogServer {
            upstream: upstream.name.clone(),
            name: server.name.clone(),
            id: server.id.clone(),
            mcp,
            sse,
            scopes,
        }
    }
}

/// The server's base: its endpoint path less the last segment (`/x/ecs/id/E1/mcp` →
/// `/x/ecs/id/E1`), unless that would reach the mount itself, where the endpoint path alone is
/// the scope (a server mounted at the root must not claim every path).
fn base_of(endpoint: &str, mount: &str) -> String {
    let trimmed = endpoint.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(i) if i > 0 && &trimmed[..i] != mount.trim_end_matches('/') => trimmed[..i].into(),
        _ => trimmed.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_is_parent_unless_that_is_the_mount() {
        assert_eq!(
            base_of("/accounts/1/custom/ecs/id/E1/mcp", "/"),
            "/accounts/1/custom/ecs/id/E1"
        );
        assert_eq!(base_of("/mcp", "/"), "/mcp");
        assert_eq!(base_of("/gh/mcp", "/gh"), "/gh/mcp");
        assert_eq!(base_of("/gh/s1/mcp", "/gh"), "/gh/s1");
        assert_eq!(base_of("/gh", "/gh"), "/gh");
    }
}
