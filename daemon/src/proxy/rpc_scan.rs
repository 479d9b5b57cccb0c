//! The JSON-RPC method and tool name of a request, for the audit log (`[log] audit_rpc`), read
//! from the first bytes of the body as they stream by: nothing is delayed, buffered beyond
//! [`SCAN_LIMIT`] bytes of copy, or logged but these two names.

use std::sync::LazyLock;

use memchr::memmem::Finder;

/// How much of a body is looked at.
pub const SCAN_LIMIT: usize = 4096;

/// What the scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RpcInfo {
    pub method: Option<String>,
    pub tool: Option<String>,
    /// The request's top-level `id`, as text.
    pub id: Option<String>,
}

/// The string value of the first `"key": "..."` at or after `from` (`quoted_key` is the key
/// with its quotes); short, printable only. An escaped byte is dropped with its backslash
/// (escapes are rare in method and tool names).
fn string_after(text: &[u8], key: &Finder<'static>, from: usize) -> Option<(String, usize)> {
    let start = from + key.find(text.get(from..)?)?;
    let mut i = skip_ws(text, start + key.needle().len());
    if text.get(i) != Some(&b':') {
        return None;
    }
    i = skip_ws(text, i + 1);
    if text.get(i) != Some(&b'"') {
        return None;
    }
    i += 1;
    let mut out = Vec::new();
    loop {
        // The plain run up to the next quote or backslash, found many bytes at a time.
        let rest = text.get(i..)?;
        let run = memchr::memchr2(b'"', b'\\', rest)?;
        if out.len() + run > MAX_NAME {
            return None;
        }
        out.extend(rest[..run].iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b
            } else {
                b'?'
            }
        }));
        i += run;
        if text[i] == b'"' {
            // Printable ASCII only: always UTF-8.
            return Some((String::from_utf8(out).ok()?, i + 1));
        }
        i += 2;
    }
}

/// The searchers for the keys looked for, built once (building one costs more than a search).
static METHOD: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"method\""));
static PARAMS: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"params\""));
static NAME: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"name\""));

/// The longest method or tool name reported (longer ones are not names a log should carry).
const MAX_NAME: usize = 128;

/// Scans a body prefix (possibly cut anywhere) for `method` and, for `tools/call`, the tool.
pub fn scan(prefix: &[u8]) -> RpcInfo {
    let prefix = &prefix[..prefix.len().min(SCAN_LIMIT)];
    let Some((method, _)) = string_after(prefix, &METHOD, 0) else {
        return RpcInfo::default();
    };
    let tool = if method == "tools/call" {
        PARAMS
            .find(prefix)
            .and_then(|p| string_after(prefix, &NAME, p).map(|(n, _)| n))
    } else {
        None
    };
    RpcInfo {
        method: Some(method),
        tool,
        id: top_level_id(prefix),
    }
}

/// The top-level `id` of a JSON-RPC body prefix (not one inside `params`), as text.
pub fn top_level_id(body: &[u8]) -> Option<String> {
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        match b {
            b'"' => {
                let end = string_end(body, i + 1)?;
                if depth == 1 && &body[i + 1..end] == b"id" {
                    let j = skip_ws(body, end + 1);
                    if body.get(j) == Some(&b':') {
                        return id_value(body, skip_ws(body, j + 1));
                    }
                }
                i = end + 1;
            }
            b'{' | b'[' => {
                depth += 1;
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            _ => i += 1,
        }
    }
    None
}

/// The index of the quote that closes the string whose text starts at `from`, skipping escaped
/// bytes; `None` when the prefix ends first.
fn string_end(body: &[u8], mut from: usize) -> Option<usize> {
    loop {
        from += memchr::memchr2(b'"', b'\\', body.get(from..)?)?;
        if body[from] == b'"' {
            return Some(from);
        }
        from += 2;
    }
}

fn skip_ws(text: &[u8], mut i: usize) -> usize {
    while text.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
        i += 1;
    }
    i
}

fn id_value(body: &[u8], j: usize) -> Option<String> {
    let rest = body.get(j..)?;
    let text = if rest.first() == Some(&b'"') {
        let end = rest[1..].iter().position(|&b| b == b'"' || b == b'\\')?;
        &rest[1..1 + end]
    } else {
        let end = rest
            .iter()
            .position(|b| !(b.is_ascii_alphanumeric() || *b == b'-' || *b == b'.'))?;
        &rest[..end]
    };
    let text = std::str::from_utf8(text).ok()?;
    Some(crate::proxy::tool_audit::clean(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_method_and_tool() {
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"secret value"}}}"#;
        assert_eq!(
            scan(body),
            RpcInfo {
                method: Some("tools/call".into()),
                tool: Some("echo".into()),
                id: Some("1".into()),
            }
        );
        let init = br#"{ "jsonrpc" : "2.0", "method" : "initialize", "id": 0, "params": {"clientInfo": {"name": "x"}}}"#;
        assert_eq!(scan(init).method.as_deref(), Some("initialize"));
        assert_eq!(scan(init).tool, None, "only tools/call names a tool");
    }

    #[test]
    fn tolerates_cut_and_odd_bodies() {
        assert_eq!(scan(br#"{"jsonrpc":"2.0","meth"#), RpcInfo::default());
        assert_eq!(scan(br#"{"method": 5}"#), RpcInfo::default());
        assert_eq!(scan(b"not json at all"), RpcInfo::default());
        let batch = br#"[{"jsonrpc":"2.0","method":"ping","id":1}]"#;
        assert_eq!(scan(batch).method.as_deref(), Some("ping"));
        let cut = br#"{"method":"tools/call","params":{"na"#;
        assert_eq!(scan(cut).tool, None);
    }

    #[test]
    fn ids() {
        let id = |b: &str| top_level_id(b.as_bytes());
        assert_eq!(
            id(r#"{"jsonrpc":"2.0","id":7,"method":"x"}"#).as_deref(),
            Some("7")
        );
        assert_eq!(
            id(r#"{"method":"tools/call","params":{"name":"x","arguments":{"id":99}},"jsonrpc":"2.0","id":"abc"}"#).as_deref(),
            Some("abc")
        );
        assert_eq!(id(r#"{"method":"x","params":{"id":1}}"#), None);
        assert_eq!(id(r#"{"text":"\"id\":5","id" : 6 }"#).as_deref(), Some("6"));
        assert_eq!(id(r#"{"id":"#), None);
    }

    #[test]
    fn names_are_short_and_escapes_dropped() {
        let call =
            |name: &str| format!(r#"{{"method":"tools/call","params":{{"name":"{name}"}}}}"#);
        let n128 = "n".repeat(128);
        assert_eq!(
            scan(call(&n128).as_bytes()).tool.as_deref(),
            Some(n128.as_str())
        );
        assert_eq!(scan(call(&"n".repeat(129)).as_bytes()).tool, None);
        assert_eq!(
            scan(call(r#"a\"b\\c"#).as_bytes()).tool.as_deref(),
            Some("abc")
        );
        assert_eq!(
            scan(call("caf\u{e9}\t").as_bytes()).tool.as_deref(),
            Some("caf???")
        );
    }
}
