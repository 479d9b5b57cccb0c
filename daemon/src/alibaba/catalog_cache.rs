//! The last good server list of each upstream, kept as JSON in the state directory so that a
//! listing outage at start-up still leaves the proxy a catalog (the last good one, said so).
//! Writes are atomic: a temporary file, synced, then renamed over the old one.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::listing::{CatalogEntry, Lister, ListingError};

/// Format version of the file; another version is ignored as absent.
const FORMAT: u32 = 1;

/// A saved list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedCatalog {
    pub format: u32,
    /// The endpoint it was listed from: a list of another endpoint (region) is not used.
    pub endpoint: String,
    /// When it was listed, Unix seconds.
    pub fetched_at: u64,
    pub servers: Vec<CatalogEntry>,
}

impl CachedCatalog {
    pub fn new(endpoint: &str, servers: Vec<CatalogEntry>) -> CachedCatalog {
        CachedCatalog {
            format: FORMAT,
            endpoint: endpoint.to_string(),
            fetched_at: crate::clock::now(),
            servers,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot write the catalog cache {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("cannot read the catalog cache {path}: {reason}")]
    Read { path: PathBuf, reason: String },
}

/// `DIR/catalog-UPSTREAM.json`; characters other than `[A-Za-z0-9_-]` in the name become `_`.
pub fn path_for(dir: &Path, upstream: &str) -> PathBuf {
    let safe: String = upstream
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("catalog-{safe}.json"))
}

/// Saves `catalog` for `upstream`, replacing the previous list atomically (mode 0600; the
/// directory is created 0700 if missing).
pub fn save(dir: &Path, upstream: &str, catalog: &CachedCatalog) -> Result<(), CacheError> {
    let path = path_for(dir, upstream);
    let err = |reason: String| CacheError::Write {
        path: path.clone(),
        reason,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| err(e.to_string()))?;
    let json = serde_json::to_vec_pretty(catalog).map_err(|e| err(e.to_string()))?;
    // The one crash-safe write of the daemon (temp file, fsync, rename, fsync the directory).
    crate::auth::token_store::write_atomic(&path, &json, &std::process::id().to_string())
        .map_err(|e| err(e.to_string()))
}

/// The saved list of `upstream`, if there is one for `endpoint`. An unreadable file is an
/// error; a file of another format or endpoint is absent.
pub fn load(
    dir: &Path,
    upstream: &str,
    endpoint: &str,
) -> Result<Option<CachedCatalog>, CacheError> {
    let path = path_for(dir, upstream);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CacheError::Read {
                path,
                reason: e.to_string(),
            })
        }
    };
    let catalog: CachedCatalog = serde_json::from_slice(&bytes).map_err(|e| CacheError::Read {
        path: path.clone(),
        reason: format!("not a catalog ({e})"),
    })?;
    Ok(Some(catalog).filter(|c| c.format == FORMAT && c.endpoint == endpoint))
}

/// Where a catalog came from.
#[derive(Debug)]
pub enum Fetched {
    /// Listed just now (and saved).
    Fresh(Vec<CatalogEntry>),
    /// The listing failed: the last good list, and why.
    Cached {
        catalog: CachedCatalog,
        error: ListingError,
    },
}

impl Fetched {
    pub fn servers(&self) -> &[CatalogEntry] {
        match self {
            Fetched::Fresh(s) => s,
            Fetched::Cached { catalog, .. } => &catalog.servers,
        }
    }
}

/// Neither a listing nor a saved list.
#[derive(Debug, thiserror::Error)]
#[error("{listing}; and no saved list to fall back on{}", .cache.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
pub struct FetchError {
    pub listing: ListingError,
    pub cache: Option<CacheError>,
}

/// Lists the servers of `upstream` and saves the list; when the listing fails, the saved list
/// of the same endpoint. A list that cannot be saved is still returned (and logged).
pub async fn fetch(lister: &Lister, dir: &Path, upstream: &str) -> Result<Fetched, FetchError> {
    let endpoint = lister.endpoint().as_str().to_string();
    match lister.list().await {
        Ok(servers) => {
            let catalog = CachedCatalog::new(&endpoint, servers);
            if let Err(e) = save(dir, upstream, &catalog) {
                tracing::warn!(upstream, error = %e, "the server list is not cached");
            }
            Ok(Fetched::Fresh(catalog.servers))
        }
        Err(listing) => match load(dir, upstream, &endpoint) {
            Ok(Some(catalog)) => Ok(Fetched::Cached {
                catalog,
                error: listing,
            }),
            Ok(None) => Err(FetchError {
                listing,
                cache: None,
            }),
            Err(cache) => Err(FetchError {
                listing,
                cache: Some(cache),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn entry(name: &str) -> CatalogEntry {
        CatalogEntry {
            name: name.into(),
            id: format!("{name}-id"),
            mcp: Some(format!("/accounts/1/custom/{name}/mcp")),
            sse: None,
            source_type: Some("custom".into()),
            product: None,
        }
    }

    const EP: &str = "https://openapi-mcp.cn-hangzhou.aliyuncs.com/";

    #[test]
    fn save_then_load() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        assert_eq!(load(&state, "alibaba", EP).unwrap(), None);
        let catalog = CachedCatalog::new(EP, vec![entry("ecs"), entry("rds")]);
        save(&state, "alibaba", &catalog).unwrap();
        assert_eq!(load(&state, "alibaba", EP).unwrap(), Some(catalog.clone()));
        let mode = std::fs::metadata(path_for(&state, "alibaba"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Replaced whole, no temporary file left behind.
        let newer = CachedCatalog::new(EP, vec![entry("oss")]);
        save(&state, "alibaba", &newer).unwrap();
        assert_eq!(load(&state, "alibaba", EP).unwrap(), Some(newer));
        let names: Vec<_> = std::fs::read_dir(&state)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("catalog-alibaba.json")]
        );
    }

    #[test]
    fn another_endpoint_or_format_is_absent() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), "a", &CachedCatalog::new(EP, vec![entry("ecs")])).unwrap();
        assert_eq!(
            load(
                dir.path(),
                "a",
                "https://openapi-mcp.ap-southeast-1.aliyuncs.com/"
            )
            .unwrap(),
            None
        );
        let mut old = CachedCatalog::new(EP, vec![]);
        old.format = 0;
        save(dir.path(), "a", &old).unwrap();
        assert_eq!(load(dir.path(), "a", EP).unwrap(), None);
    }

    #[test]
    fn a_corrupt_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path_for(dir.path(), "a"), b"{not json").unwrap();
        assert!(matches!(
            load(dir.path(), "a", EP),
            Err(CacheError::Read { .. })
        ));
    }

    #[test]
    fn names_are_file_safe() {
        let p = path_for(Path::new("/s"), "../x y");
        assert_eq!(p, Path::new("/s/catalog-___x_y.json"));
    }
}
