//! `restore <backup>`: puts an artifact back — a SQLite file at a path, a
//! dump into a MySQL/MariaDB or PostgreSQL database, or a tarball into a
//! folder.
//!
//! It never overwrites something non-empty without `--force`. SQLite and
//! files artifacts are hashed in the same pass that decompresses them into a
//! private temporary location ([`Readback`]); only when size and SHA-256
//! match the manifest (and the content check passed) is the result moved
//! into place, so a failed restore leaves the previous file untouched. A
//! MySQL or PostgreSQL dump is hashed before the import starts, since an
//! import cannot be undone.
//!
//! The SQLite content check: the full `PRAGMA integrity_check` reads every
//! page and every index and dominates restore time on a large database. When
//! the manifest records that this artifact passed `integrity_check` before
//! publishing, a matching SHA-256 proves the bytes are identical to the ones
//! checked, so by default only the cheap [`header_check`] runs; `--check
//! full` (and any manifest without that record) runs the full check.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use anyhow::{bail, ensure, Context};
use maintenance_proto::Artifact;

use crate::base::hashing::sha256_file;
use crate::base::replace::Replacement;
use crate::config::{MysqlConfig, PostgresConfig};
use crate::crypt::{self, Identities};
use crate::engine::mysql::tool_command;
use crate::engine::process::{feed, find_program};
use crate::engine::sqlite::{self, header_check, integrity_check};
use crate::manifest::Manifest;
use crate::readback::Readback;

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
    pub identities: Option<std::sync::Arc<Identities>>,
}

/// The one artifact of `manifest` to restore, optionally for `engine`.
pub fn select<'m>(
    manifest: &'m Manifest,
    engine: Option<&str>,
    dir: &Path,
) -> anyhow::Result<&'m Artifact> {
    let candidates: Vec<&Artifact> = manifest
        .artifacts
        .iter()
        .filter(|a| engine.is_none_or(|e| e == a.engine))
        .collect();
    match candidates.as_slice() {
        [one] => Ok(*one),
        [] => bail!("no artifact for engine {engine:?} in {}", dir.display()),
        _ => bail!(
            "the backup has several artifacts ({}); choose one with --engine",
            candidates
                .iter()
                .map(|a| a.engine.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Restores one artifact of the backup in `dir`; returns a summary line.
pub fn restore(
    dir: &Path,
    opts: &RestoreOptions,
    mysql: &MysqlConfig,
    postgres: &PostgresConfig,
) -> anyhow::Result<String> {
    let manifest = Manifest::load(dir)?;
    let artifact = select(&manifest, opts.engine.as_deref(), dir)?;
    let path = dir.join(&artifact.path);
    let keys = opts.identities.as_deref();
    ensure!(
        keys.is_some() || !crypt::is_encrypted(&path),
        "{} is encrypted with age: restore needs the identity (--identity FILE or BACKUP_AGE_IDENTITY_FILE)",
        artifact.path
    );
    match artifact.engine.as_str() {
        "sqlite" => restore_sqlite(&manifest, artifact, &path, opts),
        engine @ ("mysql" | "postgres") => {
            let (_, sha) = sha256_file(&path)?;
            ensure!(
                sha == artifact.sha256,
                "{}: sha256 differs from the manifest; refusing to restore a corrupted artifact",
                artifact.path
            );
            if engine == "mysql" {
                restore_mysql(&path, opts, mysql, keys)
            } else {
                crate::engine::postgres::restore(
                    &path,
                    opts.database.as_deref(),
                    opts.force,
                    postgres,
                    keys,
                )
            }
        }
        "files" => {
            let to = opts
                .to
                .as_deref()
                .context("a files restore needs --to DIR")?;
            super::restore_files::restore(&path, artifact, to, opts.force, keys)
        }
        other => bail!("unknown engine {other:?}"),
    }
}

/// The SQLite check a restore runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteCheck {
    /// [`header_check`]: header, page count, schema.
    Header,
    /// `PRAGMA integrity_check`.
    Full,
}

impl SqliteCheck {
    /// The check for `mode` on `artifact` of `manifest`.
    pub fn choose(mode: CheckMode, manifest: &Manifest, artifact: &Artifact) -> SqliteCheck {
        match mode {
            CheckMode::Full => SqliteCheck::Full,
            CheckMode::Auto if manifest.passed(&artifact.path, sqlite::CONTENT_CHECK) => {
                SqliteCheck::Header
            }
            CheckMode::Auto => {
                tracing::warn!(
                    "{}: the manifest records no passed {}; running the full check",
                    artifact.path,
                    sqlite::CONTENT_CHECK
                );
                SqliteCheck::Full
            }
        }
    }

    fn describe(self) -> &'static str {
        match self {
            SqliteCheck::Header => {
                "header check ok (integrity_check skipped: it passed when the backup was made)"
            }
            SqliteCheck::Full => "integrity_check ok",
        }
    }
}

/// What a SQLite restore did, with its timings (the RTO figures of a drill).
#[derive(Debug, Clone)]
pub struct SqliteRestored {
    /// Decompressed size.
    pub bytes: u64,
    /// Seconds spent reading, hashing, decompressing and writing (fsync
    /// included).
    pub decompress_secs: f64,
    /// Seconds spent in the content check.
    pub check_secs: f64,
    /// The check that ran.
    pub check: SqliteCheck,
}

/// Restores the SQLite `artifact` (file `path`) into the file `target`
/// atomically: decoded and hashed in one pass into a temporary file beside
/// the target, which gets the target's mode and owner, checked, then renamed
/// over it (after removing the target's stale `-wal`/`-shm`/`-journal`).
/// Temporary files that an earlier, killed restore of the same target left
/// are removed first.
pub fn sqlite_into(
    path: &Path,
    artifact: &Artifact,
    target: &Path,
    check: SqliteCheck,
    keys: Option<&Identities>,
) -> anyhow::Result<SqliteRestored> {
    let started = Instant::now();
    crate::base::temp::remove(&crate::retention::restore_leftovers(target));
    let mut tmp = Replacement::create(target, crate::base::temp::RESTORE_PREFIX)?;
    let mut decoded = Readback::open(path, artifact, keys)?;
    let label = format!("restore {}", artifact.path);
    let bytes = {
        let mut out = BufWriter::with_capacity(1 << 20, tmp.file());
        let n = crate::base::progress::copy(
            &mut decoded,
            &mut out,
            &crate::base::progress::operator_copy(&label, None),
        )
        .with_context(|| format!("decompress {}", artifact.path))?;
        out.flush()?;
        n
    };
    decoded.finish()?;
    tmp.file().sync_all()?;
    let decompress_secs = started.elapsed().as_secs_f64();
    let t = Instant::now();
    match check {
        SqliteCheck::Header => header_check(tmp.path()),
        SqliteCheck::Full => integrity_check(tmp.path()),
    }
    .with_context(|| format!("check the database restored from {}", artifact.path))?;
    let check_secs = t.elapsed().as_secs_f64();
    tmp.commit(&["-wal", "-shm", "-journal"])?;
    Ok(SqliteRestored {
        bytes,
        decompress_secs,
        check_secs,
        check,
    })
}

/// File name of the database inside a SQLite artifact name
/// (`sqlite-tracker.db.zst` → `tracker.db`).
pub fn sqlite_file_name(artifact: &str) -> String {
    let base = artifact.strip_prefix("sqlite-").unwrap_or(artifact);
    let base = base.strip_suffix(".age").unwrap_or(base);
    base.strip_suffix(".zst")
        .or_else(|| base.strip_suffix(".gz"))
        .unwrap_or(base)
        .to_owned()
}

fn restore_sqlite(
    manifest: &Manifest,
    artifact: &Artifact,
    path: &Path,
    opts: &RestoreOptions,
) -> anyhow::Result<String> {
    let to = opts
        .to
        .as_deref()
        .context("a SQLite restore needs --to PATH")?;
    // A folder means "into this folder, under the database's own name".
    let target = if to.is_dir() {
        to.join(sqlite_file_name(&artifact.path))
    } else {
        to.to_owned()
    };
    let exists_non_empty = std::fs::metadata(&target)
        .map(|m| m.len() > 0)
        .unwrap_or(false);
    if exists_non_empty && !opts.force {
        bail!(
            "{} exists and is not empty; refusing to overwrite it without --force (stop the tracker first)",
            target.display()
        );
    }
    let check = SqliteCheck::choose(opts.check, manifest, artifact);
    let r = sqlite_into(path, artifact, &target, check, opts.identities.as_deref())?;
    Ok(format!(
        "restored SQLite database to {} ({} bytes, sha256 ok, {}; decompress {:.2} s, check {:.2} s)",
        target.display(),
        r.bytes,
        r.check.describe(),
        r.decompress_secs,
        r.check_secs
    ))
}

fn valid_db_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '-')
}

fn client_program(cfg: &MysqlConfig) -> anyhow::Result<String> {
    if let Some(c) = &cfg.client_command {
        return Ok(c.clone());
    }
    find_program(&["mariadb", "mysql"]).context("neither mariadb nor mysql client is on PATH")
}

fn mysql_query(cfg: &MysqlConfig, sql: &str) -> anyhow::Result<String> {
    let out = tool_command(cfg, &client_program(cfg)?)
        .args(["-N", "-B", "-e", sql])
        .stdin(Stdio::null())
        .output()
        .context("run mysql client")?;
    if !out.status.success() {
        bail!(
            "mysql client failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn restore_mysql(
    artifact: &Path,
    opts: &RestoreOptions,
    cfg: &MysqlConfig,
    keys: Option<&Identities>,
) -> anyhow::Result<String> {
    let db = opts
        .database
        .clone()
        .or_else(|| cfg.database.clone())
        .context("a MySQL restore needs --database NAME (or MYSQL_DATABASE)")?;
    ensure!(
        valid_db_name(&db),
        "database name {db:?} is not allowed (letters, digits, _ $ - only)"
    );
    let tables: u64 = mysql_query(
        cfg,
        &format!("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema='{db}'"),
    )?
    .parse()
    .unwrap_or(0);
    if tables > 0 && !opts.force {
        bail!(
            "database {db} already has {tables} tables; refusing to overwrite it without --force"
        );
    }
    mysql_query(cfg, &format!("CREATE DATABASE IF NOT EXISTS `{db}`"))?;
    let mut child: std::process::Child = tool_command(cfg, &client_program(cfg)?)
        .arg(&db)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("start mysql client")?;
    let fed = feed(&mut child, artifact, keys, "mysql restore")?;
    if !fed.status.success() {
        bail!(
            "mysql restore into {db} failed ({}): {}",
            fed.status,
            fed.stderr.join(" | ")
        );
    }
    let bytes = fed.copied.context("stream dump into client")?;
    Ok(format!(
        "restored MySQL dump into database {db} ({bytes} bytes of SQL)"
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn db_names() {
        assert!(super::valid_db_name("tracker_restore-1"));
        assert!(!super::valid_db_name("x'; DROP"));
        assert!(!super::valid_db_name(""));
    }
}
