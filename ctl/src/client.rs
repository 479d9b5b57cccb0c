//! One HTTP/1.1 request on the admin socket, its answer read whole, and the daemon's errors
//! turned into [`CtlError`]s.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use mcpproxyd_api::{codes, ErrorBody};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::UnixStream;

use crate::error::CtlError;
use crate::socket::SocketPath;

/// How long one command waits for the daemon, so a wedged daemon can't hang the CLI.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long to wait for requests that make the daemon talk to an authorization server (start a
/// login, exchange a pasted code, revoke): its own HTTP client may take a while, and giving up
/// early would report a failure for something that may still succeed.
pub const NETWORK_TIMEOUT: Duration = Duration::from_secs(120);

/// The largest answer read; the API's answers are a few KiB.
pub const MAX_RESPONSE_BODY: usize = 16 * 1024 * 1024;

/// A client of one daemon's admin socket. Each request uses a fresh connection.
#[derive(Debug, Clone)]
pub struct Client {
    socket: SocketPath,
    timeout: Duration,
}

impl Client {
    pub fn new(socket: SocketPath) -> Client {
        Client {
            socket,
            timeout: REQUEST_TIMEOUT,
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    pub fn socket(&self) -> &SocketPath {
        &self.socket
    }

    /// `GET path`: the body of a 2xx answer.
    pub async fn get(&self, path: &str) -> Result<Bytes, CtlError> {
        self.send(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body: the body of a 2xx answer.
    pub async fn post_json<B: Serialize>(&self, path: &str, body: &B) -> Result<Bytes, CtlError> {
        let json = serde_json::to_vec(body)
            .map_err(|e| CtlError::io("cannot encode the request", e.into()))?;
        self.send(Method::POST, path, Some(Bytes::from(json))).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        json: Option<Bytes>,
    ) -> Result<Bytes, CtlError> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, "localhost");
        if json.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(json.unwrap_or_default()))
            .map_err(|e| CtlError::io("cannot build the request", std::io::Error::other(e)))?;
        let (status, body) = tokio::time::timeout(self.timeout, self.exchange(request))
            .await
            .map_err(|_| CtlError::Timeout {
                socket: self.socket.clone(),
                after: self.timeout,
            })??;
        if status.is_success() {
            Ok(body)
        } else {
            Err(daemon_error(status, &body))
        }
    }

    async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Bytes), CtlError> {
        let stream = UnixStream::connect(&self.socket.path)
            .await
            .map_err(|source| CtlError::Connect {
                socket: self.socket.clone(),
                source,
            })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.hyper_error(e))?;
        // Errors of the connection also fail `send_request` or the body, where they are reported.
        let driver = tokio::spawn(connection);
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| self.hyper_error(e))?;
        let status = response.status();
        let collected = Limited::new(response.into_body(), MAX_RESPONSE_BODY)
            .collect()
            .await;
        drop(sender);
        driver.abort();
        match collected {
            Ok(body) => Ok((status, body.to_bytes())),
            Err(e) => match e.downcast::<hyper::Error>() {
                Ok(e) => Err(self.hyper_error(*e)),
                Err(e) => Err(CtlError::BadAnswer(format!("the daemon's answer: {e}"))),
            },
        }
    }

    /// A malformed answer is the daemon's fault (exit 1); a broken connection means the daemon
    /// is gone (exit 69).
    fn hyper_error(&self, e: hyper::Error) -> CtlError {
        if e.is_parse() || e.is_parse_status() {
            CtlError::BadAnswer(format!("the daemon's answer is not valid HTTP: {e}"))
        } else {
            CtlError::Transport {
                socket: self.socket.clone(),
                source: e,
            }
        }
    }
}

/// A non-2xx answer: the daemon's [`ErrorBody`], or a clear word that it sent none.
pub fn daemon_error(status: StatusCode, body: &[u8]) -> CtlError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error })
            if status == StatusCode::FORBIDDEN && error.code == codes::PEER_REFUSED =>
        {
            CtlError::PeerRefused {
                message: error.message,
            }
        }
        Ok(ErrorBody { error }) => CtlError::Daemon {
            status: status.as_u16(),
            code: error.code,
            message: error.message,
        },
        Err(_) => CtlError::BadAnswer(format!(
            "the daemon answered {status} without an error body: {}",
            snippet(body)
        )),
    }
}

/// Decodes a 2xx answer; `what` names the request in the message (`GET /v1/status`).
pub fn parse<T: DeserializeOwned>(what: &str, body: &[u8]) -> Result<T, CtlError> {
    serde_json::from_slice(body).map_err(|e| {
        CtlError::BadAnswer(if e.is_data() {
            format!(
                "the answer to {what} does not match what mcpproxyctl {} expects ({e}); \
                 is mcpproxyd a different version?",
                env!("CARGO_PKG_VERSION")
            )
        } else {
            format!(
                "the answer to {what} is not valid JSON ({e}): {}",
                snippet(body)
            )
        })
    })
}

/// The start of a body, for messages.
fn snippet(body: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX)]);
    let text = text.trim();
    match (text.is_empty(), body.len() > MAX) {
        (true, _) => "(empty)".to_string(),
        (false, true) => format!("{text:?}..."),
        (false, false) => format!("{text:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit;
    use mcpproxyd_api::Status;

    #[test]
    fn error_bodies_become_daemon_errors() {
        let body = br#"{"error":{"code":"invalid_config","message":"f.toml:3: bad"}}"#;
        let e = daemon_error(StatusCode::UNPROCESSABLE_ENTITY, body);
        assert!(
            matches!(&e, CtlError::Daemon { status: 422, code, .. } if code == "invalid_config")
        );
        assert_eq!(e.exit_code(), exit::DAEMON_ERROR);
    }

    #[test]
    fn peer_refused_is_a_permission_error() {
        let body = br#"{"error":{"code":"peer_refused","message":"uid 1001 may not"}}"#;
        let e = daemon_error(StatusCode::FORBIDDEN, body);
        assert_eq!(e.exit_code(), exit::NO_PERMISSION);
    }

    #[test]
    fn an_answer_without_error_body_is_a_clear_error() {
        let e = daemon_error(StatusCode::BAD_GATEWAY, b"<html>oops</html>");
        assert_eq!(e.exit_code(), exit::DAEMON_ERROR);
        assert!(e.to_string().contains("502"), "{e}");
        assert!(e.to_string().contains("oops"), "{e}");
    }

    #[test]
    fn bad_json_is_an_error_not_a_panic() {
        let e = parse::<Status>("GET /v1/status", b"not json").unwrap_err();
        assert_eq!(e.exit_code(), exit::DAEMON_ERROR);
        assert!(e.to_string().contains("not valid JSON"), "{e}");
        let e = parse::<Status>("GET /v1/status", br#"{"version":"1"}"#).unwrap_err();
        assert!(e.to_string().contains("different version"), "{e}");
    }
}
