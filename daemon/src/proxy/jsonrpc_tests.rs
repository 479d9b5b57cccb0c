//! Unit tests of the strict JSON-RPC inspection.

use super::*;

fn ok(body: &str) -> RpcBody {
    inspect(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"))
}

fn refused(body: &str) -> RpcRefusal {
    inspect(body.as_bytes()).expect_err(body)
}

#[test]
fn single_call_and_batch() {
    let b = ok(
        r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}"#,
    );
    assert!(!b.batch);
    assert_eq!(b.messages[0].tool.as_deref(), Some("echo"));
    assert_eq!(b.messages[0].id, Some(serde_json::json!(7)));
    let b = ok(
        r#"[{"jsonrpc":"2.0","id":"a","method":"tools/list"},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"DeleteInstance"}}]"#,
    );
    assert!(b.batch);
    assert_eq!(b.messages.len(), 3);
    assert!(b.has_method("tools/list"));
    assert_eq!(b.messages[1].id, None);
    assert_eq!(b.messages[2].tool.as_deref(), Some("DeleteInstance"));
    let resp = ok(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
    assert_eq!(resp.messages[0].method, None);
}

#[test]
fn unicode_escapes_are_decoded() {
    let b = ok(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools\u002fcall","params":{"n\u0061me":"\u0044eleteInstance"}}"#,
    );
    assert_eq!(b.messages[0].method.as_deref(), Some("tools/call"));
    assert_eq!(b.messages[0].tool.as_deref(), Some("DeleteInstance"));
}

#[test]
fn duplicate_keys_are_refused_at_any_depth() {
    assert_eq!(
        refused(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"DeleteInstance"}}"#
        ),
        RpcRefusal::DuplicateKey("name".into())
    );
    assert_eq!(
        refused(
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call","params":{"name":"x"}}"#
        ),
        RpcRefusal::DuplicateKey("method".into())
    );
    assert!(matches!(
        refused(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e","arguments":{"a":1,"a":2}}}"#
        ),
        RpcRefusal::DuplicateKey(_)
    ));
    assert!(
        matches!(
            refused(r#"{"jsonrpc":"2.0","id":1,"method":"tools/c\u0061ll","m\u0065thod":"x"}"#),
            RpcRefusal::DuplicateKey(_)
        ),
        "escaped duplicates are duplicates"
    );
}

#[test]
fn other_spellings_are_refused() {
    let cases = [
        r#"{"jsonrpc":"2.0","id":1,"method":"Tools/Call","params":{"name":"x"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"TOOLS/LIST"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":" tools/call","params":{"name":"x"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call\u0000","params":{"name":"x"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","Method":"tools/call","params":{"name":"x"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","Name":"DeleteInstance"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","PARAMS":{"name":"x"},"params":{"name":"y"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"y"},"paramſ":{"name":"x"}}"#,
    ];
    for c in cases {
        assert!(matches!(refused(c), RpcRefusal::Spelling(..)), "{c}");
    }
    // Other methods in other cases are no tool calls and pass.
    ok(r#"{"jsonrpc":"2.0","id":1,"method":"Ping"}"#);
}

#[test]
fn not_json_rpc() {
    let cases = [
        "",
        "nope",
        "[]",
        "[1]",
        "[[]]",
        "\"tools/call\"",
        r#"{"id":1,"method":"tools/call","params":{"name":"x"}}"#,
        r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":1}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":5}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[]}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"Delete Instance"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\u200bDeleteInstance"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping"} {"jsonrpc":"2.0","id":2,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping"#,
    ];
    for c in cases {
        assert!(
            matches!(refused(c), RpcRefusal::NotRpc(_) | RpcRefusal::Parse(_)),
            "{c}"
        );
    }
}
