//! What several commands do alike: refuse to start without an engine, load
//! the identity for encrypted artifacts, report a failure. Kept apart from
//! `mod.rs`, which dispatches to the commands, so that no command calls
//! back into the file that calls it.

use std::path::Path;
use std::process::ExitCode;

use super::{EXIT_FAILED, EXIT_USAGE};
use crate::config::Config;
use crate::crypt::Identities;

/// The configuration error when no engine is enabled (exit 2 from `once`
/// and `run`).
pub fn require_engine(cfg: &Config, command: &str) -> Result<(), ExitCode> {
    if cfg.any_engine() {
        return Ok(());
    }
    eprintln!(
        "maintenance-sidecar {command}: {}",
        crate::config::NO_ENGINE
    );
    Err(ExitCode::from(EXIT_USAGE))
}

/// The identity for reading encrypted artifacts: `--identity`, else
/// `BACKUP_AGE_IDENTITY_FILE`.
pub fn identities(cfg: &Config, flag: Option<&Path>) -> anyhow::Result<Option<Identities>> {
    flag.or(cfg.encryption.identity_file.as_deref())
        .map(Identities::load)
        .transpose()
}

/// Prints `<what> failed: <error>` (with the hint for a remote error); exit
/// code 1.
pub fn failed(what: &str, e: anyhow::Error) -> ExitCode {
    eprintln!(
        "{what} failed: {}",
        crate::remote::store::describe_error(&e)
    );
    ExitCode::from(EXIT_FAILED)
}
