//! The client key itself: `mcpp_` + 32 random bytes in unpadded base64url, made from the
//! system's random number generator, stored only as its SHA-256 digest, and compared in
//! constant time.
//!
//! SHA-256 without salt or stretching is enough here: the key is 256 random bits, not a
//! password, so there is nothing to guess from the digest.

use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

/// Every key starts with this, so a leaked key is recognisable (secret scanners, logs).
pub const PREFIX: &str = "mcpp_";
/// Random bytes in a key.
const RANDOM_BYTES: usize = 32;
/// `mcpp_` + 43 base64url characters (32 bytes, unpadded).
const KEY_LEN: usize = PREFIX.len() + 43;

/// The SHA-256 digest of a key: what the store keeps and looks keys up by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash(pub [u8; 32]);

impl std::fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A digest reveals nothing usable, but it is an identifier: keep logs free of it.
        f.write_str("KeyHash(..)")
    }
}

impl KeyHash {
    pub fn of(key: &str) -> KeyHash {
        let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        KeyHash(out)
    }

    /// Equality that takes the same time wherever the digests differ.
    pub fn ct_eq(&self, other: &KeyHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    pub fn to_hex(self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(text: &str) -> Option<KeyHash> {
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(KeyHash(out))
    }
}

/// The system's random number generator failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the system's random number generator failed")]
pub struct RandomFailed;

/// A new key and its digest.
pub fn generate() -> Result<(SecretString, KeyHash), RandomFailed> {
    let mut bytes = zeroize::Zeroizing::new([0u8; RANDOM_BYTES]);
    SystemRandom::new()
        .fill(&mut bytes[..])
        .map_err(|_| RandomFailed)?;
    let key = format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes[..])
    );
    let hash = KeyHash::of(&key);
    Ok((SecretString::from(key), hash))
}

/// What the client sent in `Authorization`, as far as client keys are concerned.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented {
    /// No `Authorization` header, or one that is not a bearer client key (an app's own
    /// credential, which the proxy drops anyway).
    None,
    /// `Bearer mcpp_…` of the right shape: its digest.
    Key(KeyHash),
    /// `Bearer mcpp_…` of the wrong shape (cut short, extra characters).
    Malformed,
}

/// Reads a client key from `Authorization` header values (more than one is malformed).
pub fn presented<'a>(mut values: impl Iterator<Item = &'a [u8]>) -> Presented {
    let Some(first) = values.next() else {
        return Presented::None;
    };
    let Ok(text) = std::str::from_utf8(first) else {
        return Presented::None;
    };
    let text = text.trim();
    let Some((scheme, rest)) = text.split_once(' ') else {
        return Presented::None;
    };
    let token = rest.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || !token.starts_with(PREFIX) {
        return Presented::None;
    }
    if values.next().is_some() || !well_formed(token) {
        return Presented::Malformed;
    }
    Presented::Key(KeyHash::of(token))
}

fn well_formed(token: &str) -> bool {
    token.len() == KEY_LEN
        && token[PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The key as text (for printing it once to the operator).
pub fn reveal(key: &SecretString) -> &str {
    key.expose_secret()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_prefix_32_random_bytes_and_differ() {
        let (a, ha) = generate().unwrap();
        let (b, hb) = generate().unwrap();
        let a = reveal(&a);
        assert!(a.starts_with("mcpp_"), "{a}");
        assert_eq!(a.len(), KEY_LEN);
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&a[PREFIX.len()..])
            .unwrap();
        assert_eq!(raw.len(), 32);
        assert_ne!(a, reveal(&b));
        assert_ne!(ha, hb);
        assert_eq!(ha, KeyHash::of(a));
    }

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        let h = KeyHash::of("mcpp_x");
        assert_eq!(KeyHash::from_hex(&h.to_hex()), Some(h));
        assert!(KeyHash::from_hex("zz").is_none());
        assert!(KeyHash::from_hex(&"g".repeat(64)).is_none());
        assert!(h.ct_eq(&h));
        assert!(!h.ct_eq(&KeyHash::of("mcpp_y")));
        assert_eq!(format!("{h:?}"), "KeyHash(..)");
    }

    #[test]
    fn reads_bearer_client_keys_only() {
        let (key, hash) = generate().unwrap();
        let key = reveal(&key);
        let header = format!("Bearer {key}");
        let one = |v: &str| presented(std::iter::once(v.as_bytes()));
        assert_eq!(one(&header), Presented::Key(hash));
        assert_eq!(one(&format!("bearer  {key} ")), Presented::Key(hash));
        assert_eq!(presented(std::iter::empty()), Presented::None);
        assert_eq!(one("Bearer app-own-token"), Presented::None);
        assert_eq!(one(&format!("Basic {key}")), Presented::None);
        assert_eq!(one("Bearer mcpp_short"), Presented::Malformed);
        assert_eq!(one(&format!("Bearer {key}x")), Presented::Malformed);
        assert_eq!(
            one(&format!("Bearer {key}").replace('_', "=")),
            Presented::None
        );
        let twice = [header.as_bytes(), header.as_bytes()];
        assert_eq!(presented(twice.into_iter()), Presented::Malformed);
    }
}
