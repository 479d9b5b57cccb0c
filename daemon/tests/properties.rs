//! Property tests of the pure logic the proxy's security rests on: the path normal form (what it
//! accepts a lenient upstream reads the same way; ordinary paths are never refused), the ACL (no
//! spelling of a blocked server's path is ever let through; catalogued allowed paths always
//! are), SSE `endpoint` rewriting (the same output however the stream is split), and the
//! config's duration and size units.

use bytes::Bytes;
use mcpproxyd::catalog::{Catalog, CatalogServer};
use mcpproxyd::config::units::{format_duration, format_size, parse_duration, parse_size};
use mcpproxyd::config::AclConfig;
use mcpproxyd::proxy::acl::Acl;
use mcpproxyd::proxy::path::{check_normal, lenient_segment};
use mcpproxyd::proxy::sse::{EndpointMap, Rewriter};
use proptest::prelude::*;
use std::time::Duration;
use unicode_normalization::UnicodeNormalization;

// === path normal form ===

/// A path segment of characters that may stand literally, never `.` or `..`.
fn plain_segment() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_~!$&'()*+,=:@.-]{1,12}".prop_filter("not a dot segment", |s| s != "." && s != "..")
}

/// Percent-encodes every byte of `text`.
fn encode_all(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

proptest! {
    #[test]
    fn ordinary_paths_are_never_refused(segs in prop::collection::vec(plain_segment(), 1..6), slash in any::<bool>()) {
        let mut path = format!("/{}", segs.join("/"));
        if slash {
            path.push('/');
        }
        prop_assert_eq!(check_normal(&path), Ok(()), "{}", path);
    }

    #[test]
    fn check_normal_never_panics(path in any::<String>()) {
        let _ = check_normal(&path);
        let _ = check_normal(&format!("/{path}"));
    }

    /// Whatever passes, a lenient upstream (decode, NFKC) reads with the same segments and
    /// without dot segments, controls or separators.
    #[test]
    fn accepted_paths_mean_the_same_to_a_lenient_upstream(
        parts in prop::collection::vec(
            prop_oneof![
                plain_segment(),
                any::<String>().prop_map(|s| encode_all(&s)),
                prop::collection::vec(any::<u8>(), 1..6)
                    .prop_map(|b| b.iter().map(|b| format!("%{b:02X}")).collect()),
                any::<char>().prop_map(|c| format!("x{}", encode_all(&c.to_string()))),
            ],
            1..5,
        )
    ) {
        let path = format!("/{}", parts.join("/"));
        if check_normal(&path).is_ok() {
            for seg in path[1..].split('/') {
                let decoded = percent_encoding::percent_decode_str(seg).decode_utf8();
                prop_assert!(decoded.is_ok(), "{} has non-UTF-8 escapes", path);
                let seen: String = decoded.unwrap().nfkc().collect();
                prop_assert!(seen != "." && seen != "..", "{} hides a dot segment", path);
                prop_assert!(!seen.contains(['/', '\\', '%']), "{} hides a separator", path);
                prop_assert!(!seen.chars().any(|c| c.is_ascii_control()), "{} hides a control", path);
            }
        }
    }
}

// === ACL ===

fn catalog(name: &str, id: &str) -> Catalog {
    let server = |name: &str, id: &str| CatalogServer {
        upstream: "u".into(),
        name: name.into(),
        id: id.into(),
        mcp: Some(format!("/accounts/1/custom/{name}/id/{id}/mcp")),
        sse: None,
        scopes: vec![format!("/accounts/1/custom/{name}/id/{id}")],
    };
    Catalog {
        servers: vec![server(name, id), server("other", "OTHER01")],
    }
}

fn acl(allowed: &[&str], blocked: &[&str], cat: &Catalog) -> Acl {
    let cfg = AclConfig {
        allowed: allowed.iter().map(|s| s.to_string()).collect(),
        blocked: blocked.iter().map(|s| s.to_string()).collect(),
    };
    Acl::new(&cfg, cat)
}

/// One way a lenient upstream could still read `text` as itself.
#[derive(Debug, Clone)]
enum Spelling {
    Case(Vec<bool>),
    Fullwidth(Vec<bool>),
    Escaped(Vec<bool>),
    Trailing(String),
}

fn spelling() -> impl Strategy<Value = Spelling> {
    let mask = || prop::collection::vec(any::<bool>(), 16);
    prop_oneof![
        mask().prop_map(Spelling::Case),
        mask().prop_map(Spelling::Fullwidth),
        mask().prop_map(Spelling::Escaped),
        "[. ]{1,4}".prop_map(Spelling::Trailing),
    ]
}

fn respell(text: &str, how: &[Spelling]) -> String {
    let mut out = text.to_string();
    for s in how {
        out = match s {
            Spelling::Case(m) => out
                .chars()
                .zip(m.iter().cycle())
                .map(|(c, &up)| {
                    if up {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    }
                })
                .collect(),
            // Fullwidth letters and digits (U+FF01..), percent-encoded as a path carries them.
            Spelling::Fullwidth(m) => out
                .chars()
                .zip(m.iter().cycle())
                .map(|(c, &wide)| match c {
                    c if wide && c.is_ascii_alphanumeric() => {
                        let w = char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap();
                        encode_all(&w.to_string())
                    }
                    c => c.to_string(),
                })
                .collect(),
            Spelling::Escaped(m) => out
                .chars()
                .zip(m.iter().cycle())
                .map(|(c, &esc)| {
                    if esc {
                        encode_all(&c.to_string())
                    } else {
                        c.to_string()
                    }
                })
                .collect(),
            Spelling::Trailing(t) => format!("{out}{}", t.replace(' ', "%20")),
        };
    }
    out
}

proptest! {
    /// The blocked server's name or ID, spelt any way a lenient upstream could still route by,
    /// anywhere in the path: refused (as not normal, or by the ACL), never let through.
    #[test]
    fn no_spelling_of_a_blocked_server_is_let_through(
        name in "[a-z][a-z0-9]{1,7}",
        id in "[A-Z][A-Z0-9]{2,7}",
        use_id in any::<bool>(),
        block_by_id in any::<bool>(),
        how in prop::collection::vec(spelling(), 0..3),
        before in prop::collection::vec(plain_segment(), 0..3),
        after in prop::collection::vec(plain_segment(), 0..3),
    ) {
        prop_assume!(name != "other" && id != "OTHER01");
        let cat = catalog(&name, &id);
        let entry = if block_by_id { id.as_str() } else { name.as_str() };
        let a = acl(&[], &[entry], &cat);
        let target = respell(if use_id { &id } else { &name }, &how);
        let mut segs = before.clone();
        segs.push(target);
        segs.extend(after.iter().cloned());
        let path = format!("/{}", segs.join("/"));
        let let_through = check_normal(&path).is_ok() && a.check(&path).is_allowed();
        prop_assert!(!let_through, "{} reached the blocked server {}", path, entry);
    }

    /// Paths of an allowed server, exactly as catalogued, are always allowed, whatever follows
    /// and whatever else is blocked (as long as it does not name this server's own segments).
    #[test]
    fn no_catalogued_allowed_path_is_refused(
        name in "[a-z][a-z0-9]{1,7}",
        id in "[A-Z][A-Z0-9]{2,7}",
        rest in prop::collection::vec(plain_segment(), 0..4),
        blocked in "[a-z]{3,8}",
    ) {
        let cat = catalog(&name, &id);
        // Blocked names are refused as any segment: keep them out of this server's path.
        let mine = ["accounts", "1", "custom", "id", name.as_str(), id.as_str()];
        let blocked_names = [blocked.as_str(), "other", "OTHER01"].map(lenient_segment);
        prop_assume!(!mine
            .iter()
            .copied()
            .chain(rest.iter().map(String::as_str))
            .any(|s| blocked_names.contains(&lenient_segment(s))));
        let a = acl(&[&name], &[&blocked, "other"], &cat);
        let mut path = format!("/accounts/1/custom/{name}/id/{id}");
        for r in &rest {
            path.push('/');
            path.push_str(r);
        }
        prop_assert_eq!(check_normal(&path), Ok(()));
        prop_assert!(a.check(&path).is_allowed(), "{} refused: {:?}", path, a.check(&path));
    }

    /// The allowed list is precise: another case of the catalogued path is not allowed.
    #[test]
    fn the_allowed_list_takes_only_the_catalogued_case(
        name in "[a-z][a-z0-9]{1,7}",
        id in "[A-Z][A-Z0-9]{2,7}",
    ) {
        let cat = catalog(&name, &id);
        let a = acl(&[&name], &[], &cat);
        let upper = format!("/accounts/1/custom/{}/id/{id}/mcp", name.to_ascii_uppercase());
        prop_assume!(name.to_ascii_uppercase() != name);
        prop_assert!(!a.check(&upper).is_allowed(), "{}", upper);
    }
}

// === SSE endpoint rewriting ===

fn map() -> EndpointMap {
    EndpointMap {
        upstream_origin: "https://up.example".into(),
        upstream_base: "/base".into(),
        mount: "/gh".into(),
        proxy_origin: "http://127.0.0.1:8088".into(),
    }
}

/// One event of a stream: (text as sent, text expected out).
fn event() -> impl Strategy<Value = (String, String)> {
    let eol = prop_oneof![Just("\n"), Just("\r\n"), Just("\r")];
    let word = "[a-z0-9]{0,12}";
    (eol, word, any::<bool>(), 0..4u8).prop_map(|(eol, w, data_first, kind)| {
        let ev = |data: &str, ty: &str| {
            let (a, b) = (format!("data: {data}{eol}"), format!("event: {ty}{eol}"));
            if data_first {
                format!("{a}{b}{eol}")
            } else {
                format!("{b}{a}{eol}")
            }
        };
        match kind {
            0 => (
                ev(&format!("/base/m?s={w}"), "endpoint"),
                ev(&format!("/gh/m?s={w}"), "endpoint"),
            ),
            1 => (
                ev(&format!("https://up.example/base/{w}"), "endpoint"),
                ev(&format!("http://127.0.0.1:8088/gh/{w}"), "endpoint"),
            ),
            2 => (ev(&w, "message"), ev(&w, "message")),
            _ => {
                let t = format!(": {w}{eol}data: {w}{eol}{eol}");
                (t.clone(), t)
            }
        }
    })
}

proptest! {
    #[test]
    fn endpoint_events_are_rewritten_however_the_stream_is_split(
        events in prop::collection::vec(event(), 1..6),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let input: String = events.iter().map(|(i, _)| i.as_str()).collect();
        let expected: String = events.iter().map(|(_, o)| o.as_str()).collect();
        let bytes = input.as_bytes();
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        at.push(0);
        at.push(bytes.len());
        at.sort_unstable();
        let mut r = Rewriter::new(map());
        let mut out = Vec::new();
        for w in at.windows(2) {
            out.extend_from_slice(&r.feed(Bytes::copy_from_slice(&bytes[w[0]..w[1]])).unwrap());
        }
        prop_assert_eq!(String::from_utf8(out).unwrap(), expected);
    }
}

// === config units ===

proptest! {
    #[test]
    fn durations_round_trip(ms in 0u64..10_000_000_000) {
        let d = Duration::from_millis(ms);
        prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
    }

    #[test]
    fn sizes_round_trip(n in any::<u64>()) {
        prop_assert_eq!(parse_size(&format_size(n)), Ok(n));
    }

    #[test]
    fn unit_parsers_never_panic(text in any::<String>()) {
        let _ = parse_duration(&text);
        let _ = parse_size(&text);
    }
}
