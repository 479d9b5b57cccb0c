//! The daemon's upstream connections: more concurrent event streams than one HTTP/2
//! connection allows (the test upstream's `SETTINGS_MAX_CONCURRENT_STREAMS` is hyper's 200) all
//! open at once (the extra connection closed soon after the burst), and streams over a plain
//! HTTP/1.1 upstream go on kept-alive connections; bodies larger than the HTTP/2 windows; a
//! request whose client leaves before the answer is not reset before the upstream answered it
//! (or a short window passed), so a crowd of clients leaving together does not look like a
//! rapid-reset attack to the upstream, which would close the connection under every request;
//! a stream the upstream refused unprocessed is sent again when its body can be; an upstream
//! that ends each connection after a fixed number of streams is left before it refuses any.

use std::time::{Duration, Instant};

use mcpproxy_tests::daemon::{proxy_client, static_daemon, EventReader, Setup, TestDaemon};
use mcpproxy_tests::upstream::{self, TestUpstream, UpstreamOptions};

/// More than one HTTP/2 connection of the test upstream carries (200 streams).
const STREAMS: usize = 260;

/// A daemon with one worker thread: every stream then goes through one worker's connections
/// (each worker has its own), so [`STREAMS`] is past one connection's limit.
async fn start(opts: UpstreamOptions) -> (TestUpstream, TestDaemon, Setup) {
    let up = upstream::start(opts).await.unwrap();
    let (setup, d) = static_daemon(&up, "[limits]\nworkers = 1\n").await.unwrap();
    (up, d, setup)
}

/// Opens `n` `/raw/hold` streams at once and waits for each one's first event.
async fn open_streams(d: &TestDaemon, n: usize) -> Vec<EventReader> {
    let client = proxy_client();
    let opens = (0..n).map(|_| {
        let client = client.clone();
        let url = d.url("/raw/hold");
        async move {
            let r = tokio::time::timeout(Duration::from_secs(30), client.get(url).send())
                .await
                .expect("the stream opened in time")
                .unwrap();
            assert_eq!(r.status(), 200);
            let mut events = EventReader::new(r);
            assert_eq!(events.next_event().await.unwrap().data, "open");
            events
        }
    });
    futures_util::future::join_all(opens).await
}

#[tokio::test]
async fn streams_past_one_http2_connections_limit_all_open() {
    let (up, d, _s) = start(UpstreamOptions::default()).await;
    let port = up.addr().port();
    let streams = open_streams(&d, STREAMS).await;
    assert_eq!(streams.len(), STREAMS);
    assert_eq!(
        upstream_connections(d.pid(), port),
        2,
        "one past the stream limit"
    );
    drop(streams);
    up.wait_stream_closed(STREAMS).await;
    // The extra connection opened for the burst is closed soon after it, with no request to
    // notice it; the first stays.
    mcpproxy_tests::wait::poll_within(Duration::from_secs(30), "one connection left", || async {
        (upstream_connections(d.pid(), port) == 1).then_some(())
    })
    .await
    .unwrap();
    // The connections are still usable once the streams are gone.
    let r = proxy_client().get(d.url("/raw/echo")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// The daemon's established TCP connections to `port` (its sockets, matched by inode against
/// the kernel's table).
fn upstream_connections(pid: i32, port: u16) -> usize {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let remote = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|t| std::fs::read_to_string(t).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        })
        .filter(|f| {
            f.len() > 9 && f[2].ends_with(&remote) && f[3] == "01" && inodes.contains(&f[9])
        })
        .count()
}

#[tokio::test]
async fn a_plain_http1_upstream_serves_concurrent_streams_and_then_requests() {
    let (up, d, _s) = start(UpstreamOptions {
        tls: false,
        ..Default::default()
    })
    .await;
    let streams = open_streams(&d, 40).await;
    drop(streams);
    up.wait_stream_closed(40).await;
    for _ in 0..5 {
        let r = proxy_client().get(d.url("/raw/echo")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
}

/// `http_version = "1.1"`: an upstream that offers HTTP/2 is spoken to in HTTP/1.1 all the
/// same, for calls, event streams and big bodies alike.
#[tokio::test]
async fn an_upstream_set_to_http_1_1_gets_only_http_1_1() {
    let up = upstream::start(UpstreamOptions::default()).await.unwrap();
    let extra = "http_version = \"1.1\"\n\n[limits]\nworkers = 1\n";
    let (_setup, d) = static_daemon(&up, extra).await.unwrap();
    let streams = open_streams(&d, 8).await;
    for _ in 0..3 {
        let r = proxy_client().get(d.url("/raw/echo")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = proxy_client()
        .post(d.url("/raw/count"))
        .body(vec![b'k'; 3 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = proxy_client()
        .get(d.url(&format!("/raw/bytes?n={}", 4 << 20)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), 4 << 20);
    drop(streams);
    let versions: Vec<String> = up.requests().into_iter().map(|r| r.version).collect();
    assert_eq!(versions.len(), 8 + 3 + 2, "{versions:?}");
    assert!(
        versions.iter().all(|v| v == "HTTP/1.1"),
        "every request went over HTTP/1.1: {versions:?}"
    );
}

/// Bodies larger than every HTTP/2 flow-control window cross an HTTP/2 upstream whole, both
/// ways: a streamed upload (chunked, and announced but over `retry_body_limit`), a kept one
/// (under it, sent with its headers), and a download.
#[tokio::test]
async fn bodies_larger_than_the_http2_windows_cross_whole_both_ways() {
    const BIG: usize = 8 << 20;
    let up = upstream::start(UpstreamOptions::default()).await.unwrap();
    let extra = "[limits]\nmax_request_body = \"16MiB\"\nretry_body_limit = \"4MiB\"\n";
    let (_setup, d) = static_daemon(&up, extra).await.unwrap();
    let counted = |r: reqwest::Response| async move {
        assert_eq!(r.status(), 200);
        r.json::<serde_json::Value>().await.unwrap()["bytes"]
            .as_u64()
            .unwrap() as usize
    };
    let chunks = futures_util::stream::iter(
        (0..BIG / (64 << 10)).map(|_| Ok::<_, std::io::Error>(vec![b'c'; 64 << 10])),
    );
    let chunked = reqwest::Body::wrap_stream(chunks);
    let r = proxy_client()
        .post(d.url("/raw/count"))
        .body(chunked)
        .send();
    assert_eq!(counted(r.await.unwrap()).await, BIG, "a chunked upload");
    let r = proxy_client()
        .post(d.url("/raw/count"))
        .body(vec![b'l'; BIG]);
    assert_eq!(
        counted(r.send().await.unwrap()).await,
        BIG,
        "an upload over the retry limit"
    );
    let r = proxy_client()
        .post(d.url("/raw/count"))
        .body(vec![b'k'; 3 << 20]);
    assert_eq!(
        counted(r.send().await.unwrap()).await,
        3 << 20,
        "a kept upload"
    );
    let r = proxy_client()
        .get(d.url(&format!("/raw/bytes?n={BIG}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), BIG, "a download");
    let versions: Vec<String> = up.requests().into_iter().map(|r| r.version).collect();
    assert!(
        versions.iter().all(|v| v == "HTTP/2.0"),
        "every request went over HTTP/2: {versions:?}"
    );
}

/// Workers 1: the left request and the next one share one HTTP/2 connection. Debug: the
/// daemon says when it starts and ends settling a left request's stream.
const SETTLE_EXTRA: &str = "[limits]\nworkers = 1\n\n[log]\nlevel = \"debug\"\n";

/// Sends `POST /raw/held` through the daemon, waits until the upstream holds it, then drops
/// the client's connection; returns when the daemon has seen the client leave.
async fn leave_a_held_request(up: &TestUpstream, d: &TestDaemon) -> Instant {
    leave_a_held_call(up, d, "{}").await
}

/// [`leave_a_held_request`] with `body`.
async fn leave_a_held_call(up: &TestUpstream, d: &TestDaemon, body: &'static str) -> Instant {
    let before = up.requests().len();
    let client = proxy_client();
    let url = d.url("/raw/held");
    let call = tokio::spawn(async move { client.post(url).body(body).send().await });
    up.wait_requests(before + 1).await;
    call.abort();
    let left = Instant::now();
    let _ = call.await;
    // The request's audit line, written as the daemon drops it (it has no "proxied" line).
    let line = d
        .wait_for_line(|l| l.contains("the client left before the upstream answered"))
        .await
        .unwrap();
    assert!(line.contains(" INFO "), "{line}");
    for field in [
        "upstream=test",
        "method=POST",
        "path=/raw/held",
        "decision=\"allowed\"",
    ] {
        assert!(line.contains(field), "{field} in {line}");
    }
    d.wait_for_log("keeping a left request's stream until its answer has been read")
        .await
        .unwrap();
    left
}

#[tokio::test]
async fn a_request_its_client_left_is_answered_and_read_not_reset() {
    let up = upstream::start(UpstreamOptions::default()).await.unwrap();
    let (_s, d) = static_daemon(&up, SETTLE_EXTRA).await.unwrap();
    leave_a_held_request(&up, &d).await;
    // The next request goes out on the same connection after anything the daemon sent for
    // the left one, so by its answer a reset would have reached the upstream.
    d.expect_ok("/raw/reflect").await;
    assert_eq!(up.closed_streams(), 0, "the left stream was not reset");
    up.release();
    d.wait_for_log("a left request's answer was read to its end")
        .await
        .unwrap();
    assert_eq!(up.closed_streams(), 0, "answered, not reset");
    // Its place on the connection was given back: the connection goes on serving.
    for _ in 0..3 {
        d.expect_ok("/raw/reflect").await;
    }
    assert_eq!(up.closed_streams(), 0);
}

#[tokio::test]
async fn a_tool_call_its_client_left_is_recorded_with_an_unknown_outcome() {
    let up = upstream::start(UpstreamOptions::default()).await.unwrap();
    let (_s, d) = static_daemon(&up, SETTLE_EXTRA).await.unwrap();
    let call = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"held_tool"}}"#;
    leave_a_held_call(&up, &d, call).await;
    // It went to the upstream, which may act on it: its line names the tool, and it has the
    // record and the count that an answered call gets, with the outcome unknown.
    let logs = d.logs();
    let left = logs
        .lines()
        .find(|l| l.contains("the client left before the upstream answered"))
        .unwrap();
    assert!(left.contains("tool=\"held_tool\""), "{left}");
    assert!(left.contains("rpc_method=\"tools/call\""), "{left}");
    let record = d
        .wait_for_line(|l| l.contains("tool call finished"))
        .await
        .unwrap();
    for field in [
        "tool=held_tool",
        "rpc_id=\"7\"",
        "outcome=\"unknown\"",
        "upstream=test",
    ] {
        assert!(record.contains(field), "{field} in {record}");
    }
    let (status, metrics) =
        mcpproxy_tests::admin::request(&d.admin_socket(), "GET", "/v1/metrics", None)
            .await
            .unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains(r#"tool="held_tool",outcome="unknown"} 1"#),
        "{metrics}"
    );
    up.release();
}

#[tokio::test]
async fn a_request_its_client_left_is_reset_when_the_upstream_does_not_answer_soon() {
    let up = upstream::start(UpstreamOptions::default()).await.unwrap();
    let (_s, d) = static_daemon(&up, SETTLE_EXTRA).await.unwrap();
    let left = leave_a_held_request(&up, &d).await;
    tokio::time::timeout(mcpproxy_tests::daemon::WAIT, up.wait_stream_closed(1))
        .await
        .expect("the left stream was reset in the end");
    // Not at once (a reset then is what the upstream may take for an attack) but after the
    // daemon's 2 s window from the send.
    assert!(
        left.elapsed() >= Duration::from_secs(1),
        "reset {:?} after the client left",
        left.elapsed()
    );
    d.wait_for_log("a left request was not answered in time; reset")
        .await
        .unwrap();
    d.expect_ok("/raw/reflect").await;
}

/// A daemon in front of a [`refusing`](mcpproxy_tests::refusing) upstream.
async fn refusing_daemon(up: &mcpproxy_tests::refusing::RefusingUpstream) -> (Setup, TestDaemon) {
    bare_h2_daemon(up.addr, &up.ca, "").await
}

/// A daemon in front of a bare HTTP/2 upstream at `addr`, its certificate from `ca`; `extra`
/// goes at the end of the config.
async fn bare_h2_daemon(
    addr: std::net::SocketAddr,
    ca: &mcpproxy_tests::tls::TestCa,
    extra: &str,
) -> (Setup, TestDaemon) {
    let setup = Setup::new().unwrap();
    mcpproxy_tests::daemon::write_private(&setup.path("token"), "refusing-token\n").unwrap();
    std::fs::write(setup.path("ca.pem"), ca.ca_pem()).unwrap();
    let config = format!(
        "[auth.test]\nkind = \"static\"\ntoken_file = {:?}\n\n[[upstream]]\nname = \"test\"\n\
         url = \"https://{}\"\nauth = \"test\"\nca_file = {:?}\n\n{extra}",
        setup.path("token"),
        addr,
        setup.path("ca.pem")
    );
    let d = TestDaemon::start(&setup.write_config(&config).unwrap(), &[])
        .await
        .unwrap();
    (setup, d)
}

#[tokio::test]
async fn a_stream_the_upstream_refused_unprocessed_is_sent_again() {
    let up = mcpproxy_tests::refusing::start(1).await.unwrap();
    let (_s, d) = refusing_daemon(&up).await;
    let r = proxy_client()
        .post(d.url("/mcp"))
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), r#"{"answered":2}"#);
    assert_eq!((up.seen(), up.refused()), (2, 1));
}

#[tokio::test]
async fn a_refused_stream_whose_body_streamed_through_is_not_sent_again() {
    let up = mcpproxy_tests::refusing::start(1).await.unwrap();
    let (_s, d) = refusing_daemon(&up).await;
    // No length: the daemon streams the body through and keeps no copy to send again.
    let chunks = futures_util::stream::iter(
        [
            &b"{\"jsonrpc\":\"2.0\","[..],
            b"\"id\":1,\"method\":\"ping\"}",
        ]
        .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::from_static(c))),
    );
    let r = proxy_client()
        .post(d.url("/mcp"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!((up.seen(), up.refused()), (1, 1));
    // The connection goes on serving.
    let r = proxy_client()
        .post(d.url("/mcp"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!((up.seen(), up.refused()), (2, 1));
}

/// `n` JSON-RPC calls at once; each must be answered.
async fn calls_at_once(d: &TestDaemon, n: usize) {
    let client = proxy_client();
    let calls = (0..n).map(|i| {
        client
            .post(d.url("/mcp"))
            .header("content-type", "application/json")
            .body(format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"ping"}}"#))
            .send()
    });
    for r in futures_util::future::join_all(calls).await {
        let r = r.unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        assert_eq!(status, 200, "{body}\n{}", d.logs());
    }
}

const LEARNT: &str = "the upstream ends its HTTP/2 connections after a fixed number of streams";

#[tokio::test]
async fn an_upstream_that_ends_connections_after_a_fixed_count_is_left_before_it_refuses() {
    // As nginx at `keepalive_requests`: a GOAWAY at a connection's 5th stream, refusing the
    // streams already sent past it (those calls go again, and are answered). Fewer calls at
    // once than that, so a call sent again always finds room on the next connection.
    let up = mcpproxy_tests::capped::start(5).await.unwrap();
    let (_s, d) = bare_h2_daemon(up.addr, &up.ca, "[limits]\nworkers = 1\n").await;
    let mut rounds = 0;
    while !d.logs().contains(LEARNT) {
        rounds += 1;
        assert!(
            rounds <= 100,
            "no budget learnt; {} streams refused",
            up.refused()
        );
        calls_at_once(&d, 4).await;
    }
    assert!(d.logs().contains("upstream=test streams=5"), "{}", d.logs());
    // Now every connection is left at its 5th stream: none is refused any more.
    let (refused, answered, connections) = (up.refused(), up.answered(), up.connections());
    for _ in 0..10 {
        calls_at_once(&d, 4).await;
    }
    assert_eq!(
        up.refused(),
        refused,
        "streams refused once the budget was known"
    );
    assert_eq!(up.answered(), answered + 40);
    // Each connection took its 5 streams (the next one opened ahead, at the 4th, is
    // one more at most).
    assert!(
        up.connections() - connections <= 40 / 5 + 1,
        "{} connections",
        up.connections() - connections
    );
}
