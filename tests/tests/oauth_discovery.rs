//! OAuth against MCP servers found by discovery (MCP authorization, revision 2025-11-25): the
//! real daemon, the test authorization server (HTTPS, test CA) and the test MCP upstream, whose
//! protected-resource metadata names the authorization server. Discovery, scopes, step-up and
//! logins without refresh token.

use std::sync::Arc;

use mcpproxy_tests::admin::{post_json, request};
use mcpproxy_tests::daemon::{proxy_client, TestDaemon};
use mcpproxy_tests::oauth::{self, OAuthOptions, OAuthServer};
use mcpproxy_tests::oauth_world::*;
use mcpproxy_tests::upstream::{ResourceOptions, ScopeLookup};

#[tokio::test]
async fn login_discovers_through_a_plain_http_loopback_upstream() {
    let w = world(OAuthOptions::default(), false, "").await;
    assert!(w.up.base_url().starts_with("http://"));
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    let s = login(&w, &d).await;
    assert_eq!(s["status"], "succeeded", "{s}");
    // The token was asked for the upstream as the RFC 8707 resource its metadata names.
    let token = w
        .auth
        .requests()
        .into_iter()
        .find(|r| r.path == "/token")
        .unwrap();
    assert_eq!(token.form_value("resource"), Some(w.up.base_url()));
    let r = proxy_client().get(d.url("/raw/echo")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Discovery asked with a real MCP request, an unauthenticated `initialize` POST.
    let first = &w.up.requests()[0];
    assert_eq!(
        (first.method.as_str(), first.header("authorization")),
        ("POST", None)
    );
}

#[tokio::test]
async fn a_login_without_refresh_token_lasts_until_the_access_token_expires() {
    let opts = OAuthOptions {
        issue_refresh_token: false,
        ..Default::default()
    };
    let w = world(opts, true, "").await;
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    let s = login(&w, &d).await;
    assert_eq!(s["status"], "succeeded", "{s}");
    let p = status(&d).await;
    assert_eq!(p["state"], "valid", "{p}");
    assert!(p["refresh_at"].is_null(), "{p}");
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains("without a refresh token"), "{detail}");
    assert!(!detail.contains("Alibaba"), "{detail}");
    let r = proxy_client().get(d.url("/raw/echo")).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // A second login whose token expires in seconds: then the usual needs-login answer.
    w.auth
        .set_access_lifetime(std::time::Duration::from_secs(3));
    assert_eq!(login(&w, &d).await["status"], "succeeded");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let body: serde_json::Value = loop {
        let r = proxy_client().get(d.url("/raw/echo")).send().await.unwrap();
        if r.status() == 401 {
            break r.json().await.unwrap();
        }
        assert_eq!(r.status(), 200);
        assert!(
            std::time::Instant::now() < deadline,
            "the login never ended"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("mcpproxyctl login"), "{message}");
    assert!(message.contains("no refresh token"), "{message}");
    let p = status(&d).await;
    assert_eq!(p["state"], "needs_login", "{p}");
    assert!(p["detail"].as_str().unwrap().contains("no refresh"), "{p}");
    // Nothing was sent to the token endpoint but the two code exchanges.
    assert_eq!(w.auth.token_requests("refresh_token"), 0);
}

#[tokio::test]
async fn a_token_refused_early_without_a_refresh_token_gets_the_needs_login_answer() {
    let opts = OAuthOptions {
        issue_refresh_token: false,
        ..Default::default()
    };
    let w = world(opts, true, "").await;
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    assert_eq!(login(&w, &d).await["status"], "succeeded");
    let r = proxy_client().get(d.url("/raw/echo")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // The authorization server revokes the token long before it expires: the upstream 401s,
    // no refresh is possible, and the client hears what to do instead of an opaque 401.
    for token in w.auth.issued_tokens() {
        w.auth.revoke_token(&token);
    }
    let r = proxy_client().get(d.url("/raw/echo")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("mcpproxyctl login"), "{body}");
    assert!(message.contains("no refresh token"), "{body}");
    let p = status(&d).await;
    assert_eq!(p["state"], "needs_login", "{p}");
}

#[tokio::test]
async fn offline_access_is_asked_for_when_the_server_lists_it() {
    let opts = OAuthOptions {
        refresh_needs_offline_access: true,
        scopes_supported: vec!["mcp".into(), "offline_access".into()],
        ..Default::default()
    };
    let w = world(opts, true, "scopes = [\"mcp\"]").await;
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    assert_eq!(login(&w, &d).await["status"], "succeeded");
    let authorize = w
        .auth
        .requests()
        .into_iter()
        .find(|r| r.path == "/authorize")
        .unwrap();
    assert_eq!(authorize.query_value("scope"), Some("mcp offline_access"));
    let p = status(&d).await;
    assert!(p["refresh_at"].as_u64().is_some(), "{p}");
}

#[tokio::test]
async fn metadata_is_found_at_the_path_then_at_the_root_without_a_named_url() {
    let resource = ResourceOptions {
        challenge_without_metadata: true,
        metadata_at_root_only: true,
        ..Default::default()
    };
    let w = world_with(OAuthOptions::default(), true, "", resource, "/tenant/mcp").await;
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    assert_eq!(login(&w, &d).await["status"], "succeeded");
    let asked: Vec<String> = w.up.requests().into_iter().map(|r| r.path).collect();
    let at_path = "/.well-known/oauth-protected-resource/tenant/mcp".to_string();
    let at_root = "/.well-known/oauth-protected-resource".to_string();
    let (p, r) = (
        asked.iter().position(|x| *x == at_path),
        asked.iter().position(|x| *x == at_root),
    );
    assert!(p.unwrap() < r.unwrap(), "{asked:?}");
    // The root document names the origin: that is the resource tokens are asked for.
    assert_eq!(token_resource(&w.auth).as_deref(), Some(w.up.base_url()));
}

#[tokio::test]
async fn metadata_for_another_resource_is_refused() {
    let resource = ResourceOptions {
        resource_override: Some("https://elsewhere.example/mcp".into()),
        ..Default::default()
    };
    let w = world_with(OAuthOptions::default(), true, "", resource, "").await;
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    let (status, v) = post_json(&d.admin_socket(), "/v1/login", "{}")
        .await
        .unwrap();
    assert_ne!(status, 200, "{v}");
    let msg = v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
        + &v.to_string();
    assert!(
        msg.contains("elsewhere.example") && msg.contains("RFC 9728"),
        "{v}"
    );
    assert!(
        w.auth.requests().is_empty(),
        "the authorization server was asked"
    );
}

#[tokio::test]
async fn scopes_come_from_the_challenge_else_from_the_metadata() {
    let resource = ResourceOptions {
        challenge_scope: Some("mcp:read mcp:write".into()),
        scopes_supported: vec!["mcp:read".into()],
        ..Default::default()
    };
    let w = world_with(OAuthOptions::default(), true, "", resource, "").await;
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    assert_eq!(login(&w, &d).await["status"], "succeeded");
    let scope = |auth: &OAuthServer| {
        auth.requests()
            .into_iter()
            .find(|r| r.path == "/authorize")
            .and_then(|r| r.query_value("scope").map(str::to_string))
    };
    assert_eq!(scope(&w.auth).as_deref(), Some("mcp:read mcp:write"));

    let resource = ResourceOptions {
        scopes_supported: vec!["mcp:read".into()],
        ..Default::default()
    };
    let w = world_with(OAuthOptions::default(), true, "", resource, "").await;
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    assert_eq!(login(&w, &d).await["status"], "succeeded");
    assert_eq!(scope(&w.auth).as_deref(), Some("mcp:read"));
}

#[tokio::test]
async fn an_insufficient_scope_answer_is_explained_and_the_next_login_asks_for_the_union() {
    let opts = OAuthOptions {
        scopes_supported: vec!["read".into(), "write".into()],
        ..Default::default()
    };
    // The upstream wants `write` for everything; the profile asks for `read` only.
    let auth = Arc::new(oauth::start(opts).await.unwrap());
    let lookup = auth.clone();
    let resource = ResourceOptions {
        required_scope: Some("write".into()),
        scope_of: Some(ScopeLookup(Arc::new(move |t| lookup.scope_of(t)))),
        ..Default::default()
    };
    let w = world_on(auth, true, "scopes = [\"read\"]", resource, "").await;
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    assert_eq!(login(&w, &d).await["status"], "succeeded");
    let call = serde_json::json!({
        "jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "x"}},
    });
    let r = proxy_client()
        .post(d.url("/raw/echo"))
        .json(&call)
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("www-authenticate").is_none());
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["id"], 7, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("mcpproxyctl login") && message.contains("read write"),
        "{message}"
    );
    let p = status(&d).await;
    assert_eq!(
        p["needed_scopes"],
        serde_json::json!(["read", "write"]),
        "{p}"
    );
    assert!(
        p["warning"].as_str().unwrap().contains("more scopes"),
        "{p}"
    );
    let (_, metrics) = request(&d.admin_socket(), "GET", "/v1/metrics", None)
        .await
        .unwrap();
    assert!(
        metrics.contains("mcpproxyd_scope_step_ups_total{profile=\"corp\"} 1"),
        "{metrics}"
    );

    // The next login asks for the union; then the call goes through.
    assert_eq!(login(&w, &d).await["status"], "succeeded");
    let last_authorize = w
        .auth
        .requests()
        .into_iter()
        .rfind(|r| r.path == "/authorize")
        .unwrap();
    assert_eq!(last_authorize.query_value("scope"), Some("read write"));
    let r = proxy_client()
        .post(d.url("/raw/echo"))
        .json(&call)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let p = status(&d).await;
    assert!(p.get("needed_scopes").is_none(), "{p}");
}
