//! OAuth 2.1 as a public client: the authorization URL (PKCE S256, `state`, RFC 8707
//! `resource`), the code exchange, refresh and RFC 7009 revocation, through the `oauth2` crate
//! over the daemon's one HTTP client setup. Discovery and registration live in [`discovery`].

pub mod device;
pub mod discovery;
pub mod jws;
pub mod resource;

use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, RevocationUrl, StandardRevocableToken, StandardTokenResponse, TokenResponse,
    TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::auth::token_store::TokenRecord;

/// Where a profile's authorization server takes requests, and what its metadata says it
/// supports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    pub issuer: Option<String>,
    pub authorization: Option<String>,
    pub token: String,
    pub revocation: Option<String>,
    pub registration: Option<String>,
    /// The metadata's `scopes_supported` (empty when unknown).
    pub scopes_supported: Vec<String>,
    /// The metadata's `token_endpoint_auth_methods_supported` (empty when unknown).
    pub auth_methods: Vec<String>,
    /// The metadata's `authorization_response_iss_parameter_supported` (RFC 9207): redirects
    /// must then carry `iss` equal to the issuer.
    pub iss_in_response: bool,
    /// The metadata's `client_id_metadata_document_supported`: an https URL may be the
    /// client id (Client ID Metadata Documents).
    pub cimd_supported: bool,
    /// The metadata's `device_authorization_endpoint` (RFC 8628), https only: where
    /// `mcpproxyctl login --device` starts.
    pub device_authorization: Option<String>,
}

/// How the client authenticates at the token endpoint (RFC 6749 §2.3.1, RFC 7591 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// `client_secret_basic`: HTTP Basic with the id and secret.
    Basic,
    /// `client_secret_post`: both in the form.
    Post,
    /// `none`: a public client, its id in the form.
    None,
    /// `private_key_jwt` (RFC 7523 §2.2): a JWT signed with the client's key, minted for each
    /// request ([`jws`]); the id in the form too.
    PrivateKeyJwt,
}

impl AuthMethod {
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Basic => "client_secret_basic",
            AuthMethod::Post => "client_secret_post",
            AuthMethod::None => "none",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }

    /// The method of a stored name; unknown or absent names are `none`.
    pub fn parse(name: Option<&str>) -> AuthMethod {
        match name {
            Some("client_secret_basic") => AuthMethod::Basic,
            Some("client_secret_post") => AuthMethod::Post,
            Some("private_key_jwt") => AuthMethod::PrivateKeyJwt,
            _ => AuthMethod::None,
        }
    }

    /// For a client with a secret: `client_secret_basic` unless the server lists only
    /// `client_secret_post` (a server that lists nothing gets basic, RFC 6749's default).
    pub fn for_secret(supported: &[String]) -> AuthMethod {
        let lists = |m: AuthMethod| supported.iter().any(|s| s == m.name());
        if !lists(AuthMethod::Basic) && lists(AuthMethod::Post) {
            AuthMethod::Post
        } else {
            AuthMethod::Basic
        }
    }

    /// The method of a pre-registered client, in this order: `private_key_jwt` when it has a
    /// key and the server lists that method (or lists none and the client has no secret); else
    /// its secret as [`for_secret`](Self::for_secret) says; else `None` (a public client).
    pub fn choose(supported: &[String], has_secret: bool, has_key: bool) -> Option<AuthMethod> {
        let jwt = AuthMethod::PrivateKeyJwt.name();
        let lists_jwt = supported.iter().any(|s| s == jwt);
        if has_key && (lists_jwt || (supported.is_empty() && !has_secret)) {
            Some(AuthMethod::PrivateKeyJwt)
        } else if has_secret {
            Some(AuthMethod::for_secret(supported))
        } else {
            None
        }
    }
}

/// The `aud` of client assertions for `endpoints`: the issuer identifier (RFC 7523bis, as
/// the MCP conformance suite checks), else the token endpoint (RFC 7523 §3).
pub fn assertion_audience(endpoints: &Endpoints) -> &str {
    endpoints
        .issuer
        .as_deref()
        .unwrap_or(endpoints.token.as_str())
}

/// How a request authenticates: the fresh `assertion` when the client signs one, else its
/// `secret` and method.
pub fn credential<'a>(
    secret: &'a Option<(SecretString, AuthMethod)>,
    assertion: Option<&'a SecretString>,
) -> Option<(&'a SecretString, AuthMethod)> {
    match assertion {
        Some(a) => Some((a, AuthMethod::PrivateKeyJwt)),
        None => secret.as_ref().map(|(s, m)| (s, *m)),
    }
}

/// The form parameters that carry a client assertion, when `secret` is one.
fn assertion_params(secret: Option<(&SecretString, AuthMethod)>) -> Vec<(&'static str, String)> {
    match secret {
        Some((assertion, AuthMethod::PrivateKeyJwt)) => vec![
            ("client_assertion_type", jws::JWT_BEARER.to_string()),
            ("client_assertion", assertion.expose_secret().to_string()),
        ],
        _ => Vec::new(),
    }
}

/// What every token request of `grant` adds to its form: the `resource` (RFC 8707) when there
/// is one, then the client assertion when the client authenticates with one.
fn grant_params(grant: &Grant<'_>) -> Vec<(&'static str, String)> {
    let mut params: Vec<_> = grant
        .resource
        .map(|r| ("resource", r.to_string()))
        .into_iter()
        .collect();
    params.extend(assertion_params(grant.secret));
    params
}

impl Endpoints {
    /// The endpoints a stored record goes back to: refresh and revocation use the server that
    /// issued the tokens.
    pub fn of_record(r: &TokenRecord) -> Endpoints {
        Endpoints {
            issuer: r.issuer.clone(),
            authorization: None,
            token: r.token_endpoint.clone().unwrap_or_default(),
            revocation: r.revocation_endpoint.clone(),
            ..Endpoints::default()
        }
    }
}

/// Token response fields beyond RFC 6749 that some servers (Alibaba Cloud) send.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Extra {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_expires_in: Option<u64>,
}
impl ExtraTokenFields for Extra {}

type TokenResp = StandardTokenResponse<Extra, BasicTokenType>;
type OClient = oauth2::Client<
    BasicErrorResponse,
    TokenResp,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointMaybeSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The longest a request to an authorization server may take.
pub const AUTH_SERVER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What can go wrong talking to an authorization server. Messages never hold secrets.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The server refused the grant: the user must log in again.
    #[error("the authorization server refused: {code}{}", .description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Rejected {
        code: String,
        description: Option<String>,
    },
    /// Network trouble, timeouts, 5xx: worth retrying while the token lasts.
    #[error("the authorization server could not be reached: {0}")]
    Transient(String),
    /// The server answered something that is not a token response.
    #[error("the authorization server sent a response that is not valid: {0}")]
    BadResponse(String),
    #[error("{0}")]
    Config(String),
    /// The login ended with its access token: the server issued no refresh token.
    #[error(
        "the login ended when its access token expired: the authorization server issued no \
         refresh token"
    )]
    NoRefreshToken,
}

impl OAuthError {
    /// Errors that mean "log in again" (RFC 6749 §5.2 and Alibaba Cloud's list).
    pub fn needs_login(&self) -> bool {
        match self {
            OAuthError::Rejected { code, .. } => matches!(
                code.as_str(),
                "invalid_grant" | "invalid_client" | "unauthorized_client" | "invalid_token"
            ),
            OAuthError::NoRefreshToken => true,
            _ => false,
        }
    }
}

fn client(
    endpoints: &Endpoints,
    client_id: &str,
    secret: Option<(&SecretString, AuthMethod)>,
    redirect: Option<&str>,
) -> Result<OClient, OAuthError> {
    let bad = |what: &str, e: oauth2::url::ParseError| OAuthError::Config(format!("{what}: {e}"));
    let auth = endpoints
        .authorization
        .as_deref()
        .map(|u| AuthUrl::new(u.to_string()).map_err(|e| bad("authorization endpoint", e)))
        .transpose()?;
    let revoke = endpoints
        .revocation
        .as_deref()
        .map(|u| RevocationUrl::new(u.to_string()).map_err(|e| bad("revocation endpoint", e)))
        .transpose()?;
    let token = TokenUrl::new(endpoints.token.clone()).map_err(|e| bad("token endpoint", e))?;
    let auth_type = match secret {
        Some((_, AuthMethod::Basic)) => AuthType::BasicAuth,
        _ => AuthType::RequestBody,
    };
    let mut c = oauth2::Client::new(ClientId::new(client_id.to_string()))
        .set_auth_type(auth_type)
        .set_auth_uri_option(auth)
        .set_token_uri_option(Some(token))
        .set_revocation_url_option(revoke);
    let shared_secret = |m: &AuthMethod| matches!(m, AuthMethod::Basic | AuthMethod::Post);
    if let Some((s, _)) = secret.filter(|(_, m)| shared_secret(m)) {
        c = c.set_client_secret(oauth2::ClientSecret::new(s.expose_secret().to_string()));
    }
    if let Some(r) = redirect {
        c = c
            .set_redirect_uri(RedirectUrl::new(r.to_string()).map_err(|e| bad("redirect URI", e))?);
    }
    Ok(c)
}

/// The HTTP adapter: the `oauth2` crate's requests through the daemon's reqwest client (one
/// client setup for everything; redirects are never followed).
struct Http(reqwest::Client);

type HttpError = oauth2::HttpClientError<reqwest::Error>;

impl<'c> oauth2::AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<oauth2::HttpResponse, HttpError>> + Send + 'c>,
    >;

    fn call(&'c self, req: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let url = parts.uri.to_string();
            let resp = self
                .0
                .request(parts.method, url)
                .headers(parts.headers)
                .body(body)
                .timeout(AUTH_SERVER_TIMEOUT)
                .send()
                .await
                .map_err(|e| oauth2::HttpClientError::Reqwest(Box::new(e)))?;
            let mut builder = http::Response::builder().status(resp.status());
            for (k, v) in resp.headers() {
                builder = builder.header(k, v);
            }
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| oauth2::HttpClientError::Reqwest(Box::new(e)))?;
            builder
                .body(bytes.to_vec())
                .map_err(oauth2::HttpClientError::Http)
        })
    }
}

fn map_token_error(e: RequestTokenError<HttpError, BasicErrorResponse>) -> OAuthError {
    match e {
        RequestTokenError::ServerResponse(r) => {
            let code = match r.error() {
                BasicErrorResponseType::Extension(s) => s.clone(),
                other => other.as_ref().to_string(),
            };
            if matches!(code.as_str(), "temporarily_unavailable" | "server_error") {
                return OAuthError::Transient(code);
            }
            OAuthError::Rejected {
                code,
                description: r.error_description().cloned(),
            }
        }
        RequestTokenError::Request(e) => OAuthError::Transient(e.without_url_chain()),
        RequestTokenError::Parse(e, body) => {
            // A 5xx page is not a token response, but it is a transient failure.
            let text = String::from_utf8_lossy(&body);
            if text.trim_start().starts_with('<') || body.is_empty() {
                OAuthError::Transient(format!("unexpected answer ({e})"))
            } else {
                OAuthError::BadResponse(e.to_string())
            }
        }
        RequestTokenError::Other(s) => OAuthError::BadResponse(s),
    }
}

/// Error text without URLs (they could carry query strings).
trait WithoutUrl {
    fn without_url_chain(&self) -> String;
}

impl<E: std::error::Error + 'static> WithoutUrl for oauth2::HttpClientError<E> {
    fn without_url_chain(&self) -> String {
        let mut cur = std::error::Error::source(self);
        while let Some(e) = cur {
            let r = e
                .downcast_ref::<reqwest::Error>()
                .or_else(|| e.downcast_ref::<Box<reqwest::Error>>().map(|b| &**b));
            if let Some(r) = r {
                if r.is_timeout() {
                    return "timed out".into();
                }
                if r.is_connect() {
                    return "connection failed".into();
                }
                return r.without_url_string();
            }
            cur = e.source();
        }
        match std::error::Error::source(self) {
            Some(inner) => format!("{self}: {inner}"),
            None => self.to_string(),
        }
    }
}

trait WithoutUrlString {
    fn without_url_string(&self) -> String;
}

impl WithoutUrlString for reqwest::Error {
    /// The error text with its URL left out (it could carry a query string), causes included.
    fn without_url_string(&self) -> String {
        let mut out = String::new();
        let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(self);
        let head = if self.is_body() || self.is_decode() {
            "reading the answer failed"
        } else if self.is_request() {
            "sending the request failed"
        } else {
            "request failed"
        };
        out.push_str(head);
        while let Some(e) = cur {
            out.push_str(": ");
            out.push_str(&e.to_string());
            cur = e.source();
        }
        out
    }
}

/// A started authorization: the URL for the user, and what the exchange needs later.
pub struct Authorization {
    pub url: String,
    pub state: SecretString,
    pub verifier: SecretString,
}

/// Builds the authorization URL (PKCE S256, a fresh `state`, `resource` when given).
pub fn authorize_url(
    endpoints: &Endpoints,
    client_id: &str,
    redirect_uri: &str,
    scopes: &[String],
    resource: Option<&str>,
) -> Result<Authorization, OAuthError> {
    let c = client(endpoints, client_id, None, Some(redirect_uri))?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut req = c
        .authorize_url(CsrfToken::new_random)
        .map_err(|_| OAuthError::Config("the profile has no authorization endpoint".into()))?
        .set_pkce_challenge(challenge);
    if !scopes.is_empty() {
        req = req.add_extra_param("scope", scopes.join(" "));
    }
    if let Some(r) = resource {
        req = req.add_extra_param("resource", r.to_string());
    }
    let (url, state) = req.url();
    Ok(Authorization {
        url: url.to_string(),
        state: SecretString::from(state.secret().clone()),
        verifier: SecretString::from(verifier.secret().clone()),
    })
}

/// What a login or refresh needs to know to build a record.
pub struct Grant<'a> {
    pub endpoints: &'a Endpoints,
    pub client_id: &'a str,
    /// A confidential client's secret and how to send it.
    pub secret: Option<(&'a SecretString, AuthMethod)>,
    /// The secret came from dynamic registration: the record keeps it for refreshes.
    pub keep_secret: bool,
    pub resource: Option<&'a str>,
}

impl Grant<'_> {
    fn method(&self) -> AuthMethod {
        self.secret.map_or(AuthMethod::None, |(_, m)| m)
    }
}

fn record_from(
    resp: &TokenResp,
    grant: &Grant<'_>,
    old_refresh: Option<&SecretString>,
) -> Result<TokenRecord, OAuthError> {
    let now = crate::clock::now();
    let refresh = resp
        .refresh_token()
        .map(|r| SecretString::from(r.secret().clone()))
        .filter(|r| !r.expose_secret().is_empty())
        .or_else(|| old_refresh.cloned());
    if resp.access_token().secret().is_empty() {
        return Err(OAuthError::BadResponse("empty access_token".into()));
    }
    Ok(TokenRecord {
        access_token: SecretString::from(resp.access_token().secret().clone()),
        access_expires_at: resp.expires_in().map(|d| now + d.as_secs()),
        refresh_token: refresh,
        refresh_expires_at: resp.extra_fields().refresh_expires_in.map(|s| now + s),
        issuer: grant.endpoints.issuer.clone(),
        token_endpoint: Some(grant.endpoints.token.clone()),
        revocation_endpoint: grant.endpoints.revocation.clone(),
        client_id: grant.client_id.to_string(),
        // An assertion is for one request only: never kept.
        client_secret: grant
            .secret
            .filter(|(_, m)| grant.keep_secret && *m != AuthMethod::PrivateKeyJwt)
            .map(|(s, _)| s.clone()),
        auth_method: Some(grant.method().name().to_string()),
        scope: resp.scopes().map(|s| {
            s.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        }),
        resource: grant.resource.map(str::to_string),
        obtained_at: now,
    })
}

/// Exchanges an authorization code (with its PKCE verifier) for tokens.
pub async fn exchange_code(
    http: &reqwest::Client,
    grant: &Grant<'_>,
    redirect_uri: &str,
    code: &str,
    verifier: &SecretString,
) -> Result<TokenRecord, OAuthError> {
    let c = client(
        grant.endpoints,
        grant.client_id,
        grant.secret,
        Some(redirect_uri),
    )?;
    let mut req = c
        .exchange_code(AuthorizationCode::new(code.to_string()))
        .map_err(|_| OAuthError::Config("no token endpoint".into()))?
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.expose_secret().to_string()));
    for (k, v) in grant_params(grant) {
        req = req.add_extra_param(k, v);
    }
    let resp = req
        .request_async(&Http(http.clone()))
        .await
        .map_err(map_token_error)?;
    record_from(&resp, grant, None)
}

/// Refreshes; a response without a refresh token keeps the old one (never overwritten empty).
pub async fn refresh(
    http: &reqwest::Client,
    grant: &Grant<'_>,
    refresh_token: &SecretString,
) -> Result<TokenRecord, OAuthError> {
    let c = client(grant.endpoints, grant.client_id, grant.secret, None)?;
    let rt = RefreshToken::new(refresh_token.expose_secret().to_string());
    let mut req = c
        .exchange_refresh_token(&rt)
        .map_err(|_| OAuthError::Config("no token endpoint".into()))?;
    for (k, v) in grant_params(grant) {
        req = req.add_extra_param(k, v);
    }
    let resp = req
        .request_async(&Http(http.clone()))
        .await
        .map_err(map_token_error)?;
    record_from(&resp, grant, Some(refresh_token))
}

/// The client-credentials grant (OAuth 2.1 §4.2): a token for the client itself.
pub async fn client_credentials(
    http: &reqwest::Client,
    grant: &Grant<'_>,
    scopes: &[String],
) -> Result<TokenRecord, OAuthError> {
    let c = client(grant.endpoints, grant.client_id, grant.secret, None)?;
    let mut req = c
        .exchange_client_credentials()
        .map_err(|_| OAuthError::Config("no token endpoint".into()))?;
    if !scopes.is_empty() {
        req = req.add_extra_param("scope", scopes.join(" "));
    }
    for (k, v) in grant_params(grant) {
        req = req.add_extra_param(k, v);
    }
    let resp = req
        .request_async(&Http(http.clone()))
        .await
        .map_err(map_token_error)?;
    record_from(&resp, grant, None)
}

/// RFC 7009 revocation of one token, the client authenticating as at the token endpoint
/// (`secret`: a confidential client's; §2.1); `Ok(false)` when the server has no revocation
/// endpoint.
pub async fn revoke(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    client_id: &str,
    secret: Option<(&SecretString, AuthMethod)>,
    token: &SecretString,
    is_refresh: bool,
) -> Result<bool, OAuthError> {
    let c = client(endpoints, client_id, secret, None)?;
    let revocable = if is_refresh {
        StandardRevocableToken::RefreshToken(RefreshToken::new(token.expose_secret().to_string()))
    } else {
        StandardRevocableToken::AccessToken(oauth2::AccessToken::new(
            token.expose_secret().to_string(),
        ))
    };
    let Ok(mut req) = c.revoke_token(revocable) else {
        return Ok(false);
    };
    for (k, v) in assertion_params(secret) {
        req = req.add_extra_param(k, v);
    }
    req.request_async(&Http(http.clone()))
        .await
        .map_err(|e| match e {
            RequestTokenError::ServerResponse(r) => OAuthError::Rejected {
                code: r.error().to_string(),
                description: r.error_description().cloned(),
            },
            RequestTokenError::Request(e) => OAuthError::Transient(e.without_url_chain()),
            RequestTokenError::Parse(e, _) => OAuthError::BadResponse(e.to_string()),
            RequestTokenError::Other(s) => OAuthError::BadResponse(s),
        })?;
    Ok(true)
}

#[cfg(test)]
#[path = "method_tests.rs"]
mod method_tests;
