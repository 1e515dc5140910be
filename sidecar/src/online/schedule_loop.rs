//! `run` without a coordinator but with `BACKUP_WINDOW`: one online backup
//! each time the sidecar's own window opens, on the coordinator's schedule
//! rules (the shared `maintenance-schedule` crate: local time in
//! `BACKUP_TIMEZONE`, ISC-cron DST handling).
//!
//! A failed backup is retried every [`RETRY_AFTER`] while the window lasts;
//! a refusal (the database cannot be copied online) is not retried, it
//! needs the operator. The loop sleeps in steps of at most a minute, so a
//! stepped wall clock is noticed within one.

use std::time::Duration;

use chrono::{DateTime, Utc};
use maintenance_schedule::Schedule;
use tokio::sync::watch;

use super::{online_backup, Outcome};
use crate::config::Config;

/// Pause before retrying a failed backup inside the same window.
pub const RETRY_AFTER: Duration = Duration::from_secs(30);

/// Longest single sleep while waiting for a window.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Runs until `stop` turns true; `Err` when the schedule has no next window.
pub async fn run(
    cfg: &Config,
    schedule: &Schedule,
    mut stop: watch::Receiver<bool>,
) -> Result<(), String> {
    tracing::info!(
        window = %schedule,
        "no coordinator configured: online backups in the sidecar's own window (BACKUP_WINDOW)"
    );
    // The start of the last window whose backup is done (or refused).
    let mut done: Option<DateTime<Utc>> = None;
    loop {
        let now = Utc::now();
        let Some(span) = schedule.current_or_next(now) else {
            return Err(format!("the schedule {schedule} has no next window"));
        };
        let due = span.start <= now && done != Some(span.start);
        if !due {
            let next = if span.start > now {
                span.start
            } else {
                schedule
                    .next_after(span.start)
                    .map_or(span.end, |s| s.start)
            };
            let wait = (next - now).to_std().unwrap_or_default().min(MAX_SLEEP);
            if sleep_or_stop(wait, &mut stop).await {
                return Ok(());
            }
            continue;
        }
        tracing::info!(start = %span.start, end = %span.end, "backup window open: online backup");
        match online_backup(cfg, "run").await {
            Outcome::Published | Outcome::Refused => done = Some(span.start),
            Outcome::Failed => {
                if Utc::now() + RETRY_AFTER >= span.end {
                    tracing::error!("the online backup failed and the window ends before a retry; next try in the next window");
                    done = Some(span.start);
                } else {
                    tracing::warn!(
                        "the online backup failed; retrying in {} s (the window lasts until {})",
                        RETRY_AFTER.as_secs(),
                        span.end
                    );
                    if sleep_or_stop(RETRY_AFTER, &mut stop).await {
                        return Ok(());
                    }
                }
            }
        }
        if *stop.borrow() {
            return Ok(());
        }
    }
}

/// Sleeps `d`; true when a stop was requested meanwhile.
async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.changed() => true,
    }
}
