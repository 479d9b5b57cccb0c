//! The client command of the MCP conformance suite (`tests/conformance/run.sh`):
//! `mcp-conformance-client SERVER_URL`, scenario in `MCP_CONFORMANCE_SCENARIO`, its data in
//! `MCP_CONFORMANCE_CONTEXT`. Runs the daemon and a plain MCP client as that client (see
//! `mcpproxy_tests::conformance::driver`); exits with the plain client's code.

use std::path::PathBuf;

use anyhow::Context;
use mcpproxy_tests::conformance::driver::{self, Scenario};

#[tokio::main]
async fn main() {
    let code = tokio::select! {
        result = run() => match result {
            Ok(code) => code,
            Err(e) => {
                eprintln!("mcp-conformance-client: {e:#}");
                1
            }
        },
        // The suite stops a client that overruns its timeout: the daemon and the plain client
        // go with it (they are killed when dropped).
        () = terminated() => 143,
    };
    std::process::exit(code);
}

async fn run() -> anyhow::Result<i32> {
    let server_url = std::env::args()
        .nth(1)
        .context("usage: mcp-conformance-client SERVER_URL")?;
    let name = std::env::var("MCP_CONFORMANCE_SCENARIO").context("MCP_CONFORMANCE_SCENARIO")?;
    let context = match std::env::var("MCP_CONFORMANCE_CONTEXT") {
        Ok(text) => serde_json::from_str(&text).context("MCP_CONFORMANCE_CONTEXT")?,
        Err(_) => serde_json::Value::Null,
    };
    let scenario = Scenario {
        name,
        server_url,
        context,
    };
    driver::run(&scenario, &client_js()?).await
}

/// `$MCPPROXY_CONFORMANCE_CLIENT`, else `tests/conformance/client.mjs` of the workspace this
/// binary was built in (`target/debug/..`).
fn client_js() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("MCPPROXY_CONFORMANCE_CLIENT") {
        return Ok(path.into());
    }
    let exe = std::env::current_exe()?;
    let root = exe
        .ancestors()
        .nth(3)
        .context("the binary is not in target/PROFILE")?;
    Ok(root.join("tests/conformance/client.mjs"))
}

async fn terminated() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            term.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}
