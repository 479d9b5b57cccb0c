//! A throwaway certificate authority and a `localhost` server certificate, made at run time.
//!
//! Nothing here touches the system trust store: test clients trust the CA through
//! [`TestCa::client_config`], the proxy through a `ca_file` written by
//! [`TestCa::write_ca_pem`].

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::crypto::CryptoProvider;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Names the leaf certificate is valid for.
pub const SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A CA certificate and a leaf certificate for [`SERVER_NAMES`] signed by it.
#[derive(Clone)]
pub struct TestCa {
    ca_der: CertificateDer<'static>,
    ca_pem: String,
    leaf_der: CertificateDer<'static>,
    leaf_key_der: Vec<u8>,
    /// The leaf and the CA certificate, and the leaf's key, in PEM (for a server of another
    /// program: the bench's nginx upstream).
    leaf_chain_pem: String,
    leaf_key_pem: String,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

/// The crypto provider every TLS config here uses: the workspace's rustls has ring only.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

// === impl TestCa ===

impl TestCa {
    /// Generates a fresh CA and leaf certificate (ECDSA P-256).
    pub fn new() -> TestCa {
        // rcgen only fails here on invalid parameters, which are constants.
        let ca_key = KeyPair::generate().expect("generate CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "mcpproxyd test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign CA");
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf_key = KeyPair::generate().expect("generate leaf key");
        let names: Vec<String> = SERVER_NAMES.iter().map(|n| n.to_string()).collect();
        let mut leaf_params = CertificateParams::new(names).expect("leaf params");
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        leaf_params.is_ca = IsCa::ExplicitNoCa;
        leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_cert = leaf_params
            .signed_by(&leaf_key, &issuer)
            .expect("sign leaf");

        TestCa {
            leaf_chain_pem: format!("{}{}", leaf_cert.pem(), ca_cert.pem()),
            leaf_key_pem: leaf_key.serialize_pem(),
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().clone(),
            leaf_der: leaf_cert.der().clone(),
            leaf_key_der: leaf_key.serialize_der(),
        }
    }

    /// The CA certificate in PEM form (what a `ca_file` holds).
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// The CA certificate in DER form.
    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.ca_der.clone()
    }

    /// Writes the CA certificate as PEM to `path`.
    pub fn write_ca_pem(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::write(path, self.ca_pem.as_bytes())
    }

    /// Writes the leaf certificate (with the CA's after it) and its key as PEM files, the key
    /// with mode 0600.
    pub fn write_server_pem(&self, cert: &Path, key: &Path) -> std::io::Result<()> {
        std::fs::write(cert, self.leaf_chain_pem.as_bytes())?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(key, self.leaf_key_pem.as_bytes())?;
        std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600))
    }

    /// A server config presenting the leaf certificate, offering ALPN `h2` and `http/1.1`.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf_key_der.clone()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![self.leaf_der.clone(), self.ca_der.clone()], key)
            .expect("leaf certificate and key match");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// A client config trusting only this CA, offering ALPN `h2` and `http/1.1`.
    pub fn client_config(&self) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.ca_der.clone())
            .expect("CA certificate parses");
        client_config_with_roots(roots)
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

/// A ring-backed client config trusting `roots`, offering ALPN `h2` and `http/1.1`.
///
/// With an empty store it still serves plain-HTTP clients: reqwest built with
/// `rustls-no-provider` needs some preconfigured TLS even when it never uses it.
pub fn client_config_with_roots(roots: rustls::RootCertStore) -> rustls::ClientConfig {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// A reqwest client using `tls`; redirects are not followed and proxy variables ignored,
/// so a test sees exactly what the server answered.
pub fn reqwest_client(tls: rustls::ClientConfig) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("reqwest client with preconfigured rustls")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_pem_is_a_certificate() {
        let ca = TestCa::new();
        assert!(ca.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    }

    #[test]
    fn configs_build_with_alpn() {
        let ca = TestCa::new();
        assert_eq!(ca.server_config().alpn_protocols.len(), 2);
        assert_eq!(ca.client_config().alpn_protocols[0], b"h2");
    }

    #[test]
    fn write_ca_pem_writes_the_pem() {
        let ca = TestCa::new();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        ca.write_ca_pem(&path).unwrap();
        assert_eq!(std::fs::read_to_string(path).unwrap(), ca.ca_pem());
    }
}
