//! Retention: which backups to keep and which to delete, from manifest
//! times (never mtimes), plus the sweep of what killed runs left: staging
//! folders, verify temp files (with their SQLite `-wal`/`-shm`), drill and
//! remote-download folders, and what each engine says a killed restore left
//! beside a target it knows from the configuration.
//!
//! A backup is kept when it is one of the `keep_last` newest, or younger
//! than `keep_days`, or the newest verified one (always, whatever the
//! settings). Folders without a readable manifest are not ours to judge and
//! are left alone.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::base::temp;
use crate::config::Config;
use crate::engine;
use crate::manifest::Manifest;

/// One folder in the backup dir.
#[derive(Debug)]
pub struct BackupEntry {
    /// Folder name.
    pub name: String,
    /// Folder path.
    pub path: PathBuf,
    /// The parsed manifest, or why it could not be read.
    pub manifest: Result<Manifest, String>,
}

/// Lists the (non-hidden) backup folders of `root`, newest first by
/// manifest time; folders with a broken manifest come last.
pub fn scan(root: &Path) -> std::io::Result<Vec<BackupEntry>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !entry.file_type()?.is_dir() {
            continue;
        }
        let manifest = Manifest::load(&entry.path()).map_err(|e| format!("{e:#}"));
        out.push(BackupEntry {
            name,
            path: entry.path(),
            manifest,
        });
    }
    out.sort_by(|a, b| match (&a.manifest, &b.manifest) {
        (Ok(x), Ok(y)) => y.started_at.cmp(&x.started_at).then(b.name.cmp(&a.name)),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(_), Err(_)) => a.name.cmp(&b.name),
    });
    Ok(out)
}

/// What a prune would do.
#[derive(Debug, Default)]
pub struct Plan {
    /// Backups kept, with the reason.
    pub keep: Vec<(String, &'static str)>,
    /// Backups to delete.
    pub delete: Vec<PathBuf>,
    /// Leftovers of crashed runs (staging folders, verify temp files).
    pub leftovers: Vec<PathBuf>,
    /// Folders skipped because their manifest is unreadable.
    pub skipped: Vec<(String, String)>,
}

/// The retention rule on manifests sorted newest first: for each, why it
/// is kept, or `None` when it goes. Shared by the local folder and the
/// remote, so both keep the same backups.
pub fn decide(
    manifests: &[&Manifest],
    keep_days: u32,
    keep_last: u32,
    now: DateTime<Utc>,
) -> Vec<Option<&'static str>> {
    let newest_verified = manifests.iter().position(|m| m.verified);
    manifests
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let age = now - m.started_at;
            if Some(i) == newest_verified {
                Some("newest verified")
            } else if (i as u64) < u64::from(keep_last) {
                Some("keep_last")
            } else if age < chrono::Duration::days(i64::from(keep_days)) {
                Some("keep_days")
            } else {
                None
            }
        })
        .collect()
}

/// Decides what to keep.
pub fn plan(
    root: &Path,
    keep_days: u32,
    keep_last: u32,
    now: DateTime<Utc>,
) -> std::io::Result<Plan> {
    let mut plan = Plan::default();
    let mut readable = Vec::new();
    for e in scan(root)? {
        match e.manifest {
            Ok(m) => readable.push((e.name, e.path, m)),
            Err(err) => plan.skipped.push((e.name, err)),
        }
    }
    let manifests: Vec<&Manifest> = readable.iter().map(|(_, _, m)| m).collect();
    let verdicts = decide(&manifests, keep_days, keep_last, now);
    for ((name, path, _), verdict) in readable.into_iter().zip(verdicts) {
        match verdict {
            Some(r) => plan.keep.push((name, r)),
            None => plan.delete.push(path),
        }
    }
    plan.leftovers = leftovers(root)?;
    Ok(plan)
}

fn leftovers(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(temp::STAGING_PREFIX)
            && temp::abandoned(&entry.path(), temp::staging_owner(&name))
        {
            out.push(entry.path());
        }
    }
    for kind in temp::ROOT_TEMP_KINDS {
        out.extend(temp::abandoned_in(root, kind, |_| true));
    }
    out.sort();
    Ok(out)
}

/// Carries out a plan; returns how many items were removed. Failures are
/// logged and skipped.
pub fn apply(plan: &Plan) -> usize {
    let mut removed = 0;
    for path in &plan.delete {
        match std::fs::remove_dir_all(path) {
            Ok(()) => {
                tracing::info!("retention: removed {}", path.display());
                removed += 1;
            }
            Err(e) => tracing::warn!("retention: cannot remove {}: {e}", path.display()),
        }
    }
    removed + temp::remove(&plan.leftovers)
}

/// The retention plan for the backup folder, plus what killed restores
/// left beside the targets the engines know from `cfg` (each registered
/// engine is asked: [`engine::EngineKind::leftovers`]).
pub fn local_plan(cfg: &Config) -> std::io::Result<Plan> {
    let mut plan = plan(&cfg.backup_dir, cfg.keep_days, cfg.keep_last, Utc::now())?;
    for kind in engine::ENGINES {
        plan.leftovers.extend(kind.leftovers(cfg));
    }
    Ok(plan)
}

/// Applies retention, logging instead of failing.
pub fn prune_quietly(cfg: &Config) {
    match local_plan(cfg) {
        Ok(plan) => {
            apply(&plan);
        }
        Err(e) => tracing::warn!("retention: cannot scan {}: {e}", cfg.backup_dir.display()),
    }
}
