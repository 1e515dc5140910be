//! One backup run, shared by `once` and `run`: snapshot every engine, let
//! the caller release the tracker, compress, verify, publish.
//!
//! The caller decides what "release" means (HTTP calls to every claimed
//! coordinator in `run`, nothing in `once`) through [`Release`]; if it
//! fails the run stops and publishes nothing. When the coordinators offered
//! a snapshot pin, the SQLite file is read after the release, and
//! [`Release::unpin`] must confirm that the pin held for the whole read, or
//! nothing is published. [`Release::participation`] says which tracker
//! instances the snapshot covered (written into the manifest).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use maintenance_proto::{Artifact, BackupReport};

use crate::base::cancel::CancelToken;
use crate::base::hashing::sha256_file;
use crate::config::Config;
use crate::engine::{self, Engine, EngineContext, EngineOutput};
use crate::manifest::{Consistency, Manifest, FORMAT_VERSION};
use crate::metrics::BackupResult;
use crate::staging::{backup_name, Staging};

/// A published backup.
#[derive(Debug, Clone)]
pub struct Published {
    /// Its folder.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
}

/// Result of a run, successful or not, with the timings gathered so far.
#[derive(Debug)]
pub struct RunResult {
    /// The published backup, or why there is none.
    pub result: anyhow::Result<Published>,
    /// Phase durations in seconds.
    pub durations_secs: BTreeMap<String, f64>,
    /// True when the verify phase rejected an artifact.
    pub verify_failed: bool,
}

impl RunResult {
    /// The report for the coordinator's `complete`.
    pub fn report(&self) -> BackupReport {
        match &self.result {
            Ok(p) => BackupReport {
                backup: Some(p.manifest.name.clone()),
                artifacts: p.manifest.artifacts.clone(),
                durations_secs: self.durations_secs.clone(),
                error: None,
                remote: None,
                participation: p.manifest.participation.clone(),
            },
            Err(e) => BackupReport {
                backup: None,
                artifacts: Vec::new(),
                durations_secs: self.durations_secs.clone(),
                error: Some(format!("{e:#}")),
                remote: None,
                participation: None,
            },
        }
    }
}

/// What a run tells the tracker's coordinator (nothing in `once`).
pub trait Release {
    /// The coordinator offered a snapshot pin at claim (protocol 2).
    fn pin_offered(&self) -> bool {
        false
    }

    /// Every snapshot is taken: the tracker may resume. With `keep_pin`
    /// the pin stays until [`Release::unpin`]; returns whether it is kept.
    fn release(&mut self, keep_pin: bool) -> anyhow::Result<bool>;

    /// The last byte was read under the pin: confirms that the pin was
    /// held throughout (an error means the read is not proven consistent)
    /// and drops it.
    fn unpin(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    /// After the release: the tracker instances the snapshot covered, for
    /// the manifest (`None` for `once`).
    fn participation(&self) -> Option<maintenance_proto::Participation> {
        None
    }

    /// How the copy is made consistent, for the manifest.
    fn consistency(&self) -> Consistency {
        Consistency::Coordinated
    }

    /// The manifest's `mode`: `run` for the autonomous loops, `once` for a
    /// single backup.
    fn mode(&self) -> &'static str {
        "run"
    }
}

/// `once`: no coordinator to tell, no pin.
pub struct Uncoordinated;

impl Release for Uncoordinated {
    fn release(&mut self, _keep_pin: bool) -> anyhow::Result<bool> {
        Ok(false)
    }

    fn consistency(&self) -> Consistency {
        Consistency::Uncoordinated
    }

    fn mode(&self) -> &'static str {
        "once"
    }
}

/// Runs one backup. `window_id` names the coordinator window (`None` for
/// `once`); `after_snapshot` is told once every snapshot is taken, and once
/// the pinned sources are read.
pub fn run(
    cfg: &Config,
    window_id: Option<&str>,
    cancel: CancelToken,
    after_snapshot: &mut dyn Release,
) -> RunResult {
    let mut durations = BTreeMap::new();
    let started = Instant::now();
    let mut verify_failed = false;
    let result = run_inner(
        cfg,
        window_id,
        cancel,
        after_snapshot,
        &mut durations,
        &mut verify_failed,
        started,
    );
    durations.insert("total".into(), started.elapsed().as_secs_f64());
    RunResult {
        result,
        durations_secs: durations,
        verify_failed,
    }
}

impl RunResult {
    /// Compressed bytes per engine of the published backup (empty on failure).
    pub fn bytes_per_engine(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        if let Ok(p) = &self.result {
            for a in &p.manifest.artifacts {
                *out.entry(a.engine.clone()).or_default() += a.size_bytes;
            }
        }
        out
    }

    /// Records the run in the metrics and writes the one summary line an
    /// operator greps for: `backup finished` with outcome, window_id, mode,
    /// backup name, artifacts, total bytes and every phase duration.
    /// `lease_lost` overrides the outcome (nothing was published).
    pub fn finish(&self, mode: &str, window_id: Option<&str>, lease_lost: bool) -> BackupResult {
        let result = if lease_lost {
            BackupResult::LeaseLost
        } else if self.result.is_ok() {
            BackupResult::Success
        } else {
            BackupResult::Failed
        };
        crate::metrics::get().backup_finished(
            result,
            &self.durations_secs,
            &self.bytes_per_engine(),
            self.verify_failed,
        );
        let d = |k: &str| self.durations_secs.get(k).copied().unwrap_or(0.0);
        let (backup, artifacts, total_bytes) = match &self.result {
            Ok(p) => (
                p.manifest.name.clone(),
                p.manifest.artifacts.len(),
                p.manifest.total_bytes(),
            ),
            Err(_) => (String::new(), 0, 0),
        };
        let error = match &self.result {
            Err(e) => format!("{e:#}"),
            Ok(_) if lease_lost => "lease lost".to_owned(),
            Ok(_) => String::new(),
        };
        let outcome = result.as_str();
        let window_id = window_id.unwrap_or("");
        let (snapshot_secs, compress_secs, verify_secs, total_secs) =
            (d("snapshot"), d("compress"), d("verify"), d("total"));
        if result == BackupResult::Success {
            tracing::info!(
                outcome,
                mode,
                window_id,
                backup,
                artifacts,
                total_bytes,
                snapshot_secs,
                compress_secs,
                verify_secs,
                total_secs,
                "backup finished"
            );
        } else {
            tracing::error!(
                outcome,
                mode,
                window_id,
                backup,
                artifacts,
                total_bytes,
                snapshot_secs,
                compress_secs,
                verify_secs,
                total_secs,
                error,
                "backup finished"
            );
        }
        result
    }
}

fn timed<T>(
    durations: &mut BTreeMap<String, f64>,
    phase: &str,
    f: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let t = Instant::now();
    let r = f();
    *durations.entry(phase.to_owned()).or_default() += t.elapsed().as_secs_f64();
    r
}

fn run_inner(
    cfg: &Config,
    window_id: Option<&str>,
    cancel: CancelToken,
    release: &mut dyn Release,
    durations: &mut BTreeMap<String, f64>,
    verify_failed: &mut bool,
    started: Instant,
) -> anyhow::Result<Published> {
    let engines = engine::from_config(cfg);
    anyhow::ensure!(!engines.is_empty(), crate::config::NO_ENGINE);
    let started_at = Utc::now();
    let staging = Staging::create(&cfg.backup_dir, started_at)?;
    let sealing = cfg
        .encryption
        .recipients
        .clone()
        .map(|r| std::sync::Arc::new(crate::crypt::Sealing::new(r)));
    let ctx = EngineContext {
        sealing: sealing.clone(),
        staging: staging.path().to_owned(),
        compression: cfg.compression,
        level: cfg.compression_level,
        progress_every: Duration::from_secs(cfg.progress_secs),
        cancel: cancel.clone(),
        pinned: release.pin_offered(),
        read_limit: (release.consistency() == Consistency::Online)
            .then_some(cfg.online.read_limit_mib_per_sec << 20)
            .filter(|&limit| limit > 0),
    };
    tracing::info!(
        "backup started: engines [{}], staging {}",
        names(&engines).join(", "),
        staging.path().display()
    );

    let mut staged = Vec::new();
    timed(durations, "snapshot", || {
        for e in &engines {
            let s = e
                .preflight()
                .and_then(|()| e.snapshot(&ctx))
                .with_context(|| format!("{} snapshot", e.name()))?;
            staged.push(s);
        }
        Ok(())
    })?;
    tracing::info!("snapshots taken");
    let read_after_release = staged.iter().any(|s| s.read_after_release);
    let kept = release
        .release(read_after_release)
        .context("after snapshot (release)")?;
    anyhow::ensure!(
        kept || !read_after_release,
        "the coordinator did not keep the snapshot pin at release (the window is ending); nothing was read, backup abandoned"
    );
    let participation = release.participation();

    let mut outputs: Vec<EngineOutput> = Vec::new();
    timed(durations, "compress", || {
        for (e, s) in engines.iter().zip(staged) {
            cancel.check()?;
            outputs.push(
                e.finish(&ctx, s)
                    .with_context(|| format!("{} compress", e.name()))?,
            );
        }
        Ok(())
    })?;
    if read_after_release {
        release
            .unpin()
            .context("the pin was not held for the whole read; the backup is abandoned")?;
    }
    let check_keys = sealing.as_deref().map(|s| s.check_identities());
    let (artifacts, content_checks) = timed(durations, "verify", || {
        verify_outputs(&outputs, check_keys, &cancel)
    })
    .inspect_err(|_| *verify_failed = !cancel.is_cancelled())?;
    cancel.check()?;

    let name = staging.free_name(&backup_name(started_at, window_id));
    durations.insert("total".into(), started.elapsed().as_secs_f64());
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        name: name.clone(),
        started_at,
        finished_at: Utc::now(),
        window_id: window_id.map(str::to_owned),
        mode: release.mode().into(),
        sidecar_id: cfg.sidecar_id.clone(),
        engines: names(&engines),
        artifacts,
        missing_paths: outputs.iter().flat_map(|o| o.missing.clone()).collect(),
        verified: true,
        content_checks,
        tool_versions: tool_versions(&engines),
        durations_secs: durations.clone(),
        encryption: sealing.as_deref().map(|s| s.manifest_record()),
        participation,
        consistency: Some(release.consistency()),
    };
    manifest.save(staging.path())?;
    let path = staging.publish(&name)?;
    tracing::info!(
        "backup published: {} ({} artifacts, {})",
        path.display(),
        manifest.artifacts.len(),
        crate::base::progress::mib(manifest.total_bytes())
    );
    Ok(Published { path, manifest })
}

/// Re-reads every artifact from disk: its hash must match what was written
/// and its content must pass the engine's check (an encrypted one is read
/// with the run's check key, so the decryption is proven too). Returns the
/// manifest entries and, per artifact, the name of the check it passed.
fn verify_outputs(
    outputs: &[EngineOutput],
    keys: Option<&crate::crypt::Identities>,
    cancel: &CancelToken,
) -> anyhow::Result<(Vec<Artifact>, BTreeMap<String, String>)> {
    let mut artifacts = Vec::new();
    let mut checks = BTreeMap::new();
    for out in outputs {
        for file in &out.artifacts {
            cancel.check()?;
            let path = file
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let artifact = Artifact {
                engine: out.engine.to_owned(),
                path,
                size_bytes: file.size_bytes,
                sha256: file.sha256.clone(),
            };
            let kind = engine::kind(out.engine)?;
            let (detail, check) = match &file.proof {
                Some(proof) => (
                    verify_proof(file, proof)?,
                    // The source passed the engine's content check while
                    // frozen, and the artifact decodes to exactly its bytes.
                    kind.content_check(),
                ),
                None => {
                    let (size, sha) = sha256_file(&file.path)?;
                    anyhow::ensure!(
                        size == file.size_bytes && sha == file.sha256,
                        "{}: content on disk differs from what was written",
                        file.path.display()
                    );
                    let detail = kind
                        .check_artifact(&file.path, keys)
                        .with_context(|| format!("verify {}", file.path.display()))?;
                    (detail, kind.content_check())
                }
            };
            tracing::info!("verified {}: {detail}", file.path.display());
            checks.insert(artifact.path.clone(), check.to_owned());
            artifacts.push(artifact);
        }
    }
    Ok((artifacts, checks))
}

/// Verifies an artifact whose source was hashed while it was read and
/// which was read back and decoded while it was written
/// (`engine/pinned_passes.rs`): the bytes read back must be exactly what
/// was written (size and SHA-256; zstd checked its frame checksum on the
/// way), and they must decode to the digest of the source read.
fn verify_proof(
    file: &crate::compress::WrittenFile,
    proof: &crate::compress::ContentProof,
) -> anyhow::Result<String> {
    anyhow::ensure!(
        proof.artifact_bytes == file.size_bytes && proof.artifact_sha256 == file.sha256,
        "{}: the file read back ({} bytes, sha256 {}) differs from what was written ({} bytes, sha256 {})",
        file.path.display(),
        proof.artifact_bytes,
        proof.artifact_sha256,
        file.size_bytes,
        file.sha256
    );
    anyhow::ensure!(
        proof.decoded_sha256 == proof.source_sha256,
        "{}: decodes to {} bytes that differ from the database read under the pin",
        file.path.display(),
        proof.decoded_bytes
    );
    Ok(format!(
        "decoded {} bytes in memory while it was written, identical to the source read under the pin",
        proof.decoded_bytes
    ))
}

fn names(engines: &[Box<dyn Engine>]) -> Vec<String> {
    engines.iter().map(|e| e.name().to_owned()).collect()
}

fn tool_versions(engines: &[Box<dyn Engine>]) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    v.insert(
        "maintenance-sidecar".to_owned(),
        env!("CARGO_PKG_VERSION").to_owned(),
    );
    for e in engines {
        if let Some(version) = e.tool_version() {
            v.insert(e.name().to_owned(), version);
        }
    }
    v
}
