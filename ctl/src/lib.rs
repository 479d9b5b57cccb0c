//! `mcpproxyctl`, the operator's client for a running `mcpproxyd`. It talks only to the
//! daemon's admin socket (HTTP/1.1 + JSON on a Unix socket, the types of `mcpproxyd-api`) and
//! reads no configuration and no token file.
//!
//! - [`cli`]: the command line (clap).
//! - [`socket`]: which socket to use (`--socket`, `MCPPROXYD_SOCKET`, XDG, the default).
//! - [`client`]: one HTTP/1.1 exchange on the socket, and the daemon's errors.
//! - [`commands`]: each subcommand: ask, then print.
//! - [`login`]: `login`, a conversation: the URL, the browser ([`browser`]) or the pasted code,
//!   the [`countdown`]; [`device`]: `login --device`'s code and Ctrl-C; [`import`]:
//!   `import-aliyun`.
//! - [`keys`]: `keys add|list|revoke`, client keys.
//! - [`output`]: what every command writes (pretty JSON, flushed text).
//! - [`render`] and [`time`]: human output, pure functions of the answers.
//! - [`error`] and [`exit`]: what went wrong, and the exit code that says so.
#![forbid(unsafe_code)]

pub mod browser;
pub mod cli;
pub mod client;
pub mod commands;
pub mod countdown;
pub mod device;
pub mod error;
pub mod exit;
pub mod import;
pub mod keys;
pub mod login;
pub mod output;
pub mod render;
pub mod socket;
pub mod time;

use std::ffi::OsString;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use crate::cli::Command;
use crate::client::Client;
use crate::error::CtlError;

/// The environment variables `mcpproxyctl` reads, passed in so that tests choose them.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// `MCPPROXYD_SOCKET`.
    pub socket: Option<OsString>,
    /// `XDG_RUNTIME_DIR`.
    pub xdg_runtime_dir: Option<OsString>,
    /// `HOME`: where `import-aliyun` finds `~/.aliyun/.mcpproxy_config`.
    pub home: Option<OsString>,
    /// `BROWSER`: what `login` opens the URL with.
    pub browser: Option<OsString>,
    /// Whether stdin is a terminal (else the pasted code's line end is not seen after the
    /// prompt, and `login --no-browser` ends the line itself).
    pub stdin_is_terminal: bool,
    /// Whether stderr is a terminal (`login`'s countdown is redrawn in place there).
    pub stderr_is_terminal: bool,
}

impl Env {
    pub fn from_process() -> Env {
        Env {
            socket: std::env::var_os(mcpproxyd_api::SOCKET_ENV),
            xdg_runtime_dir: std::env::var_os("XDG_RUNTIME_DIR"),
            home: std::env::var_os("HOME"),
            browser: std::env::var_os("BROWSER"),
            stdin_is_terminal: std::io::stdin().is_terminal(),
            stderr_is_terminal: std::io::stderr().is_terminal(),
        }
    }
}

/// The binary: the process's arguments, environment, stdin, stdout and stderr.
pub fn main() -> ExitCode {
    let code = run(
        std::env::args_os(),
        &Env::from_process(),
        &mut std::io::stdin().lock(),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    ExitCode::from(code)
}

/// Runs one command line to its exit code: answers on `out`, errors on `err`; `input` is read
/// only by `login --no-browser`, for the pasted code.
pub fn run<I, T>(
    args: I,
    env: &Env,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match cli::parse(args) {
        Ok(cli) => cli,
        Err(e) => return cli::report_parse_error(&e, out, err),
    };
    if let Command::Completions { shell } = cli.command {
        return match cli::completions(shell, out) {
            Ok(()) => exit::OK,
            Err(e) => {
                report(&e, err);
                e.exit_code()
            }
        };
    }
    let socket = socket::resolve(
        cli.socket.as_deref(),
        env.socket.as_deref(),
        env.xdg_runtime_dir.as_deref(),
        |p| p.exists(),
    );
    let client = Client::new(socket);
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CtlError::io("cannot start the async runtime", e))
        .and_then(|rt| {
            rt.block_on(commands::execute(
                &cli.command,
                &client,
                env,
                input,
                out,
                err,
                time::now(),
            ))
        });
    match result {
        Ok(code) => code,
        Err(e) => {
            report(&e, err);
            e.exit_code()
        }
    }
}

/// Prints an error to `err`, every line prefixed with the program's name.
pub fn report(e: &CtlError, err: &mut dyn Write) {
    if e.is_broken_pipe() {
        return;
    }
    for line in e.to_string().lines() {
        // Nothing sensible is left to do when stderr itself fails.
        let _ = writeln!(err, "mcpproxyctl: {line}");
    }
}
