//! A world for OAuth end-to-end tests against MCP servers found by discovery: the test
//! authorization server, the test MCP upstream whose protected-resource metadata names it, and
//! a daemon config whose `oauth` profile has nothing but a client id and the AS's CA. The
//! helpers play the browser.

use std::sync::Arc;

use crate::admin::{get_json, post_json};
use crate::daemon::{proxy_client, Setup, TestDaemon};
use crate::oauth::{self, OAuthOptions, OAuthServer};
use crate::upstream::{self, ResourceOptions, TestUpstream, TokenValidator, UpstreamOptions};

/// The running peers and the config written for the daemon.
pub struct World {
    pub auth: Arc<OAuthServer>,
    pub up: TestUpstream,
    pub setup: Setup,
    pub config: std::path::PathBuf,
}

/// An upstream (HTTPS, or plain HTTP on loopback with `allow_http`) whose metadata names the
/// authorization server, and a profile with nothing but a client id and the AS's CA: the
/// endpoints come from discovery. `profile_extra` adds keys to the profile.
pub async fn world(opts: OAuthOptions, tls: bool, profile_extra: &str) -> World {
    world_with(opts, tls, profile_extra, ResourceOptions::default(), "").await
}

/// [`world`] with the upstream's protected-resource switches and a path after its base URL.
pub async fn world_with(
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
pub async fn world_on(
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
        setup,
        config,
    }
}

/// Starts a login (`body` as `POST /v1/login` takes it) and asks the authorization server,
/// as the browser would, where it redirects; returns the login id and that redirect URL.
pub async fn authorize(w: &World, d: &TestDaemon, body: &str) -> (String, String) {
    let (status, v) = post_json(&d.admin_socket(), "/v1/login", body)
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
    (id, location)
}

/// Starts a login and plays the browser up to the daemon's callback; returns the login's
/// final status.
pub async fn login(w: &World, d: &TestDaemon) -> serde_json::Value {
    let (id, location) = authorize(w, d, "{}").await;
    let page = proxy_client().get(&location).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let (_, s) = get_json(&d.admin_socket(), &format!("/v1/login/{id}?wait=5"))
        .await
        .unwrap();
    s
}

pub async fn status(d: &TestDaemon) -> serde_json::Value {
    let (_, s) = get_json(&d.admin_socket(), "/v1/status").await.unwrap();
    s["profiles"][0].clone()
}

/// The resource the first `/token` request asked for.
pub fn token_resource(auth: &OAuthServer) -> Option<String> {
    let token = auth.requests().into_iter().find(|r| r.path == "/token")?;
    token.form_value("resource").map(str::to_string)
}

/// A login, then one request after the server revoked the access token: the daemon refreshes
/// (authenticating as its client) and the request succeeds.
pub async fn login_then_refresh(w: &World, d: &TestDaemon) {
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

pub fn token_requests(auth: &OAuthServer) -> Vec<oauth::Recorded> {
    auth.requests()
        .into_iter()
        .filter(|r| r.path == "/token")
        .collect()
}

/// The config with `client_id = "test-client"` replaced.
pub fn rewrite_client(config: &std::path::Path, client_id: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(config).unwrap();
    let text = text.replace(
        "client_id = \"test-client\"",
        &format!("client_id = {client_id:?}"),
    );
    std::fs::write(config, text).unwrap();
    config.to_path_buf()
}
