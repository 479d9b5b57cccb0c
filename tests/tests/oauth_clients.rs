//! OAuth clients against the test authorization server through the real daemon: pre-registered
//! confidential clients, secrets from registration, Client ID Metadata Documents, the
//! client-credentials grant, and RFC 9207 `iss` with tokens keyed by issuer.

use std::sync::Arc;

use mcpproxy_tests::admin::post_json;
use mcpproxy_tests::daemon::{proxy_client, run_once, write_private, Setup, TestDaemon};
use mcpproxy_tests::oauth::{self, ClientSpec, OAuthOptions};
use mcpproxy_tests::oauth_world::*;
use mcpproxy_tests::upstream::ResourceOptions;

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
    let (id, location) = authorize(&w, &d, r#"{"paste": true}"#).await;
    let location = url::Url::parse(&location).unwrap();
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
