//! Finds the line of a key in the config text, so every error can point at it.

use toml::de::{DeTable, DeValue};

use super::ConfigError;

/// A segment of a key path: a table key or an array index.
#[derive(Debug, Clone, Copy)]
pub enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// The config text with its parsed, spanned document.
pub struct Locator<'a> {
    file: &'a str,
    text: &'a str,
    doc: Option<toml::Spanned<DeTable<'a>>>,
}

impl<'a> Locator<'a> {
    pub fn new(file: &'a str, text: &'a str) -> Self {
        Locator {
            file,
            text,
            doc: DeTable::parse(text).ok(),
        }
    }

    /// An error at the key `path` (its line if the file has the key, else none).
    pub fn error(&self, path: &[Seg<'_>], message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            line: self.line_of(path),
            key: display_path(path),
            message: message.into(),
        }
    }

    /// An error from the TOML parser or serde, with its line and, where it is a key, the key.
    pub fn parse_error(&self, err: &toml::de::Error) -> ConfigError {
        let span = err.span();
        let line = span.as_ref().map(|s| self.line_at(s.start));
        let key = span
            .and_then(|s| self.text.get(s))
            .filter(|k| !k.is_empty() && k.len() < 64 && !k.contains(['\n', '=', '[']))
            .unwrap_or_default()
            .trim()
            .to_string();
        ConfigError {
            file: self.file.to_string(),
            line,
            key,
            message: err.message().trim().to_string(),
        }
    }

    fn line_at(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn line_of(&self, path: &[Seg<'_>]) -> Option<usize> {
        let doc = self.doc.as_ref()?;
        let mut table: &DeTable<'_> = doc.get_ref();
        let mut value: Option<&toml::Spanned<DeValue<'_>>> = None;
        let mut key_span = None;
        for (i, seg) in path.iter().enumerate() {
            if i > 0 {
                let current = value?;
                match (seg, current.get_ref()) {
                    (Seg::Index(n), DeValue::Array(items)) => {
                        value = items.get(*n);
                        // An array of tables has no better place than its element.
                        key_span = value.map(|v| v.span());
                        continue;
                    }
                    (Seg::Key(_), DeValue::Table(t)) => table = t,
                    _ => break,
                }
            }
            match seg {
                Seg::Key(name) => {
                    let (k, v) = table.iter().find(|(k, _)| k.get_ref() == name)?;
                    key_span = Some(k.span());
                    value = Some(v);
                }
                Seg::Index(_) => return None,
            }
        }
        key_span.map(|s| self.line_at(s.start))
    }
}

/// `upstream[0].url`-style text for a key path.
pub fn display_path(path: &[Seg<'_>]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(n) => out.push_str(&format!("[{n}]")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[listen]\naddresses = [\"x\"]\n\n[[upstream]]\nname = \"a\"\n\n[[upstream]]\nname = \"b\"\nurl = \"u\"\n\n[auth.p]\nkind = \"static\"\n";

    #[test]
    fn finds_lines_of_nested_keys() {
        let l = Locator::new("f.toml", TEXT);
        let line = |p: &[Seg]| l.error(p, "m").line;
        assert_eq!(line(&[Seg::Key("listen"), Seg::Key("addresses")]), Some(2));
        assert_eq!(
            line(&[Seg::Key("upstream"), Seg::Index(1), Seg::Key("url")]),
            Some(9)
        );
        assert_eq!(
            line(&[Seg::Key("upstream"), Seg::Index(0), Seg::Key("name")]),
            Some(5)
        );
        assert_eq!(
            line(&[Seg::Key("auth"), Seg::Key("p"), Seg::Key("kind")]),
            Some(12)
        );
        assert_eq!(line(&[Seg::Key("acl"), Seg::Key("allowed_servers")]), None);
    }

    #[test]
    fn error_text_names_file_line_and_key() {
        let l = Locator::new("f.toml", TEXT);
        let e = l.error(
            &[Seg::Key("upstream"), Seg::Index(1), Seg::Key("url")],
            "bad",
        );
        assert_eq!(e.to_string(), "f.toml:9: upstream[1].url: bad");
    }
}
