//! The command line: subcommands and flags (clap), usage errors as exit 64, shell completions.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;

use crate::error::CtlError;
use crate::exit;

/// Operate a running mcpproxyd through its admin socket.
///
/// Exit status: 0 ok; 1 the daemon answered an error (or `status --check` found an auth
/// profile that needs attention, `acl check` found the path denied, a login failed, was denied
/// or expired, or `revoke` could not revoke at the server); 64 usage error; 66 the file to
/// import cannot be read; 69 the daemon is not reachable; 74 output could not be written (or a
/// pasted code read); 77 permission denied (socket file permissions, or the daemon refused your
/// uid); 130 a login cancelled with Ctrl-C.
#[derive(Debug, Parser)]
#[command(name = "mcpproxyctl", version, propagate_version = true)]
pub struct Cli {
    /// The daemon's admin socket [default: $MCPPROXYD_SOCKET, else
    /// $XDG_RUNTIME_DIR/mcpproxyd/admin.sock if it exists, else /run/mcpproxyd/admin.sock]
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the daemon: listeners, configuration, upstreams, auth profiles, ACL, counters
    Status {
        /// Print the daemon's JSON answer
        #[arg(long)]
        json: bool,
        /// Only check the auth profiles: exit 1 naming each that needs login, is revoked or
        /// logged out; exit 0 otherwise (for monitoring)
        #[arg(long)]
        check: bool,
    },
    /// List the catalogued MCP servers, whether the ACL lets them through, and their URLs
    Servers {
        /// Print the daemon's JSON answer
        #[arg(long)]
        json: bool,
    },
    /// Re-read the daemon's configuration file (like SIGHUP); an invalid file changes nothing
    Reload,
    /// Query the ACL
    #[command(subcommand)]
    Acl(AclCommand),
    /// Print the daemon's metrics (Prometheus text format)
    Metrics,
    /// Log an auth profile in: OAuth authorization code with PKCE, in a browser
    ///
    /// Opens the authorization URL with $BROWSER (a program and its arguments, the URL
    /// appended), else xdg-open, and waits with a countdown until the daemon has the redirect.
    /// With --no-browser, prints the URL and reads the code, or the whole redirect URL, from
    /// stdin. With --device (where the authorization server offers the device flow, RFC 8628),
    /// prints a page and a code to enter there on any device with a browser, and waits while
    /// the daemon polls; Ctrl-C cancels the login in the daemon. Exits 0 logged in, 1 failed,
    /// denied or expired, 130 cancelled with Ctrl-C.
    Login {
        /// The auth profile [default: the only one that can log in]
        #[arg(long, value_name = "NAME")]
        profile: Option<String>,
        /// Open no browser: print the URL, then paste the code or the redirect URL
        #[arg(long)]
        no_browser: bool,
        /// Device login (RFC 8628): print a page and a code to enter on any device with a
        /// browser; nothing to paste back. Only where the server advertises a
        /// device_authorization_endpoint; elsewhere use --no-browser
        #[arg(long, conflicts_with = "no_browser")]
        device: bool,
        /// Print the daemon's JSON answer (the login's final status)
        #[arg(long)]
        json: bool,
    },
    /// Wipe an auth profile's token (the authorization server is not told)
    Logout {
        /// The auth profile [default: the only one that can log in]
        #[arg(long, value_name = "NAME")]
        profile: Option<String>,
        /// Print the daemon's JSON answer
        #[arg(long)]
        json: bool,
    },
    /// Incident response: wipe an auth profile's token, close its streams, revoke it at the
    /// authorization server
    ///
    /// The local wipe comes first and always happens. Exits 1 if the server's revocation
    /// failed: then revoke the application's authorization in the provider's console.
    Revoke {
        /// The auth profile [default: the only one that can log in]
        #[arg(long, value_name = "NAME")]
        profile: Option<String>,
        /// Print the daemon's JSON answer
        #[arg(long)]
        json: bool,
    },
    /// Import the login of `aliyun mcp-proxy` (~/.aliyun/.mcpproxy_config) into an alibaba
    /// profile, then offer to delete that plaintext file
    ImportAliyun {
        /// The alibaba auth profile [default: the only one]
        #[arg(long, value_name = "NAME")]
        profile: Option<String>,
        /// The file to import [default: ~/.aliyun/.mcpproxy_config]
        #[arg(long, value_name = "FILE")]
        file: Option<std::path::PathBuf>,
        /// Delete the plaintext file after a successful import, without asking
        #[arg(long)]
        delete: bool,
        /// Print the daemon's JSON answer
        #[arg(long)]
        json: bool,
    },
    /// The Alibaba Cloud OAuth application
    #[command(subcommand)]
    App(AppCommand),
    /// Local client keys: who may use a proxy listener that requires them
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print a shell completion script (needs no daemon)
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Add the redirect URI the daemon uses to the profile's Alibaba Cloud OAuth application
    /// (through IMS, with the daemon's AccessKey); the login reports when this is needed
    Fix {
        /// The alibaba auth profile [default: the only one]
        #[arg(long, value_name = "NAME")]
        profile: Option<String>,
        /// Print the daemon's JSON answer
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a client key and print it (once: the daemon keeps only its digest)
    ///
    /// The app sends it as `Authorization: Bearer mcpp_...`. It is required on listeners
    /// where [listen] require_client_keys says so, and checked wherever it is sent.
    Add {
        /// A name for the key (letters, digits, `.`, `_`, `-`): logs and metrics show it
        name: String,
        /// Comma-separated servers (names, IDs, or path prefixes starting with /) the key may
        /// reach [default: every server the ACL allows]
        #[arg(long, value_name = "LIST")]
        servers: Option<String>,
        /// Comma-separated tool-name globs the key may call [default: every tool]
        #[arg(long, value_name = "LIST")]
        tools: Option<String>,
        /// The key expires after this long, e.g. 30d or 12h [default: never]
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
        /// Print the daemon's JSON answer
        #[arg(long)]
        json: bool,
    },
    /// List the client keys: state, last use, scope
    List {
        /// Print the daemon's JSON answer
        #[arg(long)]
        json: bool,
    },
    /// Revoke a client key: its next request is refused and its open streams close
    Revoke {
        /// The key's name
        name: String,
        /// Print the daemon's JSON answer
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// Would the proxy let a request to PATH through? Exits 0 if allowed, 1 if denied.
    Check {
        /// A proxy path, e.g. /accounts/1001/custom/ecs/id/ECS01/mcp
        path: String,
        /// A tool name: also check the server's tool policies
        #[arg(long, value_name = "NAME")]
        tool: Option<String>,
        /// A client key's name: its state and scope apply too
        #[arg(long, value_name = "NAME")]
        key: Option<String>,
        /// Print the daemon's JSON answer
        #[arg(long)]
        json: bool,
    },
}

pub fn parse<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    Cli::try_parse_from(args)
}

/// Prints clap's answer: `--help` and `--version` to `out` (exit 0), errors to `err` (exit 64,
/// EX_USAGE, where clap alone would exit 2).
pub fn report_parse_error(e: &clap::Error, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    // If even this write fails there is nobody left to tell.
    if e.use_stderr() {
        let _ = write!(err, "{}", e.render());
        exit::USAGE
    } else {
        let _ = write!(out, "{}", e.render());
        exit::OK
    }
}

/// Writes the completion script for `shell`.
pub fn completions(shell: Shell, out: &mut dyn Write) -> Result<(), CtlError> {
    // clap_complete panics when its writer fails (a closed pipe): generate into memory first.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "mcpproxyctl", &mut script);
    out.write_all(&script)
        .and_then(|()| out.flush())
        .map_err(CtlError::output)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_and_output(args: &[&str]) -> (u8, String, String) {
        match parse(args) {
            Ok(_) => (exit::OK, String::new(), String::new()),
            Err(e) => {
                let (mut out, mut err) = (Vec::new(), Vec::new());
                let code = report_parse_error(&e, &mut out, &mut err);
                (
                    code,
                    String::from_utf8(out).unwrap(),
                    String::from_utf8(err).unwrap(),
                )
            }
        }
    }

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn usage_errors_exit_64() {
        let (code, _, err) = code_and_output(&["mcpproxyctl", "bogus"]);
        assert_eq!(code, exit::USAGE);
        assert!(err.contains("bogus"), "{err}");
        assert_eq!(code_and_output(&["mcpproxyctl"]).0, exit::USAGE);
        assert_eq!(
            code_and_output(&["mcpproxyctl", "acl", "check"]).0,
            exit::USAGE
        );
        assert_eq!(
            code_and_output(&["mcpproxyctl", "completions", "cmd"]).0,
            exit::USAGE
        );
        assert_eq!(
            code_and_output(&["mcpproxyctl", "login", "--profile"]).0,
            exit::USAGE
        );
        assert_eq!(
            code_and_output(&["mcpproxyctl", "revoke", "extra"]).0,
            exit::USAGE
        );
    }

    #[test]
    fn help_and_version_exit_0() {
        let (code, out, _) = code_and_output(&["mcpproxyctl", "--help"]);
        assert_eq!(code, exit::OK);
        assert!(out.contains("status"), "{out}");
        let (code, out, _) = code_and_output(&["mcpproxyctl", "acl", "check", "--help"]);
        assert_eq!(code, exit::OK);
        assert!(out.contains("--tool"), "{out}");
        let (code, out, _) = code_and_output(&["mcpproxyctl", "--version"]);
        assert_eq!(code, exit::OK);
        assert_eq!(
            out.trim(),
            format!("mcpproxyctl {}", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn the_socket_flag_goes_before_or_after_the_command() {
        for args in [
            &["mcpproxyctl", "--socket", "/s", "status"][..],
            &["mcpproxyctl", "status", "--socket", "/s"][..],
        ] {
            let cli = parse(args).unwrap();
            assert_eq!(cli.socket, Some(PathBuf::from("/s")));
        }
    }

    #[test]
    fn login_logout_and_revoke_take_a_profile() {
        match parse(["mcpproxyctl", "login", "--profile", "gh", "--no-browser"])
            .unwrap()
            .command
        {
            Command::Login {
                profile,
                no_browser,
                device,
                json,
            } => {
                assert_eq!(profile.as_deref(), Some("gh"));
                assert!(no_browser);
                assert!(!device);
                assert!(!json);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(["mcpproxyctl", "login", "--device"]).unwrap().command,
            Command::Login {
                device: true,
                no_browser: false,
                ..
            }
        ));
        // A device login has nothing to paste.
        assert_eq!(
            code_and_output(&["mcpproxyctl", "login", "--device", "--no-browser"]).0,
            exit::USAGE
        );
        assert!(matches!(
            parse(["mcpproxyctl", "logout", "--json"]).unwrap().command,
            Command::Logout {
                profile: None,
                json: true
            }
        ));
        assert!(matches!(
            parse(["mcpproxyctl", "revoke", "--profile", "p"]).unwrap().command,
            Command::Revoke { profile: Some(p), json: false } if p == "p"
        ));
    }

    #[test]
    fn keys_commands_parse() {
        match parse([
            "mcpproxyctl",
            "keys",
            "add",
            "dify",
            "--servers",
            "ecs,ram",
            "--expires",
            "30d",
        ])
        .unwrap()
        .command
        {
            Command::Keys(KeysCommand::Add {
                name,
                servers,
                tools,
                expires,
                ..
            }) => {
                assert_eq!(name, "dify");
                assert_eq!(servers.as_deref(), Some("ecs,ram"));
                assert_eq!(tools, None);
                assert_eq!(expires.as_deref(), Some("30d"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(["mcpproxyctl", "keys", "revoke", "dify"]).unwrap().command,
            Command::Keys(KeysCommand::Revoke { name, .. }) if name == "dify"
        ));
        assert!(parse(["mcpproxyctl", "keys", "add"]).is_err());
        assert!(matches!(
            parse(["mcpproxyctl", "acl", "check", "/x", "--key", "k"]).unwrap().command,
            Command::Acl(AclCommand::Check { key: Some(k), .. }) if k == "k"
        ));
    }

    #[test]
    fn completions_are_generated() {
        let mut out = Vec::new();
        completions(Shell::Bash, &mut out).unwrap();
        let script = String::from_utf8(out).unwrap();
        assert!(script.contains("mcpproxyctl"));
        assert!(script.contains("reload"));
    }
}
