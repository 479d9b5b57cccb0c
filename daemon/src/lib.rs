//! mcpproxyd: a long-running proxy that lets applications which cannot do OAuth call remote,
//! OAuth-protected MCP servers. It adds the credentials, streams the traffic, and keeps the port
//! safe for local use.
//!
//! The map, as in the README's diagram:
//! - [`proxy`]: the data plane, the proxy port and the pipeline a request meets
//!   (server → guard → path and route → ACL → token → forward → respond).
//! - [`auth`]: the credential plane, tokens per auth profile, refresh, login, OAuth and the
//!   token stores.
//! - [`control`]: the operator's side, the admin socket, systemd, metrics, banner and logging.
//! - [`catalog`]: which MCP servers exist behind each upstream, kept current by its task.
//! - [`alibaba`]: the Alibaba Cloud services (signer, IMS, server listing); the preset's
//!   regions and endpoints are configuration, in [`config::preset`].
//! - [`config`]: the one place that reads the config; [`state`]: the generation swapped at
//!   reload; [`clock`]: the wall clock, one seam that tests can pause; [`http_client`]: the
//!   one outbound client setup (rustls, no redirects, no env proxies); [`cli`]: the binary.

pub mod alibaba;
pub mod auth;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod http_client;
pub mod proxy;
pub mod state;

pub use proxy::server::{run, Daemon};
