//! mcpproxyd: a long-running proxy that lets applications which cannot do OAuth call remote,
//! OAuth-protected MCP servers. It adds the credentials, streams the traffic, and keeps the port
//! safe for local use.
//!
//! Modules, in the order a request meets them:
//! - [`server`]: accept loops over bound listeners, connection limits, graceful shutdown.
//! - [`proxy`]: the pipeline, guard → route → ACL → token → forward → respond.
//! - [`guard`]: `Host`/`Origin` checks against DNS rebinding, CORS for allowed origins.
//! - [`path`]: the normal-form check that keeps the ACL honest; mount mapping.
//! - [`acl`]: allowed and blocked servers; [`catalog`]: which servers exist, at which paths.
//! - [`tokens`]: the token each auth profile sends, kept fresh by [`refresh`]; [`login`] and
//!   [`oauth`] obtain them, [`token_store`] keeps them.
//! - [`headers`], [`body`], [`sse`]: what crosses the proxy, streamed; SSE endpoint rewriting.
//! - [`http_client`]: the one outbound client setup (rustls, no redirects, no env proxies).
//! - [`error`]: every error the proxy answers itself, mapped to a status in one place.
//!
//! Beside the proxy port: [`admin`] (the Unix-socket admin API) and [`metrics`].
//!
//! Around them: [`config`] (the one place that reads the config), [`state`] (the generation
//! swapped at reload), [`cli`] (the binary), [`banner`], [`logging`] and [`journald`],
//! [`systemd`] (readiness, status, watchdog, socket activation), [`alibaba`] (region presets).

pub mod acl;
pub mod admin;
pub mod alibaba;
pub mod banner;
pub mod body;
pub mod catalog;
pub mod catalog_task;
pub mod cli;
pub mod config;
pub mod error;
pub mod forward;
pub mod guard;
pub mod headers;
pub mod http_client;
pub mod import;
pub mod journald;
pub mod logging;
pub mod login;
pub mod metrics;
pub mod oauth;
pub mod path;
pub mod proxy;
pub mod refresh;
pub mod rpc_scan;
pub mod server;
pub mod sse;
pub mod state;
pub mod systemd;
pub mod terminal_login;
pub mod token_store;
pub mod tokens;

pub use server::{run, Daemon};
