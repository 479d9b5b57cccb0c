//! A TLS-terminating reverse proxy in front of the conformance suite's plain-HTTP servers, so
//! that the daemon, which reaches authorization servers over HTTPS only, can be tested against
//! them unchanged. Each `http://localhost:N` the suite's servers name (in a body or a header)
//! gets its own `https://localhost:M` listener on first sight; requests going back have the
//! reverse rewrite, so every server sees its own URLs and the daemon sees only HTTPS ones.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::TryStreamExt;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::rewrite::rewrite;
use crate::tls::TestCa;

type Body = BoxBody<Bytes, std::io::Error>;

/// Hop-by-hop headers (and the length, recomputed after a rewrite): never copied across.
const SKIPPED: [&str; 7] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "proxy-connection",
];

/// The running bridge; its listeners stop when it is dropped.
pub struct Bridge {
    inner: Arc<Inner>,
}

struct Inner {
    ca: TestCa,
    acceptor: TlsAcceptor,
    client: reqwest::Client,
    shutdown: CancellationToken,
    ports: Mutex<Ports>,
}

#[derive(Default)]
struct Ports {
    /// Suite server port to bridge port.
    out: HashMap<u16, u16>,
    /// Bridge port to suite server port.
    back: HashMap<u16, u16>,
    /// Ports never bridged (the daemon's own).
    excluded: HashSet<u16>,
}

impl Bridge {
    pub fn new() -> Bridge {
        let ca = TestCa::new();
        let acceptor = TlsAcceptor::from(ca.server_config());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .tls_backend_preconfigured(crate::tls::client_config_with_roots(
                rustls::RootCertStore::empty(),
            ))
            .build()
            .expect("plain HTTP client");
        Bridge {
            inner: Arc::new(Inner {
                ca,
                acceptor,
                client,
                shutdown: CancellationToken::new(),
                ports: Mutex::default(),
            }),
        }
    }

    /// The CA the bridge's certificate chains to (for the daemon's `ca_file`).
    pub fn ca_pem(&self) -> String {
        self.inner.ca.ca_pem()
    }

    /// A client config trusting the bridge (the browser of a headless login).
    pub fn client_config(&self) -> rustls::ClientConfig {
        self.inner.ca.client_config()
    }

    /// A port that must never be bridged (the daemon's listener: its callback URL).
    pub fn exclude(&self, port: u16) {
        self.inner.ports.lock().unwrap().excluded.insert(port);
    }

    /// `url` as the daemon sees it (`https://localhost:BRIDGE/...`) back as the suite's
    /// server names itself.
    pub fn http_url(&self, url: &str) -> String {
        self.inner.to_http(url)
    }

    /// `url` (a suite server's `http://localhost:N/...`) as the daemon must see it.
    pub fn https_url(&self, url: &str) -> String {
        Inner::to_https(&self.inner, url)
    }
}

impl Default for Bridge {
    fn default() -> Self {
        Bridge::new()
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.inner.shutdown.cancel();
    }
}

impl Inner {
    fn to_https(this: &Arc<Inner>, text: &str) -> String {
        rewrite(text, "http", "https", &mut |port| {
            Inner::bridge_port(this, port)
        })
    }

    fn to_http(&self, text: &str) -> String {
        let ports = self.ports.lock().unwrap();
        rewrite(text, "https", "http", &mut |port| {
            ports.back.get(&port).copied()
        })
    }

    /// The bridge port for suite port `port`, listening from now on; `None` for excluded
    /// ports or when no listener can be bound.
    fn bridge_port(this: &Arc<Inner>, port: u16) -> Option<u16> {
        let mut ports = this.ports.lock().unwrap();
        if ports.excluded.contains(&port) {
            return None;
        }
        if let Some(&b) = ports.out.get(&port) {
            return Some(b);
        }
        let v4 = std::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).ok()?;
        let bridge = v4.local_addr().ok()?.port();
        // `localhost` may resolve to ::1 first: listen there too when the port is free.
        let v6 = std::net::TcpListener::bind(SocketAddr::from((Ipv6Addr::LOCALHOST, bridge))).ok();
        for listener in std::iter::once(v4).chain(v6) {
            listener.set_nonblocking(true).ok()?;
            let listener = tokio::net::TcpListener::from_std(listener).ok()?;
            let inner = this.clone();
            crate::accept::serve(
                listener,
                Some(this.acceptor.clone()),
                this.shutdown.clone(),
                move |req, _conn| {
                    let inner = inner.clone();
                    async move { Ok::<_, Infallible>(inner.forward(req, port).await) }
                },
            );
        }
        ports.out.insert(port, bridge);
        ports.back.insert(bridge, port);
        Some(bridge)
    }

    async fn forward(self: Arc<Self>, req: Request<Incoming>, port: u16) -> Response<Body> {
        match self.try_forward(req, port).await {
            Ok(resp) => resp,
            Err(e) => {
                let mut resp = Response::new(full(format!("bridge: {e:#}").into()));
                *resp.status_mut() = StatusCode::BAD_GATEWAY;
                resp
            }
        }
    }

    async fn try_forward(
        self: &Arc<Self>,
        req: Request<Incoming>,
        port: u16,
    ) -> anyhow::Result<Response<Body>> {
        let (parts, body) = req.into_parts();
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let url = format!("http://localhost:{port}{}", self.to_http(target));
        let mut headers = HeaderMap::new();
        copy_headers(&parts.headers, &mut headers, |v| self.to_http(v));
        let body = body.collect().await?.to_bytes();
        let body = match std::str::from_utf8(&body) {
            Ok(text) => Bytes::from(self.to_http(text)),
            Err(_) => body,
        };
        let resp = self
            .client
            .request(parts.method, url)
            .headers(headers)
            .body(body)
            .send()
            .await?;
        let mut out = Response::builder().status(resp.status());
        let streaming = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        copy_headers(resp.headers(), out.headers_mut().unwrap(), |v| {
            Inner::to_https(self, v)
        });
        if streaming {
            // Event streams carry MCP messages, not URLs: passed through as they come.
            let frames = resp
                .bytes_stream()
                .map_ok(Frame::data)
                .map_err(std::io::Error::other);
            return Ok(out.body(BodyExt::boxed(StreamBody::new(frames)))?);
        }
        let bytes = resp.bytes().await?;
        let bytes = match std::str::from_utf8(&bytes) {
            Ok(text) => Bytes::from(Inner::to_https(self, text)),
            Err(_) => bytes,
        };
        Ok(out.body(full(bytes))?)
    }
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// Copies the end-to-end headers, text values passed through `map`.
fn copy_headers(from: &HeaderMap, to: &mut HeaderMap, map: impl Fn(&str) -> String) {
    for (name, value) in from {
        if SKIPPED.contains(&name.as_str()) {
            continue;
        }
        let value = match value.to_str() {
            Ok(text) => HeaderValue::from_str(&map(text)).unwrap_or_else(|_| value.clone()),
            Err(_) => value.clone(),
        };
        to.append(name.clone(), value);
    }
}
