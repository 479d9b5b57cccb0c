//! The authorization server's memory and rules: clients, codes, token families; no I/O.
//!
//! Every grant belongs to a *family*: the tokens that descend from one authorization
//! code. Reusing a spent code or a rotated refresh token revokes the whole family
//! (RFC 9700 §4.14, OAuth 2.1 §4.3.1), and revoking a refresh token does too.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{pkce, AuthorizationRequest, ClientSpec, OAuthOptions};

/// An OAuth error code and its description, as RFC 6749 §4.1.2.1 and §5.2 send them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {description}")]
pub(crate) struct OAuthError {
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            error,
            description: description.into(),
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new("invalid_request", description)
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new("invalid_grant", description)
    }
}

/// A successful token response (RFC 6749 §5.1, plus Alibaba's `refresh_expires_in`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_expires_in: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// The form fields of an `authorization_code` grant.
pub(crate) struct CodeExchange<'a> {
    pub code: &'a str,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub code_verifier: &'a str,
    pub resource: Option<&'a str>,
}

/// The form fields of a `refresh_token` grant.
pub(crate) struct RefreshGrant<'a> {
    pub refresh_token: &'a str,
    pub client_id: &'a str,
    pub scope: Option<&'a str>,
    pub resource: Option<&'a str>,
}

struct Code {
    request: AuthorizationRequest,
    expires_at: Instant,
    used: bool,
    /// The family its exchange started, revoked if the code comes back.
    family: Option<usize>,
}

struct Family {
    client_id: String,
    scope: Option<String>,
}

struct Access {
    family: usize,
    expires_at: Instant,
    revoked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefreshStatus {
    Current,
    Rotated,
    Revoked,
}

struct Refresh {
    family: usize,
    expires_at: Option<Instant>,
    status: RefreshStatus,
}

/// Everything the server knows; one mutex around it, never held across an await.
pub(crate) struct AuthState {
    pub opts: OAuthOptions,
    /// Configured clients first, then registered ones, in order.
    clients: Vec<ClientSpec>,
    codes: HashMap<String, Code>,
    families: Vec<Family>,
    access: HashMap<String, Access>,
    refresh: HashMap<String, Refresh>,
    pub pending: VecDeque<AuthorizationRequest>,
    pub issued: Vec<String>,
    pub revoked: Vec<String>,
    /// Device authorizations (RFC 8628).
    pub device: super::device::DeviceState,
    /// `jti`s of the client assertions accepted so far (each is good once).
    pub jtis: std::collections::HashSet<String>,
}

// === impl AuthState ===

impl AuthState {
    pub fn new(opts: OAuthOptions) -> Self {
        Self {
            clients: opts.clients.clone(),
            opts,
            codes: HashMap::new(),
            families: Vec::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            pending: VecDeque::new(),
            issued: Vec::new(),
            revoked: Vec::new(),
            device: Default::default(),
            jtis: std::collections::HashSet::new(),
        }
    }

    pub fn client(&self, client_id: &str) -> Option<&ClientSpec> {
        self.clients.iter().find(|c| c.client_id == client_id)
    }

    pub fn clients(&self) -> &[ClientSpec] {
        &self.clients
    }

    pub fn add_client(&mut self, client: ClientSpec) {
        self.clients.push(client);
    }

    /// Issues a single-use code for an approved request.
    pub fn issue_code(&mut self, request: AuthorizationRequest) -> String {
        let code = new_secret("ac_");
        self.issued.push(code.clone());
        self.codes.insert(
            code.clone(),
            Code {
                request,
                expires_at: Instant::now() + self.opts.code_lifetime,
                used: false,
                family: None,
            },
        );
        code
    }

    /// The `authorization_code` grant.
    pub fn exchange_code(&mut self, grant: CodeExchange<'_>) -> Result<TokenResponse, OAuthError> {
        if !pkce::is_valid_verifier(grant.code_verifier) {
            return Err(OAuthError::invalid_request(
                "code_verifier must be 43 to 128 unreserved characters",
            ));
        }
        let Some(code) = self.codes.get_mut(grant.code) else {
            return Err(OAuthError::invalid_grant("unknown authorization code"));
        };
        if code.used {
            if let Some(family) = code.family {
                self.revoke_family(family);
            }
            return Err(OAuthError::invalid_grant(
                "authorization code already used; its tokens are revoked",
            ));
        }
        // Spent by any attempt, failed or not: a code is never tried twice.
        code.used = true;
        if Instant::now() >= code.expires_at {
            return Err(OAuthError::invalid_grant("authorization code expired"));
        }
        let request = code.request.clone();
        if request.client_id != grant.client_id {
            return Err(OAuthError::invalid_grant(
                "code was issued to another client",
            ));
        }
        if request.redirect_uri != grant.redirect_uri {
            return Err(OAuthError::invalid_grant(
                "redirect_uri differs from the authorization request",
            ));
        }
        if !pkce::verify_s256(grant.code_verifier, &request.code_challenge) {
            return Err(OAuthError::invalid_grant("PKCE verification failed"));
        }
        self.check_resource(grant.resource)?;
        let family = self.families.len();
        self.families.push(Family {
            client_id: request.client_id,
            scope: request.scope.clone(),
        });
        if let Some(code) = self.codes.get_mut(grant.code) {
            code.family = Some(family);
        }
        let offline = request
            .scope
            .as_deref()
            .is_some_and(|s| s.split(' ').any(|x| x == "offline_access"));
        let refresh = (self.opts.issue_refresh_token
            && (offline || !self.opts.refresh_needs_offline_access))
            .then(|| self.new_refresh(family));
        Ok(self.respond(family, request.scope, refresh))
    }

    /// The `client_credentials` grant (OAuth 2.1 §4.2): an access token, no refresh token.
    pub fn client_credentials(&mut self, client_id: &str, scope: Option<&str>) -> TokenResponse {
        let family = self.families.len();
        self.families.push(Family {
            client_id: client_id.to_owned(),
            scope: scope.map(str::to_owned),
        });
        self.respond(family, scope.map(str::to_owned), None)
    }

    /// Tokens for an approved device authorization (RFC 8628): a new family, with a refresh
    /// token as for an authorization code.
    pub fn device_tokens(&mut self, client_id: &str, scope: Option<String>) -> TokenResponse {
        let family = self.families.len();
        self.families.push(Family {
            client_id: client_id.to_owned(),
            scope: scope.clone(),
        });
        let offline = scope
            .as_deref()
            .is_some_and(|s| s.split(' ').any(|x| x == "offline_access"));
        let refresh = (self.opts.issue_refresh_token
            && (offline || !self.opts.refresh_needs_offline_access))
            .then(|| self.new_refresh(family));
        self.respond(family, scope, refresh)
    }

    /// The `refresh_token` grant, with rotation and reuse detection.
    pub fn refresh(&mut self, grant: RefreshGrant<'_>) -> Result<TokenResponse, OAuthError> {
        let Some(old) = self.refresh.get(grant.refresh_token) else {
            return Err(OAuthError::invalid_grant("unknown refresh token"));
        };
        let family = old.family;
        match old.status {
            RefreshStatus::Current => {}
            RefreshStatus::Revoked => {
                return Err(OAuthError::invalid_grant("refresh token revoked"));
            }
            RefreshStatus::Rotated => {
                self.revoke_family(family);
                return Err(OAuthError::invalid_grant(
                    "refresh token reused after rotation; its family is revoked",
                ));
            }
        }
        if old.expires_at.is_some_and(|at| Instant::now() >= at) {
            return Err(OAuthError::invalid_grant("refresh token expired"));
        }
        if self.families[family].client_id != grant.client_id {
            return Err(OAuthError::invalid_grant(
                "refresh token was issued to another client",
            ));
        }
        self.check_resource(grant.resource)?;
        let scope = match grant.scope {
            None => self.families[family].scope.clone(),
            Some(asked) => {
                let granted = self.families[family].scope.as_deref().unwrap_or("");
                if !asked.split(' ').all(|s| granted.split(' ').any(|g| g == s)) {
                    return Err(OAuthError::new(
                        "invalid_scope",
                        "scope exceeds the original grant",
                    ));
                }
                Some(asked.to_owned())
            }
        };
        let refresh = if self.opts.rotate_refresh {
            if let Some(old) = self.refresh.get_mut(grant.refresh_token) {
                old.status = RefreshStatus::Rotated;
            }
            Some(self.new_refresh(family))
        } else {
            None
        };
        Ok(self.respond(family, scope, refresh))
    }

    /// RFC 7009: an access token alone, or a refresh token with its whole family.
    /// Unknown tokens are not an error.
    pub fn revoke(&mut self, token: &str, client_id: Option<&str>) -> Result<(), OAuthError> {
        let family = match (self.access.get(token), self.refresh.get(token)) {
            (Some(access), _) => access.family,
            (None, Some(refresh)) => refresh.family,
            (None, None) => return Ok(()),
        };
        if client_id.is_some_and(|id| id != self.families[family].client_id) {
            return Err(OAuthError::new(
                "unauthorized_client",
                "token was issued to another client",
            ));
        }
        match self.access.get_mut(token) {
            Some(access) if !access.revoked => {
                access.revoked = true;
                self.revoked.push(token.to_owned());
            }
            Some(_) => {}
            None => self.revoke_family(family),
        }
        Ok(())
    }

    /// Whether `token` is an access token that is neither expired nor revoked, or a
    /// refresh token that can still be used.
    pub fn is_active(&self, token: &str) -> bool {
        let now = Instant::now();
        if let Some(access) = self.access.get(token) {
            return !access.revoked && now < access.expires_at;
        }
        self.refresh.get(token).is_some_and(|r| {
            r.status == RefreshStatus::Current && r.expires_at.is_none_or(|at| now < at)
        })
    }

    /// The client and scope behind an active token, for introspection.
    pub fn token_owner(&self, token: &str) -> Option<(&str, Option<&str>)> {
        let family = match (self.access.get(token), self.refresh.get(token)) {
            (Some(a), _) => a.family,
            (None, Some(r)) => r.family,
            (None, None) => return None,
        };
        let family = &self.families[family];
        Some((&family.client_id, family.scope.as_deref()))
    }

    pub fn check_resource(&self, resource: Option<&str>) -> Result<(), OAuthError> {
        match &self.opts.resource {
            Some(expected) if resource != Some(expected.as_str()) => Err(OAuthError::new(
                "invalid_target",
                format!("resource must be {expected}"),
            )),
            _ => Ok(()),
        }
    }

    fn new_refresh(&mut self, family: usize) -> String {
        let token = new_secret("rt_");
        self.issued.push(token.clone());
        let expires_at = self.opts.refresh_lifetime.map(|l| Instant::now() + l);
        self.refresh.insert(
            token.clone(),
            Refresh {
                family,
                expires_at,
                status: RefreshStatus::Current,
            },
        );
        token
    }

    /// Issues an access token of `family` and builds the response around it.
    fn respond(
        &mut self,
        family: usize,
        scope: Option<String>,
        refresh: Option<String>,
    ) -> TokenResponse {
        let access_token = new_secret("at_");
        self.issued.push(access_token.clone());
        let lifetime = self.opts.access_lifetime;
        self.access.insert(
            access_token.clone(),
            Access {
                family,
                expires_at: Instant::now() + lifetime,
                revoked: false,
            },
        );
        let refresh_expires_in = match (&refresh, self.opts.refresh_lifetime) {
            (Some(_), Some(lifetime)) => Some(whole_seconds(lifetime)),
            _ => None,
        };
        TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: whole_seconds(lifetime),
            refresh_token: refresh,
            refresh_expires_in,
            scope,
        }
    }

    fn revoke_family(&mut self, family: usize) {
        for (token, access) in &mut self.access {
            if access.family == family && !access.revoked {
                access.revoked = true;
                self.revoked.push(token.clone());
            }
        }
        for (token, refresh) in &mut self.refresh {
            if refresh.family == family && refresh.status == RefreshStatus::Current {
                refresh.status = RefreshStatus::Revoked;
                self.revoked.push(token.clone());
            }
        }
    }
}

/// A random opaque secret; the prefix tells codes and token kinds apart in logs.
pub(crate) fn new_secret(prefix: &str) -> String {
    format!("{prefix}{}", crate::upstream::random_hex())
}

/// Seconds, rounded up: a lifetime of 1.5 s is announced as 2, never as 1 or 0.
pub(crate) fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}
