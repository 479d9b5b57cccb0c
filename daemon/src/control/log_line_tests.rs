//! The stderr layer's lines against tracing-subscriber's fmt layer, configured as the daemon
//! configured it before this layer replaced it.

use std::error::Error;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tracing_subscriber::layer::SubscriberExt;

use super::*;

/// Collects lines, one per `write_line` call.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl LineSink for Lines {
    fn write_line(&self, line: &[u8]) {
        let line = String::from_utf8(line.to_vec()).unwrap();
        self.0.lock().unwrap().push(line);
    }
}

/// A byte buffer for the fmt layer's writer.
#[derive(Clone, Default)]
struct Bytes(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Bytes {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("disk \u{1b}[31mfull\u{85}")]
struct Leaf;

#[derive(Debug, thiserror::Error)]
#[error("cannot write {0}")]
struct Middle(&'static str, #[source] Leaf);

#[derive(Debug, thiserror::Error)]
#[error("cannot save")]
struct Top(#[source] Middle);

#[derive(Debug)]
#[allow(dead_code)] // read through Debug
struct Peer {
    name: &'static str,
    port: u16,
}

/// Its Debug fails: the event is not written at all.
struct Broken;

impl std::fmt::Debug for Broken {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Err(std::fmt::Error)
    }
}

/// Every kind of value the daemon's log lines carry, and the corners of the rules.
fn events() {
    let addr: SocketAddr = "127.0.0.1:50312".parse().unwrap();
    let no_tool: Option<&str> = None;
    tracing::info!(
        client = %addr,
        key = "app",
        upstream = %"test",
        status = 200u16,
        decision = "allowed",
        rpc_method = Some("tools/call"),
        tool = no_tool,
        latency_ms = 3u64,
        "proxied"
    );
    tracing::warn!(
        delta = -5i64,
        min = i64::MIN,
        max = u64::MAX,
        zero = 0u64,
        on = true,
        off = false,
        ratio = 0.5f64,
        whole = 2.0f64,
        wide = -7i128,
        "numbers {} and {:?}",
        42,
        "quoted"
    );
    let top = Top(Middle("/var/x", Leaf));
    tracing::error!(
        error = &top as &(dyn Error + 'static),
        "saving failed: {}",
        crate::control::logging::Escaped::new("/a\u{1b}b", 64)
    );
    tracing::error!(error = &Leaf as &(dyn Error + 'static), "leaf only");
    tracing::debug!(
        r#type = "x",
        "r#literal" = 5u64,
        path = ?"/a\"b",
        tab = "tab\there",
        slash = "back\\slash",
        uni = "café ☕",
        ctl = "\u{1b}[31m\u{7f}",
        empty = "",
        peer = ?Peer { name: "p", port: 1 },
        peer_pretty = ?Some(Peer { name: "q", port: 2 }),
        shown = %"raw \"display\" \u{1b}",
        "message with \u{1b}[2J, \u{7}\u{8}\u{c}\u{7f}, \u{9b}\u{80}\u{9f} and \u{a0}é"
    );
    tracing::info!(
        message = "an explicit message field \u{1b}\u{9b}",
        after = 1u64
    );
    tracing::info!(first = 1u64, second = "two");
    tracing::trace!("only a message");
    tracing::info!(log.target = "mcpproxyd", log.line = 7u64, "from log");
    tracing::warn!(bytes = tracing::field::debug(&b"\x00ab"[..]), "bytes");
    tracing::info!(broken = ?Broken, "never written");
    tracing::info!("");
    tracing::warn!(reason = %crate::control::logging::Escaped::new("tool\nname", 64), "after a broken one");
}

/// The fmt layer's output of [`events`], as the daemon configured it.
fn fmt_lines() -> Vec<String> {
    let bytes = Bytes::default();
    let writer = bytes.clone();
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_target(false);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), events);
    let text = String::from_utf8(bytes.0.lock().unwrap().clone()).unwrap();
    text.split_inclusive('\n').map(str::to_string).collect()
}

fn our_lines() -> Vec<String> {
    let lines = Lines::default();
    let layer = LineLayer::new(lines.clone());
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), events);
    let lines = lines.0.lock().unwrap().clone();
    lines
}

/// The timestamp and the rest of a line; the timestamp checked for its shape.
fn split_stamp(line: &str) -> (&str, &str) {
    let (stamp, rest) = line.split_at(27);
    let shape: String = stamp
        .chars()
        .map(|c| if c.is_ascii_digit() { '9' } else { c })
        .collect();
    assert_eq!(shape, "9999-99-99T99:99:99.999999Z", "{line:?}");
    (stamp, rest)
}

#[test]
fn lines_are_the_fmt_layers_lines() {
    let theirs = fmt_lines();
    let ours = our_lines();
    // 13 events, the broken one dropped by both.
    assert_eq!(theirs.len(), 12, "{theirs:#?}");
    assert_eq!(ours.len(), theirs.len(), "{ours:#?}");
    for (ours, theirs) in ours.iter().zip(&theirs) {
        assert_eq!(split_stamp(ours).1, split_stamp(theirs).1);
        assert!(
            ours.ends_with('\n') && ours.matches('\n').count() == 1,
            "{ours:?}"
        );
    }
    // What the comparison covers, spelt out (so a change on both sides is seen too).
    let rest: Vec<&str> = ours.iter().map(|l| split_stamp(l).1).collect();
    assert_eq!(
        rest[0],
        "  INFO proxied client=127.0.0.1:50312 key=\"app\" upstream=test status=200 \
         decision=\"allowed\" rpc_method=\"tools/call\" latency_ms=3\n"
    );
    assert_eq!(
        rest[2],
        " ERROR saving failed: /a%1Bb error=cannot save error.sources=[cannot write /var/x, \
         disk \\x1b[31mfull\\u{85}]\n"
    );
    assert!(rest[4].starts_with(
        " DEBUG message with \\x1b[2J, \\x07\\x08\\x0c\\x7f, \\u{9b}\\u{80}\\u{9f} and \u{a0}é \
         type=\"x\" literal=5 path=\"/a\\\"b\" tab=\"tab\\there\""
    ));
    assert_eq!(rest[7], " TRACE only a message\n");
    assert_eq!(
        rest[8],
        "  INFO from log log.target=\"mcpproxyd\" log.line=7\n"
    );
}

#[test]
fn a_line_is_one_write() {
    let lines = Lines::default();
    let layer = LineLayer::new(lines.clone());
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let long = "x".repeat(KEEP_CAPACITY * 2);
        tracing::info!(long = %long, "long");
        tracing::info!(n = 1u64, "short after long");
    });
    let lines = lines.0.lock().unwrap();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].len() > KEEP_CAPACITY * 2 && lines[0].ends_with("x\n"));
    assert_eq!(split_stamp(&lines[1]).1, "  INFO short after long n=1\n");
}

/// Logs while it is being formatted.
struct Chatty;

impl std::fmt::Display for Chatty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        tracing::info!("from inside");
        f.write_str("chatty")
    }
}

#[test]
fn an_event_logged_while_a_line_is_built_does_not_break_it() {
    let lines = Lines::default();
    let layer = LineLayer::new(lines.clone());
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::info!(value = %Chatty, "outer");
    });
    let lines = lines.0.lock().unwrap();
    let rest: Vec<&str> = lines.iter().map(|l| split_stamp(l).1).collect();
    // tracing drops the inner event (a dispatch does not nest); the outer line is whole.
    assert_eq!(rest, ["  INFO outer value=chatty\n"]);
}

#[test]
fn the_timestamp_is_now() {
    let lines = Lines::default();
    let layer = LineLayer::new(lines.clone());
    let before = std::time::SystemTime::now();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::info!("now");
    });
    let after = std::time::SystemTime::now();
    let stamp = split_stamp(&lines.0.lock().unwrap()[0]).0.to_string();
    let text = |t: std::time::SystemTime| {
        let d = t.duration_since(std::time::UNIX_EPOCH).unwrap();
        let mut out = Vec::new();
        log_time::write(&mut out, d.as_secs() as i64, d.subsec_micros());
        String::from_utf8(out).unwrap()
    };
    // The same width and order of fields: text order is time order.
    assert!(text(before) <= stamp && stamp <= text(after), "{stamp}");
}
