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
#[derive(Debug)]
pub struct OutcomeScan {
    /// The last bytes seen (up to [`CARRY`]), kept inline: no allocation for a one-chunk answer.
    carry: [u8; CARRY],
    carried: usize,
    result: bool,
    is_error: bool,
    /// Inside `"error": {`, looking for its `"code"`.
    error: bool,
    code: Option<i64>,
}

impl Default for OutcomeScan {
    fn default() -> Self {
        OutcomeScan {
            carry: [0; CARRY],
            carried: 0,
            result: false,
            is_error: false,
            error: false,
            code: None,
        }
    }
}

impl OutcomeScan {
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.carried == 0 {
            // The usual one-chunk answer: scanned where it lies, no copy of it.
            self.scan(chunk);
            self.keep_tail(chunk);
            return;
        }
        let mut window = Vec::with_capacity(self.carried + chunk.len());
        window.extend_from_slice(&self.carry[..self.carried]);
        window.extend_from_slice(chunk);
        self.scan(&window);
        self.keep_tail(&window);
    }

    fn keep_tail(&mut self, seen: &[u8]) {
        let tail = &seen[seen.len().saturating_sub(CARRY)..];
        self.carry[..tail.len()].copy_from_slice(tail);
        self.carried = tail.len();
    }

    /// One pass over the window's keys: `isError` then `true`, `error` then `{`, any `result`,
    /// and the first complete number after a `code` (taken once an error is seen).
    fn scan(&mut self, window: &[u8]) {
        let mut code = None;
        for (key, j) in keys(window) {
            let value = &window[j..];
            match key {
                Key::IsError if value.starts_with(b"true") => self.is_error = true,
                Key::Error if value.starts_with(b"{") => self.error = true,
                Key::Result => self.result = true,
                Key::Code if code.is_none() => code = number_at(window, j),
                _ => {}
            }
        }
        if self.error && self.code.is_none() {
            self.code = code;
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

/// The keys the outcome depends on.
#[derive(Debug, Clone, Copy)]
enum Key {
    IsError,
    Error,
    Result,
    Code,
}

const KEYS: [(&[u8], Key); 4] = [
    (b"isError", Key::IsError),
    (b"error", Key::Error),
    (b"result", Key::Result),
    (b"code", Key::Code),
];

/// Each unescaped `"key"` of [`KEYS`] followed by optional spaces and `:`, with the position
/// of its value (after spaces).
fn keys(text: &[u8]) -> impl Iterator<Item = (Key, usize)> + '_ {
    // Only the quotes can start a key: memchr finds them many bytes at a time.
    memchr::memchr_iter(b'"', text).filter_map(move |i| {
        if i > 0 && text[i - 1] == b'\\' {
            return None;
        }
        let rest = &text[i + 1..];
        let &(name, key) = KEYS.iter().find(|(name, _)| {
            rest.len() > name.len() && rest.starts_with(name) && rest[name.len()] == b'"'
        })?;
        let j = skip_ws(text, i + name.len() + 2);
        (text.get(j) == Some(&b':')).then(|| (key, skip_ws(text, j + 1)))
    })
}

fn skip_ws(text: &[u8], mut i: usize) -> usize {
    while text.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
        i += 1;
    }
    i
}

/// The integer at `j`, unless it runs to the end of the text (it may go on in the next chunk).
fn number_at(text: &[u8], j: usize) -> Option<i64> {
    let end = text[j..]
        .iter()
        .enumerate()
        .position(|(k, b)| !(b.is_ascii_digit() || (k == 0 && *b == b'-')))
        .map_or(text.len(), |p| j + p);
    if end == text.len() {
        return None;
    }
    std::str::from_utf8(&text[j..end]).ok()?.parse().ok()
}

/// A value fit for a log field: printable, at most 64 characters.
pub fn clean(text: &str) -> String {
    // Nearly every name is short printable ASCII: copied whole, not a character at a time.
    if text.len() <= MAX_CLEAN && text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return text.to_owned();
    }
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_CLEAN)
        .collect()
}

/// How many characters of a name [`clean`] keeps.
const MAX_CLEAN: usize = 64;

/// Looked up by name, not by `&str` (which is parsed and checked on every look-up).
const MCP_SESSION_ID: http::HeaderName = http::HeaderName::from_static("mcp-session-id");

/// A short fingerprint of an `Mcp-Session-Id`: correlates records without logging the session
/// id itself, which works as a capability for the session.
pub fn session_tag(parts: &http::request::Parts) -> Option<String> {
    let v = parts.headers.get(MCP_SESSION_ID)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, v.as_bytes());
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut tag = String::with_capacity(12);
    for b in &digest.as_ref()[..6] {
        tag.push(char::from(HEX[usize::from(b >> 4)]));
        tag.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    Some(tag)
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
        record_calls(&self.calls, &self.metrics, &self.scan);
    }
}

/// The calls of a request whose client left before the upstream answered: their outcome is
/// unknown, and they are counted and logged as such (they went to the upstream, which may
/// have acted on them).
pub fn record_unanswered(calls: &[CallRecord], metrics: &Metrics) {
    record_calls(calls, metrics, &OutcomeScan::default());
}

/// Counts each call under the outcome `scan` saw in its answer and writes its record.
fn record_calls(calls: &[CallRecord], metrics: &Metrics, scan: &OutcomeScan) {
    for call in calls {
        let outcome = if call.batched {
            Outcome::Unknown
        } else {
            scan.outcome()
        };
        let rpc_error = (!call.batched).then(|| scan.rpc_error()).flatten();
        metrics
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
    fn clean_keeps_printable_names_and_drops_controls() {
        // The definition the fast path must agree with.
        let slow = |t: &str| -> String { t.chars().filter(|c| !c.is_control()).take(64).collect() };
        let long = "n".repeat(64);
        let longer = "n".repeat(65);
        for name in [
            "",
            "echo",
            "get weather",
            long.as_str(),
            longer.as_str(),
            "a\u{7f}b",
            "tab\there",
            "line\nbreak",
            "\u{1b}[31mred",
            "caf\u{e9}",
            "\u{9b}c1",
            "~!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}",
        ] {
            assert_eq!(clean(name), slow(name), "{name:?}");
        }
        assert_eq!(clean(&longer).len(), 64);
        assert_eq!(clean("tab\there"), "tabhere");
    }

    #[test]
    fn session_tags_are_the_first_six_bytes_of_the_sha256_in_hex() {
        let (parts, ()) = http::Request::builder()
            .header("mcp-session-id", "abc")
            .body(())
            .unwrap()
            .into_parts();
        // SHA-256("abc") begins ba7816bf8f01.
        assert_eq!(session_tag(&parts).as_deref(), Some("ba7816bf8f01"));
        let (none, ()) = http::Request::new(()).into_parts();
        assert_eq!(session_tag(&none), None);
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
