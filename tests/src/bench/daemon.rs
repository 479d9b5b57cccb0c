//! The daemon under test: finding the binary, starting it with a config, stopping it.

use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::START_TIMEOUT;

/// `--daemon`, else `mcpproxyd` in the release, then the debug directory of the target
/// directory this binary was built into.
pub(super) fn find_daemon(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        ensure!(path.exists(), "--daemon {}: no such file", path.display());
        return Ok(path.to_path_buf());
    }
    let exe = std::env::current_exe().context("finding this executable")?;
    let mut dir = exe.parent().context("executable directory")?.to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let target = dir.parent().context("target directory")?;
    let candidates = ["release", "debug"].map(|p| target.join(p).join("mcpproxyd"));
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .with_context(|| {
            format!(
                "mcpproxyd not found ({} nor {}): run `cargo build --release -p mcpproxyd` first",
                candidates[0].display(),
                candidates[1].display()
            )
        })
}

pub(super) async fn daemon_version(bin: &Path) -> String {
    let out = Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .output();
    match tokio::time::timeout(Duration::from_secs(10), out).await {
        Ok(Ok(out)) => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        _ => "unknown".to_owned(),
    }
}

/// The daemon's log lines at `WARN` or `ERROR` (upstream failures and the like): how many,
/// and the first few of them.
#[derive(Debug, Default, Clone)]
pub(super) struct Problems {
    pub(super) count: u64,
    pub(super) first: Vec<String>,
}

impl Problems {
    const KEEP: usize = 8;

    /// Counts `line` if it is a warning or an error (the fmt layer's level column).
    fn see(&mut self, line: &str) {
        if !(line.contains(" WARN ") || line.contains(" ERROR ")) {
            return;
        }
        self.count += 1;
        if self.first.len() < Self::KEEP {
            self.first.push(line.to_owned());
        }
    }
}

/// The running daemon; killed when dropped.
pub(super) struct Daemon {
    pub(super) child: Child,
    pub(super) addr: SocketAddr,
    /// Its stderr, a file of its own (as nginx's `access_log` is): read only when asked, between
    /// measurements, so the run's log costs the shared cores what nginx's costs them, the
    /// daemon's `write`s and no reader.
    log: LogFile,
}

/// The daemon's stderr file and what has been read of it so far.
struct LogFile {
    path: PathBuf,
    read: Mutex<LogRead>,
}

#[derive(Default)]
struct LogRead {
    /// Bytes of the file read so far.
    offset: u64,
    /// The start of a line whose end has not been written yet.
    partial: Vec<u8>,
    /// The last lines.
    tail: VecDeque<String>,
    problems: Problems,
}

impl LogFile {
    const TAIL: usize = 40;

    /// Reads what the daemon wrote since the last call: counts its problems, keeps its last
    /// lines.
    fn catch_up(&self) -> std::sync::MutexGuard<'_, LogRead> {
        let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return read;
        };
        if file.seek(SeekFrom::Start(read.offset)).is_err() {
            return read;
        }
        let mut chunk = vec![0u8; 1 << 20];
        loop {
            let n = match file.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            read.offset += n as u64;
            let mut data = std::mem::take(&mut read.partial);
            data.extend_from_slice(&chunk[..n]);
            let whole = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let lines: Vec<&[u8]> = data[..whole]
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .collect();
            for line in &lines {
                read.problems.see(&String::from_utf8_lossy(line));
            }
            for line in &lines[lines.len().saturating_sub(Self::TAIL)..] {
                if read.tail.len() == Self::TAIL {
                    read.tail.pop_front();
                }
                read.tail
                    .push_back(String::from_utf8_lossy(line).into_owned());
            }
            read.partial = data[whole..].to_vec();
        }
        read
    }
}

impl Daemon {
    /// `BIN --config CONFIG --port 0`, its runtime and state directories under `dir`; waits
    /// for the banner's `Listen:` line.
    pub(super) async fn start(bin: &Path, config: &Path, dir: &Path) -> anyhow::Result<Daemon> {
        let runtime_dir = dir.join("run");
        let state_dir = dir.join("state");
        for d in [&runtime_dir, &state_dir] {
            std::fs::create_dir_all(d)?;
        }
        let log_path = dir.join("mcpproxyd.log");
        let log_file = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let mut child = Command::new(bin)
            .arg("--config")
            .arg(config)
            .arg("--port")
            .arg("0")
            .env("RUNTIME_DIRECTORY", &runtime_dir)
            .env("STATE_DIRECTORY", &state_dir)
            .env_remove("RUST_LOG")
            .env_remove("JOURNAL_STREAM")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("INVOCATION_ID")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run {}", bin.display()))?;
        let stdout = child.stdout.take().context("daemon stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let read_banner = async {
            let mut addr = None;
            while let Some(line) = lines.next_line().await? {
                if let Some(a) = line.strip_prefix("Listen: ") {
                    addr.get_or_insert(a.trim().parse::<SocketAddr>()?);
                }
                if line.is_empty() {
                    break;
                }
            }
            anyhow::Ok(addr)
        };
        let outcome = tokio::time::timeout(START_TIMEOUT, read_banner).await;
        let mut daemon = Daemon {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log: LogFile {
                path: log_path,
                read: Mutex::default(),
            },
        };
        let why = match outcome {
            Ok(Ok(Some(addr))) => {
                daemon.addr = addr;
                // Keep draining stdout so the daemon never blocks on a full pipe.
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                return Ok(daemon);
            }
            Ok(Ok(None)) => "it printed no `Listen:` line".to_owned(),
            Ok(Err(e)) => format!("reading its banner failed: {e}"),
            Err(_) => format!("no banner within {START_TIMEOUT:?}"),
        };
        let status = match tokio::time::timeout(Duration::from_secs(2), daemon.child.wait()).await {
            Ok(Ok(status)) => format!("it exited ({status})"),
            _ => {
                daemon.stop().await;
                "it was stopped".to_owned()
            }
        };
        bail!(
            "the daemon {} did not start: {why}; {status}{}",
            bin.display(),
            daemon.stderr_hint()
        )
    }

    /// The stderr tail, formatted for an error message (empty when there is none).
    pub(super) fn stderr_hint(&self) -> String {
        let read = self.log.catch_up();
        if read.tail.is_empty() {
            String::new()
        } else {
            let tail: Vec<&str> = read.tail.iter().map(String::as_str).collect();
            format!("\n--- daemon stderr (last lines) ---\n{}", tail.join("\n"))
        }
    }

    /// Its warnings and errors so far.
    pub(super) fn problems(&self) -> Problems {
        self.log.catch_up().problems.clone()
    }

    pub(super) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub(super) async fn stop(&mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn info(i: usize) -> String {
        format!("2026-12-03T09:00:00.000000Z  INFO proxied client=127.0.0.1:1 n={i}\n")
    }

    #[test]
    fn the_log_file_is_read_from_where_it_was_left_a_line_split_over_two_reads_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mcpproxyd.log");
        let mut file = std::fs::File::create(&path).unwrap();
        let log = LogFile {
            path: path.clone(),
            read: Mutex::default(),
        };
        assert_eq!(log.catch_up().problems.count, 0);
        assert!(log.catch_up().tail.is_empty());

        for i in 0..100 {
            file.write_all(info(i).as_bytes()).unwrap();
        }
        // A warning whose end is not written yet: not counted until it is.
        file.write_all(b"2026-12-03T09:00:01.000000Z  WARN upstream ")
            .unwrap();
        file.flush().unwrap();
        {
            let read = log.catch_up();
            assert_eq!(read.problems.count, 0);
            assert_eq!(read.tail.len(), LogFile::TAIL);
            assert_eq!(read.tail.back().unwrap(), info(99).trim_end());
            assert_eq!(
                read.tail.front().unwrap(),
                info(100 - LogFile::TAIL).trim_end()
            );
        }
        file.write_all(b"request failed\n").unwrap();
        file.write_all(b"2026-12-03T09:00:02.000000Z ERROR admin: gone\n")
            .unwrap();
        file.write_all(info(100).as_bytes()).unwrap();
        file.flush().unwrap();
        let problems = log.catch_up().problems.clone();
        assert_eq!(problems.count, 2);
        assert_eq!(
            problems.first,
            [
                "2026-12-03T09:00:01.000000Z  WARN upstream request failed",
                "2026-12-03T09:00:02.000000Z ERROR admin: gone",
            ]
        );
        // Read again with nothing new: the same, nothing counted twice.
        assert_eq!(log.catch_up().problems.count, 2);
        assert_eq!(log.catch_up().tail.back().unwrap(), info(100).trim_end());
    }
}
