//! The conformance harness's TLS bridge (`mcpproxy_tests::conformance::bridge`): a plain-HTTP
//! server's own URLs reach its client as HTTPS ones on the bridge, in bodies and headers, and
//! the client's HTTPS URLs reach the server as its own again; other hosts are left alone.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use mcpproxy_tests::conformance::bridge::Bridge;

/// A plain-HTTP server on loopback that answers every request with its own URLs and what it
/// received (Host, and the body upper-cased); returns its port.
async fn echo_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service_fn(
                move |req: http::Request<hyper::body::Incoming>| async move {
                    let host = req.headers()["host"].to_str().unwrap().to_string();
                    let got = req.into_body().collect().await.unwrap().to_bytes();
                    let body = serde_json::json!({
                        "self": format!("http://localhost:{port}/mcp"),
                        "callback": format!("http://127.0.0.1:{port}/callback"),
                        "host": host,
                        // Upper-cased, so that the bridge does not rewrite it back on the way out.
                    "got": String::from_utf8_lossy(&got).to_uppercase(),
                    });
                    let resp = http::Response::builder()
                    .header("location", format!("http://localhost:{port}/next?iss=http%3A%2F%2Flocalhost%3A{port}"))
                    .header(
                        "www-authenticate",
                        format!("Bearer resource_metadata=\"http://localhost:{port}/.well-known/x\""),
                    )
                    .body(Full::new(Bytes::from(body.to_string())))
                    .unwrap();
                    Ok::<_, Infallible>(resp)
                },
            );
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    port
}

#[tokio::test]
async fn urls_are_https_on_the_bridge_and_the_servers_own_behind_it() {
    let port = echo_server().await;
    let bridge = Bridge::new();
    let url = bridge.https_url(&format!("http://localhost:{port}/mcp"));
    let bport: u16 = url
        .strip_prefix("https://localhost:")
        .and_then(|rest| rest.strip_suffix("/mcp"))
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(bport, port);

    let client = mcpproxy_tests::tls::reqwest_client(bridge.client_config());
    let sent =
        format!("resource=https%3A%2F%2Flocalhost%3A{bport}%2Fmcp&u=https://localhost:{bport}/mcp");
    let resp = client.post(&url).body(sent).send().await.unwrap();
    assert_eq!(
        resp.headers()["location"],
        format!("https://localhost:{bport}/next?iss=https%3A%2F%2Flocalhost%3A{bport}").as_str()
    );
    assert_eq!(
        resp.headers()["www-authenticate"],
        format!("Bearer resource_metadata=\"https://localhost:{bport}/.well-known/x\"").as_str()
    );
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["self"], format!("https://localhost:{bport}/mcp"));
    assert_eq!(
        body["callback"],
        format!("http://127.0.0.1:{port}/callback")
    );
    assert_eq!(body["host"], format!("localhost:{port}"));
    assert_eq!(
        body["got"],
        format!("RESOURCE=HTTP%3A%2F%2FLOCALHOST%3A{port}%2FMCP&U=HTTP://LOCALHOST:{port}/MCP")
    );
}
