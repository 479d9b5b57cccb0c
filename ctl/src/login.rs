//! `login`: the daemon starts the login (`POST /v1/login`) and the user is sent to the
//! authorization server. In the browser mode the URL is opened here and the login's status is
//! long-polled under a countdown until the daemon's `/callback` has the answer. With
//! `--no-browser` the URL is printed, and the code or redirect URL the user pastes is handed to
//! the daemon (`POST /v1/login/{id}/code`), whose answer is the outcome. With `--device` the
//! daemon polls the authorization server itself; [`crate::device`] shows the code and waits.
//!
//! The URL, the instructions, the prompt and the countdown go to stderr; stdout gets only the
//! outcome (or, with `--json`, the daemon's final [`LoginStatus`]).

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mcpproxyd_api::{codes, LoginCode, LoginPhase, LoginStart, LoginStarted, LoginStatus};
use tokio::time::MissedTickBehavior;

use crate::client::{self, Client, NETWORK_TIMEOUT};
use crate::countdown::Countdown;
use crate::error::CtlError;
use crate::output::{emit, print_json};
use crate::{browser, exit, render, time, Env};

/// How long one long-poll asks the daemon to wait for a change.
pub const WAIT_SECS: u64 = 30;

/// How often the user may press Enter on nothing, or paste something unusable, before
/// `--no-browser` gives up.
pub const PASTE_ATTEMPTS: usize = 3;

/// How long past a login's deadline the daemon may still call it pending before we stop
/// believing it.
const GRACE_SECS: u64 = 60;

/// The seed's headless instructions, before the URL.
pub const OPEN_ELSEWHERE: &str =
    "Please open the authorization URL on a machine with a browser and complete the sign-in:";

/// The seed's headless instructions, after the URL.
pub const CODE_IS_IN_THE_URL: &str = "After authorization, the browser will redirect to a \
     callback URL. Even if the page fails to load (connection error), the code is in the URL.";

/// The prompt for the pasted code.
pub const PROMPT: &str = "Paste the code, or the whole URL from the address bar: ";

/// `login`'s flags.
#[derive(Debug, Clone, Copy)]
pub struct Args<'a> {
    pub profile: Option<&'a str>,
    pub no_browser: bool,
    pub device: bool,
    pub json: bool,
}

/// How a login ended, as far as this command saw it.
pub(crate) enum Outcome {
    /// The daemon's last word on the login, decoded and as sent.
    Finished(LoginStatus, Bytes),
    /// No code came (end of input, or too many unusable ones): why.
    GaveUp(String),
    /// The user pressed Ctrl-C and the daemon stopped the login: its word on that.
    Cancelled(String),
}

/// Runs `login` to its exit code: 0 logged in; 1 failed, denied, expired or no code entered;
/// 130 cancelled with Ctrl-C.
pub async fn login(
    client: &Client,
    args: Args<'_>,
    env: &Env,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, CtlError> {
    let start = LoginStart {
        profile: args.profile.map(String::from),
        paste: args.no_browser,
        device: args.device,
    };
    let body = client
        .clone()
        .with_timeout(NETWORK_TIMEOUT)
        .post_json("/v1/login", &start)
        .await?;
    let started: LoginStarted = client::parse("POST /v1/login", &body)?;
    if !valid_id(&started.id) {
        return Err(CtlError::BadAnswer(format!(
            "the daemon named its login {:?}, which is not an alphanumeric id",
            started.id
        )));
    }
    let outcome = if args.device {
        crate::device::approve(client, &started, env, err).await?
    } else if args.no_browser {
        paste(client, &started, env, input, err).await?
    } else {
        browse(client, &started, env, err).await?
    };
    let (status, body) = match outcome {
        Outcome::Finished(status, body) => (status, body),
        Outcome::GaveUp(why) => {
            emit(err, &format!("mcpproxyctl: {why}\n"))?;
            return Ok(exit::LOGIN_FAILED);
        }
        Outcome::Cancelled(why) => {
            emit(err, &format!("mcpproxyctl: {why}\n"))?;
            return Ok(exit::INTERRUPTED);
        }
    };
    if args.json {
        print_json("the login's status", &body, out)?;
    }
    if status.status == LoginPhase::Succeeded {
        if !args.json {
            emit(out, &render::login_succeeded(&status, time::now()))?;
        }
        Ok(exit::OK)
    } else {
        emit(
            err,
            &format!("mcpproxyctl: {}\n", render::login_failed(&status)),
        )?;
        Ok(exit::LOGIN_FAILED)
    }
}

/// Browser mode: open the URL here, then wait for the daemon's callback to finish the login.
async fn browse(
    client: &Client,
    started: &LoginStarted,
    env: &Env,
    err: &mut dyn Write,
) -> Result<Outcome, CtlError> {
    emit(
        err,
        &format!(
            "Opening the authorization URL in a browser (profile {}); if none opens, open it \
             by hand:\n\n  {}\n\n",
            started.profile, started.url
        ),
    )?;
    let mut child = match browser::open(env.browser.as_deref(), &started.url) {
        Ok(child) => Some(child),
        Err(e) => {
            emit(
                err,
                &format!(
                    "mcpproxyctl: {e}\nOpen the URL above by hand, in a browser that can reach \
                     {}; or start again with --no-browser and paste the code.\n\n",
                    started.redirect_uri
                ),
            )?;
            None
        }
    };
    let outcome = wait(
        client,
        started,
        "waiting for the browser login…",
        env.stderr_is_terminal,
        err,
    )
    .await;
    // Reap the browser if it is done already (`xdg-open` usually is); otherwise let it be.
    if let Some(child) = &mut child {
        let _ = child.try_wait();
    }
    outcome
}

/// Long-polls the login's status until it is no longer pending, under a countdown on `err`.
pub(crate) async fn wait(
    client: &Client,
    started: &LoginStarted,
    label: &str,
    terminal: bool,
    err: &mut dyn Write,
) -> Result<Outcome, CtlError> {
    let poll = client
        .clone()
        .with_timeout(Duration::from_secs(WAIT_SECS) + client::REQUEST_TIMEOUT);
    let path = format!("/v1/login/{}?wait={WAIT_SECS}", started.id);
    let mut countdown = Countdown::new(label, terminal);
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let outcome = loop {
        let asked = Instant::now();
        let answer = {
            let request = poll.get(&path);
            tokio::pin!(request);
            loop {
                tokio::select! {
                    answer = &mut request => break answer,
                    _ = ticker.tick() => show(&mut countdown, started.expires_at, err),
                }
            }
        };
        let (status, body) = match answer.and_then(|body| decode(&body).map(|s| (s, body))) {
            Ok(answer) => answer,
            Err(e) => break Err(e),
        };
        if status.status != LoginPhase::Pending {
            break Ok(Outcome::Finished(status, body));
        }
        if time::now() > started.expires_at.saturating_add(GRACE_SECS) {
            break Err(CtlError::BadAnswer(format!(
                "the daemon still calls login {} pending, {GRACE_SECS}s after it should have \
                 expired",
                started.id
            )));
        }
        // A daemon that answers at once must not be asked again in a tight loop.
        if asked.elapsed() < Duration::from_secs(1) {
            ticker.tick().await;
            show(&mut countdown, started.expires_at, err);
        }
    };
    if let Some(text) = countdown.finish() {
        let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
    }
    outcome
}

/// Updates the countdown; progress output that fails is not worth failing the login for.
fn show(countdown: &mut Countdown, expires_at: u64, err: &mut dyn Write) {
    if let Some(text) = countdown.update(expires_at.saturating_sub(time::now())) {
        let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
    }
}

/// `--no-browser`: print the URL, read the code or redirect URL, hand it to the daemon.
async fn paste(
    client: &Client,
    started: &LoginStarted,
    env: &Env,
    input: &mut dyn BufRead,
    err: &mut dyn Write,
) -> Result<Outcome, CtlError> {
    emit(
        err,
        &format!(
            "{OPEN_ELSEWHERE}\n\n  {}\n\n{CODE_IS_IN_THE_URL}\nThe login (profile {}) expires \
             in {}.\n",
            started.url,
            started.profile,
            time::span(started.expires_at.saturating_sub(time::now()))
        ),
    )?;
    let exchange = client.clone().with_timeout(NETWORK_TIMEOUT);
    let path = format!("/v1/login/{}/code", started.id);
    for _ in 0..PASTE_ATTEMPTS {
        emit(err, PROMPT)?;
        let mut line = String::new();
        let read = input
            .read_line(&mut line)
            .map_err(|e| CtlError::io("cannot read the pasted code", e))?;
        if read == 0 {
            emit(err, "\n")?;
            return check_once(client, started, Some("no code was entered (end of input)")).await;
        }
        if !env.stdin_is_terminal {
            // A terminal showed the user's Enter; a pipe shows nothing.
            emit(err, "\n")?;
        }
        let Some(code) = pasted(&line) else {
            emit(err, "(nothing entered)\n")?;
            continue;
        };
        match exchange.post_json(&path, &code).await {
            Ok(body) => {
                let status = decode(&body)?;
                if status.status == LoginPhase::Pending {
                    return wait(
                        client,
                        started,
                        "waiting for the login to finish…",
                        env.stderr_is_terminal,
                        err,
                    )
                    .await;
                }
                return Ok(Outcome::Finished(status, body));
            }
            // The pasted text was unusable; the login is still pending. The daemon's message
            // never repeats the code.
            Err(CtlError::Daemon {
                status: 400,
                code,
                message,
            }) if code == codes::BAD_REQUEST => {
                emit(err, &format!("mcpproxyctl: {message}\n"))?;
            }
            // No longer pending: the browser's redirect reached the daemon meanwhile, or the
            // login failed or expired. Its status says which.
            Err(CtlError::Daemon { status: 404, .. }) => {
                return check_once(client, started, None).await;
            }
            Err(e) => return Err(e),
        }
    }
    check_once(
        client,
        started,
        Some(&format!("no usable code after {PASTE_ATTEMPTS} attempts")),
    )
    .await
}

/// Asks once for the login's status, when no code was taken: it may have finished all the
/// same (the browser's redirect). `gave_up` says why no code was taken, if none was sent.
async fn check_once(
    client: &Client,
    started: &LoginStarted,
    gave_up: Option<&str>,
) -> Result<Outcome, CtlError> {
    let answer = client.get(&format!("/v1/login/{}", started.id)).await;
    let why = |why: &str| {
        format!("{why}; start again with `mcpproxyctl login --no-browser` to paste a code")
    };
    match (answer, gave_up) {
        (Ok(body), gave_up) => {
            let status = decode(&body)?;
            match (status.status, gave_up) {
                (LoginPhase::Pending, Some(gave_up)) => Ok(Outcome::GaveUp(why(gave_up))),
                (LoginPhase::Pending, None) => Err(CtlError::BadAnswer(format!(
                    "the daemon refused the code for login {} as not pending, but calls it \
                     pending",
                    started.id
                ))),
                _ => Ok(Outcome::Finished(status, body)),
            }
        }
        (Err(CtlError::Daemon { status: 404, .. }), Some(gave_up)) => {
            Ok(Outcome::GaveUp(why(gave_up)))
        }
        (Err(e), _) => Err(e),
    }
}

pub(crate) fn decode(body: &[u8]) -> Result<LoginStatus, CtlError> {
    client::parse("the login's status", body)
}

/// The daemon's login ids are alphanumeric; anything else would not fit in a path.
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// What the user pasted, as the daemon takes it: a URL as `url`, anything else as `code`;
/// nothing for a blank line.
pub fn pasted(line: &str) -> Option<LoginCode> {
    let text = line.trim();
    if text.is_empty() {
        None
    } else if looks_like_url(text) {
        Some(LoginCode {
            code: None,
            url: Some(text.to_string()),
        })
    } else {
        Some(LoginCode {
            code: Some(text.to_string()),
            url: None,
        })
    }
}

/// Whether the pasted text is a URL (the address bar's content) rather than a bare code.
pub fn looks_like_url(text: &str) -> bool {
    let lower = text.trim().to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://") || lower.contains("://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_codes() {
        for url in [
            "http://127.0.0.1:8088/callback?code=abc&state=xyz",
            "HTTPS://localhost/callback?code=abc",
            "  http://[::1]:8088/callback?error=access_denied  ",
            "myapp://callback?code=abc",
        ] {
            assert!(looks_like_url(url), "{url}");
        }
        for code in [
            "abc",
            "Xy-9_z.~",
            "code=abc&state=xyz",
            "http",
            "4/0AX4XfWh",
        ] {
            assert!(!looks_like_url(code), "{code}");
        }
    }

    #[test]
    fn pasted_text_becomes_a_url_or_a_code() {
        assert_eq!(pasted(""), None);
        assert_eq!(pasted("  \r\n"), None);
        assert_eq!(
            pasted(" the-code \n"),
            Some(LoginCode {
                code: Some("the-code".into()),
                url: None
            })
        );
        let url = "http://127.0.0.1:8088/callback?code=c&state=s";
        assert_eq!(
            pasted(&format!("{url}\r\n")),
            Some(LoginCode {
                code: None,
                url: Some(url.into())
            })
        );
        // As sent: only the field in use.
        assert_eq!(
            serde_json::to_string(&pasted("c\n").unwrap()).unwrap(),
            r#"{"code":"c"}"#
        );
    }

    #[test]
    fn ids_must_fit_in_a_path() {
        assert!(valid_id("0a1b2c3d4e5f"));
        assert!(!valid_id(""));
        assert!(!valid_id("../status"));
        assert!(!valid_id("a?b"));
    }
}
