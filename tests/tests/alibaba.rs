//! The Alibaba Cloud preset end to end: the daemon checks the OAuth application through the
//! (signature-verifying) IMS fake, reports a wrong redirect URI with its fix, repairs it on
//! `app fix`, and logs in against the test authorization server playing Alibaba's sign-in and
//! OAuth service (`/v1/token`).

use std::sync::Arc;

use mcpproxy_tests::admin::{get_json, post_json};
use mcpproxy_tests::aliyun_fake::{self, AliyunFakeOptions, FakeApp};
use mcpproxy_tests::daemon::{bin_path, proxy_client, Setup, TestDaemon};
use mcpproxy_tests::oauth::{self, OAuthOptions};
use mcpproxy_tests::upstream::{self, TokenValidator, UpstreamOptions};
use tokio::process::Command;

#[tokio::test]
async fn login_checks_the_application_fixes_its_redirect_uri_and_signs_in() {
    let auth = Arc::new(oauth::start(OAuthOptions::default()).await.unwrap());
    let fake = aliyun_fake::start(AliyunFakeOptions {
        applications: vec![FakeApp::native(
            "test-client",
            "aliyun-cli-mcp-proxy",
            &["/acs/mcp-server"],
            &["http://127.0.0.1:1/callback"],
        )],
        ..Default::default()
    })
    .await
    .unwrap();
    let checker = auth.clone();
    let up = upstream::start(UpstreamOptions {
        validator: Some(TokenValidator(Arc::new(move |t| checker.is_active(t)))),
        ..Default::default()
    })
    .await
    .unwrap();
    let setup = Setup::new().unwrap();
    // One CA file for the profile: it reaches both the IMS fake and the sign-in/OAuth server.
    std::fs::write(
        setup.path("aliyun-ca.pem"),
        format!("{}\n{}", auth.ca_pem(), fake.ca_pem()),
    )
    .unwrap();
    std::fs::write(setup.path("up-ca.pem"), up.ca_pem().unwrap()).unwrap();
    let text = format!(
        "[store]\nkind = \"file\"\ndir = {store:?}\n\n\
         [auth.aliyun]\nkind = \"alibaba\"\nregion = \"CN\"\nsignin_url = {signin:?}\n\
         oauth_url = {oauth:?}\nims_endpoint = {ims:?}\nca_file = {ca:?}\n\n\
         [[upstream]]\nname = \"aliyun\"\nurl = {url:?}\nauth = \"aliyun\"\nca_file = {upca:?}\ncatalog = \"static\"\n",
        store = setup.path("state"),
        signin = auth.url("/authorize"),
        oauth = auth.issuer(),
        ims = fake.url(),
        ca = setup.path("aliyun-ca.pem"),
        url = up.base_url(),
        upca = setup.path("up-ca.pem"),
    );
    let config = setup.write_config(&text).unwrap();
    let key = fake.key();
    let mut cmd = Command::new(bin_path("mcpproxyd"));
    cmd.arg("--config")
        .arg(&config)
        .arg("--port")
        .arg("0")
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", &key.id)
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", &key.secret)
        .env_remove("ALIBABA_CLOUD_SECURITY_TOKEN");
    let d = TestDaemon::spawn(cmd).await.unwrap();
    let sock = d.admin_socket();

    // The application's redirect URI does not match: the login says so, with the fix.
    let (status, v) = post_json(&sock, "/v1/login", "{}").await.unwrap();
    assert_eq!(status, 400, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("mcpproxyctl app fix"), "{message}");
    assert!(
        message.contains(&format!("http://{}/callback", d.addr)),
        "{message}"
    );
    assert_eq!(
        fake.count("CreateApplication"),
        0,
        "a present application is never re-created"
    );

    // Async: the fake runs on this test's runtime, which must keep going meanwhile.
    let out = Command::new(bin_path("mcpproxyctl"))
        .arg("--socket")
        .arg(&sock)
        .args(["app", "fix"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let app = &fake.applications()[0];
    assert!(app
        .redirect_uris
        .contains(&format!("http://{}/callback", d.addr)));
    assert!(
        fake.requests().iter().all(|r| r.signature_ok()),
        "every IMS call was signed"
    );

    // Now the login goes through Alibaba-style sign-in and /v1/token.
    let (status, v) = post_json(&sock, "/v1/login", "{}").await.unwrap();
    assert_eq!(status, 200, "{v}");
    let url = v["url"].as_str().unwrap();
    assert!(url.contains("client_id=test-client"), "{url}");
    assert!(url.contains("scope=%2Facs%2Fmcp-server"), "{url}");
    let resp = auth.http_client().get(url).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let page = proxy_client().get(&location).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let (_, s) = get_json(&sock, "/v1/status").await.unwrap();
    assert_eq!(s["profiles"][0]["state"], "valid", "{s}");
    assert_eq!(
        proxy_client()
            .get(d.url("/raw/echo"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let logs = d.logs();
    assert!(
        !logs.contains(&key.secret),
        "the AccessKey secret reached the log"
    );
    for t in auth.issued_tokens() {
        assert!(!logs.contains(&t));
    }
}

/// The catalog comes from the paged listing, feeds the banner, `servers` and the ACL, and a
/// listing outage at start-up falls back to the saved list.
#[tokio::test]
async fn catalog_is_listed_with_paging_and_cached_for_an_outage() {
    let fake = aliyun_fake::start(AliyunFakeOptions {
        servers: 150,
        ..Default::default()
    })
    .await
    .unwrap();
    let setup = Setup::new().unwrap();
    std::fs::write(setup.path("ca.pem"), fake.ca_pem()).unwrap();
    let (blocked, blocked_id, blocked_base) = fake.server(7);
    let text = format!(
        "[store]\nkind = \"file\"\ndir = {store:?}\n\n\
         [auth.aliyun]\nkind = \"alibaba\"\n\n\
         [[upstream]]\nname = \"aliyun\"\nurl = {url:?}\nauth = \"aliyun\"\nca_file = {ca:?}\ncatalog = \"alibaba\"\n\n\
         [acl]\nblocked_servers = [{blocked:?}, \"server-07\"]\n",
        store = setup.path("state"),
        url = fake.url(),
        ca = setup.path("ca.pem"),
    );
    let config = setup.write_config(&text).unwrap();
    let key = fake.key();
    let start = || {
        let mut cmd = Command::new(bin_path("mcpproxyd"));
        cmd.arg("--config")
            .arg(&config)
            .arg("--port")
            .arg("0")
            .env("ALIBABA_CLOUD_ACCESS_KEY_ID", &key.id)
            .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", &key.secret)
            .env_remove("ALIBABA_CLOUD_SECURITY_TOKEN");
        TestDaemon::spawn(cmd)
    };
    let mut d = start().await.unwrap();
    assert_eq!(
        fake.count("ListApiMcpServers"),
        2,
        "150 servers come in two pages"
    );
    assert!(
        d.banner.contains(&format!("  - {blocked} (blocked)")),
        "{}",
        d.banner
    );
    assert!(
        d.banner
            .contains(&format!("MCP: http://{}{blocked_base}/mcp", d.addr)),
        "{}",
        d.banner
    );
    let (_, servers) = get_json(&d.admin_socket(), "/v1/servers").await.unwrap();
    assert_eq!(servers["servers"].as_array().unwrap().len(), 150);
    let r = proxy_client()
        .get(d.url(&format!("{blocked_base}/mcp")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(!blocked_id.is_empty());
    // A name close to a real one is reported with the closest catalogued names.
    let line = d
        .wait_for_line(|l| l.contains("ACL entry matches no catalogued server"))
        .await
        .unwrap();
    assert!(line.contains("closest=server-007"), "{line}");

    d.signal("TERM").await.unwrap();
    d.wait_exit().await.unwrap();
    fake.set_listing_fault(aliyun_fake::ListingFault::Unavailable);
    let d2 = start().await.unwrap();
    assert!(
        d2.banner.contains(&format!("  - {blocked} (blocked)")),
        "{}",
        d2.banner
    );
    // Logged before the banner, on the other pipe: wait for it.
    d2.wait_for_log("using the last good list").await.unwrap();
    assert!(!d2.logs().contains(&key.secret));
}

/// First run: the default application does not exist, so it is created, then the login (pasted
/// redirect URL) completes. Second run: the application is found and reused, never re-created.
#[tokio::test]
async fn the_default_application_is_created_once_then_reused() {
    // The fake numbers new applications from 4000000000000000001.
    let auth = Arc::new(
        oauth::start(OAuthOptions {
            clients: vec![oauth::ClientSpec::loopback("4000000000000000001")],
            ..Default::default()
        })
        .await
        .unwrap(),
    );
    let fake = aliyun_fake::start(AliyunFakeOptions::default())
        .await
        .unwrap();
    let setup = Setup::new().unwrap();
    std::fs::write(
        setup.path("aliyun-ca.pem"),
        format!("{}\n{}", auth.ca_pem(), fake.ca_pem()),
    )
    .unwrap();
    // A fixed redirect URI (the one registered with the application); the test pastes the
    // redirect, so nothing listens there.
    let text = format!(
        "[store]\nkind = \"file\"\ndir = {store:?}\n\n\
         [auth.aliyun]\nkind = \"alibaba\"\nsignin_url = {signin:?}\noauth_url = {oauth:?}\n\
         ims_endpoint = {ims:?}\nca_file = {ca:?}\nredirect_uri = \"http://127.0.0.1:8088/callback\"\n\n\
         [[upstream]]\nname = \"aliyun\"\nurl = \"https://127.0.0.1:1\"\nauth = \"aliyun\"\ncatalog = \"static\"\n",
        store = setup.path("state"),
        signin = auth.url("/authorize"),
        oauth = auth.issuer(),
        ims = fake.url(),
        ca = setup.path("aliyun-ca.pem"),
    );
    let config = setup.write_config(&text).unwrap();
    let key = fake.key();
    for run in 1..=2 {
        let mut cmd = Command::new(bin_path("mcpproxyd"));
        cmd.arg("--config")
            .arg(&config)
            .arg("--port")
            .arg("0")
            .env("ALIBABA_CLOUD_ACCESS_KEY_ID", &key.id)
            .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", &key.secret);
        let d = TestDaemon::spawn(cmd).await.unwrap();
        let sock = d.admin_socket();
        let (status, v) = post_json(&sock, "/v1/login", r#"{"paste":true}"#)
            .await
            .unwrap();
        assert_eq!(status, 200, "run {run}: {v}");
        let url = v["url"].as_str().unwrap();
        assert!(url.contains("client_id=4000000000000000001"), "{url}");
        let resp = auth.http_client().get(url).send().await.unwrap();
        let location = resp.headers()["location"].to_str().unwrap().to_string();
        assert!(
            location.starts_with("http://127.0.0.1:8088/callback?"),
            "{location}"
        );
        let body = serde_json::json!({ "url": location }).to_string();
        let id = v["id"].as_str().unwrap();
        let (status, v) = post_json(&sock, &format!("/v1/login/{id}/code"), &body)
            .await
            .unwrap();
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["status"], "succeeded", "run {run}: {v}");
        assert_eq!(fake.count("CreateApplication"), 1, "run {run}");
    }
    let app = &fake.applications()[0];
    assert_eq!(app.app_name, "aliyun-cli-mcp-proxy");
    assert_eq!(app.app_type, "NativeApp");
    assert_eq!(
        app.redirect_uris,
        vec!["http://127.0.0.1:8088/callback".to_string()]
    );
}
