//! The daemon under test: finding the binary, starting it with a config, stopping it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
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
    /// The last lines the daemon wrote to stderr.
    pub(super) stderr_tail: Arc<Mutex<Vec<String>>>,
    /// Its warnings and errors so far.
    pub(super) problems: Arc<Mutex<Problems>>,
}

impl Daemon {
    const TAIL: usize = 40;

    /// `BIN --config CONFIG --port 0`, its runtime and state directories under `dir`; waits
    /// for the banner's `Listen:` line.
    pub(super) async fn start(bin: &Path, config: &Path, dir: &Path) -> anyhow::Result<Daemon> {
        let runtime_dir = dir.join("run");
        let state_dir = dir.join("state");
        for d in [&runtime_dir, &state_dir] {
            std::fs::create_dir_all(d)?;
        }
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
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run {}", bin.display()))?;
        let stderr_tail = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().context("daemon stderr")?;
        let tail = stderr_tail.clone();
        let problems = Arc::new(Mutex::new(Problems::default()));
        let seen = problems.clone();
        let stderr_reader = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                seen.lock().unwrap_or_else(|e| e.into_inner()).see(&line);
                let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
                if t.len() == Self::TAIL {
                    t.remove(0);
                }
                t.push(line);
            }
        });
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
            stderr_tail,
            problems,
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
        // The reader ends when the daemon's stderr closes, i.e. once it has taken the last lines.
        let _ = tokio::time::timeout(Duration::from_secs(2), stderr_reader).await;
        bail!(
            "the daemon {} did not start: {why}; {status}{}",
            bin.display(),
            daemon.stderr_hint()
        )
    }

    /// The stderr tail, formatted for an error message (empty when there is none).
    pub(super) fn stderr_hint(&self) -> String {
        let tail = self.stderr_tail.lock().unwrap_or_else(|e| e.into_inner());
        if tail.is_empty() {
            String::new()
        } else {
            format!("\n--- daemon stderr (last lines) ---\n{}", tail.join("\n"))
        }
    }

    /// Its warnings and errors so far.
    pub(super) fn problems(&self) -> Problems {
        self.problems
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(super) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub(super) async fn stop(&mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}
