//! Connections over `limits.max_connections`: answered at once with `503` and a JSON body,
//! then closed, so a client never waits silently in the accept backlog. Logged at most once a
//! second (with the count since the last line), so a flood cannot flood the journal too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::proxy::listener::ClientAddr;

/// The whole answer, HTTP/1.1 (an h2 client gets a connection error, which is also at once).
const RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 100\r\n\
\r\n\
{\"error\":{\"code\":\"too_many_connections\",\"message\":\"the proxy is at limits.max_connections; retry\"}}\n";

/// How long a refused client gets to send its request head and take the answer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

static REFUSED_SINCE_LOG: AtomicU64 = AtomicU64::new(0);
static LAST_LOG_SECOND: AtomicU64 = AtomicU64::new(0);

/// Answers `stream` with the 503 in a task of its own and logs (rate-limited).
pub fn refuse<S>(stream: S, peer: ClientAddr, max_connections: usize)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    note(peer, max_connections);
    tokio::spawn(async move {
        let mut stream = stream;
        let answer = async {
            // Wait for the request head (bounded) before answering: a client that has not
            // sent its request yet would take an early answer for a broken connection.
            let mut head = Vec::with_capacity(1024);
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                match stream.read(&mut buf).await? {
                    0 => break,
                    n => head.extend_from_slice(&buf[..n]),
                }
            }
            stream.write_all(RESPONSE).await?;
            stream.shutdown().await?;
            // Take the rest of what the client sent (bounded): closing with unread bytes
            // would reset the connection and could destroy the answer before it is read.
            let mut left: usize = 64 * 1024;
            while left > 0 {
                match stream.read(&mut buf).await? {
                    0 => break,
                    n => left = left.saturating_sub(n),
                }
            }
            std::io::Result::Ok(())
        };
        let _ = tokio::time::timeout(WRITE_TIMEOUT, answer).await;
    });
}

fn note(peer: ClientAddr, max_connections: usize) {
    let refused = REFUSED_SINCE_LOG.fetch_add(1, Ordering::Relaxed) + 1;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if LAST_LOG_SECOND.swap(now, Ordering::Relaxed) != now {
        REFUSED_SINCE_LOG.fetch_sub(refused, Ordering::Relaxed);
        tracing::warn!(
            client = %peer,
            max_connections,
            refused,
            "connection refused with 503: limits.max_connections reached"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_well_formed_http_with_a_json_body() {
        let text = std::str::from_utf8(RESPONSE).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(length, body.len());
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "too_many_connections");
    }
}
