//! Online backups of a tracker that does not embed the coordinator: the
//! copy is made consistent from outside while the tracker serves.
//!
//! * SQLite in WAL mode: the sidecar pins the file itself
//!   ([`sqlite_pin`]) and streams the frozen main file exactly as under a
//!   coordinator's pin (same artifact, `integrity_check`, verify).
//! * MySQL/MariaDB: the `--single-transaction` dump is consistent for
//!   InnoDB tables; any other engine is refused.
//! * PostgreSQL: `pg_dump` is always consistent.
//!
//! What cannot be copied online is refused before anything is read, with
//! the fix in the message and exit code [`EXIT_NOT_ONLINE`]: SQLite in
//! rollback-journal mode (a long read there blocks the tracker's writes;
//! [`sqlite_wal`] converts it once, with the tracker stopped) and
//! non-InnoDB tables. Each engine judges its own source
//! ([`crate::engine::EngineKind::online_refusals`], in `engine/<engine>.rs`); [`qualify`]
//! asks every registered one. The host fallback uses that exit code to fall back
//! to stop-copy-start. The manifest records `consistency: online`; what
//! the tracker held in memory and had not written is not in the backup.
//!
//! Entry points (in `cmd/`): `once --online` and `run` without
//! `MAINTENANCE_URL` but with `BACKUP_WINDOW` ([`schedule_loop`]).

pub mod schedule_loop;
pub mod sqlite_pin;
pub mod sqlite_wal;

use std::path::PathBuf;
use std::time::Duration;

use crate::backup::Release;
use crate::base::cancel::CancelToken;
use crate::config::{Config, OnlineConfig};
use crate::engine::ENGINES;
use crate::manifest::Consistency;
use crate::single::single_backup;

/// Exit code of `once --online` when a database cannot be copied online
/// (nothing was read; the message says how to make it qualify).
pub const EXIT_NOT_ONLINE: u8 = 4;

/// Why the configured databases cannot be copied online, or `Ok`: every
/// registered engine answers for its own source
/// ([`crate::engine::EngineKind::online_refusals`]), in backup order.
pub fn qualify(cfg: &Config) -> anyhow::Result<Result<(), Vec<String>>> {
    let mut problems = Vec::new();
    for kind in ENGINES {
        problems.extend(kind.online_refusals(cfg)?);
    }
    Ok(if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    })
}

/// What an online run tells no one: it takes the SQLite pin itself at the
/// release point and checks it at the unpin.
pub struct OnlineRelease {
    db: Option<PathBuf>,
    settings: OnlineConfig,
    cancel: CancelToken,
    pin: Option<sqlite_pin::SelfPin>,
    mode: &'static str,
}

impl OnlineRelease {
    /// For the engines of `cfg`; `mode` is the manifest's (`once`, `run`).
    pub fn new(cfg: &Config, cancel: CancelToken, mode: &'static str) -> Self {
        OnlineRelease {
            db: cfg
                .sqlite
                .enabled
                .then(|| cfg.sqlite.path.clone())
                .flatten(),
            settings: cfg.online.clone(),
            cancel,
            pin: None,
            mode,
        }
    }
}

impl Release for OnlineRelease {
    fn pin_offered(&self) -> bool {
        self.db.is_some()
    }

    fn release(&mut self, keep_pin: bool) -> anyhow::Result<bool> {
        let Some(db) = self.db.as_ref().filter(|_| keep_pin) else {
            return Ok(false);
        };
        self.pin = Some(sqlite_pin::SelfPin::take(
            db,
            Duration::from_secs(self.settings.pin_timeout_secs),
            self.settings.wal_limit_mib << 20,
            self.cancel.clone(),
        )?);
        Ok(true)
    }

    fn unpin(&mut self) -> anyhow::Result<()> {
        self.cancel.check()?;
        match self.pin.take() {
            Some(pin) => pin.finish(),
            None => Ok(()),
        }
    }

    fn consistency(&self) -> Consistency {
        Consistency::Online
    }

    fn mode(&self) -> &'static str {
        self.mode
    }
}

/// How one online backup ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Published (and uploaded when a remote is configured).
    Published,
    /// A database cannot be copied online; nothing was read.
    Refused,
    /// The backup or its upload failed.
    Failed,
}

/// Qualifies the databases, then runs one online backup.
pub async fn online_backup(cfg: &Config, mode: &'static str) -> Outcome {
    let check = cfg.clone();
    let qualified = tokio::task::spawn_blocking(move || qualify(&check))
        .await
        .expect("qualify thread panicked");
    match qualified {
        Ok(Ok(())) => {}
        Ok(Err(problems)) => {
            for p in &problems {
                tracing::error!("online backup refused: {p}");
                eprintln!("online backup refused: {p}");
            }
            crate::metrics::get().backup_finished(
                crate::metrics::BackupResult::Failed,
                &Default::default(),
                &Default::default(),
                false,
            );
            let report = maintenance_proto::BackupReport {
                backup: None,
                artifacts: Vec::new(),
                durations_secs: Default::default(),
                error: Some(format!("online backup refused: {}", problems.join("; "))),
                remote: None,
                participation: None,
            };
            crate::webhook::notify(
                &cfg.webhook,
                &crate::webhook::Notification::for_report(&cfg.sidecar_id, mode, None, &report),
            )
            .await;
            return Outcome::Refused;
        }
        Err(e) => {
            tracing::error!("online backup: cannot inspect the databases: {e:#}");
            return Outcome::Failed;
        }
    }
    let cancel = CancelToken::new();
    let release = Box::new(OnlineRelease::new(cfg, cancel.clone(), mode));
    match single_backup(cfg, cancel, release).await {
        Ok(()) => Outcome::Published,
        Err(()) => Outcome::Failed,
    }
}
