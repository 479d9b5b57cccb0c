//! Keeps `alibaba` catalogs current: listed at start (before the banner), then every
//! `catalog_refresh` and after each reload. A listing outage falls back to the last good list,
//! saved in the state directory, and says so; a list that never arrived leaves the catalog
//! empty, and the proxy serves on.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::alibaba::catalog_cache::{self, Fetched};
use crate::alibaba::credentials::Sources;
use crate::alibaba::listing;
use crate::config::{AuthProfile, CatalogSource};
use crate::state::Shared;

/// Lists every `alibaba` catalog once.
pub async fn refresh_all(shared: &Shared) {
    let generation = shared.current();
    let config = &generation.config;
    for upstream in config
        .upstreams
        .iter()
        .filter(|u| u.catalog == CatalogSource::Alibaba)
    {
        let Some(AuthProfile::Alibaba(profile)) = config.auth.get(&upstream.auth) else {
            tracing::warn!(upstream = %upstream.name, "an alibaba catalog needs an alibaba auth profile (for its AccessKey); not listed");
            continue;
        };
        let key = match crate::alibaba::access_key(profile, &Sources::from_process()) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(upstream = %upstream.name, error = %e, "cannot list the MCP servers without an AccessKey");
                continue;
            }
        };
        let lister = match crate::alibaba::lister(upstream, key, config.limits.connect_timeout) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(upstream = %upstream.name, error = %e, "cannot list the MCP servers");
                continue;
            }
        };
        let dir = crate::auth::token_store::state_dir(&config.store);
        let servers = match catalog_cache::fetch(&lister, &dir, &upstream.name).await {
            Ok(Fetched::Fresh(entries)) => {
                tracing::info!(upstream = %upstream.name, servers = entries.len(), "MCP servers listed");
                listing::to_servers(&entries)
            }
            Ok(Fetched::Cached { catalog, error }) => {
                tracing::warn!(
                    upstream = %upstream.name,
                    error = %error,
                    listed_at = catalog.fetched_at,
                    servers = catalog.servers.len(),
                    "listing the MCP servers failed; using the last good list"
                );
                listing::to_servers(&catalog.servers)
            }
            Err(e) => {
                tracing::warn!(upstream = %upstream.name, error = %e, "the MCP server list is unavailable; the catalog stays as it was");
                continue;
            }
        };
        if let Err(e) = shared.set_listed(&upstream.name, servers) {
            tracing::error!(upstream = %upstream.name, error = %e, "cannot apply the server list");
        }
    }
    warn_unresolved(shared);
}

/// ACL names and IDs that match nothing, with the closest catalogued names.
fn warn_unresolved(shared: &Shared) {
    let generation = shared.current();
    for entry in generation.acl.unresolved() {
        let mut near: Vec<(usize, &str)> = generation
            .catalog
            .servers
            .iter()
            .flat_map(|s| [s.name.as_str(), s.id.as_str()])
            .filter(|n| !n.is_empty())
            .map(|n| (distance(&entry.to_lowercase(), &n.to_lowercase()), n))
            .filter(|(d, _)| *d <= 3)
            .collect();
        near.sort();
        near.dedup_by_key(|(_, n)| *n);
        let suggestions: Vec<&str> = near.iter().take(3).map(|(_, n)| *n).collect();
        tracing::warn!(
            entry = %entry,
            closest = %suggestions.join(", "),
            "ACL entry matches no catalogued server"
        );
    }
    for entry in generation.policies.unresolved(&generation.catalog) {
        tracing::warn!(
            entry = %entry,
            "tool policy server entry matches no catalogued server (yet): it applies to nothing"
        );
    }
}

/// Levenshtein distance, for suggestions.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Lists again every `catalog_refresh` (the shortest of the upstreams'), and after reloads.
pub async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        let every = shared
            .current()
            .config
            .upstreams
            .iter()
            .filter(|u| u.catalog == CatalogSource::Alibaba)
            .map(|u| u.catalog_refresh)
            .min();
        let Some(every) = every else {
            // No alibaba catalog now; a reload may bring one.
            tokio::select! {
                _ = shared.catalog_wake.notified() => {}
                _ = stop.cancelled() => return,
            }
            refresh_all(&shared).await;
            continue;
        };
        tokio::select! {
            _ = tokio::time::sleep(every.max(Duration::from_secs(10))) => {}
            _ = shared.catalog_wake.notified() => {}
            _ = stop.cancelled() => return,
        }
        refresh_all(&shared).await;
    }
}

#[cfg(test)]
mod tests {
    use super::distance;

    #[test]
    fn edit_distance() {
        assert_eq!(distance("ecs", "ecs"), 0);
        assert_eq!(distance("ecs", "ecss"), 1);
        assert_eq!(distance("oss", "ecs"), 2);
        assert_eq!(distance("", "abc"), 3);
    }
}
