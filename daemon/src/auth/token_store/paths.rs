//! The state directory, private directories in it, file names for profiles, and atomic writes.

use std::ffi::OsString;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::error::StoreError;

/// The system service's state directory when `$STATE_DIRECTORY` is not set.
pub const SYSTEM_STATE_DIR: &str = "/var/lib/mcpproxyd";

/// `$STATE_DIRECTORY` (the first of its `:`-separated entries), else `/var/lib/mcpproxyd` for
/// root, else `$XDG_STATE_HOME/mcpproxyd`, else `~/.local/state/mcpproxyd`.
pub fn default_state_dir() -> PathBuf {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::geteuid())
                .ok()
                .flatten()
                .map(|u| u.dir)
        });
    state_dir_from(
        std::env::var_os("STATE_DIRECTORY"),
        nix::unistd::geteuid().is_root(),
        std::env::var_os("XDG_STATE_HOME"),
        home,
    )
}

fn state_dir_from(
    state_directory: Option<OsString>,
    is_root: bool,
    xdg_state_home: Option<OsString>,
    home: Option<PathBuf>,
) -> PathBuf {
    if let Some(first) = state_directory
        .as_ref()
        .and_then(|s| s.to_str())
        .and_then(|s| s.split(':').next())
        .filter(|s| !s.is_empty())
    {
        return PathBuf::from(first);
    }
    if is_root {
        return PathBuf::from(SYSTEM_STATE_DIR);
    }
    // The XDG spec says a relative value is invalid and is to be ignored.
    if let Some(xdg) = xdg_state_home
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        return xdg.join("mcpproxyd");
    }
    match home {
        Some(home) => home.join(".local/state/mcpproxyd"),
        None => PathBuf::from(SYSTEM_STATE_DIR),
    }
}

/// A file-name stem for `profile`: `[A-Za-z0-9_-]` as is, every other byte as `%XX`, so two
/// profiles never share a file.
pub(crate) fn file_stem(profile: &str) -> Result<String, StoreError> {
    let invalid = |why| StoreError::InvalidProfile(profile.to_string(), why);
    if profile.is_empty() {
        return Err(invalid("it is empty"));
    }
    let mut stem = String::with_capacity(profile.len());
    for b in profile.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            stem.push(char::from(b));
        } else {
            stem.push_str(&format!("%{b:02X}"));
        }
    }
    // File names are at most 255 bytes; leave room for suffixes and temporary names.
    if stem.len() > 200 {
        return Err(invalid("it is too long"));
    }
    Ok(stem)
}

/// Creates `dir` (mode 0700) if missing. An existing one that others can access is tightened
/// to 0700 with a warning when it is ours, and refused when it is not.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<(), StoreError> {
    let io_err = |action, source| StoreError::Io {
        action,
        path: dir.to_path_buf(),
        source,
    };
    if !dir.exists() {
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| io_err("create the directory above", e))?;
        }
        match DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("create the directory", e)),
        }
    }
    let meta = fs::metadata(dir).map_err(|e| io_err("inspect the directory", e))?;
    if !meta.is_dir() {
        let e = io::Error::new(io::ErrorKind::NotADirectory, "not a directory");
        return Err(io_err("use", e));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    if meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(StoreError::InsecureDir {
            path: dir.to_path_buf(),
            mode,
            owner: meta.uid(),
        });
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| io_err("restrict the permissions of", e))?;
    tracing::warn!(
        dir = %dir.display(),
        mode = format!("{mode:03o}"),
        "token store: the directory was accessible by other users; set it to mode 0700 (under \
         systemd: StateDirectoryMode=0700)"
    );
    Ok(())
}

/// Replaces `target` with `data` so that a crash at any point leaves the old or the new
/// content: a new 0600 temporary file in the same directory, written and synced, renamed over
/// the target, then the directory synced so the rename itself is durable.
pub(crate) fn write_atomic(target: &Path, data: &[u8], unique: &str) -> Result<(), StoreError> {
    let dir = target.parent().unwrap_or(Path::new("."));
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.{unique}.tmp"));
    let io_err = |action, path: &Path, source| StoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io_err("create", &tmp, e))
        .and_then(|mut f| {
            f.write_all(data).map_err(|e| io_err("write", &tmp, e))?;
            f.sync_all().map_err(|e| io_err("sync", &tmp, e))
        })
        .and_then(|()| fs::rename(&tmp, target).map_err(|e| io_err("replace", target, e)));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

/// Makes a rename or removal in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StoreError::Io {
            action: "sync the directory",
            path: dir.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> Option<OsString> {
        Some(OsString::from(s))
    }

    #[test]
    fn state_dir_precedence() {
        let home = Some(PathBuf::from("/home/u"));
        let cases = [
            (os("/var/lib/a:/var/lib/b"), true, os("/x"), "/var/lib/a"),
            (os("/s"), false, None, "/s"),
            (os(""), true, None, SYSTEM_STATE_DIR),
            (None, true, os("/x"), SYSTEM_STATE_DIR),
            (None, false, os("/x"), "/x/mcpproxyd"),
            (
                None,
                false,
                os("relative"),
                "/home/u/.local/state/mcpproxyd",
            ),
            (None, false, None, "/home/u/.local/state/mcpproxyd"),
        ];
        for (state, root, xdg, want) in cases {
            let got = state_dir_from(state.clone(), root, xdg.clone(), home.clone());
            assert_eq!(got, PathBuf::from(want), "{state:?} {root} {xdg:?}");
        }
    }

    #[test]
    fn file_stems_are_safe_and_distinct() {
        assert_eq!(file_stem("alibaba_1-x").unwrap(), "alibaba_1-x");
        assert_eq!(file_stem("a.b").unwrap(), "a%2Eb");
        assert_eq!(file_stem("../x").unwrap(), "%2E%2E%2Fx");
        assert_eq!(file_stem("a%2Eb").unwrap(), "a%252Eb");
        assert_eq!(file_stem("é").unwrap(), "%C3%A9");
        assert!(file_stem("").is_err());
        assert!(file_stem(&"x".repeat(201)).is_err());
    }

    #[test]
    fn private_dir_is_created_0700_and_tightened() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        ensure_private_dir(&dir).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(&dir).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("t");
        write_atomic(&target, b"one", "u1").unwrap();
        write_atomic(&target, b"two", "u2").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"two");
        assert_eq!(fs::metadata(&target).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
    }
}
