//! Where the admin socket lives, and binding it safely: mode 0660 from the start, a stale file
//! replaced only when nothing answers on it, a live one refused (two daemons must not fight).

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{umask, Mode};
use tokio::net::UnixListener;

#[derive(Debug, thiserror::Error)]
pub enum AdminSocketError {
    #[error("another mcpproxyd is already serving the admin socket {0}")]
    InUse(PathBuf),
    #[error("{0} exists and is not a socket; remove it or set [admin] socket")]
    NotASocket(PathBuf),
    #[error("cannot create the admin socket {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "cannot create the admin socket {path}: {source}; as a non-root user, run in a login \
         session (it sets XDG_RUNTIME_DIR) or set [admin] socket = \"PATH\" in the config"
    )]
    NoPermission { path: PathBuf, source: io::Error },
}

/// `$RUNTIME_DIRECTORY/admin.sock` (systemd), else `$XDG_RUNTIME_DIR/mcpproxyd/admin.sock` for a
/// non-root user, else `/run/mcpproxyd/admin.sock`.
pub fn default_socket_path() -> PathBuf {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(dir) = env("RUNTIME_DIRECTORY") {
        // systemd may pass several, separated by ':'; the first is ours.
        let dir = dir
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or("")
            .to_string();
        if !dir.is_empty() {
            return Path::new(&dir).join("admin.sock");
        }
    }
    if !nix::unistd::geteuid().is_root() {
        if let Some(dir) = env("XDG_RUNTIME_DIR") {
            return Path::new(&dir).join("mcpproxyd").join("admin.sock");
        }
    }
    PathBuf::from("/run/mcpproxyd/admin.sock")
}

/// Binds the admin socket at `path`.
pub async fn bind(path: &Path) -> Result<UnixListener, AdminSocketError> {
    bind_mode(path, 0o660).await
}

/// Binds a Unix socket at `path` with permission bits `mode` from the start (the proxy's
/// Unix listeners use it with `[listen] unix_mode`).
pub async fn bind_mode(path: &Path, mode: u32) -> Result<UnixListener, AdminSocketError> {
    let io_err = |source: io::Error| match source.kind() {
        io::ErrorKind::PermissionDenied => AdminSocketError::NoPermission {
            path: path.to_path_buf(),
            source,
        },
        _ => AdminSocketError::Io {
            path: path.to_path_buf(),
            source,
        },
    };
    if let Some(parent) = path.parent() {
        if !parent.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(io_err)?;
        }
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            match tokio::net::UnixStream::connect(path).await {
                Ok(_) => return Err(AdminSocketError::InUse(path.to_path_buf())),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    tracing::info!(socket = %path.display(), "removing a stale admin socket");
                    std::fs::remove_file(path).map_err(io_err)?;
                }
                Err(e) => return Err(io_err(e)),
            }
        }
        Ok(_) => return Err(AdminSocketError::NotASocket(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }
    // The umask is process-wide; this runs at start-up before any other file is created, and
    // puts the old mask back at once, so the socket never exists with looser permissions.
    let old = umask(Mode::from_bits_truncate(!mode & 0o777));
    let result = UnixListener::bind(path);
    umask(old);
    result.map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn binds_0660_replaces_stale_refuses_live() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("admin.sock");
        let live = bind(&path).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        assert!(matches!(bind(&path).await, Err(AdminSocketError::InUse(_))));
        drop(live); // the file stays: now it is stale
        assert!(path.exists());
        let _again = bind(&path).await.unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, "x").unwrap();
        assert!(matches!(
            bind(&file).await,
            Err(AdminSocketError::NotASocket(_))
        ));
    }
}
