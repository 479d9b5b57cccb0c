//! Validation of a pre-registered client's private key (`private_key_jwt`): read from a 0600
//! file or a systemd credential as client secrets are (never inline), parsed and checked against
//! `private_key_alg` now, so that a bad key is a config error, not a failed login later.

use std::path::PathBuf;

use secrecy::SecretString;

use super::locate::{Locator, Seg};
use super::raw::RawAuth;
use super::units::non_empty;
use super::validate_auth::secret_path;
use super::{ClientKey, ConfigError, TokenSource};
use crate::auth::oauth::jws::{Alg, SigningKey};

/// The profile's client key, if it names one.
pub(super) fn private_key(
    p: &RawAuth,
    name: &str,
    at: &Locator<'_>,
) -> Result<Option<ClientKey>, ConfigError> {
    let error = |k: &str, m: String| at.error(&[Seg::Key("auth"), Seg::Key(name), Seg::Key(k)], m);
    let (source, k) = match (
        p.private_key_file.as_deref().and_then(non_empty),
        p.private_key_credential.as_deref().and_then(non_empty),
    ) {
        (None, None) => {
            for k in ["private_key_id", "private_key_alg", "private_key_audience"] {
                let set = match k {
                    "private_key_id" => &p.private_key_id,
                    "private_key_alg" => &p.private_key_alg,
                    _ => &p.private_key_audience,
                };
                if set.is_some() {
                    return Err(error(
                        k,
                        "needs private_key_file or private_key_credential".into(),
                    ));
                }
            }
            return Ok(None);
        }
        (Some(f), None) => (TokenSource::File(PathBuf::from(f)), "private_key_file"),
        (None, Some(c)) => (
            TokenSource::Credential(c.to_string()),
            "private_key_credential",
        ),
        (Some(_), Some(_)) => {
            return Err(error(
                "private_key_file",
                "set private_key_file or private_key_credential, not both".into(),
            ))
        }
    };
    if p.client_id.as_deref().and_then(non_empty).is_none() {
        return Err(error(
            k,
            "a private key needs the client_id it belongs to".into(),
        ));
    }
    let alg = match p.private_key_alg.as_deref().unwrap_or("auto") {
        "auto" => None,
        text => Some(Alg::parse(text).ok_or_else(|| {
            error(
                "private_key_alg",
                format!("unknown algorithm `{text}`; use auto, ES256 or RS256"),
            )
        })?),
    };
    let kid = p
        .private_key_id
        .as_deref()
        .and_then(non_empty)
        .map(str::to_string);
    let audience = match p.private_key_audience.as_deref().and_then(non_empty) {
        None => None,
        Some(text) => match url::Url::parse(text) {
            Ok(u) if u.has_host() => Some(text.to_string()),
            _ => {
                return Err(error(
                    "private_key_audience",
                    format!("`{text}` is not an absolute URL (the issuer or token endpoint the server names)"),
                ))
            }
        },
    };
    let path = secret_path(&source).map_err(|m| error(k, m))?;
    let pem = std::fs::read_to_string(&path)
        .map(SecretString::from)
        .map_err(|e| error(k, format!("cannot read {}: {e}", path.display())))?;
    let key = SigningKey::from_pem(&pem, alg, kid)
        .map_err(|e| error(k, e.to_string()))?
        .with_audience(audience);
    Ok(Some(ClientKey { source, key }))
}
