//! One whole OAuth session through the real daemon (login, requests, a refresh after an upstream
//! 401, a refused refresh, refused requests of every kind, revoke), with every log line of the
//! daemon and every answer a local app can read collected: no access token, refresh token,
//! authorization code or PKCE verifier may appear in any of them.

use std::sync::Arc;

use mcpproxy_tests::admin::{get_json, post_json};
use mcpproxy_tests::daemon::{proxy_client, Setup, TestDaemon, WAIT};
use mcpproxy_tests::oauth::{self, Fault, OAuthOptions, OAuthServer};
use mcpproxy_tests::upstream::{self, TokenValidator, UpstreamOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Everything a client or an operator got back, to search for secrets at the end.
#[derive(Default)]
struct Readable(Vec<String>);

impl Readable {
    async fn response(&mut self, what: &str, resp: reqwest::Response) -> u16 {
        let status = resp.status().as_u16();
        let headers = format!("{:?}", resp.headers());
        let body = resp.text().await.unwrap_or_default();
        self.0.push(format!("{what}: {status} {headers}\n{body}"));
        status
    }

    /// A raw request on its own connection (for what ordinary clients will not send).
    async fn raw(&mut self, d: &TestDaemon, request: String) -> String {
        let mut s = tokio::net::TcpStream::connect(d.addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut buf)).await;
        let text = String::from_utf8_lossy(&buf).into_owned();
        self.0.push(format!("{request}\n{text}"));
        text
    }
}

async fn revoke_access_at_server(auth: &OAuthServer) {
    for token in auth.issued_tokens().iter().filter(|t| t.starts_with("at_")) {
        auth.http_client()
            .post(auth.url("/revoke"))
            .form(&[("token", token.as_str()), ("client_id", "test-client")])
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn no_secret_reaches_a_log_line_or_anything_a_client_can_read() {
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
    let config = format!(
        "[store]\nkind = \"file\"\ndir = {store:?}\n\n[acl]\nblocked_servers = [\"/raw/status\"]\n\n\
         [auth.corp]\nkind = \"oauth\"\nissuer = {issuer:?}\nclient_id = \"test-client\"\nca_file = {asca:?}\n\n\
         [[upstream]]\nname = \"corp\"\nurl = {url:?}\nauth = \"corp\"\nca_file = {upca:?}\n",
        store = setup.path("state"),
        issuer = auth.issuer(),
        asca = setup.path("as-ca.pem"),
        url = up.base_url(),
        upca = setup.path("up-ca.pem"),
    );
    let d = TestDaemon::start(&setup.write_config(&config).unwrap(), &[])
        .await
        .unwrap();
    let sock = d.admin_socket();
    let client = proxy_client();
    let mut seen = Readable::default();
    let count = || client.post(d.url("/raw/count")).body("{}").timeout(WAIT);

    // Before login: the proxy's own 401.
    assert_eq!(
        seen.response("before login", count().send().await.unwrap())
            .await,
        401
    );

    // Login through the browser redirect.
    let (status, v) = post_json(&sock, "/v1/login", "{}").await.unwrap();
    assert_eq!(status, 200, "{v}");
    seen.0.push(v.to_string());
    let url = v["url"].as_str().unwrap().to_string();
    let id = v["id"].as_str().unwrap().to_string();
    let redirect = auth.http_client().get(&url).send().await.unwrap();
    let location = redirect.headers()["location"].to_str().unwrap().to_string();
    let page = client.get(&location).send().await.unwrap();
    assert_eq!(seen.response("callback page", page).await, 200);
    let (_, v) = get_json(&sock, &format!("/v1/login/{id}?wait=5"))
        .await
        .unwrap();
    assert_eq!(v["status"], "succeeded", "{v}");
    seen.0.push(v.to_string());

    // Requests; then the access token dies behind the proxy's back: refresh (rotated), retry.
    assert_eq!(
        seen.response("after login", count().send().await.unwrap())
            .await,
        200
    );
    revoke_access_at_server(&auth).await;
    assert_eq!(
        seen.response("after refresh", count().send().await.unwrap())
            .await,
        200
    );
    assert!(auth.token_requests("refresh_token") >= 1);

    // Refused by the proxy in every way it refuses.
    let host = d.addr.to_string();
    for (method, path, host) in [
        ("TRACE", "/raw/echo", host.as_str()),
        ("PUT", "/raw/echo", host.as_str()),
        ("GET", "/raw/%2e%2e/echo", host.as_str()),
        ("GET", "/raw/status/200", host.as_str()),
        ("GET", "/raw/echo", "evil.example"),
        (
            "GET",
            "/.well-known/oauth-authorization-server",
            host.as_str(),
        ),
        ("GET", "/callback?code=x&state=y", host.as_str()),
    ] {
        let text = seen
            .raw(
                &d,
                format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
            )
            .await;
        assert!(text.starts_with("HTTP/1.1 4"), "{method} {path}: {text}");
    }

    // The refresh is refused: the upstream's 401 passes, then the proxy's own.
    auth.set_fault(Fault::InvalidGrant);
    revoke_access_at_server(&auth).await;
    assert_eq!(
        seen.response("refresh refused", count().send().await.unwrap())
            .await,
        401
    );
    assert_eq!(
        seen.response("needs login", count().send().await.unwrap())
            .await,
        401
    );
    let (_, v) = get_json(&sock, "/v1/status").await.unwrap();
    seen.0.push(v.to_string());
    auth.set_fault(Fault::None);
    let (_, v) = post_json(&sock, "/v1/revoke", "{}").await.unwrap();
    seen.0.push(v.to_string());
    assert_eq!(
        seen.response("revoked", count().send().await.unwrap())
            .await,
        401
    );

    let secrets = auth.issued_tokens();
    assert!(
        secrets.iter().any(|t| t.starts_with("at_")) && secrets.len() >= 5,
        "the session issued too little to prove anything: {}",
        secrets.len()
    );
    d.wait_for_log("revoke").await.unwrap();
    let logs = d.logs();
    for (n, secret) in secrets.iter().enumerate() {
        assert!(!logs.contains(secret.as_str()), "secret #{n} is in the log");
        for text in &seen.0 {
            assert!(
                !text.contains(secret.as_str()),
                "secret #{n} reached a client:\n{text}"
            );
        }
    }
}
