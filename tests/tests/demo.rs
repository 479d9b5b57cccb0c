//! The README's quick start: `scripts/demo.sh --once` (what `make demo` runs, minus the wait
//! for Ctrl-C) starts the test MCP server and the daemon, calls a tool through the proxy and
//! shows the status, then stops both and removes its run directory. Twice in a row, as a
//! newcomer re-running it would: the second run must not see the first run's token.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use mcpproxy_tests::daemon::{bin_path, WAIT};
use mcpproxy_tests::{prereq, procs};

/// The demo's processes in a group of their own, killed together if the test fails early.
struct Group(i32);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0)])
            .stderr(Stdio::null())
            .status();
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .into()
}

/// Runs the demo once to the end: its whole output.
async fn run_demo() -> String {
    let bin_dir = bin_path("mcpproxyd").parent().unwrap().to_path_buf();
    let child = tokio::process::Command::new("bash")
        .arg(repo().join("scripts/demo.sh"))
        .arg("--once")
        .env("DEMO_PORT", "0")
        .env("DEMO_BIN_DIR", &bin_dir)
        .env("DEMO_WAIT", WAIT.as_secs().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("bash runs scripts/demo.sh");
    let _group = Group(child.id().unwrap() as i32);
    // Bounded: two starts (each bounded by DEMO_WAIT) and one call.
    let out = tokio::time::timeout(WAIT * 3, child.wait_with_output())
        .await
        .expect("the demo did not finish in time")
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "demo failed ({}):\n{text}",
        out.status
    );
    text
}

#[tokio::test]
async fn the_demo_calls_a_tool_through_the_proxy_and_cleans_up_every_time() {
    if !prereq::have(
        "curl",
        &["--version"],
        "install it with `apt-get install curl`",
    ) {
        return;
    }
    let mut run_dirs = Vec::new();
    for _ in 0..2 {
        let out = run_demo().await;
        // The tool's answer came back through the proxy, which added the token itself.
        let answer = out
            .lines()
            .find(|l| l.contains("\"result\""))
            .unwrap_or_else(|| panic!("no tool result:\n{out}"));
        assert!(answer.contains("hello through mcpproxyd"), "{out}");
        assert!(out.contains("demo (static): valid"), "status: {out}");
        for hint in [
            "Streamable HTTP  http://127.0.0.1:",
            "legacy SSE       http://127.0.0.1:",
        ] {
            assert!(out.contains(hint), "{hint} missing:\n{out}");
        }
        assert!(out.contains("mcpproxyctl --socket"), "{out}");
        let run = out
            .split_whitespace()
            .find_map(|w| w.strip_suffix("/admin.sock"))
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("no run directory in:\n{out}"));
        // Both processes are gone and the run directory (with the token) is removed.
        assert!(procs::with_arg(&run.join("demo.toml")).is_empty(), "{out}");
        assert!(procs::with_arg(&run.join("upstream")).is_empty(), "{out}");
        assert!(!run.exists(), "{} is left behind", run.display());
        run_dirs.push(run);
    }
    assert_ne!(run_dirs[0], run_dirs[1], "each run has a fresh directory");
}
