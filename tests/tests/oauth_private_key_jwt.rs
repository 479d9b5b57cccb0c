//! `private_key_jwt` (RFC 7523 §2.2) through the real daemon: a pre-registered client whose
//! private key (ES256 or RS256) is in a 0600 file authenticates by signed assertions that the
//! test authorization server verifies with the public key, for the authorization code, the
//! refresh, the client-credentials grant and revocation. No assertion or key reaches the log.

use std::sync::Arc;

use mcpproxy_tests::daemon::{bin_path, proxy_client, write_private, Setup, TestDaemon};
use mcpproxy_tests::oauth::assertion::{generate_ec_pem, JWT_BEARER, TEST_RSA_PEM};
use mcpproxy_tests::oauth::{self, AssertionKey, ClientSpec, OAuthOptions, OAuthServer};
use mcpproxy_tests::oauth_world::*;
use mcpproxy_tests::upstream::ResourceOptions;

const CLIENT: &str = "jwt-client";

fn options(pem: &str) -> OAuthOptions {
    OAuthOptions {
        clients: vec![ClientSpec::loopback(CLIENT)],
        assertion_keys: vec![AssertionKey {
            client_id: CLIENT.into(),
            private_pem: pem.into(),
        }],
        auth_methods: vec!["private_key_jwt".into()],
        revocation_requires_client_auth: true,
        ..Default::default()
    }
}

/// The key as the daemon reads it: a 0600 file named by `private_key_file`.
fn key_file(setup: &Setup, pem: &str) -> String {
    let path = setup.path("client-key.pem");
    write_private(&path, pem).unwrap();
    format!("private_key_file = {path:?}\nprivate_key_id = \"key-1\"")
}

/// Every `/token` and `/revoke` request carried an assertion (and no secret).
fn assert_all_asserted(auth: &OAuthServer) {
    let requests: Vec<_> = auth
        .requests()
        .into_iter()
        .filter(|r| r.path == "/token" || r.path == "/revoke")
        .collect();
    assert!(!requests.is_empty());
    for r in requests {
        assert_eq!(
            r.form_value("client_assertion_type"),
            Some(JWT_BEARER),
            "{r:?}"
        );
        assert!(r.form_value("client_assertion").is_some());
        assert_eq!(r.basic_client, None);
        assert_eq!(r.form_value("client_secret"), None);
    }
}

fn assert_no_key_material_logged(auth: &OAuthServer, logs: &str, pem: &str) {
    for issued in auth.issued_tokens() {
        assert!(
            !logs.contains(&issued),
            "an assertion or token reached the log"
        );
    }
    let body_line = pem.lines().nth(1).unwrap();
    assert!(!logs.contains(body_line), "the private key reached the log");
}

#[tokio::test]
async fn login_refresh_and_revoke_authenticate_with_a_signed_assertion() {
    for pem in [generate_ec_pem(), TEST_RSA_PEM.to_string()] {
        let setup = Setup::new().unwrap();
        let mut w = world(options(&pem), true, &key_file(&setup, &pem)).await;
        w.config = rewrite_client(&w.config, CLIENT);
        let d = TestDaemon::start(&w.config, &[]).await.unwrap();
        login_then_refresh(&w, &d).await;
        let out = tokio::process::Command::new(bin_path("mcpproxyctl"))
            .arg("--socket")
            .arg(d.admin_socket())
            .args(["revoke", "--json"])
            .output()
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["server"], "revoked", "{v}");
        assert_all_asserted(&w.auth);
        assert_no_key_material_logged(&w.auth, &d.logs(), &pem);
    }
}

#[tokio::test]
async fn client_credentials_authenticate_with_a_signed_assertion() {
    let pem = generate_ec_pem();
    let auth = Arc::new(oauth::start(options(&pem)).await.unwrap());
    let setup = Setup::new().unwrap();
    let extra = format!(
        "grant = \"client_credentials\"\nissuer = {:?}\n{}",
        auth.issuer(),
        key_file(&setup, &pem)
    );
    let mut w = world_on(auth, true, &extra, ResourceOptions::default(), "").await;
    w.config = rewrite_client(&w.config, CLIENT);
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    let r = proxy_client().get(d.url("/raw/echo")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(w.auth.token_requests("client_credentials"), 1);
    assert_all_asserted(&w.auth);
    assert_no_key_material_logged(&w.auth, &d.logs(), &pem);
}

#[tokio::test]
async fn a_key_that_is_not_private_or_not_a_key_is_refused_at_start() {
    let setup = Setup::new().unwrap();
    let path = setup.path("client-key.pem");
    let pem = generate_ec_pem();
    std::fs::write(&path, &pem).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let w = world(
        OAuthOptions::default(),
        true,
        &format!("private_key_file = {path:?}"),
    )
    .await;
    let config = w.config.to_str().unwrap();
    let (code, _, stderr) = mcpproxy_tests::daemon::run_once(&["--config", config, "--port", "0"])
        .await
        .unwrap();
    assert_ne!(code, 0);
    assert!(
        stderr.contains("private_key_file") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    write_private(&path, "not a key").unwrap();
    let (code, _, stderr) = mcpproxy_tests::daemon::run_once(&["--config", config, "--port", "0"])
        .await
        .unwrap();
    assert_ne!(code, 0);
    assert!(stderr.contains("PEM"), "{stderr}");
    assert!(!stderr.contains(pem.lines().nth(1).unwrap()));
}
