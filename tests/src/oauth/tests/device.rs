//! The device flow switch: advertised only when on; a client that polls too fast is told
//! `slow_down` and seen doing it; codes belong to their client.

use super::*;
use crate::oauth::device::{DeviceOptions, GRANT_TYPE};

async fn device_server() -> OAuthServer {
    server(|o| o.device = Some(DeviceOptions::default())).await
}

async fn metadata(srv: &OAuthServer) -> Value {
    let resp = srv
        .http_client()
        .get(srv.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .expect("metadata request");
    resp.json().await.expect("metadata is JSON")
}

async fn poll(srv: &OAuthServer, device_code: &str) -> (StatusCode, Value) {
    post_form(
        srv,
        "/token",
        &[
            ("grant_type", GRANT_TYPE),
            ("client_id", DEFAULT_CLIENT_ID),
            ("device_code", device_code),
        ],
    )
    .await
}

#[tokio::test]
async fn the_device_endpoint_exists_only_behind_its_switch() {
    let off = server(|_| {}).await;
    let meta = metadata(&off).await;
    assert!(
        meta.get("device_authorization_endpoint").is_none(),
        "{meta}"
    );
    let (status, _) = post_form(
        &off,
        "/device_authorization",
        &[("client_id", DEFAULT_CLIENT_ID)],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = poll(&off, "dc_x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unsupported_grant_type");

    let on = device_server().await;
    let meta = metadata(&on).await;
    assert_eq!(
        meta["device_authorization_endpoint"],
        on.url("/device_authorization")
    );
}

#[tokio::test]
async fn a_poll_sooner_than_the_interval_is_told_to_slow_down() {
    let srv = device_server().await;
    let (status, a) = post_form(
        &srv,
        "/device_authorization",
        &[("client_id", DEFAULT_CLIENT_ID), ("scope", "mcp")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(a["interval"], 1);
    assert_eq!(a["expires_in"], 600);
    let user_code = a["user_code"].as_str().unwrap();
    assert!(a["verification_uri_complete"]
        .as_str()
        .unwrap()
        .ends_with(user_code));
    let device_code = a["device_code"].as_str().unwrap();
    // At once: far sooner than 1 s after the code was issued.
    let (_, body) = poll(&srv, device_code).await;
    assert_eq!(body["error"], "slow_down", "{body}");
    let seen = &srv.device_authorizations()[0];
    assert!(seen.polls[0].since_last < seen.polls[0].required);
    assert_eq!(seen.interval, Duration::from_secs(6));
    // Still too fast, even once approved: the pace is checked before the decision.
    assert!(srv.approve_device(user_code));
    let (_, body) = poll(&srv, device_code).await;
    assert_eq!(body["error"], "slow_down", "{body}");
    assert!(
        !srv.deny_device(user_code),
        "only pending codes can be decided"
    );
}

#[tokio::test]
async fn unknown_codes_and_other_clients_are_refused() {
    let srv = server(|o| {
        o.device = Some(DeviceOptions::default());
        o.clients.push(ClientSpec::loopback("other"));
    })
    .await;
    let (_, a) = post_form(
        &srv,
        "/device_authorization",
        &[("client_id", DEFAULT_CLIENT_ID)],
    )
    .await;
    let (_, body) = poll(&srv, "dc_unknown").await;
    assert_eq!(body["error"], "invalid_grant");
    let (_, body) = post_form(
        &srv,
        "/token",
        &[
            ("grant_type", GRANT_TYPE),
            ("client_id", "other"),
            ("device_code", a["device_code"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(body["error"], "invalid_grant");
    let (status, body) = post_form(&srv, "/device_authorization", &[("client_id", "nobody")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_client");
}
