//! `restore <backup>`: puts an artifact back — a SQLite file at a path, a
//! dump into a MySQL/MariaDB database, or a tarball into a folder.
//!
//! It never overwrites something non-empty without `--force`, and it checks
//! the artifact's hash against the manifest first. A SQLite restore goes to
//! a temporary file that is checked and then renamed over the target, so a
//! failed restore leaves the old file intact.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, ensure, Context};
use maintenance_proto::Artifact;

use crate::compress::open_decoded;
use crate::config::MysqlConfig;
use crate::engine::mysql::{find_program, tool_command};
use crate::engine::sqlite::{decompress_to, integrity_check};
use crate::hashing::sha256_file;
use crate::manifest::Manifest;

/// What to restore and where.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Restrict to one engine's artifact (needed when a backup has several).
    pub engine: Option<String>,
    /// Target path: SQLite file, or folder for the files engine.
    pub to: Option<PathBuf>,
    /// Target database for MySQL (defaults to the configured one).
    pub database: Option<String>,
    /// Overwrite a non-empty target.
    pub force: bool,
}

/// Restores one artifact of the backup in `dir`; returns a summary line.
pub fn restore(dir: &Path, opts: &RestoreOptions, mysql: &MysqlConfig) -> anyhow::Result<String> {
    let manifest = Manifest::load(dir)?;
    let candidates: Vec<&Artifact> = manifest
        .artifacts
        .iter()
        .filter(|a| opts.engine.as_deref().is_none_or(|e| e == a.engine))
        .collect();
    let artifact = match candidates.as_slice() {
        [one] => *one,
        [] => bail!(
            "no artifact for engine {:?} in {}",
            opts.engine,
            dir.display()
        ),
        _ => bail!(
            "the backup has several artifacts ({}); choose one with --engine",
            candidates
                .iter()
                .map(|a| a.engine.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let path = dir.join(&artifact.path);
    let (_, sha) = sha256_file(&path)?;
    ensure!(
        sha == artifact.sha256,
        "{}: sha256 differs from the manifest; refusing to restore a corrupted artifact",
        artifact.path
    );
    match artifact.engine.as_str() {
        "sqlite" => restore_sqlite(&path, opts),
        "mysql" => restore_mysql(&path, opts, mysql),
        "files" => restore_files(&path, opts),
        other => bail!("unknown engine {other:?}"),
    }
}

fn restore_sqlite(artifact: &Path, opts: &RestoreOptions) -> anyhow::Result<String> {
    let to = opts
        .to
        .as_deref()
        .context("a SQLite restore needs --to PATH")?;
    let exists_non_empty = std::fs::metadata(to).map(|m| m.len() > 0).unwrap_or(false);
    if exists_non_empty && !opts.force {
        bail!(
            "{} exists and is not empty; refusing to overwrite it without --force (stop the tracker first)",
            to.display()
        );
    }
    let parent = to
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let tmp = tempfile::Builder::new()
        .prefix(".restore-")
        .tempfile_in(parent)?;
    let bytes = decompress_to(artifact, tmp.path())?;
    integrity_check(tmp.path())?;
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = to.as_os_str().to_owned();
        side.push(suffix);
        let side = PathBuf::from(side);
        if side.exists() {
            tracing::warn!("removing stale {}", side.display());
            std::fs::remove_file(&side)?;
        }
    }
    tmp.persist(to).map_err(|e| e.error)?;
    crate::fsutil::sync_dir(parent)?;
    Ok(format!(
        "restored SQLite database to {} ({bytes} bytes, integrity_check ok)",
        to.display()
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
    let stderr = child.stderr.take().context("client stderr")?;
    let errs = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .take(50)
            .collect::<Vec<_>>()
    });
    let mut stdin = child.stdin.take().context("client stdin")?;
    let copied = crate::progress::copy(
        &mut open_decoded(artifact)?,
        &mut stdin,
        &crate::progress::operator_copy("mysql restore", None),
    );
    let flushed = stdin.flush();
    drop(stdin);
    let status = child.wait()?;
    let errors = errs.join().unwrap_or_default();
    if !status.success() {
        bail!(
            "mysql restore into {db} failed ({status}): {}",
            errors.join(" | ")
        );
    }
    let bytes = copied.context("stream dump into client")?;
    flushed?;
    Ok(format!(
        "restored MySQL dump into database {db} ({bytes} bytes of SQL)"
    ))
}

fn restore_files(artifact: &Path, opts: &RestoreOptions) -> anyhow::Result<String> {
    let to = opts
        .to
        .as_deref()
        .context("a files restore needs --to DIR")?;
    let non_empty = std::fs::read_dir(to)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if non_empty && !opts.force {
        bail!(
            "{} is not empty; refusing to extract into it without --force",
            to.display()
        );
    }
    std::fs::create_dir_all(to)?;
    tar::Archive::new(open_decoded(artifact)?)
        .unpack(to)
        .with_context(|| format!("extract into {}", to.display()))?;
    Ok(format!("extracted files into {}", to.display()))
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
