//! Metadata, authorization requests, approval, code exchange, registration.

use super::*;

#[tokio::test]
async fn full_code_flow_with_pkce() {
    let srv = server(|_| {}).await;
    let verifier = pkce::new_verifier();
    let code = code_for(&srv, &verifier).await;
    let (status, tokens) = exchange(&srv, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    assert_eq!(tokens["refresh_expires_in"], 30 * 24 * 3600);
    let access = field(&tokens, "access_token");
    let refresh = field(&tokens, "refresh_token");
    assert!(srv.is_active(access));
    assert!(srv.is_active(refresh));
    assert!(!srv.is_active("at_unknown"));

    let issued = srv.issued_tokens();
    for secret in [code.as_str(), access, refresh, verifier.as_str()] {
        assert!(issued.iter().any(|t| t == secret), "{secret} not recorded");
    }
    assert_eq!(srv.token_requests("authorization_code"), 1);
    assert_eq!(srv.token_requests("refresh_token"), 0);
    let authorize = &srv.requests()[0];
    assert_eq!(
        (authorize.method.as_str(), authorize.path.as_str()),
        ("GET", "/authorize")
    );
    assert_eq!(authorize.query_value("state"), Some(STATE));
    let token = &srv.requests()[1];
    assert_eq!(token.form_value("code_verifier"), Some(verifier.as_str()));
}

#[tokio::test]
async fn token_responses_are_not_cached() {
    let srv = server(|_| {}).await;
    let resp = srv
        .http_client()
        .post(srv.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=refresh_token&client_id=test-client&refresh_token=rt_x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.headers()["content-type"], "application/json");
}

#[tokio::test]
async fn wrong_verifier_is_invalid_grant_and_spends_the_code() {
    let srv = server(|_| {}).await;
    let verifier = pkce::new_verifier();
    let code = code_for(&srv, &verifier).await;
    let wrong = exchange(&srv, &code, &pkce::new_verifier()).await;
    assert_error(&wrong, StatusCode::BAD_REQUEST, "invalid_grant");
    let again = exchange(&srv, &code, &verifier).await;
    assert_error(&again, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn code_reuse_is_invalid_grant_and_revokes_its_tokens() {
    let srv = server(|_| {}).await;
    let verifier = pkce::new_verifier();
    let code = code_for(&srv, &verifier).await;
    let (_, tokens) = exchange(&srv, &code, &verifier).await;
    let access = field(&tokens, "access_token");
    let refresh = field(&tokens, "refresh_token");

    let reuse = exchange(&srv, &code, &verifier).await;
    assert_error(&reuse, StatusCode::BAD_REQUEST, "invalid_grant");
    assert!(!srv.is_active(access));
    assert!(!srv.is_active(refresh));
    let revoked = srv.revoked();
    assert!(revoked.iter().any(|t| t == access) && revoked.iter().any(|t| t == refresh));
    assert_error(
        &super::refresh(&srv, refresh).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
}

#[tokio::test]
async fn expired_code_is_invalid_grant() {
    let srv = server(|o| o.code_lifetime = Duration::ZERO).await;
    let verifier = pkce::new_verifier();
    let code = code_for(&srv, &verifier).await;
    let answer = exchange(&srv, &code, &verifier).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_grant");
    assert!(answer.1["error_description"]
        .as_str()
        .unwrap()
        .contains("expired"));
}

#[tokio::test]
async fn code_exchange_checks_client_and_redirect() {
    let srv = server(|o| o.clients.push(ClientSpec::loopback("other"))).await;
    let verifier = pkce::new_verifier();
    let code = code_for(&srv, &verifier).await;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("client_id", DEFAULT_CLIENT_ID),
        ("redirect_uri", "http://127.0.0.1:9/elsewhere"),
        ("code_verifier", verifier.as_str()),
    ];
    let answer = post_form(&srv, "/token", &form).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_grant");

    let code = code_for(&srv, &verifier).await;
    form[1].1 = &code;
    form[2].1 = "other";
    form[3].1 = REDIRECT;
    let answer = post_form(&srv, "/token", &form).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_grant");

    form[2].1 = "nobody";
    let answer = post_form(&srv, "/token", &form).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_client");
}

#[tokio::test]
async fn malformed_token_requests() {
    let srv = server(|_| {}).await;
    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[("grant_type", "password"), ("client_id", "test-client")],
            "unsupported_grant_type",
        ),
        (
            &[
                ("grant_type", "authorization_code"),
                ("client_id", "test-client"),
            ],
            "invalid_request",
        ),
        (&[("client_id", "test-client")], "invalid_request"),
        (
            &[
                ("grant_type", "refresh_token"),
                ("grant_type", "refresh_token"),
            ],
            "invalid_request",
        ),
    ];
    for (form, error) in cases {
        let answer = post_form(&srv, "/token", form).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, error);
    }
    let json_body = srv
        .http_client()
        .post(srv.url("/token"))
        .header("content-type", "application/json")
        .body(r#"{"grant_type":"refresh_token"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        json_body.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
}

#[tokio::test]
async fn authorize_errors_before_the_redirect_uri_is_trusted_are_pages() {
    let srv = server(|_| {}).await;
    let verifier = pkce::new_verifier();
    for changes in [
        [("client_id", Some("nobody"))],
        [("redirect_uri", Some("https://attacker.example/cb"))],
        [("redirect_uri", Some("http://192.0.2.1:8080/cb"))],
        [("redirect_uri", None)],
        [("client_id", None)],
    ] {
        let resp = authorize(&srv, &verifier, &changes).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{changes:?}");
        assert!(resp.headers().get("location").is_none());
    }
    for redirect in ["http://localhost:1234/x", "http://[::1]:5/cb?keep=1"] {
        let resp = authorize(&srv, &verifier, &[("redirect_uri", Some(redirect))]).await;
        assert_eq!(resp.status(), StatusCode::FOUND, "{redirect}");
        let location = resp.headers()["location"].to_str().unwrap();
        assert!(location.starts_with(redirect), "{location}");
    }
}

#[tokio::test]
async fn authorize_errors_after_it_are_redirects() {
    let srv = server(|o| o.scopes_supported = vec!["mcp".into()]).await;
    let verifier = pkce::new_verifier();
    let cases: [(Changes<'_>, &str); 6] = [
        (&[("code_challenge", None)], "invalid_request"),
        (&[("code_challenge_method", None)], "invalid_request"),
        (
            &[("code_challenge_method", Some("plain"))],
            "invalid_request",
        ),
        (&[("code_challenge", Some("too-short"))], "invalid_request"),
        (
            &[("response_type", Some("token"))],
            "unsupported_response_type",
        ),
        (&[("scope", Some("mcp admin"))], "invalid_scope"),
    ];
    for (changes, error) in cases {
        let params = redirect_params(&authorize(&srv, &verifier, changes).await);
        assert_eq!(params["error"], error, "{changes:?}");
        assert_eq!(params["state"], STATE);
        assert_eq!(params["iss"], srv.issuer());
        assert!(params.contains_key("error_description"));
    }
    // Without a scope, all supported scopes are granted.
    let tokens = login(&srv).await;
    assert_eq!(tokens["scope"], "mcp");
}

#[tokio::test]
async fn manual_approval_and_denial() {
    let srv = server(|o| o.auto_approve = false).await;
    let verifier = pkce::new_verifier();
    let page = authorize(&srv, &verifier, &[("scope", Some("/acs/mcp-server"))]).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("/authorize/decision"));
    srv.wait_pending_authorizations(1).await;
    let pending = srv.pending_authorizations();
    assert_eq!(pending[0].scope.as_deref(), Some("/acs/mcp-server"));
    assert_eq!(pending[0].state.as_deref(), Some(STATE));

    let params = url_params(&srv.approve_next().expect("one pending"));
    assert_eq!(params["state"], STATE);
    let (status, tokens) = exchange(&srv, &params["code"], &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["scope"], "/acs/mcp-server");
    assert!(srv.approve_next().is_none());

    authorize(&srv, &verifier, &[]).await;
    let params = url_params(&srv.deny_next().expect("one pending"));
    assert_eq!(params["error"], "access_denied");
    assert_eq!(params["state"], STATE);
    assert!(params.contains_key("error_description"));

    // The page's own form, as a person would use it.
    authorize(&srv, &verifier, &[]).await;
    let challenge = pkce::s256_challenge(&verifier);
    let resp = srv
        .http_client()
        .post(srv.url("/authorize/decision"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[
            ("challenge", &challenge),
            ("decision", "approve"),
        ]))
        .send()
        .await
        .unwrap();
    assert!(redirect_params(&resp).contains_key("code"));

    srv.set_auto_approve(true);
    code_for(&srv, &verifier).await;
}

#[tokio::test]
async fn metadata_documents() {
    let srv = server(|o| o.scopes_supported = vec!["mcp".into()]).await;
    let http = srv.http_client();
    let mut docs = Vec::new();
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let resp = http.get(srv.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        docs.push(resp.json::<Value>().await.unwrap());
    }
    assert_eq!(docs[0], docs[1]);
    let doc = &docs[0];
    let issuer = srv.issuer();
    assert!(issuer.starts_with("https://127.0.0.1:"));
    assert_eq!(doc["issuer"], issuer);
    assert_eq!(doc["authorization_endpoint"], format!("{issuer}/authorize"));
    assert_eq!(doc["token_endpoint"], format!("{issuer}/token"));
    assert_eq!(doc["revocation_endpoint"], format!("{issuer}/revoke"));
    assert_eq!(doc["registration_endpoint"], format!("{issuer}/register"));
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        serde_json::json!(["none"])
    );
    assert_eq!(doc["scopes_supported"], serde_json::json!(["mcp"]));
    let grants = doc["grant_types_supported"].as_array().unwrap();
    assert!(
        grants.contains(&"authorization_code".into()) && grants.contains(&"refresh_token".into())
    );

    let closed = server(|o| o.registration = false).await;
    let doc: Value = closed
        .http_client()
        .get(closed.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc.get("registration_endpoint").is_none());
    let register = closed
        .http_client()
        .post(closed.url("/register"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(register.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn dynamic_client_registration() {
    let srv = server(|_| {}).await;
    let redirect = "http://127.0.0.1:7777/callback";
    let register = |body: Value| {
        let http = srv.http_client();
        let url = srv.url("/register");
        async move {
            let resp = http.post(url).json(&body).send().await.unwrap();
            (resp.status(), resp.json::<Value>().await.unwrap())
        }
    };
    let (status, client) = register(serde_json::json!({
        "client_name": "mcpproxyd",
        "redirect_uris": [redirect],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    }))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{client}");
    assert_eq!(client["client_name"], "mcpproxyd");
    assert_eq!(client["token_endpoint_auth_method"], "none");
    let client_id = field(&client, "client_id");
    assert!(srv.clients().iter().any(|c| c.client_id == client_id));

    let verifier = pkce::new_verifier();
    let ok = authorize(
        &srv,
        &verifier,
        &[
            ("client_id", Some(client_id)),
            ("redirect_uri", Some(redirect)),
        ],
    )
    .await;
    assert!(url_params(ok.headers()["location"].to_str().unwrap()).contains_key("code"));
    // Registered URIs match exactly: another loopback port is refused.
    let other = authorize(&srv, &verifier, &[("client_id", Some(client_id))]).await;
    assert_eq!(other.status(), StatusCode::BAD_REQUEST);

    let (status, err) = register(serde_json::json!({
        "redirect_uris": [redirect], "token_endpoint_auth_method": "client_secret_basic",
    }))
    .await;
    assert_eq!(
        (status, &err["error"]),
        (StatusCode::BAD_REQUEST, &"invalid_client_metadata".into())
    );
    let (status, err) = register(serde_json::json!({ "client_name": "no uris" })).await;
    assert_eq!(
        (status, &err["error"]),
        (StatusCode::BAD_REQUEST, &"invalid_redirect_uri".into())
    );
}

#[tokio::test]
async fn resource_indicator_must_match() {
    let resource = "https://127.0.0.1:1/mcp";
    let srv = server(|o| o.resource = Some(resource.into())).await;
    let verifier = pkce::new_verifier();
    for changes in [
        [("resource", None)],
        [("resource", Some("https://other.invalid/mcp"))],
    ] {
        let params = redirect_params(&authorize(&srv, &verifier, &changes).await);
        assert_eq!(params["error"], "invalid_target");
    }
    let resp = authorize(&srv, &verifier, &[("resource", Some(resource))]).await;
    let code = redirect_params(&resp)["code"].clone();
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("client_id", DEFAULT_CLIENT_ID),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier.as_str()),
        ("resource", "https://other.invalid/mcp"),
    ];
    let wrong = post_form(&srv, "/token", &form).await;
    assert_error(&wrong, StatusCode::BAD_REQUEST, "invalid_target");

    let resp = authorize(&srv, &verifier, &[("resource", Some(resource))]).await;
    let code = redirect_params(&resp)["code"].clone();
    form[1].1 = &code;
    form[5].1 = resource;
    let (status, tokens) = post_form(&srv, "/token", &form).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let refresh_token = field(&tokens, "refresh_token");
    let without = refresh(&srv, refresh_token).await;
    assert_error(&without, StatusCode::BAD_REQUEST, "invalid_target");
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", DEFAULT_CLIENT_ID),
        ("refresh_token", refresh_token),
        ("resource", resource),
    ];
    let (status, body) = post_form(&srv, "/token", &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
