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

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;

use anyhow::{bail, Context};

use super::process::{find_program, pump, Pumped};
use super::{Engine, EngineContext, EngineOutput, Staged, Streaming};
use crate::base::progress;
use crate::compress::{open_decoded, ArtifactWriter};
use crate::config::MysqlConfig;
use crate::crypt::Identities;

/// Options that make the dump consistent and complete without locking.
pub const DUMP_OPTIONS: &[&str] = &[
    "--single-transaction",
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

/// Builds a command for a MySQL tool with connection options and the
/// password in the environment.
pub fn tool_command(cfg: &MysqlConfig, program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.arg(format!("--host={}", cfg.host))
        .arg(format!("--port={}", cfg.port))
        .arg(format!("--user={}", cfg.user));
    match &cfg.password {
        Some(p) => cmd.env("MYSQL_PWD", p.expose()),
        None => cmd.env_remove("MYSQL_PWD"),
    };
    cmd
}

impl MysqlEngine {
    /// An engine for `cfg.database`.
    pub fn new(cfg: MysqlConfig) -> Self {
        MysqlEngine { cfg }
    }

    fn program(&self) -> anyhow::Result<String> {
        if let Some(p) = &self.cfg.dump_command {
            return Ok(p.clone());
        }
        find_program(&["mariadb-dump", "mysqldump"])
            .context("neither mariadb-dump nor mysqldump is on PATH (set mysql.dump_command)")
    }

    fn database(&self) -> anyhow::Result<&str> {
        self.cfg
            .database
            .as_deref()
            .context("mysql.database is not set")
    }

    fn spawn(&self) -> anyhow::Result<Child> {
        let program = self.program()?;
        let mut cmd = tool_command(&self.cfg, &program);
        cmd.args(DUMP_OPTIONS)
            .arg(self.database()?)
            // Own process group, so cancelling kills wrapper scripts and
            // their children together.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn()
            .with_context(|| format!("cannot start dump program {program:?}"))
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

    fn snapshot(&self, ctx: &EngineContext) -> anyhow::Result<Staged> {
        let db = self.database()?.to_owned();
        let writer = ctx.artifact(&format!("mysql-{db}.sql"))?;
        let child = self.spawn()?;
        let (consistent_tx, consistent_rx) = std::sync::mpsc::channel();
        let copy_options = ctx.copy_options("mysql dump", None);
        let cancel = ctx.cancel.clone();
        let stream = std::thread::spawn(move || {
            stream_dump(child, writer, &db, &copy_options, cancel, consistent_tx)
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
        super::dump_tool_version(&self.program().ok()?, &["mariadb-dump", "mysqldump"])
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

/// Streams the dump's stdout through compression into its artifact, then
/// decides success from the exit status, stderr and the trailer check.
fn stream_dump(
    mut child: Child,
    writer: ArtifactWriter,
    db: &str,
    copy_options: &progress::CopyOptions,
    cancel: crate::base::cancel::CancelToken,
    consistent: std::sync::mpsc::Sender<()>,
) -> anyhow::Result<crate::compress::WrittenFile> {
    let stderr = drain_stderr(child.stderr.take().context("dump stderr")?);
    let mut watched = MarkerWatch {
        inner: writer,
        tail: Vec::new(),
        consistent: Some(consistent),
    };
    let Pumped {
        copied,
        status,
        stderr: errors,
    } = pump(
        "mysql dump",
        &mut child,
        &mut watched,
        stderr,
        copy_options,
        cancel,
    )?;
    copied.context("stream mysql dump into staging")?;
    if !status.success() {
        bail!(
            "mysql dump of {db} failed ({status}): {}",
            errors.join(" | ")
        );
    }
    if stderr_has_error(&errors) {
        bail!("mysql dump of {db} reported errors: {}", errors.join(" | "));
    }
    watched.inner.finish().context("finish mysql artifact")
}

/// Decodes a dump artifact fully and checks it ends with the dump trailer.
pub fn check_artifact(path: &Path, keys: Option<&Identities>) -> anyhow::Result<String> {
    let reader = BufReader::new(open_decoded(path, keys)?);
    let mut last = String::new();
    let mut bytes = 0u64;
    for line in reader.lines() {
        let line = line.with_context(|| format!("decode {}", path.display()))?;
        bytes += line.len() as u64 + 1;
        if !line.trim().is_empty() {
            last = line;
        }
    }
    if !last.starts_with(TRAILER) {
        bail!(
            "{}: the dump is truncated (last line is not {TRAILER:?})",
            path.display()
        );
    }
    Ok(format!("decoded {bytes} bytes, dump trailer present"))
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
