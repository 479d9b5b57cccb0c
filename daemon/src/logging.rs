//! Log output: human-readable lines on stderr, level from the config unless `RUST_LOG` is set.
//! Log lines never carry tokens, bodies or query strings; the call sites take care of that.

use tracing_subscriber::EnvFilter;

use crate::config::Log;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("RUST_LOG is not a valid log filter: {0}")]
    Filter(String),
    #[error("cannot set up logging: {0}")]
    Init(String),
}

/// Installs the global subscriber.
pub fn init(config: &Log) -> Result<(), LogError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => {
            EnvFilter::try_new(v).map_err(|e| LogError::Filter(e.to_string()))?
        }
        _ => EnvFilter::try_new(&config.level).map_err(|e| LogError::Filter(e.to_string()))?,
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .try_init()
        .map_err(|e| LogError::Init(e.to_string()))
}
