//! The engines: one file per kind of data, registered in [`ENGINES`].
//!
//! Two small traits cover everything engine-specific. [`EngineKind`] is
//! what an engine is (registered once, named in manifests): it builds the
//! configured [`Engine`] from the configuration, and checks, restores and
//! drills a published artifact, and says whether its source can be
//! copied online. [`Engine`] is one configured source: its
//! pre-flight checks, snapshot, finish and tool version. Adding an engine
//! means one file implementing both, one line in [`ENGINES`], and its
//! configuration section in `config/` (its struct, `any_engine`,
//! `NO_ENGINE` and `validate` in `mod.rs`, its TOML table in `file.rs`, its
//! environment variables in `env.rs`); `tests/engine_contract.rs` then
//! asks for its subject.
//!
//! A backup has two phases because the tracker is paused only for the
//! first: [`Engine::snapshot`] runs while the database is quiesced and must
//! produce a consistent copy (or the finished artifact) in staging, or
//! nothing at all when the source stays frozen after the release (a SQLite
//! file under the tracker's pin); [`Engine::finish`] runs after the
//! coordinator was told `release` and does the slow part (the read under
//! the pin, compression); then the verify phase checks each artifact's
//! content, per engine ([`check_artifact`], or the streamed-content check
//! of an artifact whose source was hashed while it was read).

pub mod db_lock;
pub mod files;
pub mod mysql;
mod pinned_passes;
pub mod postgres;
pub mod process;
pub mod sqlite;
mod sqlite_check;
pub mod untar;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::base::cancel::CancelToken;
use crate::base::progress::CopyOptions;
use crate::compress::{ArtifactWriter, WrittenFile};
use anyhow::Context;
use maintenance_proto::Artifact;

use crate::config::{Compression, Config};
use crate::crypt::{Identities, Sealing};
use crate::manifest::Manifest;
use crate::readback::Readback;

/// What every engine gets to work with.
#[derive(Debug, Clone)]
pub struct EngineContext {
    /// The staging folder of this run.
    pub staging: PathBuf,
    /// Artifact compression.
    pub compression: Compression,
    /// Compression level.
    pub level: Option<i32>,
    /// Interval between progress log lines.
    pub progress_every: Duration,
    /// Set when the lease is lost; engines stop at the next chunk.
    pub cancel: CancelToken,
    /// The run's encryption, when recipients are configured.
    pub sealing: Option<Arc<Sealing>>,
    /// The tracker holds a snapshot pin (protocol 2): the SQLite main file
    /// stays frozen after the release, so it is read after it.
    pub pinned: bool,
    /// The most the SQLite file may be read at, in bytes a second, over
    /// all of its readers (`BACKUP_ONLINE_READ_LIMIT_MIBPS`, online
    /// backups only); `None` reads as fast as the disk gives.
    pub read_limit: Option<u64>,
}

impl EngineContext {
    /// Copy options for a copy named `label`.
    pub fn copy_options(&self, label: &str, total: Option<u64>) -> CopyOptions {
        CopyOptions {
            label: label.to_owned(),
            every: self.progress_every,
            cancel: self.cancel.clone(),
            total,
        }
    }

    /// Path in staging for a file called `name`.
    pub fn staged(&self, name: &str) -> PathBuf {
        self.staging.join(name)
    }

    /// Starts the artifact `<stem>.<zst|gz>[.age]` in staging: compressed,
    /// encrypted when recipients are configured, hashed while written.
    pub fn artifact(&self, stem: &str) -> std::io::Result<ArtifactWriter> {
        let mut name = format!("{stem}.{}", self.compression.extension());
        if self.sealing.is_some() {
            name = format!("{name}.{}", crate::crypt::AGE_SUFFIX);
        }
        ArtifactWriter::create(
            &self.staged(&name),
            self.compression,
            self.level,
            self.sealing.as_deref(),
        )
    }
}

/// Output of the snapshot phase, handed back to [`Engine::finish`].
#[derive(Debug, Default)]
pub struct Staged {
    /// An uncompressed snapshot still to be compressed (SQLite, unpinned).
    pub raw: Option<PathBuf>,
    /// The source is frozen by the tracker's pin and is streamed into its
    /// artifact after the release, in [`Engine::finish`] (SQLite).
    pub read_after_release: bool,
    /// Artifacts already finished during the snapshot (streamed engines).
    pub artifacts: Vec<WrittenFile>,
    /// Listed paths that did not exist (files engine).
    pub missing: Vec<String>,
    /// Work still streaming after the consistent point was reached (a
    /// MySQL dump inside its snapshot transaction, a PostgreSQL dump of an
    /// exported snapshot); joined by `finish`.
    pub streaming: Option<Streaming>,
}

/// A background stream that produces one artifact.
pub struct Streaming(pub std::thread::JoinHandle<anyhow::Result<WrittenFile>>);

impl std::fmt::Debug for Streaming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Streaming")
    }
}

impl Streaming {
    /// Waits for the stream to end and returns its artifact.
    pub fn join(self) -> anyhow::Result<WrittenFile> {
        self.0
            .join()
            .map_err(|_| anyhow::anyhow!("streaming thread panicked"))?
    }
}

impl Staged {
    /// The output of a dump engine: the artifacts finished during the
    /// snapshot plus the stream still running, joined here.
    pub fn join_stream(self, engine: &'static str) -> anyhow::Result<EngineOutput> {
        let mut artifacts = self.artifacts;
        if let Some(stream) = self.streaming {
            artifacts.push(stream.join()?);
        }
        Ok(EngineOutput {
            engine,
            artifacts,
            missing: self.missing,
        })
    }
}

/// Result of a finished engine.
#[derive(Debug, Clone)]
pub struct EngineOutput {
    /// Engine name: `sqlite`, `mysql`, `postgres`, `files`.
    pub engine: &'static str,
    /// The verified artifacts, inside staging.
    pub artifacts: Vec<WrittenFile>,
    /// Listed paths that did not exist.
    pub missing: Vec<String>,
}

/// One configured source to back up.
pub trait Engine: Send + Sync {
    /// Stable name, used in artifact records.
    fn name(&self) -> &'static str;

    /// The checks that can fail before anything is read (the database is
    /// named, the tool is found); run right before [`Engine::snapshot`].
    fn preflight(&self) -> anyhow::Result<()> {
        Ok(())
    }

    /// Takes the consistent copy. Runs while the tracker is quiesced, so it
    /// should do as little as possible.
    fn snapshot(&self, ctx: &EngineContext) -> anyhow::Result<Staged>;

    /// Compresses what [`Engine::snapshot`] staged, if anything is left to
    /// compress. Runs after release. The content check of every artifact
    /// follows in the generic verify phase ([`EngineKind::check_artifact`]).
    fn finish(&self, ctx: &EngineContext, staged: Staged) -> anyhow::Result<EngineOutput>;

    /// Version of the tool doing the work, for the manifest.
    fn tool_version(&self) -> Option<String>;
}

/// How thoroughly a restored SQLite database is checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckMode {
    /// The full `integrity_check` unless the manifest records that this
    /// artifact passed it when the backup was made; then the header check.
    #[default]
    Auto,
    /// Always the full `integrity_check` (drills, suspicion).
    Full,
}

/// What to restore and where.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Restrict to one engine's artifact (needed when a backup has several).
    pub engine: Option<String>,
    /// Target path: SQLite file (or the folder to put it in), or folder for
    /// the files engine.
    pub to: Option<PathBuf>,
    /// Target database for MySQL/PostgreSQL (defaults to the configured one).
    pub database: Option<String>,
    /// Overwrite a non-empty target.
    pub force: bool,
    /// SQLite content check.
    pub check: CheckMode,
    /// Keys for an encrypted backup (`--identity`, `BACKUP_AGE_IDENTITY_FILE`).
    pub identities: Option<Arc<Identities>>,
}

/// One artifact to restore: where it is, what the manifest says about it,
/// the operator's options and the configuration (database servers).
#[derive(Debug, Clone, Copy)]
pub struct RestoreJob<'a> {
    /// The backup's manifest.
    pub manifest: &'a Manifest,
    /// The artifact's manifest entry.
    pub artifact: &'a Artifact,
    /// The artifact file.
    pub path: &'a Path,
    /// What to restore and where.
    pub opts: &'a RestoreOptions,
    /// The configuration (the database servers to restore into).
    pub cfg: &'a Config,
}

impl RestoreJob<'_> {
    /// The keys for an encrypted artifact.
    pub fn keys(&self) -> Option<&Identities> {
        self.opts.identities.as_deref()
    }
}

/// One artifact to drill: restored (or, for a dump, decoded and checked)
/// inside `work`, a temporary folder removed afterwards.
#[derive(Debug, Clone, Copy)]
pub struct DrillJob<'a> {
    /// The artifact's manifest entry.
    pub artifact: &'a Artifact,
    /// The artifact file.
    pub path: &'a Path,
    /// The drill's temporary folder.
    pub work: &'a Path,
    /// The keys for an encrypted artifact.
    pub keys: Option<&'a Identities>,
}

/// What drilling one artifact measured.
#[derive(Debug, Clone, Default)]
pub struct Drilled {
    /// The report line.
    pub line: String,
    /// Seconds spent reading, hashing, decompressing and writing.
    pub decompress_secs: f64,
    /// Seconds spent in the content check.
    pub check_secs: f64,
    /// Decompressed bytes restored.
    pub bytes: u64,
}

/// One kind of data: everything engine-specific about its artifacts, and
/// the configured [`Engine`] that backs it up.
pub trait EngineKind: Sync {
    /// Stable name, used in artifact records and `--engine`.
    fn name(&self) -> &'static str;

    /// The configured engine, when `cfg` enables this kind.
    fn configured(&self, cfg: &Config) -> Option<Box<dyn Engine>>;

    /// Name of the content check [`EngineKind::check_artifact`] runs,
    /// recorded in the manifest (`content_checks`) for every artifact that
    /// passed it.
    fn content_check(&self) -> &'static str;

    /// Checks the content of an artifact (backup's verify phase and
    /// `verify`); a short description of what was checked. An encrypted
    /// artifact needs `keys`.
    fn check_artifact(&self, path: &Path, keys: Option<&Identities>) -> anyhow::Result<String>;

    /// Puts the artifact back; a summary line. Never overwrites something
    /// non-empty without `--force`.
    fn restore(&self, job: &RestoreJob<'_>) -> anyhow::Result<String>;

    /// Why the source `cfg` configures for this engine cannot be copied
    /// online (while the tracker serves, with no coordinator to quiesce
    /// it), each reason with its fix in the message; empty when it can, or
    /// when `cfg` does not enable this engine. An error when the source
    /// cannot be inspected. Asked before anything is read
    /// (`crate::online::qualify`); every engine answers for itself.
    fn online_refusals(&self, cfg: &Config) -> anyhow::Result<Vec<String>>;

    /// What killed restores left beside the restore target that `cfg`
    /// names for this engine (its temporary files, once their process is
    /// gone), for `prune` to sweep. By default an engine knows no target
    /// without `--to` and has nothing to sweep.
    fn leftovers(&self, _cfg: &Config) -> Vec<PathBuf> {
        Vec::new()
    }

    /// Drills the artifact. By default (a dump, which cannot be restored
    /// without a database server) it is hashed and decoded, then its
    /// content is checked.
    fn drill(&self, job: &DrillJob<'_>) -> anyhow::Result<Drilled> {
        let a = job.artifact;
        let t = Instant::now();
        let mut decoded = Readback::open(job.path, a, job.keys)?;
        let bytes = std::io::copy(&mut decoded, &mut std::io::sink())
            .with_context(|| format!("decompress {}", a.path))?;
        decoded.finish()?;
        let decompress_secs = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let detail = self.check_artifact(job.path, job.keys)?;
        Ok(Drilled {
            line: format!("{}: sha256 ok, {detail}", a.path),
            decompress_secs,
            check_secs: t.elapsed().as_secs_f64(),
            bytes,
        })
    }
}

/// Every engine, in backup order: the one place engines are registered.
pub const ENGINES: [&dyn EngineKind; 4] = [
    &sqlite::Sqlite,
    &mysql::Mysql,
    &postgres::Postgres,
    &files::Files,
];

/// The engine named `name` in a manifest.
pub fn kind(name: &str) -> anyhow::Result<&'static dyn EngineKind> {
    ENGINES
        .into_iter()
        .find(|k| k.name() == name)
        .ok_or_else(|| anyhow::anyhow!("unknown engine {name:?} in manifest"))
}

/// The engines enabled in `cfg`, in backup order.
pub fn from_config(cfg: &Config) -> Vec<Box<dyn Engine>> {
    ENGINES.iter().filter_map(|k| k.configured(cfg)).collect()
}

/// Checks the content of a published artifact of `engine` (used by
/// `verify`); returns a short description of what was checked. An
/// encrypted artifact needs `keys`.
pub fn check_artifact(
    engine: &str,
    path: &Path,
    keys: Option<&Identities>,
) -> anyhow::Result<String> {
    kind(engine)?.check_artifact(path, keys)
}
