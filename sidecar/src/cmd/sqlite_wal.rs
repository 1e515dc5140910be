//! `sqlite-wal [PATH]`: the one-time switch of a SQLite file to WAL mode
//! (default `SQLITE_DATABASE_PATH`), with the tracker stopped, so that it
//! can be backed up online from then on.

use std::path::Path;
use std::process::ExitCode;

use super::{EXIT_FAILED, EXIT_USAGE};
use crate::config::Config;
use crate::online::sqlite_wal::{convert, Converted};

/// Converts and prints what happened; exit 0, 1 on failure, 2 without a path.
pub fn sqlite_wal(cfg: &Config, path: Option<&Path>) -> ExitCode {
    let Some(db) = path.or(cfg.sqlite.path.as_deref()) else {
        eprintln!(
            "maintenance-sidecar sqlite-wal: give the database file, or set SQLITE_DATABASE_PATH"
        );
        return ExitCode::from(EXIT_USAGE);
    };
    match convert(db) {
        Ok(Converted::Switched { from }) => {
            println!(
                "{}: converted from journal_mode={from} to WAL; start the tracker again, backups can be online from now on",
                db.display()
            );
            ExitCode::SUCCESS
        }
        Ok(Converted::AlreadyWal) => {
            println!("{}: already in WAL mode; nothing changed", db.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sqlite-wal failed: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}
