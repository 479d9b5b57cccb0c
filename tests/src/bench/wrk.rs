//! Equivalent `wrk` command lines for an independent check of the JSON-RPC load.

use std::path::PathBuf;

use super::{Env, RPC_BODY};

impl Env {
    /// If `wrk` is installed: the equivalent JSON-RPC load as wrk command lines.
    pub(super) fn print_wrk_commands(&self) -> anyhow::Result<()> {
        let Some(wrk) = find_in_path("wrk") else {
            println!("\n(wrk not found on PATH: no wrk command lines for an independent check.)");
            return Ok(());
        };
        let script = self.setup.path("tools-call.lua");
        std::fs::write(
            &script,
            format!(
                "wrk.method = \"POST\"\nwrk.body = '{RPC_BODY}'\n\
                 wrk.headers[\"Content-Type\"] = \"application/json\"\n\
                 wrk.headers[\"Accept\"] = \"application/json, text/event-stream\"\n"
            ),
        )?;
        let script = script.display();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        println!(
            "\nwrk ({}) command lines for the same JSON-RPC load; they need the servers, which \
             stop when this program ends (run it with --hold to keep them):",
            wrk.display()
        );
        println!(
            "  wrk -t{threads} -c32 -d10s --latency -s {script} -H 'Authorization: Bearer {}' {}/mcp-demo",
            self.upstream.token(),
            self.upstream.base_url()
        );
        println!(
            "  wrk -t{threads} -c32 -d10s --latency -s {script} http://{}/mcp-demo",
            self.daemon.addr
        );
        Ok(())
    }
}

pub(super) fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}
