//! Server-sent events: formatting for the test upstream, incremental parsing for test clients.

use bytes::Bytes;

/// One parsed event. `data` joins multiple `data:` lines with `\n`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any (absent means `message`).
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The `id:` field, if any.
    pub id: Option<String>,
}

/// Formats one event; `name` `None` writes a data-only event.
pub fn format_event(name: Option<&str>, data: &str) -> Bytes {
    let mut out = String::new();
    if let Some(name) = name {
        out.push_str("event: ");
        out.push_str(name);
        out.push('\n');
    }
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// Splits a byte stream into events as chunks arrive, whatever the chunk boundaries.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    current: SseEvent,
    has_field: bool,
    data_lines: usize,
}

// === impl SseParser ===

impl SseParser {
    /// A parser with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk and returns the events it completed. Comment-only and empty
    /// blocks (keep-alives) produce no event.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            if line.is_empty() {
                if self.has_field {
                    events.push(std::mem::take(&mut self.current));
                    self.has_field = false;
                    self.data_lines = 0;
                }
                continue;
            }
            self.field(&line);
        }
        events
    }

    fn field(&mut self, line: &str) {
        if line.starts_with(':') {
            return;
        }
        let (name, value) = match line.split_once(':') {
            Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match name {
            "event" => self.current.event = Some(value.to_owned()),
            "data" => {
                if self.data_lines > 0 {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.data_lines += 1;
            }
            "id" => self.current.id = Some(value.to_owned()),
            _ => return,
        }
        self.has_field = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        chunks.iter().flat_map(|c| parser.push(c)).collect()
    }

    #[test]
    fn parses_named_event() {
        let events = parse_all(&[b"event: endpoint\ndata: /message?sessionId=1\n\n"]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event.as_deref(), Some("endpoint"));
        assert_eq!(events[0].data, "/message?sessionId=1");
    }

    #[test]
    fn survives_any_chunk_boundary() {
        let text = b"id: 7\r\ndata: a\r\ndata: b\r\n\r\n: keep-alive\n\ndata: two\n\n";
        for split in 0..text.len() {
            let events = parse_all(&[&text[..split], &text[split..]]);
            assert_eq!(events.len(), 2, "split at {split}");
            assert_eq!(events[0].data, "a\nb");
            assert_eq!(events[0].id.as_deref(), Some("7"));
            assert_eq!(events[1].data, "two");
        }
    }

    #[test]
    fn format_round_trips() {
        let bytes = format_event(Some("message"), "x\ny");
        let events = parse_all(&[&bytes]);
        assert_eq!(events[0].event.as_deref(), Some("message"));
        assert_eq!(events[0].data, "x\ny");
    }
}
