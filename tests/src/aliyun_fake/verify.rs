//! The fake's own verifier of signature V3 (`ACS3-HMAC-SHA256`), written from Alibaba Cloud's
//! "V3 request structure and signature" page and sharing no code with the daemon's signer: it
//! rebuilds the canonical request from what arrived on the wire (path and query decoded and
//! re-encoded, the headers the `Authorization` header names), hashes it with `sha2`, computes
//! the HMAC itself and compares in constant time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use sha2::{Digest, Sha256};

/// How far `x-acs-date` may be from the server's clock (the documented window).
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// Headers every signed request must sign.
const REQUIRED: [&str; 6] = [
    "host",
    "x-acs-action",
    "x-acs-content-sha256",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-version",
];

/// The AccessKey the fake accepts.
#[derive(Clone, PartialEq, Eq)]
pub struct FakeKey {
    pub id: String,
    pub secret: String,
    /// When set, requests must carry it as `x-acs-security-token`.
    pub security_token: Option<String>,
}

impl std::fmt::Debug for FakeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A request as it arrived.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub method: &'a str,
    /// The path as sent (percent-encoded).
    pub raw_path: &'a str,
    /// The query as sent, without `?`.
    pub raw_query: &'a str,
    pub headers: &'a HeaderMap,
    /// The request target's authority (HTTP/2 `:authority`), used when there is no `Host`.
    pub authority: Option<&'a str>,
    pub body: &'a [u8],
}

/// Why a request is refused: the error code and message Alibaba Cloud would send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl Rejection {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Rejection {
        Rejection {
            status,
            code,
            message: message.into(),
        }
    }
}

/// The parts of `Authorization: ACS3-HMAC-SHA256 Credential=…,SignedHeaders=…,Signature=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub credential: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Parses an `Authorization` header value.
pub fn parse_authorization(value: &str) -> Option<Authorization> {
    let rest = value.strip_prefix("ACS3-HMAC-SHA256 ")?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (name, value) = part.trim().split_once('=')?;
        match name {
            "Credential" => credential = Some(value.to_string()),
            "SignedHeaders" => signed = Some(value.to_string()),
            "Signature" => signature = Some(value.to_string()),
            _ => return None,
        }
    }
    Some(Authorization {
        credential: credential?,
        signed_headers: signed?.split(';').map(str::to_string).collect(),
        signature: signature?,
    })
}

/// Checks `req` against `key`; `now` bounds `x-acs-date` (`None`: the date is not checked).
pub fn verify(req: &Incoming<'_>, key: &FakeKey, now: Option<SystemTime>) -> Result<(), Rejection> {
    let auth_value = header(req, "authorization")
        .ok_or_else(|| Rejection::new(400, "MissingAuthorization", "Authorization is missing"))?;
    let auth = parse_authorization(&auth_value).ok_or_else(|| {
        Rejection::new(
            400,
            "IncompleteSignature",
            "the Authorization header is malformed",
        )
    })?;
    if auth.credential != key.id {
        return Err(Rejection::new(
            404,
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.",
        ));
    }
    let mut sorted = auth.signed_headers.clone();
    sorted.sort();
    sorted.dedup();
    if sorted != auth.signed_headers {
        return Err(Rejection::new(
            400,
            "IncompleteSignature",
            "SignedHeaders must be sorted, lower-case and unique",
        ));
    }
    for name in REQUIRED {
        if !auth.signed_headers.iter().any(|h| h == name) {
            return Err(Rejection::new(
                400,
                "IncompleteSignature",
                format!("header {name} must be signed"),
            ));
        }
    }
    for name in req.headers.keys() {
        let name = name.as_str();
        let must = name.starts_with("x-acs-") || name == "content-type";
        if must && !auth.signed_headers.iter().any(|h| h == name) {
            return Err(Rejection::new(
                400,
                "IncompleteSignature",
                format!("header {name} is present but not signed"),
            ));
        }
    }
    match (&key.security_token, header(req, "x-acs-security-token")) {
        (Some(want), Some(got)) if &got == want => {}
        (None, None) => {}
        _ => {
            return Err(Rejection::new(
                400,
                "InvalidSecurityToken.Mismatch",
                "the security token does not match",
            ))
        }
    }
    let body_hash = hex(&Sha256::digest(req.body));
    if header(req, "x-acs-content-sha256").as_deref() != Some(body_hash.as_str()) {
        return Err(Rejection::new(
            400,
            "SignatureDoesNotMatch",
            "x-acs-content-sha256 is not the SHA-256 of the body",
        ));
    }
    if let Some(now) = now {
        check_date(header(req, "x-acs-date").as_deref().unwrap_or(""), now)?;
    }
    let canonical = canonical_request(req, &auth.signed_headers)?;
    let string_to_sign = format!(
        "ACS3-HMAC-SHA256\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let expected = hmac_sha256(key.secret.as_bytes(), string_to_sign.as_bytes());
    match unhex(&auth.signature) {
        Some(given) if constant_time_eq(&given, &expected) => Ok(()),
        _ => Err(Rejection::new(
            400,
            "SignatureDoesNotMatch",
            format!(
                "Specified signature is not matched with our calculation. server string to sign \
                 is:{string_to_sign} canonical request is:{canonical:?}"
            ),
        )),
    }
}

/// The canonical request the server computes for `req`, signing `signed` headers.
pub fn canonical_request(req: &Incoming<'_>, signed: &[String]) -> Result<String, Rejection> {
    let bad = |what: &str| Rejection::new(400, "InvalidParameter", format!("malformed {what}"));
    let mut path_segments = Vec::new();
    for segment in req.raw_path.split('/') {
        path_segments.push(encode(&decode(segment).ok_or_else(|| bad("path"))?));
    }
    let mut params = Vec::new();
    for piece in req.raw_query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
        let name = decode(name).ok_or_else(|| bad("query"))?;
        let value = decode(value).ok_or_else(|| bad("query"))?;
        params.push((encode(&name), encode(&value)));
    }
    params.sort();
    let query: Vec<String> = params.iter().map(|(n, v)| format!("{n}={v}")).collect();
    let mut headers = String::new();
    for name in signed {
        let mut values: Vec<String> = req
            .headers
            .get_all(name.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| v.trim().to_string())
            .collect();
        if values.is_empty() && name == "host" {
            values.extend(req.authority.map(str::to_string));
        }
        if values.is_empty() {
            return Err(Rejection::new(
                400,
                "IncompleteSignature",
                format!("signed header {name} is missing"),
            ));
        }
        values.sort();
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    Ok(format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        path_segments.join("/"),
        query.join("&"),
        headers,
        signed.join(";"),
        header(req, "x-acs-content-sha256").unwrap_or_default()
    ))
}

fn header(req: &Incoming<'_>, name: &str) -> Option<String> {
    req.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
}

fn check_date(text: &str, now: SystemTime) -> Result<(), Rejection> {
    let when = parse_date(text).ok_or_else(|| {
        Rejection::new(
            400,
            "InvalidTimeStamp.Format",
            "x-acs-date must be yyyy-MM-ddTHH:mm:ssZ",
        )
    })?;
    let skew = match now.duration_since(when) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    if skew > MAX_SKEW {
        return Err(Rejection::new(
            400,
            "InvalidTimeStamp.Expired",
            "x-acs-date is more than 15 minutes from the server's time",
        ));
    }
    Ok(())
}

/// `yyyy-MM-ddTHH:mm:ssZ` in UTC.
pub fn parse_date(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || b[19] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    // Days from civil (Gregorian), for years after 1970.
    let (yy, mm) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * mm + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days * 86_400 + h * 3600 + mi * 60 + s).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// RFC 3986 encoding, unreserved characters kept, `%XX` upper-case.
fn encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-decoding; `+` stays `+`. `None` for a broken escape.
fn decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = (*bytes.get(i + 1)? as char).to_digit(16)?;
            let lo = (*bytes.get(i + 2)? as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// HMAC (RFC 2104) over SHA-256.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|k| k ^ byte).collect::<Vec<u8>>();
    let mut inner = Sha256::new();
    inner.update(pad(0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(pad(0x5c));
    outer.update(inner.finalize());
    outer.finalize().to_vec()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    text.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() => {
                let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                Some(digit(*hi) * 16 + digit(*lo))
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
