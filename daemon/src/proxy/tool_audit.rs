//! What each tool call did, for the journal and metrics: the response is scanned as its bytes
//! stream by (nothing is held or delayed) for a JSON-RPC `error` code or `isError: true` in a
//! result; one record per call when the response ends. Arguments and results are never logged.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::control::metrics::Metrics;
use crate::control::tool_metrics::Outcome;
use crate::proxy::body::{BoxError, ProxyBody};

/// How far back the scanner looks across a chunk boundary.
const CARRY: usize = 256;

/// Reads a response for the outcome of a tool call, chunk by chunk.
#[derive(Debug, Default)]
pub struct OutcomeScan {
    carry: Vec<u8>,
    result: bool,
    is_error: bool,
    /// Inside `"error": {`, looking for its `"code"`.
    error: bool,
    code: Option<i64>,
}

impl OutcomeScan {
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.carry.is_empty() {
            // The usual one-chunk answer: scanned where it lies, no copy of it.
            self.scan(chunk);
            let keep = chunk.len().saturating_sub(CARRY);
            self.carry.extend_from_slice(&chunk[keep..]);
            return;
        }
        let mut window = std::mem::take(&mut self.carry);
        window.extend_from_slice(chunk);
        self.scan(&window);
        let keep = window.len().saturating_sub(CARRY);
        window.drain(..keep);
        self.carry = window;
    }

    fn scan(&mut self, window: &[u8]) {
        if key_then(window, b"isError", b"true") {
            self.is_error = true;
        }
        if key_then(window, b"error", b"{") {
            self.error = true;
        }
        if key_then(window, b"result", b"") {
            self.result = true;
        }
        if self.error && self.code.is_none() {
            self.code = key_number(window, b"code");
        }
    }

    pub fn outcome(&self) -> Outcome {
        if self.error && !self.result {
            Outcome::RpcError
        } else if self.is_error {
            Outcome::ToolError
        } else if self.result {
            Outcome::Ok
        } else {
            Outcome::Unknown
        }
    }

    /// The JSON-RPC error code, when the outcome is an error response that named one.
    pub fn rpc_error(&self) -> Option<i64> {
        (self.outcome() == Outcome::RpcError)
            .then_some(self.code)
            .flatten()
    }
}

/// Positions just after each unescaped `"key"` followed by optional spaces and `:`.
fn after_key<'a>(text: &'a [u8], key: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    let n = key.len() + 2;
    // Only the quotes can start a key: memchr finds them many bytes at a time.
    memchr::memchr_iter(b'"', text).filter_map(move |i| {
        let hit = i + n <= text.len()
            && &text[i + 1..i + 1 + key.len()] == key
            && text[i + n - 1] == b'"'
            && (i == 0 || text[i - 1] != b'\\');
        if !hit {
            return None;
        }
        let mut j = skip_ws(text, i + n);
        (text.get(j) == Some(&b':')).then(|| {
            j = skip_ws(text, j + 1);
            j
        })
    })
}

fn skip_ws(text: &[u8], mut i: usize) -> usize {
    while text.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
        i += 1;
    }
    i
}

fn key_then(text: &[u8], key: &[u8], value: &[u8]) -> bool {
    after_key(text, key).any(|j| text[j..].starts_with(value))
}

fn key_number(text: &[u8], key: &[u8]) -> Option<i64> {
    after_key(text, key).find_map(|j| {
        let end = text[j..]
            .iter()
            .enumerate()
            .position(|(k, b)| !(b.is_ascii_digit() || (k == 0 && *b == b'-')))
            .map_or(text.len(), |p| j + p);
        if end == text.len() {
            return None; // the number may go on in the next chunk
        }
        std::str::from_utf8(&text[j..end]).ok()?.parse().ok()
    })
}

/// A value fit for a log field: printable, at most 64 characters.
pub fn clean(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// A short fingerprint of an `Mcp-Session-Id`: correlates records without logging the session
/// id itself, which works as a capability for the session.
pub fn session_tag(parts: &http::request::Parts) -> Option<String> {
    let v = parts.headers.get("mcp-session-id")?;
    let digest = ring::digest::digest(&ring::digest::SHA256, v.as_bytes());
    Some(
        digest.as_ref()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

/// What the record of one tool call says besides its outcome.
#[derive(Debug, Clone, Default)]
pub struct CallRecord {
    pub upstream: String,
    pub server: String,
    pub tool: String,
    pub rpc_id: Option<String>,
    pub session: Option<String>,
    /// Several calls in one batch: the response's outcome is not attributed to each.
    pub batched: bool,
}

/// The response body with an [`OutcomeScan`] watching it; records once, at the end.
pub struct Audited {
    inner: ProxyBody,
    scan: OutcomeScan,
    calls: Vec<CallRecord>,
    metrics: Arc<Metrics>,
    recorded: bool,
}

impl Audited {
    pub fn new(inner: ProxyBody, calls: Vec<CallRecord>, metrics: Arc<Metrics>) -> Audited {
        Audited {
            inner,
            scan: OutcomeScan::default(),
            calls,
            metrics,
            recorded: false,
        }
    }

    fn record(&mut self) {
        if std::mem::replace(&mut self.recorded, true) {
            return;
        }
        for call in &self.calls {
            let outcome = if call.batched {
                Outcome::Unknown
            } else {
                self.scan.outcome()
            };
            let rpc_error = (!call.batched).then(|| self.scan.rpc_error()).flatten();
            self.metrics
                .tools
                .call(&call.upstream, &call.server, &call.tool, outcome);
            tracing::info!(
                upstream = %call.upstream,
                server = %call.server,
                tool = %call.tool,
                rpc_id = call.rpc_id.as_deref(),
                session = call.session.as_deref(),
                outcome = outcome.label(),
                rpc_error,
                tool_is_error = outcome == Outcome::ToolError,
                "tool call finished"
            );
        }
    }
}

impl Drop for Audited {
    fn drop(&mut self) {
        self.record();
    }
}

impl Body for Audited {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.scan.feed(data);
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => this.record(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(chunks: &[&str]) -> OutcomeScan {
        let mut s = OutcomeScan::default();
        for c in chunks {
            s.feed(c.as_bytes());
        }
        s
    }

    fn every_split(text: &str, want: Outcome, code: Option<i64>) {
        for i in 0..=text.len() {
            let s = scan(&[&text[..i], &text[i..]]);
            assert_eq!(
                (s.outcome(), s.rpc_error()),
                (want, code),
                "{text} split at {i}"
            );
        }
    }

    #[test]
    fn outcomes() {
        every_split(
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"x"}],"isError":false}}"#,
            Outcome::Ok,
            None,
        );
        every_split(
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError" : true}}"#,
            Outcome::ToolError,
            None,
        );
        every_split(
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Unknown tool"}}"#,
            Outcome::RpcError,
            Some(-32602),
        );
        every_split(
            "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"message\":\"m\",\"code\":-32050}}\n\n",
            Outcome::RpcError,
            Some(-32050),
        );
        every_split(
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"{\"isError\":true,\"error\":{\"code\":1}}"}]}}"#,
            Outcome::Ok,
            None,
        );
        assert_eq!(scan(&["{\"jsonrpc\":\"2.0\""]).outcome(), Outcome::Unknown);
        let long = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{{\"message\":\"{}\",\"code\":7}}}}",
            "m".repeat(1000)
        );
        let s = scan(&[&long[..500], &long[500..]]);
        assert_eq!(s.rpc_error(), Some(7));
    }
}
