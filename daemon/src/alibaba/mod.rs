//! Alibaba Cloud preset: the endpoints of each region (shared/ALIBABA.md), and the AK-signed
//! services behind the preset.
//!
//! - [`sign`]: API signature V3 (`ACS3-HMAC-SHA256`), pure.
//! - [`credentials`]: the AccessKey, from the environment, an Alibaba Cloud CLI profile or a
//!   systemd credential.
//! - [`api`]: one signed call and its error shape; [`ims`]: the OAuth-application API.
//! - [`provision`](mod@provision): the application rule (default name found or created, others checked).
//! - [`listing`]: `ListApiMcpServers`, all pages; [`catalog_cache`]: the last good list.

pub mod api;
pub mod catalog_cache;
pub mod credentials;
pub mod ims;
pub mod listing;
pub mod provision;
pub mod sign;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{AlibabaProfile, Upstream};
use crate::http_client::{self, ClientError, ClientOptions};
use credentials::{AccessKey, CredentialsError, KeySource, Sources};
use ims::ImsClient;
use listing::Lister;
use provision::{AppSpec, FixOutcome, ProvisionError, Provisioned};

/// An Alibaba Cloud site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// China site (aliyun.com).
    Cn,
    /// International site (alibabacloud.com).
    Intl,
}

/// The endpoints a region fills in for an `alibaba` profile and its upstream.
#[derive(Debug, Clone, Copy)]
pub struct RegionPreset {
    pub signin_url: &'static str,
    pub oauth_url: &'static str,
    pub ims_endpoint: &'static str,
    pub mcp_endpoint: &'static str,
}

pub const DEFAULT_OAUTH_APP_NAME: &str = "aliyun-cli-mcp-proxy";
pub const DEFAULT_SCOPE: &str = "/acs/mcp-server";

impl Region {
    /// Parses `CN` or `INTL`, in any case.
    pub fn parse(text: &str) -> Option<Region> {
        match text.trim().to_ascii_uppercase().as_str() {
            "CN" => Some(Region::Cn),
            "INTL" => Some(Region::Intl),
            _ => None,
        }
    }

    /// Every region, for lookups by endpoint.
    pub const ALL: [Region; 2] = [Region::Cn, Region::Intl];

    /// The region whose preset MCP endpoint `url` is, if any (a trailing `/` does not matter).
    pub fn of_mcp_endpoint(url: &url::Url) -> Option<Region> {
        Region::ALL
            .into_iter()
            .find(|r| url::Url::parse(r.preset().mcp_endpoint).is_ok_and(|preset| preset == *url))
    }

    pub fn preset(self) -> RegionPreset {
        match self {
            Region::Cn => RegionPreset {
                signin_url: "https://signin.aliyun.com/oauth2/v1/auth",
                oauth_url: "https://oauth.aliyun.com",
                ims_endpoint: "https://ims.aliyuncs.com",
                mcp_endpoint: "https://openapi-mcp.cn-hangzhou.aliyuncs.com",
            },
            Region::Intl => RegionPreset {
                signin_url: "https://signin.alibabacloud.com/oauth2/v1/auth",
                oauth_url: "https://oauth.alibabacloud.com",
                ims_endpoint: "https://ims.aliyuncs.com",
                mcp_endpoint: "https://openapi-mcp.ap-southeast-1.aliyuncs.com",
            },
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Region::Cn => "CN",
            Region::Intl => "INTL",
        })
    }
}

/// The AccessKey a profile names (`access_key`).
pub fn access_key(
    profile: &AlibabaProfile,
    sources: &Sources,
) -> Result<Arc<AccessKey>, CredentialsError> {
    let source = KeySource::parse(&profile.access_key)?;
    credentials::load(&source, sources).map(Arc::new)
}

/// The application a profile needs; `redirect_uri` is the default (`http://HOST:PORT/callback`
/// of the first listen address), used unless the profile sets its own.
pub fn app_spec(profile: &AlibabaProfile, redirect_uri: &str) -> AppSpec {
    AppSpec {
        name: profile.oauth_app_name.clone(),
        scope: profile.scope.clone(),
        redirect_uri: profile
            .redirect_uri
            .as_ref()
            .map(|u| u.to_string())
            .unwrap_or_else(|| redirect_uri.to_string()),
    }
}

/// Before a login: the profile's application, found or created and checked; its AppId is the
/// OAuth `client_id`.
pub async fn provision(
    profile: &AlibabaProfile,
    http: &reqwest::Client,
    redirect_uri: &str,
    sources: &Sources,
) -> Result<Provisioned, ProvisionError> {
    let ims = ImsClient::new(
        http.clone(),
        profile.ims_endpoint.clone(),
        access_key(profile, sources)?,
    );
    provision::ensure_application(&ims, &app_spec(profile, redirect_uri)).await
}

/// `mcpproxyctl app fix`: adds the profile's redirect URI to its application.
pub async fn fix_app(
    profile: &AlibabaProfile,
    http: &reqwest::Client,
    redirect_uri: &str,
    sources: &Sources,
) -> Result<FixOutcome, ProvisionError> {
    let ims = ImsClient::new(
        http.clone(),
        profile.ims_endpoint.clone(),
        access_key(profile, sources)?,
    );
    provision::fix_redirect_uri(&ims, &app_spec(profile, redirect_uri)).await
}

/// The OAuth endpoints of a profile: sign-in authorizes, the OAuth service's `/v1/token` and
/// `/v1/revoke` issue and revoke.
pub fn oauth_endpoints(profile: &AlibabaProfile) -> crate::auth::oauth::Endpoints {
    let oauth = profile.oauth_url.as_str().trim_end_matches('/');
    crate::auth::oauth::Endpoints {
        issuer: Some(oauth.to_string()),
        authorization: Some(profile.signin_url.to_string()),
        token: format!("{oauth}/v1/token"),
        revocation: Some(format!("{oauth}/v1/revoke")),
        registration: None,
    }
}

/// The lister of an `alibaba`-catalog upstream: its URL, CA, proxy and `allow_http`, the
/// profile's AccessKey.
pub fn lister(
    upstream: &Upstream,
    key: Arc<AccessKey>,
    connect_timeout: Duration,
) -> Result<Lister, ClientError> {
    let http = http_client::build(&ClientOptions {
        ca_file: upstream.ca_file.clone(),
        proxy: upstream.proxy.clone(),
        connect_timeout,
        allow_http: upstream.allow_http,
    })?;
    Ok(Lister::new(http, upstream.url.clone(), key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_is_case_insensitive() {
        assert_eq!(Region::parse("cn"), Some(Region::Cn));
        assert_eq!(Region::parse("Intl"), Some(Region::Intl));
        assert_eq!(Region::parse("EU"), None);
    }

    #[test]
    fn preset_endpoints_are_recognised_with_or_without_a_slash() {
        let url = |s: &str| url::Url::parse(s).unwrap();
        for r in Region::ALL {
            assert_eq!(
                Region::of_mcp_endpoint(&url(r.preset().mcp_endpoint)),
                Some(r)
            );
        }
        let cn = url("https://openapi-mcp.cn-hangzhou.aliyuncs.com/");
        assert_eq!(Region::of_mcp_endpoint(&cn), Some(Region::Cn));
        let own = url("https://openapi-mcp.cn-hangzhou.aliyuncs.com/mcp");
        assert_eq!(Region::of_mcp_endpoint(&own), None);
    }
}
