//! The operator's side: what runs beside the proxy port for the people who run the daemon.
//!
//! - [`admin`]: the Unix-socket admin API that `mcpproxyctl` and `curl --unix-socket` use.
//! - [`systemd`]: readiness, status, watchdog, socket activation.
//! - [`metrics`]: Prometheus counters; [`tool_metrics`]: tool calls by server, tool and outcome.
//! - [`banner`]: what the daemon prints at start.
//! - [`terminal`]: whether a `SIGHUP` means "reload" or "the terminal closed".
//! - [`logging`] and [`journald`]: where log lines go, with structured fields under journald;
//!   [`log_line`] (and [`log_time`]): the stderr lines, cheaply; [`log_hold`]: a proxy
//!   worker's lines written together when it goes idle.

pub mod admin;
pub mod banner;
pub mod journald;
pub mod log_hold;
pub mod log_line;
pub mod log_time;
pub mod logging;
pub mod metrics;
pub mod systemd;
pub mod terminal;
pub mod tool_metrics;
