//! Client assertions for `private_key_jwt` (RFC 7523 §2.2, OpenID Connect client
//! authentication): a compact JWS (RFC 7515) signed with the client's own private key, ES256 or
//! RS256, by ring. `iss` = `sub` = the client id, `aud` = the authorization server's issuer
//! (RFC 7523bis; its token endpoint when it has no issuer), a random `jti`, `iat` and a short
//! `exp`. Each request gets a fresh one.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, EcdsaKeyPair, RsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use secrecy::{ExposeSecret, SecretString};

/// The `client_assertion_type` of a JWT client assertion.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How long an assertion is valid: one request's worth, with room for clock skew.
pub const LIFETIME: u64 = 60;

/// The JWS algorithm of a client key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
}

impl Alg {
    pub fn name(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::Rs256 => "RS256",
        }
    }

    /// `ES256` or `RS256`.
    pub fn parse(text: &str) -> Option<Alg> {
        match text {
            "ES256" => Some(Alg::Es256),
            "RS256" => Some(Alg::Rs256),
            _ => None,
        }
    }
}

/// Why a client key cannot be used. Messages never hold key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM private key (expected -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)")]
    NotPem,
    #[error(
        "an EC key in SEC1 form is not supported: convert it to PKCS#8 with \
         `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.p8`"
    )]
    Sec1,
    #[error("the key is neither a P-256 EC key nor an RSA key of 2048 to 8192 bits")]
    Unsupported,
    #[error("the key is a {found} key, but private_key_alg says {wanted}")]
    Mismatch {
        found: &'static str,
        wanted: &'static str,
    },
    #[error("signing the client assertion failed")]
    Sign,
}

enum Signer {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A client's private key, ready to sign assertions. Debug shows no key material.
#[derive(Clone)]
pub struct SigningKey {
    alg: Alg,
    kid: Option<String>,
    /// The configured `aud`, instead of the one the caller names (`private_key_audience`).
    audience: Option<String>,
    signer: Arc<Signer>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The key of a PEM document (PKCS#8 EC P-256 or RSA, or PKCS#1 RSA). `alg`, when given,
    /// must fit the key; `kid` goes into the JWS header.
    pub fn from_pem(
        pem: &SecretString,
        alg: Option<Alg>,
        kid: Option<String>,
    ) -> Result<SigningKey, KeyError> {
        let der = PrivateKeyDer::from_pem_slice(pem.expose_secret().as_bytes())
            .map_err(|_| KeyError::NotPem)?;
        let rng = SystemRandom::new();
        let signer = match &der {
            PrivateKeyDer::Pkcs8(k) => {
                let bytes = k.secret_pkcs8_der();
                match EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    bytes,
                    &rng,
                ) {
                    Ok(ec) => Signer::Ec(ec),
                    Err(_) => Signer::Rsa(
                        RsaKeyPair::from_pkcs8(bytes).map_err(|_| KeyError::Unsupported)?,
                    ),
                }
            }
            PrivateKeyDer::Pkcs1(k) => Signer::Rsa(
                RsaKeyPair::from_der(k.secret_pkcs1_der()).map_err(|_| KeyError::Unsupported)?,
            ),
            PrivateKeyDer::Sec1(_) => return Err(KeyError::Sec1),
            _ => return Err(KeyError::Unsupported),
        };
        let found = match signer {
            Signer::Ec(_) => Alg::Es256,
            Signer::Rsa(_) => Alg::Rs256,
        };
        if let Some(wanted) = alg.filter(|a| *a != found) {
            return Err(KeyError::Mismatch {
                found: found.name(),
                wanted: wanted.name(),
            });
        }
        Ok(SigningKey {
            alg: found,
            kid,
            audience: None,
            signer: Arc::new(signer),
        })
    }

    /// The key with `aud` fixed to `audience` for every assertion, when set.
    pub fn with_audience(mut self, audience: Option<String>) -> SigningKey {
        self.audience = audience;
        self
    }

    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// A fresh assertion that `client_id` is itself, for the authorization server `audience`
    /// (or the configured audience), issued at `now` (Unix seconds).
    pub fn assertion(
        &self,
        client_id: &str,
        audience: &str,
        now: u64,
    ) -> Result<SecretString, KeyError> {
        let rng = SystemRandom::new();
        let mut jti = [0u8; 16];
        rng.fill(&mut jti).map_err(|_| KeyError::Sign)?;
        let mut header = serde_json::json!({ "alg": self.alg.name(), "typ": "JWT" });
        if let Some(kid) = &self.kid {
            header["kid"] = serde_json::Value::String(kid.clone());
        }
        let claims = serde_json::json!({
            "iss": client_id,
            "sub": client_id,
            "aud": self.audience.as_deref().unwrap_or(audience),
            "jti": hex(&jti),
            "iat": now,
            "exp": now + LIFETIME,
        });
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = match &*self.signer {
            Signer::Ec(k) => k
                .sign(&rng, input.as_bytes())
                .map_err(|_| KeyError::Sign)?
                .as_ref()
                .to_vec(),
            Signer::Rsa(k) => {
                let mut sig = vec![0u8; k.public().modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    input.as_bytes(),
                    &mut sig,
                )
                .map_err(|_| KeyError::Sign)?;
                sig
            }
        };
        Ok(SecretString::from(format!("{input}.{}", b64(&sig))))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[path = "jws_tests.rs"]
mod tests;
