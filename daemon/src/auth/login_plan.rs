//! What a login needs before the user is sent off: the authorization server's endpoints, the
//! client id, scopes, `resource` and redirect URI of a profile, discovered, registered or (for
//! Alibaba Cloud) provisioned as the profile says.

use std::collections::HashMap;

use secrecy::SecretString;

use crate::auth::errors::LoginError;
use crate::auth::oauth::resource::{self, Discovered};
use crate::auth::oauth::{discovery, AuthMethod, Endpoints};
use crate::config::{AlibabaProfile, Config, OAuthProfile, Resource};

/// The HTTP clients a login plan may use: the profile's own (its CA; HTTPS only) for the
/// authorization server, and each upstream's (its CA, proxy, `allow_http`) for discovery.
pub struct Clients<'a> {
    pub auth: &'a reqwest::Client,
    pub upstreams: &'a HashMap<String, reqwest::Client>,
}

/// The plan of one login.
pub(crate) struct Plan {
    pub(crate) endpoints: Endpoints,
    pub(crate) client_id: String,
    /// A confidential client's secret, how to send it, and whether it came from registration
    /// (then the token record keeps it).
    pub(crate) secret: Option<(SecretString, AuthMethod)>,
    pub(crate) secret_registered: bool,
    pub(crate) scopes: Vec<String>,
    pub(crate) resource: Option<String>,
    pub(crate) redirect_uri: String,
}

impl Plan {
    /// Adds the scopes an upstream asked for beyond the last login (`step_up`) that the plan
    /// does not ask for yet.
    pub(crate) fn ask_also(&mut self, step_up: &[String]) {
        for scope in step_up {
            if !self.scopes.contains(scope) {
                self.scopes.push(scope.clone());
            }
        }
    }
}

/// The profile a login is started for: refused when it is not configured, or when it fetches
/// its tokens itself (`grant = "client_credentials"`) and has nothing to log in to.
pub(crate) fn loginable<'c>(
    config: &'c Config,
    profile: &str,
) -> Result<&'c crate::config::AuthProfile, LoginError> {
    use crate::config::AuthProfile;
    match config.auth.get(profile) {
        None => Err(LoginError::Profile(format!("no auth profile `{profile}`"))),
        Some(AuthProfile::OAuth(o)) if crate::auth::machine::is_machine(o) => {
            Err(LoginError::Profile(format!(
                "profile `{profile}` uses grant = \"client_credentials\": the daemon fetches \
                 its tokens itself, there is nothing to log in to"
            )))
        }
        Some(p) => Ok(p),
    }
}

/// A generic OAuth profile: endpoints as configured or discovered, then the client id as
/// configured or registered (RFC 7591), then the `resource`.
pub(crate) async fn oauth(
    config: &Config,
    profile: &str,
    o: &OAuthProfile,
    clients: &Clients<'_>,
    default_redirect: &str,
) -> Result<Plan, LoginError> {
    let http = clients.auth;
    let Discovered {
        endpoints,
        resource: discovered_resource,
        challenge_scopes,
        resource_scopes,
    } = endpoints(config, profile, o, clients).await?;
    let redirect_uri = default_redirect.to_string();
    // A client id that is an https URL is a Client ID Metadata Document: used where the server
    // supports those, else the daemon registers (when it can) instead.
    let cimd = o
        .client_id
        .as_deref()
        .is_some_and(|c| c.starts_with("https://"));
    let configured = o
        .client_id
        .as_ref()
        .filter(|_| !cimd || endpoints.cimd_supported || endpoints.registration.is_none());
    if cimd && !endpoints.cimd_supported && endpoints.registration.is_none() {
        return Err(LoginError::Profile(format!(
            "profile `{profile}`: client_id is a client ID metadata document URL, but the \
             authorization server supports neither those nor dynamic registration"
        )));
    }
    let (client_id, secret, secret_registered) = match configured {
        Some(c) => {
            let secret = o.client_secret.as_ref().map(|s| s.secret.clone());
            let has_key = o.private_key.is_some();
            let secret =
                match AuthMethod::choose(&endpoints.auth_methods, secret.is_some(), has_key) {
                    // No secret to hold: the exchange mints its assertion (login.rs).
                    Some(AuthMethod::PrivateKeyJwt) => {
                        Some((SecretString::from(String::new()), AuthMethod::PrivateKeyJwt))
                    }
                    Some(m) => secret.map(|s| (s, m)),
                    None => None,
                };
            (c.clone(), secret, false)
        }
        None => {
            let reg = endpoints.registration.clone().ok_or_else(|| LoginError::Profile(format!(
                "profile `{profile}` has no client_id and the server offers no dynamic registration; set client_id"
            )))?;
            let r = discovery::register(http, &endpoints, &reg, &redirect_uri).await?;
            (r.client_id, r.secret, true)
        }
    };
    let resource = match &o.resource {
        Resource::Off => None,
        Resource::Uri(u) => Some(u.to_string()),
        Resource::Auto => discovered_resource,
    };
    let wanted = [&o.scopes, &challenge_scopes, &resource_scopes]
        .into_iter()
        .find(|s| !s.is_empty())
        .cloned()
        .unwrap_or_default();
    let scopes = with_offline_access(wanted, &endpoints.scopes_supported);
    Ok(Plan {
        endpoints,
        client_id,
        secret,
        secret_registered,
        scopes,
        resource,
        redirect_uri,
    })
}

/// The scopes asked for (the profile's, else the challenge's, else the resource's
/// `scopes_supported`: the MCP scope selection strategy), plus `offline_access` when the
/// authorization server lists it (SEP-2207), so that a refresh token is issued where one can be.
fn with_offline_access(mut scopes: Vec<String>, supported: &[String]) -> Vec<String> {
    let offline = "offline_access";
    if supported.iter().any(|s| s == offline) && !scopes.iter().any(|s| s == offline) {
        scopes.push(offline.to_string());
    }
    scopes
}

/// The endpoints of a generic profile: explicit, from the issuer's metadata (RFC 8414), or
/// discovered from the 401 of an upstream that uses the profile (RFC 9728).
async fn endpoints(
    config: &Config,
    profile: &str,
    o: &OAuthProfile,
    clients: &Clients<'_>,
) -> Result<Discovered, LoginError> {
    let http = clients.auth;
    match (&o.authorization_endpoint, &o.token_endpoint, &o.issuer) {
        (Some(a), Some(t), issuer) => Ok(Discovered {
            endpoints: Endpoints {
                issuer: issuer.as_ref().map(|u| u.to_string()),
                authorization: Some(a.to_string()),
                token: t.to_string(),
                revocation: o.revocation_endpoint.as_ref().map(|u| u.to_string()),
                ..Endpoints::default()
            },
            ..Discovered::default()
        }),
        (_, _, Some(issuer)) => {
            let mut e = discovery::server_metadata(http, issuer.as_str()).await?;
            if let Some(r) = &o.revocation_endpoint {
                e.revocation = Some(r.to_string());
            }
            Ok(Discovered {
                endpoints: e,
                ..Discovered::default()
            })
        }
        _ => {
            let upstream = config
                .upstreams
                .iter()
                .find(|u| u.auth == profile)
                .ok_or_else(|| LoginError::Profile(format!(
                    "profile `{profile}` has no issuer or endpoints and no upstream uses it to discover them"
                )))?;
            let upstream_http = clients.upstreams.get(&upstream.name).ok_or_else(|| {
                LoginError::Profile(format!("upstream `{}` has no HTTP client", upstream.name))
            })?;
            Ok(resource::from_upstream(upstream_http, http, &upstream.url).await?)
        }
    }
}

/// An Alibaba Cloud profile: the application (found, created or checked through IMS) gives
/// the client id. `http` is the profile's own client (its CA), which reaches IMS too.
pub(crate) async fn alibaba(
    profile: &str,
    a: &AlibabaProfile,
    http: &reqwest::Client,
    default_redirect: &str,
) -> Result<Plan, LoginError> {
    let sources = crate::alibaba::credentials::Sources::from_process();
    let app = crate::alibaba::provision(a, http, default_redirect, &sources)
        .await
        .map_err(|e| LoginError::Profile(format!("profile `{profile}`: {e}")))?;
    if app.created {
        tracing::info!(profile, app_id = %app.client_id(), "created the OAuth application");
    }
    Ok(Plan {
        endpoints: crate::alibaba::oauth_endpoints(a),
        client_id: app.client_id().to_string(),
        secret: None,
        secret_registered: false,
        scopes: vec![a.scope.clone()],
        resource: None,
        redirect_uri: crate::alibaba::app_spec(a, default_redirect).redirect_uri,
    })
}
