//! The URL rewriting of the TLS bridge: `http://localhost:PORT` (the suite's servers) and
//! `https://localhost:BRIDGE` (what the daemon sees), plain and percent-encoded, in both
//! directions. Only `localhost` origins are touched: the daemon's own callback is
//! `http://127.0.0.1:…` and passes unchanged.

/// The spellings of an origin's scheme-and-host prefix: plain, and percent-encoded as in a
/// query string or form body (upper- and lower-case hex), each followed by the port digits.
fn prefixes(scheme: &str) -> [String; 3] {
    [
        format!("{scheme}://localhost:"),
        format!("{scheme}%3A%2F%2Flocalhost%3A"),
        format!("{scheme}%3a%2f%2flocalhost%3a"),
    ]
}

/// Replaces every `FROM://localhost:N` (in any spelling of [`prefixes`]) whose port `map`
/// maps with `TO://localhost:M` in the same spelling; other ports stay as they are.
pub fn rewrite(
    text: &str,
    from: &str,
    to: &str,
    map: &mut dyn FnMut(u16) -> Option<u16>,
) -> String {
    let mut out = text.to_string();
    for (old, new) in prefixes(from).iter().zip(prefixes(to).iter()) {
        out = rewrite_prefix(&out, old, new, map);
    }
    out
}

fn rewrite_prefix(
    text: &str,
    old: &str,
    new: &str,
    map: &mut dyn FnMut(u16) -> Option<u16>,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(old) {
        let after = &rest[at + old.len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let mapped = after[..digits].parse().ok().and_then(&mut *map);
        out.push_str(&rest[..at]);
        match mapped {
            Some(port) => {
                out.push_str(new);
                out.push_str(&port.to_string());
            }
            None => {
                out.push_str(old);
                out.push_str(&after[..digits]);
            }
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plus_one(p: u16) -> Option<u16> {
        (p != 80).then_some(p + 1)
    }

    #[test]
    fn rewrites_plain_and_encoded_origins() {
        let text =
            r#"{"a":"http://localhost:4000/mcp","b":"x?r=http%3A%2F%2Flocalhost%3A4000%2Fmcp"}"#;
        assert_eq!(
            rewrite(text, "http", "https", &mut plus_one),
            r#"{"a":"https://localhost:4001/mcp","b":"x?r=https%3A%2F%2Flocalhost%3A4001%2Fmcp"}"#
        );
    }

    #[test]
    fn leaves_unmapped_ports_and_other_hosts() {
        let text = "http://localhost:80/ http://127.0.0.1:4000/callback http://localhost:4000";
        assert_eq!(
            rewrite(text, "http", "https", &mut plus_one),
            "http://localhost:80/ http://127.0.0.1:4000/callback https://localhost:4001"
        );
    }
}
