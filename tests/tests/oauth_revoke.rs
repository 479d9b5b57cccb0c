//! `mcpproxyctl revoke` as a confidential client (RFC 7009 §2.1), through the real daemon: the
//! authorization server refuses a revocation that only names the client, and accepts the
//! daemon's, which authenticates as it does at the token endpoint.

use mcpproxy_tests::daemon::{bin_path, write_private, Setup, TestDaemon};
use mcpproxy_tests::oauth::{ClientSpec, OAuthOptions, OAuthServer};
use mcpproxy_tests::oauth_world::*;

const SECRET: &str = "s3cret-of-the-revoker";

fn issued(auth: &OAuthServer, prefix: &str) -> String {
    auth.issued_tokens()
        .into_iter()
        .rfind(|t| t.starts_with(prefix))
        .unwrap()
}

#[tokio::test]
async fn a_confidential_client_authenticates_its_revocation() {
    for method in ["client_secret_basic", "client_secret_post"] {
        let opts = OAuthOptions {
            clients: vec![ClientSpec::confidential("conf-client", SECRET)],
            auth_methods: vec![method.into()],
            revocation_requires_client_auth: true,
            ..Default::default()
        };
        let setup = Setup::new().unwrap();
        let secret_file = setup.path("client-secret");
        write_private(&secret_file, &format!("{SECRET}\n")).unwrap();
        let mut w = world(opts, true, &format!("client_secret_file = {secret_file:?}")).await;
        w.config = rewrite_client(&w.config, "conf-client");
        let d = TestDaemon::start(&w.config, &[]).await.unwrap();
        assert_eq!(login(&w, &d).await["status"], "succeeded");
        let (access, refresh) = (issued(&w.auth, "at_"), issued(&w.auth, "rt_"));

        // Naming the client is not enough for a confidential one.
        let r = w
            .auth
            .http_client()
            .post(w.auth.url("/revoke"))
            .form(&[("token", access.as_str()), ("client_id", "conf-client")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client", "{body}");
        assert!(w.auth.is_active(&access), "revoked without authentication");

        let out = tokio::process::Command::new(bin_path("mcpproxyctl"))
            .arg("--socket")
            .arg(d.admin_socket())
            .args(["revoke", "--json"])
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{method}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(v["server"], "revoked", "{method}: {v}");
        assert!(!w.auth.is_active(&access) && !w.auth.is_active(&refresh));
        let revocations: Vec<_> = w
            .auth
            .requests()
            .into_iter()
            .filter(|r| r.path == "/revoke")
            .skip(1)
            .collect();
        assert_eq!(revocations.len(), 2, "refresh token, then access token");
        for r in revocations {
            match method {
                "client_secret_basic" => {
                    assert_eq!(r.basic_client.as_deref(), Some("conf-client"))
                }
                _ => assert_eq!(r.form_value("client_secret"), Some(SECRET)),
            }
        }
        assert!(!d.logs().contains(SECRET), "the secret reached the log");
    }
}
