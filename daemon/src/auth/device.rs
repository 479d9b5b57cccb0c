//! Device logins (RFC 8628, `mcpproxyctl login --device`): the daemon asks the profile's
//! authorization server for a device code and a user code, hands the user code and the
//! verification page to ctl, and polls the token endpoint itself (on
//! [`device_poll`](crate::auth::device_poll)'s schedule) until the user approves on any
//! device with a browser, refuses, the code expires, or ctl cancels. The tokens are stored as
//! a code-flow login stores them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::SecretString;

use mcpproxyd_api::{DeviceLogin, LoginPhase, LoginStarted, LoginStatus};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::auth::device_poll::{self, Ended, Schedule};
use crate::auth::errors::LoginError;
use crate::auth::login_plan::{self as plan, Clients, Plan};
use crate::auth::oauth::{self, Grant};
use crate::auth::tokens::Tokens;
use crate::clock::now;
use crate::config::{AuthProfile, Config};

/// How long a finished device login stays visible to a ctl that asks late.
const KEEP_FINISHED: u64 = 60;

/// What a profile whose server offers no device flow is told.
fn no_device_flow(profile: &str) -> LoginError {
    LoginError::Profile(format!(
        "the authorization server of profile `{profile}` offers no device login (its metadata \
         has no device_authorization_endpoint, RFC 8628); log in with `mcpproxyctl login \
         --no-browser` instead: open the URL on any machine with a browser and paste the code"
    ))
}

/// One device login: its status, and how to stop its polling.
struct Entry {
    outcome: watch::Sender<LoginStatus>,
    cancel: CancellationToken,
    /// Unix seconds after which the entry is forgotten.
    forget_at: u64,
}

/// Every device login started and not yet forgotten.
#[derive(Default)]
pub struct DeviceLogins {
    entries: Mutex<HashMap<String, Entry>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl DeviceLogins {
    /// Starts a device login for `profile`: the device authorization request now, the polling
    /// in a task of its own. `step_up`: scopes an upstream asked for beyond the last login.
    pub async fn start(
        &self,
        tokens: Arc<Tokens>,
        config: &Config,
        clients: &Clients<'_>,
        profile: &str,
        default_redirect: &str,
        step_up: &[String],
    ) -> Result<LoginStarted, LoginError> {
        self.forget_old();
        let o = match plan::loginable(config, profile)? {
            AuthProfile::OAuth(o) => o,
            AuthProfile::Alibaba(_) => return Err(no_device_flow(profile)),
            AuthProfile::Static(_) => {
                return Err(LoginError::Profile(format!(
                    "profile `{profile}` uses a static token; there is nothing to log in to"
                )))
            }
        };
        let mut plan = plan::oauth(config, profile, o, clients, default_redirect).await?;
        plan.ask_also(step_up);
        let endpoint = plan
            .endpoints
            .device_authorization
            .clone()
            .ok_or_else(|| no_device_flow(profile))?;
        let assertion = fresh_assertion(&tokens, profile, &plan);
        let authorization = oauth::device::authorize(
            clients.auth,
            &grant_of(&plan, assertion.as_ref()),
            &endpoint,
            &plan.scopes,
        )
        .await?;
        let id = crate::auth::login::random_id();
        let expires_at = now() + authorization.expires_in.as_secs();
        let (tx, _) = watch::channel(LoginStatus {
            id: id.clone(),
            profile: profile.to_string(),
            status: LoginPhase::Pending,
            message: None,
            valid_until: None,
            expires_at,
        });
        let cancel = CancellationToken::new();
        let started = LoginStarted {
            id: id.clone(),
            profile: profile.to_string(),
            url: authorization
                .verification_uri_complete
                .clone()
                .unwrap_or_else(|| authorization.verification_uri.clone()),
            redirect_uri: String::new(),
            expires_at,
            device: Some(DeviceLogin {
                user_code: authorization.user_code.clone(),
                verification_uri: authorization.verification_uri.clone(),
                verification_uri_complete: authorization.verification_uri_complete.clone(),
                expires_in: authorization.expires_in.as_secs(),
                interval: authorization.interval.as_secs(),
            }),
        };
        tracing::info!(
            profile,
            login = %id,
            interval_s = authorization.interval.as_secs(),
            expires_in_s = authorization.expires_in.as_secs(),
            "device login started"
        );
        let task = Polling {
            tokens,
            http: clients.auth.clone(),
            profile: profile.to_string(),
            id: id.clone(),
            plan,
            authorization,
            outcome: tx.clone(),
            cancel: cancel.clone(),
        };
        lock(&self.entries).insert(
            id,
            Entry {
                outcome: tx,
                cancel,
                forget_at: expires_at + KEEP_FINISHED,
            },
        );
        tokio::spawn(task.run());
        Ok(started)
    }

    /// The status of device login `id`, waiting up to `wait` for it to leave pending; `None`
    /// when `id` is no device login.
    pub async fn status(&self, id: &str, wait: Duration) -> Option<LoginStatus> {
        self.forget_old();
        let mut rx = lock(&self.entries).get(id)?.outcome.subscribe();
        let _ = tokio::time::timeout(wait, rx.wait_for(|s| s.status != LoginPhase::Pending)).await;
        let status = rx.borrow().clone();
        Some(status)
    }

    /// Stops a pending device login's polling (ctl's Ctrl-C); a finished one is left as it is.
    /// Returns its status after.
    pub async fn cancel(&self, id: &str) -> Result<LoginStatus, LoginError> {
        let (cancel, mut rx) = {
            let entries = lock(&self.entries);
            let entry = entries
                .get(id)
                .ok_or_else(|| LoginError::Unknown(id.to_string()))?;
            (entry.cancel.clone(), entry.outcome.subscribe())
        };
        cancel.cancel();
        // The polling task writes the outcome as it stops (a poll under way is dropped).
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            rx.wait_for(|s| s.status != LoginPhase::Pending),
        )
        .await;
        let status = rx.borrow().clone();
        Ok(status)
    }

    fn forget_old(&self) {
        let now = now();
        lock(&self.entries).retain(|_, e| e.forget_at > now);
    }
}

/// A fresh client assertion for one request of the plan's client, if it signs them: every
/// device request and every poll signs its own.
fn fresh_assertion(tokens: &Tokens, profile: &str, plan: &Plan) -> Option<SecretString> {
    tokens.login_assertion(profile, &plan.client_id, &plan.endpoints, &plan.secret)
}

/// The grant a plan authenticates with: its secret, or `assertion` when it signs one.
fn grant_of<'a>(plan: &'a Plan, assertion: Option<&'a SecretString>) -> Grant<'a> {
    Grant {
        endpoints: &plan.endpoints,
        client_id: &plan.client_id,
        secret: oauth::credential(&plan.secret, assertion),
        keep_secret: plan.secret_registered,
        resource: plan.resource.as_deref(),
    }
}

/// The polling task of one device login.
struct Polling {
    tokens: Arc<Tokens>,
    http: reqwest::Client,
    profile: String,
    id: String,
    plan: Plan,
    authorization: oauth::device::DeviceAuthorization,
    outcome: watch::Sender<LoginStatus>,
    cancel: CancellationToken,
}

impl Polling {
    async fn run(self) {
        let deadline = tokio::time::Instant::now() + self.authorization.expires_in;
        let (profile, id) = (&self.profile, &self.id);
        let ended = device_poll::run(
            Schedule::new(self.authorization.interval),
            deadline,
            &self.cancel,
            || async {
                let assertion = fresh_assertion(&self.tokens, profile, &self.plan);
                let grant = grant_of(&self.plan, assertion.as_ref());
                oauth::device::poll(&self.http, &grant, &self.authorization.device_code).await
            },
            |why| tracing::warn!(profile, login = %id, error = %why, "device login: the token endpoint failed; polling on, more slowly"),
        )
        .await;
        let (phase, message, valid_until) = match ended {
            Ended::Tokens(record) => {
                let valid_until = record.access_expires_at;
                match self.tokens.logged_in(profile, record).await {
                    Ok(()) => (
                        LoginPhase::Succeeded,
                        "OAuth login successful!".to_string(),
                        valid_until,
                    ),
                    Err(e) => (LoginPhase::Failed, e.to_string(), None),
                }
            }
            Ended::Denied(why) => (
                LoginPhase::Failed,
                format!(
                    "the login was denied at the authorization server{}",
                    why.map(|d| format!(": {d}")).unwrap_or_default()
                ),
                None,
            ),
            Ended::Expired => (
                LoginPhase::Expired,
                "the device code expired before the login was approved; start it again".into(),
                None,
            ),
            Ended::Failed(why) => (LoginPhase::Failed, why, None),
            Ended::Cancelled => (
                LoginPhase::Failed,
                "the login was cancelled".to_string(),
                None,
            ),
        };
        match phase {
            LoginPhase::Succeeded => tracing::info!(profile, login = %id, "device login succeeded"),
            _ if self.cancel.is_cancelled() => {
                tracing::info!(profile, login = %id, "device login cancelled")
            }
            _ => tracing::warn!(profile, login = %id, error = %message, "device login failed"),
        }
        self.outcome.send_modify(|s| {
            s.status = phase;
            s.message = Some(message);
            s.valid_until = valid_until;
        });
    }
}
