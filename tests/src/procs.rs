//! Which processes are still alive, read from `/proc`: for tests that check that a daemon
//! they started (directly or under `script`, `systemd-socket-activate` ...) is gone.

use std::path::Path;

use crate::wait;

/// Pids of live processes (zombies are dead: not counted) whose command line has an
/// argument equal to `arg`, e.g. a test's unique config path.
pub fn with_arg(arg: &Path) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let want = arg.as_os_str().as_encoded_bytes();
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| alive(pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|&b| b == 0).any(|a| a == want))
        })
        .collect()
}

/// Whether `pid` is a process that has not exited (a zombie has; it only awaits its reaper).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may itself hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Waits (bounded) until no live process has `arg` on its command line.
pub async fn wait_none_with_arg(arg: &Path) -> anyhow::Result<()> {
    wait::until(
        &format!("every process with {} exits", arg.display()),
        || async { with_arg(arg).is_empty() },
    )
    .await
}

/// Waits (bounded) until `pid` has exited.
pub async fn wait_exited(pid: i32) -> anyhow::Result<()> {
    wait::until(&format!("process {pid} exits"), || async { !alive(pid) }).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_child_is_found_by_its_argument_until_it_is_killed() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut child = tokio::process::Command::new("tail")
            .arg("-f")
            .arg(file.path())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap() as i32;
        assert!(alive(pid));
        // Until the child has exec'd `tail`, its command line is still this test's.
        wait::until("the child's command line names the file", || async {
            with_arg(file.path()) == [pid]
        })
        .await
        .unwrap();
        child.kill().await.unwrap();
        wait_none_with_arg(file.path()).await.unwrap();
        assert!(!alive(pid));
        assert!(!alive(i32::MAX));
    }
}
