//! Log output: human-readable lines on stderr, level from the config unless `RUST_LOG` is set.
//! Log lines never carry tokens, bodies or query strings; the call sites take care of that.

use tracing_subscriber::EnvFilter;

use crate::config::{Log, LogTarget};

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("RUST_LOG is not a valid log filter: {0}")]
    Filter(String),
    #[error("cannot set up logging: {0}")]
    Init(String),
}

/// A client-supplied value fit for a log line: at most `max` bytes of it, every byte that is
/// not printable ASCII (controls, C1, NEL, U+2028/2029, bidi overrides, any non-ASCII)
/// percent-encoded, so the line cannot be forged or reordered on a terminal or in the journal.
/// (`%` stays as it is: a path reads as it was sent.)
pub fn escape(text: &str, max: usize) -> String {
    Escaped::new(text, max).to_string()
}

/// [`escape`] done while the line is formatted: no `String` for a line the log level drops
/// (the per-request path costs nothing unless it is written).
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(&'a [u8]);

impl<'a> Escaped<'a> {
    pub fn new(text: &'a str, max: usize) -> Escaped<'a> {
        let bytes = text.as_bytes();
        Escaped(&bytes[..bytes.len().min(max)])
    }
}

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut rest = self.0;
        loop {
            // The longest run of printable ASCII goes out in one write.
            let run = rest
                .iter()
                .position(|b| !b.is_ascii_graphic())
                .unwrap_or(rest.len());
            let (plain, tail) = rest.split_at(run);
            // Printable ASCII is valid UTF-8: this never fails.
            f.write_str(std::str::from_utf8(plain).map_err(|_| std::fmt::Error)?)?;
            let Some((&b, tail)) = tail.split_first() else {
                return Ok(());
            };
            write!(f, "%{b:02X}")?;
            rest = tail;
        }
    }
}

/// Installs the global subscriber: journald records when asked or when stderr is the journal
/// (`JOURNAL_STREAM`), human-readable stderr otherwise.
pub fn init(config: &Log) -> Result<(), LogError> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => {
            EnvFilter::try_new(v).map_err(|e| LogError::Filter(e.to_string()))?
        }
        _ => EnvFilter::try_new(&config.level).map_err(|e| LogError::Filter(e.to_string()))?,
    };
    let want_journal = match config.target {
        LogTarget::Journald => true,
        LogTarget::Stderr => false,
        LogTarget::Auto => stderr_is_journal(),
    };
    let journal = if want_journal {
        match crate::control::journald::JournaldLayer::new() {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("mcpproxyd: cannot log to journald ({e}); logging to stderr");
                None
            }
        }
    } else {
        None
    };
    let registry = tracing_subscriber::registry().with(filter);
    match journal {
        Some(layer) => registry.with(layer).try_init(),
        None => registry
            .with(crate::control::log_line::LineLayer::stderr())
            .try_init(),
    }
    .map_err(|e| LogError::Init(e.to_string()))
}

/// `JOURNAL_STREAM` (`DEV:INODE`) names our stderr: systemd connected it to the journal.
fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let value = value.to_string_lossy();
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    match nix::sys::stat::fstat(std::io::stderr()) {
        Ok(st) => st.st_dev == dev && st.st_ino == ino,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_leaves_only_printable_ascii() {
        assert_eq!(escape("/a/b%20c", 100), "/a/b%20c");
        assert_eq!(escape("/x/\u{9b}31m\u{202e}", 100), "/x/%C2%9B31m%E2%80%AE");
        assert_eq!(escape("a\u{85}b\u{2028} ", 100), "a%C2%85b%E2%80%A8%20");
        assert_eq!(escape("abcdef", 3), "abc");
        // The cut may fall inside a character: its first bytes are escaped, never split raw.
        assert_eq!(escape("ab\u{202e}", 3), "ab%E2");
    }

    #[test]
    fn escaped_formats_as_escape_does() {
        for text in ["/a/b", "", "\u{1b}[31m", "x\ny\rz\t", "/caf\u{e9}/%41"] {
            assert_eq!(
                Escaped::new(text, 512).to_string(),
                escape(text, 512),
                "{text:?}"
            );
        }
        assert_eq!(Escaped::new("\u{1b}[31m", 512).to_string(), "%1B[31m");
    }
}
