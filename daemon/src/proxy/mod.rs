//! The data plane: what a request from a local app meets, in order.
//!
//! - [`server`]: accept loops over already-bound listeners, connection limits, graceful shutdown.
//! - [`pipeline`]: one pass per request, guard → path and route → ACL → token → forward → respond.
//! - [`guard`]: `Host`/`Origin` checks against DNS rebinding, CORS for allowed origins.
//! - [`path`]: the normal-form check that keeps the ACL honest; mount mapping.
//! - [`acl`]: allowed and blocked servers, matched against the catalog.
//! - [`forward`]: the request sent upstream with the profile's token.
//! - [`headers`], [`body`], [`sse`]: what crosses the proxy, streamed; SSE endpoint rewriting.
//! - [`rpc_scan`]: the JSON-RPC method and tool name, read as the body streams by (audit).
//! - [`error`]: every error the proxy answers itself, mapped to a status in one place.

pub mod acl;
pub mod body;
pub mod error;
pub mod forward;
pub mod guard;
pub mod headers;
pub mod overload;
pub mod path;
pub mod pipeline;
pub mod rpc_scan;
pub mod server;
pub mod sse;
