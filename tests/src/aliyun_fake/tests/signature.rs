//! The fake's verifier is real: what the daemon signs correctly passes, anything else fails.

use std::time::SystemTime;

use mcpproxyd::alibaba::api::ApiError;
use mcpproxyd::alibaba::sign;
use reqwest::StatusCode;

use super::*;

fn code(err: &ApiError) -> (Option<u16>, Option<&str>) {
    (err.status(), err.code())
}

#[tokio::test]
async fn a_correctly_signed_request_passes() {
    let fake = fake(|_| {}).await;
    let apps = ims(&fake, daemon_key(&fake))
        .list_applications()
        .await
        .unwrap();
    assert!(apps.is_empty());
    let recorded = &fake.requests()[0];
    assert_eq!(
        (
            recorded.method.as_str(),
            recorded.path.as_str(),
            recorded.status
        ),
        ("POST", "/", 200)
    );
    assert!(recorded.signature_ok());
}

#[tokio::test]
async fn a_wrong_secret_is_refused() {
    let fake = fake(|_| {}).await;
    let wrong = key_of(DEFAULT_ACCESS_KEY_ID, "not-the-secret", None);
    let err = ims(&fake, wrong).list_applications().await.unwrap_err();
    assert_eq!(
        code(&err),
        (Some(400), Some("SignatureDoesNotMatch")),
        "{err}"
    );
    assert!(!fake.requests()[0].signature_ok());
    // The message carries the service's code and message, never the secret.
    let text = err.to_string();
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");
    assert!(!text.contains("not-the-secret") && !text.contains(DEFAULT_ACCESS_KEY_SECRET));
}

#[tokio::test]
async fn an_unknown_access_key_is_refused() {
    let fake = fake(|_| {}).await;
    let other = key_of("LTAIsomeoneelse", DEFAULT_ACCESS_KEY_SECRET, None);
    let err = ims(&fake, other).list_applications().await.unwrap_err();
    assert_eq!(code(&err), (Some(404), Some("InvalidAccessKeyId.NotFound")));
}

#[tokio::test]
async fn the_security_token_must_match() {
    let fake = fake(|o| o.key.security_token = Some("sts-token".into())).await;
    let with = key_of(
        DEFAULT_ACCESS_KEY_ID,
        DEFAULT_ACCESS_KEY_SECRET,
        Some("sts-token"),
    );
    ims(&fake, with).list_applications().await.unwrap();
    let without = key_of(DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, None);
    let err = ims(&fake, without).list_applications().await.unwrap_err();
    assert_eq!(code(&err).1, Some("InvalidSecurityToken.Mismatch"));
}

/// A request signed by the daemon's signer, sent by hand with `sent_query` instead of the
/// signed query, and with `nonce`.
async fn send_signed(
    fake: &AliyunFake,
    signed_query: &[(String, String)],
    sent_query: &[(String, String)],
    nonce: &str,
) -> (StatusCode, serde_json::Value) {
    let host = fake.addr().to_string();
    let date = sign::acs_date(SystemTime::now());
    let request = sign::Request {
        method: "POST",
        host: &host,
        path: "/",
        query: signed_query,
        headers: &[],
        body: b"",
        action: "ListApplications",
        version: "2019-08-15",
        date: &date,
        nonce,
    };
    let headers = sign::sign(&request, &daemon_key(fake));
    let url = format!("{}/?{}", fake.url(), sign::canonical_query(sent_query));
    let mut req = fake.http_client().post(url);
    for (name, value) in &headers {
        req = req.header(name.as_str(), value.as_str());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn a_changed_query_breaks_the_signature() {
    let fake = fake(|_| {}).await;
    let signed = vec![("AppId".to_string(), "1".to_string())];
    let (status, body) = send_signed(&fake, &signed, &signed, &sign::new_nonce()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sent = vec![("AppId".to_string(), "2".to_string())];
    let (status, body) = send_signed(&fake, &signed, &sent, &sign::new_nonce()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["Code"], "SignatureDoesNotMatch");
    assert!(body["RequestId"].is_string());
}

#[tokio::test]
async fn a_replayed_nonce_is_refused() {
    let fake = fake(|_| {}).await;
    let nonce = sign::new_nonce();
    let (first, _) = send_signed(&fake, &[], &[], &nonce).await;
    assert_eq!(first, StatusCode::OK);
    let (again, body) = send_signed(&fake, &[], &[], &nonce).await;
    assert_eq!(again, StatusCode::BAD_REQUEST);
    assert_eq!(body["Code"], "SignatureNonceUsed");
}

#[tokio::test]
async fn unsigned_requests_are_refused() {
    let fake = fake(|_| {}).await;
    let resp = fake
        .http_client()
        .post(format!("{}/", fake.url()))
        .header("x-acs-action", "ListApplications")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["Code"], "MissingAuthorization");
}
