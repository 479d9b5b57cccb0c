//! Server-sent events passing through the proxy, chunk by chunk as they arrive.
//!
//! Only one kind of event is touched: the legacy SSE transport's `endpoint` event, which tells
//! the client where to POST its messages. When it names the upstream (its origin or its base
//! path), it is rewritten to the proxy's own address, so the client's next POST goes through the
//! proxy. Such an event is held until complete (at most [`MAX_HELD_EVENT`] bytes; a larger one
//! ends the stream with an error rather than pass unrewritten). Every other byte passes on as
//! soon as the scanner knows it does not belong to an `endpoint` event. An event's `event:` line
//! may come after its `data:` lines, so an event is held until its `event:` line or its end
//! (which is when a client dispatches it anyway); past [`MAX_HELD_EVENT`] it passes on while the
//! scanner watches its lines, and an `event: endpoint` line then ends the stream with an error.
//!
//! A second use: [`Rewriter::filtering`] holds every event (one at a time, up to its cap) and
//! hands its data to a filter, which tool policy uses to take denied tools out of `tools/list`
//! results. An event over the cap ends the stream with an error, never passes unfiltered.

use bytes::{Bytes, BytesMut};

/// The largest event the proxy will hold to rewrite.
pub const MAX_HELD_EVENT: usize = 64 * 1024;

/// How an `endpoint` event's target maps from the upstream to the proxy.
#[derive(Debug, Clone)]
pub struct EndpointMap {
    /// `scheme://host[:port]` of the upstream URL.
    pub upstream_origin: String,
    /// The upstream URL's path, without trailing slash (`""` for the root).
    pub upstream_base: String,
    /// The local mount prefix (`/` or `/x`).
    pub mount: String,
    /// `http://HOST` as the client addressed the proxy.
    pub proxy_origin: String,
}

impl EndpointMap {
    /// The rewritten target of an `endpoint` event, or `None` to leave it unchanged.
    pub fn rewrite(&self, data: &str) -> Option<String> {
        let data = data.trim();
        let (path_and_query, absolute) = if data.starts_with('/') && !data.starts_with("//") {
            (data.to_string(), false)
        } else {
            let url = url::Url::parse(data).ok()?;
            if url.origin().ascii_serialization() != self.upstream_origin {
                return None;
            }
            let mut pq = url.path().to_string();
            if let Some(q) = url.query() {
                pq.push('?');
                pq.push_str(q);
            }
            (pq, true)
        };
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query.as_str(), None),
        };
        if !crate::proxy::path::under(path, &self.upstream_base) {
            // Not ours to map; an absolute URL to the upstream outside its base stays pointed at
            // the upstream, where the client holds no credentials.
            return None;
        }
        let mut local = crate::proxy::path::to_local(&self.mount, &self.upstream_base, path);
        if let Some(q) = query {
            local.push('?');
            local.push_str(q);
        }
        Some(if absolute {
            format!("{}{local}", self.proxy_origin)
        } else {
            local
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// At the start of an event: holding its first line to decide.
    Deciding,
    /// Inside an event that is not an `endpoint` event: bytes pass straight on.
    Passing,
    /// Inside an `endpoint` event: held until its blank line.
    Holding,
    /// Inside an undecided event that outgrew the cap: bytes pass on, lines are watched for
    /// `event: endpoint`, which fails the stream.
    Watching,
}

/// The most spare capacity the hold buffer keeps between events.
const KEEP_HELD: usize = 1024;

/// Enough of a line to recognise `event: endpoint` (longer lines are something else).
const LINE_HEAD: usize = 32;

/// Why a stream had to be cut: an event to rewrite or filter exceeded this many bytes.
#[derive(Debug, thiserror::Error)]
#[error("an SSE event to rewrite exceeded {0} bytes; the stream was closed")]
pub struct EventTooLarge(pub usize);

/// Rewrites the data of a held event (its `data:` lines joined by `\n`), given its `event:`
/// type if it has one; `None` keeps it.
pub type EventFilter = Box<dyn FnMut(Option<&str>, &str) -> Option<String> + Send + Sync>;

/// The incremental scanner. Feed it chunks; it returns what may be sent on now.
pub struct Rewriter {
    map: EndpointMap,
    mode: Mode,
    held: BytesMut,
    /// The previous byte was `\r` (a following `\n` belongs to the same line end).
    after_cr: bool,
    /// The scanner is at the start of a line.
    line_start: bool,
    /// In [`Mode::Watching`]: the first bytes of the current line.
    line_head: Vec<u8>,
    /// Whether `endpoint` events are rewritten (not by a filtering rewriter).
    endpoints: bool,
    /// Holds every event and rewrites its data (see [`Rewriter::filtering`]).
    filter: Option<EventFilter>,
    hold_limit: usize,
}

impl std::fmt::Debug for Rewriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rewriter")
            .field("mode", &self.mode)
            .field("held", &self.held.len())
            .field("filtering", &self.filter.is_some())
            .finish_non_exhaustive()
    }
}

impl Rewriter {
    pub fn new(map: EndpointMap) -> Rewriter {
        Rewriter {
            map,
            mode: Mode::Deciding,
            held: BytesMut::new(),
            after_cr: false,
            line_start: true,
            line_head: Vec::new(),
            endpoints: true,
            filter: None,
            hold_limit: MAX_HELD_EVENT,
        }
    }

    /// A rewriter that leaves `endpoint` events alone and passes the data of every event,
    /// held whole (at most `hold_limit` bytes), through `filter`.
    pub fn filtering(filter: EventFilter, hold_limit: usize) -> Rewriter {
        let never = EndpointMap {
            upstream_origin: String::new(),
            upstream_base: String::new(),
            mount: "/".into(),
            proxy_origin: String::new(),
        };
        Rewriter {
            endpoints: false,
            filter: Some(filter),
            hold_limit,
            ..Rewriter::new(never)
        }
    }

    /// Processes one chunk; returns the bytes to forward now (possibly empty).
    pub fn feed(&mut self, chunk: Bytes) -> Result<Bytes, EventTooLarge> {
        if self.passes_whole(&chunk) {
            return Ok(chunk);
        }
        self.scan(chunk)
    }

    /// Whether `chunk` passes on as it came, with the scanner's state as it was: at an event's
    /// start, nothing held, a chunk of whole events (it ends with a blank line) with no CR and
    /// no `endpoint` anywhere, so none of its events is an `endpoint` event (the only kind held
    /// and rewritten when nothing filters), none is held past its end and all of it goes on,
    /// which is what [`Rewriter::scan`] would send (byte by byte, through the hold buffer).
    /// Streams of untyped events (`data:` lines only) and of typed ones (`event: message`, as
    /// most MCP servers send) take this path, an event or a few at a time.
    fn passes_whole(&self, chunk: &[u8]) -> bool {
        self.filter.is_none()
            && self.mode == Mode::Deciding
            && self.held.is_empty()
            && self.line_start
            && !self.after_cr
            && chunk.ends_with(b"\n\n")
            && memchr::memchr(b'\r', chunk).is_none()
            && !mentions_endpoint(chunk)
    }

    /// [`Rewriter::feed`] byte by byte.
    fn scan(&mut self, chunk: Bytes) -> Result<Bytes, EventTooLarge> {
        let mut out = BytesMut::new();
        let mut pass_from = 0; // start of the current run of bytes passing through untouched
        for (i, &b) in chunk.iter().enumerate() {
            let was_cr = std::mem::replace(&mut self.after_cr, b == b'\r');
            let is_eol = b == b'\r' || (b == b'\n' && !was_cr);
            if b == b'\n' && was_cr {
                // Second half of CRLF: belongs to the line end already seen, and goes wherever
                // that went. In `Deciding` the CR was sent on already (nothing is held then).
                match self.mode {
                    Mode::Holding => self.held.extend_from_slice(&[b]),
                    Mode::Deciding if self.held.is_empty() => {
                        out.extend_from_slice(b"\n");
                        pass_from = i + 1;
                    }
                    Mode::Deciding => self.held.extend_from_slice(&[b]),
                    Mode::Passing | Mode::Watching => {}
                }
                continue;
            }
            if !matches!(self.mode, Mode::Passing | Mode::Watching) {
                self.held.extend_from_slice(&[b]);
                let holding = self.mode == Mode::Holding || self.filter.is_some();
                if self.held.len() > self.hold_limit && holding {
                    return Err(EventTooLarge(self.hold_limit));
                }
            }
            if !is_eol {
                self.line_start = false;
                if self.mode == Mode::Watching && self.line_head.len() <= LINE_HEAD {
                    self.line_head.push(b);
                }
                continue;
            }
            let blank_line = self.line_start;
            self.line_start = true;
            match self.mode {
                Mode::Watching if !blank_line => {
                    let line = std::mem::take(&mut self.line_head);
                    if line.len() <= LINE_HEAD && field_value(&line, b"event") == Some(b"endpoint")
                    {
                        return Err(EventTooLarge(MAX_HELD_EVENT));
                    }
                }
                Mode::Passing | Mode::Watching if blank_line => {
                    // End of event: what follows starts a new one.
                    out.extend_from_slice(&chunk[pass_from..=i]);
                    pass_from = i + 1;
                    self.mode = Mode::Deciding;
                }
                Mode::Passing | Mode::Watching => {}
                Mode::Deciding => {
                    let decided = self.decide(blank_line);
                    // Known not to be an endpoint (another type, or ended without a type): send
                    // what was held. A CRLF's LF follows its CR out, as passing bytes do.
                    if decided == Mode::Passing || blank_line {
                        out.extend_from_slice(&self.held.split());
                    }
                    self.mode = decided;
                    pass_from = i + 1;
                }
                Mode::Holding if blank_line => {
                    let event = self.held.split().freeze();
                    out.extend_from_slice(&self.rewrite_event(&event));
                    self.mode = Mode::Deciding;
                    pass_from = i + 1;
                }
                Mode::Holding => {}
            }
        }
        if matches!(self.mode, Mode::Passing | Mode::Watching) {
            out.extend_from_slice(&chunk[pass_from..]);
        } else if self.mode == Mode::Deciding
            && self.held.len() > MAX_HELD_EVENT
            && self.filter.is_none()
        {
            // Too much to hold undecided: let it pass, but watch for a late `event: endpoint`.
            let tail = match self.held.iter().rposition(|&b| b == b'\n' || b == b'\r') {
                Some(i) => &self.held[i + 1..],
                None => &self.held[..],
            };
            self.line_head = tail[..tail.len().min(LINE_HEAD + 1)].to_vec();
            out.extend_from_slice(&self.held.split());
            self.mode = Mode::Watching;
        }
        // A large held event leaves its buffer behind; a stream that then sits idle for hours
        // should not keep it.
        if self.held.is_empty() && self.held.capacity() > KEEP_HELD {
            self.held = BytesMut::new();
        }
        Ok(out.freeze())
    }

    /// Decides what the event that starts with the line just held is.
    fn decide(&self, blank_line: bool) -> Mode {
        if blank_line {
            // An empty event (or a comment-only one ended): start over.
            return Mode::Deciding;
        }
        let line = last_line(&self.held);
        // Only an `event:` line decides the type; comments, `data:`, `id:`, `retry:` and
        // unknown fields may come before it: keep holding.
        match field_value(line, b"event") {
            Some(v) if v == b"endpoint" && self.endpoints => Mode::Holding,
            _ if self.filter.is_some() => Mode::Holding,
            Some(_) => Mode::Passing,
            None => Mode::Deciding,
        }
    }

    /// Rewrites a complete held event (`endpoint`, or any under a filter), keeping its other
    /// lines as they were.
    fn rewrite_event(&mut self, event: &[u8]) -> Bytes {
        let Ok(text) = std::str::from_utf8(event) else {
            return Bytes::copy_from_slice(event);
        };
        let data: Vec<&str> = split_lines(text)
            .filter_map(|(l, _)| l.strip_prefix("data:"))
            .map(|v| v.strip_prefix(' ').unwrap_or(v))
            .collect();
        let new = match self.filter.as_mut() {
            Some(filter) => {
                let kind = split_lines(text)
                    .filter_map(|(l, _)| l.strip_prefix("event:"))
                    .map(|v| v.strip_prefix(' ').unwrap_or(v))
                    .last();
                filter(kind, &data.join("\n"))
            }
            None => self.map.rewrite(&data.join("\n")),
        };
        let Some(new) = new else {
            return Bytes::copy_from_slice(event);
        };
        let mut out = String::with_capacity(event.len() + 32);
        let mut wrote_data = false;
        for (line, eol) in split_lines(text) {
            if line.starts_with("data:") {
                if !wrote_data {
                    out.push_str("data: ");
                    out.push_str(&new);
                    out.push_str(eol);
                    wrote_data = true;
                }
            } else {
                out.push_str(line);
                out.push_str(eol);
            }
        }
        Bytes::from(out)
    }
}

/// Whether `endpoint` occurs anywhere in `chunk`, found from its `p`s: a vector scan for one
/// byte, where a substring search over the few dozen bytes of an event hashes them one by one.
fn mentions_endpoint(chunk: &[u8]) -> bool {
    memchr::memchr_iter(b'p', chunk).any(|i| i >= 3 && chunk[i - 3..].starts_with(b"endpoint"))
}

/// Lines with their terminators (`\r\n`, `\n` or `\r`).
fn split_lines(text: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest.find(['\r', '\n']).unwrap_or(rest.len());
        let eol_len = if rest[end..].starts_with("\r\n") {
            2
        } else if end < rest.len() {
            1
        } else {
            0
        };
        let (line, eol) = (&rest[..end], &rest[end..end + eol_len]);
        rest = &rest[end + eol_len..];
        Some((line, eol))
    })
}

/// The last complete line of `held` (which ends with a line terminator), without it.
fn last_line(held: &[u8]) -> &[u8] {
    let body = held
        .strip_suffix(b"\r\n")
        .or_else(|| held.strip_suffix(b"\n"))
        .or_else(|| held.strip_suffix(b"\r"))
        .unwrap_or(held);
    match body.iter().rposition(|&b| b == b'\n' || b == b'\r') {
        Some(i) => &body[i + 1..],
        None => body,
    }
}

/// The value of an SSE field line `name: value` (one optional space after the colon).
fn field_value<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let rest = line.strip_prefix(name)?;
    let value = rest.strip_prefix(b":")?;
    Some(value.strip_prefix(b" ").unwrap_or(value))
}

#[cfg(test)]
#[path = "sse_tests.rs"]
mod tests;
