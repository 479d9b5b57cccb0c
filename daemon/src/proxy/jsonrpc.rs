//! JSON-RPC bodies read whole where a tool policy applies: a strict parse that refuses shapes a
//! lax upstream might read differently than the proxy, and the messages' methods and tools.
//!
//! Refused, because some server somewhere reads them another way: duplicate keys at any depth
//! (parsers differ on which one wins), and keys or `tools/…` methods that differ from the
//! protocol's only in case or surrounding white space (case-insensitive JSON decoders bind
//! `"Method"` to `method`). Unicode escapes are decoded before anything is compared, so
//! `"tools\u002fcall"` is `tools/call`.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a body is not one the proxy will decide on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcRefusal {
    #[error("the body is not JSON: {0}")]
    Parse(String),
    #[error("the key `{0}` appears twice in one object")]
    DuplicateKey(String),
    #[error("not a JSON-RPC 2.0 message: {0}")]
    NotRpc(&'static str),
    #[error("`{0}` differs from the protocol's `{1}` only in case or spacing")]
    Spelling(String, &'static str),
}

/// One message of a body.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// `id` as sent (`None` for notifications).
    pub id: Option<Value>,
    /// `None` for responses (the client answering a server's request).
    pub method: Option<String>,
    /// `params.name` of a `tools/call`.
    pub tool: Option<String>,
}

/// A body: one message or a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcBody {
    pub messages: Vec<Message>,
    pub batch: bool,
}

impl RpcBody {
    pub fn has_method(&self, method: &str) -> bool {
        self.messages
            .iter()
            .any(|m| m.method.as_deref() == Some(method))
    }
}

const MESSAGE_KEYS: &[&str] = &["jsonrpc", "id", "method", "params", "result", "error"];
const CALL_KEYS: &[&str] = &["name", "arguments", "_meta", "task"];
const GUARDED_METHODS: &[&str] = &["tools/call", "tools/list"];

/// Parses and classifies a request body.
pub fn inspect(body: &[u8]) -> Result<RpcBody, RpcRefusal> {
    let value = parse_strict(body)?;
    match value {
        Value::Object(o) => Ok(RpcBody {
            messages: vec![message(&o)?],
            batch: false,
        }),
        Value::Array(items) if items.is_empty() => Err(RpcRefusal::NotRpc("an empty batch")),
        Value::Array(items) => {
            let messages = items
                .iter()
                .map(|v| match v {
                    Value::Object(o) => message(o),
                    _ => Err(RpcRefusal::NotRpc("a batch element is not an object")),
                })
                .collect::<Result<_, _>>()?;
            Ok(RpcBody {
                messages,
                batch: true,
            })
        }
        _ => Err(RpcRefusal::NotRpc(
            "the body is neither an object nor a batch",
        )),
    }
}

fn message(o: &Map<String, Value>) -> Result<Message, RpcRefusal> {
    check_keys(o, MESSAGE_KEYS)?;
    if o.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(RpcRefusal::NotRpc("`jsonrpc` is not \"2.0\""));
    }
    let id = o.get("id").cloned();
    let method = match o.get("method") {
        None if o.contains_key("result") || o.contains_key("error") => None,
        None => return Err(RpcRefusal::NotRpc("no `method`, `result` or `error`")),
        Some(Value::String(m)) => Some(m.clone()),
        Some(_) => return Err(RpcRefusal::NotRpc("`method` is not a string")),
    };
    if let Some(m) = &method {
        if let Some(canon) = GUARDED_METHODS
            .iter()
            .find(|c| fold(m.trim_matches(spacing)) == **c && m != *c)
        {
            return Err(RpcRefusal::Spelling(m.clone(), canon));
        }
    }
    let tool = match method.as_deref() {
        Some("tools/call") => {
            let Some(Value::Object(params)) = o.get("params") else {
                return Err(RpcRefusal::NotRpc("a tools/call without params"));
            };
            check_keys(params, CALL_KEYS)?;
            match params.get("name") {
                Some(Value::String(n)) if n.chars().any(invisible) => {
                    return Err(RpcRefusal::NotRpc(
                        "a tool name with white space or invisible characters",
                    ))
                }
                Some(Value::String(n)) => Some(n.clone()),
                _ => return Err(RpcRefusal::NotRpc("a tools/call without a tool name")),
            }
        }
        _ => None,
    };
    Ok(Message { id, method, tool })
}

fn spacing(c: char) -> bool {
    c.is_whitespace() || c.is_control() || invisible(c)
}

/// White space, control and format characters: a lax server may strip them from a name.
fn invisible(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}')
}

/// Refuses keys that fold to a protocol key without being it.
fn check_keys(o: &Map<String, Value>, known: &[&'static str]) -> Result<(), RpcRefusal> {
    for key in o.keys() {
        let folded = fold(key.trim_matches(spacing));
        if let Some(canon) = known.iter().find(|k| **k == folded && key != *k) {
            return Err(RpcRefusal::Spelling(key.clone(), canon));
        }
    }
    Ok(())
}

/// Lower case, with the Unicode characters that case-insensitive decoders (Go's
/// `encoding/json`) fold into ASCII letters: `ſ` → `s`, Kelvin sign → `k`.
fn fold(s: &str) -> String {
    s.chars()
        .flat_map(char::to_lowercase)
        .map(|c| if c == 'ſ' { 's' } else { c })
        .collect()
}

/// `serde_json::from_slice`, refusing duplicate keys at any depth.
pub fn parse_strict(body: &[u8]) -> Result<Value, RpcRefusal> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let mut duplicate = None;
    let value = Strict(&mut duplicate)
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
    match (value, duplicate) {
        (_, Some(key)) => Err(RpcRefusal::DuplicateKey(key)),
        (Ok(v), None) => Ok(v),
        (Err(e), None) => Err(RpcRefusal::Parse(e.to_string())),
    }
}

/// A seed that builds a [`Value`] and notes the first duplicate key.
struct Strict<'a>(&'a mut Option<String>);

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Strict(&mut *self.0))? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let v = map.next_value_seed(Strict(&mut *self.0))?;
            if out.insert(key.clone(), v).is_some() {
                *self.0 = Some(key.chars().take(64).collect());
                return Err(de::Error::custom("duplicate key"));
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
#[path = "jsonrpc_tests.rs"]
mod tests;
