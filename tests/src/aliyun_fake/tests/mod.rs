//! The daemon's Alibaba Cloud clients (`mcpproxyd::alibaba`) against the fake, over real
//! HTTPS on an ephemeral loopback port: the daemon signs with its signer, the fake verifies
//! with its own.

mod listing;
mod provision;
mod signature;

use std::sync::Arc;
use std::time::Duration;

use mcpproxyd::alibaba::credentials::AccessKey;
use mcpproxyd::alibaba::ims::ImsClient;
use mcpproxyd::http_client::{self, ClientOptions};
use secrecy::SecretString;
use url::Url;

use super::*;

/// A fake with `change` applied to the default options.
async fn fake(change: impl FnOnce(&mut AliyunFakeOptions)) -> AliyunFake {
    let mut opts = AliyunFakeOptions::default();
    change(&mut opts);
    start(opts).await.expect("start the Alibaba Cloud fake")
}

/// The fake's endpoint as the daemon's config holds it.
fn endpoint(fake: &AliyunFake) -> Url {
    Url::parse(fake.url()).unwrap()
}

/// The daemon's one outbound client, trusting the fake's CA through a `ca_file`.
fn daemon_http(fake: &AliyunFake) -> reqwest::Client {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    fake.ca().write_ca_pem(&ca).unwrap();
    // The file is read while building; the directory may go afterwards.
    http_client::build(&ClientOptions {
        ca_file: Some(ca),
        proxy: None,
        connect_timeout: Duration::from_secs(5),
        allow_http: false,
        http1_only: false,
    })
    .expect("daemon HTTP client")
}

/// The fake's AccessKey in the daemon's form.
fn daemon_key(fake: &AliyunFake) -> Arc<AccessKey> {
    let key = fake.key();
    key_of(&key.id, &key.secret, key.security_token.as_deref())
}

fn key_of(id: &str, secret: &str, token: Option<&str>) -> Arc<AccessKey> {
    Arc::new(AccessKey {
        id: id.into(),
        secret: SecretString::from(secret.to_string()),
        security_token: token.map(|t| SecretString::from(t.to_string())),
        source: "test".into(),
    })
}

fn ims(fake: &AliyunFake, key: Arc<AccessKey>) -> ImsClient {
    ImsClient::new(daemon_http(fake), endpoint(fake), key)
}
