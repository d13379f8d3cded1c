//! Logging: tracing to stderr, human format (colours only on a terminal) or one JSON
//! object per line when `log_format = "json"`. `RUST_LOG` picks levels (default
//! `info`). HTTP requests log their route template, never the raw path or query
//! (see `api::ops`); secrets are [`crate::config::Secret`]s and print `[redacted]`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls are ignored.
pub fn init(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
