//! Client-credentials profiles whose token endpoint fails, through the real daemon: attempts
//! back off exponentially (never a loop per request), requests meanwhile get a clear JSON error
//! at once, `status` says why and when the next attempt is, and the profile recovers by itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcpproxy_tests::daemon::{proxy_client, write_private, Setup, TestDaemon};
use mcpproxy_tests::oauth::{self, ClientSpec, Fault, OAuthOptions, OAuthServer};
use mcpproxy_tests::oauth_world::*;
use mcpproxy_tests::upstream::ResourceOptions;

const GRANT: &str = "client_credentials";

/// A machine profile for the client `machine`, whose secret file (in the setup returned with
/// the world, to keep) holds `secret`.
async fn machine_world(secret: &str) -> (World, Setup) {
    let opts = OAuthOptions {
        clients: vec![ClientSpec::confidential("machine", "machine-secret")],
        auth_methods: vec!["client_secret_basic".into()],
        ..Default::default()
    };
    let auth = Arc::new(oauth::start(opts).await.unwrap());
    let setup = Setup::new().unwrap();
    let secret_file = setup.path("client-secret");
    write_private(&secret_file, &format!("{secret}\n")).unwrap();
    let extra = format!(
        "grant = \"client_credentials\"\nissuer = {:?}\nclient_secret_file = {secret_file:?}",
        auth.issuer()
    );
    let mut w = world_on(auth, true, &extra, ResourceOptions::default(), "").await;
    w.config = rewrite_client(&w.config, "machine");
    (w, setup)
}

/// A proxied request while the profile has no token: a 503 with a JSON error at once.
async fn refused_at_once(d: &TestDaemon) -> String {
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        proxy_client().get(d.url("/raw/echo")).send(),
    )
    .await
    .expect("a request during the backoff hung")
    .unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "token_unavailable", "{body}");
    body["error"]["message"].as_str().unwrap().to_string()
}

/// Sends requests (one every 50 ms) until the server has seen `n` token requests; each must be
/// refused at once. Returns how many were sent.
async fn requests_until_attempts(w: &World, d: &TestDaemon, n: usize) -> usize {
    let reached = w.auth.wait_token_requests(GRANT, n);
    tokio::pin!(reached);
    let mut pace = tokio::time::interval(Duration::from_millis(50));
    let mut sent = 0;
    let deadline = tokio::time::sleep(Duration::from_secs(40));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut reached => return sent,
            () = &mut deadline => panic!("{n} token requests never came: the backoff stalled"),
            _ = pace.tick() => {
                refused_at_once(d).await;
                sent += 1;
            }
        }
    }
}

/// The waits between the token requests seen so far.
fn gaps(auth: &OAuthServer) -> Vec<Duration> {
    let times: Vec<Instant> = auth.token_request_times(GRANT);
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

/// Each wait is at least the backoff (1 s, 2 s, 4 s ...), less a margin for the request's own
/// trip: had a request led to an attempt, two would be milliseconds apart.
fn assert_backed_off(gaps: &[Duration]) {
    for (k, gap) in gaps.iter().enumerate() {
        let least = Duration::from_secs(1 << k) - Duration::from_millis(100);
        assert!(*gap >= least, "wait {k} was {gap:?}: {gaps:?}");
    }
}

#[tokio::test]
async fn a_failing_token_endpoint_is_retried_with_backoff_and_requests_get_an_error_meanwhile() {
    let (w, _secrets) = machine_world("machine-secret").await;
    w.auth.set_fault(Fault::ServerError);
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    let message = refused_at_once(&d).await;
    assert!(message.contains("client credentials"), "{message}");
    assert!(message.contains("temporarily_unavailable"), "{message}");

    let sent = requests_until_attempts(&w, &d, 3).await;
    assert!(sent >= 20, "only {sent} requests in the window");
    assert_eq!(
        w.auth.token_requests(GRANT),
        3,
        "{sent} requests during the backoff"
    );
    assert_backed_off(&gaps(&w.auth));
    let p = status(&d).await;
    assert!(
        p["last_error"]
            .as_str()
            .unwrap()
            .contains("temporarily_unavailable"),
        "status shows the last error: {p}"
    );
    assert!(p["refresh_at"].as_u64().is_some(), "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains("next attempt in"),
        "{p}"
    );

    // The server comes back: the next planned attempt gets a token, with no request waiting.
    w.auth.set_fault(Fault::None);
    w.auth.wait_token_requests(GRANT, 4).await;
    assert_backed_off(&gaps(&w.auth));
    mcpproxy_tests::wait::until("the profile is valid again", || async {
        status(&d).await["state"] == "valid"
    })
    .await
    .unwrap();
    let r = proxy_client().get(d.url("/raw/echo")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(w.auth.token_requests(GRANT), 4);
    assert!(!d.logs().contains("machine-secret"));
}

#[tokio::test]
async fn a_refused_client_backs_off_too_instead_of_asking_for_a_login() {
    let (w, _secrets) = machine_world("not-the-secret").await;
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    let message = refused_at_once(&d).await;
    assert!(message.contains("invalid_client"), "{message}");
    assert!(!message.contains("not-the-secret"), "{message}");
    // The next one is answered from the backoff, without a token request.
    let message = refused_at_once(&d).await;
    assert!(message.contains("next attempt in"), "{message}");
    assert_eq!(w.auth.token_requests(GRANT), 1);
    requests_until_attempts(&w, &d, 3).await;
    assert_eq!(w.auth.token_requests(GRANT), 3);
    assert_backed_off(&gaps(&w.auth));
    let p = status(&d).await;
    assert_eq!(p["state"], "logged_out", "{p}");
    assert!(
        p["last_error"].as_str().unwrap().contains("invalid_client"),
        "{p}"
    );
    assert!(!d.logs().contains("not-the-secret"));
}
