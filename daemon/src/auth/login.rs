//! Logins: the daemon starts an authorization-code flow for a profile (PKCE, `state`),
//! answers the redirect at its own `/callback` (or takes the code or redirect URL the user
//! pastes), exchanges the code, and hands the tokens to the token manager.

use std::collections::HashMap;
use std::sync::Mutex;

use mcpproxyd_api::{LoginPhase, LoginStarted, LoginStatus};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;

pub use crate::auth::errors::LoginError;
pub use crate::auth::login_plan::Clients;
use crate::auth::login_plan::{self as plan, Plan};
use crate::auth::oauth::{self, AuthMethod, Endpoints, Grant};
use crate::auth::tokens::Tokens;
use crate::clock::now;
use crate::config::{AuthProfile, Config};

/// A login waiting for its code.
struct Pending {
    profile: String,
    state: SecretString,
    verifier: SecretString,
    redirect_uri: String,
    endpoints: Endpoints,
    client_id: String,
    secret: Option<(SecretString, AuthMethod)>,
    secret_registered: bool,
    resource: Option<String>,
    expires_at: u64,
    outcome: watch::Sender<LoginStatus>,
}

/// All pending logins.
#[derive(Default)]
pub struct Logins {
    pending: Mutex<HashMap<String, Pending>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn random_id() -> String {
    let mut bytes = [0u8; 16];
    use ring::rand::SecureRandom;
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The profile a login is for: the one named, else the only one that can log in.
pub fn pick_profile(config: &Config, named: Option<&str>) -> Result<String, LoginError> {
    let candidates: Vec<&String> = config
        .auth
        .iter()
        .filter(|(_, p)| !matches!(p, AuthProfile::Static(_)))
        .map(|(n, _)| n)
        .collect();
    match named {
        Some(n) => match config.auth.get(n) {
            Some(AuthProfile::Static(_)) => Err(LoginError::Profile(format!(
                "profile `{n}` uses a static token; there is nothing to log in to"
            ))),
            Some(_) => Ok(n.to_string()),
            None => Err(LoginError::Profile(format!("no auth profile `{n}`"))),
        },
        None if candidates.len() == 1 => Ok(candidates[0].clone()),
        None if candidates.is_empty() => Err(LoginError::Profile(
            "no profile needs a login (all use static tokens)".into(),
        )),
        None => Err(LoginError::Profile(format!(
            "several profiles can log in ({}); choose one with --profile",
            candidates
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

impl Logins {
    /// Starts a login; returns where to send the user. `step_up`: scopes an upstream asked
    /// for beyond the last login, asked for on top of the plan's.
    pub async fn start(
        &self,
        config: &Config,
        clients: &Clients<'_>,
        profile: &str,
        default_redirect: &str,
        step_up: &[String],
    ) -> Result<LoginStarted, LoginError> {
        self.expire_old();
        let mut plan = match plan::loginable(config, profile)? {
            AuthProfile::OAuth(o) => {
                plan::oauth(config, profile, o, clients, default_redirect).await?
            }
            AuthProfile::Alibaba(a) => {
                plan::alibaba(profile, a, clients.auth, default_redirect).await?
            }
            AuthProfile::Static(_) => {
                return Err(LoginError::Profile(format!(
                    "profile `{profile}` uses a static token"
                )))
            }
        };
        plan.ask_also(step_up);
        self.begin(profile, plan, config.limits.login_timeout)
    }

    /// Records a pending login for `plan` (PKCE verifier, `state`, deadline) and returns where
    /// to send the user.
    fn begin(
        &self,
        profile: &str,
        plan: Plan,
        timeout: std::time::Duration,
    ) -> Result<LoginStarted, LoginError> {
        let Plan {
            endpoints,
            client_id,
            secret,
            secret_registered,
            scopes,
            resource,
            redirect_uri,
        } = plan;
        let auth = oauth::authorize_url(
            &endpoints,
            &client_id,
            &redirect_uri,
            &scopes,
            resource.as_deref(),
        )?;
        let id = random_id();
        let expires_at = now() + timeout.as_secs();
        let status = LoginStatus {
            id: id.clone(),
            profile: profile.to_string(),
            status: LoginPhase::Pending,
            message: None,
            valid_until: None,
            expires_at,
        };
        let (tx, _) = watch::channel(status);
        lock(&self.pending).insert(
            id.clone(),
            Pending {
                profile: profile.to_string(),
                state: auth.state,
                verifier: auth.verifier,
                redirect_uri: redirect_uri.clone(),
                endpoints,
                client_id,
                secret,
                secret_registered,
                resource,
                expires_at,
                outcome: tx,
            },
        );
        tracing::info!(profile, login = %id, "login started");
        Ok(LoginStarted {
            id,
            profile: profile.to_string(),
            url: auth.url,
            redirect_uri,
            expires_at,
            device: None,
        })
    }

    /// Marks logins past their deadline as expired and forgets them.
    fn expire_old(&self) {
        let now = now();
        lock(&self.pending).retain(|id, p| {
            if p.expires_at > now {
                return true;
            }
            tracing::warn!(profile = %p.profile, login = %id, "login expired");
            p.outcome.send_modify(|s| {
                s.status = LoginPhase::Expired;
                s.message = Some("the login was not completed in time; start it again".into());
            });
            false
        });
    }

    /// The status of a login, waiting up to `wait` for it to change from pending.
    pub async fn status(
        &self,
        id: &str,
        wait: std::time::Duration,
    ) -> Result<LoginStatus, LoginError> {
        self.expire_old();
        let mut rx = {
            let pending = lock(&self.pending);
            match pending.get(id) {
                Some(p) => p.outcome.subscribe(),
                None => return Err(LoginError::Unknown(id.to_string())),
            }
        };
        let deadline = tokio::time::sleep(wait);
        tokio::pin!(deadline);
        loop {
            if rx.borrow().status != LoginPhase::Pending {
                break;
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { break },
                _ = &mut deadline => {
                    self.expire_old();
                    break;
                }
            }
        }
        let status = rx.borrow().clone();
        Ok(status)
    }

    /// The redirect arrived at `/callback`: its query, unparsed.
    pub async fn callback(&self, tokens: &Tokens, query: &str) -> Result<LoginStatus, LoginError> {
        let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let Some(state) = params.get("state") else {
            return Err(LoginError::BadCode("the redirect carries no state".into()));
        };
        let id = self.find_by_state(state).ok_or_else(|| {
            LoginError::BadCode("the redirect's state matches no pending login".into())
        })?;
        self.finish(tokens, &id, &params).await
    }

    /// The user pasted the code or the whole redirect URL.
    pub async fn paste(
        &self,
        tokens: &Tokens,
        id: &str,
        code: Option<&str>,
        url: Option<&str>,
    ) -> Result<LoginStatus, LoginError> {
        let params: HashMap<String, String> = match (code, url) {
            (Some(c), None) if !c.trim().is_empty() => {
                // A pasted URL in the code field is taken as a URL.
                let c = c.trim();
                if c.contains("code=") || c.contains("error=") {
                    parse_pasted_url(c)?
                } else {
                    HashMap::from([("code".to_string(), c.to_string())])
                }
            }
            (None, Some(u)) => parse_pasted_url(u.trim())?,
            _ => {
                return Err(LoginError::BadCode(
                    "send either the code or the redirect URL".into(),
                ))
            }
        };
        if let Some(state) = params.get("state") {
            let matches = lock(&self.pending)
                .get(id)
                .is_some_and(|p| p.state.expose_secret() == state);
            if !matches {
                return Err(LoginError::BadCode(
                    "the pasted URL belongs to another login (its state does not match)".into(),
                ));
            }
        }
        self.finish(tokens, id, &params).await
    }

    fn find_by_state(&self, state: &str) -> Option<String> {
        lock(&self.pending)
            .iter()
            .find(|(_, p)| p.state.expose_secret() == state)
            .map(|(id, _)| id.clone())
    }

    async fn finish(
        &self,
        tokens: &Tokens,
        id: &str,
        params: &HashMap<String, String>,
    ) -> Result<LoginStatus, LoginError> {
        let Some(p) = lock(&self.pending).remove(id) else {
            return Err(LoginError::Unknown(id.to_string()));
        };
        let outcome = if let Some(error) = params.get("error") {
            let desc = params
                .get("error_description")
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            Err(format!(
                "the authorization server refused the login: {error}{desc}"
            ))
        } else if let Err(m) = check_iss(&p.endpoints, params) {
            Err(m)
        } else if let Some(code) = params.get("code") {
            let assertion =
                tokens.login_assertion(&p.profile, &p.client_id, &p.endpoints, &p.secret);
            let grant = Grant {
                endpoints: &p.endpoints,
                client_id: &p.client_id,
                secret: oauth::credential(&p.secret, assertion.as_ref()),
                keep_secret: p.secret_registered,
                resource: p.resource.as_deref(),
            };
            let http = tokens.http_for(&p.profile);
            match oauth::exchange_code(&http, &grant, &p.redirect_uri, code, &p.verifier).await {
                Ok(record) => {
                    let valid_until = record.access_expires_at;
                    tokens
                        .logged_in(&p.profile, record)
                        .await
                        .map(|()| valid_until)
                        .map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            }
        } else {
            Err("the redirect carries neither code nor error".into())
        };
        p.outcome.send_modify(|s| match &outcome {
            Ok(valid_until) => {
                s.status = LoginPhase::Succeeded;
                s.message = Some("OAuth login successful!".into());
                s.valid_until = *valid_until;
            }
            Err(m) => {
                s.status = LoginPhase::Failed;
                s.message = Some(m.clone());
            }
        });
        match &outcome {
            Ok(_) => tracing::info!(profile = %p.profile, login = %id, "login succeeded"),
            Err(m) => tracing::warn!(profile = %p.profile, login = %id, error = %m, "login failed"),
        }
        let status = p.outcome.borrow().clone();
        // Keep the finished login visible to a waiting ctl for a while.
        lock(&self.pending).insert(
            id.to_string(),
            Pending {
                expires_at: now() + 60,
                ..p
            },
        );
        Ok(status)
    }
}

/// RFC 9207: where the server says it sends `iss`, a redirect must carry its issuer (a mix-up
/// attack sends another server's code). A bare pasted code has no redirect to check.
fn check_iss(endpoints: &Endpoints, params: &HashMap<String, String>) -> Result<(), String> {
    let from_redirect = params.contains_key("state");
    if !endpoints.iss_in_response || !from_redirect {
        return Ok(());
    }
    match (params.get("iss"), &endpoints.issuer) {
        (Some(iss), Some(issuer)) if iss == issuer => Ok(()),
        (Some(iss), _) => Err(format!(
            "the redirect came from issuer `{iss}`, not from this profile's authorization server; \
             refused (RFC 9207)"
        )),
        (None, _) => Err(
            "the redirect carries no `iss` although the authorization server promises one; \
             refused (RFC 9207)"
                .into(),
        ),
    }
}

fn parse_pasted_url(text: &str) -> Result<HashMap<String, String>, LoginError> {
    let url = url::Url::parse(text)
        .map_err(|_| LoginError::BadCode("that is neither a code nor a URL".into()))?;
    let params: HashMap<String, String> = url.query_pairs().into_owned().collect();
    if !params.contains_key("code") && !params.contains_key("error") {
        return Err(LoginError::BadCode("the URL has no code parameter".into()));
    }
    Ok(params)
}

/// The page the browser shows after the redirect. It never shows the code.
pub fn callback_page(result: &Result<LoginStatus, LoginError>) -> (u16, String) {
    let (status, title, body) = match result {
        Ok(s) if s.status == LoginPhase::Succeeded => (
            200,
            "Login successful",
            "mcpproxyd is logged in. You can close this window.".to_string(),
        ),
        Ok(s) => (400, "Login failed", s.message.clone().unwrap_or_default()),
        Err(e) => (400, "Login failed", e.to_string()),
    };
    let esc = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    (
        status,
        format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
             <body><h1>{t}</h1><p>{b}</p></body></html>\n",
            t = esc(title),
            b = esc(&body)
        ),
    )
}
