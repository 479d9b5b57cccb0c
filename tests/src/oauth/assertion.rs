//! `private_key_jwt` client authentication at the test server (RFC 7523 §2.2): the client
//! assertion is verified with the public key of the client's [`AssertionKey`] (ES256 or RS256),
//! and must name the client as `iss` and `sub`, this server's issuer as `aud`, a `jti` never
//! seen before and a short, unexpired `exp`.

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;

use super::reply::Params;
use super::state::{AuthState, OAuthError};

/// The `client_assertion_type` of a JWT client assertion.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The longest `exp - now` accepted: assertions are for one request.
const MAX_LIFETIME: u64 = 300;

/// A client that authenticates with assertions signed by this key (the server uses only its
/// public half; the private PEM is what the client is configured with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionKey {
    pub client_id: String,
    /// PKCS#8 PEM of a P-256 EC or RSA private key.
    pub private_pem: String,
}

/// Whether the form carries a client assertion.
pub(crate) fn present(params: &Params<'_>) -> bool {
    params.get("client_assertion").ok().flatten().is_some()
}

/// The client the assertion in `params` authenticates, or `invalid_client` saying why not.
pub(crate) fn verify(
    auth: &mut AuthState,
    issuer: &str,
    params: &Params<'_>,
) -> Result<String, OAuthError> {
    let refuse = |why: &str| OAuthError::new("invalid_client", format!("client assertion: {why}"));
    if params.get("client_assertion_type")? != Some(JWT_BEARER) {
        return Err(refuse("client_assertion_type must be jwt-bearer"));
    }
    let assertion = params.require("client_assertion")?.to_string();
    // Kept, so that a test can look for every assertion where it must not appear.
    auth.issued.push(assertion.clone());
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, sig] = parts[..] else {
        return Err(refuse("not a compact JWS"));
    };
    let (h, c) = (
        decode(header).ok_or_else(|| refuse("bad header"))?,
        decode(claims).ok_or_else(|| refuse("bad claims"))?,
    );
    let client_id = c["iss"]
        .as_str()
        .ok_or_else(|| refuse("no iss"))?
        .to_string();
    if c["sub"].as_str() != Some(&client_id) {
        return Err(refuse("sub must equal iss"));
    }
    if params.get("client_id")?.is_some_and(|id| id != client_id) {
        return Err(refuse("client_id is not the assertion's iss"));
    }
    let key = auth
        .opts
        .assertion_keys
        .iter()
        .find(|k| k.client_id == client_id)
        .ok_or_else(|| refuse("no key is registered for this client"))?;
    let (alg, public, verifier) = public_key(&key.private_pem);
    if h["alg"].as_str() != Some(alg) {
        return Err(refuse("alg does not fit the client's key"));
    }
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| refuse("bad signature encoding"))?;
    UnparsedPublicKey::new(verifier, public)
        .verify(format!("{header}.{claims}").as_bytes(), &sig)
        .map_err(|_| refuse("bad signature"))?;
    let issuer = issuer.trim_end_matches('/');
    if c["aud"].as_str().map(|a| a.trim_end_matches('/')) != Some(issuer) {
        return Err(refuse("aud must be the issuer"));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let exp = c["exp"].as_u64().ok_or_else(|| refuse("no exp"))?;
    if exp <= now || exp > now + MAX_LIFETIME || c["iat"].as_u64().is_none() {
        return Err(refuse("expired, too long-lived, or without iat"));
    }
    let jti = c["jti"].as_str().ok_or_else(|| refuse("no jti"))?;
    if !auth.jtis.insert(jti.to_string()) {
        return Err(refuse("jti replayed"));
    }
    Ok(client_id)
}

fn decode(part: &str) -> Option<serde_json::Value> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The JWS algorithm, public key and verification algorithm of a private PEM.
fn public_key(
    pem: &str,
) -> (
    &'static str,
    Vec<u8>,
    &'static dyn signature::VerificationAlgorithm,
) {
    let Ok(PrivateKeyDer::Pkcs8(k)) = PrivateKeyDer::from_pem_slice(pem.as_bytes()) else {
        panic!("an AssertionKey must be a PKCS#8 PEM");
    };
    let der = k.secret_pkcs8_der();
    let rng = SystemRandom::new();
    match EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng) {
        Ok(ec) => (
            "ES256",
            ec.public_key().as_ref().to_vec(),
            &signature::ECDSA_P256_SHA256_FIXED,
        ),
        Err(_) => {
            let rsa = RsaKeyPair::from_pkcs8(der).expect("a P-256 EC or RSA key");
            (
                "RS256",
                rsa.public().as_ref().to_vec(),
                &signature::RSA_PKCS1_2048_8192_SHA256,
            )
        }
    }
}

/// A fresh P-256 key as PKCS#8 PEM, for tests.
pub fn generate_ec_pem() -> String {
    let rng = SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .expect("P-256 key generation");
    let b64 = base64::engine::general_purpose::STANDARD.encode(doc.as_ref());
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

/// A throwaway 2048-bit RSA key (PKCS#8 PEM), for tests only: ring cannot generate RSA keys.
pub const TEST_RSA_PEM: &str =
    include_str!("../../../daemon/src/auth/oauth/testdata/rsa-client-key.pem");
