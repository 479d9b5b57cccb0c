//! The one outbound HTTP client setup: rustls (ring) with the system's trust anchors plus any
//! configured extra CA, HTTP/1.1 and HTTP/2 by ALPN, pooled connections, no redirects followed,
//! proxy environment variables ignored (only a configured proxy is used).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read CA file {path}: {message}")]
    CaFile { path: PathBuf, message: String },
    #[error("cannot build the TLS configuration: {0}")]
    Tls(String),
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

/// What an outbound client needs to know.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    pub ca_file: Option<PathBuf>,
    pub proxy: Option<Url>,
    pub connect_timeout: Duration,
    /// Allow plain `http://` (loopback upstreams that the config opted in for).
    pub allow_http: bool,
    /// HTTP/1.1 only (`http_version = "1.1"`): HTTP/2 is not offered in the TLS handshake.
    pub http1_only: bool,
}

impl ClientOptions {
    /// The options for the upstream's own calls: its CA, proxy, `allow_http` and HTTP version.
    pub fn for_upstream(u: &crate::config::Upstream, connect_timeout: Duration) -> ClientOptions {
        ClientOptions {
            ca_file: u.ca_file.clone(),
            proxy: u.proxy.clone(),
            connect_timeout,
            allow_http: u.allow_http,
            http1_only: u.http_version == crate::config::HttpVersion::Http11,
        }
    }
}

/// The system's trust anchors, read once.
fn system_roots() -> &'static Vec<CertificateDer<'static>> {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let loaded = rustls_native_certs::load_native_certs();
        for e in &loaded.errors {
            tracing::warn!(error = %e, "some system CA certificates could not be read");
        }
        loaded.certs
    })
}

fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let err = |message: String| ClientError::CaFile {
        path: path.to_path_buf(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate in the file".into()));
    }
    Ok(certs)
}

/// A rustls client configuration trusting the system roots plus `ca_file`, offering HTTP/2 and
/// HTTP/1.1 by ALPN (only HTTP/1.1 when `http1_only`).
pub fn tls_config(
    ca_file: Option<&Path>,
    http1_only: bool,
) -> Result<rustls::ClientConfig, ClientError> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(system_roots().iter().cloned());
    if let Some(path) = ca_file {
        for cert in read_ca_file(path)? {
            roots.add(cert).map_err(|e| ClientError::CaFile {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = if http1_only {
        vec![b"http/1.1".to_vec()]
    } else {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    };
    Ok(config)
}

/// Builds a client. Redirects are never followed: a token must not travel to a URL the config
/// did not name.
pub fn build(opts: &ClientOptions) -> Result<reqwest::Client, ClientError> {
    let tls = tls_config(opts.ca_file.as_deref(), opts.http1_only)?;
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .https_only(!opts.allow_http)
        .connect_timeout(opts.connect_timeout)
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .http2_adaptive_window(true);
    if opts.http1_only {
        builder = builder.http1_only();
    }
    builder = match &opts.proxy {
        Some(url) => builder.proxy(
            reqwest::Proxy::all(url.as_str()).map_err(|e| ClientError::Build(e.to_string()))?,
        ),
        None => builder.no_proxy(),
    };
    builder
        .build()
        .map_err(|e| ClientError::Build(e.to_string()))
}
