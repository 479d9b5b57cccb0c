//! Alibaba Cloud preset: the AK-signed services behind it. The endpoints of each region
//! (shared/ALIBABA.md) are configuration, in [`crate::config::preset`], re-exported here.
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

use std::sync::Arc;
use std::time::Duration;

pub use crate::config::preset::{Region, RegionPreset, DEFAULT_OAUTH_APP_NAME, DEFAULT_SCOPE};
use crate::config::{AlibabaProfile, Upstream};
use crate::http_client::{self, ClientError, ClientOptions};
use credentials::{AccessKey, CredentialsError, KeySource, Sources};
use ims::ImsClient;
use listing::Lister;
use provision::{AppSpec, FixOutcome, ProvisionError, Provisioned};

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
        ..Default::default()
    }
}

/// The lister of an `alibaba`-catalog upstream: its URL, CA, proxy and `allow_http`, the
/// profile's AccessKey.
pub fn lister(
    upstream: &Upstream,
    key: Arc<AccessKey>,
    connect_timeout: Duration,
) -> Result<Lister, ClientError> {
    let http = http_client::build(&ClientOptions::for_upstream(upstream, connect_timeout))?;
    Ok(Lister::new(http, upstream.url.clone(), key))
}
