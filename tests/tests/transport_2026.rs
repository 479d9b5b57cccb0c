//! The 2026-07-28 MCP transport through the real daemon: the `Mcp-Method`, `Mcp-Name` and
//! `Mcp-Param-*` headers pass and are allowed and exposed in CORS for an allowed origin, and a
//! `subscriptions/listen` POST stream is never cut by the idle timeout.

use mcpproxy_tests::daemon::{proxy_client, EventReader, Setup, TestDaemon};
use mcpproxy_tests::upstream::{self, TestUpstream, UpstreamOptions};

const ORIGIN: &str = "http://localhost:3000";

async fn start(extra: &str) -> (TestUpstream, TestDaemon, Setup) {
    let up = upstream::start(UpstreamOptions::default()).await.unwrap();
    let setup = Setup::new().unwrap();
    let d = setup.static_daemon(&up, extra).await.unwrap();
    (up, d, setup)
}

#[tokio::test]
async fn mcp_headers_pass_and_are_allowed_and_exposed_for_an_allowed_origin() {
    let (up, d, _s) = start(&format!("[listen]\nallowed_origins = [\"{ORIGIN}\"]\n")).await;
    let preflight = proxy_client()
        .request(reqwest::Method::OPTIONS, d.url("/raw/echo"))
        .header("origin", ORIGIN)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("mcp-method") && allowed.contains("mcp-name"),
        "{allowed}"
    );
    let asked = proxy_client()
        .request(reqwest::Method::OPTIONS, d.url("/raw/echo"))
        .header("origin", ORIGIN)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "mcp-method, mcp-name, mcp-param-region",
        )
        .send()
        .await
        .unwrap();
    let allowed = asked.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(allowed.contains("mcp-param-region"), "{allowed}");

    let r = proxy_client()
        .post(d.url("/raw/echo"))
        .header("origin", ORIGIN)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "echo")
        .header("mcp-param-region", "cn-hangzhou")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        exposed.contains("mcp-method") && exposed.contains("mcp-name"),
        "{exposed}"
    );
    let seen = &up.requests()[0];
    assert_eq!(seen.header("mcp-method"), Some("tools/call"));
    assert_eq!(seen.header("mcp-name"), Some("echo"));
    assert_eq!(seen.header("mcp-param-region"), Some("cn-hangzhou"));
}

#[tokio::test]
async fn a_listen_stream_outlives_the_idle_timeout() {
    let (up, d, _s) = start("[limits]\nstream_idle_timeout = \"1s\"\n").await;
    let open = |listen: bool| {
        let mut req = proxy_client()
            .post(d.url("/raw/slow-sse"))
            .header("accept", "text/event-stream");
        if listen {
            req = req.header("mcp-method", "subscriptions/listen");
        }
        req.send()
    };
    let mut listen = EventReader::new(open(true).await.unwrap());
    let mut other = EventReader::new(open(false).await.unwrap());
    assert_eq!(listen.next_event().await.unwrap().data, "one");
    assert_eq!(other.next_event().await.unwrap().data, "one");
    // The other stream is cut by the idle timeout: by then the listen stream was idle as long.
    assert!(other.end().await.is_err(), "the idle stream was not cut");
    up.release();
    assert_eq!(listen.next_event().await.unwrap().data, "two");
}
