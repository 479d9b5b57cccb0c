//! `login`, `logout` and `revoke` against a canned daemon: the browser opened with the exact
//! URL, the long-poll, the pasted code or URL, and the exit codes that incident response relies
//! on.

mod common;

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{ctl, ctl_with, seen_so_far, CannedDaemon};
use mcpproxyctl::{exit, Env};
use serde_json::{json, Value};

const ID: &str = "0123456789abcdef0123456789abcdef";
const STATUS_PATH: &str = "/v1/login/0123456789abcdef0123456789abcdef";
const CODE_PATH: &str = "/v1/login/0123456789abcdef0123456789abcdef/code";
/// Characters a shell would act on: the URL must reach the browser exactly as sent.
const AUTH_URL: &str = "https://as.example/authorize?response_type=code&client_id=ctl\
     &state=s1;echo$IFS'x'&code_challenge=Zk9-_x&redirect_uri=http%3A%2F%2F127.0.0.1%3A8088%2Fcallback";
const REDIRECT_URI: &str = "http://127.0.0.1:8088/callback";
/// A code, which must never be echoed back.
const CODE: &str = "SplxlOBeZQQYbYS6WxSbIA";

fn now() -> u64 {
    mcpproxyctl::time::now()
}

fn started() -> String {
    json!({
        "id": ID, "profile": "github", "url": AUTH_URL, "redirect_uri": REDIRECT_URI,
        "expires_at": now() + 600,
    })
    .to_string()
}

fn status(phase: &str, message: Option<&str>) -> String {
    let valid_until = (phase == "succeeded").then(|| now() + 3 * 3600 + 90);
    json!({
        "id": ID, "profile": "github", "status": phase, "message": message,
        "valid_until": valid_until, "expires_at": now() + 600,
    })
    .to_string()
}

fn succeeded() -> String {
    status("succeeded", Some("OAuth login successful!"))
}

/// An environment whose browser cannot start: in-process tests must never open a real one.
fn no_browser_here() -> Env {
    Env {
        browser: Some(OsString::from("/nonexistent/browser")),
        ..Env::default()
    }
}

fn json_body(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn browser_mode_opens_the_exact_url_and_waits_for_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, seen) = CannedDaemon::new()
        .route("POST", "/v1/login", 200, &started())
        .route("GET", STATUS_PATH, 200, &status("pending", None))
        .route("GET", STATUS_PATH, 200, &succeeded())
        .serve(dir.path());

    // The browser: a script that reports its arguments through a FIFO, which also tells the
    // test when it has run. It is run by /bin/sh (never executed itself, so no ETXTBSY), and
    // makes noise on stdout (which must not reach ours) and stderr (which is ours).
    let fifo = dir.path().join("browser-args");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let script = dir.path().join("browser.sh");
    std::fs::write(
        &script,
        format!(
            "echo browser-stdout-noise\necho browser-stderr-noise >&2\nprintf '%s\\n' \"$@\" > '{}'\n",
            fifo.display()
        ),
    )
    .unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_mcpproxyctl"))
        .args(["--socket", socket.to_str().unwrap(), "login"])
        .args(["--profile", "github"])
        .env(
            "BROWSER",
            format!("/bin/sh  {}\t--new-window", script.display()),
        )
        .env_remove("MCPPROXYD_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::read_to_string(&fifo));
    });
    let Ok(args) = rx.recv_timeout(Duration::from_secs(60)) else {
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        panic!(
            "the browser never ran; stderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    assert_eq!(args.unwrap(), format!("--new-window\n{AUTH_URL}\n"));

    let output = child.wait_with_output().unwrap();
    let (out, err) = (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    );
    assert_eq!(output.status.code(), Some(0), "{err}");
    assert!(out.starts_with("OAuth login successful!\n"), "{out}");
    assert!(
        out.contains("profile github: token valid until ") && out.contains("(in 3h 1m)"),
        "{out}"
    );
    assert!(!out.contains("browser-stdout-noise"), "{out}");
    assert!(err.contains("browser-stderr-noise"), "{err}");
    assert!(err.contains(&format!("\n  {AUTH_URL}\n")), "{err}");
    // Not a terminal: whole lines, no carriage returns.
    assert!(err.contains("waiting for the browser login… "), "{err}");
    assert!(err.contains(" left\n") && !err.contains('\r'), "{err}");

    let requests = seen_so_far(&seen);
    assert_eq!(
        (requests[0].method.as_str(), requests[0].path.as_str()),
        ("POST", "/v1/login")
    );
    assert_eq!(
        json_body(&requests[0].body),
        json!({"profile": "github", "paste": false})
    );
    let polls: Vec<_> = requests[1..].iter().collect();
    assert_eq!(polls.len(), 2, "{requests:?}");
    for poll in polls {
        assert_eq!(
            (poll.method.as_str(), poll.path.as_str()),
            ("GET", STATUS_PATH)
        );
        assert_eq!(poll.query.as_deref(), Some("wait=30"));
    }
}

#[test]
fn a_browser_that_cannot_start_leaves_the_url_to_open_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, _seen) = CannedDaemon::new()
        .route("POST", "/v1/login", 200, &started())
        .route("GET", STATUS_PATH, 200, &succeeded())
        .serve(dir.path());
    let (code, out, err) = ctl_with(&socket, &no_browser_here(), "", &["login"]);
    assert_eq!(code, exit::OK, "{err}");
    assert!(out.starts_with("OAuth login successful!\n"), "{out}");
    assert!(err.contains(&format!("\n  {AUTH_URL}\n")), "{err}");
    assert!(
        err.contains("mcpproxyctl: cannot start the browser `/nonexistent/browser`"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "Open the URL above by hand, in a browser that can reach {REDIRECT_URI}"
        )),
        "{err}"
    );
}

#[test]
fn a_failed_or_expired_browser_login_exits_1_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let refused = "the authorization server refused the login: access_denied: the user said no";
    let (socket, _seen) = CannedDaemon::new()
        .route("POST", "/v1/login", 200, &started())
        .route("GET", STATUS_PATH, 200, &status("failed", Some(refused)))
        .serve(dir.path());
    let (code, out, err) = ctl_with(&socket, &no_browser_here(), "", &["login"]);
    assert_eq!(code, exit::LOGIN_FAILED);
    assert_eq!(out, "");
    assert!(
        err.ends_with(&format!(
            "mcpproxyctl: login failed (profile github): {refused}\n"
        )),
        "{err}"
    );

    // --json: the daemon's final answer on stdout, the exit code all the same.
    let (code, out, _) = ctl_with(&socket, &no_browser_here(), "", &["login", "--json"]);
    assert_eq!(code, exit::LOGIN_FAILED);
    let answer = json_body(&out);
    assert_eq!(answer["status"], "failed");
    assert_eq!(answer["message"], refused);

    let dir = tempfile::tempdir().unwrap();
    let late = "the login was not completed in time; start it again";
    let (socket, _seen) = CannedDaemon::new()
        .route("POST", "/v1/login", 200, &started())
        .route("GET", STATUS_PATH, 200, &status("expired", Some(late)))
        .serve(dir.path());
    let (code, _, err) = ctl_with(&socket, &no_browser_here(), "", &["login"]);
    assert_eq!(code, exit::LOGIN_FAILED);
    assert!(
        err.ends_with(&format!(
            "mcpproxyctl: login expired (profile github): {late}\n"
        )),
        "{err}"
    );
}

#[test]
fn a_login_that_cannot_start_exits_1_with_the_daemon_s_message() {
    let dir = tempfile::tempdir().unwrap();
    let message = "several profiles can log in (a, b); choose one with --profile";
    let (socket, _seen) = CannedDaemon::new()
        .route(
            "POST",
            "/v1/login",
            400,
            &json!({"error": {"code": "bad_request", "message": message}}).to_string(),
        )
        .serve(dir.path());
    let (code, out, err) = ctl_with(&socket, &no_browser_here(), "", &["login"]);
    assert_eq!(code, exit::DAEMON_ERROR);
    assert_eq!(out, "");
    assert_eq!(err, format!("mcpproxyctl: {message}\n"));
}

#[test]
fn no_browser_sends_a_pasted_url_as_url() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, seen) = CannedDaemon::new()
        .route("POST", "/v1/login", 200, &started())
        .route("POST", CODE_PATH, 200, &succeeded())
        .serve(dir.path());
    let redirect = format!("{REDIRECT_URI}?code={CODE}&state=s1");
    // A blank line first: asked again.
    let input = format!("\n  {redirect} \n");
    let (code, out, err) = ctl_with(&socket, &Env::default(), &input, &["login", "--no-browser"]);
    assert_eq!(code, exit::OK, "{err}");
    assert!(out.starts_with("OAuth login successful!\n"), "{out}");
    assert!(out.contains("profile github: token valid until "), "{out}");
    assert!(
        err.starts_with(&format!(
            "{}\n\n  {AUTH_URL}\n\n{}\n",
            mcpproxyctl::login::OPEN_ELSEWHERE,
            mcpproxyctl::login::CODE_IS_IN_THE_URL
        )),
        "{err}"
    );
    assert_eq!(err.matches(mcpproxyctl::login::PROMPT).count(), 2, "{err}");
    assert!(err.contains("(nothing entered)"), "{err}");
    assert!(
        !out.contains(CODE) && !err.contains(CODE),
        "the code was echoed"
    );

    let requests = seen_so_far(&seen);
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(json_body(&requests[0].body), json!({"paste": true}));
    assert_eq!(
        (requests[1].method.as_str(), requests[1].path.as_str()),
        ("POST", CODE_PATH)
    );
    assert_eq!(
        requests[1].content_type.as_deref(),
        Some("application/json")
    );
    assert_eq!(json_body(&requests[1].body), json!({"url": redirect}));
}

/// The real binary, its stdin a pipe.
#[test]
fn no_browser_sends_a_bare_code_as_code_and_a_failure_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let reason = "invalid_grant: the authorization code was already used";
    let (socket, seen) = CannedDaemon::new()
        .route("POST", "/v1/login", 200, &started())
        .route("POST", CODE_PATH, 200, &status("failed", Some(reason)))
        .serve(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcpproxyctl"))
        .args(["--socket", socket.to_str().unwrap()])
        .args(["login", "--no-browser", "--profile", "github"])
        .env_remove("BROWSER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{CODE}\n").as_bytes()).unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let (out, err) = (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    );
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert_eq!(out, "");
    assert!(
        err.ends_with(&format!(
            "mcpproxyctl: login failed (profile github): {reason}\n"
        )),
        "{err}"
    );
    assert!(!err.contains(CODE), "the code was echoed: {err}");

    let requests = seen_so_far(&seen);
    assert_eq!(
        json_body(&requests[0].body),
        json!({"profile": "github", "paste": true})
    );
    assert_eq!(requests[1].path, CODE_PATH);
    assert_eq!(json_body(&requests[1].body), json!({"code": CODE}));
    assert_eq!(requests.len(), 2, "{requests:?}");
}

#[test]
fn an_unusable_paste_is_asked_for_again() {
    let dir = tempfile::tempdir().unwrap();
    let no_code = "the URL has no code parameter";
    let (socket, seen) = CannedDaemon::new()
        .route("POST", "/v1/login", 200, &started())
        .route(
            "POST",
            CODE_PATH,
            400,
            &json!({"error": {"code": "bad_request", "message": no_code}}).to_string(),
        )
        .route("POST", CODE_PATH, 200, &succeeded())
        .serve(dir.path());
    let input = format!("{REDIRECT_URI}?state=s1\n{CODE}\n");
    let (code, out, err) = ctl_with(&socket, &Env::default(), &input, &["login", "--no-browser"]);
    assert_eq!(code, exit::OK, "{err}");
    assert!(out.starts_with("OAuth login successful!\n"), "{out}");
    assert!(err.contains(&format!("mcpproxyctl: {no_code}\n")), "{err}");
    let bodies: Vec<Value> = seen_so_far(&seen)
        .iter()
        .filter(|r| r.path == CODE_PATH)
        .map(|r| json_body(&r.body))
        .collect();
    assert_eq!(
        bodies,
        vec![
            json!({"url": format!("{REDIRECT_URI}?state=s1")}),
            json!({"code": CODE})
        ]
    );
}

#[test]
fn no_code_gives_up_after_three_tries_or_at_the_end_of_input() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, seen) = CannedDaemon::new()
        .route("POST", "/v1/login", 200, &started())
        .route("GET", STATUS_PATH, 200, &status("pending", None))
        .serve(dir.path());

    let (code, out, err) = ctl_with(
        &socket,
        &Env::default(),
        "\n \n\t\n\n",
        &["login", "--no-browser"],
    );
    assert_eq!(code, exit::LOGIN_FAILED);
    assert_eq!(out, "");
    assert_eq!(err.matches(mcpproxyctl::login::PROMPT).count(), 3, "{err}");
    assert!(
        err.contains("mcpproxyctl: no usable code after 3 attempts; start again"),
        "{err}"
    );
    let requests = seen_so_far(&seen);
    assert!(requests.iter().all(|r| r.path != CODE_PATH), "{requests:?}");
    // The status was checked once, without waiting: the browser might have finished it.
    let last = requests.last().unwrap();
    assert_eq!(
        (last.path.as_str(), last.query.as_deref()),
        (STATUS_PATH, None)
    );

    let (code, _, err) = ctl_with(&socket, &Env::default(), "", &["login", "--no-browser"]);
    assert_eq!(code, exit::LOGIN_FAILED);
    assert!(
        err.contains("mcpproxyctl: no code was entered (end of input)"),
        "{err}"
    );
}

#[test]
fn a_login_the_browser_finished_meanwhile_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, seen) = CannedDaemon::new()
        .route("POST", "/v1/login", 200, &started())
        .route(
            "POST",
            CODE_PATH,
            404,
            &json!({"error": {"code": "not_found",
                    "message": format!("no login {ID} is pending (it finished, failed or expired)")}})
            .to_string(),
        )
        .route("GET", STATUS_PATH, 200, &succeeded())
        .serve(dir.path());
    let (code, out, err) = ctl_with(
        &socket,
        &Env::default(),
        &format!("{CODE}\n"),
        &["login", "--no-browser"],
    );
    assert_eq!(code, exit::OK, "{err}");
    assert!(out.starts_with("OAuth login successful!\n"), "{out}");
    let paths: Vec<String> = seen_so_far(&seen).into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/v1/login", CODE_PATH, STATUS_PATH]);
}

fn revoked(server: &str, server_error: Option<&str>) -> String {
    json!({"profile": "github", "wiped": true, "server": server, "server_error": server_error})
        .to_string()
}

fn revoke_with(answer: &str, dir: &Path, args: &[&str]) -> (u8, String, String, Vec<Value>) {
    let (socket, seen) = CannedDaemon::new()
        .route("POST", "/v1/revoke", 200, answer)
        .serve(dir);
    let (code, out, err) = ctl(&socket, args);
    let bodies = seen_so_far(&seen)
        .iter()
        .map(|r| json_body(&r.body))
        .collect();
    (code, out, err, bodies)
}

#[test]
fn revoke_exits_1_when_the_server_did_not_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err, bodies) = revoke_with(
        &revoked("failed", Some("connection failed")),
        dir.path(),
        &["revoke", "--profile", "github"],
    );
    assert_eq!(code, exit::REVOKE_INCOMPLETE);
    assert_eq!(bodies, vec![json!({"profile": "github"})]);
    assert!(out.starts_with("profile github: token wiped"), "{out}");
    assert!(
        out.ends_with(
            "server revocation: FAILED: connection failed\n\
             revoke the application's authorization in the provider's console\n"
        ),
        "{out}"
    );
    assert_eq!(err, "");

    let dir = tempfile::tempdir().unwrap();
    let (code, out, err, _) = revoke_with(
        &revoked("failed", Some("connection failed")),
        dir.path(),
        &["revoke", "--json"],
    );
    assert_eq!(code, exit::REVOKE_INCOMPLETE);
    assert_eq!(json_body(&out)["server"], "failed");
    assert_eq!(
        err,
        "mcpproxyctl: profile github: server-side revocation failed: connection failed; \
         revoke the application's authorization in the provider's console\n"
    );
}

#[test]
fn revoke_exits_0_when_nothing_is_left_to_revoke_at_the_server() {
    for (server, words) in [
        ("revoked", "server revocation: revoked\n"),
        (
            "nothing_to_revoke",
            "server revocation: nothing to revoke (no token was held)\n",
        ),
        (
            "not_supported",
            "server revocation: not supported by the server",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (code, out, err, bodies) = revoke_with(&revoked(server, None), dir.path(), &["revoke"]);
        assert_eq!(code, exit::OK, "{server}: {err}");
        assert_eq!(bodies, vec![json!({})]);
        assert!(out.contains(words), "{server}: {out}");
    }
}

#[test]
fn logout_says_whether_a_token_was_wiped() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, seen) = CannedDaemon::new()
        .route(
            "POST",
            "/v1/logout",
            200,
            r#"{"profile": "github", "had_token": true}"#,
        )
        .route(
            "POST",
            "/v1/logout",
            200,
            r#"{"profile": "github", "had_token": false}"#,
        )
        .serve(dir.path());
    assert_eq!(
        ctl(&socket, &["logout", "--profile", "github"]),
        (
            exit::OK,
            "profile github logged out (token wiped)\n".to_string(),
            String::new()
        )
    );
    assert_eq!(
        json_body(&seen.try_recv().unwrap().body),
        json!({"profile": "github"})
    );
    assert_eq!(
        ctl(&socket, &["logout"]),
        (
            exit::OK,
            "profile github logged out (no token was held)\n".to_string(),
            String::new()
        )
    );
    let (code, out, _) = ctl(&socket, &["logout", "--json"]);
    assert_eq!(code, exit::OK);
    assert_eq!(
        json_body(&out),
        json!({"profile": "github", "had_token": false})
    );
}
