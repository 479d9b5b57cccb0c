//! The proxy's listeners behind one accept interface, so one accept loop serves TCP and Unix
//! sockets alike. A Unix socket's peer is checked by uid (`SO_PEERCRED`, the admin socket's
//! check) before a byte of its request is read: root, the daemon's user, members of `[listen]
//! unix_group` and the uids in `unix_allowed_uids` may connect; anyone else gets 403 and a
//! log line with their uid and pid.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::control::admin::{peer_credentials, PeerCred};
use crate::control::log_line::decimal;
use crate::proxy::pipeline::Peer;
use crate::proxy::workers::Portable;
use crate::state::Shared;

/// How long a refused Unix peer may take to send the request it is refused.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Who is on the other end of a proxy connection, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAddr {
    Tcp(SocketAddr),
    Unix { uid: u32, pid: i32 },
}

impl fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Written by hand: std's formatting of an address costs more than the rest of
            // the request's log line (it is on every line of a proxied request).
            ClientAddr::Tcp(SocketAddr::V4(a)) => {
                let mut buf = [0u8; 21]; // "255.255.255.255:65535"
                let mut at = 0;
                let numbers = a.ip().octets().map(u64::from);
                for (i, n) in numbers.into_iter().chain([u64::from(a.port())]).enumerate() {
                    if i > 0 {
                        buf[at] = if i == 4 { b':' } else { b'.' };
                        at += 1;
                    }
                    let mut digits = [0u8; 20];
                    let d = decimal(&mut digits, n, false);
                    buf[at..at + d.len()].copy_from_slice(d);
                    at += d.len();
                }
                // Only ASCII digits, dots and a colon were written.
                f.write_str(std::str::from_utf8(&buf[..at]).map_err(|_| fmt::Error)?)
            }
            ClientAddr::Tcp(a) => write!(f, "{a}"),
            ClientAddr::Unix { uid, pid } => write!(f, "unix:uid={uid},pid={pid}"),
        }
    }
}

/// A bound proxy listener.
pub trait Accept: Send + Sync + 'static {
    type Io: AsyncRead + AsyncWrite + Peek + Portable + Unpin + Send + 'static;
    /// The next connection the proxy serves (refused peers are answered and skipped here).
    fn accept(
        &self,
        shared: &Arc<Shared>,
    ) -> impl Future<Output = io::Result<(Self::Io, Peer)>> + Send;
    /// The listener, for logs.
    fn describe(&self) -> String;
}

/// A connection whose first bytes can be read without consuming them (to pick HTTP/1.1 or
/// h2c before hyper reads; see `proxy::server`).
pub trait Peek {
    /// Waits for the first bytes and copies up to `buf.len()` of them into `buf`, leaving them
    /// to be read; `None` where the socket type cannot peek.
    fn peek_first<'a>(
        &'a self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = Option<usize>> + Send + 'a;
}

impl Peek for TcpStream {
    async fn peek_first<'a>(&'a self, buf: &'a mut [u8]) -> Option<usize> {
        self.peek(buf).await.ok()
    }
}

impl Peek for UnixStream {
    // tokio's UnixStream has no peek; such connections take hyper's own version sniffing.
    async fn peek_first<'a>(&'a self, _buf: &'a mut [u8]) -> Option<usize> {
        None
    }
}

impl Accept for TcpListener {
    type Io = TcpStream;

    async fn accept(&self, _shared: &Arc<Shared>) -> io::Result<(TcpStream, Peer)> {
        let (stream, addr) = TcpListener::accept(self).await?;
        let _ = stream.set_nodelay(true);
        let peer = Peer {
            addr: ClientAddr::Tcp(addr),
            local: stream.local_addr().ok(),
        };
        Ok((stream, peer))
    }

    fn describe(&self) -> String {
        self.local_addr().map(|a| a.to_string()).unwrap_or_default()
    }
}

/// A Unix-socket proxy listener (`[listen] unix`).
pub struct UnixProxyListener {
    listener: UnixListener,
    path: PathBuf,
    /// We created the socket file and remove it when done; systemd owns a passed one.
    owned: bool,
}

impl UnixProxyListener {
    /// Takes over a socket passed by systemd (`FileDescriptorName=proxy-unix`).
    pub fn activated(listener: UnixListener) -> UnixProxyListener {
        let path = listener
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(Path::to_path_buf))
            .unwrap_or_default();
        UnixProxyListener {
            listener,
            path,
            owned: false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Binds `path` with `mode` (never looser while it exists), then gives it `group`. A stale
    /// socket file is replaced; a live one (another daemon) is refused.
    pub async fn bind(
        path: &Path,
        mode: u32,
        group: Option<&str>,
    ) -> io::Result<UnixProxyListener> {
        let err = |e: io::Error| {
            io::Error::new(
                e.kind(),
                format!("cannot listen on {}: {e}", path.display()),
            )
        };
        let listener = crate::control::admin::bind_mode(path, mode)
            .await
            .map_err(proxy_socket_error)?;
        let result = UnixProxyListener {
            listener,
            path: path.to_path_buf(),
            owned: true,
        };
        if let Some(name) = group {
            let gid = match nix::unistd::Group::from_name(name) {
                Ok(Some(g)) => g.gid,
                Ok(None) => {
                    return Err(err(io::Error::other(format!(
                        "group `{name}` does not exist"
                    ))))
                }
                Err(e) => return Err(err(e.into())),
            };
            nix::unistd::chown(path, None, Some(gid)).map_err(|e| err(e.into()))?;
            // chown may clear nothing here (sockets have no set-id bits), but set the mode
            // again so what the config says is what the file has.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(err)?;
        }
        Ok(result)
    }
}

impl Drop for UnixProxyListener {
    fn drop(&mut self) {
        if self.owned {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether a Unix peer may use the proxy under the current configuration.
pub fn authorize_unix(peer: &PeerCred, unix: &crate::config::UnixListen) -> Result<(), String> {
    if unix.allowed_uids.contains(&peer.uid) {
        return Ok(());
    }
    // Root, the daemon's user and the group's members: the admin socket's rule.
    match (
        crate::control::admin::authorize_peer(peer, unix.group.as_deref()),
        &unix.group,
    ) {
        (Ok(()), _) => Ok(()),
        (Err(why), Some(_)) => Err(format!(
            "{why}; list the uid in [listen] unix_allowed_uids to let it use the proxy"
        )),
        (Err(_), None) => Err(format!(
            "uid {} is neither root, nor the daemon's user, nor in [listen] unix_allowed_uids",
            peer.uid
        )),
    }
}

impl Accept for UnixProxyListener {
    type Io = UnixStream;

    async fn accept(&self, shared: &Arc<Shared>) -> io::Result<(UnixStream, Peer)> {
        loop {
            let (stream, _) = self.listener.accept().await?;
            let cred = match peer_credentials(&stream) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(socket = %self.path.display(), error = %e, "proxy unix socket: cannot read peer credentials; closing");
                    continue;
                }
            };
            let generation = shared.current();
            if let Err(why) = authorize_unix(&cred, &generation.config.listen.unix) {
                tracing::warn!(
                    socket = %self.path.display(),
                    uid = cred.uid,
                    gid = cred.gid,
                    pid = cred.pid,
                    reason = %why,
                    "proxy unix socket: peer refused"
                );
                tokio::spawn(refuse(stream, why));
                continue;
            }
            let peer = Peer {
                addr: ClientAddr::Unix {
                    uid: cred.uid,
                    pid: cred.pid,
                },
                local: None,
            };
            return Ok((stream, peer));
        }
    }

    fn describe(&self) -> String {
        format!("unix:{}", self.path.display())
    }
}

/// Answers every request of a refused peer with 403, then closes; its requests go nowhere.
async fn refuse(stream: UnixStream, why: String) {
    let service = service_fn(move |_req| {
        let body = serde_json::json!({
            "error": { "code": mcpproxyd_api::codes::PEER_REFUSED, "message": format!("refused: {why}") }
        });
        let mut resp = crate::proxy::error::json_response(http::StatusCode::FORBIDDEN, &body);
        resp.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
        async move { Ok::<_, std::convert::Infallible>(resp) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(REFUSAL_TIMEOUT)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, conn).await;
}

/// The admin socket's bind errors, told about the proxy's socket and its own config key.
fn proxy_socket_error(e: crate::control::admin::AdminSocketError) -> io::Error {
    use crate::control::admin::AdminSocketError as E;
    match e {
        E::InUse(p) => io::Error::other(format!(
            "another process is already serving the proxy socket {}",
            p.display()
        )),
        E::NotASocket(p) => io::Error::other(format!(
            "{} exists and is not a socket; remove it or change [listen] unix",
            p.display()
        )),
        E::Io { path, source } | E::NoPermission { path, source } => io::Error::new(
            source.kind(),
            format!(
                "cannot create the proxy socket {}: {source}; check [listen] unix",
                path.display()
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UnixListen;

    #[test]
    fn client_addresses_print_as_std_prints_them() {
        for text in [
            "0.0.0.0:0",
            "127.0.0.1:44760",
            "255.255.255.255:65535",
            "10.0.10.1:9",
            "1.22.133.4:10000",
            "[::1]:8080",
            "[fe80::1%2]:1",
        ] {
            let addr: SocketAddr = text.parse().unwrap();
            assert_eq!(ClientAddr::Tcp(addr).to_string(), addr.to_string());
        }
        let unix = ClientAddr::Unix { uid: 1000, pid: 42 };
        assert_eq!(unix.to_string(), "unix:uid=1000,pid=42");
    }

    #[tokio::test]
    async fn bind_errors_name_the_proxy_socket_and_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("proxy.sock");
        std::fs::write(&path, "not a socket").unwrap();
        let Err(e) = UnixProxyListener::bind(&path, 0o660, None).await else {
            panic!("a regular file was taken for a socket");
        };
        let text = e.to_string();
        assert!(text.contains("[listen] unix"), "{text}");
        assert!(!text.contains("admin"), "{text}");
    }

    #[test]
    fn unix_peers_need_root_self_the_group_or_the_list() {
        let unix = |uids: Vec<u32>| UnixListen {
            allowed_uids: uids,
            ..Default::default()
        };
        let peer = |uid| PeerCred {
            uid,
            gid: 65534,
            pid: 1,
        };
        assert!(authorize_unix(&peer(0), &unix(vec![])).is_ok());
        let me = nix::unistd::geteuid().as_raw();
        assert!(authorize_unix(&peer(me), &unix(vec![])).is_ok());
        if me != 65534 {
            let e = authorize_unix(&peer(65534), &unix(vec![])).unwrap_err();
            assert!(e.contains("unix_allowed_uids"), "{e}");
            assert!(authorize_unix(&peer(65534), &unix(vec![65534])).is_ok());
        }
        assert_eq!(
            ClientAddr::Unix { uid: 5, pid: 7 }.to_string(),
            "unix:uid=5,pid=7"
        );
    }
}
