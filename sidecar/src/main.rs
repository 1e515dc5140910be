//! Entry point of `maintenance-sidecar`: parses the command line, loads the
//! configuration and hands the command to `cmd::dispatch`.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use maintenance_logging::{self as logging, LogFormat};
use maintenance_sidecar::base::progress;
use maintenance_sidecar::cmd::cli::{Cli, Command};
use maintenance_sidecar::cmd::{self, EXIT_FAILED, EXIT_USAGE};
use maintenance_sidecar::config::{Config, Mode};

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let cfg = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("maintenance-sidecar: {e:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let command = cli.command.unwrap_or(match cfg.mode {
        Mode::Single => Command::Once { online: false },
        Mode::Continuous => Command::Run,
    });
    // A backup folder the sidecar cannot write to would only show at the
    // first window, hours later: check it now.
    if matches!(command, Command::Run | Command::Once { .. }) {
        let _ = std::fs::create_dir_all(&cfg.backup_dir);
        if let Err(problem) = maintenance_preflight::writable_dir("BACKUP_DIR", &cfg.backup_dir) {
            eprintln!("maintenance-sidecar: {problem}");
            return ExitCode::from(EXIT_USAGE);
        }
    }
    // Progress bars for the long operator commands on a terminal; plain
    // progress lines everywhere else (logs, containers, pipes).
    if matches!(
        command,
        Command::Once { .. } | Command::Restore { .. } | Command::Drill { .. }
    ) && std::io::stderr().is_terminal()
        && cli.log_format == LogFormat::Text
    {
        progress::set_interactive(true);
    }
    // An online backup shares the disk with a tracker that serves: its I/O
    // waits for the tracker's. Set before any thread exists, so all inherit.
    let online = match command {
        Command::Once { online } => online,
        Command::Run => cfg.coordinator.urls.is_empty() && cfg.online.schedule.is_some(),
        _ => false,
    };
    if online {
        maintenance_sidecar::zstd_workers::prefer_one_for_online();
    }
    if online && cfg.online.idle_io {
        match maintenance_sidecar::base::io_priority::set_idle() {
            Ok(()) => tracing::info!(
                "online backup in the idle I/O class: the tracker's reads and writes go first (BACKUP_ONLINE_IO_PRIORITY=normal turns this off)"
            ),
            Err(e) => tracing::warn!(
                "could not lower the I/O priority ({e}); the online backup competes with the tracker's I/O"
            ),
        }
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("maintenance-sidecar: cannot start runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    rt.block_on(cmd::dispatch(&cfg, command))
}
