//! Importing the login of Alibaba Cloud's `aliyun mcp-proxy` from its plaintext file
//! (`~/.aliyun/.mcpproxy_config`, profile `default-mcp`), so upgrading needs no new login.

use secrecy::SecretString;
use serde_json::Value;

use crate::auth::token_store::TokenRecord;
use crate::clock::now;
use crate::config::{AuthProfile, Config};

/// The seed tool's profile name.
pub const SEED_PROFILE: &str = "default-mcp";

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Profile(String),
    #[error("the file has no `{0}` profile with MCP OAuth tokens")]
    NoProfile(&'static str),
    #[error("the `{SEED_PROFILE}` profile lacks {0}")]
    Missing(&'static str),
    #[error("the imported login is for site {found}, but profile `{profile}` is configured for {configured}")]
    WrongSite {
        profile: String,
        found: String,
        configured: String,
    },
}

/// The profile object: `{"profiles": [{"name": "default-mcp", ...}]}`, or the keys at the top.
fn seed_profile(file: &Value) -> Option<&serde_json::Map<String, Value>> {
    let has_tokens = |o: &serde_json::Map<String, Value>| o.contains_key("mcp_oauth_refresh_token");
    if let Some(list) = file.get("profiles").and_then(Value::as_array) {
        if let Some(p) = list
            .iter()
            .filter_map(Value::as_object)
            .find(|p| p.get("name").and_then(Value::as_str) == Some(SEED_PROFILE))
        {
            return Some(p);
        }
    }
    file.as_object().filter(|o| has_tokens(o))
}

fn text<'a>(o: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a str> {
    o.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

fn number(o: &serde_json::Map<String, Value>, key: &str) -> Option<u64> {
    match o.get(key)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The alibaba profile to import into: the one named, else the only one.
pub fn pick_alibaba(config: &Config, named: Option<&str>) -> Result<String, ImportError> {
    let alibaba: Vec<&String> = config
        .auth
        .iter()
        .filter(|(_, p)| matches!(p, AuthProfile::Alibaba(_)))
        .map(|(n, _)| n)
        .collect();
    match named {
        Some(n) if alibaba.iter().any(|a| *a == n) => Ok(n.to_string()),
        Some(n) => Err(ImportError::Profile(format!(
            "`{n}` is not an alibaba profile"
        ))),
        None if alibaba.len() == 1 => Ok(alibaba[0].clone()),
        None => Err(ImportError::Profile(
            "choose the alibaba profile to import into with --profile".into(),
        )),
    }
}

/// The token record the seed file describes, for `profile` of `config`.
pub fn record(
    config: &Config,
    profile: &str,
    file: &Value,
) -> Result<(TokenRecord, String), ImportError> {
    let Some(AuthProfile::Alibaba(a)) = config.auth.get(profile) else {
        return Err(ImportError::Profile(format!(
            "`{profile}` is not an alibaba profile"
        )));
    };
    let p = seed_profile(file).ok_or(ImportError::NoProfile(SEED_PROFILE))?;
    if let Some(site) = text(p, "mcp_oauth_site_type") {
        if !site.eq_ignore_ascii_case(&a.region.to_string()) {
            return Err(ImportError::WrongSite {
                profile: profile.into(),
                found: site.into(),
                configured: a.region.to_string(),
            });
        }
    }
    let app_id = text(p, "mcp_oauth_app_id").ok_or(ImportError::Missing("mcp_oauth_app_id"))?;
    let refresh = text(p, "mcp_oauth_refresh_token")
        .ok_or(ImportError::Missing("mcp_oauth_refresh_token"))?;
    let access = text(p, "mcp_oauth_access_token").unwrap_or("");
    let endpoints = crate::alibaba::oauth_endpoints(a);
    let record = TokenRecord {
        access_token: SecretString::from(access.to_string()),
        // An absent or empty access token is simply expired: the first use refreshes it.
        access_expires_at: Some(if access.is_empty() {
            0
        } else {
            number(p, "mcp_oauth_access_token_expire").unwrap_or(0)
        }),
        refresh_token: Some(SecretString::from(refresh.to_string())),
        refresh_expires_at: number(p, "mcp_oauth_refresh_token_expire"),
        issuer: endpoints.issuer,
        token_endpoint: Some(endpoints.token),
        revocation_endpoint: endpoints.revocation,
        client_id: app_id.to_string(),
        client_secret: None,
        auth_method: None,
        scope: Some(a.scope.clone()),
        resource: None,
        obtained_at: now()
            .saturating_sub(number(p, "mcp_oauth_access_token_validity").unwrap_or(0)),
    };
    Ok((record, app_id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_str, Overrides, Source};
    use secrecy::ExposeSecret;

    fn seed() -> Value {
        serde_json::json!({
            "current": "default",
            "profiles": [
                {"name": "default", "mode": "AK"},
                {"name": "default-mcp", "mcp_oauth_app_name": "aliyun-cli-mcp-proxy",
                 "mcp_oauth_app_id": "4071151845732613353", "mcp_oauth_site_type": "CN",
                 "mcp_oauth_access_token": "AT-1", "mcp_oauth_refresh_token": "RT-1",
                 "mcp_oauth_access_token_validity": 10800, "mcp_oauth_refresh_token_validity": 31536000,
                 "mcp_oauth_access_token_expire": 1900000000u64, "mcp_oauth_refresh_token_expire": 1930000000u64}
            ]
        })
    }

    #[test]
    fn imports_the_seed_profile() {
        let config = load_str(Source::Defaults, "", &Overrides::default()).unwrap();
        let profile = pick_alibaba(&config, None).unwrap();
        let (r, app) = record(&config, &profile, &seed()).unwrap();
        assert_eq!(app, "4071151845732613353");
        assert_eq!(r.client_id, app);
        assert_eq!(r.access_token.expose_secret(), "AT-1");
        assert_eq!(r.refresh_token.unwrap().expose_secret(), "RT-1");
        assert_eq!(r.access_expires_at, Some(1900000000));
        assert_eq!(r.refresh_expires_at, Some(1930000000));
        assert_eq!(
            r.token_endpoint.as_deref(),
            Some("https://oauth.aliyun.com/v1/token")
        );
    }

    #[test]
    fn refuses_the_wrong_site_and_missing_tokens() {
        let intl = Overrides {
            region: Some("INTL".into()),
            ..Default::default()
        };
        let config = load_str(Source::Defaults, "", &intl).unwrap();
        assert!(matches!(
            record(&config, "alibaba", &seed()),
            Err(ImportError::WrongSite { .. })
        ));
        let config = load_str(Source::Defaults, "", &Overrides::default()).unwrap();
        let empty = serde_json::json!({"profiles": []});
        assert!(matches!(
            record(&config, "alibaba", &empty),
            Err(ImportError::NoProfile(_))
        ));
        let mut no_rt = seed();
        no_rt["profiles"][1]["mcp_oauth_refresh_token"] = Value::String(String::new());
        assert!(matches!(
            record(&config, "alibaba", &no_rt),
            Err(ImportError::Missing(_))
        ));
    }
}
