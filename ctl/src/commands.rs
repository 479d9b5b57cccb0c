//! The subcommands that talk to the daemon: one request each, then the answer printed (`login`,
//! a conversation, is in [`crate::login`]).

use std::io::{BufRead, Write};

use mcpproxyd_api::{
    AclCheck, AclVerdict, AppFixed, LoggedOut, ProfileRequest, Reloaded, Revoked, Servers, Status,
};
use serde::de::DeserializeOwned;

use crate::cli::{AclCommand, AppCommand, Command};
use crate::client::{self, Client, NETWORK_TIMEOUT};
use crate::error::CtlError;
use crate::output::{emit, print_json};
use crate::{exit, login, render, Env};

/// Runs `command` against the daemon; its answer goes to `out`; `status --check`'s findings,
/// and `login`'s URL, prompts and countdown to `err`; `login --no-browser` reads the pasted
/// code from `input`. Returns the exit code of a command that ran.
pub async fn execute(
    command: &Command,
    client: &Client,
    env: &Env,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
    now: u64,
) -> Result<u8, CtlError> {
    match command {
        Command::Status { json, check } => status(client, *json, *check, out, err, now).await,
        Command::Servers { json } => servers(client, *json, out).await,
        Command::Reload => reload(client, out).await,
        Command::Acl(AclCommand::Check {
            path,
            tool,
            key,
            json,
        }) => acl_check(client, path, tool.as_deref(), key.as_deref(), *json, out).await,
        Command::App(AppCommand::Fix { profile, json }) => {
            app_fix(client, profile.clone(), *json, out).await
        }
        Command::Metrics => metrics(client, out).await,
        Command::Login {
            profile,
            no_browser,
            device,
            json,
        } => {
            let args = login::Args {
                profile: profile.as_deref(),
                no_browser: *no_browser,
                device: *device,
                json: *json,
            };
            login::login(client, args, env, input, out, err).await
        }
        Command::Logout { profile, json } => logout(client, profile.clone(), *json, out).await,
        Command::Revoke { profile, json } => revoke(client, profile.clone(), *json, out, err).await,
        Command::ImportAliyun {
            profile,
            file,
            delete,
            json,
        } => {
            let args = crate::import::Args {
                profile: profile.as_deref(),
                file: file.as_deref(),
                delete: *delete,
                json: *json,
            };
            crate::import::import(client, args, env, input, out, err).await
        }
        Command::Keys(keys) => crate::keys::execute(keys, client, out, now).await,
        // Handled before any socket is chosen; generating it here is just as right.
        Command::Completions { shell } => {
            crate::cli::completions(*shell, out)?;
            Ok(exit::OK)
        }
    }
}

/// Prints the daemon's answer: as it came with `--json`, else rendered for people by `show`.
fn answer<T: DeserializeOwned>(
    what: &str,
    body: &[u8],
    json: bool,
    out: &mut dyn Write,
    show: impl FnOnce(&T) -> String,
) -> Result<u8, CtlError> {
    if json {
        print_json(what, body, out)?;
    } else {
        let value: T = client::parse(what, body)?;
        emit(out, &show(&value))?;
    }
    Ok(exit::OK)
}

async fn servers(client: &Client, json: bool, out: &mut dyn Write) -> Result<u8, CtlError> {
    let body = client.get("/v1/servers").await?;
    answer("GET /v1/servers", &body, json, out, |s: &Servers| {
        render::servers(s)
    })
}

async fn reload(client: &Client, out: &mut dyn Write) -> Result<u8, CtlError> {
    let body = client
        .post_json("/v1/reload", &serde_json::json!({}))
        .await?;
    answer("POST /v1/reload", &body, false, out, |r: &Reloaded| {
        render::reloaded(r)
    })
}

/// `acl check`: a query, so a denial is an answer, not a failure (exit 0).
async fn acl_check(
    client: &Client,
    path: &str,
    tool: Option<&str>,
    key: Option<&str>,
    json: bool,
    out: &mut dyn Write,
) -> Result<u8, CtlError> {
    const WHAT: &str = "POST /v1/acl/check";
    let check = AclCheck {
        path: path.to_string(),
        tool: tool.map(str::to_string),
        key: key.map(str::to_string),
    };
    let body = client.post_json("/v1/acl/check", &check).await?;
    let verdict: AclVerdict = client::parse(WHAT, &body)?;
    answer(WHAT, &body, json, out, render::verdict)?;
    // Like `test` and `grep`: 0 allowed, 1 denied, so `if mcpproxyctl acl check P` works.
    Ok(if verdict.allowed {
        exit::OK
    } else {
        exit::DENIED
    })
}

async fn app_fix(
    client: &Client,
    profile: Option<String>,
    json: bool,
    out: &mut dyn Write,
) -> Result<u8, CtlError> {
    let body = client
        .clone()
        .with_timeout(NETWORK_TIMEOUT)
        .post_json("/v1/app/fix", &ProfileRequest { profile })
        .await?;
    answer("POST /v1/app/fix", &body, json, out, |fixed: &AppFixed| {
        let what = if fixed.changed {
            "redirect URI added to"
        } else {
            "redirect URI already present in"
        };
        format!(
            "profile `{}`: {what} application {} (redirect URIs: {})\n",
            fixed.profile,
            fixed.app_id,
            fixed.redirect_uris.join(", ")
        )
    })
}

/// `metrics`: the Prometheus text as it came.
async fn metrics(client: &Client, out: &mut dyn Write) -> Result<u8, CtlError> {
    let body = client.get("/v1/metrics").await?;
    out.write_all(&body).map_err(CtlError::output)?;
    out.flush().map_err(CtlError::output)?;
    Ok(exit::OK)
}

async fn logout(
    client: &Client,
    profile: Option<String>,
    json: bool,
    out: &mut dyn Write,
) -> Result<u8, CtlError> {
    let body = client
        .post_json("/v1/logout", &ProfileRequest { profile })
        .await?;
    answer("POST /v1/logout", &body, json, out, |l: &LoggedOut| {
        render::logged_out(l)
    })
}

async fn status(
    client: &Client,
    json: bool,
    check: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
    now: u64,
) -> Result<u8, CtlError> {
    const WHAT: &str = "GET /v1/status";
    let body = client.get("/v1/status").await?;
    if json {
        print_json(WHAT, &body, out)?;
    }
    if !check {
        if !json {
            let status: Status = client::parse(WHAT, &body)?;
            emit(out, &render::status(&status, now))?;
        }
        return Ok(exit::OK);
    }
    let status: Status = client::parse(WHAT, &body)?;
    let problems = render::attention(&status);
    if problems.is_empty() {
        if !json {
            emit(out, &render::check_passed(&status))?;
        }
        return Ok(exit::OK);
    }
    for line in problems {
        writeln!(err, "mcpproxyctl: {line}").map_err(CtlError::output)?;
    }
    Ok(exit::CHECK_FAILED)
}

/// `revoke`: exit 1 unless the authorization server revoked the token too (or there was nothing
/// to revoke, or the server offers no revocation), so that incident response notices.
async fn revoke(
    client: &Client,
    profile: Option<String>,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, CtlError> {
    const WHAT: &str = "POST /v1/revoke";
    let answer = client
        .clone()
        .with_timeout(NETWORK_TIMEOUT)
        .post_json("/v1/revoke", &ProfileRequest { profile })
        .await;
    let body = match answer {
        Ok(body) => body,
        Err(e @ CtlError::Timeout { .. }) => {
            // The daemon wipes before it calls the server: most likely only the server is slow.
            crate::report(&e, err);
            emit(
                err,
                "mcpproxyctl: the daemon wipes the token before it calls the authorization \
                 server, so it is most likely wiped already: check with `mcpproxyctl status`, \
                 and revoke the application's authorization in the provider's console\n",
            )?;
            return Ok(e.exit_code());
        }
        Err(e) => return Err(e),
    };
    let revoked: Revoked = client::parse(WHAT, &body)?;
    if json {
        print_json(WHAT, &body, out)?;
    } else {
        emit(out, &render::revoked(&revoked))?;
    }
    if !render::revoke_incomplete(&revoked) {
        return Ok(exit::OK);
    }
    if json {
        let what = if revoked.wiped {
            format!(
                "server-side revocation failed: {}",
                revoked.server_error.as_deref().unwrap_or(&revoked.server)
            )
        } else {
            "the token was NOT wiped".to_string()
        };
        emit(
            err,
            &format!(
                "mcpproxyctl: profile {}: {what}; {}\n",
                revoked.profile,
                render::REVOKE_BY_HAND
            ),
        )?;
    }
    Ok(exit::REVOKE_INCOMPLETE)
}
