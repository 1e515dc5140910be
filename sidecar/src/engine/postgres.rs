//! PostgreSQL engine: `pg_dump` in the custom format, reading a snapshot
//! the sidecar exports itself, streamed through compression into staging.
//!
//! The release point is exact. A connection of the sidecar's own runs
//! `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY` and
//! `SELECT pg_export_snapshot()`; from that moment the snapshot exists and
//! later commits are invisible to it, so the snapshot phase ends there and
//! the tracker resumes. `pg_dump --snapshot=<id>` then reads exactly that
//! snapshot. An exported snapshot can only be imported while its exporting
//! transaction is open, so that transaction stays open until `pg_dump` has
//! imported it: `pg_dump --verbose` prints `last built-in OID is ...` right
//! after its connection ran `SET TRANSACTION SNAPSHOT`, and that stderr
//! line ends the exporting transaction (so does the dump's end, whatever
//! its outcome).
//!
//! The dump is written uncompressed (`--compress=0`) and compressed by the
//! sidecar's own zstd/gzip writer, like every other artifact. Success needs
//! exit status 0, no `error:` line on stderr, and then, in the verify phase,
//! `pg_restore --list` on the archive plus a full `pg_restore --file=/dev/null`
//! read (the TOC alone does not notice a truncated data section). The
//! password reaches `pg_dump` and `pg_restore` only through `PGPASSWORD`,
//! never argv; the dump runs in its own process group, killed as a whole on
//! cancellation; a partial file dies with the staging folder.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

use super::process::{self, DumpRun, Fed, ToolLogin};
use super::{Engine, EngineContext, EngineKind, EngineOutput, RestoreJob, Staged, Streaming};
use crate::base::progress;
use crate::compress::{ArtifactWriter, WrittenFile};
use crate::config::{Config, PostgresConfig};
use crate::crypt::Identities;

/// Options of every dump: custom format, uncompressed (the artifact writer
/// compresses), verbose (the import signal), never prompting.
pub const DUMP_OPTIONS: &[&str] = &[
    "--format=custom",
    "--compress=0",
    "--verbose",
    "--no-password",
];

/// What `pg_dump --verbose` prints once its transaction runs on the
/// imported snapshot (the first line after `SET TRANSACTION SNAPSHOT`).
pub const IMPORTED_MARKER: &str = "last built-in OID is";

/// How long the snapshot connection may take to export.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(30);

/// Dumps one database.
#[derive(Debug, Clone)]
pub struct PostgresEngine {
    cfg: PostgresConfig,
}

/// How the PostgreSQL tools log in: `--username`, the password in
/// `PGPASSWORD`.
const LOGIN: ToolLogin = ToolLogin {
    user_flag: "--username",
    password_env: "PGPASSWORD",
};

/// Builds a command for a PostgreSQL tool with connection options and the
/// password in the environment.
pub fn tool_command(cfg: &PostgresConfig, program: &str) -> Command {
    process::tool_command(cfg, LOGIN, program)
}

/// The PostgreSQL engine, as registered.
#[derive(Debug, Clone, Copy)]
pub struct Postgres;

impl EngineKind for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn configured(&self, cfg: &Config) -> Option<Box<dyn Engine>> {
        cfg.postgres
            .enabled
            .then(|| Box::new(PostgresEngine::new(cfg.postgres.clone())) as Box<dyn Engine>)
    }

    fn content_check(&self) -> &'static str {
        "pg_restore read-through"
    }

    fn online_refusals(&self, _cfg: &Config) -> anyhow::Result<Vec<String>> {
        // pg_dump reads one exported snapshot: consistent whatever the
        // tables, with or without a coordinator.
        Ok(Vec::new())
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
            &job.cfg.postgres,
            job.keys(),
        )
    }
}

fn connect_options(cfg: &PostgresConfig, database: &str, purpose: &str) -> PgConnectOptions {
    let mut o = PgConnectOptions::new()
        .host(&cfg.host)
        .port(cfg.port)
        .username(&cfg.user)
        .database(database)
        .application_name(&format!("maintenance-sidecar {purpose}"))
        .disable_statement_logging();
    if let Some(p) = &cfg.password {
        o = o.password(p.expose());
    }
    o
}

/// Runs `fut` on a runtime of its own, on a thread of its own (callers may
/// already be inside the sidecar's runtime).
fn block_on<T: Send>(fut: impl std::future::Future<Output = T> + Send) -> anyhow::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            Ok(rt.block_on(fut))
        })
        .join()
        .map_err(|_| anyhow::anyhow!("postgres client thread panicked"))?
    })
}

/// The exporting transaction, held open on its own thread until
/// [`Exporter::release`] (or drop) lets it end.
struct Exporter {
    release: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Exporter {
    /// Connects, exports a snapshot, and returns its id.
    fn start(cfg: &PostgresConfig, database: &str) -> anyhow::Result<(String, Exporter)> {
        let options = connect_options(cfg, database, "snapshot");
        let where_ = format!("{}@{}:{}/{database}", cfg.user, cfg.host, cfg.port);
        let (id_tx, id_rx) = std::sync::mpsc::channel::<anyhow::Result<String>>();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let target = where_.clone();
        std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = id_tx.send(Err(e.into()));
                    return;
                }
            };
            rt.block_on(async move {
                let mut conn = match PgConnection::connect_with(&options).await {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = id_tx.send(Err(anyhow::anyhow!(
                            "cannot connect to PostgreSQL as {target}: {e}"
                        )));
                        return;
                    }
                };
                let exported = async {
                    sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                        .execute(&mut conn)
                        .await?;
                    sqlx::query_scalar::<_, String>("SELECT pg_export_snapshot()")
                        .fetch_one(&mut conn)
                        .await
                }
                .await;
                let ok = exported.is_ok();
                let _ = id_tx.send(
                    exported.map_err(|e| anyhow::anyhow!("exporting a snapshot failed: {e}")),
                );
                if ok {
                    // Sent by the import signal, or dropped when the dump ends.
                    let _ = released.await;
                    let _ = sqlx::raw_sql("COMMIT").execute(&mut conn).await;
                }
                let _ = conn.close().await;
            });
        });
        let id = id_rx.recv_timeout(EXPORT_TIMEOUT).map_err(|_| {
            anyhow::anyhow!("no snapshot exported within {EXPORT_TIMEOUT:?} ({where_})")
        })??;
        Ok((
            id,
            Exporter {
                release: Some(release),
            },
        ))
    }

    /// Ends the exporting transaction (the dump has imported the snapshot).
    fn release(&mut self) {
        if let Some(tx) = self.release.take() {
            let _ = tx.send(());
        }
    }
}

impl PostgresEngine {
    /// An engine for `cfg.database`.
    pub fn new(cfg: PostgresConfig) -> Self {
        PostgresEngine { cfg }
    }

    fn program(&self) -> anyhow::Result<String> {
        process::dump_program(
            &self.cfg,
            &["pg_dump"],
            "pg_dump is not on PATH (install postgresql-client or set postgres.dump_command)",
        )
    }

    fn database(&self) -> anyhow::Result<&str> {
        process::database(&self.cfg, "postgres.database is not set")
    }

    fn spawn(&self, snapshot: &str) -> anyhow::Result<Child> {
        let program = self.program()?;
        let mut cmd = tool_command(&self.cfg, &program);
        cmd.args(DUMP_OPTIONS)
            .arg(format!("--snapshot={snapshot}"))
            .arg(format!("--dbname={}", self.database()?));
        process::spawn_dump(cmd, &program)
    }
}

/// Reads the dump's stderr in a thread (so a chatty dump never blocks on a
/// full pipe): ends the exporting transaction at the import line, keeps
/// warnings and errors, and returns them when the dump closes stderr.
fn watch_stderr(
    stderr: impl Read + Send + 'static,
    mut exporter: Exporter,
) -> JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(IMPORTED_MARKER) {
                tracing::info!("pg_dump imported the snapshot; ending the exporting transaction");
                exporter.release();
            }
            if is_problem(&line) {
                tracing::warn!("postgres dump stderr: {line}");
                if kept.len() < 100 {
                    kept.push(line);
                }
            } else {
                tracing::debug!("postgres dump: {line}");
            }
        }
        exporter.release();
        kept
    })
}

fn is_problem(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    l.contains("error") || l.contains("fatal") || l.contains("warning") || l.contains("could not")
}

fn has_error(lines: &[String]) -> bool {
    lines.iter().any(|l| {
        let l = l.to_ascii_lowercase();
        l.contains("error") || l.contains("fatal")
    })
}

impl Engine for PostgresEngine {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn preflight(&self) -> anyhow::Result<()> {
        self.database()?;
        self.program().map(drop)
    }

    fn snapshot(&self, ctx: &EngineContext) -> anyhow::Result<Staged> {
        let db = self.database()?.to_owned();
        let writer = ctx.artifact(&format!("postgres-{db}.dump"))?;
        let (snapshot, exporter) = Exporter::start(&self.cfg, &db)?;
        let child = self.spawn(&snapshot)?;
        let copy_options = ctx.copy_options("postgres dump", None);
        let stream =
            std::thread::spawn(move || stream_dump(child, writer, exporter, &db, &copy_options));
        tracing::info!("postgres snapshot {snapshot} exported: the tracker may resume");
        Ok(Staged {
            streaming: Some(Streaming(stream)),
            ..Staged::default()
        })
    }

    fn finish(&self, _ctx: &EngineContext, staged: Staged) -> anyhow::Result<EngineOutput> {
        staged.join_stream("postgres")
    }

    fn tool_version(&self) -> Option<String> {
        process::dump_tool_version(&self.program().ok()?, &["pg_dump"])
    }
}

fn stream_dump(
    mut child: Child,
    mut writer: ArtifactWriter,
    exporter: Exporter,
    db: &str,
    copy_options: &progress::CopyOptions,
) -> anyhow::Result<WrittenFile> {
    let stderr = watch_stderr(child.stderr.take().context("dump stderr")?, exporter);
    let run = DumpRun {
        label: "postgres dump",
        db,
        copy_options,
        failed_on: has_error,
    };
    run.stream(&mut child, &mut writer, stderr)?;
    writer.finish().context("finish postgres artifact")
}

/// Feeds the decoded artifact to `program args` on stdin; returns its
/// stdout. A reader that stops early (`--list` reads only the TOC) is fine
/// when it exits 0.
fn feed(
    artifact: &Path,
    mut cmd: Command,
    what: &str,
    keys: Option<&Identities>,
) -> anyhow::Result<String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {what} (is pg_restore on PATH?)"))?;
    let Fed {
        copied,
        status,
        stderr,
        stdout,
    } = process::feed(&mut child, artifact, keys, what)?;
    if !status.success() {
        bail!("{what} failed ({status}): {}", stderr.join(" | "));
    }
    match copied {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).with_context(|| format!("stream {} into {what}", artifact.display()))
        }
        _ => Ok(stdout),
    }
}

/// Checks an archive: `pg_restore --list` reads its table of contents, and
/// `pg_restore --file=/dev/null` reads every data block to the end.
pub fn check_artifact(path: &Path, keys: Option<&Identities>) -> anyhow::Result<String> {
    let mut list = Command::new("pg_restore");
    list.arg("--list");
    let toc = feed(path, list, "pg_restore --list", keys)?;
    let entries = toc
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
        .count();
    ensure!(
        entries > 0,
        "{}: pg_restore --list shows no entries",
        path.display()
    );
    let mut read = Command::new("pg_restore");
    read.arg("--file=/dev/null");
    feed(path, read, "pg_restore (full read)", keys)?;
    Ok(format!(
        "pg_restore --list: {entries} entries; every data block read"
    ))
}

/// True for names `CREATE DATABASE "..."` may take without surprises.
fn valid_db_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Restores the archive into `database` with `pg_restore`, creating the
/// database if needed; a database that already has tables needs `force`
/// (then existing objects are dropped first: `--clean --if-exists`).
/// Another restore into the same database is refused (see `db_lock.rs`).
pub fn restore(
    artifact: &Path,
    database: Option<&str>,
    force: bool,
    cfg: &PostgresConfig,
    keys: Option<&Identities>,
) -> anyhow::Result<String> {
    let db = database
        .or(cfg.database.as_deref())
        .context("a PostgreSQL restore needs --database NAME (or POSTGRES_DATABASE)")?
        .to_owned();
    ensure!(
        valid_db_name(&db),
        "database name {db:?} is not allowed (letters, digits, _ - only, at most 63)"
    );
    // Held until pg_restore has ended: the table count runs under it.
    let server = format!("{}:{}", cfg.host, cfg.port);
    let admin = connect_options(cfg, "postgres", "restore lock");
    let _lock = super::db_lock::postgres(admin, &db, &server)?;
    let admin = connect_options(cfg, "postgres", "restore");
    let target = connect_options(cfg, &db, "restore");
    let db2 = db.clone();
    let tables: i64 = block_on(async move {
        let mut conn = PgConnection::connect_with(&admin).await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&db2)
                .fetch_one(&mut conn)
                .await?;
        if !exists {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{db2}\"")))
                .execute(&mut conn)
                .await?;
        }
        conn.close().await?;
        let mut conn = PgConnection::connect_with(&target).await?;
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
        )
        .fetch_one(&mut conn)
        .await?;
        conn.close().await?;
        Ok::<_, sqlx::Error>(n)
    })?
    .with_context(|| format!("prepare database {db} on {}:{}", cfg.host, cfg.port))?;
    if tables > 0 && !force {
        bail!(
            "database {db} already has {tables} tables; refusing to overwrite it without --force"
        );
    }
    let program = cfg
        .client_command
        .clone()
        .unwrap_or_else(|| "pg_restore".to_owned());
    let mut cmd = tool_command(cfg, &program);
    cmd.args([
        "--no-password",
        "--no-owner",
        "--exit-on-error",
        "--single-transaction",
    ])
    .arg(format!("--dbname={db}"));
    if force {
        cmd.args(["--clean", "--if-exists"]);
    }
    feed(artifact, cmd, "pg_restore", keys)?;
    Ok(format!(
        "restored PostgreSQL archive into database {db} ({} bytes compressed)",
        std::fs::metadata(artifact).map(|m| m.len()).unwrap_or(0)
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn db_names() {
        assert!(super::valid_db_name("tracker_restore-1"));
        assert!(!super::valid_db_name("x\"; DROP"));
        assert!(!super::valid_db_name(""));
    }

    #[test]
    fn errors_on_stderr_fail_the_dump_notices_do_not() {
        let lines = vec!["pg_dump: warning: there are circular foreign-key constraints".to_owned()];
        assert!(!super::has_error(&lines));
        let lines = vec!["pg_dump: error: query failed: ERROR:  canceling statement".to_owned()];
        assert!(super::has_error(&lines));
        assert!(super::is_problem(&lines[0]));
        assert!(!super::is_problem("pg_dump: reading schemas"));
    }
}
