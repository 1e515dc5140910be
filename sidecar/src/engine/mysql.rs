//! MySQL/MariaDB engine: `mariadb-dump` (or `mysqldump`) streamed through
//! compression straight into staging.
//!
//! With `--single-transaction` the dump reads every table inside one
//! consistent snapshot transaction, opened before the first table is
//! written. So the snapshot phase ends (and the tracker may resume) as soon
//! as the dump prints its first `-- Table structure for table` line; the
//! rest streams on in the background while the tracker serves, and
//! `finish` waits for it. (This holds for transactional tables, InnoDB,
//! which is what trackers use.)
//!
//! The password reaches the child only through its `MYSQL_PWD` environment
//! variable, never argv (argv is world-readable in `/proc`). Success needs a
//! zero exit status *and* a stderr without error lines *and* the dump's own
//! `-- Dump completed` trailer; anything else fails the backup, and the
//! partial file dies with the staging folder.
//!
//! Online (no coordinator), the same dump is consistent only if every table
//! is transactional: a MyISAM (or Aria, MEMORY, ...) table is read at
//! whatever moment the dump reaches it, so a backup taken while the tracker
//! writes could pair rows from different moments. Such tables are listed
//! from `information_schema` before anything is read, and the online backup
//! is refused with the `ALTER TABLE` that fixes it
//! ([`non_transactional_tables`], [`online_refusal`]).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;

use anyhow::{bail, ensure, Context};

use super::process::{self, feed, find_program, DumpRun, ToolLogin};
use super::{Engine, EngineContext, EngineKind, EngineOutput, RestoreJob, Staged, Streaming};
use crate::base::progress;
use crate::compress::{open_decoded, ArtifactWriter};
use crate::config::{Config, MysqlConfig};
use crate::crypt::Identities;

/// Options that make the dump consistent and complete without locking.
/// `--hex-blob` writes binary columns (torrust-actix keeps its info-hashes
/// in `BINARY(20)`) as hex literals, so the dump is plain text that
/// survives any client character set on restore.
pub const DUMP_OPTIONS: &[&str] = &[
    "--single-transaction",
    "--hex-blob",
    "--quick",
    "--routines",
    "--triggers",
    "--no-tablespaces",
];

/// The marker the dump tools write as their last line.
pub const TRAILER: &str = "-- Dump completed";

/// Dumps one database.
#[derive(Debug, Clone)]
pub struct MysqlEngine {
    cfg: MysqlConfig,
}

/// How the MySQL tools log in: `--user`, the password in `MYSQL_PWD`.
const LOGIN: ToolLogin = ToolLogin {
    user_flag: "--user",
    password_env: "MYSQL_PWD",
};

/// Builds a command for a MySQL tool with connection options and the
/// password in the environment.
pub fn tool_command(cfg: &MysqlConfig, program: &str) -> Command {
    process::tool_command(cfg, LOGIN, program)
}

/// The MySQL/MariaDB engine, as registered.
#[derive(Debug, Clone, Copy)]
pub struct Mysql;

impl EngineKind for Mysql {
    fn name(&self) -> &'static str {
        "mysql"
    }

    fn configured(&self, cfg: &Config) -> Option<Box<dyn Engine>> {
        cfg.mysql
            .enabled
            .then(|| Box::new(MysqlEngine::new(cfg.mysql.clone())) as Box<dyn Engine>)
    }

    fn online_refusals(&self, cfg: &Config) -> anyhow::Result<Vec<String>> {
        if !cfg.mysql.enabled {
            return Ok(Vec::new());
        }
        let tables = non_transactional_tables(&cfg.mysql)?;
        Ok(if tables.is_empty() {
            Vec::new()
        } else {
            vec![online_refusal(&cfg.mysql, &tables)]
        })
    }

    fn content_check(&self) -> &'static str {
        "dump trailer"
    }

    fn check_artifact(&self, path: &Path, keys: Option<&Identities>) -> anyhow::Result<String> {
        check_artifact(path, keys)
    }

    fn restore(&self, job: &RestoreJob<'_>) -> anyhow::Result<String> {
        process::ensure_intact(job.path, job.artifact)?;
        restore(
            job.path,
            job.opts.database.as_deref(),
            job.opts.force,
            &job.cfg.mysql,
            job.keys(),
        )
    }
}

impl MysqlEngine {
    /// An engine for `cfg.database`.
    pub fn new(cfg: MysqlConfig) -> Self {
        MysqlEngine { cfg }
    }

    fn program(&self) -> anyhow::Result<String> {
        process::dump_program(
            &self.cfg,
            &["mariadb-dump", "mysqldump"],
            "neither mariadb-dump nor mysqldump is on PATH (set mysql.dump_command)",
        )
    }

    fn database(&self) -> anyhow::Result<&str> {
        process::database(&self.cfg, "mysql.database is not set")
    }

    fn spawn(&self) -> anyhow::Result<Child> {
        let program = self.program()?;
        let mut cmd = tool_command(&self.cfg, &program);
        cmd.args(DUMP_OPTIONS).arg(self.database()?);
        process::spawn_dump(cmd, &program)
    }
}

/// Collects stderr lines in a thread (logging each), so a chatty dump can
/// never block on a full pipe.
fn drain_stderr(stderr: impl Read + Send + 'static) -> JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            tracing::warn!("mysql dump stderr: {line}");
            if lines.len() < 100 {
                lines.push(line);
            }
        }
        lines
    })
}

fn stderr_has_error(lines: &[String]) -> bool {
    lines.iter().any(|l| {
        let l = l.to_ascii_lowercase();
        l.contains("error") || l.contains("got errno") || l.contains("couldn't")
    })
}

impl Engine for MysqlEngine {
    fn name(&self) -> &'static str {
        "mysql"
    }

    fn preflight(&self) -> anyhow::Result<()> {
        self.database()?;
        self.program().map(drop)
    }

    fn snapshot(&self, ctx: &EngineContext) -> anyhow::Result<Staged> {
        let db = self.database()?.to_owned();
        let writer = ctx.artifact(&format!("mysql-{db}.sql"))?;
        let child = self.spawn()?;
        let (consistent_tx, consistent_rx) = std::sync::mpsc::channel();
        let copy_options = ctx.copy_options("mysql dump", None);
        let stream = std::thread::spawn(move || {
            stream_dump(child, writer, &db, &copy_options, consistent_tx)
        });
        // Either the dump reached its snapshot transaction, or it ended
        // without printing a table (then the join reports how it ended).
        if consistent_rx.recv().is_err() {
            let artifact = Streaming(stream).join()?;
            return Ok(Staged {
                artifacts: vec![artifact],
                ..Staged::default()
            });
        }
        tracing::info!("mysql dump is inside its snapshot transaction: the tracker may resume");
        Ok(Staged {
            streaming: Some(Streaming(stream)),
            ..Staged::default()
        })
    }

    fn finish(&self, _ctx: &EngineContext, staged: Staged) -> anyhow::Result<EngineOutput> {
        staged.join_stream("mysql")
    }

    fn tool_version(&self) -> Option<String> {
        process::dump_tool_version(&self.program().ok()?, &["mariadb-dump", "mysqldump"])
    }
}

/// What the dump prints for each table, once its snapshot transaction is open.
const CONSISTENT_MARKER: &[u8] = b"-- Table structure for table";

/// Passes bytes through and sends once on `consistent` when the marker
/// goes by (a marker split across two writes is still found).
struct MarkerWatch<W> {
    inner: W,
    tail: Vec<u8>,
    consistent: Option<std::sync::mpsc::Sender<()>>,
}

impl<W: std::io::Write> std::io::Write for MarkerWatch<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        if self.consistent.is_some() {
            self.tail.extend_from_slice(&buf[..n]);
            if self
                .tail
                .windows(CONSISTENT_MARKER.len())
                .any(|w| w == CONSISTENT_MARKER)
            {
                if let Some(tx) = self.consistent.take() {
                    let _ = tx.send(());
                }
                self.tail = Vec::new();
            } else {
                let keep = self.tail.len().min(CONSISTENT_MARKER.len());
                self.tail.drain(..self.tail.len() - keep);
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn stream_dump(
    mut child: Child,
    writer: ArtifactWriter,
    db: &str,
    copy_options: &progress::CopyOptions,
    consistent: std::sync::mpsc::Sender<()>,
) -> anyhow::Result<crate::compress::WrittenFile> {
    let stderr = drain_stderr(child.stderr.take().context("dump stderr")?);
    let mut watched = MarkerWatch {
        inner: writer,
        tail: Vec::new(),
        consistent: Some(consistent),
    };
    let run = DumpRun {
        label: "mysql dump",
        db,
        copy_options,
        failed_on: stderr_has_error,
    };
    run.stream(&mut child, &mut watched, stderr)?;
    watched.inner.finish().context("finish mysql artifact")
}

/// Decodes a dump artifact fully and checks it ends with the dump trailer.
/// Lines are bytes, not text: a dump made without `--hex-blob` holds
/// binary column values that are not UTF-8.
pub fn check_artifact(path: &Path, keys: Option<&Identities>) -> anyhow::Result<String> {
    let reader = BufReader::new(open_decoded(path, keys)?);
    let mut last = Vec::new();
    let mut bytes = 0u64;
    for line in reader.split(b'\n') {
        let line = line.with_context(|| format!("decode {}", path.display()))?;
        bytes += line.len() as u64 + 1;
        if !line.trim_ascii().is_empty() {
            last = line;
        }
    }
    if !last.starts_with(TRAILER.as_bytes()) {
        bail!(
            "{}: the dump is truncated (last line is not {TRAILER:?})",
            path.display()
        );
    }
    Ok(format!("decoded {bytes} bytes, dump trailer present"))
}

/// True for names a MySQL database may take without quoting surprises.
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

/// Imports the dump into `database` (default: the configured one) with the
/// `mysql` client, creating the database if needed; a database that
/// already has tables needs `force`. Another restore into the same
/// database is refused (see `db_lock.rs`).
pub fn restore(
    artifact: &Path,
    database: Option<&str>,
    force: bool,
    cfg: &MysqlConfig,
    keys: Option<&Identities>,
) -> anyhow::Result<String> {
    let db = database
        .map(str::to_owned)
        .or_else(|| cfg.database.clone())
        .context("a MySQL restore needs --database NAME (or MYSQL_DATABASE)")?;
    ensure!(
        valid_db_name(&db),
        "database name {db:?} is not allowed (letters, digits, _ $ - only)"
    );
    // Held until the import has ended: the table count runs under it.
    let server = format!("{}:{}", cfg.host, cfg.port);
    let _lock = super::db_lock::mysql(tool_command(cfg, &client_program(cfg)?), &db, &server)?;
    let tables: u64 = mysql_query(
        cfg,
        &format!("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema='{db}'"),
    )?
    .parse()
    .unwrap_or(0);
    if tables > 0 && !force {
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

/// The query listing the tables `--single-transaction` does not cover.
const QUERY: &str = "SELECT TABLE_NAME, IFNULL(ENGINE, '') FROM information_schema.TABLES \
    WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' \
    AND IFNULL(ENGINE, '') <> 'InnoDB' ORDER BY TABLE_NAME";

/// `(table, engine)` of every base table of the configured database that
/// is not InnoDB (listed with the server's own client, `mariadb` or
/// `mysql`).
pub fn non_transactional_tables(cfg: &MysqlConfig) -> anyhow::Result<Vec<(String, String)>> {
    let database = cfg
        .database
        .as_deref()
        .context("mysql.database is not set")?;
    let program = match &cfg.client_command {
        Some(c) => c.clone(),
        None => find_program(&["mariadb", "mysql"])
            .context("neither mariadb nor mysql (the client) is on PATH, needed to check the table engines before an online dump")?,
    };
    let out = tool_command(cfg, &program)
        .args(["--batch", "--skip-column-names", "-e", QUERY, database])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start {program:?}"))?;
    if !out.status.success() {
        bail!(
            "listing the table engines of {database} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (table, engine) = l.split_once('\t')?;
            Some((table.to_owned(), engine.to_owned()))
        })
        .collect())
}

/// The online refusal naming the tables and the fix.
pub fn online_refusal(cfg: &MysqlConfig, tables: &[(String, String)]) -> String {
    let list: Vec<String> = tables.iter().map(|(t, e)| format!("{t} ({e})")).collect();
    let fix: Vec<String> = tables
        .iter()
        .map(|(t, _)| format!("ALTER TABLE `{t}` ENGINE=InnoDB;"))
        .collect();
    format!(
        "database {} has tables an online dump cannot copy consistently, because --single-transaction only covers InnoDB: {}. Convert them once (a quiet moment is enough: {}), or keep the stop-copy-start fallback (compose/maintenance-backup.sh --force-stop)",
        cfg.database.as_deref().unwrap_or("?"),
        list.join(", "),
        fix.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn watch(chunks: &[&[u8]]) -> (Vec<u8>, bool) {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut w = MarkerWatch {
            inner: Vec::new(),
            tail: Vec::new(),
            consistent: Some(tx),
        };
        for c in chunks {
            w.write_all(c).unwrap();
        }
        let seen = rx.try_recv().is_ok();
        (w.inner, seen)
    }

    #[test]
    fn a_dump_with_binary_column_values_verifies_and_a_cut_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let dump = b"-- MariaDB dump\nINSERT INTO `torrents` VALUES ('\xff\xfe\x00\x9c',3);\n";
        let whole = dir.path().join("whole.sql.zst");
        let mut bytes = dump.to_vec();
        bytes.extend_from_slice(b"-- Dump completed on 2026-12-07 21:00:00\n");
        std::fs::write(&whole, zstd::encode_all(&bytes[..], 3).unwrap()).unwrap();
        let ok = check_artifact(&whole, None).unwrap();
        assert!(ok.contains("dump trailer present"), "{ok}");

        let cut = dir.path().join("cut.sql.zst");
        std::fs::write(&cut, zstd::encode_all(&dump[..], 3).unwrap()).unwrap();
        let err = check_artifact(&cut, None).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn the_dump_writes_binary_columns_as_hex() {
        assert!(DUMP_OPTIONS.contains(&"--hex-blob"));
    }

    #[test]
    fn db_names() {
        assert!(super::valid_db_name("tracker_restore-1"));
        assert!(!super::valid_db_name("x'; DROP"));
        assert!(!super::valid_db_name(""));
    }

    #[test]
    fn marker_is_found_even_when_split_across_writes() {
        let (out, seen) = watch(&[
            b"-- MariaDB dump\n--\n-- Table struc",
            b"ture for table `torrents`\n",
        ]);
        assert!(seen);
        assert_eq!(
            out,
            b"-- MariaDB dump\n--\n-- Table structure for table `torrents`\n"
        );
    }

    #[test]
    fn header_alone_is_not_consistent_yet() {
        let (_, seen) = watch(&[b"-- MariaDB dump 10.19\n/*!40101 SET NAMES utf8mb4 */;\n"]);
        assert!(!seen);
    }
}
