//! Finding the authorization server of an MCP server (MCP authorization, revision 2025-11-25):
//! the `WWW-Authenticate` of the 401 to a real MCP request (an `initialize` POST), RFC 9728
//! protected-resource metadata it names, else at the well-known URI at the upstream's path and
//! then at its root, checked to describe the upstream (RFC 9728 §3.3). Servers without that
//! metadata get the 2025-03-26 fallback: server metadata at the MCP server's origin, else the
//! default endpoints `/authorize`, `/token` and `/register` there.

use serde::Deserialize;
use url::Url;

use super::discovery::{challenge_param, find_origin_metadata, get_json, https, well_known};
use super::{Endpoints, OAuthError};

const PRM: &str = "oauth-protected-resource";

/// What discovery found for one upstream.
#[derive(Debug, Clone, Default)]
pub struct Discovered {
    pub endpoints: Endpoints,
    /// The RFC 8707 resource to ask tokens for.
    pub resource: Option<String>,
    /// The `scope` of the upstream's challenge, if it named one.
    pub challenge_scopes: Vec<String>,
    /// The protected-resource metadata's `scopes_supported`.
    pub resource_scopes: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct ProtectedResource {
    resource: Option<String>,
    #[serde(default)]
    authorization_servers: Vec<String>,
    #[serde(default)]
    scopes_supported: Vec<String>,
}

/// The challenge of the upstream's answer to an unauthenticated `initialize`.
struct Challenge {
    metadata: Option<String>,
    scopes: Vec<String>,
}

/// Discovers where `upstream` wants tokens from. The upstream and its metadata are asked
/// through `upstream_http` (the upstream's own client: its CA, proxy and `allow_http`), the
/// authorization server through `as_http`, which is HTTPS only.
pub async fn from_upstream(
    upstream_http: &reqwest::Client,
    as_http: &reqwest::Client,
    upstream: &Url,
) -> Result<Discovered, OAuthError> {
    let challenge = challenge(upstream_http, upstream).await?;
    let found = protected_resource(upstream_http, upstream, challenge.metadata.as_deref()).await?;
    let Some((prm, prm_url)) = found else {
        return legacy(as_http, upstream, challenge.scopes).await;
    };
    let resource = checked_resource(&prm, &prm_url, upstream)?;
    let issuer = prm.authorization_servers.first().ok_or_else(|| {
        OAuthError::BadResponse(format!("{prm_url} lists no authorization_servers"))
    })?;
    let endpoints = super::discovery::server_metadata(as_http, issuer).await?;
    Ok(Discovered {
        endpoints,
        resource: Some(resource),
        challenge_scopes: challenge.scopes,
        resource_scopes: prm.scopes_supported,
    })
}

/// POSTs an `initialize` without any token (the credential goes nowhere before we know where it
/// belongs) and reads the `WWW-Authenticate` of the answer.
async fn challenge(http: &reqwest::Client, upstream: &Url) -> Result<Challenge, OAuthError> {
    let initialize = serde_json::json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "mcpproxyd", "version": env!("CARGO_PKG_VERSION")},
        },
    });
    let resp = http
        .post(upstream.as_str())
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(initialize.to_string())
        .timeout(super::AUTH_SERVER_TIMEOUT)
        .send()
        .await
        .map_err(|e| OAuthError::Transient(format!("upstream: {}", e.without_url())))?;
    let headers: Vec<&str> = resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let param = |name| headers.iter().find_map(|h| challenge_param(h, name));
    Ok(Challenge {
        metadata: param("resource_metadata"),
        scopes: param("scope")
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
    })
}

/// The protected-resource metadata: at the URL the challenge named, else at the well-known URI
/// at the upstream's path, then at its root. `None` when there is none.
async fn protected_resource(
    http: &reqwest::Client,
    upstream: &Url,
    named: Option<&str>,
) -> Result<Option<(ProtectedResource, String)>, OAuthError> {
    let mut candidates: Vec<String> = named.map(str::to_string).into_iter().collect();
    candidates.push(well_known(upstream, PRM));
    let root = format!(
        "{}/.well-known/{PRM}",
        upstream.origin().ascii_serialization()
    );
    if !candidates.contains(&root) {
        candidates.push(root);
    }
    for url in candidates {
        allowed_metadata_url(&url, upstream)?;
        if let Some(prm) = get_json::<ProtectedResource>(http, &url).await? {
            return Ok(Some((prm, url)));
        }
    }
    Ok(None)
}

/// Metadata is fetched over HTTPS; over plain HTTP only from the loopback upstream itself (the
/// config allowed that one, and no other host).
fn allowed_metadata_url(text: &str, upstream: &Url) -> Result<(), OAuthError> {
    let url = Url::parse(text)
        .map_err(|e| OAuthError::BadResponse(format!("resource_metadata `{text}`: {e}")))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if url.origin() == upstream.origin() => Ok(()),
        _ => Err(OAuthError::BadResponse(format!(
            "resource_metadata `{text}` is neither https nor on the upstream's own origin"
        ))),
    }
}

/// The metadata's `resource`, refused unless it names the upstream (RFC 9728 §3.3): the
/// upstream's URL, or its origin for the metadata at the origin's root.
fn checked_resource(
    prm: &ProtectedResource,
    prm_url: &str,
    upstream: &Url,
) -> Result<String, OAuthError> {
    let resource = prm.resource.as_deref().ok_or_else(|| {
        OAuthError::BadResponse(format!("{prm_url} names no resource (RFC 9728 §2)"))
    })?;
    let origin = upstream.origin().ascii_serialization();
    let root_doc = prm_url == format!("{origin}/.well-known/{PRM}");
    let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
    if same(resource, upstream.as_str()) || (root_doc && same(resource, &origin)) {
        return Ok(resource.to_string());
    }
    Err(OAuthError::BadResponse(format!(
        "the protected-resource metadata at {prm_url} is for `{resource}`, not for the upstream \
         {upstream}; refusing it (RFC 9728 §3.3)"
    )))
}

/// The 2025-03-26 fallback for servers without protected-resource metadata: the authorization
/// server is the MCP server's origin (its metadata, whose issuer may have a path there, else
/// the default endpoints there).
async fn legacy(
    as_http: &reqwest::Client,
    upstream: &Url,
    challenge_scopes: Vec<String>,
) -> Result<Discovered, OAuthError> {
    let origin = upstream.origin().ascii_serialization();
    https(
        "the MCP server's origin (its authorization server)",
        &origin,
    )?;
    let endpoints = match find_origin_metadata(as_http, &origin).await? {
        Some(e) => e,
        None => Endpoints {
            issuer: None,
            authorization: Some(format!("{origin}/authorize")),
            token: format!("{origin}/token"),
            registration: Some(format!("{origin}/register")),
            ..Endpoints::default()
        },
    };
    Ok(Discovered {
        endpoints,
        resource: Some(upstream.as_str().trim_end_matches('/').to_string()),
        challenge_scopes,
        resource_scopes: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prm(resource: &str) -> ProtectedResource {
        ProtectedResource {
            resource: Some(resource.into()),
            authorization_servers: vec![],
            scopes_supported: vec![],
        }
    }

    #[test]
    fn the_resource_must_name_the_upstream() {
        let up = Url::parse("https://mcp.example/tenant/mcp").unwrap();
        let at_path = "https://mcp.example/.well-known/oauth-protected-resource/tenant/mcp";
        let at_root = "https://mcp.example/.well-known/oauth-protected-resource";
        assert!(checked_resource(&prm("https://mcp.example/tenant/mcp"), at_path, &up).is_ok());
        assert!(checked_resource(&prm("https://mcp.example/tenant/mcp/"), at_path, &up).is_ok());
        assert!(checked_resource(&prm("https://mcp.example"), at_root, &up).is_ok());
        assert!(checked_resource(&prm("https://mcp.example"), at_path, &up).is_err());
        assert!(checked_resource(&prm("https://evil.example/tenant/mcp"), at_path, &up).is_err());
        assert!(checked_resource(&prm("https://mcp.example/other"), at_root, &up).is_err());
    }

    #[test]
    fn metadata_over_http_only_from_the_upstream_itself() {
        let up = Url::parse("http://127.0.0.1:8080/mcp").unwrap();
        assert!(allowed_metadata_url("http://127.0.0.1:8080/.well-known/x", &up).is_ok());
        assert!(allowed_metadata_url("http://127.0.0.1:9/.well-known/x", &up).is_err());
        assert!(allowed_metadata_url("https://as.example/.well-known/x", &up).is_ok());
    }
}
