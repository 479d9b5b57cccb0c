//! The JSON-RPC method and tool name of a request, for the audit log (`[log] audit_rpc`), read
//! from the first bytes of the body as they stream by: nothing is delayed, buffered beyond
//! [`SCAN_LIMIT`] bytes of copy, or logged but these two names.

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

/// The string value of the first `"key": "..."` at or after `from`; short, printable only.
fn string_after(text: &[u8], key: &str, from: usize) -> Option<(String, usize)> {
    let needle = format!("\"{key}\"");
    let start = from + find(&text[from.min(text.len())..], needle.as_bytes())?;
    let mut i = start + needle.len();
    while i < text.len() && text[i].is_ascii_whitespace() {
        i += 1;
    }
    if text.get(i) != Some(&b':') {
        return None;
    }
    i += 1;
    while i < text.len() && text[i].is_ascii_whitespace() {
        i += 1;
    }
    if text.get(i) != Some(&b'"') {
        return None;
    }
    i += 1;
    let mut out = String::new();
    while i < text.len() {
        match text[i] {
            b'"' => return Some((out, i + 1)),
            b'\\' => {
                // Escapes are rare in method and tool names: keep the escaped byte as is.
                i += 1;
            }
            b if b.is_ascii_graphic() || b == b' ' => out.push(b as char),
            _ => out.push('?'),
        }
        if out.len() > 128 {
            return None;
        }
        i += 1;
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Scans a body prefix (possibly cut anywhere) for `method` and, for `tools/call`, the tool.
pub fn scan(prefix: &[u8]) -> RpcInfo {
    let prefix = &prefix[..prefix.len().min(SCAN_LIMIT)];
    let Some((method, _)) = string_after(prefix, "method", 0) else {
        return RpcInfo::default();
    };
    let tool = if method == "tools/call" {
        find(prefix, b"\"params\"").and_then(|p| string_after(prefix, "name", p).map(|(n, _)| n))
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
    let (mut depth, mut in_str, mut esc) = (0usize, false, false);
    let mut key_start = None;
    for (i, &b) in body.iter().enumerate() {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => {
                    in_str = false;
                    let key = key_start.take().map(|s| &body[s..i]);
                    if depth == 1 && key == Some(b"id".as_slice()) {
                        let j = skip_ws(body, i + 1);
                        if body.get(j) == Some(&b':') {
                            return id_value(body, skip_ws(body, j + 1));
                        }
                    }
                }
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => {
                in_str = true;
                key_start = Some(i + 1);
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
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
}
