//! OAuth 2.1 end to end: the real daemon, the test authorization server (HTTPS, test CA) and
//! the test MCP upstream that accepts exactly the tokens the authorization server says are
//! active. The test plays the browser.

use std::sync::Arc;

use mcpproxy_tests::admin::{get_json, post_json};
use mcpproxy_tests::daemon::{proxy_client, Setup, TestDaemon};
use mcpproxy_tests::oauth::{self, Fault, OAuthOptions, OAuthServer};
use mcpproxy_tests::upstream::{self, TestUpstream, TokenValidator, UpstreamOptions};
use mcpproxy_tests::{procs, wait};

struct World {
    auth: Arc<OAuthServer>,
    up: TestUpstream,
    setup: Setup,
    config: std::path::PathBuf,
}

async fn world(opts: OAuthOptions) -> World {
    let auth = Arc::new(oauth::start(opts).await.unwrap());
    let checker = auth.clone();
    let up = upstream::start(UpstreamOptions {
        validator: Some(TokenValidator(Arc::new(move |t| checker.is_active(t)))),
        ..Default::default()
    })
    .await
    .unwrap();
    let setup = Setup::new().unwrap();
    std::fs::write(setup.path("as-ca.pem"), auth.ca_pem()).unwrap();
    std::fs::write(setup.path("up-ca.pem"), up.ca_pem().unwrap()).unwrap();
    let text = format!(
        "[store]\nkind = \"file\"\ndir = {store:?}\n\n\
         [auth.corp]\nkind = \"oauth\"\nissuer = {issuer:?}\nclient_id = \"test-client\"\nca_file = {asca:?}\n\n\
         [[upstream]]\nname = \"corp\"\nurl = {url:?}\nauth = \"corp\"\nca_file = {upca:?}\n",
        store = setup.path("state"),
        issuer = auth.issuer(),
        asca = setup.path("as-ca.pem"),
        url = up.base_url(),
        upca = setup.path("up-ca.pem"),
    );
    let config = setup.write_config(&text).unwrap();
    World {
        auth,
        up,
        setup,
        config,
    }
}

/// Plays the browser: follows the authorization URL to the redirect and returns its Location.
async fn approve(auth: &OAuthServer, url: &str) -> String {
    let resp = auth.http_client().get(url).send().await.unwrap();
    assert_eq!(
        resp.status(),
        302,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    resp.headers()["location"].to_str().unwrap().to_string()
}

/// Starts a login over the admin API; returns (id, authorization URL).
async fn start_login(d: &TestDaemon, paste: bool) -> (String, String) {
    let body = serde_json::json!({ "paste": paste }).to_string();
    let (status, v) = post_json(&d.admin_socket(), "/v1/login", &body)
        .await
        .unwrap();
    assert_eq!(status, 200, "{v}");
    assert!(v["url"]
        .as_str()
        .unwrap()
        .contains("code_challenge_method=S256"));
    assert!(v["url"].as_str().unwrap().contains("state="));
    (
        v["id"].as_str().unwrap().into(),
        v["url"].as_str().unwrap().into(),
    )
}

async fn login_by_callback(w: &World, d: &TestDaemon) {
    let (id, url) = start_login(d, false).await;
    let location = approve(&w.auth, &url).await;
    assert!(
        location.starts_with(&format!("http://{}/callback?", d.addr)),
        "{location}"
    );
    let page = proxy_client().get(&location).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    assert!(html.contains("Login successful"), "{html}");
    let (_, s) = get_json(&d.admin_socket(), &format!("/v1/login/{id}?wait=5"))
        .await
        .unwrap();
    assert_eq!(s["status"], "succeeded", "{s}");
}

fn assert_no_secret_in_logs(auth: &OAuthServer, logs: &str) {
    for secret in auth.issued_tokens() {
        assert!(
            !logs.contains(&secret),
            "a token, code or verifier reached the log"
        );
    }
}

#[tokio::test]
async fn browser_login_then_requests_carry_the_token_and_survive_a_restart() {
    let w = world(OAuthOptions::default()).await;
    let mut d = TestDaemon::start(&w.config, &[]).await.unwrap();
    // Before login: 401 with advice, nothing forwarded.
    let r = proxy_client().get(d.url("/raw/echo")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(w.up.requests().is_empty());

    login_by_callback(&w, &d).await;
    let r = proxy_client().get(d.url("/raw/echo")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (_, s) = get_json(&d.admin_socket(), "/v1/status").await.unwrap();
    assert_eq!(s["profiles"][0]["state"], "valid", "{s}");
    assert!(s["profiles"][0]["valid_until"].as_u64().is_some());
    assert!(
        s["token_store"].as_str().unwrap().starts_with("file"),
        "{s}"
    );
    // The store on disk holds no token in clear.
    for entry in walk(&w.setup.path("state")) {
        let bytes = std::fs::read(&entry).unwrap();
        for t in w.auth.issued_tokens() {
            assert!(
                !String::from_utf8_lossy(&bytes).contains(&t),
                "{}",
                entry.display()
            );
        }
    }
    assert_no_secret_in_logs(&w.auth, &d.logs());

    // A restart keeps the login.
    d.signal("TERM").await.unwrap();
    d.wait_exit().await.unwrap();
    let d2 = TestDaemon::start(&w.config, &[]).await.unwrap();
    let r = proxy_client()
        .get(d2.url("/raw/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_no_secret_in_logs(&w.auth, &d2.logs());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn pasted_redirect_url_or_code_completes_a_headless_login() {
    let w = world(OAuthOptions::default()).await;
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    let sock = d.admin_socket();
    // The whole redirect URL, pasted.
    let (id, url) = start_login(&d, true).await;
    let location = approve(&w.auth, &url).await;
    let body = serde_json::json!({ "url": location }).to_string();
    let (status, v) = post_json(&sock, &format!("/v1/login/{id}/code"), &body)
        .await
        .unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "succeeded");
    assert!(v["valid_until"].as_u64().is_some());

    // Just the code, pasted; a wrong state in a pasted URL is refused.
    let (id, url) = start_login(&d, true).await;
    let location = approve(&w.auth, &url).await;
    let tampered = location.replace("state=", "state=x");
    let body = serde_json::json!({ "url": tampered }).to_string();
    let (status, _) = post_json(&sock, &format!("/v1/login/{id}/code"), &body)
        .await
        .unwrap();
    assert_eq!(status, 400);
    let code = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let body = serde_json::json!({ "code": code }).to_string();
    let (status, v) = post_json(&sock, &format!("/v1/login/{id}/code"), &body)
        .await
        .unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "succeeded");
    assert_eq!(
        proxy_client()
            .get(d.url("/raw/echo"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_no_secret_in_logs(&w.auth, &d.logs());
}

#[tokio::test]
async fn a_refused_authorization_is_reported_and_bad_callbacks_do_not_disturb_a_pending_login() {
    let w = world(OAuthOptions {
        auto_approve: false,
        ..Default::default()
    })
    .await;
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    let (id, url) = start_login(&d, false).await;
    let page = w.auth.http_client().get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200, "the approval page");
    // Stray callbacks: no state, unknown state.
    for q in ["/callback?code=x", "/callback?code=x&state=unknown"] {
        let r = proxy_client().get(d.url(q)).send().await.unwrap();
        assert_eq!(r.status(), 400);
    }
    let location = w.auth.deny_next().unwrap();
    let r = proxy_client().get(&location).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let (_, s) = get_json(&d.admin_socket(), &format!("/v1/login/{id}?wait=5"))
        .await
        .unwrap();
    assert_eq!(s["status"], "failed", "{s}");
    assert!(
        s["message"].as_str().unwrap().contains("access_denied"),
        "{s}"
    );
}

#[tokio::test]
async fn concurrent_401s_cause_exactly_one_refresh_and_every_request_succeeds() {
    let w = world(OAuthOptions::default()).await;
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    login_by_callback(&w, &d).await;
    assert_eq!(w.auth.token_requests("refresh_token"), 0);
    // The server revokes the access token behind the proxy's back.
    let access: Vec<String> = w
        .auth
        .issued_tokens()
        .into_iter()
        .filter(|t| t.starts_with("at_"))
        .collect();
    let revoke = w
        .auth
        .http_client()
        .post(w.auth.url("/revoke"))
        .form(&[("token", access[0].as_str()), ("client_id", "test-client")])
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 200);
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let url = d.url("/raw/echo");
        tasks.push(tokio::spawn(async move {
            proxy_client()
                .get(url)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(
        w.auth.token_requests("refresh_token"),
        1,
        "single-flight refresh"
    );
    assert_no_secret_in_logs(&w.auth, &d.logs());
}

#[tokio::test]
async fn invalid_grant_means_needs_login_and_nothing_is_deleted() {
    let w = world(OAuthOptions::default()).await;
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    login_by_callback(&w, &d).await;
    w.auth.set_fault(Fault::InvalidGrant);
    let access = w
        .auth
        .issued_tokens()
        .into_iter()
        .find(|t| t.starts_with("at_"))
        .unwrap();
    w.auth
        .http_client()
        .post(w.auth.url("/revoke"))
        .form(&[("token", access.as_str()), ("client_id", "test-client")])
        .send()
        .await
        .unwrap();
    let r = proxy_client().get(d.url("/raw/echo")).send().await.unwrap();
    // The upstream's 401 is passed on (the refresh was refused), without WWW-Authenticate.
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("www-authenticate").is_none());
    let (_, s) = get_json(&d.admin_socket(), "/v1/status").await.unwrap();
    assert_eq!(s["profiles"][0]["state"], "needs_login", "{s}");
    let r = proxy_client().get(d.url("/raw/echo")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("mcpproxyctl login"));
    // The record is still in the store: a new login replaces it, nothing was wiped.
    assert!(!walk(&w.setup.path("state")).is_empty());
}

#[tokio::test]
async fn revoke_cuts_open_streams_and_revokes_at_the_server() {
    let w = world(OAuthOptions::default()).await;
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    login_by_callback(&w, &d).await;
    let mut events = d.open_slow_stream().await.unwrap();

    let (status, v) = post_json(&d.admin_socket(), "/v1/revoke", "{}")
        .await
        .unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["wiped"], true);
    assert_eq!(v["server"], "revoked", "{v}");
    assert!(events.end().await.is_err(), "the open stream is cut");
    let refresh = w
        .auth
        .issued_tokens()
        .into_iter()
        .find(|t| t.starts_with("rt_"))
        .unwrap();
    assert!(w.auth.revoked().contains(&refresh));
    let r = proxy_client().get(d.url("/raw/echo")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let (_, s) = get_json(&d.admin_socket(), "/v1/status").await.unwrap();
    assert_eq!(s["profiles"][0]["state"], "revoked");
    assert_no_secret_in_logs(&w.auth, &d.logs());
}

#[tokio::test]
async fn revoke_completes_locally_when_the_server_is_down() {
    let w = world(OAuthOptions::default()).await;
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    login_by_callback(&w, &d).await;
    w.auth.set_fault(Fault::Down);
    let (status, v) = post_json(&d.admin_socket(), "/v1/revoke", "{}")
        .await
        .unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["wiped"], true);
    assert_eq!(v["server"], "failed");
    let r = proxy_client().get(d.url("/raw/echo")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(walk(&w.setup.path("state"))
        .iter()
        .all(|p| !p.to_string_lossy().ends_with(".enc")));
}

#[tokio::test]
async fn tokens_are_refreshed_before_expiry_with_no_failed_request() {
    // 4 s tokens: the automatic margin is half the lifetime, so the refresh is due after ~2 s.
    let w = world(OAuthOptions {
        access_lifetime: std::time::Duration::from_secs(4),
        ..Default::default()
    })
    .await;
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    login_by_callback(&w, &d).await;
    let (_, before) = get_json(&d.admin_socket(), "/v1/status").await.unwrap();
    let first_expiry = before["profiles"][0]["valid_until"].as_u64().unwrap();
    assert!(before["profiles"][0]["refresh_at"].as_u64().unwrap() < first_expiry);

    // Requests keep flowing while the refresher does its work; none may fail.
    let waiter = {
        let auth = w.auth.clone();
        tokio::spawn(async move { auth.wait_token_requests("refresh_token", 2).await })
    };
    let deadline = std::time::Instant::now() + mcpproxy_tests::daemon::WAIT;
    let mut sent = 0;
    while !waiter.is_finished() {
        let r = proxy_client().get(d.url("/raw/echo")).send().await.unwrap();
        assert_eq!(r.status(), 200, "request {sent} failed around a refresh");
        sent += 1;
        assert!(
            std::time::Instant::now() < deadline,
            "no two refreshes in time"
        );
    }
    waiter.await.unwrap();
    assert!(w.auth.token_requests("refresh_token") >= 2);
    let (_, after) = get_json(&d.admin_socket(), "/v1/status").await.unwrap();
    assert!(after["profiles"][0]["valid_until"].as_u64().unwrap() > first_expiry);
    let r = proxy_client().get(d.url("/raw/echo")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_no_secret_in_logs(&w.auth, &d.logs());
}

/// A login obtained directly from the authorization server, as `aliyun mcp-proxy` would have.
async fn seed_tool_login(auth: &OAuthServer) -> serde_json::Value {
    let verifier = oauth::pkce::new_verifier();
    let challenge = oauth::pkce::s256_challenge(&verifier);
    let redirect = "http://127.0.0.1:8088/callback";
    let mut url = url::Url::parse(&auth.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "test-client")
        .append_pair("redirect_uri", redirect)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", "seed");
    let location = approve(auth, url.as_str()).await;
    let code = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let tokens: serde_json::Value = auth
        .http_client()
        .post(auth.url("/v1/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect),
            ("client_id", "test-client"),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
    tokens
}

#[tokio::test]
async fn import_aliyun_takes_over_the_seed_tools_login() {
    let auth = Arc::new(oauth::start(OAuthOptions::default()).await.unwrap());
    let checker = auth.clone();
    let up = upstream::start(UpstreamOptions {
        validator: Some(TokenValidator(Arc::new(move |t| checker.is_active(t)))),
        ..Default::default()
    })
    .await
    .unwrap();
    let setup = Setup::new().unwrap();
    std::fs::write(setup.path("as-ca.pem"), auth.ca_pem()).unwrap();
    std::fs::write(setup.path("up-ca.pem"), up.ca_pem().unwrap()).unwrap();
    let text = format!(
        "[store]\nkind = \"file\"\ndir = {store:?}\n\n\
         [auth.aliyun]\nkind = \"alibaba\"\nregion = \"CN\"\noauth_url = {issuer:?}\nca_file = {asca:?}\n\n\
         [[upstream]]\nname = \"aliyun\"\nurl = {url:?}\nauth = \"aliyun\"\nca_file = {upca:?}\ncatalog = \"static\"\n",
        store = setup.path("state"),
        issuer = auth.issuer(),
        asca = setup.path("as-ca.pem"),
        url = up.base_url(),
        upca = setup.path("up-ca.pem"),
    );
    let d = TestDaemon::start(&setup.write_config(&text).unwrap(), &[])
        .await
        .unwrap();
    let tokens = seed_tool_login(&auth).await;
    let seed = serde_json::json!({
        "current": "default",
        "profiles": [{
            "name": "default-mcp",
            "mcp_oauth_app_name": "aliyun-cli-mcp-proxy",
            "mcp_oauth_app_id": "test-client",
            "mcp_oauth_site_type": "CN",
            "mcp_oauth_access_token": tokens["access_token"],
            "mcp_oauth_refresh_token": tokens["refresh_token"],
            "mcp_oauth_access_token_validity": 10800,
            "mcp_oauth_access_token_expire": 0,
            "mcp_oauth_refresh_token_expire": 4_000_000_000u64,
        }]
    });
    let file = setup.path("mcpproxy_config");
    std::fs::write(&file, seed.to_string()).unwrap();
    let out = std::process::Command::new(mcpproxy_tests::daemon::bin_path("mcpproxyctl"))
        .arg("--socket")
        .arg(d.admin_socket())
        .args(["import-aliyun", "--delete", "--file"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("test-client"), "{stdout}");
    assert!(!file.exists(), "the plaintext was deleted");
    // The imported access token has expired: 100 requests at once wait for one refresh (at
    // Alibaba's /v1/token path), and all succeed.
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let url = d.url("/raw/echo");
        tasks.push(tokio::spawn(async move {
            proxy_client()
                .get(url)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(
        auth.token_requests("refresh_token"),
        1,
        "single-flight at expiry"
    );
    let refresh = auth
        .requests()
        .into_iter()
        .find(|r| r.form_value("grant_type") == Some("refresh_token"))
        .unwrap();
    assert_eq!(refresh.form_value("client_id"), Some("test-client"));
    assert_no_secret_in_logs(&auth, &d.logs());
}

#[tokio::test]
async fn a_transient_outage_is_ridden_through_while_the_token_lasts() {
    // 8 s tokens: the refresher tries after ~4 s; the token still lasts ~4 s more.
    let w = world(OAuthOptions {
        access_lifetime: std::time::Duration::from_secs(8),
        ..Default::default()
    })
    .await;
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    login_by_callback(&w, &d).await;
    w.auth.set_fault(Fault::ServerError);
    // The daemon has taken the failure in once it logs it (the server's count alone races).
    d.wait_for_log("refresh failed; retrying with backoff")
        .await
        .unwrap();
    // The refresh failed; requests keep flowing with the current token.
    let r = proxy_client().get(d.url("/raw/echo")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // The profile stays valid and says why the refresh failed. A retry may be in flight
    // ("refreshing") at any moment, so wait for the status between two retries.
    wait::poll("status: valid, with the refresh error", || async {
        let (_, s) = get_json(&d.admin_socket(), "/v1/status").await.ok()?;
        let p = &s["profiles"][0];
        assert_ne!(p["state"], "needs_login", "{s}");
        (p["state"] == "valid" && p["last_error"].is_string()).then_some(())
    })
    .await
    .unwrap();
    let (_, s) = get_json(&d.admin_socket(), "/v1/status").await.unwrap();
    let first_expiry = s["profiles"][0]["valid_until"].as_u64().unwrap();
    // The server comes back: the retry (with backoff) succeeds. Done once the status shows
    // the new token and no error (the server's count and the log line both come earlier).
    w.auth.set_fault(Fault::None);
    let refreshed = wait::poll("status: a new token, no error", || async {
        let (_, s) = get_json(&d.admin_socket(), "/v1/status").await.ok()?;
        let p = &s["profiles"][0];
        let newer = p["valid_until"].as_u64().is_some_and(|t| t > first_expiry);
        (newer && p["state"] == "valid" && p["last_error"].is_null()).then_some(())
    })
    .await;
    refreshed.unwrap_or_else(|e| panic!("{e}; logs:\n{}", d.logs()));
    let r = proxy_client().get(d.url("/raw/echo")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_rotated_refresh_token_survives_a_crash_right_after_the_refresh() {
    let w = world(OAuthOptions {
        access_lifetime: std::time::Duration::from_secs(4),
        ..Default::default()
    })
    .await;
    let mut d = TestDaemon::start(&w.config, &[]).await.unwrap();
    login_by_callback(&w, &d).await;
    // The refresh is done (persisted, then used) once the log says so; then crash hard.
    d.wait_for_log("token refreshed").await.unwrap();
    d.signal("KILL").await.unwrap();
    d.wait_exit().await.unwrap();
    let revoked_before = w.auth.revoked().len();
    let d2 = TestDaemon::start(&w.config, &[]).await.unwrap();
    let r = proxy_client()
        .get(d2.url("/raw/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Had the old refresh token been used again, reuse detection would have revoked the family.
    w.auth.wait_token_requests("refresh_token", 2).await;
    let r = proxy_client()
        .get(d2.url("/raw/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        w.auth.revoked().len(),
        revoked_before,
        "no reuse was detected"
    );
}

#[tokio::test]
async fn status_warns_before_the_login_itself_expires() {
    let w = world(OAuthOptions {
        refresh_lifetime: Some(std::time::Duration::from_secs(2 * 86_400)),
        ..Default::default()
    })
    .await;
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    login_by_callback(&w, &d).await;
    let (_, s) = get_json(&d.admin_socket(), "/v1/status").await.unwrap();
    let warning = s["profiles"][0]["warning"]
        .as_str()
        .unwrap_or_else(|| panic!("{s}"));
    assert!(warning.contains("mcpproxyctl login"), "{warning}");
    let out = std::process::Command::new(mcpproxy_tests::daemon::bin_path("mcpproxyctl"))
        .arg("--socket")
        .arg(d.admin_socket())
        .arg("status")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("! the login expires in"));
}

/// Seed parity: `mcpproxyd --no-browser` in the foreground on a terminal logs in right there.
#[tokio::test]
async fn foreground_no_browser_logs_in_on_the_terminal() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let w = world(OAuthOptions::default()).await;
    let command = format!(
        "{} --config {} --port 0 --no-browser",
        mcpproxy_tests::daemon::bin_path("mcpproxyd").display(),
        w.config.display()
    );
    // `script` gives the daemon a terminal; our pipe is what the user types.
    let mut child = tokio::process::Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env("RUNTIME_DIRECTORY", w.setup.dir.path())
        .env_remove("NOTIFY_SOCKET")
        .env_remove("INVOCATION_ID")
        .env_remove("JOURNAL_STREAM")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("script (util-linux) runs the daemon on a pseudo-terminal");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    async fn next_line(
        lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    ) -> String {
        let line = tokio::time::timeout(mcpproxy_tests::daemon::WAIT, lines.next_line())
            .await
            .expect("the daemon said nothing in time")
            .unwrap()
            .expect("the daemon exited");
        line.trim_end_matches('\r').to_string()
    }
    let (mut addr, mut url) = (None, None);
    while addr.is_none() || url.is_none() {
        let line = next_line(&mut lines).await;
        if let Some(a) = line.strip_prefix("Listen: ") {
            addr = Some(a.trim().to_string());
        }
        if let Some(u) = line.strip_prefix("URL: ") {
            url = Some(u.trim().to_string());
        }
    }
    let location = approve(&w.auth, url.as_deref().unwrap()).await;
    stdin
        .write_all(format!("{location}\n").as_bytes())
        .await
        .unwrap();
    loop {
        let line = next_line(&mut lines).await;
        assert!(!line.contains("failed"), "{line}");
        if line.contains("OAuth login successful!") {
            break;
        }
    }
    let r = proxy_client()
        .get(format!("http://{}/raw/echo", addr.unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let daemons = procs::with_arg(&w.config);
    assert_eq!(daemons.len(), 1, "one daemon runs the config");
    // While its terminal is open, a SIGHUP is still the operator asking for a reload.
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &daemons[0].to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    while !next_line(&mut lines)
        .await
        .contains("configuration reloaded")
    {}
    assert!(procs::alive(daemons[0]), "a reload, not an exit");
    // The terminal closes (`script` dies, the pty hangs up): the daemon gets SIGHUP with no
    // terminal left and exits, instead of taking it as a reload and staying on unseen.
    drop(child);
    procs::wait_none_with_arg(&w.config).await.unwrap();
}
