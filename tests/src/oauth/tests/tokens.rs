//! Refresh rotation and reuse detection, revocation, lifetimes, introspection, faults.

use super::*;

#[tokio::test]
async fn refresh_rotates_the_refresh_token() {
    let srv = server(|_| {}).await;
    let first = login(&srv).await;
    let old = field(&first, "refresh_token");
    let (status, second) = refresh(&srv, old).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let new = field(&second, "refresh_token");
    assert_ne!(new, old);
    assert_ne!(
        field(&second, "access_token"),
        field(&first, "access_token")
    );
    assert_eq!(second["refresh_expires_in"], 30 * 24 * 3600);
    assert!(!srv.is_active(old));
    assert!(srv.is_active(new));
    // The access token of the first grant stays valid until it expires.
    assert!(srv.is_active(field(&first, "access_token")));
    let (status, third) = refresh(&srv, new).await;
    assert_eq!(status, StatusCode::OK, "{third}");
    assert_eq!(srv.token_requests("refresh_token"), 2);
}

#[tokio::test]
async fn reuse_of_a_rotated_refresh_token_revokes_the_family() {
    let srv = server(|_| {}).await;
    let first = login(&srv).await;
    let old = field(&first, "refresh_token");
    let (_, second) = refresh(&srv, old).await;
    let current = field(&second, "refresh_token");
    let access = field(&second, "access_token");

    let reuse = refresh(&srv, old).await;
    assert_error(&reuse, StatusCode::BAD_REQUEST, "invalid_grant");
    for token in [current, access, field(&first, "access_token")] {
        assert!(!srv.is_active(token), "{token} still active");
        assert!(
            srv.revoked().iter().any(|t| t == token),
            "{token} not revoked"
        );
    }
    assert_error(
        &refresh(&srv, current).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );

    // Another login is a new family, untouched.
    let other = login(&srv).await;
    assert!(srv.is_active(field(&other, "refresh_token")));
}

#[tokio::test]
async fn refresh_scope_may_narrow_but_not_widen() {
    let srv = server(|o| o.scopes_supported = vec!["read".into(), "write".into()]).await;
    let tokens = login(&srv).await;
    assert_eq!(tokens["scope"], "read write");
    let rt = field(&tokens, "refresh_token");
    let form = |scope| {
        [
            ("grant_type", "refresh_token"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("refresh_token", rt),
            ("scope", scope),
        ]
    };
    let wider = post_form(&srv, "/token", &form("read admin")).await;
    assert_error(&wider, StatusCode::BAD_REQUEST, "invalid_scope");
    let (status, narrow) = post_form(&srv, "/token", &form("read")).await;
    assert_eq!(status, StatusCode::OK, "{narrow}");
    assert_eq!(narrow["scope"], "read");
}

#[tokio::test]
async fn without_rotation_or_refresh_tokens() {
    let srv = server(|o| o.rotate_refresh = false).await;
    let tokens = login(&srv).await;
    let rt = field(&tokens, "refresh_token");
    for _ in 0..2 {
        let (status, body) = refresh(&srv, rt).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.get("refresh_token").is_none(), "{body}");
        assert!(body.get("refresh_expires_in").is_none(), "{body}");
    }

    let srv = server(|o| o.issue_refresh_token = false).await;
    let tokens = login(&srv).await;
    assert!(tokens.get("refresh_token").is_none(), "{tokens}");
    assert!(tokens.get("refresh_expires_in").is_none(), "{tokens}");
}

#[tokio::test]
async fn lifetimes_are_reported_and_honoured() {
    let srv = server(|o| o.refresh_lifetime = Some(Duration::from_secs(1))).await;
    srv.set_access_lifetime(Duration::from_secs(1));
    let tokens = login(&srv).await;
    assert_eq!(tokens["expires_in"], 1);
    assert_eq!(tokens["refresh_expires_in"], 1);

    srv.set_access_lifetime(Duration::ZERO);
    let tokens = login(&srv).await;
    assert_eq!(tokens["expires_in"], 0);
    assert!(!srv.is_active(field(&tokens, "access_token")));

    let srv = server(|o| o.refresh_lifetime = Some(Duration::ZERO)).await;
    let tokens = login(&srv).await;
    let expired = refresh(&srv, field(&tokens, "refresh_token")).await;
    assert_error(&expired, StatusCode::BAD_REQUEST, "invalid_grant");

    let srv = server(|o| o.refresh_lifetime = None).await;
    let tokens = login(&srv).await;
    assert!(tokens.get("refresh_expires_in").is_none(), "{tokens}");
    assert!(tokens["refresh_token"].is_string());
}

#[tokio::test]
async fn revocation() {
    let srv = server(|_| {}).await;
    let tokens = login(&srv).await;
    let access = field(&tokens, "access_token");
    let rt = field(&tokens, "refresh_token");

    let (status, _) = post_form(
        &srv,
        "/revoke",
        &[("token", access), ("token_type_hint", "access_token")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!srv.is_active(access));
    assert_eq!(srv.revoked(), vec![access.to_owned()]);
    // Revoking an access token leaves its refresh token alone.
    let (status, renewed) = refresh(&srv, rt).await;
    assert_eq!(status, StatusCode::OK, "{renewed}");

    let rt = field(&renewed, "refresh_token");
    let (status, _) = post_form(
        &srv,
        "/revoke",
        &[("token", rt), ("client_id", DEFAULT_CLIENT_ID)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!srv.is_active(rt));
    assert!(!srv.is_active(field(&renewed, "access_token")));
    assert_error(
        &refresh(&srv, rt).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );

    let (status, _) = post_form(&srv, "/revoke", &[("token", "rt_never_issued")]).await;
    assert_eq!(status, StatusCode::OK);
    let missing = post_form(&srv, "/revoke", &[("token_type_hint", "access_token")]).await;
    assert_error(&missing, StatusCode::BAD_REQUEST, "invalid_request");
    let hint = post_form(
        &srv,
        "/revoke",
        &[("token", "x"), ("token_type_hint", "id_token")],
    )
    .await;
    assert_error(&hint, StatusCode::BAD_REQUEST, "unsupported_token_type");
}

#[tokio::test]
async fn introspection() {
    let srv = server(|_| {}).await;
    let tokens = login(&srv).await;
    let access = field(&tokens, "access_token");
    let (status, body) = post_form(&srv, "/introspect", &[("token", access)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], DEFAULT_CLIENT_ID);
    post_form(&srv, "/revoke", &[("token", access)]).await;
    let (_, body) = post_form(&srv, "/introspect", &[("token", access)]).await;
    assert_eq!(body, serde_json::json!({ "active": false }));
    let (_, body) = post_form(&srv, "/introspect", &[("token", "nonsense")]).await;
    assert_eq!(body, serde_json::json!({ "active": false }));
}

#[tokio::test]
async fn invalid_grant_fault_fails_refresh_grants_only() {
    let srv = server(|_| {}).await;
    srv.set_fault(Fault::InvalidGrant);
    let tokens = login(&srv).await;
    let rt = field(&tokens, "refresh_token");
    assert_error(
        &refresh(&srv, rt).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    // The fault revokes nothing: once lifted, the same refresh token works.
    assert!(srv.is_active(rt));
    srv.set_fault(Fault::None);
    let (status, body) = refresh(&srv, rt).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn server_error_fault_answers_503() {
    let srv = server(|_| {}).await;
    let tokens = login(&srv).await;
    let rt = field(&tokens, "refresh_token");
    srv.set_fault(Fault::ServerError);
    for answer in [
        refresh(&srv, rt).await,
        post_form(&srv, "/revoke", &[("token", rt)]).await,
    ] {
        assert_error(
            &answer,
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
        );
    }
    // Metadata is not affected, and nothing changed behind the 503s.
    let meta = srv
        .http_client()
        .get(srv.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    assert_eq!(meta.status(), StatusCode::OK);
    assert!(srv.is_active(rt));
    assert_eq!(srv.token_requests("refresh_token"), 1);
}

#[tokio::test]
async fn down_fault_drops_the_connection() {
    let srv = server(|_| {}).await;
    let tokens = login(&srv).await;
    let rt = field(&tokens, "refresh_token");
    srv.set_fault(Fault::Down);
    let form = encode(&[
        ("grant_type", "refresh_token"),
        ("client_id", DEFAULT_CLIENT_ID),
        ("refresh_token", rt),
    ]);
    // Over HTTP/2 (what reqwest negotiates) and HTTP/1.1 alike.
    let mut http1 = srv.ca().client_config();
    http1.alpn_protocols = vec![b"http/1.1".to_vec()];
    for http in [srv.http_client(), crate::tls::reqwest_client(http1)] {
        let sent = http
            .post(srv.url("/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.clone())
            .send()
            .await;
        let err = sent.expect_err("no answer while down");
        assert!(!err.is_status(), "{err:?}");
    }
    srv.wait_token_requests("refresh_token", 2).await;
    assert!(srv.is_active(rt));
    srv.set_fault(Fault::None);
    assert_eq!(refresh(&srv, rt).await.0, StatusCode::OK);
}

#[tokio::test]
async fn slow_fault_delays_token_answers() {
    let srv = server(|_| {}).await;
    let tokens = login(&srv).await;
    let rt = field(&tokens, "refresh_token").to_owned();
    srv.set_fault(Fault::Slow(Duration::from_secs(600)));
    let http = srv.http_client();
    let url = srv.url("/token");
    let body = encode(&[
        ("grant_type", "refresh_token"),
        ("client_id", DEFAULT_CLIENT_ID),
        ("refresh_token", &rt),
    ]);
    let pending = tokio::spawn(async move {
        http.post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
    });
    srv.wait_token_requests("refresh_token", 1).await;
    assert!(!pending.is_finished());
    // The delay comes before the grant is handled: nothing rotated yet.
    assert!(srv.is_active(&rt));
    pending.abort();
    srv.set_fault(Fault::None);
    assert_eq!(refresh(&srv, &rt).await.0, StatusCode::OK);
}

#[tokio::test]
async fn wait_token_requests_wakes_on_arrival() {
    let srv = std::sync::Arc::new(server(|_| {}).await);
    let waiter = {
        let srv = srv.clone();
        tokio::spawn(async move { srv.wait_token_requests("authorization_code", 2).await })
    };
    login(&srv).await;
    login(&srv).await;
    waiter.await.unwrap();
    assert_eq!(srv.token_requests("authorization_code"), 2);
}
