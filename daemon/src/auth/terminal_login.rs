//! Seed parity: `mcpproxyd --no-browser` started by hand on a terminal, with a profile that has
//! no token, runs the login right there (URL printed, code or redirect URL pasted) while it
//! serves. Under systemd, or without a terminal, it never prompts: `mcpproxyctl login` does it.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use mcpproxyd_api::LoginPhase;

use crate::auth::login::Clients;
use crate::auth::tokens::Phase;
use crate::config::AuthProfile;
use crate::state::Shared;

/// Whether this process may ask on its terminal.
pub fn may_prompt() -> bool {
    let under_systemd = ["NOTIFY_SOCKET", "INVOCATION_ID", "JOURNAL_STREAM"]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
    !under_systemd && std::io::stdin().is_terminal()
}

/// Logs in, on the terminal, every profile that needs it (one after the other).
pub async fn run(shared: Arc<Shared>) {
    let generation = shared.current();
    let needing: Vec<String> = shared
        .tokens
        .views()
        .into_iter()
        .filter(|v| matches!(v.phase, Phase::LoggedOut | Phase::NeedsLogin))
        .filter(|v| {
            !matches!(
                generation.config.auth.get(&v.name),
                Some(AuthProfile::Static(_)) | None
            )
        })
        .map(|v| v.name)
        .collect();
    for profile in needing {
        login(&shared, &profile).await;
    }
}

async fn login(shared: &Arc<Shared>, profile: &str) {
    let generation = shared.current();
    let http = shared.tokens.http_for(profile);
    let clients = Clients {
        auth: &http,
        upstreams: generation.clients(),
    };
    let started = match shared
        .logins
        .start(
            &generation.config,
            &clients,
            profile,
            &shared.callback_uri(),
            &shared.tokens.needed_scopes(profile),
        )
        .await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Cannot start the OAuth login of profile '{profile}': {e}");
            return;
        }
    };
    eprintln!(
        "Setting up OAuth profile '{profile}'...\nURL: {}\n\n\
         Please open the authorization URL on a machine with a browser and complete the sign-in.\n\
         After authorization, the browser will redirect to a callback URL. Even if the page fails \
         to load (connection error), the authorization code is in the URL.\n\
         Paste the value of the `code` parameter, or the whole URL from the address bar.",
        started.url
    );
    for _ in 0..3 {
        eprint!("Enter authorization code: ");
        let _ = std::io::stderr().flush();
        let line = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).map(|_| line)
        })
        .await;
        let Ok(Ok(line)) = line else { return };
        let line = line.trim().to_string();
        if line.is_empty() {
            continue;
        }
        let (code, url) = if line.contains("://") {
            (None, Some(line.as_str()))
        } else {
            (Some(line.as_str()), None)
        };
        match shared
            .logins
            .paste(&shared.tokens, &started.id, code, url)
            .await
        {
            Ok(s) if s.status == LoginPhase::Succeeded => {
                eprintln!("OAuth login successful!");
                return;
            }
            Ok(s) => {
                eprintln!("OAuth login failed: {}", s.message.unwrap_or_default());
                return;
            }
            Err(crate::auth::login::LoginError::BadCode(m)) => eprintln!("{m}; try again."),
            Err(e) => {
                eprintln!("OAuth login failed: {e}");
                return;
            }
        }
    }
}
