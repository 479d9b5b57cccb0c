//! Parsing of the human units the config uses: durations (`"10s"`, `"1h30m"`), sizes
//! (`"16MiB"`) and URLs, with errors that say what to write instead; and `non_empty`, how every
//! optional text value is read (blank = unset).

use std::time::Duration;

use url::{ParseError, Url};

/// Parses a duration written as one or more `<number><unit>` groups, units `ms`, `s`, `m`, `h`, `d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration; write e.g. \"10s\", \"7m\" or \"1h30m\"".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "`{text}` is not a duration; write e.g. \"10s\", \"7m\" or \"1h30m\""
            ));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("`{text}`: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.saturating_mul(60)),
            "h" => Duration::from_secs(number.saturating_mul(3600)),
            "d" => Duration::from_secs(number.saturating_mul(86_400)),
            "" => {
                return Err(format!(
                    "`{text}` needs a unit right after the number: write \"{number}s\" \
                     (units: ms, s, m, h, d)"
                ))
            }
            other => {
                return Err(format!(
                    "`{text}`: unknown unit `{other}`; write e.g. \"{number}s\" (units: ms, s, m, h, d)"
                ))
            }
        };
        total = total.saturating_add(part);
    }
    Ok(total)
}

/// Parses a size in bytes: a plain number, or a number with `B`, `KiB`, `MiB`, `GiB`, `KB`, `MB`, `GB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(format!(
            "`{text}` is not a size; write e.g. \"16MiB\" or \"512KiB\""
        ));
    }
    let number: u64 = s[..digits]
        .parse()
        .map_err(|_| format!("`{text}`: number too large"))?;
    let factor: u64 = match s[digits..].trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "`{text}`: unknown unit `{other}` (use B, KiB, MiB, GiB)"
            ))
        }
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// Parses an absolute URL; the error says in plain words what is wrong with `text`.
pub fn parse_url(text: &str) -> Result<Url, String> {
    Url::parse(text).map_err(|e| {
        let what = match e {
            ParseError::RelativeUrlWithoutBase => {
                "it needs a scheme and a host, e.g. \"https://mcp.example.com/mcp\"".to_string()
            }
            ParseError::EmptyHost => "it has no host after the scheme".into(),
            ParseError::InvalidPort => "its port is not a number from 0 to 65535".into(),
            ParseError::InvalidIpv4Address | ParseError::InvalidIpv6Address => {
                "its IP address is malformed (an IPv6 address goes in brackets: [::1])".into()
            }
            ParseError::IdnaError | ParseError::InvalidDomainCharacter => {
                "its host name has characters a host name cannot have".into()
            }
            other => format!("it cannot be read as one ({other})"),
        };
        format!("`{text}` is not a URL: {what}")
    })
}

/// Formats a duration the way the config accepts it, for `--check-config`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= len {
            out.push_str(&format!("{}{unit}", secs / len));
            secs %= len;
        }
    }
    out
}

/// Formats a size with the largest binary unit that divides it.
pub fn format_size(n: u64) -> String {
    for (unit, len) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n >= len && n.is_multiple_of(len) {
            return format!("{}{unit}", n / len);
        }
    }
    format!("{n}B")
}

/// A text value with its blanks trimmed; `None` when nothing is left (the key counts as unset).
pub(super) fn non_empty(s: &str) -> Option<&str> {
    let t = s.trim();
    (!t.is_empty()).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("7m"), Ok(Duration::from_secs(420)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        for bad in ["", "10", "s", "10x", "-1s", "1.5s", "10 s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn duration_errors_say_what_to_write() {
        for (bad, hint) in [
            ("10 seconds", "write \"10s\""),
            ("10", "write \"10s\""),
            ("10seconds", "write e.g. \"10s\""),
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains(hint), "{bad:?}: {err}");
        }
    }

    #[test]
    fn url_errors_are_plain_words() {
        assert!(parse_url("https://mcp.example.com/mcp").is_ok());
        for (bad, words) in [
            ("mcp.example.com/mcp", "needs a scheme and a host"),
            ("https://", "has no host"),
            ("https://h:99999/", "port is not a number"),
            ("http://[::1/", "IP address is malformed"),
        ] {
            let err = parse_url(bad).unwrap_err();
            assert!(err.contains(words), "{bad:?}: {err}");
            assert!(!err.contains("relative URL without a base"), "{err}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("2 GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        for bad in ["", "MiB", "1TiB", "-1", "99999999999999999999GiB"] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn formatting_round_trips() {
        for d in ["10s", "7m", "1h30m", "250ms", "2d", "30m"] {
            let parsed = parse_duration(d).unwrap();
            assert_eq!(parse_duration(&format_duration(parsed)), Ok(parsed));
        }
        assert_eq!(format_size(16 << 20), "16MiB");
        assert_eq!(format_size(1000), "1000B");
    }
}
