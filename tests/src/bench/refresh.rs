//! Token refresh under load: the daemon with an OAuth profile, logged in at the tests
//! crate's HTTPS authorization server whose access tokens live 2 s (so the daemon's refresher
//! spends the refresh token about every second), under a time-bounded c=N JSON-RPC load of
//! its own; then the same load on the same daemon once its token lives an hour (no refresh).
//! Counts failed requests (anything but 200) and keeps the first few for the report.
//!
//! Only the mcpproxyd column: direct access and nginx have no OAuth client to refresh with.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::Method;
use tokio::task::JoinSet;

use super::daemon::Daemon;
use super::load::{http1_client, Samples, Side};
use super::report::{Kind, Report};
use super::{Args, Env, RPC_BODY, RPC_PATH};
use crate::admin::{get_json, post_json};
use crate::daemon::Setup;
use crate::oauth::{self, OAuthOptions, OAuthServer};
use crate::upstream::{self, TestUpstream, TokenValidator, UpstreamOptions};

/// The access-token lifetime that makes the daemon refresh every second (its margin is half
/// the lifetime, in whole seconds).
const SHORT_LIFETIME: Duration = Duration::from_secs(2);
const LONG_LIFETIME: Duration = Duration::from_secs(3600);
/// Failed requests kept, with their answers, for the report.
const KEEP_FAILURES: usize = 5;

/// What one timed load run saw.
#[derive(Default)]
struct Outcome {
    samples: Samples,
    failed: u64,
    failures: Vec<String>,
}

/// The authorization server, its upstream and the daemon logged in there.
struct World {
    auth: Arc<OAuthServer>,
    _up: TestUpstream,
    _setup: Setup,
    daemon: Daemon,
}

async fn start_world(env: &Env, log: &str) -> anyhow::Result<World> {
    let auth = Arc::new(
        oauth::start(OAuthOptions {
            access_lifetime: SHORT_LIFETIME,
            ..Default::default()
        })
        .await
        .context("starting the OAuth server")?,
    );
    let checker = auth.clone();
    let up = upstream::start(UpstreamOptions {
        validator: Some(TokenValidator(Arc::new(move |t| checker.is_active(t)))),
        tls: true,
        authorization_server: Some(auth.issuer().to_string()),
        ..Default::default()
    })
    .await
    .context("starting the OAuth upstream")?;
    let setup = Setup::new()?;
    std::fs::write(setup.path("as-ca.pem"), auth.ca_pem())?;
    std::fs::write(setup.path("up-ca.pem"), up.ca_pem().context("upstream CA")?)?;
    let text = format!(
        "[store]\nkind = \"file\"\ndir = {store:?}\n\n\
         [auth.corp]\nkind = \"oauth\"\nclient_id = \"test-client\"\nca_file = {asca:?}\n\n\
         [[upstream]]\nname = \"corp\"\nurl = {url:?}\nauth = \"corp\"\nca_file = {upca:?}\n\n\
         [log]\nlevel = {log:?}\n",
        store = setup.path("state"),
        asca = setup.path("as-ca.pem"),
        upca = setup.path("up-ca.pem"),
        url = up.base_url(),
    );
    let config = setup.write_config(&text)?;
    let daemon = Daemon::start(&env.daemon_bin, &config, setup.dir.path()).await?;
    login(&auth, &setup.dir.path().join("run").join("admin.sock"))
        .await
        .with_context(|| format!("logging the OAuth daemon in{}", daemon.stderr_hint()))?;
    Ok(World {
        auth,
        _up: up,
        _setup: setup,
        daemon,
    })
}

/// `POST /v1/login`, the browser's part (the AS redirects at once to the daemon's callback),
/// then waits for the login to finish.
async fn login(auth: &OAuthServer, admin: &Path) -> anyhow::Result<()> {
    let (status, v) = post_json(admin, "/v1/login", "{}").await?;
    ensure!(status == 200, "POST /v1/login answered {status}: {v}");
    let id = v["id"].as_str().context("login id")?;
    let url = v["url"].as_str().context("login url")?;
    let resp = auth.http_client().get(url).send().await?;
    ensure!(resp.status() == 302, "the AS answered {}", resp.status());
    let location = resp.headers()["location"].to_str()?.to_owned();
    let page = crate::daemon::proxy_client().get(&location).send().await?;
    ensure!(
        page.status() == 200,
        "the callback answered {}",
        page.status()
    );
    let (_, s) = get_json(admin, &format!("/v1/login/{id}?wait=10")).await?;
    ensure!(s["status"] == "succeeded", "login: {s}");
    Ok(())
}

/// `conc` workers POSTing the `tools/call` until `run` has passed; a failure is counted (with
/// its answer) and the worker goes on.
async fn load_for(side: &Side, conc: u64, run: Duration) -> Outcome {
    let started = Instant::now();
    let deadline = started + run;
    let failures = Arc::new(Mutex::new(Vec::new()));
    let mut workers = JoinSet::new();
    for _ in 0..conc {
        let side = side.clone();
        let failures = failures.clone();
        workers.spawn(async move {
            let (mut latencies, mut failed) = (Vec::new(), 0u64);
            while Instant::now() < deadline {
                let t = Instant::now();
                match call(&side).await {
                    Ok(()) => latencies.push(t.elapsed()),
                    Err(why) => {
                        failed += 1;
                        let mut f = failures.lock().unwrap_or_else(|e| e.into_inner());
                        if f.len() < KEEP_FAILURES {
                            f.push(why);
                        }
                    }
                }
            }
            (latencies, failed)
        });
    }
    let mut out = Outcome::default();
    while let Some(joined) = workers.join_next().await {
        if let Ok((latencies, failed)) = joined {
            out.samples.latencies.extend(latencies);
            out.failed += failed;
        }
    }
    out.samples.wall = started.elapsed();
    out.failures = std::mem::take(&mut *failures.lock().unwrap_or_else(|e| e.into_inner()));
    out
}

/// One `tools/call`; `Err` says what came back instead of a 200.
async fn call(side: &Side) -> Result<(), String> {
    let resp = side
        .request(Method::POST, RPC_PATH)
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "application/json, text/event-stream")
        .body(RPC_BODY)
        .send()
        .await
        .map_err(|e| format!("{e:#}"))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| format!("body: {e:#}"))?;
    if status == 200 {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    Err(format!("{status}: {text}"))
}

fn rows(report: &mut Report, label: &str, out: &Outcome, refreshes: usize) {
    let one = |v: f64| [None, Some(v), None];
    let ok = out.samples.latencies.len() as f64;
    report.row(
        label,
        "requests/s",
        Kind::Rate,
        one(out.samples.per_second(ok)),
    );
    report.latency(label, "p50", [None, Some(out.samples.quantile(0.5)), None]);
    report.latency(label, "p99", [None, Some(out.samples.quantile(0.99)), None]);
    report.row(
        label,
        "failed requests",
        Kind::Plain,
        one(out.failed as f64),
    );
    report.row(label, "token refreshes", Kind::Plain, one(refreshes as f64));
    for f in &out.failures {
        report.note(format!("{label}: failed: {f}"));
    }
}

/// The load with a refresh every second, then without, on the same daemon.
pub(super) async fn refresh(args: &Args, env: &Env, report: &mut Report) -> anyhow::Result<()> {
    let mut world = start_world(env, &args.daemon_log).await?;
    let side = Side {
        name: "mcpproxyd (OAuth)",
        client: http1_client(crate::tls::client_config_with_roots(
            rustls::RootCertStore::empty(),
        ))?,
        base: format!("http://{}", world.daemon.addr),
        auth: None,
    };
    let run = Duration::from_secs(args.refresh_seconds);
    let conc = args.refresh_concurrency;
    let grants = |w: &World| w.auth.token_requests("refresh_token");

    let before = grants(&world);
    let with = load_for(&side, conc, run).await;
    let label = format!("c={conc} JSON-RPC, OAuth token refreshed every second, {run:?}");
    rows(report, &label, &with, grants(&world) - before);
    println!("  done: {label}");

    // The next refresh brings an hour-long token; after it the daemon stops refreshing.
    world.auth.set_access_lifetime(LONG_LIFETIME);
    let next = grants(&world) + 1;
    let waited = tokio::time::timeout(
        SHORT_LIFETIME * 5,
        world.auth.wait_token_requests("refresh_token", next),
    )
    .await;
    ensure!(
        waited.is_ok(),
        "the OAuth daemon did not refresh within {:?}{}",
        SHORT_LIFETIME * 5,
        world.daemon.stderr_hint()
    );
    let before = grants(&world);
    let without = load_for(&side, conc, run).await;
    let label = format!("c={conc} JSON-RPC, same OAuth daemon, no refresh, {run:?}");
    rows(report, &label, &without, grants(&world) - before);
    report.row(
        &label,
        "p99 with refresh / without (%)",
        Kind::Cost,
        [
            None,
            Some(
                100.0 * with.samples.quantile(0.99).as_secs_f64()
                    / without.samples.quantile(0.99).as_secs_f64().max(1e-9),
            ),
            None,
        ],
    );
    report.note(
        "token refresh: only the mcpproxyd column (direct access and nginx have no OAuth client)",
    );
    println!("  done: {label}");
    world.daemon.stop().await;
    Ok(())
}
