//! The nginx column: nginx in front of the same upstream with `proxy_pass`, upstream
//! keep-alive, `proxy_buffering off` and a static `Authorization` header ("nginx with a
//! header"), run with its own config and prefix in a temporary directory on a loopback port.
//! Installed from Debian when missing and the bench runs as root; else not measured, with
//! the reason.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use super::wrk::find_in_path;
use crate::upstream::TestUpstream;

/// How long nginx may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running nginx (master and workers); stopped when dropped.
pub(super) struct Nginx {
    child: Child,
    prefix: PathBuf,
    pub(super) addr: SocketAddr,
    pub(super) version: String,
    /// From exec to the first accepted connection (polled every millisecond).
    pub(super) started_in: Duration,
}

fn find_nginx() -> Option<PathBuf> {
    find_in_path("nginx").or_else(|| {
        let p = PathBuf::from("/usr/sbin/nginx");
        p.is_file().then_some(p)
    })
}

/// `apt-get install nginx-light` when running as root; `RUNLEVEL=1` keeps the package's
/// scripts from starting the system service.
async fn install() -> Result<PathBuf, String> {
    let euid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(str::to_owned))
        })
        .unwrap_or_default();
    if euid != "0" || find_in_path("apt-get").is_none() {
        return Err("nginx is not installed (and the bench is not root with apt-get)".into());
    }
    println!("nginx not found: apt-get install -y nginx-light");
    let status = Command::new("apt-get")
        .args(["install", "-y", "-qq", "nginx-light"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("RUNLEVEL", "1")
        .stdin(Stdio::null())
        .status();
    match tokio::time::timeout(Duration::from_secs(300), status).await {
        Ok(Ok(s)) if s.success() => find_nginx().ok_or("nginx installed but not found".into()),
        Ok(Ok(s)) => Err(format!("apt-get install nginx-light failed ({s})")),
        Ok(Err(e)) => Err(format!("cannot run apt-get: {e}")),
        Err(_) => Err("apt-get install nginx-light took over 300 s".into()),
    }
}

/// A loopback port that was free a moment ago (nginx cannot report an ephemeral port).
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn config(
    port: u16,
    upstream: &TestUpstream,
    ca: &Path,
    workers: usize,
    static_port: Option<u16>,
) -> String {
    let up_port = upstream
        .base_url()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .trim_end_matches('/');
    format!(
        r#"{preamble}
    access_log access.log;
    upstream up {{ server 127.0.0.1:{up_port}; keepalive 256; keepalive_requests {KEEPALIVE_REQUESTS}; }}
{static_upstream}    server {{
        listen 127.0.0.1:{port} backlog=4096;
        client_max_body_size 1024m;
        keepalive_requests {KEEPALIVE_REQUESTS};
{static_location}{main_location}    }}
}}
"#,
        preamble = preamble(workers),
        main_location = location("/", "https://up", up_port, upstream.token(), ca),
        static_upstream = static_port.map_or_else(String::new, |p| format!(
            "    upstream static_up {{ server 127.0.0.1:{p}; keepalive 256; keepalive_requests {KEEPALIVE_REQUESTS}; }}\n"
        )),
        static_location = static_port.map_or_else(String::new, |p| location(
            "/static/",
            "https://static_up/",
            &p.to_string(),
            upstream.token(),
            ca
        )),
    )
}

/// What both configs begin with, up to the `http` block's own settings: `workers`
/// processes in the foreground, files in the prefix, room for many connections.
fn preamble(workers: usize) -> String {
    format!(
        r#"worker_processes {workers};
daemon off;
pid nginx.pid;
error_log error.log warn;
worker_rlimit_nofile 40000;
events {{ worker_connections 16384; }}
http {{
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;"#
    )
}

/// A `location` block passing `path` to `pass` ("nginx with a header"): HTTP/1.1 kept alive,
/// the bearer added, nothing buffered, the upstream's certificate checked against `ca`.
fn location(path: &str, pass: &str, up_port: &str, token: &str, ca: &Path) -> String {
    format!(
        r#"        location {path} {{
            proxy_pass {pass};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host localhost:{up_port};
            proxy_set_header Authorization "Bearer {token}";
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 300s;
            proxy_ssl_server_name on;
            proxy_ssl_name localhost;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate {ca};
            proxy_ssl_session_reuse on;
        }}
"#,
        ca = ca.display(),
    )
}

/// Requests per kept-alive connection in the proxy nginx, client and upstream side (nginx's
/// default, 1,000, would close wrk's connections and its own upstream ones every 1,000
/// requests; the daemon and the test upstream have no such limit). The static upstream keeps
/// the default, as a real one would: it ends each HTTP/2 connection after 1,000 requests with a
/// `GOAWAY`, refusing the streams already on their way.
const KEEPALIVE_REQUESTS: u32 = 1_000_000;

/// The issue's own yardstick upstream: nginx serving HTTPS (HTTP/2 and HTTP/1.1 by ALPN) with
/// the test CA's leaf, answering `POST /raw/rpc` with `answer` when the bearer is `token`
/// (else 401), and nothing else; its access log holds each request's protocol.
fn static_config(
    port: u16,
    workers: usize,
    cert: &Path,
    key: &Path,
    token: &str,
    answer: &str,
) -> String {
    format!(
        r#"{preamble}
    log_format proto $server_protocol;
    access_log access.log proto;
    server {{
        listen 127.0.0.1:{port} ssl http2 backlog=4096;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location = /raw/rpc {{
            if ($http_authorization != "Bearer {token}") {{ return 401; }}
            default_type application/json;
            return 200 '{answer}';
        }}
        location / {{ return 404; }}
    }}
}}
"#,
        preamble = preamble(workers),
        cert = cert.display(),
        key = key.display(),
    )
}

/// One worker process per core.
fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The nginx binary (installed if missing and allowed) and `prefix`, created with its `tmp`.
async fn prepare(prefix: &Path) -> Result<(PathBuf, PathBuf), String> {
    let bin = match find_nginx() {
        Some(bin) => bin,
        None => install().await?,
    };
    std::fs::create_dir_all(prefix.join("tmp")).map_err(|e| e.to_string())?;
    Ok((bin, prefix.to_path_buf()))
}

impl Nginx {
    /// Starts nginx in `dir` in front of `upstream`; `Err` is the reason it is not measured.
    /// With `static_port`, `/static/…` goes to the static upstream there.
    pub(super) async fn start(
        upstream: &TestUpstream,
        dir: &Path,
        static_port: Option<u16>,
    ) -> Result<Nginx, String> {
        let ca_pem = upstream.ca_pem().ok_or("the upstream has no CA")?;
        let (bin, prefix) = prepare(&dir.join("nginx")).await?;
        let ca = prefix.join("ca.pem");
        std::fs::write(&ca, ca_pem).map_err(|e| e.to_string())?;
        let port = free_port().map_err(|e| e.to_string())?;
        let conf = config(port, upstream, &ca, workers(), static_port);
        Nginx::spawn(&bin, &prefix, &conf, port).await
    }

    /// Starts the static upstream (see [`static_config`]) in `dir`, with `upstream`'s TLS leaf
    /// and token; `Err` is the reason it does not run.
    pub(super) async fn start_static(upstream: &TestUpstream, dir: &Path) -> Result<Nginx, String> {
        let ca = upstream.ca.as_ref().ok_or("the upstream has no CA")?;
        let (bin, prefix) = prepare(&dir.join("nginx-static")).await?;
        let (cert, key) = (prefix.join("leaf.pem"), prefix.join("leaf.key"));
        ca.write_server_pem(&cert, &key)
            .map_err(|e| e.to_string())?;
        let answer = crate::upstream::bench::rpc_answer();
        let answer = std::str::from_utf8(&answer).map_err(|e| e.to_string())?;
        if answer.contains('\'') {
            return Err("the answer cannot be quoted for nginx".into());
        }
        let port = free_port().map_err(|e| e.to_string())?;
        let conf = static_config(port, workers(), &cert, &key, upstream.token(), answer);
        Nginx::spawn(&bin, &prefix, &conf, port).await
    }

    /// Runs `bin` with `conf` written into `prefix` (which has its `tmp`), and waits until it
    /// listens on `port`.
    async fn spawn(bin: &Path, prefix: &Path, conf: &str, port: u16) -> Result<Nginx, String> {
        let conf_path = prefix.join("nginx.conf");
        std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
        let version = Command::new(bin).arg("-v").output().await.map_or_else(
            |_| "unknown".to_owned(),
            |o| String::from_utf8_lossy(&o.stderr).trim().to_owned(),
        );
        let exec = Instant::now();
        let child = Command::new(bin)
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let mut nginx = Nginx {
            child,
            prefix: prefix.to_path_buf(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            version,
            started_in: Duration::ZERO,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                let log = std::fs::read_to_string(prefix.join("error.log")).unwrap_or_default();
                return Err(format!("nginx exited ({status}): {}", log.trim()));
            }
            if tokio::net::TcpStream::connect(nginx.addr).await.is_ok() {
                nginx.started_in = exec.elapsed();
                return Ok(nginx);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        nginx.stop().await;
        Err(format!(
            "nginx did not listen on {} within {START_TIMEOUT:?}",
            nginx.addr
        ))
    }

    /// The protocol of each request the static upstream logged so far (`HTTP/2.0`, ...).
    pub(super) fn logged_protocols(&self) -> Vec<String> {
        std::fs::read_to_string(self.prefix.join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub(super) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGTERM to the master: its fast shutdown stops the workers too (a SIGKILL would leave
    /// them running). SIGKILL only if it is still there after 5 s.
    pub(super) async fn stop(&mut self) {
        if let Some(pid) = self.child.id() {
            let term = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
            let _ = tokio::time::timeout(Duration::from_secs(5), term).await;
        }
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
        }
    }
}

impl Drop for Nginx {
    /// Not stopped with [`stop`](Nginx::stop) (an error path): SIGTERM, then up to 3 s for the
    /// master to stop its workers before the child's kill-on-drop SIGKILLs it (a master killed
    /// first leaves its workers running).
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if let Some(pid) = self.child.id() {
                let _ = std::process::Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status();
                let deadline = Instant::now() + Duration::from_secs(3);
                while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
}
