//! The `reference-tracker` binary: reads `--config FILE`, runs the tracker
//! until SIGTERM or ctrl-c, then flushes every pending count and exits.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use maintenance_coordinator::MaintenanceConfig;
use maintenance_logging::LogFormat;
use reference_tracker::config::TrackerConfig;

/// A small BitTorrent HTTP tracker (BEP 3/23/48) with maintenance windows
/// for consistent database backups.
#[derive(Parser, Debug)]
#[command(name = "reference-tracker", version, about, long_about = None)]
struct Args {
    /// Tracker config file (Torrust `tracker.toml` layout plus a
    /// `[maintenance]` table). See tracker.example.toml.
    #[arg(
        short,
        long,
        value_name = "FILE",
        env = "TORRUST_TRACKER_CONFIG_TOML_PATH",
        default_value = "tracker.toml"
    )]
    config: PathBuf,

    /// Log format on stderr: human-readable `text` or one JSON object per
    /// line (event fields at the top level, e.g. the coordinator's
    /// `"message":"window ended"` summary with outcome and quiesced_secs).
    #[arg(long, value_enum, env = "LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
}

/// Installs the SIGTERM and SIGINT handlers now and returns the future that
/// resolves on the first of them. Installing them before anything is bound
/// matters: until a handler exists a SIGTERM takes its default action and
/// kills the process without the final flush, and a tracker that has
/// announced a listener must already shut down cleanly.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}

/// Ctrl-C only, where there is no SIGTERM.
#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let shutdown = match shutdown_signal() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("reference-tracker: cannot install the SIGTERM/SIGINT handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let args = Args::parse();
    maintenance_logging::init(args.log_format);
    let env = |k: &str| std::env::var(k).ok();
    let (cfg, text) = match TrackerConfig::load(&args.config, env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("reference-tracker: {e}");
            return ExitCode::from(2);
        }
    };
    let mconf = match MaintenanceConfig::from_tracker_toml(&text, env) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("reference-tracker: {e}");
            return ExitCode::from(2);
        }
    };
    match reference_tracker::server::run(cfg, mconf, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reference-tracker: {e}");
            ExitCode::FAILURE
        }
    }
}
