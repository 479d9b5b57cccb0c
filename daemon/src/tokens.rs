//! The current access token of each auth profile, as the proxy asks for it on every request.
//!
//! Static profiles hold a bearer token read from a file or a systemd credential (re-read at
//! reload). OAuth and Alibaba profiles need `mcpproxyctl login`, which a later part of the daemon
//! provides; until a token exists, their requests get 401 with that advice.

use std::collections::BTreeMap;

use secrecy::SecretString;

use crate::config::{AuthProfile, Config};

/// What the proxy can send for a profile right now.
#[derive(Debug, Clone)]
pub enum TokenState {
    /// A token to send as `Authorization: Bearer`.
    Token(SecretString),
    /// No token: the message says what the user should do.
    NeedsLogin(String),
}

/// The tokens of one configuration generation.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    profiles: BTreeMap<String, TokenState>,
}

impl Tokens {
    pub fn from_config(config: &Config) -> Tokens {
        let profiles = config
            .auth
            .iter()
            .map(|(name, p)| {
                let state = match p {
                    AuthProfile::Static(s) => TokenState::Token(s.token.clone()),
                    AuthProfile::OAuth(_) | AuthProfile::Alibaba(_) => TokenState::NeedsLogin(
                        format!(
                            "auth profile `{name}` is not logged in; run `mcpproxyctl login --profile {name}`"
                        ),
                    ),
                };
                (name.clone(), state)
            })
            .collect();
        Tokens { profiles }
    }

    /// The state of `profile`; an unknown profile cannot happen after validation, but is
    /// treated as not logged in.
    pub fn get(&self, profile: &str) -> TokenState {
        self.profiles.get(profile).cloned().unwrap_or_else(|| {
            TokenState::NeedsLogin(format!("auth profile `{profile}` is not configured"))
        })
    }

    /// A word for the state of each profile, for the banner and status.
    pub fn describe(&self, profile: &str) -> &'static str {
        match self.profiles.get(profile) {
            Some(TokenState::Token(_)) => "token loaded",
            _ => "not logged in",
        }
    }
}
