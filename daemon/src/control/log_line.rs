//! The stderr log layer: one line per event, the same text as tracing-subscriber's fmt layer
//! with `with_ansi(false)` and `with_target(false)` (tests and operators grep these lines):
//!
//! `2026-12-01T13:50:06.120276Z  INFO proxied client=127.0.0.1:50312 key="app" status=200`
//!
//! Why not the fmt layer itself: it spent ~1/6 of a proxied request's instructions on this
//! text (~28k of ~166k Ir per `tools/call`, callgrind; `Writer::write_fmt` for every piece,
//! `nu_ansi_term` styles even with ANSI off, the whole timestamp through `core::fmt` per line,
//! stderr's lock); this layer takes ~7k. Here the line is built in a
//! reused per-thread buffer, plain strings and numbers are copied without `core::fmt`, the
//! second of the timestamp is formatted once a second ([`log_time`]), and the line goes out in
//! one `write(2)` (on a proxy worker, with the other lines of its busy spell: [`log_hold`]); a
//! failed write loses the line and nothing else.
//!
//! The rules copied from tracing-subscriber 0.3's `DefaultVisitor` and `Format<Full>`:
//! - timestamp, space, level right-aligned in 5 columns, space, then the fields in the order
//!   they were recorded, separated by one space; `message` is written as its value alone,
//!   every other field as `name=value` (a leading `r#` of the name dropped);
//! - values are written with `Debug` (`%` values are `Display`, so raw; `&str` quoted);
//! - the message, and the text of error values, have ANSI control characters (ESC, BEL, BS,
//!   FF, DEL, C1) escaped; an error with sources is `text name.sources=[text, text]`;
//! - `log.*` fields are written like any other (tracing-subscriber skips them only with its
//!   `tracing-log` feature, which this build does not enable);
//! - an event whose formatting fails (a value's `Debug` returned an error) is not written.
//!
//! [`log_time`]: super::log_time
//! [`log_hold`]: super::log_hold

use std::cell::RefCell;
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

use super::log_time;

/// A buffer grown past this by a long line is not kept for the next one.
const KEEP_CAPACITY: usize = 16 * 1024;

/// Where finished lines go.
pub trait LineSink: Send + Sync + 'static {
    /// Writes one line (ending with `\n`); errors are the sink's to swallow.
    fn write_line(&self, line: &[u8]);

    /// Writes the line of an event at `level`; a sink may hold lines below warning back.
    fn write_event(&self, line: &[u8], _level: &Level) {
        self.write_line(line);
    }
}

/// The process's stderr, written with `write(2)` directly, no lock; on a proxy worker, lines
/// below warning are held until the worker goes idle ([`super::log_hold`]).
pub struct Stderr;

impl LineSink for Stderr {
    fn write_line(&self, line: &[u8]) {
        write_stderr(line);
    }

    fn write_event(&self, line: &[u8], level: &Level) {
        let urgent = matches!(*level, Level::WARN | Level::ERROR);
        if !super::log_hold::offer(line, urgent) {
            write_stderr(line);
        }
    }
}

/// Writes `bytes` (whole lines) to stderr: one write (a pipe takes up to PIPE_BUF bytes at
/// once, atomically), the loop only finishing what the kernel took in part.
pub(super) fn write_stderr(bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        match nix::unistd::write(std::io::stderr(), rest) {
            Ok(0) => return,
            Ok(n) => rest = &rest[n..],
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
    }
}

/// The layer: [`LineLayer::stderr`] for the daemon, any [`LineSink`] for tests.
pub struct LineLayer<W = Stderr> {
    sink: W,
}

impl LineLayer<Stderr> {
    pub fn stderr() -> LineLayer<Stderr> {
        LineLayer { sink: Stderr }
    }
}

impl<W: LineSink> LineLayer<W> {
    pub fn new(sink: W) -> LineLayer<W> {
        LineLayer { sink }
    }
}

thread_local! {
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl<S: Subscriber, W: LineSink> Layer<S> for LineLayer<W> {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let write = |buf: &mut Vec<u8>| {
            buf.clear();
            if format_line(buf, event).is_ok() {
                self.sink.write_event(buf, event.metadata().level());
            }
        };
        // An event while this thread's buffer is in use (a value's Debug logging through a
        // dispatcher of its own; tracing drops nested events of the same one), or during
        // thread teardown, gets a buffer of its own.
        let reused = BUF.try_with(|cell| match cell.try_borrow_mut() {
            Ok(mut buf) => {
                write(&mut buf);
                if buf.capacity() > KEEP_CAPACITY {
                    *buf = Vec::new();
                }
                true
            }
            Err(_) => false,
        });
        if reused != Ok(true) {
            write(&mut Vec::new());
        }
    }
}

/// Appends the line of `event`, `\n` included; an error if a value could not be formatted
/// (what was appended is then incomplete).
pub fn format_line(out: &mut Vec<u8>, event: &Event<'_>) -> fmt::Result {
    log_time::now(out);
    out.push(b' ');
    out.extend_from_slice(level(event.metadata().level()));
    out.push(b' ');
    let mut fields = Fields {
        out,
        first: true,
        failed: false,
    };
    event.record(&mut fields);
    if fields.failed {
        return Err(fmt::Error);
    }
    out.push(b'\n');
    Ok(())
}

fn level(level: &Level) -> &'static [u8] {
    match *level {
        Level::TRACE => b"TRACE",
        Level::DEBUG => b"DEBUG",
        Level::INFO => b" INFO",
        Level::WARN => b" WARN",
        Level::ERROR => b"ERROR",
    }
}

/// The visitor: appends each field as the fmt layer's `DefaultVisitor` would.
struct Fields<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
    failed: bool,
}

impl Fields<'_> {
    /// The space before every field but the first.
    fn pad(&mut self) {
        if !std::mem::replace(&mut self.first, false) {
            self.out.push(b' ');
        }
    }

    /// Starts a field: the space, and `name=` unless it is the message.
    fn start(&mut self, field: &Field) -> bool {
        self.pad();
        let name = field.name();
        if name == "message" {
            return true;
        }
        let name = name.strip_prefix("r#").unwrap_or(name);
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'=');
        false
    }

    /// A value whose `Debug` text is `text` and has no control characters.
    fn plain(&mut self, field: &Field, text: &[u8]) {
        if !self.failed {
            self.start(field);
            self.out.extend_from_slice(text);
        }
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.failed {
            return;
        }
        if self.start(field) {
            let _ = Escaping(Raw(self.out)).write_str(value);
        } else {
            debug_str(self.out, value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.failed {
            return;
        }
        let written = if self.start(field) {
            write!(Escaping(Raw(self.out)), "{value:?}")
        } else {
            write!(Raw(self.out), "{value:?}")
        };
        self.failed = written.is_err();
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        let mut digits = [0u8; 20];
        let text = decimal(&mut digits, value, false);
        self.plain(field, text);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        let mut digits = [0u8; 20];
        let text = decimal(&mut digits, value.unsigned_abs(), value < 0);
        self.plain(field, text);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.plain(field, if value { b"true" } else { b"false" });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let text = AnsiEscaped(format_args!("{value}"));
        match value.source() {
            Some(source) => self.record_debug(
                field,
                &format_args!("{text} {}.sources={}", field.name(), Sources(source)),
            ),
            None => self.record_debug(field, &format_args!("{text}")),
        }
    }
}

/// `value`'s `Debug` text: the string between quotes as it is when nothing in it needs an
/// escape, else what `str`'s `Debug` writes.
fn debug_str(out: &mut Vec<u8>, value: &str) {
    let plain = value
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
    if plain {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else {
        let _ = write!(Raw(out), "{value:?}");
    }
}

/// The decimal digits of `value` (with `-` before them if `negative`), at the end of `buf`.
pub(crate) fn decimal(buf: &mut [u8; 20], mut value: u64, negative: bool) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    if negative {
        // u64::MAX has 20 digits but i64's magnitude at most 19: there is room.
        at -= 1;
        buf[at] = b'-';
    }
    &buf[at..]
}

/// `fmt::Write` into a byte buffer.
pub(super) struct Raw<'a>(pub(super) &'a mut Vec<u8>);

impl fmt::Write for Raw<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Writes through to `W` with tracing-subscriber's ANSI escapes: ESC, BEL, BS, FF and DEL as
/// `\x1b` and the like, C1 controls (U+0080..=U+009F) as `\u{9b}` and the like.
struct Escaping<W>(W);

impl<W: fmt::Write> fmt::Write for Escaping<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let bytes = s.as_bytes();
        let (mut start, mut at) = (0, 0);
        while at < bytes.len() {
            let b = bytes[at];
            let c1 = b == 0xc2 && matches!(bytes.get(at + 1), Some(0x80..=0x9f));
            if !(c1 || matches!(b, 0x1b | 0x07 | 0x08 | 0x0c | 0x7f)) {
                at += 1;
                continue;
            }
            // `at` is an ASCII byte or a lead byte: both sides are whole characters.
            self.0.write_str(&s[start..at])?;
            if c1 {
                write!(self.0, "\\u{{{:x}}}", bytes[at + 1])?;
                at += 2;
            } else {
                write!(self.0, "\\x{b:02x}")?;
                at += 1;
            }
            start = at;
        }
        self.0.write_str(&s[start..])
    }
}

/// A `Display` value written with [`Escaping`] (tracing-subscriber's `EscapeGuard`).
struct AnsiEscaped<T>(T);

impl<T: fmt::Display> fmt::Display for AnsiEscaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(Escaping(f), "{}", self.0)
    }
}

/// An error and its sources as `[text, text]`.
struct Sources<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for Sources<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        let mut next = Some(self.0);
        while let Some(error) = next {
            list.entry(&format_args!("{}", AnsiEscaped(error)));
            next = error.source();
        }
        list.finish()
    }
}

#[cfg(test)]
#[path = "log_line_tests.rs"]
mod tests;
