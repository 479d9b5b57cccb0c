//! Validation of `[auth.NAME]` profiles, and reading of static tokens.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use url::Url;

use super::locate::{Locator, Seg};
use super::preset::{DEFAULT_OAUTH_APP_NAME, DEFAULT_SCOPE};
use super::raw::RawAuth;
use super::units::{non_empty, parse_duration};
use super::*;

type Result<T> = std::result::Result<T, ConfigError>;

const ALIBABA_KEYS: &[&str] = &[
    "region",
    "oauth_app_name",
    "scope",
    "refresh_margin",
    "redirect_uri",
    "signin_url",
    "oauth_url",
    "ims_endpoint",
    "access_key",
    "ca_file",
];
const OAUTH_KEYS: &[&str] = &[
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "revocation_endpoint",
    "client_id",
    "client_secret",
    "client_secret_file",
    "client_secret_credential",
    "private_key_file",
    "private_key_credential",
    "private_key_id",
    "private_key_alg",
    "private_key_audience",
    "grant",
    "scopes",
    "resource",
    "refresh_margin",
    "ca_file",
];
const STATIC_KEYS: &[&str] = &["token_file", "credential"];

pub(super) fn profile(name: &str, p: &RawAuth, at: &Locator<'_>) -> Result<AuthProfile> {
    let at = Here { name, at };
    let kind = kind_of(p, at)?;
    let ca_file = ca_file(p, at)?;
    match kind {
        Kind::Static => static_profile(p, at),
        Kind::OAuth => oauth_profile(p, ca_file, at),
        Kind::Alibaba => alibaba_profile(p, ca_file, at),
    }
}

/// Where in the file a profile's errors point: `auth.NAME.KEY`.
#[derive(Clone, Copy)]
struct Here<'a, 'b> {
    name: &'a str,
    at: &'a Locator<'b>,
}

impl Here<'_, '_> {
    fn error(&self, k: &str, message: impl Into<String>) -> ConfigError {
        let key = [Seg::Key("auth"), Seg::Key(self.name), Seg::Key(k)];
        self.at.error(&key, message)
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Alibaba,
    OAuth,
    Static,
}

/// The profile's `kind`, once every key it sets is one that kind takes.
fn kind_of(p: &RawAuth, at: Here<'_, '_>) -> Result<Kind> {
    let kind = p
        .kind
        .as_deref()
        .ok_or_else(|| at.error("kind", "set `kind` to alibaba, oauth or static"))?;
    let (parsed, allowed) = match kind {
        "alibaba" => (Kind::Alibaba, ALIBABA_KEYS),
        "oauth" => (Kind::OAuth, OAUTH_KEYS),
        "static" => (Kind::Static, STATIC_KEYS),
        other => {
            return Err(at.error(
                "kind",
                format!("unknown kind `{other}`; use alibaba, oauth or static"),
            ))
        }
    };
    for set in p.set_keys() {
        if !allowed.contains(&set) {
            return Err(at.error(set, format!("does not apply to kind = \"{kind}\"")));
        }
    }
    Ok(parsed)
}

fn url(k: &str, v: &Option<String>, at: Here<'_, '_>) -> Result<Option<Url>> {
    match v.as_deref().and_then(non_empty) {
        None => Ok(None),
        Some(text) => https_url(text).map(Some).map_err(|m| at.error(k, m)),
    }
}

fn margin(p: &RawAuth, at: Here<'_, '_>) -> Result<RefreshMargin> {
    match p.refresh_margin.as_deref().unwrap_or("auto") {
        "auto" => Ok(RefreshMargin::Auto),
        text => parse_duration(text)
            .map(RefreshMargin::Fixed)
            .map_err(|m| at.error("refresh_margin", m)),
    }
}

fn ca_file(p: &RawAuth, at: Here<'_, '_>) -> Result<Option<PathBuf>> {
    match p.ca_file.as_deref().and_then(non_empty) {
        None => Ok(None),
        Some(f) if Path::new(f).is_file() => Ok(Some(PathBuf::from(f))),
        Some(f) => Err(at.error("ca_file", format!("{f} does not exist"))),
    }
}

/// `kind = "static"`: exactly one of `token_file` or `credential`, read now.
fn static_profile(p: &RawAuth, at: Here<'_, '_>) -> Result<AuthProfile> {
    let (source, k) = match (
        p.token_file.as_deref().and_then(non_empty),
        p.credential.as_deref().and_then(non_empty),
    ) {
        (Some(f), None) => (TokenSource::File(PathBuf::from(f)), "token_file"),
        (None, Some(c)) => (TokenSource::Credential(c.to_string()), "credential"),
        _ => {
            return Err(at.error(
                "kind",
                "a static profile needs exactly one of token_file or credential",
            ))
        }
    };
    let token = read_token(&source).map_err(|m| at.error(k, m))?;
    Ok(AuthProfile::Static(StaticAuth { source, token }))
}

/// `kind = "oauth"`: explicit https endpoints, or none (discovery).
fn oauth_profile(p: &RawAuth, ca_file: Option<PathBuf>, at: Here<'_, '_>) -> Result<AuthProfile> {
    let resource = match p.resource.as_deref().unwrap_or("auto") {
        "auto" => Resource::Auto,
        "off" => Resource::Off,
        text => Resource::Uri(
            Url::parse(text).map_err(|e| at.error("resource", format!("`{text}`: {e}")))?,
        ),
    };
    let client_secret = client_secret(p, at)?;
    let private_key = super::validate_client_key::private_key(p, at.name, at.at)?;
    let grant = match p.grant.as_deref().unwrap_or("authorization_code") {
        "authorization_code" => GrantType::AuthorizationCode,
        "client_credentials" => {
            if client_secret.is_none() && private_key.is_none() {
                return Err(at.error(
                    "grant",
                    "client_credentials needs a confidential client: set client_id and \
                     client_secret_file or client_secret_credential (or private_key_file or \
                     private_key_credential)",
                ));
            }
            if p.token_endpoint.is_none() && p.issuer.is_none() {
                return Err(at.error("grant", "client_credentials needs token_endpoint or issuer"));
            }
            GrantType::ClientCredentials
        }
        other => {
            return Err(at.error(
                "grant",
                format!("unknown grant `{other}`; use authorization_code or client_credentials"),
            ))
        }
    };
    Ok(AuthProfile::OAuth(OAuthProfile {
        grant,
        issuer: url("issuer", &p.issuer, at)?,
        authorization_endpoint: url("authorization_endpoint", &p.authorization_endpoint, at)?,
        token_endpoint: url("token_endpoint", &p.token_endpoint, at)?,
        revocation_endpoint: url("revocation_endpoint", &p.revocation_endpoint, at)?,
        client_id: p
            .client_id
            .as_deref()
            .and_then(non_empty)
            .map(str::to_string),
        client_secret,
        private_key,
        scopes: p.scopes.clone().unwrap_or_default(),
        resource,
        refresh_margin: margin(p, at)?,
        ca_file,
    }))
}

/// A pre-registered client's secret: from a 0600 file or a systemd credential, read now;
/// never inline.
fn client_secret(p: &RawAuth, at: Here<'_, '_>) -> Result<Option<ClientSecret>> {
    if p.client_secret.is_some() {
        return Err(at.error(
            "client_secret",
            "a client secret is never taken from the config file: put it in a 0600 file named \
             by client_secret_file, or a systemd credential named by client_secret_credential",
        ));
    }
    let (source, k) = match (
        p.client_secret_file.as_deref().and_then(non_empty),
        p.client_secret_credential.as_deref().and_then(non_empty),
    ) {
        (None, None) => return Ok(None),
        (Some(f), None) => (TokenSource::File(PathBuf::from(f)), "client_secret_file"),
        (None, Some(c)) => (
            TokenSource::Credential(c.to_string()),
            "client_secret_credential",
        ),
        (Some(_), Some(_)) => {
            return Err(at.error(
                "client_secret_file",
                "set client_secret_file or client_secret_credential, not both",
            ))
        }
    };
    if p.client_id.as_deref().and_then(non_empty).is_none() {
        return Err(at.error(k, "a client secret needs the client_id it belongs to"));
    }
    let secret = read_token(&source).map_err(|m| at.error(k, m))?;
    Ok(Some(ClientSecret { source, secret }))
}

/// `kind = "alibaba"`: the region fills every endpoint that is not set.
fn alibaba_profile(p: &RawAuth, ca_file: Option<PathBuf>, at: Here<'_, '_>) -> Result<AuthProfile> {
    let region_text = p.region.as_deref().unwrap_or("CN");
    let region = Region::parse(region_text).ok_or_else(|| {
        at.error(
            "region",
            format!("unknown region `{region_text}`; use CN or INTL"),
        )
    })?;
    let preset = region.preset();
    let or_preset = |k: &'static str, v: &Option<String>, d: &str| -> Result<Url> {
        Ok(url(k, v, at)?.unwrap_or_else(|| Url::parse(d).expect("preset URLs are valid")))
    };
    let redirect_uri = match p.redirect_uri.as_deref().and_then(non_empty) {
        None => None,
        Some(text) => Some(super::units::parse_url(text).map_err(|e| at.error("redirect_uri", e))?),
    };
    Ok(AuthProfile::Alibaba(AlibabaProfile {
        region,
        oauth_app_name: p
            .oauth_app_name
            .clone()
            .unwrap_or_else(|| DEFAULT_OAUTH_APP_NAME.into()),
        scope: p.scope.clone().unwrap_or_else(|| DEFAULT_SCOPE.into()),
        refresh_margin: margin(p, at)?,
        redirect_uri,
        signin_url: or_preset("signin_url", &p.signin_url, preset.signin_url)?,
        oauth_url: or_preset("oauth_url", &p.oauth_url, preset.oauth_url)?,
        ims_endpoint: or_preset("ims_endpoint", &p.ims_endpoint, preset.ims_endpoint)?,
        access_key: {
            let text = p.access_key.clone().unwrap_or_else(|| "env".into());
            KeySource::parse(&text).map_err(|e| at.error("access_key", e.to_string()))?;
            text
        },
        ca_file,
    }))
}

/// Endpoints of authorization servers carry codes and tokens: https only.
fn https_url(text: &str) -> std::result::Result<Url, String> {
    let url = super::units::parse_url(text)?;
    if url.scheme() != "https" || url.host().is_none() {
        return Err(format!("`{text}` must be an https:// URL"));
    }
    Ok(url)
}

/// Reads a static bearer token: trailing newline stripped; a file readable by group or others,
/// or an empty token, is refused.
pub fn read_token(source: &TokenSource) -> std::result::Result<SecretString, String> {
    let path = secret_path(source)?;
    let mut text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    while text.ends_with('\n') || text.ends_with('\r') {
        text.pop();
    }
    if text.is_empty() {
        return Err(format!("{} holds no token", path.display()));
    }
    if text.chars().any(|c| c.is_control() || c == ' ') {
        return Err(format!(
            "{} holds characters a bearer token cannot have (spaces, control characters)",
            path.display()
        ));
    }
    Ok(SecretString::from(text))
}

/// Where a secret's source is: a file that group and others cannot read (else an error that
/// says how to fix it), or a systemd credential in `$CREDENTIALS_DIRECTORY`.
pub fn secret_path(source: &TokenSource) -> std::result::Result<PathBuf, String> {
    Ok(match source {
        TokenSource::File(p) => {
            let meta =
                std::fs::metadata(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(format!(
                    "{} is accessible by group or others (mode {mode:04o}); run `chmod 600 {}`",
                    p.display(),
                    p.display()
                ));
            }
            p.clone()
        }
        TokenSource::Credential(name) => {
            if name.contains('/') || name == "." || name == ".." {
                return Err(format!("`{name}` is not a credential name"));
            }
            let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
                format!(
                    "credential `{name}` needs $CREDENTIALS_DIRECTORY (set by systemd's \
                     LoadCredential=/SetCredential=)"
                )
            })?;
            PathBuf::from(dir).join(name)
        }
    })
}
