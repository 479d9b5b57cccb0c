//! `[listen]` keys of the Unix-socket proxy listener and of client keys: `unix`, `unix_mode`,
//! `unix_group`, `unix_allowed_uids`, `require_client_keys`.

use std::path::PathBuf;

use toml::{Table, Value};

use super::locate::{Locator, Seg};
use super::raw::{RawConfig, RawRequireKeys};
use super::{ConfigError, Listen, RequireKeys, UnixListen, DEFAULT_UNIX_MODE};

type Result<T> = std::result::Result<T, ConfigError>;

pub(super) fn unix(raw: &RawConfig, at: &Locator<'_>) -> Result<UnixListen> {
    let l = &raw.listen;
    let key = |k| [Seg::Key("listen"), Seg::Key(k)];
    let mut paths: Vec<PathBuf> = Vec::new();
    for text in &l.unix {
        let path = PathBuf::from(text);
        if !path.is_absolute() {
            return Err(at.error(
                &key("unix"),
                format!(
                    "`{text}` is not an absolute socket path, e.g. \"/run/mcpproxyd/proxy.sock\""
                ),
            ));
        }
        // sun_path holds 108 bytes with the terminating NUL.
        if text.len() > 107 {
            return Err(at.error(
                &key("unix"),
                format!("`{text}` is longer than a Unix socket path may be (107 bytes)"),
            ));
        }
        if paths.contains(&path) {
            return Err(at.error(&key("unix"), format!("`{text}` is listed twice")));
        }
        paths.push(path);
    }
    let mode = match &l.unix_mode {
        None => DEFAULT_UNIX_MODE,
        Some(text) => parse_mode(text).map_err(|m| at.error(&key("unix_mode"), m))?,
    };
    let group = Some(l.unix_group.trim().to_string()).filter(|g| !g.is_empty());
    Ok(UnixListen {
        paths,
        mode,
        group,
        allowed_uids: l.unix_allowed_uids.clone(),
    })
}

/// An octal mode such as `"0660"` or `"660"`; only permission bits.
fn parse_mode(text: &str) -> std::result::Result<u32, String> {
    let digits = text.trim();
    let bad = || format!("`{text}` is not an octal file mode; write e.g. \"0660\"");
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return Err(bad());
    }
    let mode = u32::from_str_radix(digits, 8).map_err(|_| bad())?;
    if mode > 0o777 {
        return Err(format!(
            "`{text}`: only permission bits (up to 0777) are allowed"
        ));
    }
    Ok(mode)
}

pub(super) fn require_client_keys(raw: &RawConfig, at: &Locator<'_>) -> Result<RequireKeys> {
    match &raw.listen.require_client_keys {
        None => Ok(RequireKeys::Auto),
        Some(RawRequireKeys::Bool(true)) => Ok(RequireKeys::Always),
        Some(RawRequireKeys::Bool(false)) => Ok(RequireKeys::Never),
        Some(RawRequireKeys::Text(t)) if t == "auto" => Ok(RequireKeys::Auto),
        Some(RawRequireKeys::Text(t)) => Err(at.error(
            &[Seg::Key("listen"), Seg::Key("require_client_keys")],
            format!("`{t}` is not one of \"auto\", true, false"),
        )),
    }
}

/// The keys above in `--check-config` output.
pub(super) fn render(l: &Listen, out: &mut Table) {
    let u = &l.unix;
    out.insert(
        "unix".into(),
        Value::Array(
            u.paths
                .iter()
                .map(|p| Value::String(p.display().to_string()))
                .collect(),
        ),
    );
    out.insert("unix_mode".into(), Value::String(format!("{:04o}", u.mode)));
    out.insert(
        "unix_group".into(),
        Value::String(u.group.clone().unwrap_or_default()),
    );
    out.insert(
        "unix_allowed_uids".into(),
        Value::Array(
            u.allowed_uids
                .iter()
                .map(|&n| Value::Integer(n.into()))
                .collect(),
        ),
    );
    let require = match l.require_client_keys {
        RequireKeys::Auto => Value::String("auto".into()),
        RequireKeys::Always => Value::Boolean(true),
        RequireKeys::Never => Value::Boolean(false),
    };
    out.insert("require_client_keys".into(), require);
}

#[cfg(test)]
mod tests {
    use super::super::{load_str, Overrides, Source};
    use super::*;

    fn load(listen: &str) -> std::result::Result<Listen, ConfigError> {
        let text = format!("[listen]\n{listen}\n");
        load_str(Source::Defaults, &text, &Overrides::default()).map(|c| c.listen)
    }

    #[test]
    fn defaults_serve_no_unix_socket_and_keys_are_auto() {
        let l = load("").unwrap();
        assert_eq!(l.unix.paths, Vec::<PathBuf>::new());
        assert_eq!(l.unix.mode, 0o660);
        assert_eq!(l.require_client_keys, RequireKeys::Auto);
    }

    #[test]
    fn unix_keys_parse() {
        let l = load(
            "unix = [\"/run/m/proxy.sock\"]\nunix_mode = \"0600\"\nunix_group = \"dify\"\n\
             unix_allowed_uids = [1000, 1001]\nrequire_client_keys = true",
        )
        .unwrap();
        assert_eq!(l.unix.paths, [PathBuf::from("/run/m/proxy.sock")]);
        assert_eq!(l.unix.mode, 0o600);
        assert_eq!(l.unix.group.as_deref(), Some("dify"));
        assert_eq!(l.unix.allowed_uids, [1000, 1001]);
        assert_eq!(l.require_client_keys, RequireKeys::Always);
        let l = load("require_client_keys = false").unwrap();
        assert_eq!(l.require_client_keys, RequireKeys::Never);
        let l = load("require_client_keys = \"auto\"").unwrap();
        assert_eq!(l.require_client_keys, RequireKeys::Auto);
    }

    #[test]
    fn bad_values_name_the_key() {
        for (text, key) in [
            ("unix = [\"relative.sock\"]", "unix"),
            ("unix = [\"/a\", \"/a\"]", "unix"),
            ("unix_mode = \"0999\"", "unix_mode"),
            ("unix_mode = \"rw\"", "unix_mode"),
            ("unix_mode = \"1777\"", "unix_mode"),
            ("require_client_keys = \"yes\"", "require_client_keys"),
        ] {
            let e = load(text).unwrap_err();
            assert!(e.key.contains(key), "{text}: {e}");
        }
        assert!(load("unix_allowed_uids = [-1]").is_err());
    }

    #[test]
    fn auto_requires_keys_on_non_loopback_binds_only() {
        let auto = RequireKeys::Auto;
        assert!(!auto.applies_to(Some("127.0.0.1:8088".parse().unwrap())));
        assert!(!auto.applies_to(Some("[::1]:8088".parse().unwrap())));
        assert!(auto.applies_to(Some("172.17.0.1:8088".parse().unwrap())));
        assert!(auto.applies_to(Some("0.0.0.0:8088".parse().unwrap())));
        assert!(!auto.applies_to(None));
        assert!(RequireKeys::Always.applies_to(None));
        assert!(!RequireKeys::Never.applies_to(Some("10.0.0.1:1".parse().unwrap())));
    }
}
