//! The proxy's own JSON-RPC answers for tool policy: errors in the form the client accepts
//! (JSON, or one SSE event when `Accept` allows only `text/event-stream`), and the check of
//! the 2026-07-28 `Mcp-Method`/`Mcp-Name` headers against the body.

use http::header::{ACCEPT, CONTENT_TYPE};
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode};
use serde_json::{json, Value};

use crate::proxy::body::{self, ProxyBody};
use crate::proxy::jsonrpc::RpcBody;
use crate::proxy::tool_audit;

/// `Mcp-Method` and `Mcp-Name` (2026-07-28), where sent, must say what the body says.
pub fn headers_agree(parts: &Parts, rpc: &RpcBody) -> Result<(), String> {
    let header = |name: &str| -> Result<Option<String>, String> {
        let mut values = parts.headers.get_all(name).iter();
        let (Some(v), None) = (values.next(), values.next()) else {
            return match parts.headers.contains_key(name) {
                true => Err(format!("{name} is sent more than once")),
                false => Ok(None),
            };
        };
        let text = v
            .to_str()
            .map_err(|_| format!("{name} is not visible ASCII"))?;
        decode_header(text)
            .map(Some)
            .ok_or_else(|| format!("{name} is not valid Base64"))
    };
    let method = header("mcp-method")?;
    let name = header("mcp-name")?;
    for m in &rpc.messages {
        if let Some(h) = &method {
            if m.method.as_deref() != Some(h.as_str()) {
                return Err(format!(
                    "the Mcp-Method header says `{}`, the body `{}`",
                    tool_audit::clean(h),
                    tool_audit::clean(m.method.as_deref().unwrap_or("(none)"))
                ));
            }
        }
        if let (Some(h), Some(tool)) = (&name, &m.tool) {
            if h != tool {
                return Err(format!(
                    "the Mcp-Name header says `{}`, the body calls `{}`",
                    tool_audit::clean(h),
                    tool_audit::clean(tool)
                ));
            }
        }
    }
    Ok(())
}

/// A header value, or the text of its `=?base64?…?=` form.
fn decode_header(text: &str) -> Option<String> {
    use base64::Engine as _;
    let Some(inner) = text
        .strip_prefix("=?base64?")
        .and_then(|t| t.strip_suffix("?="))
    else {
        return Some(text.to_string());
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(inner)
        .ok()?;
    String::from_utf8(bytes).ok()
}

pub fn error_object(id: Option<&Value>, code: i64, message: &str, data: Option<Value>) -> Value {
    let mut error = json!({ "code": code, "message": message });
    if let Some(d) = data {
        error["data"] = d;
    }
    json!({ "jsonrpc": "2.0", "id": id.cloned().unwrap_or(Value::Null), "error": error })
}

pub fn rpc_error(
    parts: &Parts,
    status: StatusCode,
    code: i64,
    id: Option<&Value>,
    message: &str,
    data: Option<Value>,
) -> Response<ProxyBody> {
    rpc_response(parts, status, &error_object(id, code, message, data))
}

/// JSON, or one SSE event when the client accepts only `text/event-stream`.
pub fn rpc_response(parts: &Parts, status: StatusCode, value: &Value) -> Response<ProxyBody> {
    let sse = wants_sse_only(parts);
    let text = match sse {
        true => format!("event: message\ndata: {value}\n\n"),
        false => format!("{value}\n"),
    };
    let mut r = Response::new(body::full(text));
    *r.status_mut() = status;
    let ct = if sse {
        "text/event-stream"
    } else {
        "application/json"
    };
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    r
}

/// Whether `Accept` names `text/event-stream` and nothing that admits JSON.
pub fn wants_sse_only(parts: &Parts) -> bool {
    let types: Vec<String> = parts
        .headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .collect();
    let json = types
        .iter()
        .any(|t| matches!(t.as_str(), "application/json" | "application/*" | "*/*"));
    types.iter().any(|t| t == "text/event-stream") && !json
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_decides_the_answer_form() {
        let parts = |accept: &str| {
            let (p, ()) = http::Request::builder()
                .header(ACCEPT, accept)
                .body(())
                .unwrap()
                .into_parts();
            p
        };
        assert!(wants_sse_only(&parts("text/event-stream")));
        assert!(wants_sse_only(&parts("text/event-stream;q=1")));
        assert!(!wants_sse_only(&parts(
            "application/json, text/event-stream"
        )));
        assert!(!wants_sse_only(&parts("*/*")));
        assert!(!wants_sse_only(&parts("")));
    }

    #[test]
    fn base64_header_values() {
        assert_eq!(decode_header("echo").as_deref(), Some("echo"));
        assert_eq!(
            decode_header("=?base64?ZWNobw==?=").as_deref(),
            Some("echo")
        );
        assert_eq!(decode_header("=?base64?***?="), None);
    }
}
