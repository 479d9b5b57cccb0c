//! Client assertions: signed so that the public key verifies them, with the claims RFC 7523
//! asks for; keys refused with a clear reason.

use base64::Engine as _;
use ring::signature::{self, KeyPair, UnparsedPublicKey};

use super::*;

/// A throwaway RSA key for tests only (made with `openssl genpkey -algorithm RSA`).
pub(crate) const RSA_PEM: &str = include_str!("testdata/rsa-client-key.pem");

pub(crate) fn ec_pem() -> String {
    let rng = SystemRandom::new();
    let doc =
        EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    pem("PRIVATE KEY", doc.as_ref())
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn decode(part: &str) -> serde_json::Value {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The public key ring verifies with, from the private PEM.
fn public_key(pem: &str) -> Vec<u8> {
    let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap();
    let PrivateKeyDer::Pkcs8(k) = der else {
        panic!("PKCS#8 expected")
    };
    let bytes = k.secret_pkcs8_der();
    let rng = SystemRandom::new();
    match EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, bytes, &rng) {
        Ok(ec) => ec.public_key().as_ref().to_vec(),
        Err(_) => RsaKeyPair::from_pkcs8(bytes)
            .unwrap()
            .public()
            .as_ref()
            .to_vec(),
    }
}

fn check(pem_text: &str, alg: Alg, verify: &'static dyn signature::VerificationAlgorithm) {
    let key = SigningKey::from_pem(
        &SecretString::from(pem_text.to_string()),
        None,
        Some("k1".into()),
    )
    .unwrap();
    assert_eq!(key.alg(), alg);
    let a = key
        .assertion("client-1", "https://as.example", 1_800_000_000)
        .unwrap();
    let a = a.expose_secret();
    let parts: Vec<&str> = a.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header = decode(parts[0]);
    assert_eq!(header["alg"], alg.name());
    assert_eq!(header["kid"], "k1");
    let claims = decode(parts[1]);
    assert_eq!(claims["iss"], "client-1");
    assert_eq!(claims["sub"], "client-1");
    assert_eq!(claims["aud"], "https://as.example");
    assert_eq!(claims["iat"], 1_800_000_000u64);
    assert_eq!(claims["exp"], 1_800_000_000u64 + LIFETIME);
    assert_eq!(claims["jti"].as_str().unwrap().len(), 32);
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[2])
        .unwrap();
    let input = format!("{}.{}", parts[0], parts[1]);
    UnparsedPublicKey::new(verify, public_key(pem_text))
        .verify(input.as_bytes(), &sig)
        .expect("the public key verifies the assertion");
    let again = key
        .assertion("client-1", "https://as.example", 1_800_000_000)
        .unwrap();
    assert_ne!(
        decode(again.expose_secret().split('.').nth(1).unwrap())["jti"],
        claims["jti"],
        "every assertion has its own jti"
    );
}

#[test]
fn es256_assertions_verify_with_the_public_key() {
    check(&ec_pem(), Alg::Es256, &signature::ECDSA_P256_SHA256_FIXED);
}

#[test]
fn rs256_assertions_verify_with_the_public_key() {
    check(RSA_PEM, Alg::Rs256, &signature::RSA_PKCS1_2048_8192_SHA256);
}

#[test]
fn unusable_keys_are_refused_clearly_and_debug_shows_no_key() {
    let secret = |s: &str| SecretString::from(s.to_string());
    let e = SigningKey::from_pem(&secret("hello"), None, None).unwrap_err();
    assert!(e.to_string().contains("PEM"), "{e}");
    let e = SigningKey::from_pem(&secret(RSA_PEM), Some(Alg::Es256), None).unwrap_err();
    assert!(
        e.to_string().contains("RS256") && e.to_string().contains("ES256"),
        "{e}"
    );
    let sec1 = pem("EC PRIVATE KEY", &[0x30, 0x00]);
    let e = SigningKey::from_pem(&secret(&sec1), None, None).unwrap_err();
    assert!(e.to_string().contains("PKCS#8"), "{e}");
    let key = SigningKey::from_pem(&secret(RSA_PEM), None, None).unwrap();
    let shown = format!("{key:?}");
    assert!(!shown.contains("MII") && shown.contains("Rs256"), "{shown}");
}

#[test]
fn a_configured_audience_replaces_the_servers_in_every_assertion() {
    let secret = |s: &str| SecretString::from(s.to_string());
    let key = SigningKey::from_pem(&secret(&ec_pem()), None, None)
        .unwrap()
        .with_audience(Some("https://as.example/oauth2/token".into()));
    let jwt = key
        .assertion("client-1", "https://as.example", 1_800_000_000)
        .unwrap();
    let claims = decode(jwt.expose_secret().split('.').nth(1).unwrap());
    assert_eq!(claims["aud"], "https://as.example/oauth2/token");
    let plain = SigningKey::from_pem(&secret(&ec_pem()), None, None).unwrap();
    let jwt = plain
        .assertion("client-1", "https://as.example", 1_800_000_000)
        .unwrap();
    let claims = decode(jwt.expose_secret().split('.').nth(1).unwrap());
    assert_eq!(claims["aud"], "https://as.example");
}
