//! The subcommands that talk to the daemon: one request each, then the answer printed.

use std::io::Write;

use mcpproxyd_api::{AclCheck, AclVerdict, Reloaded, Servers, Status};
use serde_json::Value;

use crate::cli::{AclCommand, Command};
use crate::client::{self, Client};
use crate::error::CtlError;
use crate::exit;
use crate::render;

/// Runs `command` against the daemon; its answer goes to `out`, `status --check`'s findings
/// to `err`. Returns the exit code of a command that ran.
pub async fn execute(
    command: &Command,
    client: &Client,
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
        Command::Metrics => {
            let body = client.get("/v1/metrics").await?;
            out.write_all(&body).map_err(CtlError::output)?;
            out.flush().map_err(CtlError::output)?;
            Ok(exit::OK)
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

/// Prints a JSON answer pretty; an answer that isn't JSON is the daemon's error.
fn print_json(what: &str, body: &[u8], out: &mut dyn Write) -> Result<(), CtlError> {
    let value: Value = client::parse(what, body)?;
    let text = serde_json::to_string_pretty(&value)
        .map_err(|e| CtlError::io("cannot format JSON", e.into()))?;
    emit(out, &format!("{text}\n"))
}

fn emit(out: &mut dyn Write, text: &str) -> Result<(), CtlError> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(CtlError::output)
}
