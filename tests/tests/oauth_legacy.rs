//! The 2025-03-26 fallback, end to end: an MCP server without protected-resource metadata whose
//! origin serves the authorization server (its RFC 8414 metadata, or nothing but the default
//! endpoints `/authorize`, `/token` and `/register`). Login through the real daemon and
//! `mcpproxyctl login` (a script plays the browser), then a tool call through the proxy.

use std::sync::Arc;
use std::time::Duration;

use mcpproxy_tests::daemon::{bin_path, proxy_client, Setup, TestDaemon};
use mcpproxy_tests::mcp_client::McpClient;
use mcpproxy_tests::oauth::{self, OAuthOptions, OAuthServer};
use mcpproxy_tests::upstream::{
    self, OAuthFront, ResourceOptions, TestUpstream, TokenValidator, UpstreamOptions,
};
use serde_json::json;
use tokio::net::TcpListener;

/// Follows the authorization URL (the authorization server approves at once) and its redirect
/// to the daemon's `/callback`, trusting only the CA named by the first argument.
const BROWSER: &str = r#"
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[1])
opener = urllib.request.build_opener(
    urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
opener.open(sys.argv[2], timeout=20).read()
"#;

struct LegacyWorld {
    auth: Arc<OAuthServer>,
    up: TestUpstream,
    setup: Setup,
    config: std::path::PathBuf,
}

/// An MCP server at `https://127.0.0.1:PORT/mcp` without protected-resource metadata, whose
/// origin forwards the OAuth paths to the test authorization server (which calls that origin
/// its issuer); with `metadata`, its RFC 8414 document too. The profile names nothing but the
/// CA: the client is registered dynamically.
async fn legacy_world(metadata: bool) -> LegacyWorld {
    let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("https://{}", front.local_addr().unwrap());
    let auth = Arc::new(
        oauth::start(OAuthOptions {
            issuer: Some(origin),
            ..Default::default()
        })
        .await
        .unwrap(),
    );
    let checker = auth.clone();
    let up = upstream::serve(
        front,
        UpstreamOptions {
            validator: Some(TokenValidator(Arc::new(move |t| checker.is_active(t)))),
            authorization_server: None,
            resource: ResourceOptions {
                challenge_without_metadata: true,
                ..Default::default()
            },
            oauth_front: Some(OAuthFront {
                target: format!("https://{}", auth.addr()),
                client: auth.http_client(),
                metadata,
            }),
            ..Default::default()
        },
    )
    .unwrap();
    let setup = Setup::new().unwrap();
    let ca = setup.path("up-ca.pem");
    std::fs::write(&ca, up.ca_pem().unwrap()).unwrap();
    std::fs::write(setup.path("browser.py"), BROWSER).unwrap();
    let text = format!(
        "[store]\nkind = \"file\"\ndir = {store:?}\n\n\
         [auth.corp]\nkind = \"oauth\"\nca_file = {ca:?}\n\n\
         [[upstream]]\nname = \"corp\"\nmount = \"/corp\"\nurl = {url:?}\nauth = \"corp\"\nca_file = {ca:?}\n",
        store = setup.path("state"),
        url = up.url("/mcp"),
    );
    let config = setup.write_config(&text).unwrap();
    LegacyWorld {
        auth,
        up,
        setup,
        config,
    }
}

/// `mcpproxyctl login` with `$BROWSER` playing the browser; its exit code and output.
async fn ctl_login(w: &LegacyWorld, d: &TestDaemon) -> (Option<i32>, String) {
    let browser = format!(
        "python3 {} {}",
        w.setup.path("browser.py").display(),
        w.setup.path("up-ca.pem").display()
    );
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(bin_path("mcpproxyctl"))
            .arg("--socket")
            .arg(d.admin_socket())
            .arg("login")
            .env("BROWSER", browser)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("mcpproxyctl login hung")
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// A tool call through the proxy, on a session of its own.
async fn echo_through_proxy(d: &TestDaemon) -> String {
    let mut client = McpClient::new(proxy_client(), d.url("/corp"));
    client.initialize().await.unwrap();
    let answer = client
        .call_tool("echo", json!({"text": "legacy"}))
        .await
        .unwrap();
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn paths(up: &TestUpstream) -> Vec<String> {
    up.requests().into_iter().map(|r| r.path).collect()
}

#[tokio::test]
async fn a_server_without_resource_metadata_uses_the_metadata_at_its_origin() {
    let w = legacy_world(true).await;
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    let (code, out) = ctl_login(&w, &d).await;
    assert_eq!(code, Some(0), "{out}");
    let seen = paths(&w.up);
    assert!(
        seen.iter()
            .any(|p| p == "/.well-known/oauth-authorization-server"),
        "{seen:?}"
    );
    assert!(seen.iter().any(|p| p == "/register"), "{seen:?}");
    assert_eq!(w.auth.token_requests("authorization_code"), 1);
    assert_eq!(echo_through_proxy(&d).await, "legacy");
}

#[tokio::test]
async fn a_server_without_any_metadata_uses_the_default_endpoints_at_its_origin() {
    let w = legacy_world(false).await;
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    let (code, out) = ctl_login(&w, &d).await;
    assert_eq!(code, Some(0), "{out}");
    let seen = paths(&w.up);
    for default in ["/register", "/authorize", "/token"] {
        assert!(seen.iter().any(|p| p == default), "{default}: {seen:?}");
    }
    // The token was asked for the MCP server itself (RFC 8707).
    let token = w
        .auth
        .requests()
        .into_iter()
        .find(|r| r.path == "/token")
        .unwrap();
    assert_eq!(
        token.form_value("resource"),
        Some(w.up.url("/mcp").as_str())
    );
    assert_eq!(echo_through_proxy(&d).await, "legacy");
}
