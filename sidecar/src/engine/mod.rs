//! The backup engines behind one trait.
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

pub mod files;
pub mod mysql;
pub mod postgres;
pub mod process;
pub mod sqlite;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::base::cancel::CancelToken;
use crate::base::progress::CopyOptions;
use crate::compress::{ArtifactWriter, WrittenFile};
use crate::config::{Compression, Config};
use crate::crypt::{Identities, Sealing};

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

/// `<program> --version` for a known dump tool (one of `known` file names);
/// a custom command (often a wrapper script) is named, not run twice.
pub fn dump_tool_version(program: &str, known: &[&str]) -> Option<String> {
    let base = Path::new(program)
        .file_name()?
        .to_string_lossy()
        .into_owned();
    if !known.contains(&base.as_str()) {
        return Some(format!("custom dump command {program}"));
    }
    let out = std::process::Command::new(program)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (!text.is_empty()).then_some(text)
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

/// One kind of data to back up.
pub trait Engine: Send + Sync {
    /// Stable name, used in artifact records.
    fn name(&self) -> &'static str;

    /// Takes the consistent copy. Runs while the tracker is quiesced, so it
    /// should do as little as possible.
    fn snapshot(&self, ctx: &EngineContext) -> anyhow::Result<Staged>;

    /// Compresses what [`Engine::snapshot`] staged, if anything is left to
    /// compress. Runs after release. The content check of every artifact
    /// follows in the generic verify phase ([`check_artifact`]).
    fn finish(&self, ctx: &EngineContext, staged: Staged) -> anyhow::Result<EngineOutput>;

    /// Version of the tool doing the work, for the manifest.
    fn tool_version(&self) -> Option<String>;
}

/// The engines enabled in `cfg`, in backup order.
pub fn from_config(cfg: &Config) -> Vec<Box<dyn Engine>> {
    let mut engines: Vec<Box<dyn Engine>> = Vec::new();
    if cfg.sqlite.enabled {
        if let Some(path) = &cfg.sqlite.path {
            engines.push(Box::new(sqlite::SqliteEngine::new(path.clone())));
        }
    }
    if cfg.mysql.enabled {
        engines.push(Box::new(mysql::MysqlEngine::new(cfg.mysql.clone())));
    }
    if cfg.postgres.enabled {
        engines.push(Box::new(postgres::PostgresEngine::new(
            cfg.postgres.clone(),
        )));
    }
    if let Some(paths_file) = &cfg.files.paths_file {
        engines.push(Box::new(files::FilesEngine::new(paths_file.clone())));
    }
    engines
}

/// Name of the content check [`check_artifact`] runs for `engine`, recorded
/// in the manifest (`content_checks`) for every artifact that passed it.
pub fn content_check(engine: &str) -> &'static str {
    match engine {
        "sqlite" => sqlite::CONTENT_CHECK,
        "mysql" => "dump trailer",
        "postgres" => "pg_restore read-through",
        "files" => "tar listing",
        _ => "unknown",
    }
}

/// Checks the content of a published artifact of `engine` (used by
/// `verify`); returns a short description of what was checked. An
/// encrypted artifact needs `keys`.
pub fn check_artifact(
    engine: &str,
    path: &Path,
    keys: Option<&Identities>,
) -> anyhow::Result<String> {
    match engine {
        "sqlite" => sqlite::check_artifact(path, keys),
        "mysql" => mysql::check_artifact(path, keys),
        "postgres" => postgres::check_artifact(path, keys),
        "files" => files::check_artifact(path, keys),
        other => anyhow::bail!("unknown engine {other:?} in manifest"),
    }
}
