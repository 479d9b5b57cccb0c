//! Upstream faults, end to end through the real daemon: an upstream that refuses connections,
//! answers garbage, stalls before its answer, closes or resets the connection in the middle of
//! a body, or opens an event stream and goes quiet.
//! Each ends with a clear answer (a JSON error, or a body that fails rather than one that looks
//! whole), no token in any answer or log line, and the daemon serving the next request.

use std::net::SocketAddr;
use std::time::Duration;

use mcpproxy_tests::daemon::{proxy_client, static_daemon, Setup, TestDaemon};
use mcpproxy_tests::upstream::{self, TestUpstream, UpstreamOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a faulty upstream does once it has read a request's head.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Bytes that are no HTTP response, then the connection closed.
    Garbage,
    /// Never answers (the connection is held open).
    Stall,
    /// A head announcing 1000 bytes, 10 of them, then the connection closed (FIN).
    CutBody,
    /// The same, then a reset (RST).
    ResetMidBody,
    /// An event stream's head, then nothing (the connection held open).
    QuietStream,
}

/// A plain-HTTP loopback upstream that does `fault` on every connection.
async fn faulty(fault: Fault) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve(socket, fault));
        }
    });
    addr
}

async fn serve(mut socket: TcpStream, fault: Fault) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    match fault {
        Fault::Garbage => {
            let _ = socket.write_all(b"SURPRISE, NOT HTTP\r\n\r\n").await;
        }
        Fault::Stall => {
            // Held until the daemon gives up and closes its end.
            let _ = socket.read(&mut buf).await;
        }
        Fault::CutBody | Fault::ResetMidBody => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                        content-length: 1000\r\n\r\n{\"partial\"";
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.flush().await;
            if matches!(fault, Fault::ResetMidBody) {
                // Linger 0: the close sends a reset instead of a FIN.
                let _ = socket.set_zero_linger();
            }
        }
        Fault::QuietStream => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                        transfer-encoding: chunked\r\n\r\n";
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.read(&mut buf).await;
        }
    }
}

/// A loopback port nothing listens on (bound, then let go).
async fn refused() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// The test upstream at `/` and one faulty upstream per mount, all with the static token.
struct Env {
    up: TestUpstream,
    d: TestDaemon,
    _setup: Setup,
}

async fn start() -> Env {
    let up = upstream::start(UpstreamOptions::default()).await.unwrap();
    let mut extra = String::new();
    let faults = [
        ("refused", refused().await),
        ("garbage", faulty(Fault::Garbage).await),
        ("stall", faulty(Fault::Stall).await),
        ("cut", faulty(Fault::CutBody).await),
        ("reset", faulty(Fault::ResetMidBody).await),
        ("quiet", faulty(Fault::QuietStream).await),
    ];
    for (name, addr) in faults {
        extra.push_str(&format!(
            "\n[[upstream]]\nname = \"{name}\"\nmount = \"/{name}\"\nurl = \"http://{addr}\"\n\
             auth = \"test\"\nallow_http = true\n"
        ));
    }
    extra.push_str("\n[limits]\nresponse_header_timeout = \"1s\"\nstream_idle_timeout = \"1s\"\n");
    let (setup, d) = static_daemon(&up, &extra).await.unwrap();
    Env {
        up,
        d,
        _setup: setup,
    }
}

const CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#;

/// A `tools/call` POSTed to `path` (bounded: a hang fails the test instead of stalling it).
async fn call(env: &Env, path: &str) -> reqwest::Response {
    let request = proxy_client()
        .post(env.d.url(path))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(CALL)
        .send();
    tokio::time::timeout(Duration::from_secs(30), request)
        .await
        .unwrap_or_else(|_| panic!("{path}: no answer within 30 s"))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A JSON error answer with `status` and `code`, not carrying the upstream's token.
async fn assert_error(env: &Env, path: &str, status: u16, code: &str) {
    let r = call(env, path).await;
    assert_eq!(r.status().as_u16(), status, "{path}");
    let text = r.text().await.unwrap();
    assert!(
        !text.contains(env.up.token()),
        "{path}: the token in {text}"
    );
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["code"], code, "{path}: {body}");
}

/// The daemon still serves: the healthy upstream answers a call.
async fn assert_serving(env: &Env) {
    let r = call(env, "/raw/echo").await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn faulty_upstreams_get_clear_answers_and_the_daemon_serves_on() {
    let env = start().await;
    assert_serving(&env).await;

    assert_error(&env, "/refused/mcp", 502, "upstream_unreachable").await;
    assert_serving(&env).await;

    assert_error(&env, "/garbage/mcp", 502, "upstream_unreachable").await;
    assert_serving(&env).await;

    assert_error(&env, "/stall/mcp", 504, "upstream_timeout").await;
    assert_serving(&env).await;

    // The head had gone out when the upstream closed: the client must not take the 10 bytes
    // for the whole answer.
    let r = call(&env, "/cut/mcp").await;
    assert_eq!(r.status(), 200);
    let body = tokio::time::timeout(Duration::from_secs(30), r.bytes())
        .await
        .expect("the cut body ends within 30 s");
    assert!(body.is_err(), "a cut body read as whole: {body:?}");
    assert_serving(&env).await;

    // A reset may reach the daemon before it has read the head (the kernel then drops what
    // was unread): either a 502, or the head and a body that fails. Never a whole-looking one.
    let r = call(&env, "/reset/mcp").await;
    match r.status().as_u16() {
        502 => {
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "upstream_unreachable", "{body}");
        }
        200 => {
            let body = tokio::time::timeout(Duration::from_secs(30), r.bytes())
                .await
                .expect("the cut body ends within 30 s");
            assert!(body.is_err(), "a reset body read as whole: {body:?}");
        }
        other => panic!("a reset upstream answered {other}"),
    }
    assert_serving(&env).await;

    // An event stream that goes quiet ends after the idle timeout, and says so.
    let r = proxy_client()
        .get(env.d.url("/quiet/mcp"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = tokio::time::timeout(Duration::from_secs(30), r.bytes())
        .await
        .expect("the quiet stream ends within 30 s");
    assert!(
        body.is_err(),
        "a stream closed for silence read as whole: {body:?}"
    );
    env.d
        .wait_for_line(|l| l.contains("INFO") && l.contains("upstream=quiet") && l.contains("idle"))
        .await
        .unwrap();
    assert_serving(&env).await;

    // Twice more each, on connections the daemon may have kept: the same answers.
    for _ in 0..2 {
        assert_error(&env, "/garbage/mcp", 502, "upstream_unreachable").await;
        assert_error(&env, "/refused/mcp", 502, "upstream_unreachable").await;
        assert_serving(&env).await;
    }
    let logs = env.d.logs();
    assert!(!logs.contains(env.up.token()), "the token in the logs");
    for name in ["refused", "garbage", "stall", "cut", "reset"] {
        let named =
            |l: &str| l.contains(&format!("upstream={name} ")) || l.contains(&format!("`{name}`"));
        assert!(
            logs.lines().any(|l| l.contains("WARN") && named(l)),
            "no warning names upstream {name}:\n{logs}"
        );
    }
}
