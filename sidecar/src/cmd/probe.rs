//! `status --probe`: the backup's health as an exit code, for a container
//! probe (Kubernetes `exec`, a Docker healthcheck, a monitoring script).
//!
//! `status` always exits 0 because it is a screen for an operator; a probe
//! needs a verdict. Unhealthy when the newest window of any instance ended
//! without a backup (`failed`, `expired`, `aborted`), or when no verified
//! backup is younger than the limit (26 h by default: a daily window plus
//! slack, the same rule as the "no successful backup in 26 h" alert). A
//! fresh deployment, with no backup yet and no window ended since its
//! trackers started, is healthy: nothing was due. An unreachable
//! coordinator alone is not a failure (a probe of the sidecar should not
//! fail for the tracker's restart); the backup age still is.

use std::path::Path;
use std::process::ExitCode;

use chrono::{DateTime, Duration, Utc};
use maintenance_proto::Outcome;

use super::status::{fetch, CoordinatorView};
use crate::base::progress::age;
use crate::config::Config;
use crate::retention::{scan, BackupEntry};

/// Default `--max-age-hours`.
pub const DEFAULT_MAX_AGE_HOURS: u64 = 26;

/// Exit code of an unhealthy verdict.
pub const EXIT_UNHEALTHY: u8 = 1;

/// A probe's verdict: healthy or not, and the one line that says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// True when the backups are as they should be.
    pub healthy: bool,
    /// Why, in one line (the probe's output, kept by the kubelet in the
    /// pod's events).
    pub reason: String,
}

/// `maintenance-sidecar status --probe`: prints the verdict, exits 0 when
/// healthy, [`EXIT_UNHEALTHY`] otherwise.
pub async fn probe(cfg: &Config, max_age_hours: u64) -> ExitCode {
    let views = if cfg.coordinator.urls.is_empty() {
        Vec::new()
    } else {
        fetch(cfg).await
    };
    let verdict = judge(
        &views,
        &backups(&cfg.backup_dir),
        Utc::now(),
        Duration::hours(max_age_hours as i64),
    );
    if verdict.healthy {
        println!("healthy: {}", verdict.reason);
        ExitCode::SUCCESS
    } else {
        println!("unhealthy: {}", verdict.reason);
        ExitCode::from(EXIT_UNHEALTHY)
    }
}

/// The backup folder's entries; an unreadable or missing folder has none.
fn backups(dir: &Path) -> Vec<BackupEntry> {
    scan(dir).unwrap_or_default()
}

/// The verdict from what the coordinators said, the backups on disk, the
/// time and the age limit.
pub fn judge(
    views: &[CoordinatorView],
    backups: &[BackupEntry],
    now: DateTime<Utc>,
    max_age: Duration,
) -> Verdict {
    let unhealthy = |reason: String| Verdict {
        healthy: false,
        reason,
    };
    let mut any_window_ended = false;
    for view in views {
        let CoordinatorView::Status { url, status } = view else {
            continue;
        };
        let Some(last) = status.last_outcomes.first() else {
            continue;
        };
        any_window_ended = true;
        if last.outcome != Outcome::Completed {
            return unhealthy(format!(
                "the last window of {url} ({}) ended {} {} ago{}",
                last.window_id,
                last.outcome.as_str(),
                age((now - last.ended_at).num_seconds()),
                last.reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ));
        }
    }
    let newest = backups
        .iter()
        .filter_map(|b| b.manifest.as_ref().ok().map(|m| (b, m)))
        .find(|(_, m)| m.verified);
    match newest {
        Some((b, m)) if now - m.finished_at < max_age => Verdict {
            healthy: true,
            reason: format!(
                "newest verified backup {} finished {} ago",
                b.name,
                age((now - m.finished_at).num_seconds())
            ),
        },
        Some((b, m)) => unhealthy(format!(
            "no verified backup younger than {} h (newest: {}, finished {} ago)",
            max_age.num_hours(),
            b.name,
            age((now - m.finished_at).num_seconds())
        )),
        None if any_window_ended => unhealthy(format!(
            "no verified backup younger than {} h, and none at all, though a window has ended",
            max_age.num_hours()
        )),
        None => Verdict {
            healthy: true,
            reason: "no backup yet, and no window has ended since the trackers started".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maintenance_proto::{StatusResponse, WindowId, WindowOutcome};

    fn now() -> DateTime<Utc> {
        "2026-11-26T12:00:00Z".parse().unwrap()
    }

    fn status_with(outcomes: &[(Outcome, i64)]) -> CoordinatorView {
        let mut s: StatusResponse = serde_json::from_str(
            r#"{"protocol_version":2,"instance_id":"i-1","state":"idle","window_id":null,
            "version":7,"announce_policy":"reject","current_window":null,"next_window":null,
            "lease_expires_at":null,"released_window":null,"last_outcomes":[]}"#,
        )
        .unwrap();
        s.last_outcomes = outcomes
            .iter()
            .enumerate()
            .map(|(i, &(outcome, hours_ago))| WindowOutcome {
                window_id: WindowId::new(format!("w-{i}")),
                outcome,
                opened_at: now() - Duration::hours(hours_ago),
                ended_at: now() - Duration::hours(hours_ago),
                quiesced_secs: 0.1,
                reason: (outcome != Outcome::Completed).then(|| "operator".to_owned()),
                report: None,
            })
            .collect();
        CoordinatorView::Status {
            url: "http://t1:7071/maintenance/v1".to_owned(),
            status: Box::new(s),
        }
    }

    /// A real backup folder (manifest written as the sidecar writes it)
    /// finished `hours_ago`.
    fn backup(dir: &Path, name: &str, hours_ago: i64, verified: bool) {
        let at = (now() - Duration::hours(hours_ago)).to_rfc3339();
        std::fs::create_dir_all(dir.join(name)).unwrap();
        std::fs::write(
            dir.join(name).join("manifest.json"),
            format!(
                r#"{{"format_version":1,"name":"{name}","started_at":"{at}","finished_at":"{at}",
                "window_id":null,"mode":"run","sidecar_id":"s","engines":["sqlite"],"artifacts":[],
                "missing_paths":[],"verified":{verified},"tool_versions":{{}},"durations_secs":{{}}}}"#
            ),
        )
        .unwrap();
    }

    fn verdict(views: &[CoordinatorView], dir: &Path, hours: i64) -> Verdict {
        judge(views, &backups(dir), now(), Duration::hours(hours))
    }

    #[test]
    fn fresh_deployment_is_healthy_until_a_window_ends() {
        let dir = tempfile::tempdir().unwrap();
        let v = verdict(&[status_with(&[])], dir.path(), 26);
        assert!(v.healthy, "{v:?}");
        let v = verdict(&[status_with(&[(Outcome::Completed, 1)])], dir.path(), 26);
        assert!(!v.healthy, "{v:?}");
        assert!(v.reason.contains("none at all"), "{v:?}");
    }

    #[test]
    fn a_young_verified_backup_is_healthy_an_old_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        backup(dir.path(), "20261126T020000Z-a", 10, true);
        let v = verdict(&[status_with(&[(Outcome::Completed, 10)])], dir.path(), 26);
        assert!(v.healthy, "{v:?}");
        assert!(v.reason.contains("20261126T020000Z-a"), "{v:?}");
        let v = verdict(&[], dir.path(), 9);
        assert!(!v.healthy, "{v:?}");
        assert!(v.reason.contains("younger than 9 h"), "{v:?}");
    }

    #[test]
    fn an_unverified_backup_does_not_count() {
        let dir = tempfile::tempdir().unwrap();
        backup(dir.path(), "20261126T100000Z-new", 2, false);
        backup(dir.path(), "20261124T100000Z-old", 50, true);
        let v = verdict(&[], dir.path(), 26);
        assert!(!v.healthy, "{v:?}");
        assert!(v.reason.contains("20261124T100000Z-old"), "{v:?}");
    }

    #[test]
    fn the_newest_window_decides_not_an_older_one() {
        let dir = tempfile::tempdir().unwrap();
        backup(dir.path(), "20261126T020000Z-a", 10, true);
        let failed_last = status_with(&[(Outcome::Aborted, 1), (Outcome::Completed, 10)]);
        let v = verdict(&[failed_last], dir.path(), 26);
        assert!(!v.healthy, "{v:?}");
        assert!(
            v.reason.contains("aborted") && v.reason.contains("w-0"),
            "{v:?}"
        );
        let failed_before = status_with(&[(Outcome::Completed, 1), (Outcome::Expired, 25)]);
        assert!(verdict(&[failed_before], dir.path(), 26).healthy);
    }

    #[test]
    fn any_instance_whose_last_window_failed_is_unhealthy() {
        let dir = tempfile::tempdir().unwrap();
        backup(dir.path(), "20261126T020000Z-a", 1, true);
        let unreachable = CoordinatorView::Unreachable {
            url: "http://t3:7071/maintenance/v1".to_owned(),
            error: "connection refused".to_owned(),
        };
        let views = [
            status_with(&[(Outcome::Completed, 1)]),
            unreachable,
            status_with(&[(Outcome::Failed, 1)]),
        ];
        let v = verdict(&views, dir.path(), 26);
        assert!(!v.healthy && v.reason.contains("failed"), "{v:?}");
        // Unreachable alone is not a failure.
        assert!(verdict(&views[..2], dir.path(), 26).healthy);
    }
}
