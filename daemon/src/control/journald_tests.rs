//! The journald layer's names and encoding, and its records against the allocating
//! implementation it replaced (kept here as the reference: the bytes sent must not change).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use tracing_subscriber::layer::SubscriberExt;

use super::*;

fn field_name(name: &str) -> Option<String> {
    let mut out = Vec::new();
    put_field_name(&mut out, name).then(|| String::from_utf8(out).unwrap())
}

#[test]
fn field_names_are_journal_names() {
    assert_eq!(field_name("server").as_deref(), Some("MCP_SERVER"));
    assert_eq!(field_name("latency.ms").as_deref(), Some("MCP_LATENCY_MS"));
    assert_eq!(field_name("_hidden").as_deref(), Some("MCP_HIDDEN"));
    assert_eq!(field_name("__"), None);
    assert_eq!(field_name("naïve.ü").as_deref(), Some("MCP_NA_VE__"));
    assert_eq!(field_name("ü_9x").as_deref(), Some("MCP_X"));
}

#[test]
fn values_with_newlines_use_the_binary_form() {
    let mut out = Vec::new();
    put(&mut out, "A", b"x");
    put(&mut out, "B", b"1\n2");
    let mut want = b"A=x\nB\n".to_vec();
    want.extend_from_slice(&3u64.to_le_bytes());
    want.extend_from_slice(b"1\n2\n");
    assert_eq!(out, want);
}

/// The field name of the implementation before the per-thread record.
fn reference_field_name(name: &str) -> Option<String> {
    let upper: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' => c.to_ascii_uppercase(),
            'A'..='Z' | '0'..='9' | '_' => c,
            _ => '_',
        })
        .collect();
    let trimmed = upper.trim_start_matches(|c: char| c == '_' || c.is_ascii_digit());
    (!trimmed.is_empty() && trimmed.len() <= 60).then(|| format!("MCP_{trimmed}"))
}

#[derive(Default)]
struct Collect {
    message: String,
    fields: Vec<(String, String)>,
}

impl Visit for Collect {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.fields
                .push((field.name().to_string(), value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.fields
                .push((field.name().to_string(), format!("{value:?}")));
        }
    }
}

/// The datagram of the implementation before the per-thread record.
fn reference_record(event: &Event<'_>, identifier: &str) -> Vec<u8> {
    let mut c = Collect::default();
    event.record(&mut c);
    let mut out = Vec::with_capacity(256);
    let mut message = c.message.clone();
    for (k, v) in &c.fields {
        let _ = write!(message, " {k}={v}");
    }
    put(&mut out, "MESSAGE", message.as_bytes());
    put(
        &mut out,
        "PRIORITY",
        priority(event.metadata().level()).as_bytes(),
    );
    put(&mut out, "SYSLOG_IDENTIFIER", identifier.as_bytes());
    put(&mut out, "TARGET", event.metadata().target().as_bytes());
    for (k, v) in &c.fields {
        if let Some(name) = reference_field_name(k) {
            put(&mut out, &name, v.as_bytes());
        }
    }
    out.truncate(MAX_RECORD);
    out
}

/// A datagram of this layer and the reference's for one event.
type Pair = (Vec<u8>, Vec<u8>);

/// Encodes every event both ways.
#[derive(Clone, Default)]
struct Both(Arc<Mutex<Vec<Pair>>>);

impl<S: Subscriber> Layer<S> for Both {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let ours = RECORD.with(|r| r.borrow_mut().encode(event, "mcpproxyd").to_vec());
        let theirs = reference_record(event, "mcpproxyd");
        self.0.lock().unwrap().push((ours, theirs));
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot save")]
struct Failure;

#[test]
fn records_are_the_bytes_the_allocating_version_sent() {
    let both = Both::default();
    let layer = both.clone();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let addr: std::net::SocketAddr = "127.0.0.1:50312".parse().unwrap();
        tracing::info!(
            client = %addr,
            key = "app",
            status = 200u16,
            decision = "allowed",
            rpc_method = Some("tools/call"),
            tool = None::<&str>,
            latency_ms = 3u64,
            "proxied"
        );
        tracing::warn!(
            delta = -5i64,
            min = i64::MIN,
            max = u64::MAX,
            on = true,
            off = false,
            ratio = 0.5f64,
            "numbers {}",
            42
        );
        tracing::error!(
            error = &Failure as &(dyn std::error::Error + 'static),
            "failed"
        );
        tracing::debug!(
            r#type = "x",
            lines = "one\ntwo",
            path = ?"/a\"b",
            uni = "café",
            _9lead = 1u64,
            __ = 2u64,
            "naïve-café.ü" = 3u64,
            "ü_9x" = 4u64,
            "é" = 5u64,
            "message\nwith a newline"
        );
        tracing::info!(message = "explicit", after = 1u64);
        tracing::info!(message = 7u64, flag = true);
        tracing::info!(first = 1u64, second = "two");
        tracing::trace!("");
        let long = "y".repeat(MAX_RECORD);
        tracing::info!(long = %long, "cut at the cap");
        tracing::info!(n = 1u64, "short after long");
    });
    let pairs = both.0.lock().unwrap();
    assert_eq!(pairs.len(), 10);
    for (ours, theirs) in pairs.iter() {
        assert_eq!(
            String::from_utf8_lossy(ours),
            String::from_utf8_lossy(theirs)
        );
        assert_eq!(ours, theirs);
    }
    let first = String::from_utf8_lossy(&pairs[0].0).into_owned();
    assert!(
        first.starts_with(
            "MESSAGE=proxied client=127.0.0.1:50312 key=app status=200 decision=allowed \
             rpc_method=tools/call latency_ms=3\nPRIORITY=6\nSYSLOG_IDENTIFIER=mcpproxyd\n"
        ),
        "{first}"
    );
}
