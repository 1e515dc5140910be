//! Entry point of `maintenance-sidecar`: parses the command line, loads the
//! configuration and dispatches to the library.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use maintenance_sidecar::cli::{Cli, Command};
use maintenance_sidecar::commands::{self, EXIT_FAILED, EXIT_USAGE};
use maintenance_sidecar::config::{Config, Mode};
use maintenance_sidecar::ops::restore::RestoreOptions;
use maintenance_sidecar::{client, runner};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
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
            Command::Verify { backup } => commands::verify(&cfg, &backup),
            Command::Restore {
                backup,
                engine,
                to,
                database,
                force,
            } => commands::restore(
                &cfg,
                &backup,
                &RestoreOptions {
                    engine,
                    to,
                    database,
                    force,
                },
            ),
            Command::List => commands::list(&cfg),
            Command::Prune { dry_run } => commands::prune(&cfg, dry_run),
            Command::OpenWindow { duration } => open_window(&cfg, duration).await,
        }
    })
}

async fn open_window(cfg: &Config, duration: u64) -> ExitCode {
    let result = async {
        let c = client::Coordinators::from_config(&cfg.coordinator)?;
        Ok::<_, anyhow::Error>(c.primary().open_window(duration).await?)
    }
    .await;
    match result {
        Ok(w) => {
            println!("{}", w.window_id);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("open-window failed: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}
