//! One signed call to an Alibaba Cloud API (RPC or ROA style) and its error shape: the request
//! is signed with signature V3, the JSON answer read with a size cap, an error answer
//! (`{"RequestId", "Code", "Message"}`, either case) surfaced with its code and message.

use std::time::{Duration, SystemTime};

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use url::Url;

use super::credentials::AccessKey;
use super::sign;

/// No answer of these APIs comes near this; a larger one is refused, not buffered.
const MAX_RESPONSE: usize = 8 * 1024 * 1024;

/// Whole-request limit of one call (the client's connect timeout applies inside it).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a call failed. Messages carry no secret, URL query or response body.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("endpoint {0} has no host")]
    Endpoint(String),
    #[error("{action}: cannot reach {host}: {reason}")]
    Transport {
        action: String,
        host: String,
        reason: String,
    },
    #[error("{action} failed: HTTP {status} {code}: {message} (request id {request_id})")]
    Service {
        action: String,
        status: u16,
        code: String,
        message: String,
        request_id: String,
    },
    #[error("{action} failed: HTTP {status}")]
    Status { action: String, status: u16 },
    #[error("{action}: the answer is larger than {MAX_RESPONSE} bytes")]
    TooLarge { action: String },
    #[error("{action}: unexpected answer ({detail})")]
    Decode { action: String, detail: String },
}

impl ApiError {
    /// The service's error code (`SignatureDoesNotMatch`, `EntityNotExist.Application`, …).
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status, when the service answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Service { status, .. } | ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// What to call: an API action at `path` of `endpoint`'s origin, parameters in the query.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    pub method: Method,
    /// Only the scheme, host and port are used: the path is `path`.
    pub endpoint: &'a Url,
    pub path: &'a str,
    pub query: Vec<(String, String)>,
    pub action: &'a str,
    pub version: &'a str,
}

/// The error body of both API styles.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(alias = "requestId", default)]
    #[serde(rename = "RequestId")]
    request_id: String,
    #[serde(alias = "code", default)]
    #[serde(rename = "Code")]
    code: String,
    #[serde(alias = "message", default)]
    #[serde(rename = "Message")]
    message: String,
}

/// The authority the `Host` header will carry for `url` (`host` or `host:port`).
pub fn authority(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    })
}

/// Signs and sends `call`, and decodes the JSON answer.
pub async fn call<T: DeserializeOwned>(
    http: &reqwest::Client,
    key: &AccessKey,
    call: Call<'_>,
) -> Result<T, ApiError> {
    let action = call.action.to_string();
    let host =
        authority(call.endpoint).ok_or_else(|| ApiError::Endpoint(call.endpoint.to_string()))?;
    let date = sign::acs_date(SystemTime::now());
    let nonce = sign::new_nonce();
    let request = sign::Request {
        method: call.method.as_str(),
        host: &host,
        path: call.path,
        query: &call.query,
        headers: &[],
        body: b"",
        action: call.action,
        version: call.version,
        date: &date,
        nonce: &nonce,
    };
    let added = sign::sign(&request, key);
    let mut url = call.endpoint.clone();
    url.set_path(&sign::encode_path(call.path));
    let query = sign::canonical_query(&call.query);
    url.set_query(Some(&query).filter(|q| !q.is_empty()).map(|q| q.as_str()));
    url.set_fragment(None);

    let mut builder = http
        .request(call.method.clone(), url)
        .timeout(DEFAULT_TIMEOUT)
        .header(reqwest::header::ACCEPT, "application/json");
    for (name, value) in &added {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let transport = |e: reqwest::Error| ApiError::Transport {
        action: action.clone(),
        host: host.clone(),
        reason: describe(e),
    };
    let mut resp = builder.send().await.map_err(transport)?;
    let status = resp.status();
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > MAX_RESPONSE {
            return Err(ApiError::TooLarge { action });
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        return Err(match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(e) if !e.code.is_empty() => ApiError::Service {
                action,
                status: status.as_u16(),
                code: e.code,
                message: e.message,
                request_id: e.request_id,
            },
            _ => ApiError::Status {
                action,
                status: status.as_u16(),
            },
        });
    }
    serde_json::from_slice(&body).map_err(|e| ApiError::Decode {
        action,
        // Position only: serde_json's message can quote the body.
        detail: format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        ),
    })
}

/// A transport error and its causes, without the URL (its query is not for logs).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_has_the_port_only_when_not_default() {
        let a = |u: &str| authority(&Url::parse(u).unwrap());
        assert_eq!(
            a("https://ims.aliyuncs.com").as_deref(),
            Some("ims.aliyuncs.com")
        );
        assert_eq!(
            a("https://ims.aliyuncs.com:443/x").as_deref(),
            Some("ims.aliyuncs.com")
        );
        assert_eq!(
            a("https://127.0.0.1:8443").as_deref(),
            Some("127.0.0.1:8443")
        );
        assert_eq!(a("https://[::1]:8443").as_deref(), Some("[::1]:8443"));
    }

    #[test]
    fn error_bodies_of_both_styles() {
        let rpc: ErrorBody =
            serde_json::from_str(r#"{"RequestId":"r","Code":"C","Message":"m","HostId":"h"}"#)
                .unwrap();
        assert_eq!(
            (rpc.request_id, rpc.code, rpc.message),
            ("r".into(), "C".into(), "m".into())
        );
        let roa: ErrorBody =
            serde_json::from_str(r#"{"requestId":"r","code":"C","message":"m"}"#).unwrap();
        assert_eq!(
            (roa.request_id, roa.code, roa.message),
            ("r".into(), "C".into(), "m".into())
        );
    }
}
