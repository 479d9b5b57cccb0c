//! Finding an authorization server: RFC 8414 server metadata (OpenID configuration as
//! fallback), `WWW-Authenticate` parameters, and RFC 7591 dynamic client registration. The
//! protected resource's side (RFC 9728) is in [`super::resource`].

use serde::Deserialize;
use url::Url;

use secrecy::SecretString;

use super::{AuthMethod, Endpoints, OAuthError};

/// The `resource_metadata` parameter of a `WWW-Authenticate: Bearer ...` header.
pub fn resource_metadata_url(header: &str) -> Option<String> {
    challenge_param(header, "resource_metadata")
}

/// The parameter `name` of a `WWW-Authenticate: Bearer ...` header (RFC 6750 §3).
pub fn challenge_param(header: &str, name: &str) -> Option<String> {
    let rest = header.trim();
    let params = rest
        .strip_prefix("Bearer")
        .or_else(|| rest.strip_prefix("bearer"))?;
    for part in split_params(params) {
        let Some((k, v)) = part.split_once('=') else {
            continue;
        };
        if k.trim().eq_ignore_ascii_case(name) {
            return Some(v.trim().trim_matches('"').to_string());
        }
    }
    None
}

/// Splits `a="x, y", b=z` on commas outside quotes.
fn split_params(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim());
    out.into_iter().filter(|p| !p.is_empty()).collect()
}

#[derive(Debug, Deserialize)]
struct ServerMetadata {
    issuer: String,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    revocation_endpoint: Option<String>,
    registration_endpoint: Option<String>,
    #[serde(default)]
    code_challenge_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    scopes_supported: Vec<String>,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Vec<String>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
    #[serde(default)]
    client_id_metadata_document_supported: bool,
    #[serde(default)]
    device_authorization_endpoint: Option<String>,
}

pub(crate) fn https(what: &str, text: &str) -> Result<String, OAuthError> {
    let u =
        Url::parse(text).map_err(|e| OAuthError::BadResponse(format!("{what} `{text}`: {e}")))?;
    if u.scheme() != "https" {
        return Err(OAuthError::BadResponse(format!(
            "{what} `{text}` is not https"
        )));
    }
    Ok(u.to_string())
}

pub(crate) async fn get_json<T: for<'de> Deserialize<'de>>(
    http: &reqwest::Client,
    url: &str,
) -> Result<Option<T>, OAuthError> {
    let resp = http
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| OAuthError::Transient(format!("{}: {}", url, e.without_url())))?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !resp.status().is_success() {
        return Err(OAuthError::Transient(format!(
            "{url} answered {}",
            resp.status()
        )));
    }
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| OAuthError::Transient(e.without_url().to_string()))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| OAuthError::BadResponse(format!("{url}: {e}")))
}

/// `/.well-known/NAME` inserted between the origin and the path (RFC 8414 §3.1).
pub(crate) fn well_known(base: &Url, name: &str) -> String {
    let path = base.path().trim_end_matches('/');
    format!(
        "{}/.well-known/{name}{path}",
        base.origin().ascii_serialization()
    )
}

/// RFC 8414 metadata of `issuer`, with the OpenID configuration as a fallback.
pub async fn server_metadata(
    http: &reqwest::Client,
    issuer: &str,
) -> Result<Endpoints, OAuthError> {
    find_server_metadata(http, issuer).await?.ok_or_else(|| {
        OAuthError::Config(format!(
            "no authorization server metadata found for issuer {issuer}"
        ))
    })
}

/// Like [`server_metadata`]; `None` when no metadata document exists.
pub async fn find_server_metadata(
    http: &reqwest::Client,
    issuer: &str,
) -> Result<Option<Endpoints>, OAuthError> {
    let same = |named: &str| named.trim_end_matches('/') == issuer.trim_end_matches('/');
    find_metadata(http, issuer, &same).await
}

/// The 2025-03-26 revision's metadata lookup: the document at the MCP server's `origin`,
/// whose issuer may be any URL on that origin (e.g. `https://mcp.example/oauth`). That
/// revision has no issuer to compare with; what the origin says about its own paths is
/// trusted as much as the server itself, but never an issuer elsewhere.
pub async fn find_origin_metadata(
    http: &reqwest::Client,
    origin: &str,
) -> Result<Option<Endpoints>, OAuthError> {
    find_metadata(http, origin, &|named| on_origin(named, origin)).await
}

/// `url` is `origin` itself or a path below it.
fn on_origin(url: &str, origin: &str) -> bool {
    let origin = origin.trim_end_matches('/');
    url.strip_prefix(origin)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The metadata found for `issuer` (RFC 8414 places, then OpenID's); its `issuer` must pass
/// `accepts`.
async fn find_metadata(
    http: &reqwest::Client,
    issuer: &str,
    accepts: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Option<Endpoints>, OAuthError> {
    let base =
        Url::parse(issuer).map_err(|e| OAuthError::Config(format!("issuer `{issuer}`: {e}")))?;
    let candidates = [
        well_known(&base, "oauth-authorization-server"),
        well_known(&base, "openid-configuration"),
        format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        ),
    ];
    for url in candidates {
        let Some(meta) = get_json::<ServerMetadata>(http, &url).await? else {
            continue;
        };
        if !accepts(&meta.issuer) {
            return Err(OAuthError::BadResponse(format!(
                "metadata at {url} names issuer `{}`, not `{issuer}`",
                meta.issuer
            )));
        }
        if let Some(methods) = &meta.code_challenge_methods_supported {
            if !methods.iter().any(|m| m == "S256") {
                return Err(OAuthError::BadResponse(
                    "the authorization server does not support PKCE S256".into(),
                ));
            }
        }
        let token = meta.token_endpoint.ok_or_else(|| {
            OAuthError::BadResponse(format!("metadata at {url} has no token_endpoint"))
        })?;
        return Ok(Some(Endpoints {
            issuer: Some(meta.issuer),
            authorization: meta
                .authorization_endpoint
                .map(|u| https("authorization_endpoint", &u))
                .transpose()?,
            token: https("token_endpoint", &token)?,
            revocation: meta
                .revocation_endpoint
                .map(|u| https("revocation_endpoint", &u))
                .transpose()?,
            registration: meta
                .registration_endpoint
                .map(|u| https("registration_endpoint", &u))
                .transpose()?,
            scopes_supported: meta.scopes_supported,
            auth_methods: meta.token_endpoint_auth_methods_supported,
            iss_in_response: meta.authorization_response_iss_parameter_supported,
            cimd_supported: meta.client_id_metadata_document_supported,
            device_authorization: meta
                .device_authorization_endpoint
                .map(|u| https("device_authorization_endpoint", &u))
                .transpose()?,
        }));
    }
    Ok(None)
}

#[derive(Deserialize)]
struct Registered {
    client_id: String,
    /// Moved into a `SecretString` at once.
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
}

/// A client registered dynamically; the secret, if the server issued one, is kept.
pub struct Registration {
    pub client_id: String,
    pub secret: Option<(SecretString, AuthMethod)>,
}

/// RFC 7591 dynamic registration with `redirect_uri`: a public client where the server
/// supports `none` (or lists no methods), else a confidential one.
pub async fn register(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    registration_endpoint: &str,
    redirect_uri: &str,
) -> Result<Registration, OAuthError> {
    let supported = &endpoints.auth_methods;
    let asked = if supported.is_empty() || supported.iter().any(|m| m == "none") {
        AuthMethod::None
    } else {
        AuthMethod::for_secret(supported)
    };
    // Where the server offers the device flow, the client may log in by it too (RFC 8628 §4).
    let mut grant_types = vec!["authorization_code", "refresh_token"];
    if endpoints.device_authorization.is_some() {
        grant_types.push(super::device::GRANT_TYPE);
    }
    let body = serde_json::json!({
        "client_name": "mcpproxyd",
        "redirect_uris": [redirect_uri],
        "grant_types": grant_types,
        "response_types": ["code"],
        "token_endpoint_auth_method": asked.name(),
    });
    let resp = http
        .post(registration_endpoint)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| OAuthError::Transient(format!("registration: {}", e.without_url())))?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| OAuthError::Transient(e.without_url().to_string()))?;
    if !status.is_success() {
        return Err(OAuthError::Rejected {
            code: format!("registration failed ({status})"),
            description: None,
        });
    }
    let r: Registered = serde_json::from_slice(&bytes)
        .map_err(|e| OAuthError::BadResponse(format!("registration: {e}")))?;
    let method = match r.token_endpoint_auth_method.as_deref() {
        Some(name) => AuthMethod::parse(Some(name)),
        None if r.client_secret.is_some() => AuthMethod::for_secret(supported),
        None => AuthMethod::None,
    };
    Ok(Registration {
        client_id: r.client_id,
        secret: r.client_secret.map(|s| (SecretString::from(s), method)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_resource_metadata_from_www_authenticate() {
        assert_eq!(
            resource_metadata_url(
                r#"Bearer resource_metadata="https://a/.well-known/oauth-protected-resource/mcp", scope="x y""#
            ),
            Some("https://a/.well-known/oauth-protected-resource/mcp".into())
        );
        assert_eq!(
            resource_metadata_url(
                r#"Bearer error="invalid_token", resource_metadata="https://b/m""#
            ),
            Some("https://b/m".into())
        );
        assert_eq!(resource_metadata_url("Basic realm=\"x\""), None);
        assert_eq!(resource_metadata_url("Bearer realm=\"x\""), None);
    }

    #[test]
    fn an_origin_vouches_only_for_issuers_on_itself() {
        let origin = "https://mcp.example:8443";
        assert!(on_origin("https://mcp.example:8443", origin));
        assert!(on_origin("https://mcp.example:8443/", origin));
        assert!(on_origin("https://mcp.example:8443/oauth", origin));
        assert!(!on_origin(
            "https://mcp.example:8443.evil.example/oauth",
            origin
        ));
        assert!(!on_origin("https://mcp.example:84430/oauth", origin));
        assert!(!on_origin("https://mcp.example/oauth", origin));
        assert!(!on_origin("https://as.example", origin));
    }

    #[test]
    fn well_known_goes_between_origin_and_path() {
        let u = Url::parse("https://as.example/tenant1").unwrap();
        assert_eq!(
            well_known(&u, "oauth-authorization-server"),
            "https://as.example/.well-known/oauth-authorization-server/tenant1"
        );
        let root = Url::parse("https://as.example").unwrap();
        assert_eq!(
            well_known(&root, "oauth-authorization-server"),
            "https://as.example/.well-known/oauth-authorization-server"
        );
    }
}
