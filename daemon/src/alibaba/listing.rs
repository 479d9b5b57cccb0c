//! The server catalog from OpenAPI Explorer's `ListApiMcpServers` (version 2024-11-30, ROA
//! style: `GET /apimcpservers` on the region's MCP endpoint, AK-signed), every page of it:
//! `maxResults` (at most 100) and `nextToken` until the answer has no token, stopping with an
//! error on a token seen before (a server that repeats itself would loop forever).

use std::collections::HashSet;
use std::sync::Arc;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use url::Url;

use super::api::{self, ApiError, Call};
use super::credentials::AccessKey;
use crate::config::Server;

pub const VERSION: &str = "2024-11-30";
pub const ACTION: &str = "ListApiMcpServers";
pub const PATH: &str = "/apimcpservers";
/// The API's largest page.
pub const MAX_PAGE_SIZE: u32 = 100;
/// A backstop beyond the repeated-token check: 100 000 servers at the largest page size.
const MAX_PAGES: usize = 1000;

/// One MCP server of the catalog: what the ACL, the banner and `mcpproxyctl servers` need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    pub name: String,
    pub id: String,
    /// Upstream path of the Streamable HTTP endpoint (the path part of `urls.mcp`).
    pub mcp: Option<String>,
    /// Upstream path of the legacy SSE endpoint (the path part of `urls.sse`).
    pub sse: Option<String>,
    /// `system` or `custom`.
    #[serde(default)]
    pub source_type: Option<String>,
    #[serde(default)]
    pub product: Option<String>,
}

impl CatalogEntry {
    /// The config's form of a catalog entry.
    pub fn to_server(&self) -> Server {
        Server {
            name: self.name.clone(),
            id: self.id.clone(),
            mcp: self.mcp.clone(),
            sse: self.sse.clone(),
        }
    }
}

/// The entries in the config's form.
pub fn to_servers(entries: &[CatalogEntry]) -> Vec<Server> {
    entries.iter().map(CatalogEntry::to_server).collect()
}

/// Why the catalog could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum ListingError {
    #[error("listing the MCP servers: {0}")]
    Api(#[from] ApiError),
    #[error("listing the MCP servers: page {page} repeats an earlier page token")]
    RepeatedToken { page: usize },
    #[error("listing the MCP servers: more than {MAX_PAGES} pages")]
    TooManyPages,
}

/// Lists the servers of one MCP endpoint.
#[derive(Debug, Clone)]
pub struct Lister {
    http: reqwest::Client,
    endpoint: Url,
    key: Arc<AccessKey>,
    page_size: u32,
}

impl Lister {
    /// `endpoint` is the upstream URL (only its origin is used); `http` comes from
    /// [`crate::http_client::build`].
    pub fn new(http: reqwest::Client, endpoint: Url, key: Arc<AccessKey>) -> Lister {
        Lister {
            http,
            endpoint,
            key,
            page_size: MAX_PAGE_SIZE,
        }
    }

    /// Entries a page (1 to 100).
    pub fn page_size(mut self, size: u32) -> Lister {
        self.page_size = size.clamp(1, MAX_PAGE_SIZE);
        self
    }

    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// Every server, in the order listed; an entry listed twice is kept once.
    pub async fn list(&self) -> Result<Vec<CatalogEntry>, ListingError> {
        let mut entries = Vec::new();
        let mut seen_entries = HashSet::new();
        let mut seen_tokens = HashSet::new();
        let mut token: Option<String> = None;
        for page in 1..=MAX_PAGES {
            let mut query = vec![("maxResults".to_string(), self.page_size.to_string())];
            if let Some(t) = &token {
                query.push(("nextToken".to_string(), t.clone()));
            }
            let call = Call {
                method: Method::GET,
                endpoint: &self.endpoint,
                path: PATH,
                query,
                action: ACTION,
                version: VERSION,
            };
            let resp: Page = api::call(&self.http, &self.key, call).await?;
            for raw in resp.api_mcp_servers {
                let entry = raw.into_entry();
                if seen_entries.insert((entry.id.clone(), entry.name.clone())) {
                    entries.push(entry);
                }
            }
            match resp.next_token.filter(|t| !t.is_empty()) {
                None => return Ok(entries),
                Some(next) if !seen_tokens.insert(next.clone()) => {
                    return Err(ListingError::RepeatedToken { page })
                }
                Some(next) => token = Some(next),
            }
        }
        Err(ListingError::TooManyPages)
    }
}

// === wire shapes ===

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    #[serde(default)]
    next_token: Option<String>,
    #[serde(default)]
    api_mcp_servers: Vec<RawServer>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawServer {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    source_type: Option<String>,
    #[serde(default)]
    product: Option<String>,
    #[serde(default)]
    urls: Option<Urls>,
}

#[derive(Deserialize)]
struct Urls {
    #[serde(default)]
    mcp: Option<String>,
    #[serde(default)]
    sse: Option<String>,
}

impl RawServer {
    fn into_entry(self) -> CatalogEntry {
        let urls = self.urls.unwrap_or(Urls {
            mcp: None,
            sse: None,
        });
        CatalogEntry {
            // A server without a name is still reachable by its id.
            name: if self.name.is_empty() {
                self.id.clone()
            } else {
                self.name
            },
            id: self.id,
            mcp: urls.mcp.as_deref().and_then(url_path),
            sse: urls.sse.as_deref().and_then(url_path),
            source_type: self.source_type,
            product: self.product,
        }
    }
}

/// The path of an absolute URL or of a path-absolute reference, without query or fragment.
fn url_path(text: &str) -> Option<String> {
    let text = text.trim();
    let path = match Url::parse(text) {
        Ok(url) => url.path().to_string(),
        Err(_) if text.starts_with('/') && !text.starts_with("//") => text
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .to_string(),
        Err(_) => return None,
    };
    Some(path).filter(|p| p.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_urls() {
        assert_eq!(
            url_path(
                "https://openapi-mcp.cn-hangzhou.aliyuncs.com/accounts/1001/custom/ecs/id/E1/mcp"
            )
            .as_deref(),
            Some("/accounts/1001/custom/ecs/id/E1/mcp")
        );
        assert_eq!(url_path("https://h/a/sse?x=1#f").as_deref(), Some("/a/sse"));
        assert_eq!(url_path("/a/b?q").as_deref(), Some("/a/b"));
        assert_eq!(url_path("https://h").as_deref(), Some("/"));
        assert_eq!(url_path("a/b"), None);
        assert_eq!(url_path("//h/a"), None);
        assert_eq!(url_path(""), None);
    }

    #[test]
    fn parses_a_page() {
        let page: Page = serde_json::from_str(
            r#"{"requestId": "r", "nextToken": "", "totalCount": 2, "maxResults": 100,
                "apiMcpServers": [
                  {"id": "E1", "name": "ecs", "sourceType": "custom", "product": "Ecs",
                   "urls": {"mcp": "https://h/accounts/1/custom/ecs/id/E1/mcp",
                            "sse": "https://h/accounts/1/custom/ecs/id/E1/sse"},
                   "description": "…", "createTime": "2025-01-01T00:00:00Z"},
                  {"id": "X2"}
                ]}"#,
        )
        .unwrap();
        assert_eq!(page.next_token.as_deref(), Some(""));
        let entries: Vec<CatalogEntry> = page
            .api_mcp_servers
            .into_iter()
            .map(RawServer::into_entry)
            .collect();
        assert_eq!(
            entries[0],
            CatalogEntry {
                name: "ecs".into(),
                id: "E1".into(),
                mcp: Some("/accounts/1/custom/ecs/id/E1/mcp".into()),
                sse: Some("/accounts/1/custom/ecs/id/E1/sse".into()),
                source_type: Some("custom".into()),
                product: Some("Ecs".into()),
            }
        );
        assert_eq!(entries[1].name, "X2");
        assert_eq!(entries[1].mcp, None);
        let server = entries[0].to_server();
        assert_eq!((server.name.as_str(), server.id.as_str()), ("ecs", "E1"));
        assert_eq!(
            server.sse.as_deref(),
            Some("/accounts/1/custom/ecs/id/E1/sse")
        );
    }
}
