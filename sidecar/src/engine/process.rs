//! Child processes of the dump engines and of restores: finding a program
//! on `PATH`, pumping a dump child's stdout into an artifact (killing its
//! process group on cancellation), and streaming a decoded artifact into a
//! child's stdin (`pg_restore`, the `mysql` client).
//!
//! The MySQL and PostgreSQL engines and the restore command all run their
//! tools the same way; this keeps the pipe, reaping and kill logic in one
//! place while each caller words its own errors. Also what the dump engines
//! share around their tools: the version for the manifest, and the whole
//! artifact hashed before an import that cannot be undone.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{ensure, Context};
use maintenance_proto::Artifact;

use crate::base::hashing::sha256_file;
use crate::base::progress;
use crate::base::read_ahead::ReadAhead;
use crate::compress::open_decoded;
use crate::config::DbServerConfig;
use crate::crypt::Identities;

/// How a database server's tools take the connection: the user flag
/// (`--user`, `--username`) and the environment variable that carries the
/// password (never argv, which is world-readable in `/proc`).
#[derive(Debug, Clone, Copy)]
pub struct ToolLogin {
    /// The flag naming the user.
    pub user_flag: &'static str,
    /// The password's environment variable.
    pub password_env: &'static str,
}

/// A command for `program` connecting to the server of `cfg` as `login`
/// says: host, port, user, and the password in the environment.
pub fn tool_command(cfg: &DbServerConfig, login: ToolLogin, program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.arg(format!("--host={}", cfg.host))
        .arg(format!("--port={}", cfg.port))
        .arg(format!("{}={}", login.user_flag, cfg.user));
    match &cfg.password {
        Some(p) => cmd.env(login.password_env, p.expose()),
        None => cmd.env_remove(login.password_env),
    };
    cmd
}

/// The dump program of `cfg`: its `dump_command`, else the first of
/// `candidates` on `PATH`; `missing` is the error naming the fix.
pub fn dump_program(
    cfg: &DbServerConfig,
    candidates: &[&str],
    missing: &'static str,
) -> anyhow::Result<String> {
    match &cfg.dump_command {
        Some(p) => Ok(p.clone()),
        None => find_program(candidates).context(missing),
    }
}

/// The database `cfg` names; `missing` is the error naming the key.
pub fn database<'a>(cfg: &'a DbServerConfig, missing: &'static str) -> anyhow::Result<&'a str> {
    cfg.database.as_deref().context(missing)
}

/// Starts the dump `cmd` of `program` in its own process group (so
/// cancelling kills wrapper scripts and their children together), stdout
/// and stderr piped.
pub fn spawn_dump(mut cmd: Command, program: &str) -> anyhow::Result<Child> {
    cmd.process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn()
        .with_context(|| format!("cannot start dump program {program:?}"))
}

/// One dump child streaming into an artifact.
pub struct DumpRun<'a> {
    /// What the logs and errors call it (`mysql dump`).
    pub label: &'static str,
    /// The database dumped.
    pub db: &'a str,
    /// Progress lines and the cancel token.
    pub copy_options: &'a progress::CopyOptions,
    /// Whether kept stderr lines mean the dump failed.
    pub failed_on: fn(&[String]) -> bool,
}

impl DumpRun<'_> {
    /// Pumps the dump's stdout into `sink` (see [`pump`]), then judges it:
    /// a failed copy, a non-zero exit status or stderr lines that
    /// `failed_on` calls errors fail it.
    pub fn stream(
        &self,
        child: &mut Child,
        sink: &mut dyn Write,
        stderr: JoinHandle<Vec<String>>,
    ) -> anyhow::Result<()> {
        let (label, db) = (self.label, self.db);
        let Pumped {
            copied,
            status,
            stderr: lines,
        } = pump(
            label,
            child,
            sink,
            stderr,
            self.copy_options,
            self.copy_options.cancel.clone(),
        )?;
        copied.with_context(|| format!("stream {label} into staging"))?;
        if !status.success() {
            anyhow::bail!("{label} of {db} failed ({status}): {}", lines.join(" | "));
        }
        if (self.failed_on)(&lines) {
            anyhow::bail!("{label} of {db} reported errors: {}", lines.join(" | "));
        }
        Ok(())
    }
}

/// Finds the first program of `candidates` on `PATH`.
pub fn find_program(candidates: &[&str]) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    candidates
        .iter()
        .find(|c| std::env::split_paths(&path).any(|d| d.join(c).is_file()))
        .map(|c| c.to_string())
}

/// Kills the process group of the dump `label` as soon as `cancel` is set;
/// stops watching when `done` is set.
fn kill_on_cancel(
    label: &'static str,
    pid: u32,
    cancel: crate::base::cancel::CancelToken,
    done: Arc<AtomicBool>,
) {
    std::thread::spawn(move || {
        while !done.load(Ordering::SeqCst) {
            if cancel.is_cancelled() {
                tracing::warn!("{label} cancelled: killing process group {pid}");
                // SAFETY: plain syscall; a negative pid addresses the group.
                unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
}

/// How a streamed dump child ended.
pub(super) struct Pumped<T> {
    /// Bytes copied from stdout into the sink, or why the copy stopped.
    pub copied: std::io::Result<u64>,
    /// The child's exit status.
    pub status: ExitStatus,
    /// What the stderr reader returned.
    pub stderr: T,
}

/// Copies the stdout of the dump `label` (a child in its own process
/// group) into `sink`, killing the whole group on cancellation or when the
/// copy fails; then reaps it and joins its stderr reader. The pipe is read
/// on a thread of its own ([`ReadAhead`]), so the dump never waits while
/// the caller compresses; with the artifact writer's own stage thread,
/// the dump, compression and encryption + hashing + writing run at once.
pub(super) fn pump<T: Default>(
    label: &'static str,
    child: &mut Child,
    sink: &mut dyn Write,
    stderr: JoinHandle<T>,
    copy_options: &progress::CopyOptions,
    cancel: crate::base::cancel::CancelToken,
) -> anyhow::Result<Pumped<T>> {
    let stdout = child.stdout.take().context("dump stdout")?;
    let done = Arc::new(AtomicBool::new(false));
    kill_on_cancel(label, child.id(), cancel, done.clone());
    let mut stdout = match ReadAhead::spawn_stream(stdout, label, "dump-read") {
        Ok(reader) => reader,
        Err(e) => {
            // SAFETY: plain syscall; a negative pid addresses the group.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            done.store(true, Ordering::SeqCst);
            return Err(e).context("start reading the dump");
        }
    };
    let copied = progress::copy(&mut stdout, sink, copy_options);
    if copied.is_err() {
        // SAFETY: plain syscall; a negative pid addresses the group.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    }
    drop(stdout);
    let status = child.wait().context("wait for dump")?;
    done.store(true, Ordering::SeqCst);
    Ok(Pumped {
        copied,
        status,
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// How a child fed by [`feed`] ended.
pub struct Fed {
    /// Decoded bytes written (and flushed) into the child's stdin, or why
    /// the writing stopped (`BrokenPipe` when the child stopped reading).
    pub copied: std::io::Result<u64>,
    /// The child's exit status.
    pub status: ExitStatus,
    /// Its first 50 stderr lines.
    pub stderr: Vec<String>,
    /// Its stdout when that was piped (empty otherwise).
    pub stdout: String,
}

/// Streams the decoded `artifact` into the stdin of `child` (spawned with
/// stdin and stderr piped, stdout piped to collect it or not), showing
/// progress as `label`; then reaps it. The caller judges the result: a
/// reader that may stop early accepts a `BrokenPipe` when it exits 0.
pub fn feed(
    child: &mut Child,
    artifact: &Path,
    keys: Option<&Identities>,
    label: &str,
) -> anyhow::Result<Fed> {
    let stdout = child.stdout.take().map(|mut out| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        })
    });
    let err = child.stderr.take().context("stderr")?;
    let err = std::thread::spawn(move || {
        BufReader::new(err)
            .lines()
            .map_while(Result::ok)
            .take(50)
            .collect::<Vec<_>>()
    });
    let mut stdin = child.stdin.take().context("stdin")?;
    let copied = progress::copy(
        &mut open_decoded(artifact, keys)?,
        &mut stdin,
        &progress::operator_copy(label, None),
    )
    .and_then(|n| stdin.flush().map(|()| n));
    drop(stdin);
    let status = child.wait()?;
    Ok(Fed {
        copied,
        status,
        stderr: err.join().unwrap_or_default(),
        stdout: stdout
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default(),
    })
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

/// Refuses a dump whose SHA-256 differs from the manifest: an import cannot
/// be undone, so the whole file is hashed before it starts.
pub fn ensure_intact(path: &Path, artifact: &Artifact) -> anyhow::Result<()> {
    let (_, sha) = sha256_file(path)?;
    ensure!(
        sha == artifact.sha256,
        "{}: sha256 differs from the manifest; refusing to restore a corrupted artifact",
        artifact.path
    );
    Ok(())
}
