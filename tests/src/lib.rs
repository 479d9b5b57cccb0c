//! Test peers and harness for mcpproxyd's end-to-end tests.
//!
//! - [`tls`]: a throwaway CA and `localhost` certificate; client and server rustls configs.
//! - [`upstream`]: the test MCP upstream (Streamable HTTP via rmcp, legacy SSE, raw
//!   HTTP helpers), started in-process on an ephemeral port or as the
//!   `mcp-test-upstream` binary.
//! - [`oauth`]: the test OAuth 2.1 authorization server (code + PKCE, refresh rotation,
//!   revocation, registration, injectable faults), in-process or as the
//!   `oauth-test-server` binary.
//! - [`aliyun_fake`]: the AccessKey-signed Alibaba Cloud services (IMS applications, the
//!   `ListApiMcpServers` listing), verifying every request's signature V3 itself.
//! - [`conformance`]: the MCP conformance suite's client command (a TLS bridge, the daemon,
//!   a headless login, a plain MCP client).
//! - [`oauth_world`]: the OAuth server, a discovering upstream and a daemon config, for the
//!   OAuth end-to-end tests.
//! - [`mcp_client`]: a small JSON-RPC-over-HTTP MCP client for tests.
//! - `accept`: the accept/TLS/shutdown loop the three peers share.
//! - [`sse`]: server-sent event formatting and incremental parsing.
//! - [`wait`]: bounded polling for conditions that send no event.
//! - [`prereq`]: tests that need an outside tool fail (or, when asked, skip) without it.
//! - [`procs`]: which processes are still alive (leak checks), from `/proc`.
//! - [`refusing`]: a bare HTTP/2 upstream that refuses chosen streams unprocessed.
//! - [`bench`]: the `mcpproxy-bench` program (mcpproxyd against direct access, one run).
#![forbid(unsafe_code)]

mod accept;
pub mod admin;
pub mod aliyun_fake;
mod bare_h2;
pub mod bench;
pub mod capped;
pub mod conformance;
pub mod daemon;
pub mod mcp_client;
pub mod oauth;
pub mod oauth_world;
pub mod prereq;
pub mod procs;
pub mod refusing;
pub mod sse;
pub mod tls;
pub mod upstream;
pub mod wait;
