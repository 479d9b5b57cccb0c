//! The test authorization server against a real reqwest client over loopback HTTPS.

mod device;
mod flow;
mod tokens;

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::Value;

use super::*;

/// The redirect URI tests use; nothing listens there, the client never follows it.
const REDIRECT: &str = "http://127.0.0.1:9/callback";
const STATE: &str = "state-123";

/// Changes to a standard authorization request: `Some` sets a parameter, `None` removes it.
type Changes<'a> = &'a [(&'a str, Option<&'a str>)];

/// A server with `change` applied to the default options.
async fn server(change: impl FnOnce(&mut OAuthOptions)) -> OAuthServer {
    let mut opts = OAuthOptions::default();
    change(&mut opts);
    start(opts)
        .await
        .expect("start the test authorization server")
}

/// Query of a standard authorization request for `verifier`, with `changes` applied.
fn authorize_query(verifier: &str, changes: Changes<'_>) -> String {
    let challenge = pkce::s256_challenge(verifier);
    let mut params: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", DEFAULT_CLIENT_ID),
        ("redirect_uri", REDIRECT),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        ("state", STATE),
    ];
    for (name, value) in changes {
        params.retain(|(n, _)| n != name);
        if let Some(value) = value {
            params.push((name, value));
        }
    }
    encode(&params)
}

fn encode(params: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

/// `GET /authorize` with [`authorize_query`].
async fn authorize(srv: &OAuthServer, verifier: &str, changes: Changes<'_>) -> reqwest::Response {
    let query = authorize_query(verifier, changes);
    srv.http_client()
        .get(srv.url(&format!("/authorize?{query}")))
        .send()
        .await
        .expect("authorize request")
}

/// The query parameters of a redirect URL.
fn url_params(location: &str) -> HashMap<String, String> {
    let url = url::Url::parse(location).expect("redirect URL parses");
    url.query_pairs().into_owned().collect()
}

/// The query parameters of a 302's `Location`, checked to go back to [`REDIRECT`].
fn redirect_params(resp: &reqwest::Response) -> HashMap<String, String> {
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location = resp.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    url_params(location)
}

/// Authorizes with auto-approval and returns the code.
async fn code_for(srv: &OAuthServer, verifier: &str) -> String {
    let resp = authorize(srv, verifier, &[]).await;
    let params = redirect_params(&resp);
    assert_eq!(params["state"], STATE);
    assert_eq!(params["iss"], srv.issuer());
    params["code"].clone()
}

/// POSTs `form` to `path`: the status and the JSON body (`Null` when empty).
async fn post_form(srv: &OAuthServer, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let resp = srv
        .http_client()
        .post(srv.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(form))
        .send()
        .await
        .expect("form POST");
    let status = resp.status();
    let body = resp.bytes().await.expect("response body");
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, value)
}

/// The `authorization_code` grant for `code` and `verifier`.
async fn exchange(srv: &OAuthServer, code: &str, verifier: &str) -> (StatusCode, Value) {
    post_form(
        srv,
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", DEFAULT_CLIENT_ID),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await
}

/// The `refresh_token` grant.
async fn refresh(srv: &OAuthServer, refresh_token: &str) -> (StatusCode, Value) {
    post_form(
        srv,
        "/token",
        &[
            ("grant_type", "refresh_token"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// A full login: the token response, checked to be a success.
async fn login(srv: &OAuthServer) -> Value {
    let verifier = pkce::new_verifier();
    let code = code_for(srv, &verifier).await;
    let (status, tokens) = exchange(srv, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    tokens
}

/// A string field of a JSON body.
fn field<'a>(body: &'a Value, name: &str) -> &'a str {
    body[name]
        .as_str()
        .unwrap_or_else(|| panic!("no string {name} in {body}"))
}

/// Asserts an RFC 6749 §5.2 error answer.
fn assert_error(answer: &(StatusCode, Value), status: StatusCode, error: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["error"], error, "{}", answer.1);
    assert!(answer.1["error_description"].is_string(), "{}", answer.1);
}
