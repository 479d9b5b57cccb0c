//! Alibaba Cloud API signature V3 (`ACS3-HMAC-SHA256`), as the "V3 request structure and
//! signature" documentation describes it: canonical request, string to sign, signature and the
//! headers a signed request carries. Pure: the caller supplies the date and the nonce.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use ring::{digest, hmac};
use secrecy::ExposeSecret;

use super::credentials::AccessKey;

/// The only algorithm of signature V3.
pub const ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// RFC 3986 unreserved characters (`A-Z a-z 0-9 - _ . ~`) stay; every other byte is `%XX` in
/// upper-case hex, so a space is `%20` (never `+`) and `*` is `%2A`.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// One request to sign. `path` and `query` are given unencoded: the signer encodes them, and
/// the request must go out with exactly [`encode_path`]`(path)` and [`canonical_query`]`(query)`.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET`, `POST`, … (upper-cased when signed).
    pub method: &'a str,
    /// The authority the request is sent to, as the `Host` header carries it (`host[:port]`).
    pub host: &'a str,
    /// `/` for RPC-style APIs, the resource path for ROA-style ones.
    pub path: &'a str,
    pub query: &'a [(String, String)],
    /// Further headers to sign (e.g. `content-type`); names in any case.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
    /// `x-acs-action`: the API name.
    pub action: &'a str,
    /// `x-acs-version`: the API version.
    pub version: &'a str,
    /// `x-acs-date`, `%Y-%m-%dT%H:%M:%SZ` in UTC (see [`acs_date`]).
    pub date: &'a str,
    /// `x-acs-signature-nonce`, unique per request (see [`new_nonce`]).
    pub nonce: &'a str,
}

/// A canonical request and the `;`-joined names of the headers it signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canonical {
    pub request: String,
    pub signed_headers: String,
}

/// Percent-encodes one name, value or path segment (RFC 3986, UTF-8).
pub fn encode(text: &str) -> String {
    utf8_percent_encode(text, UNRESERVED).to_string()
}

/// Encodes each `/`-separated segment of `path`, keeping the slashes; empty is `/`.
pub fn encode_path(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    path.split('/').map(encode).collect::<Vec<_>>().join("/")
}

/// The canonical query string: names and values encoded, sorted by name then value, joined as
/// `name=value` with `&`; a parameter without a value is `name=`.
pub fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> =
        query.iter().map(|(n, v)| (encode(n), encode(v))).collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Lower-case hex SHA-256 of `data` (`HashedRequestPayload`, `x-acs-content-sha256`).
pub fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

/// The canonical request of signature V3. Header names are lower-cased and sorted; the values
/// of a repeated name are trimmed, sorted and joined with `,`.
pub fn canonical_request(
    method: &str,
    path: &str,
    query: &[(String, String)],
    headers: &[(String, String)],
    payload_hash: &str,
) -> Canonical {
    let mut merged: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (name, value) in headers {
        merged
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push(value.trim());
    }
    let mut canonical_headers = String::new();
    for (name, values) in &mut merged {
        values.sort_unstable();
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(&values.join(","));
        canonical_headers.push('\n');
    }
    let signed_headers = merged.keys().cloned().collect::<Vec<_>>().join(";");
    let request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        method.to_ascii_uppercase(),
        encode_path(path),
        canonical_query(query),
        canonical_headers,
        signed_headers,
        payload_hash
    );
    Canonical {
        request,
        signed_headers,
    }
}

/// `ACS3-HMAC-SHA256\n` + the hex SHA-256 of the canonical request.
pub fn string_to_sign(canonical_request: &str) -> String {
    format!("{ALGORITHM}\n{}", sha256_hex(canonical_request.as_bytes()))
}

/// Hex HMAC-SHA256 of the string to sign, keyed with the AccessKey secret.
pub fn signature(secret: &str, string_to_sign: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hex(hmac::sign(&key, string_to_sign.as_bytes()).as_ref())
}

/// Signs `req`: the headers to add to it, `authorization` last. Names are lower-case. `host`
/// is signed but not returned: the HTTP client sends it from the URL, and `req.host` must be
/// what it sends.
pub fn sign(req: &Request<'_>, key: &AccessKey) -> Vec<(String, String)> {
    let mut added: Vec<(String, String)> = vec![
        ("x-acs-action".into(), req.action.into()),
        ("x-acs-version".into(), req.version.into()),
        ("x-acs-date".into(), req.date.into()),
        ("x-acs-signature-nonce".into(), req.nonce.into()),
        ("x-acs-content-sha256".into(), sha256_hex(req.body)),
    ];
    if let Some(token) = &key.security_token {
        added.push((
            "x-acs-security-token".into(),
            token.expose_secret().to_string(),
        ));
    }
    let mut signed: Vec<(String, String)> = vec![("host".into(), req.host.into())];
    signed.extend(added.iter().cloned());
    signed.extend(req.headers.iter().cloned());
    let payload_hash = sha256_hex(req.body);
    let canonical = canonical_request(req.method, req.path, req.query, &signed, &payload_hash);
    let signature = signature(
        key.secret.expose_secret(),
        &string_to_sign(&canonical.request),
    );
    added.push((
        "authorization".into(),
        format!(
            "{ALGORITHM} Credential={},SignedHeaders={},Signature={signature}",
            key.id, canonical.signed_headers
        ),
    ));
    added
}

/// `x-acs-date` for `time`: `%Y-%m-%dT%H:%M:%SZ` in UTC.
pub fn acs_date(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = crate::clock::civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A fresh `x-acs-signature-nonce`: 128 random bits in hex.
pub fn new_nonce() -> String {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 16];
    // The system RNG fails only if the OS has none; a clock-derived nonce still prevents
    // accidental reuse, which is all a nonce must do.
    if SystemRandom::new().fill(&mut bytes).is_err() {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes = nanos.to_be_bytes();
    }
    hex(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

#[cfg(test)]
#[path = "sign_tests.rs"]
mod tests;
