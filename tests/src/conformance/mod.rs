//! The harness that runs mcpproxyd under the official MCP conformance suite
//! (`tests/conformance/run.sh`): [`bridge`] puts the suite's plain-HTTP servers behind HTTPS,
//! [`driver`] is the "client" the suite runs (the daemon, a headless login, a plain MCP client).

pub mod bridge;
pub mod driver;
mod rewrite;
