//! `once`: one uncoordinated backup now (the host-cron fallback: the host
//! stopped the tracker), then retention and the off-site upload; and
//! `once --online`: the same while the tracker serves, for a tracker
//! without the coordinator (refused with exit 4 when a database cannot be
//! copied online).

use std::process::ExitCode;

use super::shared::require_engine;
use super::EXIT_FAILED;
use crate::base::cancel::CancelToken;
use crate::config::Config;
use crate::online::{online_backup, Outcome, EXIT_NOT_ONLINE};
use crate::single::single_backup;

/// `once`: one uncoordinated backup, then retention.
pub async fn once(cfg: &Config) -> ExitCode {
    if let Err(code) = require_engine(cfg, "once") {
        return code;
    }
    match single_backup(
        cfg,
        CancelToken::new(),
        Box::new(crate::backup::Uncoordinated),
    )
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(()) => ExitCode::from(EXIT_FAILED),
    }
}

/// `once --online`: refuses what cannot be copied online (exit 4), else
/// one online backup with everything a coordinated one has.
pub async fn online(cfg: &Config) -> ExitCode {
    if let Err(code) = require_engine(cfg, "once --online") {
        return code;
    }
    match online_backup(cfg, "once").await {
        Outcome::Published => ExitCode::SUCCESS,
        Outcome::Refused => ExitCode::from(EXIT_NOT_ONLINE),
        Outcome::Failed => ExitCode::from(EXIT_FAILED),
    }
}
