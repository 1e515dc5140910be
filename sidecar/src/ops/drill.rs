//! `drill [latest|NAME] [--remote]`: a restore rehearsal that proves a
//! backup can be put back and says how long it takes (the recovery time
//! objective).
//!
//! Every artifact of the backup is restored into a hidden temporary folder
//! `.drill-<host>-<pid>-*` in the backup folder's root (same disk as the
//! backups, never inside a published backup), hashed in the same pass, and
//! given its full content check (SQLite `integrity_check` whatever the
//! manifest records). Nothing is started and nothing outside the temporary
//! folder is touched; the folder is removed at the end, success or not (and
//! by `prune` if the drill was killed). With `--remote` the backup is first
//! downloaded into another such folder (see `offsite::drill`), and the
//! download time is part of the figures.
//!
//! A successful drill is recorded in `<backup dir>/.last-drill.json`
//! (written atomically), which the `run` process's metrics read for
//! `maintenance_backup_last_drill_timestamp_seconds` and the "no drill in
//! 8 days" alert.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::base::replace::Replacement;
use crate::engine::{self, DrillJob};
use crate::manifest::Manifest;

/// File name of the drill record in the backup folder's root.
pub const RECORD: &str = ".last-drill.json";

/// Where a drilled backup came from when it was downloaded first.
#[derive(Debug, Clone)]
pub struct Download {
    /// The remote's URL, without credentials.
    pub remote: String,
    /// Seconds spent finding and downloading the backup (hashes checked).
    pub secs: f64,
}

/// The RTO figures of one drill, in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DrillReport {
    /// The backup drilled.
    pub backup: String,
    /// Where it was read from: `local`, or the remote's URL.
    #[serde(default)]
    pub source: String,
    /// When the drill finished.
    pub finished_at: DateTime<Utc>,
    /// Fetching the artifacts (0 for a local backup).
    pub download_secs: f64,
    /// Reading, hashing, decompressing and writing (fsync included).
    pub decompress_secs: f64,
    /// Full content checks.
    pub check_secs: f64,
    /// The whole drill.
    pub total_secs: f64,
    /// Decompressed bytes restored.
    pub restored_bytes: u64,
    /// One line per artifact.
    pub artifacts: Vec<String>,
}

/// Drills the backup folder `dir` (downloaded first as `download` says, or
/// local), working in a temporary folder under `backup_dir`, and records
/// success in `backup_dir`.
pub fn drill(
    backup_dir: &Path,
    dir: &Path,
    keys: Option<&crate::crypt::Identities>,
    download: Option<Download>,
) -> anyhow::Result<DrillReport> {
    let started = Instant::now();
    let manifest = Manifest::load(dir)?;
    anyhow::ensure!(
        !manifest.artifacts.is_empty(),
        "{}: the manifest lists no artifacts; nothing to drill",
        dir.display()
    );
    let work = tempfile::Builder::new()
        .prefix(&crate::base::temp::prefix(crate::base::temp::DRILL_PREFIX))
        .tempdir_in(backup_dir)
        .with_context(|| format!("create a drill folder in {}", backup_dir.display()))?;
    let mut report = DrillReport {
        backup: manifest.name.clone(),
        source: download
            .as_ref()
            .map_or_else(|| "local".to_owned(), |d| d.remote.clone()),
        download_secs: download.as_ref().map_or(0.0, |d| d.secs),
        ..DrillReport::default()
    };
    for a in &manifest.artifacts {
        let drilled = engine::kind(&a.engine)?.drill(&DrillJob {
            artifact: a,
            path: &dir.join(&a.path),
            work: work.path(),
            keys,
        })?;
        report.decompress_secs += drilled.decompress_secs;
        report.check_secs += drilled.check_secs;
        report.restored_bytes += drilled.bytes;
        let line = drilled.line;
        tracing::info!("drill: {line}");
        report.artifacts.push(line);
    }
    drop(work);
    report.total_secs = report.download_secs + started.elapsed().as_secs_f64();
    report.finished_at = Utc::now();
    // The record is what the `run` process's metrics read: a drill runs in
    // its own process, which serves no metrics.
    save(backup_dir, &report)?;
    Ok(report)
}

fn record_path(backup_dir: &Path) -> PathBuf {
    backup_dir.join(RECORD)
}

/// Writes the drill record atomically.
fn save(backup_dir: &Path, report: &DrillReport) -> anyhow::Result<()> {
    let mut tmp = Replacement::create(
        &record_path(backup_dir),
        crate::base::temp::DRILL_RECORD_PREFIX,
    )?;
    tmp.file()
        .write_all(serde_json::to_string_pretty(report)?.as_bytes())?;
    tmp.commit(&[])
}

/// The last successful drill recorded in `backup_dir`, if any.
pub fn last(backup_dir: &Path) -> Option<DrillReport> {
    let text = std::fs::read_to_string(record_path(backup_dir)).ok()?;
    serde_json::from_str(&text).ok()
}
