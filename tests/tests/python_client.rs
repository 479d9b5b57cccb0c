//! A real third-party MCP client through the real daemon: the official Python MCP SDK (`mcp`
//! on PyPI, pinned by `tests/python/requirements.txt`) runs `tests/python/mcp_client_check.py`
//! against the proxy, over Streamable HTTP and over legacy HTTP+SSE: initialize, tools/list,
//! `echo` and `add`. The upstream must see the proxy's bearer token on every request, never
//! the client's own.
//!
//! The venv is `target/python-venv`, made by `make test-deps`. Without it the test fails with
//! the command that makes it (see [`mcpproxy_tests::prereq`]).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use mcpproxy_tests::daemon::Setup;
use mcpproxy_tests::upstream::{self, TestUpstream, UpstreamOptions};
use serde_json::Value;
use tokio::process::Command;

/// The client's own credential: the proxy must drop it and send the upstream's.
const CLIENT_TOKEN: &str = "python-client-own-token";
/// The script bounds itself to this many seconds; the test waits a little longer.
const CLIENT_TIMEOUT_SECS: u64 = 20;
const MOUNT: &str = "/accounts/1/custom/tools/id/T1";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

const VENV_COMMAND: &str = "python3 -m venv target/python-venv && \
     target/python-venv/bin/pip install -q -r tests/python/requirements.txt";

/// The venv's python, or `None` when it is missing and skips are allowed (else a failure).
fn venv_python() -> Option<PathBuf> {
    let python = repo().join("target/python-venv/bin/python");
    if python.exists() {
        return Some(python);
    }
    mcpproxy_tests::prereq::missing(
        &python.display().to_string(),
        &format!("create it from the workspace root with `{VENV_COMMAND}`"),
    );
    None
}

/// The `mcp` version pinned in tests/python/requirements.txt.
fn pinned_sdk_version() -> String {
    let path = repo().join("tests/python/requirements.txt");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .find_map(|l| l.trim().strip_prefix("mcp=="))
        .unwrap_or_else(|| panic!("no `mcp==` pin in {}", path.display()))
        .trim()
        .to_string()
}

/// Runs the SDK client against `url`; returns its JSON line after checking the exit status.
async fn run_client(python: &Path, url: &str, transport: &str) -> Value {
    run_client_with(python, url, transport, &[]).await
}

/// [`run_client`] with more arguments for the script (`--denied TOOL`).
async fn run_client_with(python: &Path, url: &str, transport: &str, extra: &[&str]) -> Value {
    let out = client_output(python, url, transport, CLIENT_TOKEN, extra).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{transport}: mcp_client_check.py failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("{transport}: not a JSON line ({e}): {stdout}\n{stderr}"))
}

/// Runs the SDK client, sending `Authorization: Bearer <bearer>` with the SDK's `headers=`.
async fn client_output(
    python: &Path,
    url: &str,
    transport: &str,
    bearer: &str,
    extra: &[&str],
) -> std::process::Output {
    let script = repo().join("tests/python/mcp_client_check.py");
    let mut cmd = Command::new(python);
    cmd.arg(&script)
        .args(["--url", url, "--transport", transport])
        .args(extra)
        .args(["--timeout", &CLIENT_TIMEOUT_SECS.to_string()])
        .args(["--bearer", bearer])
        // Loopback only: no proxy from the environment; no __pycache__ in the source tree.
        .env("NO_PROXY", "*")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for var in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
        cmd.env_remove(var).env_remove(var.to_ascii_lowercase());
    }
    tokio::time::timeout(Duration::from_secs(CLIENT_TIMEOUT_SECS + 10), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{transport}: the Python client did not finish"))
        .unwrap_or_else(|e| panic!("spawn {}: {e}", python.display()))
}

/// Every request the upstream got under [`MOUNT`] carried exactly one `Authorization`, the
/// proxy's; returns the (method, path) pairs seen.
fn assert_upstream_saw_only_the_proxy_token(up: &TestUpstream) -> Vec<(String, String)> {
    let expected = format!("Bearer {}", up.token());
    let reqs: Vec<_> = up
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with(MOUNT))
        .collect();
    for r in &reqs {
        let auths: Vec<_> = r
            .headers
            .iter()
            .filter(|(n, _)| n == "authorization")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(auths, [expected.as_str()], "{} {}", r.method, r.path);
        assert!(
            r.headers.iter().all(|(_, v)| !v.contains(CLIENT_TOKEN)),
            "the client's token reached the upstream: {r:?}"
        );
    }
    reqs.into_iter().map(|r| (r.method, r.path)).collect()
}

fn assert_results(result: &Value, transport: &str) {
    assert_eq!(result["transport"], transport, "{result}");
    assert_eq!(
        result["sdk"],
        pinned_sdk_version().as_str(),
        "{result}: rebuild the venv"
    );
    assert_eq!(result["echo"], "via python", "{result}");
    assert_eq!(result["add"], "5", "{result}");
    assert_eq!(result["server"], "mcp-test-upstream", "{result}");
    let tools: Vec<&str> = result["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {result}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        tools.contains(&"echo") && tools.contains(&"add"),
        "{result}"
    );
    assert!(result["protocol_version"].is_string(), "{result}");
}

#[tokio::test]
async fn official_python_sdk_works_through_the_proxy_over_streamable_http_and_sse() {
    let Some(python) = venv_python() else {
        return;
    };
    let up = upstream::start(UpstreamOptions::default())
        .await
        .expect("test upstream");
    let setup = Setup::new().unwrap();
    let d = setup.static_daemon(&up, "").await.unwrap();

    // Streamable HTTP: rmcp's stateful endpoint, with SSE answers.
    let result = run_client(&python, &d.url(&format!("{MOUNT}/mcp")), "streamable").await;
    assert_results(&result, "streamable");
    let seen = assert_upstream_saw_only_the_proxy_token(&up);
    let mcp_path = format!("{MOUNT}/mcp");
    let posts = seen
        .iter()
        .filter(|(m, p)| m == "POST" && *p == mcp_path)
        .count();
    // initialize, notifications/initialized, tools/list, two tools/call.
    assert!(posts >= 5, "{seen:?}");

    // Legacy HTTP+SSE: GET …/sse, then POSTs to the endpoint the proxy rewrote.
    let before = seen.len();
    let result = run_client(&python, &d.url(&format!("{MOUNT}/sse")), "sse").await;
    assert_results(&result, "sse");
    let seen = assert_upstream_saw_only_the_proxy_token(&up);
    let sse = &seen[before..];
    assert!(
        sse.iter()
            .any(|(m, p)| m == "GET" && *p == format!("{MOUNT}/sse")),
        "{sse:?}"
    );
    let message_posts = sse
        .iter()
        .filter(|(m, p)| m == "POST" && *p == format!("{MOUNT}/message"))
        .count();
    assert!(message_posts >= 5, "{sse:?}");

    assert!(
        !d.logs().contains(CLIENT_TOKEN),
        "the client's token reached the log"
    );
}

/// A listener that requires client keys: the SDK sends the key with its `headers=` option on
/// both transports, the proxy swaps it for the upstream token, and without a key nothing
/// reaches the upstream.
#[tokio::test]
async fn official_python_sdk_works_with_a_client_key_on_both_transports() {
    let Some(python) = venv_python() else {
        return;
    };
    let up = upstream::start(UpstreamOptions::default())
        .await
        .expect("test upstream");
    let setup = Setup::new().unwrap();
    let state = setup.path("state");
    let extra = format!("[listen]\nrequire_client_keys = true\n[store]\ndir = {state:?}\n");
    let d = setup.static_daemon(&up, &extra).await.unwrap();
    let (status, added) =
        mcpproxy_tests::admin::post_json(&d.admin_socket(), "/v1/keys", r#"{"name":"python"}"#)
            .await
            .unwrap();
    assert_eq!(status, 200, "{added}");
    let key = added["key"].as_str().unwrap().to_string();

    // Without a key the SDK is refused by the proxy; the upstream sees nothing.
    let refused = client_output(
        &python,
        &d.url(&format!("{MOUNT}/mcp")),
        "streamable",
        CLIENT_TOKEN,
        &[],
    )
    .await;
    assert!(
        !refused.status.success(),
        "a client without a key got through"
    );
    assert!(
        up.requests().iter().all(|r| !r.path.starts_with(MOUNT)),
        "a refused request reached the upstream"
    );

    for (endpoint, transport) in [("mcp", "streamable"), ("sse", "sse")] {
        let out = client_output(
            &python,
            &d.url(&format!("{MOUNT}/{endpoint}")),
            transport,
            &key,
            &[],
        )
        .await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{transport} with a key: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result: Value =
            serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
        assert_results(&result, transport);
    }
    let seen = assert_upstream_saw_only_the_proxy_token(&up);
    assert!(seen.len() >= 10, "{seen:?}");
    for r in up.requests() {
        assert!(
            r.headers.iter().all(|(_, v)| !v.contains(&key)),
            "the key reached the upstream: {r:?}"
        );
    }
    assert!(!d.logs().contains(&key), "the key reached the log");
    let logs = d.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("proxied") && l.contains("key=\"python\"")),
        "the journal names the key of each request:\n{logs}"
    );
}

/// A tool policy that denies `add`: the SDK must not be offered it (the rmcp server answers
/// tools/list as an event stream, filtered per event), and calling it anyway must come back
/// as a JSON-RPC error the SDK raises as `MCPError`, on a session that keeps working; over
/// Streamable HTTP and over legacy HTTP+SSE (where the answer comes on the GET stream).
#[tokio::test]
async fn official_python_sdk_sees_a_denied_tool_as_a_tool_error() {
    let Some(python) = venv_python() else {
        return;
    };
    let up = upstream::start(UpstreamOptions::default())
        .await
        .expect("test upstream");
    let setup = Setup::new().unwrap();
    let policy =
        "[[policy]]\nname = \"no-add\"\nupstreams = [\"test\"]\nblocked_tools = [\"add\"]\n";
    let d = setup.static_daemon(&up, policy).await.unwrap();
    for (endpoint, transport) in [("mcp", "streamable"), ("sse", "sse")] {
        let url = d.url(&format!("{MOUNT}/{endpoint}"));
        let result = run_client_with(&python, &url, transport, &["--denied", "add"]).await;
        let tools: Vec<&str> = result["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("no tools in {result}"))
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            tools.contains(&"echo") && !tools.contains(&"add"),
            "{result}"
        );
        assert_eq!(result["denied"]["code"], -32050, "{result}");
        let message = result["denied"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("no-add") && message.contains("add"),
            "{result}"
        );
        assert_eq!(result["echo"], "via python", "{result}");
    }
    d.wait_for_log("tool call refused").await.unwrap();
}
