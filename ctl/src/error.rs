//! What can go wrong talking to the daemon, in words for the operator, and each case's exit code.

use std::io;
use std::time::Duration;

use crate::exit::{self, ConnectFailure};
use crate::socket::SocketPath;

/// How to start the daemon or point at it; shown when it can't be reached.
const START_HINT: &str = "start it with `systemctl start mcpproxyd` (or run `mcpproxyd`), \
     or point mcpproxyctl at its socket with --socket PATH or MCPPROXYD_SOCKET";

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// Connecting to the admin socket failed.
    #[error("{}", connect_message(.socket, .source))]
    Connect {
        socket: SocketPath,
        #[source]
        source: io::Error,
    },

    /// The daemon took longer than the request timeout.
    #[error("no answer from mcpproxyd within {}s on {socket}", .after.as_secs())]
    Timeout { socket: SocketPath, after: Duration },

    /// The connection broke during the exchange.
    #[error("lost the connection to mcpproxyd on {socket}: {source}")]
    Transport {
        socket: SocketPath,
        #[source]
        source: hyper::Error,
    },

    /// The daemon's peer-credential check refused our uid (403 `peer_refused`).
    #[error(
        "the daemon refused your uid: {message}\n\
         only root, the daemon's own user and members of its admin group may use the admin \
         socket; that group is set by `[admin] group` in the daemon's configuration"
    )]
    PeerRefused { message: String },

    /// The daemon answered with an [`mcpproxyd_api::ErrorBody`]; its message says it all
    /// (for `invalid_config`: file:line, and that the running configuration is unchanged).
    #[error("{message}")]
    Daemon {
        status: u16,
        code: String,
        message: String,
    },

    /// The daemon's answer is not what the API promises.
    #[error("{0}")]
    BadAnswer(String),

    /// A local input is missing or unusable (the file `import-aliyun` reads).
    #[error("{0}")]
    Input(String),

    /// Our own I/O failed (writing to stdout, starting the runtime).
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

impl CtlError {
    pub fn io(what: &'static str, source: io::Error) -> CtlError {
        CtlError::Io { what, source }
    }

    /// Writing our output failed.
    pub fn output(source: io::Error) -> CtlError {
        CtlError::io("cannot write the output", source)
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::Connect { source, .. } => ConnectFailure::of(source.kind()).exit_code(),
            CtlError::Timeout { .. } | CtlError::Transport { .. } => exit::UNAVAILABLE,
            CtlError::PeerRefused { .. } => exit::NO_PERMISSION,
            CtlError::Daemon { .. } | CtlError::BadAnswer(_) => exit::DAEMON_ERROR,
            CtlError::Io { .. } => exit::IO_ERROR,
            CtlError::Input(_) => exit::NO_INPUT,
        }
    }

    /// A reader that went away (`mcpproxyctl metrics | head`) is no error worth a message.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CtlError::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
    }
}

fn connect_message(socket: &SocketPath, source: &io::Error) -> String {
    match ConnectFailure::of(source.kind()) {
        ConnectFailure::NoSocket => format!(
            "mcpproxyd is not running, or not on this socket: no socket at {socket}\n{START_HINT}"
        ),
        ConnectFailure::NotListening => format!(
            "mcpproxyd is not running: nothing listens on {socket}; \
             a stale socket file, or not a socket at all\n{START_HINT}"
        ),
        ConnectFailure::NoPermission => format!(
            "permission denied connecting to {socket}: the socket's file permissions keep you out\n\
             ask to be added to mcpproxyd's admin group, or use sudo"
        ),
        ConnectFailure::Other => {
            format!("cannot connect to mcpproxyd on {socket}: {source}\n{START_HINT}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::SocketSource;

    fn socket() -> SocketPath {
        SocketPath {
            path: "/run/mcpproxyd/admin.sock".into(),
            source: SocketSource::Default,
        }
    }

    fn connect(kind: io::ErrorKind) -> CtlError {
        CtlError::Connect {
            socket: socket(),
            source: kind.into(),
        }
    }

    #[test]
    fn a_missing_socket_says_how_to_start_the_daemon() {
        let e = connect(io::ErrorKind::NotFound);
        assert_eq!(e.exit_code(), exit::UNAVAILABLE);
        let text = e.to_string();
        assert!(text.contains("/run/mcpproxyd/admin.sock"), "{text}");
        assert!(text.contains("systemctl start mcpproxyd"), "{text}");
        assert!(text.contains("MCPPROXYD_SOCKET"), "{text}");
    }

    #[test]
    fn permission_errors_exit_77_and_say_why() {
        let e = connect(io::ErrorKind::PermissionDenied);
        assert_eq!(e.exit_code(), exit::NO_PERMISSION);
        assert!(e.to_string().contains("admin group"));
        let e = CtlError::PeerRefused {
            message: "uid 1001 is not allowed".into(),
        };
        assert_eq!(e.exit_code(), exit::NO_PERMISSION);
        assert!(e.to_string().contains("[admin] group"));
    }

    #[test]
    fn daemon_errors_print_the_daemon_s_message() {
        let e = CtlError::Daemon {
            status: 422,
            code: "invalid_config".into(),
            message: "/etc/mcpproxyd/mcpproxyd.toml:3: unknown key `bogus`".into(),
        };
        assert_eq!(e.exit_code(), exit::DAEMON_ERROR);
        assert_eq!(
            e.to_string(),
            "/etc/mcpproxyd/mcpproxyd.toml:3: unknown key `bogus`"
        );
    }

    #[test]
    fn a_broken_pipe_is_quiet() {
        let e = CtlError::output(io::ErrorKind::BrokenPipe.into());
        assert!(e.is_broken_pipe());
        assert_eq!(e.exit_code(), exit::IO_ERROR);
    }
}
