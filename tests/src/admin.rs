//! A minimal HTTP/1.1 client over a Unix socket, to talk to the admin API as `curl
//! --unix-socket` would.

use std::path::Path;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

/// One request: (status, body as text).
pub async fn request(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let stream = UnixStream::connect(socket).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req.body(Full::new(Bytes::from(body.unwrap_or("").to_string())))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// `GET path`, parsed as JSON.
pub async fn get_json(socket: &Path, path: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    let (status, text) = request(socket, "GET", path, None).await?;
    Ok((status, serde_json::from_str(&text)?))
}

/// `POST path` with a JSON body, parsed as JSON.
pub async fn post_json(
    socket: &Path,
    path: &str,
    body: &str,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let (status, text) = request(socket, "POST", path, Some(body)).await?;
    Ok((status, serde_json::from_str(&text)?))
}
