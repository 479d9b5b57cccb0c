//! Exit codes (`sysexits.h` where one fits), named once.

use std::io;

/// Done.
pub const OK: u8 = 0;
/// The daemon answered with an error (its message was printed).
pub const DAEMON_ERROR: u8 = 1;
/// `status --check`: an auth profile needs login or was revoked.
pub const CHECK_FAILED: u8 = 1;
/// `login`: the login failed or expired, or no code was entered.
pub const LOGIN_FAILED: u8 = 1;
/// `acl check`: the path would be denied (0 means allowed), so scripts can test the answer.
pub const DENIED: u8 = 1;
/// `revoke`: the token is wiped locally, but the authorization server did not revoke it.
pub const REVOKE_INCOMPLETE: u8 = 1;
/// `login`: cancelled with Ctrl-C (128 + SIGINT, as a shell reports it); the daemon was told.
pub const INTERRUPTED: u8 = 130;
/// EX_USAGE: the command line is wrong.
pub const USAGE: u8 = 64;
/// EX_UNAVAILABLE: the daemon is not reachable (not running, nothing on the socket, no answer).
pub const UNAVAILABLE: u8 = 69;
/// EX_NOINPUT: the file to import cannot be read.
pub const NO_INPUT: u8 = 66;
/// EX_IOERR: our own I/O failed (writing the output, reading a pasted code).
pub const IO_ERROR: u8 = 74;
/// EX_NOPERM: the socket's permissions or the daemon's peer check refused us.
pub const NO_PERMISSION: u8 = 77;

/// Why connecting to the admin socket failed, as far as an operator cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectFailure {
    /// ENOENT: no socket there; the daemon is not running or uses another path.
    NoSocket,
    /// ECONNREFUSED: a socket file that nobody listens on (a stale one).
    NotListening,
    /// EACCES, EPERM: the file permissions keep us out.
    NoPermission,
    /// Anything else (not a socket, path too long, ...).
    Other,
}

impl ConnectFailure {
    pub fn of(kind: io::ErrorKind) -> ConnectFailure {
        match kind {
            io::ErrorKind::NotFound => ConnectFailure::NoSocket,
            io::ErrorKind::ConnectionRefused => ConnectFailure::NotListening,
            io::ErrorKind::PermissionDenied => ConnectFailure::NoPermission,
            _ => ConnectFailure::Other,
        }
    }

    pub fn exit_code(self) -> u8 {
        match self {
            ConnectFailure::NoSocket | ConnectFailure::NotListening | ConnectFailure::Other => {
                UNAVAILABLE
            }
            ConnectFailure::NoPermission => NO_PERMISSION,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(errno: i32) -> u8 {
        ConnectFailure::of(io::Error::from_raw_os_error(errno).kind()).exit_code()
    }

    #[test]
    fn connect_errors_map_to_exit_codes() {
        // Linux errno values: ENOENT 2, ECONNREFUSED 111, EACCES 13, EPERM 1, ENOTSOCK 88.
        assert_eq!(code_of(2), UNAVAILABLE);
        assert_eq!(code_of(111), UNAVAILABLE);
        assert_eq!(code_of(13), NO_PERMISSION);
        assert_eq!(code_of(1), NO_PERMISSION);
        assert_eq!(code_of(88), UNAVAILABLE);
    }

    #[test]
    fn connect_errors_are_classified() {
        assert_eq!(
            ConnectFailure::of(io::ErrorKind::NotFound),
            ConnectFailure::NoSocket
        );
        assert_eq!(
            ConnectFailure::of(io::ErrorKind::ConnectionRefused),
            ConnectFailure::NotListening
        );
        assert_eq!(
            ConnectFailure::of(io::ErrorKind::PermissionDenied),
            ConnectFailure::NoPermission
        );
        assert_eq!(
            ConnectFailure::of(io::ErrorKind::InvalidInput),
            ConnectFailure::Other
        );
    }
}
