//! The subcommands that talk to the daemon: one request each, then the answer printed (`login`,
//! a conversation, is in [`crate::login`]).

use std::io::{BufRead, Write};

use mcpproxyd_api::{
    AclCheck, AclVerdict, LoggedOut, ProfileRequest, Reloaded, Revoked, Servers, Status,
};

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
        Command::Servers { json } => {
            let body = client.get("/v1/servers").await?;
            if *json {
                print_json("GET /v1/servers", &body, out)?;
            } else {
                let servers: Servers = client::parse("GET /v1/servers", &body)?;
                emit(out, &render::servers(&servers))?;
            }
            Ok(exit::OK)
        }
        Command::Reload => {
            let body = client
                .post_json("/v1/reload", &serde_json::json!({}))
                .await?;
            let reloaded: Reloaded = client::parse("POST /v1/reload", &body)?;
            emit(out, &render::reloaded(&reloaded))?;
            Ok(exit::OK)
        }
        Command::Acl(AclCommand::Check { path, tool, json }) => {
            let check = AclCheck {
                path: path.clone(),
                tool: tool.clone(),
                key: None,
            };
            let body = client.post_json("/v1/acl/check", &check).await?;
            if *json {
                print_json("POST /v1/acl/check", &body, out)?;
            } else {
                let verdict: AclVerdict = client::parse("POST /v1/acl/check", &body)?;
                emit(out, &render::verdict(&verdict))?;
            }
            // A query: a denial is an answer, not a failure.
            Ok(exit::OK)
        }
        Command::App(AppCommand::Fix { profile, json }) => {
            const WHAT: &str = "POST /v1/app/fix";
            let request = ProfileRequest {
                profile: profile.clone(),
            };
            let body = client
                .clone()
                .with_timeout(NETWORK_TIMEOUT)
                .post_json("/v1/app/fix", &request)
                .await?;
            if *json {
                print_json(WHAT, &body, out)?;
            } else {
                let fixed: mcpproxyd_api::AppFixed = client::parse(WHAT, &body)?;
                let what = if fixed.changed {
                    "redirect URI added to"
                } else {
                    "redirect URI already present in"
                };
                emit(
                    out,
                    &format!(
                        "profile `{}`: {what} application {} (redirect URIs: {})\n",
                        fixed.profile,
                        fixed.app_id,
                        fixed.redirect_uris.join(", ")
                    ),
                )?;
            }
            Ok(exit::OK)
        }
        Command::Metrics => {
            let body = client.get("/v1/metrics").await?;
            out.write_all(&body).map_err(CtlError::output)?;
            out.flush().map_err(CtlError::output)?;
            Ok(exit::OK)
        }
        Command::Login {
            profile,
            no_browser,
            json,
        } => {
            let args = login::Args {
                profile: profile.as_deref(),
                no_browser: *no_browser,
                json: *json,
            };
            login::login(client, args, env, input, out, err).await
        }
        Command::Logout { profile, json } => {
            const WHAT: &str = "POST /v1/logout";
            let request = ProfileRequest {
                profile: profile.clone(),
            };
            let body = client.post_json("/v1/logout", &request).await?;
            if *json {
                print_json(WHAT, &body, out)?;
            } else {
                let logged_out: LoggedOut = client::parse(WHAT, &body)?;
                emit(out, &render::logged_out(&logged_out))?;
            }
            Ok(exit::OK)
        }
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
        // Handled before any socket is chosen; generating it here is just as right.
        Command::Completions { shell } => {
            crate::cli::completions(*shell, out)?;
            Ok(exit::OK)
        }
    }
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
