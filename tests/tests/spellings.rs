//! End to end through the real daemon: a blocked server stays blocked under every spelling of
//! its path that a lenient upstream could route to it (its ID under another name, another
//! account, case, trailing dots and spaces, compatibility forms), escapes that a lenient
//! upstream would read as dots or separators are refused, and no client-supplied byte reaches
//! a log line unescaped.

use std::net::SocketAddr;

use mcpproxy_tests::daemon::{Setup, TestDaemon, WAIT};
use mcpproxy_tests::upstream::{self, TestUpstream, UpstreamOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ECS: &str = "/accounts/1/custom/ecs/id/ECS01";
const RAM: &str = "/accounts/1/custom/ram/id/RAM01";

struct Env {
    up: TestUpstream,
    d: TestDaemon,
    _setup: Setup,
}

async fn start(acl: &str) -> Env {
    let up = upstream::start(UpstreamOptions::default()).await.unwrap();
    let setup = Setup::new().unwrap();
    let servers = format!(
        "[[upstream.servers]]\nname = \"ecs\"\nid = \"ECS01\"\nmcp = \"{ECS}/mcp\"\n\
         [[upstream.servers]]\nname = \"ram\"\nid = \"RAM01\"\nmcp = \"{RAM}/mcp\"\n\
         [acl]\n{acl}\n"
    );
    let d = setup.static_daemon(&up, &servers).await.unwrap();
    Env {
        up,
        d,
        _setup: setup,
    }
}

/// `POST target` as raw bytes (nothing on the way normalises it): (status, body, client).
async fn post(env: &Env, target: &[u8]) -> (u16, String, SocketAddr) {
    let mut s = TcpStream::connect(env.d.addr).await.unwrap();
    let client = s.local_addr().unwrap();
    let head = format!(
        " HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        env.d.addr
    );
    s.write_all(&[b"POST ", target, head.as_bytes()].concat())
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("no answer in time")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text, client)
}

/// Refused with `status` and `code`, and never forwarded.
async fn assert_refused(env: &Env, target: &str, status: u16, code: &str) {
    let before = env.up.requests().len();
    let (got, text, _) = post(env, target.as_bytes()).await;
    assert_eq!(got, status, "{target}: {text}");
    assert!(
        text.contains(&format!("\"code\":\"{code}\"")),
        "{target}: {text}"
    );
    assert_eq!(
        env.up.requests().len(),
        before,
        "{target} was forwarded: {:?}",
        env.up.requests().last()
    );
}

async fn assert_forwarded(env: &Env, target: &str) {
    let before = env.up.requests().len();
    let (_, text, _) = post(env, target.as_bytes()).await;
    let seen = env.up.requests();
    assert_eq!(seen.len(), before + 1, "{target} not forwarded: {text}");
    assert_eq!(seen[before].path, target);
}

#[tokio::test]
async fn a_blocked_server_is_refused_under_every_spelling() {
    let env = start("blocked_servers = [\"ram\"]").await;
    for target in [
        format!("{RAM}/mcp"),
        // Its ID under another server's name, and under another account.
        "/accounts/1/custom/ecs/id/RAM01/mcp".to_string(),
        "/accounts/2/custom/ram/id/RAM01/mcp".to_string(),
        "/accounts/2/custom/x/id/RAM01".to_string(),
        // Case, trailing dots and spaces.
        "/accounts/1/custom/RAM/id/RAM01/mcp".to_string(),
        "/accounts/1/custom/ram/id/ram01/mcp".to_string(),
        "/accounts/1/custom/Ram./id/X/mcp".to_string(),
        "/accounts/1/custom/ram%20/id/X/mcp".to_string(),
        "/accounts/1/custom/ram.%20./id/X/mcp".to_string(),
        // Fullwidth letters (NFKC: "ram"), percent-encoded.
        "/accounts/1/custom/%EF%BD%92%EF%BD%81%EF%BD%8D/id/X/mcp".to_string(),
        "/accounts/1/custom/x/id/%EF%BC%B2AM01/mcp".to_string(),
    ] {
        assert_refused(&env, &target, 403, "access_denied").await;
    }
    // Names inside other segments are not the name.
    assert_forwarded(&env, &format!("{ECS}/mcp")).await;
    assert_forwarded(&env, "/accounts/1/custom/ecs/id/ECS01/program").await;
    assert_forwarded(&env, "/accounts/1/custom/ramp/id/RAM012/mcp").await;
}

#[tokio::test]
async fn the_allowed_list_matches_only_the_catalogued_spelling() {
    let env = start("allowed_servers = [\"ecs\"]").await;
    assert_forwarded(&env, &format!("{ECS}/mcp")).await;
    for target in [
        "/accounts/1/custom/ECS/id/ECS01/mcp",
        "/accounts/1/custom/ecs/id/ecs01/mcp",
        "/accounts/1/custom/ecs./id/ECS01/mcp",
        "/accounts/2/custom/ecs/id/ECS01/mcp",
    ] {
        assert_refused(&env, target, 403, "access_denied").await;
    }
}

#[tokio::test]
async fn acl_check_explains_how_each_list_compares() {
    let env = start("blocked_servers = [\"ram\"]\nallowed_servers = [\"ecs\"]").await;
    let socket = env.d.admin_socket();
    let check = |path: &str| format!("{{\"path\":{path:?}}}");
    let (status, v) = mcpproxy_tests::admin::post_json(
        &socket,
        "/v1/acl/check",
        &check("/accounts/1/custom/ecs/id/ram01/mcp"),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["decision"], "blocked", "{v}");
    let reason = v["reason"].as_str().unwrap();
    assert!(reason.contains("`ram01`"), "{reason}");
    assert!(reason.contains("ignoring case"), "{reason}");
    let (_, v) = mcpproxy_tests::admin::post_json(
        &socket,
        "/v1/acl/check",
        &check("/accounts/1/custom/ECS/id/ECS01/mcp"),
    )
    .await
    .unwrap();
    assert_eq!(v["decision"], "not_allowed", "{v}");
    assert!(
        v["reason"].as_str().unwrap().contains("exactly"),
        "{}",
        v["reason"]
    );
}

#[tokio::test]
async fn escapes_a_lenient_upstream_would_read_as_dots_or_separators_are_refused() {
    let env = start("").await;
    for target in [
        // Overlong and invalid UTF-8.
        "/a/%C0%AE%C0%AE/raw/echo",
        "/a/%E0%80%AE/raw/echo",
        "/a/%C0%AF/raw/echo",
        "/a/%FF/raw/echo",
        "/a/%80/raw/echo",
        "/a/%C3/raw/echo",
        "/a/%ED%A0%80/raw/echo",
        // C0 controls and DEL.
        "/a/%01/raw/echo",
        "/a/%0A/raw/echo",
        "/a/%1F/raw/echo",
        "/a/%7F/raw/echo",
        // Compatibility forms of `.`, `/` and `\`.
        "/a/%EF%BC%8E%EF%BC%8E/raw/echo",
        "/a/%E2%80%A5/raw/echo",
        "/a/%E2%80%A4/raw/echo",
        "/a/%EF%BC%8F/raw/echo",
        "/a/%EF%BC%BC/raw/echo",
        "/a/%EF%B9%92/raw/echo",
    ] {
        assert_refused(&env, target, 400, "path_not_normal").await;
    }
    assert_forwarded(&env, "/a/%E4%BD%A0/raw/echo").await;
    assert_forwarded(&env, "/a/%C3%A4/raw/echo").await;
}

#[tokio::test]
async fn client_bytes_reach_log_lines_escaped() {
    let env = start("").await;
    let nasty = [
        "\u{9b}31mred",    // C1 CSI
        "a\u{85}b",        // NEL
        "a\u{2028}b",      // LINE SEPARATOR
        "a\u{2029}b",      // PARAGRAPH SEPARATOR
        "\u{202e}gnp.exe", // RIGHT-TO-LEFT OVERRIDE
        "a\u{2066}b",      // LEFT-TO-RIGHT ISOLATE
    ];
    for n in nasty {
        let target = format!("/x/{n}/mcp");
        let (status, text, client) = post(&env, target.as_bytes()).await;
        assert_eq!(status, 400, "{text}");
        let tag = format!("client={client} ");
        env.d.wait_for_log(&tag).await.unwrap();
        let logs = env.d.logs();
        let line = logs.lines().find(|l| l.contains(&tag)).unwrap();
        for c in line.chars() {
            assert!(
                c.is_ascii_graphic() || c == ' ',
                "unescaped {c:?} in {line:?}"
            );
        }
        assert!(line.contains("path=/x/"), "{line}");
    }
}
