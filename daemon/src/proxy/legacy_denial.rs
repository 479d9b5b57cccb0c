//! Denials for the legacy HTTP+SSE transport. Its client POSTs each message to the endpoint the
//! `endpoint` event named, gets 202, and reads the answer from the GET stream; so a tool call
//! the proxy refuses must be answered on that stream. Each filtered GET stream of a policy
//! server registers its message endpoint here; a denial for that endpoint is sent into the
//! stream as an event (between two upstream events, never inside one) and the POST gets 202.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;

/// How many refusals may wait for one stream.
const QUEUE: usize = 32;

/// The message endpoints of open legacy streams, by local `path?query`.
#[derive(Debug, Default)]
pub struct LegacySessions {
    streams: Mutex<HashMap<String, mpsc::Sender<Bytes>>>,
}

/// Keeps an endpoint registered while its stream lives.
#[derive(Debug)]
pub struct Registration {
    sessions: Arc<LegacySessions>,
    key: String,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.sessions.lock().remove(&self.key);
    }
}

impl LegacySessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::Sender<Bytes>>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers the endpoint an `endpoint` event named (`data`, resolved against the GET
    /// stream's own path, as the client resolves it).
    pub fn register(
        self: &Arc<Self>,
        stream_path: &str,
        data: &str,
    ) -> Option<(mpsc::Receiver<Bytes>, Registration)> {
        let key = endpoint_key(stream_path, data)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        self.lock().insert(key.clone(), tx);
        let registration = Registration {
            sessions: self.clone(),
            key,
        };
        Some((rx, registration))
    }

    /// Sends `event` into the stream whose endpoint is `path?query`; false if there is none.
    pub fn inject(&self, path: &str, query: Option<&str>, event: Bytes) -> bool {
        let key = match query {
            Some(q) => format!("{path}?{q}"),
            None => path.to_string(),
        };
        let sender = self.lock().get(&key).cloned();
        sender.is_some_and(|s| s.try_send(event).is_ok())
    }
}

/// `path?query` of an endpoint URL as a client resolves it against the stream's path.
pub fn endpoint_key(stream_path: &str, data: &str) -> Option<String> {
    let base = url::Url::parse("http://proxy.invalid")
        .ok()?
        .join(stream_path)
        .ok()?;
    let url = base.join(data.trim()).ok()?;
    Some(match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_resolve_like_clients() {
        let k = |d: &str| endpoint_key("/a/b/sse", d).unwrap();
        assert_eq!(k("/a/b/message?sessionId=1"), "/a/b/message?sessionId=1");
        assert_eq!(k("message?sessionId=1"), "/a/b/message?sessionId=1");
        assert_eq!(
            k("http://127.0.0.1:8088/a/b/message?sessionId=1"),
            "/a/b/message?sessionId=1"
        );
    }

    #[tokio::test]
    async fn registered_streams_receive_until_dropped() {
        let sessions = Arc::new(LegacySessions::default());
        let (mut rx, reg) = sessions.register("/x/sse", "/x/message?s=1").unwrap();
        assert!(sessions.inject("/x/message", Some("s=1"), Bytes::from_static(b"e")));
        assert_eq!(rx.recv().await.unwrap(), Bytes::from_static(b"e"));
        assert!(!sessions.inject("/x/message", Some("s=2"), Bytes::new()));
        drop(reg);
        assert!(!sessions.inject("/x/message", Some("s=1"), Bytes::new()));
    }
}
