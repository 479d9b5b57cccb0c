//! The data plane: what a request from a local app meets, in order.
//!
//! - [`server`]: accept loops over already-bound listeners, connection limits, graceful shutdown;
//!   [`listener`]: TCP and Unix-socket listeners behind one accept interface, Unix peers checked;
//!   [`workers`]: one single-threaded runtime per core that serves the connections.
//! - [`conn`]: each connection's deadlines: first request, idle between requests;
//!   [`nofile`]: the open-file limit sized against `limits.max_connections`; [`trim`]: freed
//!   memory handed back after a burst of connections.
//! - [`pipeline`]: one pass per request, guard → path and route → ACL → tool policy → token →
//!   forward → [`respond`].
//! - [`guard`]: `Host`/`Origin` checks against DNS rebinding, CORS for allowed origins;
//!   [`client_key`]: the client key, where the listener requires one.
//! - [`path`]: the normal-form check that keeps the ACL honest; mount mapping.
//! - [`acl`]: allowed and blocked servers, matched against the catalog.
//! - [`forward`]: the request sent upstream with the profile's token; [`pool`] the upstream
//!   connections (HTTP/2 spread over more connections past the peer's stream limit), [`dial`]
//!   the upstream URL parsed once and each new connection (TCP, rustls, HTTP handshake),
//!   [`upstream_h2`] requests on an HTTP/2 upstream, sent from the request's own task.
//! - [`headers`], [`body`], [`sse`]: what crosses the proxy, streamed; SSE endpoint rewriting.
//! - [`rpc_scan`]: the JSON-RPC method and tool name, read as the body streams by (audit).
//! - [`tool_policy`]: the tool policy step; [`policy`] its pure matching, [`jsonrpc`] the
//!   strict body check, [`tool_filter`] `tools/list` filtering, [`tool_audit`] call outcomes,
//!   [`tool_reply`] the proxy's JSON-RPC answers, [`legacy_denial`] denials on legacy streams.
//! - [`step_up`]: an upstream's 403 `insufficient_scope`, recorded and explained.
//! - [`error`]: every error the proxy answers itself, mapped to a status in one place.

pub mod acl;
pub mod body;
pub mod client_key;
pub mod conn;
pub mod dial;
pub mod error;
pub mod forward;
pub mod guard;
pub mod headers;
pub mod jsonrpc;
pub mod legacy_denial;
pub mod listener;
pub mod nofile;
pub mod overload;
pub mod path;
pub mod pipeline;
pub mod policy;
pub mod pool;
pub mod respond;
pub mod rpc_scan;
pub mod server;
pub mod sse;
pub mod step_up;
pub mod tool_audit;
pub mod tool_filter;
pub mod tool_policy;
pub mod tool_reply;
pub mod trim;
pub mod upstream_h2;
pub mod workers;
