//! Entry point of `maintenance-sidecar`: parses the command line, loads the
//! configuration and dispatches to the library.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use maintenance_sidecar::cli::{Cli, Command};
use maintenance_sidecar::commands::{self, EXIT_FAILED, EXIT_USAGE};
use maintenance_sidecar::config::{Config, Mode};
use maintenance_sidecar::logging::{self, LogFormat};
use maintenance_sidecar::ops::restore::RestoreOptions;
use maintenance_sidecar::{client, offsite, progress, runner, status};

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
        Mode::Single => Command::Once,
        Mode::Continuous => Command::Run,
    });
    // A backup folder the sidecar cannot write to would only show at the
    // first window, hours later: check it now.
    if matches!(command, Command::Run | Command::Once) {
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
        Command::Once | Command::Restore { .. } | Command::Drill { .. }
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
    rt.block_on(async move {
        match command {
            Command::Run => runner::run(&cfg).await,
            Command::Once => commands::once(&cfg).await,
            Command::Verify {
                backup,
                remote: true,
                identity,
            } => offsite::verify(&cfg, &backup, identity.as_deref()).await,
            Command::Verify {
                backup, identity, ..
            } => commands::verify(&cfg, &backup, identity.as_deref()),
            Command::Restore {
                backup,
                engine,
                to,
                database,
                force,
                check,
                remote,
                identity,
            } => {
                let opts = RestoreOptions {
                    engine,
                    to,
                    database,
                    force,
                    check,
                    identities: None,
                };
                if remote {
                    offsite::restore(&cfg, &backup, &opts, identity.as_deref()).await
                } else {
                    commands::restore(&cfg, &backup, &opts, identity.as_deref())
                }
            }
            Command::Drill {
                backup,
                remote: true,
                identity,
            } => offsite::drill(&cfg, &backup, identity.as_deref()).await,
            Command::Drill {
                backup, identity, ..
            } => commands::drill(&cfg, &backup, identity.as_deref()),
            Command::List { remote: true } => offsite::list(&cfg).await,
            Command::List { remote: false } => commands::list(&cfg),
            Command::Push { backup } => offsite::push(&cfg, &backup).await,
            Command::Keygen { out } => match maintenance_sidecar::crypt::keygen(&out) {
                Ok(public) => {
                    println!("{public}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("keygen failed: {e:#}");
                    ExitCode::from(EXIT_FAILED)
                }
            },
            Command::Status => status::status(&cfg).await,
            Command::Prune {
                dry_run,
                remote: true,
            } => offsite::prune(&cfg, dry_run).await,
            Command::Prune { dry_run, .. } => commands::prune(&cfg, dry_run),
            Command::OpenWindow { duration } => open_window(&cfg, duration).await,
        }
    })
}

async fn open_window(cfg: &Config, duration: u64) -> ExitCode {
    let coords = match client::Coordinators::from_config(&cfg.coordinator) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("maintenance-sidecar open-window: {e:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if cfg.coordinator.token.is_none() {
        eprintln!("maintenance-sidecar open-window: no token configured (set MAINTENANCE_TOKEN or MAINTENANCE_TOKEN_FILE)");
        return ExitCode::from(EXIT_USAGE);
    }
    // Every instance at once, so their windows open as close together as
    // the network allows: one line per instance, in configuration order
    // (with one instance, just the window id).
    let several = coords.all().len() > 1;
    let opened = futures_util::future::join_all(
        coords
            .all()
            .iter()
            .map(|c| async move { (c.url(), c.open_window(duration).await) }),
    )
    .await;
    let mut failed = false;
    for (url, result) in opened {
        match result {
            Ok(w) if several => println!("{} {url}", w.window_id),
            Ok(w) => println!("{}", w.window_id),
            Err(e) => {
                failed = true;
                eprintln!("open-window failed on {url}: {e:#}");
            }
        }
    }
    if failed {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}
