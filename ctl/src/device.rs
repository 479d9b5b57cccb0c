//! `login --device` (RFC 8628): the daemon holds the device code and polls the authorization
//! server; here the user is shown the page and the code to enter there (plain text, no QR
//! code), and the login's status is long-polled until it ends. Ctrl-C (SIGINT) cancels the
//! login in the daemon (`POST /v1/login/{id}/cancel`), and the command exits 130.

use std::io::Write;

use mcpproxyd_api::{DeviceLogin, LoginPhase, LoginStarted};
use tokio::signal::unix::{signal, SignalKind};

use crate::client::{Client, NETWORK_TIMEOUT};
use crate::error::CtlError;
use crate::login::{self, Outcome};
use crate::output::emit;
use crate::{time, Env};

/// Shows the code, then waits for the daemon to finish the login or for Ctrl-C.
pub(crate) async fn approve(
    client: &Client,
    started: &LoginStarted,
    env: &Env,
    err: &mut dyn Write,
) -> Result<Outcome, CtlError> {
    let Some(device) = &started.device else {
        return Err(CtlError::BadAnswer(
            "the daemon started a login without a device code; is it older than this \
             mcpproxyctl?"
                .into(),
        ));
    };
    // Watched before the code is shown, so that a Ctrl-C right after it is never missed.
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| CtlError::io("cannot watch for Ctrl-C", e))?;
    emit(err, &instructions(started, device, time::now()))?;
    let waited = {
        let label = "waiting for the login to be approved…";
        let wait = login::wait(client, started, label, env.stderr_is_terminal, err);
        tokio::select! {
            outcome = wait => Some(outcome),
            _ = interrupt.recv() => None,
        }
    };
    match waited {
        Some(outcome) => outcome,
        None => {
            if env.stderr_is_terminal {
                emit(err, "\n")?;
            }
            cancel(client, started).await
        }
    }
}

/// Tells the daemon to stop polling. A login approved just before Ctrl-C stays a success.
async fn cancel(client: &Client, started: &LoginStarted) -> Result<Outcome, CtlError> {
    let cancelled = || {
        Outcome::Cancelled(format!(
            "login cancelled (profile {}); the daemon stopped polling the authorization server",
            started.profile
        ))
    };
    let answer = client
        .clone()
        .with_timeout(NETWORK_TIMEOUT)
        .post_json(
            &format!("/v1/login/{}/cancel", started.id),
            &serde_json::json!({}),
        )
        .await;
    match answer {
        Ok(body) => {
            let status = login::decode(&body)?;
            if status.status == LoginPhase::Succeeded {
                return Ok(Outcome::Finished(status, body));
            }
            Ok(cancelled())
        }
        // Gone already: expired and forgotten; there is nothing left to stop.
        Err(CtlError::Daemon { status: 404, .. }) => Ok(cancelled()),
        Err(e) => Err(e),
    }
}

/// What the user reads: where to go, what to type, for how long.
pub fn instructions(started: &LoginStarted, device: &DeviceLogin, now: u64) -> String {
    let mut text = format!(
        "To log in (profile {}), open this page in a browser on any device:\n\n  {}\n\n\
         and enter the code:\n\n  {}\n\n",
        started.profile, device.verification_uri, device.user_code
    );
    if let Some(complete) = &device.verification_uri_complete {
        text.push_str(&format!(
            "Or open this address, which carries the code:\n\n  {complete}\n\n"
        ));
    }
    text.push_str(&format!(
        "The code expires in {}. Press Ctrl-C to cancel.\n",
        time::span(started.expires_at.saturating_sub(now))
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(complete: Option<&str>) -> (LoginStarted, DeviceLogin) {
        let device = DeviceLogin {
            user_code: "WDJB-MJHT".into(),
            verification_uri: "https://as.example/device".into(),
            verification_uri_complete: complete.map(String::from),
            expires_in: 600,
            interval: 5,
        };
        let started = LoginStarted {
            id: "ab12".into(),
            profile: "corp".into(),
            url: "https://as.example/device".into(),
            redirect_uri: String::new(),
            expires_at: 1_000_600,
            device: Some(device.clone()),
        };
        (started, device)
    }

    #[test]
    fn instructions_name_the_page_the_code_and_the_deadline() {
        let (s, d) = started(Some("https://as.example/device?user_code=WDJB-MJHT"));
        let text = instructions(&s, &d, 1_000_000);
        assert!(text.contains("profile corp"), "{text}");
        assert!(text.contains("\n  https://as.example/device\n"), "{text}");
        assert!(text.contains("\n  WDJB-MJHT\n"), "{text}");
        assert!(text.contains("user_code=WDJB-MJHT"), "{text}");
        assert!(text.contains("expires in 10m"), "{text}");
        assert!(text.contains("Ctrl-C"), "{text}");
        let (s, d) = started(None);
        assert!(!instructions(&s, &d, 1_000_000).contains("Or open"));
    }
}
