//! Local client keys through the real daemon: a listener that requires keys refuses requests
//! without a usable one (none, wrong, malformed, revoked, expired, out of scope) with 401 and
//! sends nothing upstream; a good key works and never reaches the upstream or the log; revoking
//! closes the key's streams; the key file survives a restart and a crash mid-write; ctl.

use std::path::Path;
use std::time::{Duration, Instant};

use mcpproxy_tests::admin::{get_json, post_json, request};
use mcpproxy_tests::daemon::{
    bin_path, proxy_client, EventReader, Setup, TestDaemon, TWO_SERVERS, WAIT,
};
use mcpproxy_tests::upstream::{self, TestUpstream, UpstreamOptions};
use serde_json::Value;

const ECS_MCP: &str = "/accounts/1/custom/ecs/id/ECS01/mcp";
const RAM_MCP: &str = "/accounts/1/custom/ram/id/RAM01/mcp";
/// rmcp's stateless JSON endpoint inside the ecs server's scope: a lone tools/call works.
const ECS_JSON: &str = "/accounts/1/custom/ecs/id/ECS01/mcp-json";

/// The config: two servers, keys required on every listener, the key file in the temp dir.
fn config(setup: &Setup, up: &TestUpstream, listen: &str) -> std::path::PathBuf {
    let state = setup.path("state");
    let extra = format!(
        "{TWO_SERVERS}\n[listen]\nrequire_client_keys = true\n{listen}\n[store]\ndir = {state:?}\n"
    );
    let text = setup.static_config(up, &extra).unwrap();
    setup.write_config(&text).unwrap()
}

async fn start() -> (TestUpstream, Setup, TestDaemon) {
    let up = upstream::start(UpstreamOptions::default()).await.unwrap();
    let setup = Setup::new().unwrap();
    let path = config(&setup, &up, "");
    let d = TestDaemon::start(&path, &[]).await.unwrap();
    (up, setup, d)
}

/// `POST /v1/keys`; returns the key.
async fn add_key(socket: &Path, body: Value) -> String {
    let (status, v) = post_json(socket, "/v1/keys", &body.to_string())
        .await
        .unwrap();
    assert_eq!(status, 200, "{v}");
    let key = v["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("mcpp_"), "{key}");
    key
}

async fn get(d: &TestDaemon, path: &str, key: Option<&str>) -> reqwest::Response {
    let mut req = proxy_client().get(d.url(path));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    req.send().await.unwrap()
}

async fn tools_call(d: &TestDaemon, tool: &str, key: &str) -> reqwest::Response {
    proxy_client()
        .post(d.url(ECS_JSON))
        .bearer_auth(key)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .body(format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}","arguments":{{"text":"hi","a":1,"b":2}}}}}}"#
        ))
        .send()
        .await
        .unwrap()
}

/// A 401 from the proxy itself: the code, a way to get a key, no OAuth challenge.
async fn assert_refused(resp: reqwest::Response, code: &str) {
    assert_eq!(resp.status(), 401);
    assert!(
        resp.headers().get("www-authenticate").is_none(),
        "a WWW-Authenticate would start an OAuth flow in the client"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("mcpproxyctl keys add"), "{message}");
}

/// No header the upstream ever received carried a client key.
fn assert_no_key_upstream(up: &TestUpstream) {
    for r in up.requests() {
        assert!(
            r.headers.iter().all(|(_, v)| !v.contains("mcpp_")),
            "a client key reached the upstream: {r:?}"
        );
    }
}

#[tokio::test]
async fn requests_without_a_usable_key_are_refused_and_nothing_reaches_the_upstream() {
    let (up, _setup, d) = start().await;
    let sock = d.admin_socket();
    let ecs_only = add_key(
        &sock,
        serde_json::json!({"name": "ecs-only", "servers": ["ecs"]}),
    )
    .await;
    let echo_only = add_key(
        &sock,
        serde_json::json!({"name": "echo-only", "tools": ["echo"]}),
    )
    .await;
    let revoked = add_key(&sock, serde_json::json!({"name": "gone"})).await;
    let (status, v) = post_json(&sock, "/v1/keys/gone/revoke", "{}")
        .await
        .unwrap();
    assert_eq!((status, v["state"].as_str()), (200, Some("revoked")), "{v}");
    let expiring = add_key(&sock, serde_json::json!({"name": "brief", "expires": "1s"})).await;

    // Wait until the short-lived key has expired (polled, bounded).
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, keys) = get_json(&sock, "/v1/keys").await.unwrap();
        let brief = keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == "brief")
            .cloned();
        if brief.is_some_and(|k| k["state"] == "expired") {
            break;
        }
        assert!(Instant::now() < deadline, "the key never expired: {keys}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let before = up.requests().len();
    let wrong = format!("mcpp_{}", "A".repeat(43));
    assert_refused(get(&d, "/raw/echo", None).await, "client_key_required").await;
    assert_refused(
        get(&d, "/raw/echo", Some("the-apps-own-token")).await,
        "client_key_required",
    )
    .await;
    assert_refused(
        get(&d, "/raw/echo", Some(&wrong)).await,
        "client_key_invalid",
    )
    .await;
    assert_refused(
        get(&d, "/raw/echo", Some("mcpp_short")).await,
        "client_key_invalid",
    )
    .await;
    assert_refused(
        get(&d, "/raw/echo", Some(&revoked)).await,
        "client_key_revoked",
    )
    .await;
    assert_refused(
        get(&d, "/raw/echo", Some(&expiring)).await,
        "client_key_expired",
    )
    .await;
    assert_refused(
        get(&d, RAM_MCP, Some(&ecs_only)).await,
        "client_key_out_of_scope",
    )
    .await;
    assert_refused(
        tools_call(&d, "add", &echo_only).await,
        "client_key_out_of_scope",
    )
    .await;
    // OAuth discovery is not an oracle either: the key comes first.
    assert_refused(
        get(&d, "/.well-known/oauth-protected-resource", None).await,
        "client_key_required",
    )
    .await;
    assert_eq!(
        up.requests().len(),
        before,
        "a refused request reached the upstream"
    );

    // The login callback stays reachable without a key (its `state` protects it).
    let cb = get(&d, "/callback?state=x&code=y", None).await;
    assert_ne!(cb.status(), 401);

    // In scope, the same keys work.
    let ok = tools_call(&d, "echo", &echo_only).await;
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["result"]["content"][0]["text"], "hi", "{body}");
    let ok = get(&d, ECS_MCP, Some(&ecs_only)).await;
    assert_ne!(ok.status(), 401, "ecs is in the key's scope");
    assert_eq!(up.requests().len(), before + 2);
    assert_no_key_upstream(&up);

    let logs = d.logs();
    for key in [&ecs_only, &echo_only, &revoked, &expiring, &wrong] {
        assert!(!logs.contains(key.as_str()), "a key reached the log");
    }
    let refused = logs
        .lines()
        .find(|l| l.contains("client_key_revoked"))
        .unwrap();
    assert!(refused.contains("request refused"), "{refused}");
    let proxied = logs
        .lines()
        .find(|l| l.contains("proxied") && l.contains("echo-only"));
    assert!(
        proxied.is_some(),
        "the journal names the key of each request:\n{logs}"
    );
}

#[tokio::test]
async fn a_good_key_is_replaced_by_the_upstream_token_and_its_use_is_recorded() {
    let (up, _setup, d) = start().await;
    let sock = d.admin_socket();
    let key = add_key(&sock, serde_json::json!({"name": "dify"})).await;
    let resp = get(&d, "/raw/echo", Some(&key)).await;
    assert_eq!(resp.status(), 200);
    let echoed: Value = resp.json().await.unwrap();
    let text = echoed.to_string();
    assert!(
        !text.contains("mcpp_"),
        "the key reached the upstream: {text}"
    );
    let last = up.requests().pop().unwrap();
    assert_eq!(
        last.header("authorization"),
        Some(&*format!("Bearer {}", up.token()))
    );
    assert_no_key_upstream(&up);

    let (_, keys) = get_json(&sock, "/v1/keys").await.unwrap();
    let dify = &keys["keys"][0];
    assert_eq!(dify["name"], "dify");
    assert!(dify["last_used"].as_u64().is_some(), "{keys}");
    assert!(!keys.to_string().contains(&key), "the list shows no key");
    let (_, status) = get_json(&sock, "/v1/status").await.unwrap();
    assert_eq!(
        status["client_keys"]["active"][0]["name"], "dify",
        "{status}"
    );
    assert_eq!(status["client_keys"]["required_on"][0], d.addr.to_string());
    let (_, metrics) = request(&sock, "GET", "/v1/metrics", None).await.unwrap();
    assert!(
        metrics.contains("mcpproxyd_client_key_requests_total{key=\"dify\",status=\"200\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn revoking_a_key_refuses_its_next_request_and_closes_its_streams() {
    let (up, _setup, d) = start().await;
    let sock = d.admin_socket();
    let key = add_key(&sock, serde_json::json!({"name": "dify"})).await;
    let other = add_key(&sock, serde_json::json!({"name": "other"})).await;
    let mut stream = EventReader::new(get(&d, "/raw/slow-sse", Some(&key)).await);
    assert_eq!(stream.next_event().await.unwrap().data, "one");
    let mut untouched = EventReader::new(get(&d, "/raw/slow-sse", Some(&other)).await);
    assert_eq!(untouched.next_event().await.unwrap().data, "one");

    let (status, v) = post_json(&sock, "/v1/keys/dify/revoke", "{}")
        .await
        .unwrap();
    assert_eq!(status, 200, "{v}");
    assert!(
        stream.end().await.is_err(),
        "the revoked key's stream is cut"
    );
    let before = up.requests().len();
    assert_refused(get(&d, "/raw/echo", Some(&key)).await, "client_key_revoked").await;
    assert_eq!(up.requests().len(), before);
    // Another key's stream goes on.
    up.release();
    assert_eq!(untouched.next_event().await.unwrap().data, "two");
    d.wait_for_log("client key revoked").await.unwrap();
}

#[tokio::test]
async fn keys_survive_a_restart_and_a_crash_mid_write() {
    let up = upstream::start(UpstreamOptions::default()).await.unwrap();
    let setup = Setup::new().unwrap();
    let path = config(&setup, &up, "");
    let d = TestDaemon::start(&path, &[]).await.unwrap();
    let key = add_key(
        &d.admin_socket(),
        serde_json::json!({"name": "dify", "servers": ["ecs"]}),
    )
    .await;
    let revoked = add_key(&d.admin_socket(), serde_json::json!({"name": "old"})).await;
    post_json(&d.admin_socket(), "/v1/keys/old/revoke", "{}")
        .await
        .unwrap();
    // A crash: no shutdown, no flush.
    d.signal("KILL").await.unwrap();
    let mut d = d;
    d.wait_exit().await.unwrap();
    drop(d);
    // What a crash in the middle of the next write leaves: a partial temporary file.
    let state = setup.path("state");
    let file = std::fs::read(state.join("client-keys.json")).unwrap();
    assert!(
        !String::from_utf8_lossy(&file).contains(&key),
        "only digests are stored"
    );
    let tmp = state.join(".client-keys.json.99999-0.tmp");
    std::fs::write(&tmp, &file[..file.len() / 3]).unwrap();

    let d = TestDaemon::start(&path, &[]).await.unwrap();
    assert_ne!(get(&d, ECS_MCP, Some(&key)).await.status(), 401);
    assert_refused(
        get(&d, "/raw/echo", Some(&revoked)).await,
        "client_key_revoked",
    )
    .await;
    assert!(!tmp.exists(), "the stale temporary is cleaned up");
    add_key(&d.admin_socket(), serde_json::json!({"name": "next"})).await;
    let (_, keys) = get_json(&d.admin_socket(), "/v1/keys").await.unwrap();
    let names: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["name"].as_str())
        .collect();
    assert_eq!(names, ["dify", "old", "next"]);
}

fn ctl(socket: &Path, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(bin_path("mcpproxyctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("MCPPROXYD_SOCKET")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn ctl_adds_lists_and_revokes_keys_and_acl_check_applies_a_key() {
    let (_up, _setup, d) = start().await;
    let sock = d.admin_socket();
    let (code, out, err) = ctl(
        &sock,
        &[
            "keys",
            "add",
            "dify",
            "--servers",
            "ecs",
            "--expires",
            "30d",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let key = out
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("mcpp_"))
        .unwrap()
        .to_string();
    assert!(out.contains("Authorization: Bearer"), "{out}");
    assert_ne!(get(&d, ECS_MCP, Some(&key)).await.status(), 401);

    let (code, out, _) = ctl(&sock, &["keys", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("dify  active, expires in "), "{out}");
    assert!(out.contains("servers ecs"), "{out}");
    assert!(!out.contains(&key));
    let (code, out, _) = ctl(&sock, &["keys", "add", "dify"]);
    assert_eq!(code, 1, "a second active key of one name is refused: {out}");

    let (code, out, _) = ctl(&sock, &["acl", "check", RAM_MCP, "--key", "dify"]);
    assert_eq!(code, 1, "acl check exits 1 when denied: {out}");
    assert!(out.starts_with("denied"), "{out}");
    assert!(out.contains("key_out_of_scope"), "{out}");
    let (_, out, _) = ctl(&sock, &["acl", "check", ECS_MCP, "--key", "dify"]);
    assert!(out.starts_with("allowed"), "{out}");
    let (_, out, _) = ctl(&sock, &["acl", "check", ECS_MCP, "--key", "nobody"]);
    assert!(out.contains("key_unknown"), "{out}");

    let (_, out, _) = ctl(&sock, &["status"]);
    assert!(out.contains(&format!("required on {}", d.addr)), "{out}");
    assert!(out.contains("dify: last used"), "{out}");

    let (code, out, err) = ctl(&sock, &["keys", "revoke", "dify"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("revoked"), "{out}");
    assert_refused(get(&d, ECS_MCP, Some(&key)).await, "client_key_revoked").await;
    let (code, _, err) = ctl(&sock, &["keys", "revoke", "nobody"]);
    assert_eq!(code, 1, "{err}");
}

#[tokio::test]
async fn loopback_listeners_need_no_key_by_default() {
    let up = upstream::start(UpstreamOptions::default()).await.unwrap();
    let setup = Setup::new().unwrap();
    let state = setup.path("state");
    let text = setup
        .static_config(&up, &format!("[store]\ndir = {state:?}\n"))
        .unwrap();
    let d = TestDaemon::start(&setup.write_config(&text).unwrap(), &[])
        .await
        .unwrap();
    assert_eq!(get(&d, "/raw/echo", None).await.status(), 200);
    // A key that is sent is still checked.
    let wrong = format!("mcpp_{}", "B".repeat(43));
    assert_refused(
        get(&d, "/raw/echo", Some(&wrong)).await,
        "client_key_invalid",
    )
    .await;
}
