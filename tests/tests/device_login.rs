//! `mcpproxyctl login --device` end to end (RFC 8628): the real daemon and the real ctl, the
//! test authorization server with its device flow switched on (interval 1 s, so the tests stay
//! short; the daemon honours whatever the server says) and the test MCP upstream that accepts
//! exactly the tokens the authorization server says are active. The test plays the user who
//! approves, denies or lets the code expire, and watches the pace of the daemon's polls in the
//! server's records instead of timing anything itself.

use std::process::Stdio;
use std::time::Duration;

use mcpproxy_tests::admin::get_json;
use mcpproxy_tests::daemon::{bin_path, proxy_client, TestDaemon, WAIT};
use mcpproxy_tests::mcp_client::McpClient;
use mcpproxy_tests::oauth::device::{DeviceAuthorization, DeviceOptions};
use mcpproxy_tests::oauth::OAuthOptions;
use mcpproxy_tests::oauth_world::{world, World};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStderr};

/// A world whose authorization server offers the device flow with `device`.
async fn device_world(device: DeviceOptions, change: impl FnOnce(&mut OAuthOptions)) -> World {
    let mut opts = OAuthOptions {
        device: Some(device),
        ..OAuthOptions::default()
    };
    change(&mut opts);
    world(opts, true, "").await
}

/// A running `mcpproxyctl login …`, its stderr read line by line as it comes.
struct Ctl {
    child: Child,
    stderr: BufReader<ChildStderr>,
    seen: String,
}

impl Ctl {
    fn start(d: &TestDaemon, args: &[&str]) -> Ctl {
        let mut child = tokio::process::Command::new(bin_path("mcpproxyctl"))
            .arg("--socket")
            .arg(d.admin_socket())
            .arg("login")
            .args(args)
            .env_remove("BROWSER")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("mcpproxyctl runs");
        let stderr = BufReader::new(child.stderr.take().unwrap());
        Ctl {
            child,
            stderr,
            seen: String::new(),
        }
    }

    /// Reads stderr until a line holds `needle`; everything read so far.
    async fn until(&mut self, needle: &str) -> &str {
        let read = async {
            while !self.seen.contains(needle) {
                let mut line = String::new();
                let n = self.stderr.read_line(&mut line).await.unwrap();
                assert!(n > 0, "ctl ended before saying {needle:?}:\n{}", self.seen);
                self.seen.push_str(&line);
            }
        };
        tokio::time::timeout(WAIT, read)
            .await
            .unwrap_or_else(|_| panic!("ctl did not say {needle:?} in time:\n{}", self.seen));
        &self.seen
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().unwrap().to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the exit: (code, stdout, all of stderr).
    async fn finish(self) -> (i32, String, String) {
        self.finish_or(String::new).await
    }

    /// [`Ctl::finish`]; if ctl does not exit in time, the panic says `why()` too.
    async fn finish_or(mut self, why: impl FnOnce() -> String) -> (i32, String, String) {
        let mut out = String::new();
        let mut rest = String::new();
        let mut stdout = self.child.stdout.take().unwrap();
        let done = async {
            stdout.read_to_string(&mut out).await.unwrap();
            self.stderr.read_to_string(&mut rest).await.unwrap();
            self.child.wait().await.unwrap()
        };
        let Ok(status) = tokio::time::timeout(WAIT, done).await else {
            panic!("ctl did not exit in time; {}", why());
        };
        self.seen.push_str(&rest);
        (status.code().unwrap_or(-1), out, self.seen)
    }
}

/// The one device authorization the server handed out.
fn the_authorization(w: &World) -> DeviceAuthorization {
    let all = w.auth.device_authorizations();
    assert_eq!(all.len(), 1, "{all:?}");
    all[0].clone()
}

/// Every poll came no sooner than the interval in force then (the server's own clock).
fn assert_paced(a: &DeviceAuthorization) {
    for p in &a.polls {
        assert!(
            p.since_last >= p.required,
            "a poll came {:?} after the last, the interval was {:?}: {:?}",
            p.since_last,
            p.required,
            a.polls
        );
    }
}

fn assert_no_secret_in(w: &World, text: &str) {
    let secrets = w.auth.issued_tokens();
    assert!(secrets.iter().any(|s| s.starts_with("dc_")));
    for secret in secrets {
        assert!(
            !text.contains(&secret),
            "a device code, token or verifier got out"
        );
    }
}

#[tokio::test]
async fn device_login_honours_slow_down_and_then_tool_calls_carry_the_token() {
    // Pending, then slow_down, then (approved meanwhile) tokens. offline_access is asked for
    // where listed, so a refresh token comes too.
    let device = DeviceOptions {
        slow_down_polls: vec![2],
        ..DeviceOptions::default()
    };
    let w = device_world(device, |o| {
        o.scopes_supported = vec!["mcp".into(), "offline_access".into()];
        o.refresh_needs_offline_access = true;
    })
    .await;
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    let mut ctl = Ctl::start(&d, &["--device"]);
    let shown = ctl.until("Ctrl-C").await.to_string();
    let a = the_authorization(&w);
    assert!(shown.contains(&format!("\n  {}\n", a.user_code)), "{shown}");
    assert!(
        shown.contains(&format!("\n  {}/device\n", w.auth.issuer())),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("/device?user_code={}", a.user_code)),
        "{shown}"
    );
    assert_eq!(a.client_id, "test-client");
    // Scopes as the code flow picks them: the resource names none, offline_access is listed.
    assert_eq!(a.scope.as_deref(), Some("offline_access"));
    assert_eq!(a.resource.as_deref(), Some(w.up.base_url()));

    w.auth.wait_device_polls(&a.user_code, 2).await;
    assert!(w.auth.approve_device(&a.user_code));
    // A daemon that ignored slow_down would be told slow_down at every poll, for ever.
    let polls = || format!("the server saw {:?}", the_authorization(&w).polls);
    let (code, out, err) = ctl.finish_or(polls).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("OAuth login successful!"), "{out}");

    let a = the_authorization(&w);
    let answers: Vec<_> = a.polls.iter().map(|p| p.answer).collect();
    assert_eq!(
        answers,
        ["authorization_pending", "slow_down", "tokens"],
        "{a:?}"
    );
    assert_paced(&a);
    // After slow_down the daemon waited the 1 s interval plus 5 s.
    assert_eq!(a.polls[2].required, Duration::from_secs(6));

    // Stored like a code-flow login: valid, with a refresh token, and used for tool calls.
    let (_, s) = get_json(&d.admin_socket(), "/v1/status").await.unwrap();
    assert_eq!(s["profiles"][0]["state"], "valid", "{s}");
    let mut client = McpClient::new(proxy_client(), d.url("/accounts/1/custom/ecs/id/E1/mcp"));
    client.initialize().await.unwrap();
    let echo = client
        .call_tool("echo", json!({"text": "device"}))
        .await
        .unwrap();
    assert_eq!(echo["result"]["content"][0]["text"], "device", "{echo}");
    let issued = w.auth.issued_tokens();
    let access = issued.iter().rfind(|t| t.starts_with("at_")).unwrap();
    assert!(issued.iter().any(|t| t.starts_with("rt_")));
    let last = w.up.requests().into_iter().last().unwrap();
    assert_eq!(
        last.header("authorization"),
        Some(format!("Bearer {access}").as_str())
    );
    assert_no_secret_in(&w, &d.logs());
    assert_no_secret_in(&w, &format!("{out}{err}"));
}

#[tokio::test]
async fn a_denied_device_login_fails_with_a_clear_error() {
    let w = device_world(DeviceOptions::default(), |_| {}).await;
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    let mut ctl = Ctl::start(&d, &["--device"]);
    ctl.until("Ctrl-C").await;
    let a = the_authorization(&w);
    w.auth.wait_device_polls(&a.user_code, 1).await;
    assert!(w.auth.deny_device(&a.user_code));
    let (code, out, err) = ctl.finish().await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("denied at the authorization server"), "{err}");
    let a = the_authorization(&w);
    assert_eq!(a.polls.last().unwrap().answer, "access_denied");
    assert_paced(&a);
    // Nothing stored: requests still need a login.
    let r = proxy_client().get(d.url("/raw/echo")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_no_secret_in(&w, &d.logs());
}

#[tokio::test]
async fn an_expired_device_code_fails_and_says_to_start_again() {
    let w = device_world(DeviceOptions::default(), |_| {}).await;
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    let mut ctl = Ctl::start(&d, &["--device", "--json"]);
    ctl.until("Ctrl-C").await;
    let a = the_authorization(&w);
    w.auth.wait_device_polls(&a.user_code, 1).await;
    assert!(w.auth.expire_device(&a.user_code));
    let (code, out, err) = ctl.finish().await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("expired before the login was approved"),
        "{err}"
    );
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["status"], "expired", "{status}");
    assert_eq!(
        the_authorization(&w).polls.last().unwrap().answer,
        "expired_token"
    );
    assert_no_secret_in(&w, &d.logs());
}

#[tokio::test]
async fn the_deadline_of_a_short_lived_code_ends_the_login() {
    // The daemon stops by itself at expires_in: no poll is sent past it.
    let device = DeviceOptions {
        lifetime: Duration::from_secs(2),
        ..DeviceOptions::default()
    };
    let w = device_world(device, |_| {}).await;
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    let (code, out, err) = Ctl::start(&d, &["--device"]).finish().await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("expired"), "{err}");
    let a = the_authorization(&w);
    assert!(!a.polls.is_empty() && a.polls.len() <= 2, "{a:?}");
    assert!(a.polls.iter().all(|p| p.answer == "authorization_pending"));
}

#[tokio::test]
async fn ctrl_c_cancels_the_device_login_in_the_daemon() {
    let w = device_world(DeviceOptions::default(), |_| {}).await;
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    let mut ctl = Ctl::start(&d, &["--device"]);
    ctl.until("Ctrl-C").await;
    let a = the_authorization(&w);
    w.auth.wait_device_polls(&a.user_code, 1).await;
    ctl.signal("INT");
    let (code, out, err) = ctl.finish().await;
    assert_eq!(code, 130, "{out}{err}");
    assert!(err.contains("login cancelled"), "{err}");
    let line = d
        .wait_for_line(|l| l.contains("device login cancelled"))
        .await
        .unwrap();
    // The daemon reports the login as failed; nothing was stored.
    let id = line
        .split("login=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .trim_matches('"')
        .to_string();
    let (_, s) = get_json(&d.admin_socket(), &format!("/v1/login/{id}"))
        .await
        .unwrap();
    assert_eq!(s["status"], "failed", "{s}");
    assert!(s["message"].as_str().unwrap().contains("cancelled"), "{s}");
    let r = proxy_client().get(d.url("/raw/echo")).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn without_a_device_endpoint_the_error_names_the_paste_flow() {
    let w = world(OAuthOptions::default(), true, "").await;
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    let (code, out, err) = Ctl::start(&d, &["--device"]).finish().await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("device_authorization_endpoint"), "{err}");
    assert!(err.contains("--no-browser"), "{err}");
    assert!(w.auth.device_authorizations().is_empty());
}

/// Runs `login --device` and approves at once, as a user in a browser would: opens the page
/// ctl printed with the code in it and presses Approve. Returns the authorization it used.
async fn approved_login(w: &World, d: &TestDaemon) -> DeviceAuthorization {
    let mut ctl = Ctl::start(d, &["--device"]);
    let shown = ctl.until("Ctrl-C").await.to_string();
    let a = the_authorization(w);
    let link = shown
        .lines()
        .map(str::trim)
        .find(|l| l.contains("?user_code="))
        .expect("ctl printed the page with the code in it");
    let browser = w.auth.http_client();
    let page = browser.get(link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains(&a.user_code));
    let form = [("user_code", a.user_code.as_str()), ("decision", "approve")];
    let done = browser
        .post(w.auth.url("/device"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let (code, out, err) = ctl.finish().await;
    assert_eq!(code, 0, "{out}{err}");
    let r = proxy_client().get(d.url("/raw/echo")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    the_authorization(w)
}

#[tokio::test]
async fn a_confidential_client_authenticates_its_device_requests() {
    for method in ["client_secret_basic", "client_secret_post"] {
        let setup = mcpproxy_tests::daemon::Setup::new().unwrap();
        let secret_file = setup.path("client-secret");
        mcpproxy_tests::daemon::write_private(&secret_file, "s3cret-of-the-client\n").unwrap();
        let opts = OAuthOptions {
            clients: vec![mcpproxy_tests::oauth::ClientSpec::confidential(
                "conf-client",
                "s3cret-of-the-client",
            )],
            auth_methods: vec![method.into()],
            device: Some(DeviceOptions::default()),
            ..Default::default()
        };
        let extra = format!("client_secret_file = {secret_file:?}");
        let mut w = world(opts, true, &extra).await;
        w.config = mcpproxy_tests::oauth_world::rewrite_client(&w.config, "conf-client");
        let d = TestDaemon::start(&w.config, &[]).await.unwrap();
        let a = approved_login(&w, &d).await;
        assert_eq!(a.client_id, "conf-client", "{method}");
        // Both the device authorization and the polls authenticated as the method says.
        for r in w.auth.requests().iter().filter(|r| {
            r.path == "/device_authorization"
                || r.form_value("grant_type")
                    == Some("urn:ietf:params:oauth:grant-type:device_code")
        }) {
            match method {
                "client_secret_basic" => {
                    assert_eq!(r.basic_client.as_deref(), Some("conf-client"));
                    assert_eq!(r.form_value("client_secret"), None);
                }
                _ => assert_eq!(r.form_value("client_secret"), Some("s3cret-of-the-client")),
            }
        }
        assert!(!d.logs().contains("s3cret-of-the-client"));
        assert_no_secret_in(&w, &d.logs());
    }
}

#[tokio::test]
async fn a_dynamically_registered_client_logs_in_by_device() {
    let w = device_world(DeviceOptions::default(), |_| {}).await;
    let text = std::fs::read_to_string(&w.config).unwrap();
    std::fs::write(&w.config, text.replace("client_id = \"test-client\"\n", "")).unwrap();
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    let a = approved_login(&w, &d).await;
    assert!(a.client_id.starts_with("dcr_"), "{a:?}");
    assert!(w.auth.requests().iter().any(|r| r.path == "/register"));
}

#[tokio::test]
async fn a_key_client_signs_a_fresh_assertion_for_each_device_request() {
    let setup = mcpproxy_tests::daemon::Setup::new().unwrap();
    let pem = mcpproxy_tests::oauth::assertion::generate_ec_pem();
    let key_path = setup.path("client-key.pem");
    mcpproxy_tests::daemon::write_private(&key_path, &pem).unwrap();
    let opts = OAuthOptions {
        clients: vec![mcpproxy_tests::oauth::ClientSpec::loopback("jwt-client")],
        assertion_keys: vec![mcpproxy_tests::oauth::AssertionKey {
            client_id: "jwt-client".into(),
            private_pem: pem.clone(),
        }],
        auth_methods: vec!["private_key_jwt".into()],
        device: Some(DeviceOptions::default()),
        ..Default::default()
    };
    let extra = format!("private_key_file = {key_path:?}");
    let mut w = world(opts, true, &extra).await;
    w.config = mcpproxy_tests::oauth_world::rewrite_client(&w.config, "jwt-client");
    let d = TestDaemon::start(&w.config, &[]).await.unwrap();
    let a = approved_login(&w, &d).await;
    assert_eq!(a.client_id, "jwt-client");
    // The device authorization and every poll carried an assertion of its own (the server
    // refuses a replayed `jti`, so a reused one would have failed the login).
    let requests: Vec<_> = w
        .auth
        .requests()
        .into_iter()
        .filter(|r| {
            r.path == "/device_authorization"
                || r.form_value("grant_type")
                    == Some("urn:ietf:params:oauth:grant-type:device_code")
        })
        .collect();
    assert!(requests.len() >= 2, "{requests:?}");
    let mut seen = std::collections::HashSet::new();
    for r in &requests {
        assert_eq!(
            r.form_value("client_assertion_type"),
            Some(mcpproxy_tests::oauth::assertion::JWT_BEARER),
            "{r:?}"
        );
        let assertion = r.form_value("client_assertion").expect("an assertion");
        assert!(
            seen.insert(assertion.to_string()),
            "an assertion was reused"
        );
        assert!(
            !d.logs().contains(assertion),
            "an assertion reached the log"
        );
    }
    assert!(!d.logs().contains(pem.lines().nth(1).unwrap()));
    assert_no_secret_in(&w, &d.logs());
}
