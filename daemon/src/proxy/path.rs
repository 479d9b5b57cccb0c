//! Request paths in normal form: the proxy forwards a path exactly as received, so the ACL only
//! works if the path cannot mean something else to the upstream. Anything that could (dot
//! segments, doubled or encoded slashes, encoded unreserved characters, backslashes, NUL,
//! double encoding, `;` path parameters, escapes that are not UTF-8 or are controls, characters
//! whose compatibility form holds a `.`, `/`, `\` or `%`) is refused, never "cleaned up" and
//! forwarded. [`lenient_segment`] is the other side: how a lenient upstream could read a segment,
//! for the blocked list to compare against.

use std::borrow::Cow;
use std::fmt;

use unicode_normalization::UnicodeNormalization;

/// Why a path is not in normal form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    NotAbsolute,
    DotSegment,
    EmptySegment,
    Backslash,
    Nul,
    BadEscape,
    EncodedSlash,
    NeedlessEscape,
    EncodedPercent,
    Semicolon,
    Character(char),
    /// Percent-escapes whose bytes are not UTF-8 (invalid, truncated, overlong, surrogates).
    NotUtf8,
    /// An encoded C0 control or DEL.
    Control,
    /// A character whose compatibility normalisation (NFKC) holds `.`, `/`, `\` or `%`.
    Compatibility(char),
}

/// A character for a message: itself when printable ASCII, else `U+XXXX` (never raw, so no
/// control or bidi character reaches a log line or a terminal).
pub fn describe_char(c: char) -> String {
    if c.is_ascii_graphic() {
        format!("`{c}`")
    } else {
        format!("U+{:04X}", c as u32)
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::NotAbsolute => f.write_str("the path must start with `/`"),
            PathError::DotSegment => f.write_str("the path has a `.` or `..` segment"),
            PathError::EmptySegment => f.write_str("the path has an empty segment (`//`)"),
            PathError::Backslash => f.write_str("the path has a backslash"),
            PathError::Nul => f.write_str("the path has a NUL byte"),
            PathError::BadEscape => f.write_str("the path has a malformed percent-escape"),
            PathError::EncodedSlash => f.write_str("the path has an encoded `/` or `\\`"),
            PathError::NeedlessEscape => f.write_str(
                "the path percent-encodes a character that needs no encoding; send it plainly",
            ),
            PathError::EncodedPercent => {
                f.write_str("the path has an encoded `%` (double encoding)")
            }
            PathError::Semicolon => f.write_str("the path has a `;` path parameter"),
            PathError::Character(c) => {
                write!(f, "the path has the character {}", describe_char(*c))
            }
            PathError::NotUtf8 => f.write_str(
                "the path percent-encodes bytes that are not UTF-8 (invalid, truncated or overlong)",
            ),
            PathError::Control => f.write_str("the path has an encoded control character"),
            PathError::Compatibility(c) => write!(
                f,
                "the path has {}, a compatibility form of `.`, `/`, `\\` or `%`",
                describe_char(*c)
            ),
        }
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Characters allowed literally in a path (RFC 3986 `pchar` and `/`), less `;`.
fn is_path_char(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'/' | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b'='
                | b':'
                | b'@'
        )
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Checks that `path` (no query) is in normal form.
pub fn check_normal(path: &str) -> Result<(), PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    // Bytes of the current run of consecutive escapes: a character beyond ASCII is spelt as
    // one run, and must decode as UTF-8 to something that is not a dot or separator in disguise.
    let mut run: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            check_run(&mut run)?;
        }
        match bytes[i] {
            b'%' => {
                let (Some(h), Some(l)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(PathError::BadEscape);
                };
                let decoded = h << 4 | l;
                match decoded {
                    0 => return Err(PathError::Nul),
                    b'/' | b'\\' => return Err(PathError::EncodedSlash),
                    b'%' => return Err(PathError::EncodedPercent),
                    b';' => return Err(PathError::Semicolon),
                    // Anything that may stand literally has exactly one spelling: itself.
                    // (An upstream that decodes before routing must not see `%3A` become a
                    // `:` the ACL never matched.)
                    b if is_path_char(b) => return Err(PathError::NeedlessEscape),
                    0x01..=0x1f | 0x7f => return Err(PathError::Control),
                    _ => {}
                }
                run.push(decoded);
                i += 3;
                continue;
            }
            b'\\' => return Err(PathError::Backslash),
            0 => return Err(PathError::Nul),
            b';' => return Err(PathError::Semicolon),
            // Every byte before this one was ASCII, so `i` starts a character.
            b if !is_path_char(b) => {
                let c = path[i..].chars().next().unwrap_or(b as char);
                return Err(PathError::Character(c));
            }
            _ => {}
        }
        i += 1;
    }
    check_run(&mut run)?;
    // Walked, not collected: no allocation per request.
    let mut segments = path[1..].split('/').peekable();
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        match seg {
            "." | ".." => return Err(PathError::DotSegment),
            // Only the root or a trailing slash leaves an empty segment, and only at the end.
            "" if !last => return Err(PathError::EmptySegment),
            _ => {}
        }
    }
    Ok(())
}

/// Checks (and empties) a run of decoded escape bytes: UTF-8, and no character whose
/// compatibility form an upstream could take for a dot segment, a separator or an escape.
fn check_run(run: &mut Vec<u8>) -> Result<(), PathError> {
    if run.is_empty() {
        return Ok(());
    }
    let text = std::str::from_utf8(run).map_err(|_| PathError::NotUtf8)?;
    if let Some(c) = text.chars().find(|&c| is_disguised(c)) {
        return Err(PathError::Compatibility(c));
    }
    run.clear();
    Ok(())
}

/// True for a non-ASCII character whose NFKC form holds `.`, `/`, `\` or `%` (fullwidth full
/// stop, one dot leader, fullwidth solidus, small full stop, ...).
fn is_disguised(c: char) -> bool {
    !c.is_ascii()
        && std::iter::once(c)
            .nfkc()
            .any(|n| matches!(n, '.' | '/' | '\\' | '%'))
}

/// A segment as a lenient upstream could compare it: percent-decoded (invalid UTF-8 replaced),
/// NFKC-normalised, lower-cased, surrounding white space and trailing dots trimmed. Only for
/// comparing against blocked names: the path itself is forwarded as received.
pub fn lenient_segment(segment: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
    let folded: String = decoded.nfkc().flat_map(char::to_lowercase).collect();
    folded
        .trim()
        .trim_end_matches(|c: char| c == '.' || c.is_whitespace())
        .to_string()
}

/// Every segment of `path` in its [`lenient_segment`] form, joined by `/` again.
pub fn lenient_path(path: &str) -> String {
    path.split('/')
        .map(lenient_segment)
        .collect::<Vec<_>>()
        .join("/")
}

/// `path` with the hex digits of its percent-escapes in upper case (RFC 3986 6.2.2.1), so that
/// two spellings of the same octets (`%c3%a4`, `%C3%A4`) compare equal. Only for comparing:
/// the path itself is forwarded as received.
pub fn canonical_escapes(path: &str) -> Cow<'_, str> {
    let lower_escape = |w: &[u8]| w[0] == b'%' && w[1..].iter().any(u8::is_ascii_lowercase);
    if !path.as_bytes().windows(3).any(lower_escape) {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    let mut upper = 0;
    for c in path.chars() {
        if upper > 0 {
            out.push(c.to_ascii_uppercase());
            upper -= 1;
        } else {
            if c == '%' {
                upper = 2;
            }
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// True when `path` is `prefix` or below it on whole segments. An empty or `/` prefix holds
/// every path.
pub fn under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The local path of an upstream path: `base` (the upstream URL's path) replaced by `mount`.
/// `upstream_path` must be [`under`] `base`.
pub fn to_local(mount: &str, base: &str, upstream_path: &str) -> String {
    let rest = upstream_path.strip_prefix(base).unwrap_or(upstream_path);
    join(mount, rest)
}

/// The upstream path of a local path: `mount` replaced by `base`. `local` must be under `mount`.
pub fn to_upstream(mount: &str, base: &str, local: &str) -> String {
    let rest = if mount == "/" {
        // The root of a `/` mount is the upstream URL itself, not the URL plus a slash.
        if local == "/" {
            ""
        } else {
            local
        }
    } else {
        local.strip_prefix(mount).unwrap_or(local)
    };
    join(base, rest)
}

/// `prefix` + `rest`, where `prefix` is `""`, `/` or has no trailing slash and `rest` is empty
/// or starts with `/`.
fn join(prefix: &str, rest: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    match (prefix.is_empty(), rest.is_empty()) {
        (true, true) => "/".into(),
        (true, false) => rest.into(),
        (false, _) => format!("{prefix}{rest}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_normal_paths() {
        for p in [
            "/",
            "/mcp",
            "/mcp/",
            "/accounts/1001/custom/ecs/id/ECS01/mcp",
            "/a/b%20c",
            "/a/%E4%BD%A0",
            "/a/%C3%A4%C3%B6",
            "/a/%F0%9F%98%80",
            "/a/%E2%81%84",
            "/a:b@c/x=y,z+1!",
            "/.well-known/x",
            "/a/.b/..c/...",
        ] {
            assert_eq!(check_normal(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn refuses_paths_that_could_mean_another_path() {
        let cases = [
            ("mcp", PathError::NotAbsolute),
            ("", PathError::NotAbsolute),
            ("/a/../b", PathError::DotSegment),
            ("/a/./b", PathError::DotSegment),
            ("/a/..", PathError::DotSegment),
            ("/..", PathError::DotSegment),
            ("/a/%2e%2e/b", PathError::NeedlessEscape),
            ("/a/%2E./b", PathError::NeedlessEscape),
            ("/a/.%2e/b", PathError::NeedlessEscape),
            ("/a//b", PathError::EmptySegment),
            ("//a", PathError::EmptySegment),
            ("/a%2fb", PathError::EncodedSlash),
            ("/a%2Fb", PathError::EncodedSlash),
            ("/a%5cb", PathError::EncodedSlash),
            ("/a\\b", PathError::Backslash),
            ("/a%00", PathError::Nul),
            ("/a\0", PathError::Nul),
            ("/a%41", PathError::NeedlessEscape),
            ("/a%7E", PathError::NeedlessEscape),
            ("/a%3Ab", PathError::NeedlessEscape),
            ("/a%40b", PathError::NeedlessEscape),
            (
                "/a%21%24%26%27%28%29%2A%2B%2C%3D",
                PathError::NeedlessEscape,
            ),
            ("/a%2", PathError::BadEscape),
            ("/a%zz", PathError::BadEscape),
            ("/a%252e%252e", PathError::EncodedPercent),
            ("/a/..;/b", PathError::Semicolon),
            ("/a%3b", PathError::Semicolon),
            ("/a b", PathError::Character(' ')),
            ("/a\"b", PathError::Character('"')),
            ("/a?b", PathError::Character('?')),
            ("/a/%C0%AE", PathError::NotUtf8),
            ("/a/%E0%80%AE", PathError::NotUtf8),
            ("/a/%ED%A0%80", PathError::NotUtf8),
            ("/a/%FF", PathError::NotUtf8),
            ("/a/%80x", PathError::NotUtf8),
            ("/a/%C3", PathError::NotUtf8),
            ("/a/%C3x%A4", PathError::NotUtf8),
            ("/a/%01", PathError::Control),
            ("/a/%1f", PathError::Control),
            ("/a/%7F", PathError::Control),
            ("/a/%EF%BC%8E", PathError::Compatibility('\u{ff0e}')),
            ("/a/%E2%80%A4", PathError::Compatibility('\u{2024}')),
            ("/a/%E2%80%A5", PathError::Compatibility('\u{2025}')),
            ("/a/%EF%BC%8F", PathError::Compatibility('\u{ff0f}')),
            ("/a/%EF%BC%BC", PathError::Compatibility('\u{ff3c}')),
            ("/a/%EF%B9%92", PathError::Compatibility('\u{fe52}')),
            ("/a/%EF%BC%85", PathError::Compatibility('\u{ff05}')),
        ];
        for (p, e) in cases {
            assert_eq!(check_normal(p), Err(e), "{p:?}");
        }
    }

    #[test]
    fn messages_never_carry_raw_characters() {
        for c in ['\u{9b}', '\u{85}', '\u{2028}', '\u{202e}', ' '] {
            let text = PathError::Character(c).to_string();
            assert!(text.is_ascii(), "{text:?}");
        }
        assert_eq!(describe_char('\u{202e}'), "U+202E");
        assert_eq!(describe_char('?'), "`?`");
    }

    #[test]
    fn lenient_segments() {
        for (seg, want) in [
            ("RAM01", "ram01"),
            ("ram.", "ram"),
            ("ram. . ", "ram"),
            ("ram%20", "ram"),
            ("%EF%BD%92%EF%BD%81%EF%BD%8D", "ram"),
            ("R%C3%84M", "r\u{e4}m"),
            ("Ra\u{17f}", "ras"),
            ("mcp", "mcp"),
        ] {
            assert_eq!(lenient_segment(seg), want, "{seg}");
        }
        assert_eq!(lenient_path("/A./b%20/C"), "/a/b/c");
    }

    #[test]
    fn under_matches_whole_segments() {
        assert!(under("/x/s1", "/x/s1"));
        assert!(under("/x/s1/mcp", "/x/s1"));
        assert!(under("/x/s1/", "/x/s1"));
        assert!(!under("/x/s10", "/x/s1"));
        assert!(!under("/x/S1", "/x/s1"));
        assert!(!under("/x", "/x/s1"));
        assert!(under("/anything", "/"));
        assert!(under("/anything", ""));
        assert!(under("/x/s1/mcp", "/x/s1/"));
    }

    #[test]
    fn escapes_compare_in_upper_case() {
        assert_eq!(canonical_escapes("/x/%c3%a4/y"), "/x/%C3%A4/y");
        assert_eq!(canonical_escapes("/x/%C3%a4"), "/x/%C3%A4");
        assert_eq!(canonical_escapes("/abc/%20x"), "/abc/%20x");
        assert!(matches!(canonical_escapes("/abc/%E4"), Cow::Borrowed(_)));
        assert_eq!(canonical_escapes("/a%"), "/a%");
    }

    #[test]
    fn mount_mapping() {
        assert_eq!(to_upstream("/", "", "/a/b"), "/a/b");
        assert_eq!(to_upstream("/gh", "/mcp", "/gh/x"), "/mcp/x");
        assert_eq!(to_upstream("/gh", "/mcp", "/gh"), "/mcp");
        assert_eq!(to_upstream("/gh", "", "/gh"), "/");
        assert_eq!(to_upstream("/gh", "", "/gh/x"), "/x");
        assert_eq!(to_upstream("/", "/base", "/x"), "/base/x");
        assert_eq!(to_upstream("/", "/base", "/"), "/base");
        assert_eq!(to_upstream("/", "", "/"), "/");
        assert_eq!(to_local("/gh", "/mcp", "/mcp/x"), "/gh/x");
        assert_eq!(to_local("/", "", "/a/mcp"), "/a/mcp");
        assert_eq!(to_local("/", "/base", "/base/x"), "/x");
        assert_eq!(to_local("/gh", "/mcp", "/mcp"), "/gh");
        for (mount, base, local) in [
            ("/gh", "/mcp", "/gh/a/b"),
            ("/", "/b", "/q"),
            ("/m", "", "/m/z"),
        ] {
            assert_eq!(
                to_local(mount, base, &to_upstream(mount, base, local)),
                local
            );
        }
    }
}
