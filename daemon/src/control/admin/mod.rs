//! The admin API on a Unix socket: HTTP/1.1 + JSON for `mcpproxyctl` and `curl --unix-socket`.
//!
//! Endpoints (types in the `mcpproxyd-api` crate):
//! - `GET /v1/status`: version, uptime, listeners, config, upstreams, profiles, ACL, counters
//! - `GET /v1/servers`: the catalog with proxy URLs and each server's access
//! - `POST /v1/reload`: re-read the config file (like `SIGHUP`); invalid: 422, nothing changes
//! - `POST /v1/acl/check`: which rule allows or denies a path
//! - `GET /v1/metrics`: Prometheus text
//! - `POST /v1/login`, `GET /v1/login/{id}?wait=S`, `POST /v1/login/{id}/code`: OAuth login;
//!   `POST /v1/login` with `"device": true` and `POST /v1/login/{id}/cancel`: device logins
//! - `POST /v1/logout`: wipe a profile's token; `POST /v1/revoke`: revoke it at the server too
//! - `GET /v1/keys`, `POST /v1/keys`, `POST /v1/keys/{name}/revoke`: local client keys
//!
//! The socket is created mode 0660 (umask set before bind). Every connection's peer credentials
//! are checked before a byte of the request is read: root, the daemon's own uid, or members of
//! `[admin] group`; everyone else gets 403 and a log line with their uid and pid.

mod auth;
mod device;
mod handlers;
mod keys;
mod peer;
mod reply;
mod socket;
mod views;

pub use peer::{authorize as authorize_peer, credentials as peer_credentials, PeerCred};
pub use socket::{bind, bind_mode, default_socket_path, AdminSocketError};

use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use crate::state::Shared;

/// Serves the admin socket until `stop`; removes the socket file afterwards if `owned` (a
/// socket passed by systemd stays, systemd owns it).
pub async fn serve(
    listener: UnixListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
    owned: bool,
) {
    let path = listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_pathname().map(|p| p.to_path_buf()))
        .filter(|_| owned);
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "admin socket: accept failed");
                    tokio::select! {
                        _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => continue,
                        _ = stop.cancelled() => break,
                    }
                }
            },
            _ = stop.cancelled() => break,
        };
        tokio::spawn(connection(stream, shared.clone()));
    }
    if let Some(p) = path {
        let _ = std::fs::remove_file(p);
    }
}

async fn connection(mut stream: UnixStream, shared: Arc<Shared>) {
    let peer = match peer::credentials(&stream) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "admin socket: cannot read peer credentials; closing");
            return;
        }
    };
    let group = shared.current().config.admin.group.clone();
    if let Err(why) = peer::authorize(&peer, group.as_deref()) {
        tracing::warn!(
            uid = peer.uid,
            gid = peer.gid,
            pid = peer.pid,
            reason = %why,
            "admin socket: caller refused"
        );
        // The decision is made; the request is never parsed or handled. Its head is consumed
        // (bounded) before answering, because an HTTP client treats an answer that arrives
        // before its request as a broken connection; afterwards whatever else it sent is
        // drained, so closing does not hide the answer from it.
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        let read_head = async {
            while head.len() < 16 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), read_head).await;
        let _ = stream.write_all(&reply::refusal(&why)).await;
        let _ = stream.shutdown().await;
        let drain = async {
            let mut total = 0;
            while total < 64 * 1024 {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drain).await;
        return;
    }
    let service = service_fn(move |req| handlers::handle(shared.clone(), peer, req));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(std::time::Duration::from_secs(10))
        .serve_connection(TokioIo::new(stream), service);
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "admin connection ended with an error");
    }
}

/// Serves only `GET /metrics` on a loopback TCP address, for Prometheus.
pub async fn serve_metrics(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(_) => continue,
            },
            _ = stop.cancelled() => return,
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handlers::metrics_only(shared.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
