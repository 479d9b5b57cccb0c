//! The per-profile cross-process lock: `flock(LOCK_EX)` on `<state dir>/<profile>.lock`.
//!
//! Two daemons sharing a store take it around a refresh, so one never sends a refresh token
//! that the other has just rotated away. flock locks belong to an open file description, so
//! two opens in one process exclude each other as two processes do. Lock files are never
//! removed: removing one while another process waits on it would let two holders in.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::error::StoreError;
use super::paths::file_stem;

/// An exclusive lock on one profile's tokens, held until dropped.
pub struct StoreLock {
    _file: Flock<File>,
    path: PathBuf,
}

impl fmt::Debug for StoreLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreLock")
            .field("path", &self.path)
            .finish()
    }
}

/// The lock files of a state directory.
#[derive(Debug, Clone)]
pub(crate) struct Locks {
    dir: PathBuf,
}

impl Locks {
    /// `dir` must exist (the stores create it).
    pub(crate) fn new(dir: &Path) -> Locks {
        Locks {
            dir: dir.to_path_buf(),
        }
    }

    /// Waits until the lock of `profile` is free, then takes it.
    pub(crate) fn lock(&self, profile: &str) -> Result<StoreLock, StoreError> {
        let (mut file, path) = self.open(profile)?;
        loop {
            match Flock::lock(file, FlockArg::LockExclusive) {
                Ok(locked) => {
                    return Ok(StoreLock {
                        _file: locked,
                        path,
                    })
                }
                // A signal interrupted the wait: wait again.
                Err((f, Errno::EINTR)) => file = f,
                Err((_, errno)) => return Err(lock_error(path, errno)),
            }
        }
    }

    /// Takes the lock of `profile` if it is free; `None` if someone holds it.
    pub(crate) fn try_lock(&self, profile: &str) -> Result<Option<StoreLock>, StoreError> {
        let (file, path) = self.open(profile)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => Ok(Some(StoreLock {
                _file: locked,
                path,
            })),
            Err((_, Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, errno)) => Err(lock_error(path, errno)),
        }
    }

    fn open(&self, profile: &str) -> Result<(File, PathBuf), StoreError> {
        let path = self.dir.join(format!("{}.lock", file_stem(profile)?));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|source| StoreError::Io {
                action: "open the lock file",
                path: path.clone(),
                source,
            })?;
        Ok((file, path))
    }
}

fn lock_error(path: PathBuf, errno: Errno) -> StoreError {
    StoreError::Io {
        action: "lock",
        path,
        source: errno.into(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_held_lock_excludes_a_second_locker_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let locks = Locks::new(dir.path());
        let held = locks.lock("work").unwrap();
        assert!(locks.try_lock("work").unwrap().is_none());
        // Another profile has its own lock.
        assert!(locks.try_lock("other").unwrap().is_some());
        drop(held);
        assert!(locks.try_lock("work").unwrap().is_some());
    }

    #[test]
    fn a_blocking_locker_gets_the_lock_when_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let locks = Locks::new(dir.path());
        let held = locks.lock("work").unwrap();
        let (tx, rx) = mpsc::channel();
        let waiter = {
            let locks = locks.clone();
            std::thread::spawn(move || {
                let lock = locks.lock("work").unwrap();
                tx.send(()).unwrap();
                drop(lock);
            })
        };
        // While the lock is held the waiter cannot have it (a bounded check, not a sync point).
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        drop(held);
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        waiter.join().unwrap();
    }
}
