//! Where an upstream is and how to reach it, worked out once per configuration generation: the
//! scheme, authority and TLS server name of its URL (so no request parses a URL), and the dial
//! itself: TCP (`TCP_NODELAY`), rustls with the same trust anchors and ALPN (`h2`,
//! `http/1.1`) as every other outbound client, then the HTTP handshake the peer chose.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Uri};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

use crate::proxy::forward::UpBody;

/// An upstream URL taken apart once.
#[derive(Debug)]
pub struct Target {
    scheme: Scheme,
    authority: Authority,
    /// The `Host` header of HTTP/1.1 requests (the authority, as the URL spells it).
    pub host_header: HeaderValue,
    /// The name to resolve (brackets of an IPv6 literal removed), and the port.
    host: String,
    port: u16,
    /// The TLS server name; `None` for `http://`.
    server_name: Option<ServerName<'static>>,
}

#[derive(Debug, thiserror::Error)]
#[error("the upstream URL cannot be used for forwarding: {0}")]
pub struct TargetError(String);

impl Target {
    pub fn new(url: &url::Url) -> Result<Target, TargetError> {
        let err = |m: &str| TargetError(m.to_string());
        let host = url.host_str().ok_or_else(|| err("no host"))?;
        let port = url.port_or_known_default().ok_or_else(|| err("no port"))?;
        let spelt = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let authority = Authority::try_from(spelt.as_str()).map_err(|e| err(&e.to_string()))?;
        let host_header = HeaderValue::from_str(&spelt).map_err(|e| err(&e.to_string()))?;
        let bare = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let (scheme, server_name) = match url.scheme() {
            "https" => {
                let name = ServerName::try_from(bare.clone()).map_err(|e| err(&e.to_string()))?;
                (Scheme::HTTPS, Some(name))
            }
            "http" => (Scheme::HTTP, None),
            other => return Err(err(&format!("unsupported scheme {other}"))),
        };
        Ok(Target {
            scheme,
            authority,
            host_header,
            host: bare,
            port,
            server_name,
        })
    }

    /// The request target for `path_and_query`: absolute for HTTP/2 (its `:scheme` and
    /// `:authority`), origin-form for HTTP/1.1 (which carries `Host`).
    pub fn uri(&self, path_and_query: PathAndQuery, h2: bool) -> Uri {
        let mut parts = http::uri::Parts::default();
        if h2 {
            parts.scheme = Some(self.scheme.clone());
            parts.authority = Some(self.authority.clone());
        }
        parts.path_and_query = Some(path_and_query);
        Uri::from_parts(parts).expect("scheme, authority and path are all set or none is")
    }
}

/// `path` (already in normal form) and the query as received, as one request target; `None`
/// when a byte is not allowed there.
pub fn path_and_query(path: &str, query: Option<&str>) -> Option<PathAndQuery> {
    let mut s = String::with_capacity(path.len() + query.map_or(0, |q| q.len() + 1));
    s.push_str(path);
    if let Some(q) = query {
        s.push('?');
        s.push_str(q);
    }
    let pq = PathAndQuery::from_maybe_shared(Bytes::from(s)).ok()?;
    // The parser would have split a `?` or `#` off the path: the path must come through whole.
    (pq.path() == path).then_some(pq)
}

/// A fresh connection, after its HTTP handshake.
pub enum Fresh {
    H1(http1::SendRequest<UpBody>),
    /// With the peer's current `SETTINGS_MAX_CONCURRENT_STREAMS`, kept up to date by the
    /// connection task.
    H2(crate::proxy::upstream_h2::Sender),
}

/// Why a connection could not be opened (logged; the client sees a 502).
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, std::io::Error),
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("connecting took longer than limits.connect_timeout")]
    Timeout,
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    #[error("HTTP handshake failed: {0}")]
    Handshake(hyper::Error),
    #[error("HTTP/2 handshake failed: {0}")]
    H2Handshake(h2::Error),
}

/// How to open connections to one upstream.
pub struct Dialer {
    pub target: Target,
    tls: tokio_rustls::TlsConnector,
    connect_timeout: Duration,
}

impl Dialer {
    pub fn new(target: Target, tls: rustls::ClientConfig, connect_timeout: Duration) -> Dialer {
        Dialer {
            target,
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            connect_timeout,
        }
    }

    /// TCP, TLS and the HTTP handshake, within `limits.connect_timeout`.
    pub async fn dial(&self) -> Result<Fresh, DialError> {
        tokio::time::timeout(self.connect_timeout, self.dial_untimed())
            .await
            .unwrap_or(Err(DialError::Timeout))
    }

    async fn dial_untimed(&self) -> Result<Fresh, DialError> {
        let tcp = self.tcp().await?;
        let Some(name) = &self.target.server_name else {
            return h1(tcp).await;
        };
        let tls = self
            .tls
            .connect(name.clone(), tcp)
            .await
            .map_err(DialError::Tls)?;
        if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
            h2(tls).await
        } else {
            h1(tls).await
        }
    }

    /// The first address that accepts, in the resolver's order.
    async fn tcp(&self) -> Result<TcpStream, DialError> {
        let t = &self.target;
        let addrs: Vec<SocketAddr> = match t.host.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, t.port)],
            Err(_) => tokio::net::lookup_host((t.host.as_str(), t.port))
                .await
                .map_err(|e| DialError::Resolve(t.host.clone(), e))?
                .collect(),
        };
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(DialError::Connect(last.unwrap_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "no address")
        })))
    }
}

async fn h1<T>(io: T) -> Result<Fresh, DialError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(DialError::Handshake)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "upstream HTTP/1.1 connection ended");
        }
    });
    Ok(Fresh::H1(sender))
}

async fn h2<T>(io: T) -> Result<Fresh, DialError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    crate::proxy::upstream_h2::handshake(io)
        .await
        .map(Fresh::H2)
        .map_err(DialError::H2Handshake)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_parsed_once_with_the_port_as_spelt() {
        let t = Target::new(&url::Url::parse("https://up.example:8443/base").unwrap()).unwrap();
        assert_eq!(t.host_header, "up.example:8443");
        let pq = path_and_query("/base/mcp", Some("a=1")).unwrap();
        assert_eq!(
            t.uri(pq.clone(), true).to_string(),
            "https://up.example:8443/base/mcp?a=1"
        );
        assert_eq!(t.uri(pq, false).to_string(), "/base/mcp?a=1");
        let v6 = Target::new(&url::Url::parse("https://[::1]/").unwrap()).unwrap();
        assert_eq!(v6.host_header, "[::1]");
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 443));
    }

    #[test]
    fn a_path_that_would_not_come_through_whole_is_refused() {
        assert!(path_and_query("/a#b", None).is_none());
        assert!(path_and_query("/a?b", None).is_none());
        assert!(path_and_query("/a b", None).is_none());
        assert!(path_and_query("/a", Some("")).is_some());
    }
}
