//! The one log set-up of the project's binaries (`maintenance-sidecar`,
//! `reference-tracker`): human-readable text (default) or one JSON object
//! per line (`--log-format json`, `LOG_FORMAT=json`), always on stderr,
//! filtered by `RUST_LOG` (default `info`).
//!
//! With JSON the event's fields are top-level keys, e.g. the sidecar's
//! `{"message":"backup finished","outcome":"success",...}` or the
//! coordinator's `{"message":"window ended","outcome":...}`.

#![warn(missing_docs)]

use std::io::IsTerminal;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (colours when stderr is a terminal).
    #[default]
    Text,
    /// One JSON object per line, event fields flattened to the top level.
    Json,
}

/// Installs the global subscriber.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}
