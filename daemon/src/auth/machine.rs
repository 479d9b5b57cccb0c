//! Machine-to-machine profiles (`grant = "client_credentials"`, OAuth 2.1 §4.2): no login; the
//! daemon fetches a token with the client's own credentials when it has none, and fetches a
//! new one where another profile would refresh.

use crate::auth::oauth::{self, discovery, AuthMethod, Endpoints, Grant, OAuthError};
use crate::auth::token_store::TokenRecord;
use crate::config::{GrantType, OAuthProfile, Resource};

/// Whether `profile` gets its tokens by the client-credentials grant.
pub fn is_machine(profile: &OAuthProfile) -> bool {
    profile.grant == GrantType::ClientCredentials
}

/// A token for the profile's client: the token endpoint as configured or from the issuer's
/// metadata, the secret sent as the server supports.
pub async fn fetch(
    profile: &OAuthProfile,
    http: &reqwest::Client,
) -> Result<TokenRecord, OAuthError> {
    let endpoints = match (&profile.token_endpoint, &profile.issuer) {
        (Some(t), issuer) => Endpoints {
            issuer: issuer.as_ref().map(|u| u.to_string()),
            token: t.to_string(),
            revocation: profile.revocation_endpoint.as_ref().map(|u| u.to_string()),
            ..Endpoints::default()
        },
        (None, Some(issuer)) => discovery::server_metadata(http, issuer.as_str()).await?,
        (None, None) => {
            return Err(OAuthError::Config(
                "client_credentials needs token_endpoint or issuer".into(),
            ))
        }
    };
    let Some(client_id) = &profile.client_id else {
        return Err(OAuthError::Config(
            "client_credentials needs client_id and a client secret or private key".into(),
        ));
    };
    let secret = profile.client_secret.as_ref().map(|s| &s.secret);
    let key = profile.private_key.as_ref().map(|k| &k.key);
    let method = AuthMethod::choose(&endpoints.auth_methods, secret.is_some(), key.is_some())
        .ok_or_else(|| {
            OAuthError::Config(
                "the authorization server does not list private_key_jwt, and the profile has no \
                 client secret"
                    .into(),
            )
        })?;
    let assertion = match (method, key) {
        (AuthMethod::PrivateKeyJwt, Some(key)) => {
            let audience = oauth::assertion_audience(&endpoints);
            let now = crate::clock::now();
            Some(
                key.assertion(client_id, audience, now)
                    .map_err(|e| OAuthError::Config(e.to_string()))?,
            )
        }
        _ => None,
    };
    let credential = assertion.as_ref().or(secret).map(|s| (s, method));
    let resource = match &profile.resource {
        Resource::Uri(u) => Some(u.to_string()),
        Resource::Auto | Resource::Off => None,
    };
    let grant = Grant {
        endpoints: &endpoints,
        client_id,
        secret: credential,
        keep_secret: false,
        resource: resource.as_deref(),
    };
    oauth::client_credentials(http, &grant, &profile.scopes).await
}
