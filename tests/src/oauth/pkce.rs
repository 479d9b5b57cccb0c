//! PKCE (RFC 7636) S256 maths and the shape checks on verifiers and challenges.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// The S256 code challenge of `verifier`: base64url (no padding) of its SHA-256.
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A fresh verifier of 43 unreserved characters, as a client would make.
pub fn new_verifier() -> String {
    let mut bytes = [0u8; 32];
    crate::tls::provider()
        .secure_random
        .fill(&mut bytes)
        .expect("system randomness");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// RFC 7636 §4.1: 43 to 128 characters from `[A-Za-z0-9-._~]`.
pub fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len()) && verifier.bytes().all(is_unreserved)
}

/// An S256 challenge is base64url of 32 bytes: exactly 43 characters, no padding.
pub fn is_valid_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `verifier` hashes to `challenge`.
pub fn verify_s256(verifier: &str, challenge: &str) -> bool {
    s256_challenge(verifier) == challenge
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_example() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            s256_challenge(verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(verify_s256(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
    }

    #[test]
    fn verifier_shape() {
        assert!(is_valid_verifier(&new_verifier()));
        assert!(!is_valid_verifier("short"));
        assert!(!is_valid_verifier(&"a".repeat(129)));
        assert!(!is_valid_verifier(&format!("{}+", "a".repeat(43))));
        assert!(is_valid_verifier(&"a~.-_".repeat(10)));
    }

    #[test]
    fn challenge_shape() {
        assert!(is_valid_s256_challenge(&s256_challenge("x")));
        assert!(!is_valid_s256_challenge("plain-verifier"));
        assert!(!is_valid_s256_challenge(&format!("{}=", "a".repeat(42))));
    }
}
