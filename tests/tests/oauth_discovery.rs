//! OAuth against MCP servers found by discovery (MCP authorization, revision 2025-11-25): the
//! real daemon, the test authorization server (HTTPS, test CA) and the test MCP upstream, whose
//! protected-resource metadata names the authorization server. The test plays the browser.

use std::sync::Arc;

use mcpproxy_tests::admin::{get_json, post_json, request};
use mcpproxy_tests::daemon::{proxy_client, run_once, write_private, Setup, TestDaemon};
use mcpproxy_tests::oauth::{self, ClientSpec, OAuthOptions, OAuthServer};
use mcpproxy_tests::upstream::{
    self, ResourceOptions, ScopeLookup, TestUpstream, TokenValidator, UpstreamOptions,
};

struct World {
    auth: Arc<OAuthServer>,
    up: TestUpstream,
    _setup: Setup,
    config: std::path::PathBuf,
}

/// An upstream (HTTPS, or plain HTTP on loopback with `allow_http`) whose metadata names the
/// authorization server, and a profile with nothing but a client id and the AS's CA: the
/// endpoints come from discovery. `profile_extra` adds keys to the profile.
async fn world(opts: OAuthOptions, tls: bool, profile_extra: &str) -> World {
    world_with(opts, tls, profile_extra, ResourceOptions::default(), "").await
}

/// [`world`] with the upstream's protected-resource switches and a path after its base URL.
async fn world_with(
    opts: OAuthOptions,
    tls: bool,
    profile_extra: &str,
    resource: ResourceOptions,
    path: &str,
) -> World {
    let auth = Arc::new(oauth::start(opts).await.unwrap());
    world_on(auth, tls, profile_extra, resource, path).await
}

/// [`world_with`] on an authorization server already running.
async fn world_on(
    auth: Arc<OAuthServer>,
    tls: bool,
    profile_extra: &str,
    resource: ResourceOptions,
    path: &str,
) -> World {
    let checker = auth.clone();
    let up = upstream::start(UpstreamOptions {
        validator: Some(TokenValidator(Arc::new(move |t| checker.is_active(t)))),
        tls,
        authorization_server: Some(auth.issuer().to_string()),
        resource,
        ..Default::default()
    })
    .await
    .unwrap();
    let setup = Setup::new().unwrap();
    std::fs::write(setup.path("as-ca.pem"), auth.ca_pem()).unwrap();
    let upstream_trust = match up.ca_pem() {
        Some(pem) => {
            std::fs::write(setup.path("up-ca.pem"), pem).unwrap();
            format!("ca_file = {:?}\n", setup.path("up-ca.pem"))
        }
        None => "allow_http = true\n".to_string(),
    };
    let text = format!(
        "[store]\nkind = \"file\"\ndir = {store:?}\n\n\
         [auth.corp]\nkind = \"oauth\"\nclient_id = \"test-client\"\nca_file = {asca:?}\n{profile_extra}\n\n\
         [[upstream]]\nname = \"corp\"\nurl = {url:?}\nauth = \"corp\"\n{upstream_trust}",
        store = setup.path("state"),
        asca = setup.path("as-ca.pem"),
        url = format!("{}{path}", up.base_url()),
    );
    let config = setup.write_config(&text).unwrap();
    World {
        auth,
        up,
        _setup: setup,
        config,
    }
}

/// Starts a login and plays the browser up to the daemon's callback; returns the login's
/// final status.
async fn login(w: &World, d: &TestDaemon) -> serde_json::Value {
    let (status, v) = post_json(&d.admin_socket(), "/v1/login", "{}")
        .await
        .unwrap();
    assert_eq!(status, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let resp = w
        .auth
        .http_client()
        .get(v["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let page = proxy_client().get(&location).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let (_, s) = get_json(&d.admin_socket(), &format!("/v1/login/{id}?wait=5"))
        .await
        .unwrap();
    s
}

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

async fn status(d: &TestDaemon) -> serde_json::Value {
    let (_, s) = get_json(&d.admin_socket(), "/v1/status").await.unwrap();
    s["profiles"][0].clone()
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

/// The resource the first `/token` request asked for.
fn token_resource(auth: &OAuthServer) -> Option<String> {
    let token = auth.requests().into_iter().find(|r| r.path == "/token")?;
    token.form_value("resource").map(str::to_string)
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

/// A login, then one request after the server revoked the access token: the daemon refreshes
/// (authenticating as its client) and the request succeeds.
async fn login_then_refresh(w: &World, d: &TestDaemon) {
    assert_eq!(login(w, d).await["status"], "succeeded");
    let access = w
        .auth
        .issued_tokens()
        .into_iter()
        .rfind(|t| t.starts_with("at_"))
        .unwrap();
    w.auth.revoke_token(&access);
    let r = proxy_client().get(d.url("/raw/echo")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(w.auth.token_requests("refresh_token"), 1);
}

fn token_requests(auth: &OAuthServer) -> Vec<oauth::Recorded> {
    auth.requests()
        .into_iter()
        .filter(|r| r.path == "/token")
        .collect()
}

#[tokio::test]
async fn a_pre_registered_client_authenticates_as_the_server_supports() {
    for method in ["client_secret_post", "client_secret_basic"] {
        let opts = OAuthOptions {
            clients: vec![ClientSpec::confidential(
                "conf-client",
                "s3cret-of-the-client",
            )],
            auth_methods: vec![method.into()],
            ..Default::default()
        };
        let setup = Setup::new().unwrap();
        let secret_file = setup.path("client-secret");
        write_private(&secret_file, "s3cret-of-the-client\n").unwrap();
        let extra = format!("client_secret_file = {secret_file:?}");
        let mut w = world(opts, true, &extra).await;
        w.config = rewrite_client(&w.config, "conf-client");
        let d = TestDaemon::start(&w.config, &[]).await.unwrap();
        login_then_refresh(&w, &d).await;
        for r in token_requests(&w.auth) {
            match method {
                "client_secret_post" => {
                    assert_eq!(r.form_value("client_secret"), Some("s3cret-of-the-client"));
                    assert_eq!(r.basic_client, None);
                }
                _ => {
                    assert_eq!(r.basic_client.as_deref(), Some("conf-client"));
                    assert_eq!(r.form_value("client_secret"), None);
                }
            }
        }
        assert!(
            !d.logs().contains("s3cret-of-the-client"),
            "the secret reached the log"
        );
    }
}

/// The config with `client_id = "test-client"` replaced.
fn rewrite_client(config: &std::path::Path, client_id: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(config).unwrap();
    let text = text.replace(
        "client_id = \"test-client\"",
        &format!("client_id = {client_id:?}"),
    );
    std::fs::write(config, text).unwrap();
    config.to_path_buf()
}

#[tokio::test]
async fn a_secret_from_dynamic_registration_is_kept_for_refreshes() {
    let opts = OAuthOptions {
        clients: vec![],
        auth_methods: vec!["client_secret_basic".into()],
        confidential_registration: true,
        ..Default::default()
    };
    let w = world(opts, true, "").await;
    let text = std::fs::read_to_string(&w.config).unwrap();
    std::fs::write(&w.config, text.replace("client_id = \"test-client\"\n", "")).unwrap();
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    login_then_refresh(&w, &d).await;
    let registered = w.auth.clients();
    assert!(registered[0].secret.is_some());
    for r in token_requests(&w.auth) {
        assert_eq!(
            r.basic_client.as_deref(),
            Some(registered[0].client_id.as_str())
        );
    }
    let logs = d.logs();
    for secret in w.auth.issued_tokens() {
        assert!(!logs.contains(&secret), "a token or secret reached the log");
    }
}

#[tokio::test]
async fn an_inline_client_secret_is_refused_with_a_clear_error() {
    let w = world(
        OAuthOptions::default(),
        true,
        "client_secret = \"inline-secret\"",
    )
    .await;
    let (code, _, stderr) = run_once(&["--config", w.config.to_str().unwrap(), "--port", "0"])
        .await
        .unwrap();
    assert_ne!(code, 0);
    assert!(stderr.contains("client_secret_file"), "{stderr}");
    assert!(!stderr.contains("inline-secret"), "{stderr}");
}

#[tokio::test]
async fn client_credentials_tokens_are_fetched_and_renewed_without_a_login() {
    let opts = OAuthOptions {
        clients: vec![ClientSpec::confidential("machine", "machine-secret")],
        auth_methods: vec!["client_secret_basic".into()],
        access_lifetime: std::time::Duration::from_secs(4),
        ..Default::default()
    };
    let auth = Arc::new(oauth::start(opts).await.unwrap());
    let setup = Setup::new().unwrap();
    let secret_file = setup.path("client-secret");
    write_private(&secret_file, "machine-secret\n").unwrap();
    let extra = format!(
        "grant = \"client_credentials\"\nissuer = {:?}\nclient_secret_file = {secret_file:?}",
        auth.issuer()
    );
    let mut w = world_on(auth, true, &extra, ResourceOptions::default(), "").await;
    w.config = rewrite_client(&w.config, "machine");
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    let r = proxy_client().get(d.url("/raw/echo")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(w.auth.token_requests("client_credentials"), 1);
    let p = status(&d).await;
    assert_eq!(p["state"], "valid", "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains("client credentials"),
        "{p}"
    );
    // Renewed ahead of expiry by the daemon itself, with no request waiting.
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        w.auth.wait_token_requests("client_credentials", 2),
    )
    .await
    .expect("the token was never renewed");
    let r = proxy_client().get(d.url("/raw/echo")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // There is nothing to log in to.
    let (status, v) = post_json(&d.admin_socket(), "/v1/login", "{}")
        .await
        .unwrap();
    assert_eq!(status, 400, "{v}");
    assert!(!d.logs().contains("machine-secret"));
}

#[tokio::test]
async fn a_redirect_from_another_issuer_is_refused() {
    let w = world(OAuthOptions::default(), true, "").await;
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    let (status, v) = post_json(&d.admin_socket(), "/v1/login", r#"{"paste": true}"#)
        .await
        .unwrap();
    assert_eq!(status, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let resp = w
        .auth
        .http_client()
        .get(v["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let mut mixed_up = location.clone();
    let pairs: Vec<(String, String)> = location
        .query_pairs()
        .map(|(k, v)| match k.as_ref() {
            "iss" => (k.into_owned(), "https://attacker.example".to_string()),
            _ => (k.into_owned(), v.into_owned()),
        })
        .collect();
    mixed_up.query_pairs_mut().clear().extend_pairs(pairs);
    let body = serde_json::json!({ "url": mixed_up.as_str() }).to_string();
    let (_, s) = post_json(&d.admin_socket(), &format!("/v1/login/{id}/code"), &body)
        .await
        .unwrap();
    assert_eq!(s["status"], "failed", "{s}");
    assert!(s["message"].as_str().unwrap().contains("RFC 9207"), "{s}");
    assert_eq!(w.auth.token_requests("authorization_code"), 0);
}

#[tokio::test]
async fn a_stored_token_from_another_issuer_is_not_used() {
    let w = world(OAuthOptions::default(), true, "").await;
    let text = std::fs::read_to_string(&w.config).unwrap();
    let with_issuer = |issuer: &str| {
        text.replace(
            "[auth.corp]\n",
            &format!("[auth.corp]\nissuer = {issuer:?}\n"),
        )
    };
    std::fs::write(&w.config, with_issuer(w.auth.issuer())).unwrap();
    let mut d = TestDaemon::start(&w.config, &[]).await.unwrap();
    assert_eq!(login(&w, &d).await["status"], "succeeded");
    d.signal("TERM").await.unwrap();
    d.wait_exit().await.unwrap();

    // The profile now names another authorization server: the old token stays unused.
    let other = oauth::start(OAuthOptions::default()).await.unwrap();
    std::fs::write(&w.config, with_issuer(other.issuer())).unwrap();
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    assert_eq!(status(&d).await["state"], "logged_out");
    let r = proxy_client().get(d.url("/raw/echo")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(w.up.requests().iter().all(|r| r.path != "/raw/echo"));
}

#[tokio::test]
async fn a_client_id_metadata_document_is_used_where_the_server_supports_it() {
    const DOC: &str = "https://mcpproxyd.example/client.json";
    for supported in [true, false] {
        let opts = OAuthOptions {
            clients: vec![ClientSpec::loopback(DOC)],
            client_id_metadata_documents: supported,
            ..Default::default()
        };
        let mut w = world(opts, true, "").await;
        w.config = rewrite_client(&w.config, DOC);
        let d = TestDaemon::start(&w.config, &[]).await.unwrap();
        assert_eq!(login(&w, &d).await["status"], "succeeded");
        let authorize = w
            .auth
            .requests()
            .into_iter()
            .find(|r| r.path == "/authorize")
            .unwrap();
        let registered = w.auth.requests().iter().any(|r| r.path == "/register");
        if supported {
            assert_eq!(authorize.query_value("client_id"), Some(DOC));
            assert!(!registered);
        } else {
            assert_ne!(authorize.query_value("client_id"), Some(DOC));
            assert!(registered);
        }
    }
}
