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
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("maintenance-sidecar: cannot start runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    rt.block_on(cmd::dispatch(&cfg, command))
}
