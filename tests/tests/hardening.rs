//! End to end through the real daemon, as an attacker on the same machine would try it: sockets
//! that never finish their request (the version sniff, the h2 preface, a short body) are closed
//! within the configured bounds and never hold a connection slot for good; methods other than
//! the MCP transports' never go upstream; a broken chunked body is the client's fault (400).

use std::net::SocketAddr;
use std::time::Duration;

use mcpproxy_tests::daemon::{proxy_client, start_with_two_servers, Setup, TestDaemon, WAIT};
use mcpproxy_tests::upstream::{TestUpstream, DEFAULT_TOKEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A test upstream and a daemon in front of it (the setup keeps the config dir alive).
struct Env {
    up: TestUpstream,
    d: TestDaemon,
    _setup: Setup,
}

async fn start(extra: &str) -> Env {
    let (up, setup, d) = start_with_two_servers(extra).await.unwrap();
    Env {
        up,
        d,
        _setup: setup,
    }
}

/// The 24-byte HTTP/2 connection preface.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame (length 0, type 4, no flags, stream 0).
const EMPTY_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

/// Connects and sends `bytes` (maybe none); the socket is left open.
async fn open(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    s
}

/// Reads until the daemon closes the connection (EOF or reset), within [`WAIT`]; what it sent.
async fn until_closed(s: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut buf = Vec::new();
    let read = tokio::time::timeout(WAIT, async {
        let mut chunk = [0u8; 4096];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "{what}: the daemon kept the connection open");
    buf
}

/// Waits for a log line that names `client` and holds `needle`.
async fn wait_for_client_log(d: &TestDaemon, client: SocketAddr, needle: &str) -> String {
    let tag = format!("client={client} ");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let logs = d.logs();
        if let Some(line) = logs
            .lines()
            .find(|l| l.contains(&tag) && l.contains(needle))
        {
            return line.to_string();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no log line with {tag:?} and {needle:?}:\n{logs}"
        );
        // Polling a condition with a deadline: the line is written by another process.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn sockets_that_never_finish_a_request_are_closed_and_logged() {
    let env = start("[limits]\nheader_read_timeout = \"1s\"\n").await;
    let addr = env.d.addr;
    // (what, bytes, whether the daemon's own deadline is the one that closes it: hyper's header
    // timer may answer a started HTTP/1.1 head first, with a 408 of its own)
    let cases: [(&str, Vec<u8>, bool); 5] = [
        ("nothing at all", Vec::new(), true),
        (
            "20 bytes of the h2 preface",
            H2_PREFACE[..20].to_vec(),
            true,
        ),
        (
            "the h2 preface and SETTINGS",
            [H2_PREFACE, EMPTY_SETTINGS].concat(),
            true,
        ),
        (
            "half an HTTP/1.1 head",
            b"GET /mcp HTTP/1.1\r\nHost: x".to_vec(),
            false,
        ),
        ("one byte", b"G".to_vec(), false),
    ];
    let mut sockets = Vec::new();
    for (what, bytes, ours) in &cases {
        sockets.push((*what, *ours, open(addr, bytes).await));
    }
    for (what, ours, s) in &mut sockets {
        let client = s.local_addr().unwrap();
        until_closed(s, what).await;
        if *ours {
            wait_for_client_log(
                &env.d,
                client,
                "no request within limits.header_read_timeout",
            )
            .await;
        }
    }
    assert!(env.up.requests().is_empty(), "{:?}", env.up.requests());
}

#[tokio::test]
async fn slow_sockets_cannot_hold_every_connection_slot() {
    let env = start("[limits]\nheader_read_timeout = \"1s\"\nmax_connections = 3\n").await;
    let addr = env.d.addr;
    // Every slot taken by a socket that says nothing, or too little to be a request.
    let mut squatters = vec![
        open(addr, b"").await,
        open(addr, &H2_PREFACE[..20]).await,
        open(addr, &[H2_PREFACE, EMPTY_SETTINGS].concat()).await,
    ];
    // While they hold every slot a real client is answered at once (503, never left waiting in
    // the backlog); once the squatters are dropped at their deadline it is served. (Before the
    // fix its request waited for a slot forever.)
    let client = proxy_client();
    let count = || async {
        tokio::time::timeout(
            WAIT,
            client
                .post(env.d.url("/raw/count"))
                .body("abc")
                .timeout(WAIT)
                .send(),
        )
        .await
        .expect("a real client was locked out by idle sockets")
        .unwrap()
    };
    let first = count().await;
    assert!(
        matches!(first.status().as_u16(), 200 | 503),
        "{}",
        first.status()
    );
    for s in &mut squatters {
        until_closed(s, "squatter").await;
    }
    // A slot is free again a moment after its socket closes (the task that held it ends).
    let resp = mcpproxy_tests::wait::poll("a slot freed by the squatters", || async {
        let resp = count().await;
        (resp.status() == 200).then_some(resp)
    })
    .await
    .unwrap();
    assert_eq!(resp.text().await.unwrap(), r#"{"bytes":3}"#);
}

#[tokio::test]
async fn a_keep_alive_connection_left_idle_is_closed() {
    let env = start("[limits]\nidle_timeout = \"1s\"\n").await;
    let host = env.d.addr.to_string();
    let mut s = open(
        env.d.addr,
        format!("POST /raw/count HTTP/1.1\r\nHost: {host}\r\nContent-Length: 2\r\n\r\nab")
            .as_bytes(),
    )
    .await;
    let client = s.local_addr().unwrap();
    let got = until_closed(&mut s, "an idle keep-alive connection").await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains(r#"{"bytes":2}"#), "{text}");
    wait_for_client_log(&env.d, client, "idle for limits.idle_timeout").await;
}

/// Sends a head and `sent` of a body that announces more; the daemon must answer and close.
async fn short_body(env: &Env, declared: usize, sent: &[u8]) -> (String, SocketAddr) {
    let host = env.d.addr.to_string();
    let head = format!(
        "POST /raw/count HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {declared}\r\n\r\n"
    );
    let mut s = open(env.d.addr, &[head.as_bytes(), sent].concat()).await;
    let client = s.local_addr().unwrap();
    let got = until_closed(&mut s, "a body that stopped").await;
    (String::from_utf8_lossy(&got).into_owned(), client)
}

#[tokio::test]
async fn a_request_body_that_stops_arriving_is_dropped() {
    let env = start("[limits]\nbody_read_timeout = \"1s\"\nretry_body_limit = \"1KiB\"\n").await;
    // Small enough to keep for a retry (read before forwarding), and large enough to stream.
    for declared in [100, 100_000] {
        let (text, client) = short_body(&env, declared, b"abc").await;
        assert!(text.starts_with("HTTP/1.1 408"), "{declared}: {text}");
        assert!(text.contains("\"code\":\"body_timeout\""), "{text}");
        assert!(!text.contains(DEFAULT_TOKEN), "{text}");
        wait_for_client_log(&env.d, client, "body_timeout").await;
    }
}

#[tokio::test]
async fn a_malformed_chunked_body_is_the_clients_fault() {
    let env = start("").await;
    let host = env.d.addr.to_string();
    let req = format!(
        "POST /raw/count HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n3\r\nabc\r\nzz\r\nnot a chunk\r\n0\r\n\r\n"
    );
    let mut s = open(env.d.addr, req.as_bytes()).await;
    let text = String::from_utf8_lossy(&until_closed(&mut s, "chunked").await).into_owned();
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("\"code\":\"bad_body\""), "{text}");
}

#[tokio::test]
async fn only_mcp_transport_methods_are_forwarded() {
    let env = start("").await;
    let host = env.d.addr.to_string();
    // `/raw/echo` answers every method with the request's headers, Authorization included:
    // what a TRACE-answering upstream would hand back.
    for method in ["TRACE", "PUT", "PATCH", "PROPFIND", "FOO"] {
        let before = env.up.requests().len();
        let req = format!(
            "{method} /raw/echo HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let mut s = open(env.d.addr, req.as_bytes()).await;
        let text = String::from_utf8_lossy(&until_closed(&mut s, method).await).into_owned();
        assert!(text.starts_with("HTTP/1.1 405"), "{method}: {text}");
        assert!(text.contains("\"code\":\"method_not_allowed\""), "{text}");
        assert!(
            text.to_ascii_lowercase()
                .contains("allow: get, post, delete, head, options"),
            "{text}"
        );
        assert!(!text.contains(DEFAULT_TOKEN), "{method}: {text}");
        assert_eq!(env.up.requests().len(), before, "{method} went upstream");
    }
    let client = proxy_client();
    for method in ["GET", "POST", "DELETE", "HEAD", "OPTIONS"] {
        let m = http::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = client
            .request(m, env.d.url("/raw/echo"))
            .timeout(WAIT)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{method}");
        assert_eq!(env.up.requests().last().unwrap().method, method);
    }
}

#[tokio::test]
async fn a_token_the_upstream_reflects_in_a_header_never_reaches_the_client() {
    let env = start("").await;
    let resp = proxy_client()
        .get(env.d.url("/raw/reflect"))
        .timeout(WAIT)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = env.up.requests().pop().unwrap();
    assert!(seen
        .header("authorization")
        .unwrap()
        .contains(DEFAULT_TOKEN));
    assert!(
        resp.headers().get("x-seen-authorization").is_none(),
        "{:?}",
        resp.headers()
    );
}

#[tokio::test]
async fn client_forwarding_headers_never_reach_the_upstream() {
    let env = start("").await;
    let resp = proxy_client()
        .post(env.d.url("/raw/echo"))
        .header("X-Forwarded-For", "203.0.113.9")
        .header("X-Forwarded-Host", "evil.example")
        .header("X-Forwarded-Proto", "https")
        .header("Forwarded", "for=203.0.113.9;host=evil.example")
        .header("X-Real-IP", "203.0.113.9")
        .header("X-Kept", "1")
        .timeout(WAIT)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = env.up.requests().pop().unwrap();
    for gone in [
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "forwarded",
        "x-real-ip",
    ] {
        assert_eq!(seen.header(gone), None, "{gone} was forwarded");
    }
    assert_eq!(seen.header("x-kept"), Some("1"));
}

#[tokio::test]
async fn a_redirect_to_the_upstreams_own_origin_points_at_the_proxy() {
    let env = start("").await;
    let resp = proxy_client()
        .get(env.d.url("/raw/redirect-self"))
        .timeout(WAIT)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap();
    assert_eq!(location, env.d.url("/raw/echo"));
    assert!(!location.contains(&env.up.addr().to_string()));
}

#[tokio::test]
async fn an_endpoint_event_with_data_before_event_is_rewritten() {
    let env = start("").await;
    let text = proxy_client()
        .get(env.d.url("/raw/endpoint-data-first"))
        .timeout(WAIT)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        text,
        format!("data: {}\nevent: endpoint\n\n", env.d.url("/raw/echo"))
    );
}

#[tokio::test]
async fn an_endpoint_event_over_the_cap_ends_the_stream_and_says_so() {
    let env = start("").await;
    // The stream fails before its first byte reaches the client when the whole event comes in
    // one read (hyper then never sends the head), or after the head otherwise: never whole.
    let sent = proxy_client()
        .get(env.d.url("/raw/big-endpoint"))
        .timeout(WAIT)
        .send()
        .await;
    if let Ok(resp) = sent {
        assert_eq!(resp.status(), 200);
        assert!(
            resp.text().await.is_err(),
            "the stream must end in an error"
        );
    }
    env.d
        .wait_for_log("SSE endpoint event over the size cap")
        .await
        .unwrap();
    let logs = env.d.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("SSE endpoint event over the size cap"))
        .unwrap();
    assert!(line.contains(" INFO "), "{line}");
}

#[tokio::test]
async fn no_answer_of_the_proxy_carries_the_upstream_token() {
    let env = start(
        "[limits]\nmax_request_body = \"1KiB\"\nretry_body_limit = \"1KiB\"\nbody_read_timeout = \"1s\"\n\
         [acl]\nblocked_servers = [\"ram\"]\n",
    )
    .await;
    let host = env.d.addr.to_string();
    let requests = [
        format!("TRACE /raw/echo HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        format!("GET /a/../raw/echo HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        format!(
            "GET /accounts/1/custom/ram/id/RAM01/mcp HTTP/1.1\r\nHost: {host}\r\n\
             Connection: close\r\n\r\n"
        ),
        "GET /raw/echo HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n".to_string(),
        format!(
            "POST /raw/count HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5000\r\n\
             Connection: close\r\n\r\n"
        ),
        format!(
            "POST /raw/count HTTP/1.1\r\nHost: {host}\r\nContent-Length: 10\r\n\
             Connection: close\r\n\r\nabc"
        ),
        format!("GET /.well-known/oauth-authorization-server HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        format!("GET /raw/status/401 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    ];
    for req in &requests {
        let mut s = open(env.d.addr, req.as_bytes()).await;
        let text = String::from_utf8_lossy(&until_closed(&mut s, req).await).into_owned();
        assert!(text.starts_with("HTTP/1.1 4"), "{req}: {text}");
        assert!(!text.contains(DEFAULT_TOKEN), "{req}: {text}");
    }
    assert!(!env.d.logs().contains(DEFAULT_TOKEN));
}
