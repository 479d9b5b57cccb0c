//! Runs the real `mcpproxyd` binary for end-to-end tests: a config in a temp dir, `--port 0`,
//! the bound address read from the banner, stderr captured for log assertions.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::Notify;

use crate::upstream::TestUpstream;

/// How long a test waits for the daemon to say something before failing (not a sleep: the
/// wait ends as soon as the line arrives).
pub const WAIT: Duration = Duration::from_secs(20);

/// A binary built by the workspace, found beside the test executable (`target/debug`).
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` before `cargo test`",
        path.display()
    );
    path
}

/// A file with mode 0600.
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    std::fs::write(path, contents)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// A temp dir holding the upstream's CA and token, and a config for a static-token upstream.
pub struct Setup {
    pub dir: tempfile::TempDir,
}

impl Setup {
    pub fn new() -> anyhow::Result<Setup> {
        Ok(Setup {
            dir: tempfile::tempdir()?,
        })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A config (TOML) for one upstream at `/` with a static token, plus `extra` appended
    /// (which may add keys to `[listen]` etc. by repeating no tables: pass whole tables).
    pub fn static_config(&self, upstream: &TestUpstream, extra: &str) -> anyhow::Result<String> {
        write_private(&self.path("token"), &format!("{}\n", upstream.token()))?;
        let ca = match upstream.ca_pem() {
            Some(pem) => {
                std::fs::write(self.path("ca.pem"), pem)?;
                format!("ca_file = {:?}\n", self.path("ca.pem"))
            }
            None => "allow_http = true\n".to_string(),
        };
        Ok(format!(
            "[auth.test]\nkind = \"static\"\ntoken_file = {token:?}\n\n\
             [[upstream]]\nname = \"test\"\nurl = {url:?}\nauth = \"test\"\n{ca}\n{extra}",
            token = self.path("token"),
            url = upstream.base_url(),
        ))
    }

    /// A daemon started on [`static_config`](Self::static_config)`(upstream, extra)`.
    pub async fn static_daemon(
        &self,
        upstream: &TestUpstream,
        extra: &str,
    ) -> anyhow::Result<TestDaemon> {
        let config = self.static_config(upstream, extra)?;
        TestDaemon::start(&self.write_config(&config)?, &[]).await
    }

    /// Writes the config file and returns its path.
    pub fn write_config(&self, text: &str) -> anyhow::Result<PathBuf> {
        let path = self.path("mcpproxyd.toml");
        std::fs::write(&path, text)?;
        Ok(path)
    }
}

/// A running daemon.
pub struct TestDaemon {
    child: Child,
    /// `$RUNTIME_DIRECTORY` of the daemon: its admin socket lives here unless configured.
    pub runtime_dir: tempfile::TempDir,
    pub addr: SocketAddr,
    pub banner: String,
    logs: Arc<(Mutex<String>, Notify)>,
    /// Reads stderr into `logs` until the daemon closes it (at exit).
    log_reader: Option<tokio::task::JoinHandle<()>>,
}

impl TestDaemon {
    /// Starts `mcpproxyd --config CONFIG --port 0 ARGS...` and waits for its banner.
    pub async fn start(config: &Path, args: &[&str]) -> anyhow::Result<TestDaemon> {
        let mut cmd = Command::new(bin_path("mcpproxyd"));
        cmd.arg("--config").arg(config).arg("--port").arg("0");
        cmd.args(args);
        Self::spawn(cmd).await
    }

    /// Starts a prepared command (stdout and stderr are taken over here).
    pub async fn spawn(mut cmd: Command) -> anyhow::Result<TestDaemon> {
        let runtime_dir = tempfile::tempdir()?;
        cmd.env("RUNTIME_DIRECTORY", runtime_dir.path());
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .env("RUST_LOG", "mcpproxyd=debug,info")
            .env_remove("JOURNAL_STREAM")
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("spawn mcpproxyd")?;
        let logs = Arc::new((Mutex::new(String::new()), Notify::new()));
        let stderr = child.stderr.take().context("stderr")?;
        let sink = logs.clone();
        let log_reader = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let (buf, notify) = &*sink;
                let mut b = buf.lock().unwrap();
                b.push_str(&line);
                b.push('\n');
                notify.notify_waiters();
            }
        });
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut banner = String::new();
        let mut addr = None;
        let read_banner = async {
            while let Some(line) = lines.next_line().await? {
                banner.push_str(&line);
                banner.push('\n');
                if let Some(a) = line.strip_prefix("Listen: ") {
                    addr.get_or_insert(a.trim().parse::<SocketAddr>()?);
                }
                if line.is_empty() {
                    break;
                }
            }
            anyhow::Ok(())
        };
        match tokio::time::timeout(WAIT, read_banner).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => bail!("reading the banner: {e}"),
            Err(_) => bail!("no banner within {WAIT:?}"),
        }
        let Some(addr) = addr else {
            let status = child.wait().await?;
            let logs = logs.0.lock().unwrap().clone();
            bail!("mcpproxyd exited ({status}) without a Listen line; stderr:\n{logs}");
        };
        // Keep draining stdout so the daemon never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(TestDaemon {
            child,
            runtime_dir,
            addr,
            banner,
            logs,
            log_reader: Some(log_reader),
        })
    }

    /// The admin socket at its default place for this daemon.
    pub fn admin_socket(&self) -> PathBuf {
        self.runtime_dir.path().join("admin.sock")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A `/raw/slow-sse` stream through the daemon, at its first event (`one`); the upstream
    /// sends the rest on [`TestUpstream::release`] (see [`finish_slow_stream`]).
    pub async fn open_slow_stream(&self) -> anyhow::Result<EventReader> {
        let resp = proxy_client()
            .get(self.url("/raw/slow-sse"))
            .send()
            .await?
            .error_for_status()?;
        let mut events = EventReader::new(resp);
        let first = events.next_event().await?;
        anyhow::ensure!(first.data == "one", "first event {:?}", first.data);
        Ok(events)
    }

    /// Asserts that `GET path` through the daemon answers 200 (it is still serving).
    pub async fn expect_ok(&self, path: &str) {
        let r = proxy_client().get(self.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {path} through the daemon");
    }

    /// Everything the daemon logged so far.
    pub fn logs(&self) -> String {
        self.logs.0.lock().unwrap().clone()
    }

    /// Waits until the log holds `needle` (returns at once if it already does).
    pub async fn wait_for_log(&self, needle: &str) -> anyhow::Result<()> {
        self.wait_for_line(|line| line.contains(needle))
            .await
            .map(drop)
            .with_context(|| format!("waiting for {needle:?}"))
    }

    /// Waits until a log line satisfies `matches` (at once if one does); returns that line.
    pub async fn wait_for_line(&self, matches: impl Fn(&str) -> bool) -> anyhow::Result<String> {
        let (buf, notify) = &*self.logs;
        let wait = async {
            loop {
                // Registered before the check, so a line logged in between is not missed.
                let notified = notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some(line) = buf.lock().unwrap().lines().find(|l| matches(l)) {
                    return line.to_string();
                }
                notified.await;
            }
        };
        tokio::time::timeout(WAIT, wait)
            .await
            .with_context(|| format!("the log line did not appear; logs:\n{}", self.logs()))
    }

    pub fn pid(&self) -> i32 {
        self.child.id().map(|p| p as i32).unwrap_or(0)
    }

    /// Sends a signal (`"HUP"`, `"TERM"`, `"INT"`).
    pub async fn signal(&self, name: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .await?;
        anyhow::ensure!(status.success(), "kill -{name} failed");
        Ok(())
    }

    /// Waits for the process to exit; then [`TestDaemon::logs`] holds all it logged.
    pub async fn wait_exit(&mut self) -> anyhow::Result<ExitStatus> {
        let status = tokio::time::timeout(WAIT, self.child.wait()).await??;
        if let Some(reader) = self.log_reader.take() {
            // Lines still in the pipe when the process ended are read up to its EOF.
            tokio::time::timeout(WAIT, reader)
                .await
                .context("stderr still open after the daemon exited")??;
        }
        Ok(status)
    }
}

/// Runs `mcpproxyd` with `args` to completion: (exit code, stdout, stderr).
pub async fn run_once(args: &[&str]) -> anyhow::Result<(i32, String, String)> {
    let out = Command::new(bin_path("mcpproxyd"))
        .args(args)
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .output()
        .await?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Sends raw bytes on a fresh connection and reads until the server closes it. For requests
/// ordinary clients refuse to send (dot segments, absolute-form targets, odd Host values).
pub async fn raw_http(addr: SocketAddr, request: &str) -> anyhow::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(request.as_bytes()).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf)).await??;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no status line in {text:?}"))?;
    Ok((status, text))
}

/// `GET path` with the given Host, `Connection: close`, via [`raw_http`].
pub async fn raw_get(addr: SocketAddr, path: &str, host: &str) -> anyhow::Result<(u16, String)> {
    raw_http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
    .await
}

/// A plain HTTP client for talking to the proxy (no proxy env, no redirects).
pub fn proxy_client() -> reqwest::Client {
    crate::tls::reqwest_client(crate::tls::client_config_with_roots(
        rustls::RootCertStore::empty(),
    ))
}

/// Lets the upstream finish a stream from [`TestDaemon::open_slow_stream`]: its second event
/// (`two`) comes through, then its clean end.
pub async fn finish_slow_stream(up: &TestUpstream, events: &mut EventReader) -> anyhow::Result<()> {
    up.release();
    let second = events.next_event().await?;
    anyhow::ensure!(second.data == "two", "second event {:?}", second.data);
    up.release();
    events.end().await
}

/// Reads server-sent events from a response, one at a time, as they arrive.
pub struct EventReader {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    parser: crate::sse::SseParser,
    ready: std::collections::VecDeque<crate::sse::SseEvent>,
}

impl EventReader {
    pub fn new(resp: reqwest::Response) -> EventReader {
        use futures_util::StreamExt;
        EventReader {
            body: resp.bytes_stream().boxed(),
            parser: crate::sse::SseParser::new(),
            ready: Default::default(),
        }
    }

    /// The next event; fails if the stream ends or nothing comes within [`WAIT`].
    pub async fn next_event(&mut self) -> anyhow::Result<crate::sse::SseEvent> {
        use futures_util::StreamExt;
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Ok(e);
            }
            let chunk = tokio::time::timeout(WAIT, self.body.next())
                .await
                .context("no event in time")?
                .context("the stream ended")??;
            self.ready.extend(self.parser.push(&chunk));
        }
    }

    /// Waits for the stream to end; `Err` if it ended with an error.
    pub async fn end(&mut self) -> anyhow::Result<()> {
        use futures_util::StreamExt;
        loop {
            match tokio::time::timeout(WAIT, self.body.next()).await? {
                None => return Ok(()),
                Some(Err(e)) => bail!("stream error: {e}"),
                Some(Ok(chunk)) => self.ready.extend(self.parser.push(&chunk)),
            }
        }
    }
}

/// A static catalog of two servers, `ecs` (ECS01, MCP and SSE) and `ram` (RAM01, MCP), to
/// append right after the upstream of [`Setup::static_config`].
pub const TWO_SERVERS: &str = "[[upstream.servers]]\nname = \"ecs\"\nid = \"ECS01\"\n\
    mcp = \"/accounts/1/custom/ecs/id/ECS01/mcp\"\nsse = \"/accounts/1/custom/ecs/id/ECS01/sse\"\n\
    [[upstream.servers]]\nname = \"ram\"\nid = \"RAM01\"\nmcp = \"/accounts/1/custom/ram/id/RAM01/mcp\"\n";

/// A test upstream and a daemon in front of it with [`TWO_SERVERS`] and `extra` (whole tables).
pub async fn start_with_two_servers(
    extra: &str,
) -> anyhow::Result<(crate::upstream::TestUpstream, Setup, TestDaemon)> {
    let up = crate::upstream::start(crate::upstream::UpstreamOptions::default()).await?;
    let (setup, d) = static_daemon(&up, &format!("{TWO_SERVERS}\n{extra}")).await?;
    Ok((up, setup, d))
}

/// A daemon in front of `upstream` with [`Setup::static_config`] and `extra`; the setup keeps
/// its config directory.
pub async fn static_daemon(
    upstream: &crate::upstream::TestUpstream,
    extra: &str,
) -> anyhow::Result<(Setup, TestDaemon)> {
    let setup = Setup::new()?;
    let config = setup.static_config(upstream, extra)?;
    let d = TestDaemon::start(&setup.write_config(&config)?, &[]).await?;
    Ok((setup, d))
}
