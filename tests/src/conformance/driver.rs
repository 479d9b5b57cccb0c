//! The "client" the conformance suite runs for a scenario, played by the real daemon: the
//! [`Bridge`] in front of the suite's servers, a daemon config for the scenario, `mcpproxyd`,
//! a headless login when the scenario has an authorization server (the suite's servers approve
//! at once: the redirect is followed to the daemon's callback as a browser would), then a
//! plain MCP client (`tests/conformance/client.mjs`, the TypeScript SDK) against the daemon's
//! local port. A client that is told `mcpproxyctl login` must grant more (step-up) gets one
//! more login, as its user would do, until the daemon says a new one will not help (at most
//! [`MAX_LOGINS`] in all).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context};
use serde_json::Value;
use tokio::process::Command;

use super::bridge::Bridge;
use crate::admin::{get_json, post_json};
use crate::daemon::{proxy_client, write_private, Setup, TestDaemon};

/// The Client ID Metadata Document URL the suite's CIMD scenario expects (its
/// `CIMD_CLIENT_METADATA_URL`); the daemon registers instead where the server lacks support.
pub const CIMD_CLIENT_ID: &str = "https://conformance-test.local/client-metadata.json";

/// Logins per scenario: the first, then one per step-up the client reports. Above the suite's
/// limit of 3 authorization attempts, so that `auth/scope-retry-limit` tests the daemon's own
/// limit (it says when a new login will not help), not this one.
pub const MAX_LOGINS: usize = 5;

/// Exit code of `client.mjs` when the daemon says a (new) login is needed.
const NEEDS_LOGIN: i32 = 3;

/// What the suite hands the client.
pub struct Scenario {
    pub name: String,
    pub server_url: String,
    /// `MCP_CONFORMANCE_CONTEXT`, parsed.
    pub context: Value,
}

impl Scenario {
    fn is_auth(&self) -> bool {
        self.name.starts_with("auth/")
    }

    fn context_str(&self, key: &str) -> anyhow::Result<&str> {
        self.context[key]
            .as_str()
            .with_context(|| format!("{} without {key} in MCP_CONFORMANCE_CONTEXT", self.name))
    }
}

/// Runs one scenario; returns the plain client's exit code.
pub async fn run(scenario: &Scenario, client_js: &Path) -> anyhow::Result<i32> {
    let bridge = Bridge::new();
    let setup = Setup::new()?;
    let config = setup.write_config(&config(scenario, &bridge, &setup).await?)?;
    let daemon = TestDaemon::start(&config, &[]).await?;
    bridge.exclude(daemon.addr.port());
    let result = drive(scenario, &daemon, &bridge, client_js).await;
    // The suite keeps the client's stderr: the daemon's log is there for a failed scenario.
    eprintln!("--- mcpproxyd log\n{}", daemon.logs());
    result
}

async fn drive(
    scenario: &Scenario,
    daemon: &TestDaemon,
    bridge: &Bridge,
    client_js: &Path,
) -> anyhow::Result<i32> {
    let interactive = scenario.is_auth() && !scenario.name.starts_with("auth/client-credentials");
    let mut logins = 0;
    loop {
        if interactive {
            logins += 1;
            login(daemon, bridge).await?;
        }
        let code = run_client(scenario, daemon, client_js).await?;
        if code == NEEDS_LOGIN && interactive && logins < MAX_LOGINS {
            eprintln!("driver: the daemon asks for a new login ({logins} so far)");
            continue;
        }
        return Ok(code);
    }
}

/// The daemon config: the upstream behind the bridge with an `oauth` profile for `auth/`
/// scenarios; a plain loopback upstream with a static (unused) token for the others.
async fn config(scenario: &Scenario, bridge: &Bridge, setup: &Setup) -> anyhow::Result<String> {
    let store = setup.path("state");
    if !scenario.is_auth() {
        write_private(&setup.path("token"), "unused-by-the-suite\n")?;
        return Ok(format!(
            "[store]\nkind = \"file\"\ndir = {store:?}\n\n\
             [auth.suite]\nkind = \"static\"\ntoken_file = {token:?}\n\n\
             [[upstream]]\nname = \"suite\"\nurl = {url:?}\nauth = \"suite\"\nallow_http = true\n",
            token = setup.path("token"),
            url = scenario.server_url,
        ));
    }
    let ca = setup.path("bridge-ca.pem");
    std::fs::write(&ca, bridge.ca_pem())?;
    let mut client = client_keys(scenario, setup)?;
    if scenario.name.starts_with("auth/client-credentials") {
        // A machine profile is configured with its authorization server (the daemon does not
        // discover one for it): the operator, who was given the client, knows it.
        let issuer = operator_known_issuer(scenario, bridge).await?;
        client.push_str(&format!("issuer = {issuer:?}\n"));
        if scenario.name == "auth/client-credentials-jwt" {
            // The assertion's `aud` is signed, so the bridge cannot rewrite it: the operator
            // names the audience the suite's server checks (its own http origin), as one
            // would for a server that wants another `aud` than its issuer.
            let audience = bridge.http_url(&issuer);
            client.push_str(&format!("private_key_audience = {audience:?}\n"));
        }
    }
    Ok(format!(
        "[store]\nkind = \"file\"\ndir = {store:?}\n\n\
         [auth.suite]\nkind = \"oauth\"\nca_file = {ca:?}\n{client}\n\
         [[upstream]]\nname = \"suite\"\nurl = {url:?}\nauth = \"suite\"\nca_file = {ca:?}\n",
        url = bridge.https_url(&scenario.server_url),
    ))
}

/// The first authorization server the scenario's protected-resource metadata names (at the
/// RFC 9728 place for the server URL), as the bridge rewrote it.
async fn operator_known_issuer(scenario: &Scenario, bridge: &Bridge) -> anyhow::Result<String> {
    let url = url::Url::parse(&bridge.https_url(&scenario.server_url))?;
    let prm = format!(
        "{}/.well-known/oauth-protected-resource{}",
        url.origin().ascii_serialization(),
        url.path().trim_end_matches('/')
    );
    let browser = crate::tls::reqwest_client(bridge.client_config());
    let doc: Value = browser.get(&prm).send().await?.json().await?;
    doc["authorization_servers"][0]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("{prm} names no authorization server: {doc}"))
}

/// The profile's client keys: the context's pre-registered client where the scenario gives
/// one, else the CIMD URL (the daemon falls back to registration by itself).
fn client_keys(scenario: &Scenario, setup: &Setup) -> anyhow::Result<String> {
    let secret_file = |secret: &str| -> anyhow::Result<PathBuf> {
        let path = setup.path("client-secret");
        write_private(&path, &format!("{secret}\n"))?;
        Ok(path)
    };
    Ok(match scenario.name.as_str() {
        "auth/pre-registration" => format!(
            "client_id = {:?}\nclient_secret_file = {:?}\n",
            scenario.context_str("client_id")?,
            secret_file(scenario.context_str("client_secret")?)?,
        ),
        "auth/client-credentials-basic" => format!(
            "grant = \"client_credentials\"\nclient_id = {:?}\nclient_secret_file = {:?}\n",
            scenario.context_str("client_id")?,
            secret_file(scenario.context_str("client_secret")?)?,
        ),
        "auth/client-credentials-jwt" => {
            let key = setup.path("client-key.pem");
            write_private(&key, scenario.context_str("private_key_pem")?)?;
            format!(
                "grant = \"client_credentials\"\nclient_id = {:?}\nprivate_key_file = {:?}\n\
                 private_key_alg = {:?}\n",
                scenario.context_str("client_id")?,
                key,
                scenario.context_str("signing_algorithm")?,
            )
        }
        _ => format!("client_id = {CIMD_CLIENT_ID:?}\n"),
    })
}

/// `POST /v1/login`, the authorization server's redirect (it approves at once) followed to
/// the daemon's callback, then the login's outcome, which must be success.
async fn login(daemon: &TestDaemon, bridge: &Bridge) -> anyhow::Result<()> {
    let socket = daemon.admin_socket();
    let (status, started) = post_json(&socket, "/v1/login", "{}").await?;
    if status != 200 {
        bail!("POST /v1/login: {status} {started}");
    }
    let id = started["id"].as_str().context("login id")?;
    let url = started["url"].as_str().context("login url")?;
    let browser = crate::tls::reqwest_client(bridge.client_config());
    let resp = browser
        .get(url)
        .send()
        .await
        .context("GET the authorize URL")?;
    let location = resp
        .headers()
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .with_context(|| {
            format!(
                "the authorize URL answered {} without Location",
                resp.status()
            )
        })?
        .to_string();
    let page = proxy_client().get(&location).send().await?;
    eprintln!("driver: callback answered {}", page.status());
    let (_, done) = get_json(&socket, &format!("/v1/login/{id}?wait=10")).await?;
    if done["status"] != "succeeded" {
        bail!("the login did not succeed: {done}");
    }
    Ok(())
}

/// `node client.mjs http://DAEMON/` with the scenario's environment; its exit code.
async fn run_client(
    scenario: &Scenario,
    daemon: &TestDaemon,
    client_js: &Path,
) -> anyhow::Result<i32> {
    let status = Command::new("node")
        .arg(client_js)
        .arg(daemon.url("/"))
        .env("MCP_CONFORMANCE_SCENARIO", &scenario.name)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .context("run node")?;
    Ok(status.code().unwrap_or(1))
}
