//! Which admin socket to talk to: `--socket`, else `MCPPROXYD_SOCKET`, else
//! `$XDG_RUNTIME_DIR/mcpproxyd/admin.sock` if it exists, else `/run/mcpproxyd/admin.sock`.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

/// The system daemon's socket (systemd's `RuntimeDirectory=mcpproxyd`).
pub const SYSTEM_SOCKET: &str = "/run/mcpproxyd/admin.sock";

/// A user's daemon's socket, under `$XDG_RUNTIME_DIR`.
pub const USER_SOCKET: &str = "mcpproxyd/admin.sock";

/// Where the path came from, so that messages can say why we looked there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketSource {
    Flag,
    Env,
    XdgRuntimeDir,
    Default,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketPath {
    pub path: PathBuf,
    pub source: SocketSource,
}

/// Picks the socket. Pure: the environment's values come in as arguments, and `exists` answers
/// for the XDG candidate. Empty values count as unset, and a relative `XDG_RUNTIME_DIR` is
/// ignored (the XDG base directory specification calls it invalid).
pub fn resolve(
    flag: Option<&Path>,
    env_socket: Option<&OsStr>,
    xdg_runtime_dir: Option<&OsStr>,
    exists: impl Fn(&Path) -> bool,
) -> SocketPath {
    if let Some(path) = flag.filter(|p| !p.as_os_str().is_empty()) {
        return SocketPath {
            path: path.to_path_buf(),
            source: SocketSource::Flag,
        };
    }
    if let Some(path) = env_socket.filter(|v| !v.is_empty()) {
        return SocketPath {
            path: PathBuf::from(path),
            source: SocketSource::Env,
        };
    }
    if let Some(dir) = xdg_runtime_dir.map(Path::new).filter(|d| d.is_absolute()) {
        let path = dir.join(USER_SOCKET);
        if exists(&path) {
            return SocketPath {
                path,
                source: SocketSource::XdgRuntimeDir,
            };
        }
    }
    SocketPath {
        path: PathBuf::from(SYSTEM_SOCKET),
        source: SocketSource::Default,
    }
}

impl fmt::Display for SocketPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.source {
            SocketSource::Flag => "from --socket",
            SocketSource::Env => "from MCPPROXYD_SOCKET",
            SocketSource::XdgRuntimeDir => "the user daemon's socket",
            SocketSource::Default => "the system daemon's default",
        };
        write!(f, "{} ({why})", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> Option<&OsStr> {
        Some(OsStr::new(s))
    }

    #[test]
    fn the_flag_wins() {
        let s = resolve(
            Some(Path::new("/f.sock")),
            os("/e.sock"),
            os("/run/user/1000"),
            |_| true,
        );
        assert_eq!(s.path, Path::new("/f.sock"));
        assert_eq!(s.source, SocketSource::Flag);
    }

    #[test]
    fn then_the_environment_variable() {
        let s = resolve(None, os("/e.sock"), os("/run/user/1000"), |_| true);
        assert_eq!(s.path, Path::new("/e.sock"));
        assert_eq!(s.source, SocketSource::Env);
    }

    #[test]
    fn then_the_user_socket_if_it_exists() {
        let s = resolve(None, None, os("/run/user/1000"), |p| {
            p == Path::new("/run/user/1000/mcpproxyd/admin.sock")
        });
        assert_eq!(s.path, Path::new("/run/user/1000/mcpproxyd/admin.sock"));
        assert_eq!(s.source, SocketSource::XdgRuntimeDir);
    }

    #[test]
    fn else_the_system_socket() {
        let s = resolve(None, None, os("/run/user/1000"), |_| false);
        assert_eq!(s.path, Path::new(SYSTEM_SOCKET));
        assert_eq!(s.source, SocketSource::Default);
        let s = resolve(None, None, None, |_| true);
        assert_eq!(s.source, SocketSource::Default);
    }

    #[test]
    fn empty_and_relative_values_are_ignored() {
        let s = resolve(None, os(""), os("relative/dir"), |_| true);
        assert_eq!(s.source, SocketSource::Default);
        let s = resolve(None, os(""), os("/run/user/7"), |_| true);
        assert_eq!(s.source, SocketSource::XdgRuntimeDir);
    }

    #[test]
    fn display_says_where_the_path_came_from() {
        let s = resolve(None, os("/e.sock"), None, |_| false);
        assert_eq!(s.to_string(), "/e.sock (from MCPPROXYD_SOCKET)");
    }
}
