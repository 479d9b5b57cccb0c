//! One client key as the daemon keeps it (never the key itself), the pure decisions about it
//! (expired, revoked, in scope), and the versioned JSON file all keys are saved in.

use serde::{Deserialize, Serialize};

use super::secret::KeyHash;

/// Format version of the key file; a newer one is refused, never overwritten.
pub const FILE_VERSION: u32 = 1;

/// Longest key name.
const MAX_NAME: usize = 64;

/// A key as stored: its digest, name, scope and times (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    pub name: String,
    /// SHA-256 of the key, hex.
    pub sha256: String,
    /// Servers (names, IDs or `/` path prefixes) the key may reach; empty: every server the
    /// ACL lets through.
    #[serde(default)]
    pub servers: Vec<String>,
    /// Tool-name globs the key may call; empty: every tool.
    #[serde(default)]
    pub tools: Vec<String>,
    pub created: u64,
    #[serde(default)]
    pub last_used: Option<u64>,
    #[serde(default)]
    pub expires_at: Option<u64>,
    #[serde(default)]
    pub revoked_at: Option<u64>,
}

/// Why a key cannot be used now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    Revoked,
    Expired,
}

impl KeyRecord {
    pub fn hash(&self) -> Option<KeyHash> {
        KeyHash::from_hex(&self.sha256)
    }

    /// `Ok` while the key may be used at `now`.
    pub fn usable(&self, now: u64) -> Result<(), Unusable> {
        if self.revoked_at.is_some() {
            return Err(Unusable::Revoked);
        }
        match self.expires_at {
            Some(t) if now >= t => Err(Unusable::Expired),
            _ => Ok(()),
        }
    }

    /// The key may call `tool` (a key without tool scope may call every tool).
    pub fn allows_tool(&self, tool: &str) -> bool {
        self.tools.is_empty() || self.tools.iter().any(|g| glob(g, tool))
    }
}

/// `*` matches any run of characters (also none); everything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// A key name: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with `.` or `-`, so it is safe in
/// a URL path, a log line, a metric label and a file.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!("a key name has 1 to {MAX_NAME} characters"));
    }
    if !name.bytes().all(ok_char) || name.starts_with(['.', '-']) {
        return Err(format!(
            "`{}` is not a key name: use letters, digits, `.`, `_` and `-` (not first)",
            name.escape_default()
        ));
    }
    Ok(())
}

/// The key file: every key, in creation order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFile {
    pub version: u32,
    pub keys: Vec<KeyRecord>,
}

/// Why the key file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("not a client key file ({0})")]
    Corrupt(String),
    #[error("written by a newer mcpproxyd (format {0}; this one reads {FILE_VERSION}): upgrade")]
    Newer(u32),
    #[error("key `{0}` has no valid sha256")]
    BadHash(String),
    #[error("key name `{0}` appears twice")]
    Duplicate(String),
}

impl KeyFile {
    pub fn parse(bytes: &[u8]) -> Result<KeyFile, FileError> {
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let v: Version =
            serde_json::from_slice(bytes).map_err(|e| FileError::Corrupt(e.to_string()))?;
        if v.version > FILE_VERSION {
            return Err(FileError::Newer(v.version));
        }
        let file: KeyFile =
            serde_json::from_slice(bytes).map_err(|e| FileError::Corrupt(e.to_string()))?;
        let mut names = std::collections::HashSet::new();
        for k in &file.keys {
            if k.hash().is_none() {
                return Err(FileError::BadHash(k.name.clone()));
            }
            if !names.insert(k.name.as_str()) {
                return Err(FileError::Duplicate(k.name.clone()));
            }
        }
        Ok(file)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn record(name: &str) -> KeyRecord {
        KeyRecord {
            name: name.into(),
            sha256: KeyHash::of(name).to_hex(),
            servers: vec![],
            tools: vec![],
            created: 100,
            last_used: None,
            expires_at: None,
            revoked_at: None,
        }
    }

    #[test]
    fn usable_until_revoked_or_expired() {
        let mut r = record("a");
        assert_eq!(r.usable(1_000), Ok(()));
        r.expires_at = Some(500);
        assert_eq!(r.usable(499), Ok(()));
        assert_eq!(r.usable(500), Err(Unusable::Expired));
        r.revoked_at = Some(10);
        assert_eq!(r.usable(0), Err(Unusable::Revoked));
    }

    #[test]
    fn globs() {
        for (p, t) in [
            ("echo", "echo"),
            ("*", "anything"),
            ("*", ""),
            ("Describe*", "DescribeInstances"),
            ("*Instances", "DescribeInstances"),
            ("a*b*c", "aXbYc"),
            ("a*b*c", "abc"),
            ("**", "x"),
        ] {
            assert!(glob(p, t), "{p} {t}");
        }
        for (p, t) in [
            ("echo", "echo2"),
            ("Describe*", "DeleteInstance"),
            ("a*b*c", "acb"),
            ("", "x"),
            ("*x", "xy"),
        ] {
            assert!(!glob(p, t), "{p} {t}");
        }
        let mut r = record("a");
        assert!(r.allows_tool("anything"));
        r.tools = vec!["echo".into(), "Describe*".into()];
        assert!(r.allows_tool("echo") && r.allows_tool("DescribeRegions"));
        assert!(!r.allows_tool("add"));
    }

    #[test]
    fn names() {
        for ok in ["dify", "lang-chain_1", "a.b", "A"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "-x", "a b", "a/b", "é", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn file_round_trips_and_refuses_bad_content() {
        let file = KeyFile {
            version: FILE_VERSION,
            keys: vec![record("a"), record("b")],
        };
        assert_eq!(KeyFile::parse(&file.to_bytes()), Ok(file.clone()));
        let mut newer = file.clone();
        newer.version = FILE_VERSION + 1;
        assert_eq!(
            KeyFile::parse(&newer.to_bytes()),
            Err(FileError::Newer(FILE_VERSION + 1))
        );
        let mut dup = file.clone();
        dup.keys.push(record("a"));
        assert!(matches!(
            KeyFile::parse(&dup.to_bytes()),
            Err(FileError::Duplicate(_))
        ));
        let mut bad = file.clone();
        bad.keys[0].sha256 = "xyz".into();
        assert!(matches!(
            KeyFile::parse(&bad.to_bytes()),
            Err(FileError::BadHash(_))
        ));
        let text = file.to_bytes();
        assert!(matches!(
            KeyFile::parse(&text[..text.len() / 2]),
            Err(FileError::Corrupt(_))
        ));
    }
}
