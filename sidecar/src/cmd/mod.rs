//! The entry points: one file per subcommand, each returning the process
//! exit code; this file dispatches to them and defines the exit codes,
//! `shared.rs` holds what several commands do alike. This is the top layer: a command may use every service and
//! primitive below it, and nothing below imports from here (see the
//! layering rule in ARCHITECTURE.md).

pub mod cli;
pub mod drill;
pub mod keygen;
pub mod list;
pub mod once;
pub mod open_window;
pub mod probe;
pub mod prune;
pub mod push;
pub mod restore;
pub mod run;
pub mod shared;
pub mod sqlite_wal;
pub mod status;
pub mod verify;

use std::process::ExitCode;

use crate::config::Config;
use crate::ops::restore::RestoreOptions;
use cli::Command;

/// Exit code for a failed backup, verify or restore.
pub const EXIT_FAILED: u8 = 1;
/// Exit code for usage and configuration errors.
pub const EXIT_USAGE: u8 = 2;

/// Runs `command` with `cfg`; the process exit code.
pub async fn dispatch(cfg: &Config, command: Command) -> ExitCode {
    match command {
        Command::Run => run::run(cfg).await,
        Command::Once { online: false } => once::once(cfg).await,
        Command::Once { online: true } => once::online(cfg).await,
        Command::SqliteWal { path } => sqlite_wal::sqlite_wal(cfg, path.as_deref()),
        Command::Verify {
            backup,
            remote: true,
            identity,
        } => verify::remote(cfg, &backup, identity.as_deref()).await,
        Command::Verify {
            backup, identity, ..
        } => verify::local(cfg, &backup, identity.as_deref()),
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
                restore::remote(cfg, &backup, &opts, identity.as_deref()).await
            } else {
                restore::local(cfg, &backup, &opts, identity.as_deref())
            }
        }
        Command::Drill {
            backup,
            remote: true,
            identity,
        } => drill::remote(cfg, &backup, identity.as_deref()).await,
        Command::Drill {
            backup, identity, ..
        } => drill::local(cfg, &backup, identity.as_deref()),
        Command::List { remote: true } => list::remote(cfg).await,
        Command::List { remote: false } => list::local(cfg),
        Command::Push { backup } => push::push(cfg, &backup).await,
        Command::Keygen { out } => keygen::keygen(&out),
        Command::Status { probe: false, .. } => status::status(cfg).await,
        Command::Status {
            probe: true,
            max_age_hours,
        } => probe::probe(cfg, max_age_hours).await,
        Command::Prune {
            dry_run,
            remote: true,
        } => prune::remote(cfg, dry_run).await,
        Command::Prune { dry_run, .. } => prune::local(cfg, dry_run),
        Command::OpenWindow { duration } => open_window::open_window(cfg, duration).await,
    }
}
