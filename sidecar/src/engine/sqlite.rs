//! SQLite engine: the database file into a zstd or gzip artifact, by one
//! of two paths.
//!
//! **Pinned (protocol 2).** The tracker's quiesce ends with a pin: a read
//! transaction taken right after `wal_checkpoint(TRUNCATE)`, which freezes
//! the main file (WAL mode: new commits stay in the `-wal`; rollback-journal
//! mode: writers wait). The snapshot phase does nothing; the tracker is
//! released at once, and [`Engine::finish`] runs three passes side by side
//! (`pinned_passes.rs`): the frozen main file streams straight into
//! compression while it is hashed (no raw copy in staging); the frozen
//! source passes the full `integrity_check` (opened with `immutable=1`,
//! which reads the main file alone and ignores the `-wal` that collects the
//! commits made since the pin); and the artifact is decoded in memory as it
//! is written. The caller's `unpin` must then confirm that the pin was held
//! for the whole read and check, or the backup is abandoned. The verify
//! phase compares the digest of the decoded bytes with the digest of the
//! bytes read: what is published is exactly the frozen file that passed,
//! without a second full-size copy on disk. So the manifest records
//! [`CONTENT_CHECK`] and a restore need not repeat it (at 16 GiB the check
//! takes about two minutes: it is paid at night, not on the day of a
//! restore).
//!
//! **Unpinned** (a version-1 coordinator, or `once`). The snapshot is a
//! plain copy of the checkpointed file into staging while a read
//! transaction is held (no writer can commit into the main file in rollback
//! mode, and the coordinator guarantees the tracker is quiet), compressed
//! after the release; the verify phase decompresses it to a temporary file
//! and runs `PRAGMA integrity_check` ([`check_artifact`]). When a non-empty
//! `-wal` or `-journal` file shows the database was *not* checkpointed, the
//! online backup API is used instead, in one step, which reads through
//! SQLite and is consistent by construction.
//!
//! **Online** (no coordinator: `once --online`, `BACKUP_WINDOW`). Only a
//! WAL file the sidecar can write qualifies: the online mode pins it
//! itself (`crate::online::sqlite_pin`) and then reads it as under a
//! coordinator's pin. A rollback-journal file is refused with the
//! conversion that fixes it ([`rollback_refusal`]).

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use maintenance_proto::Artifact;
use rusqlite::{Connection, OpenFlags};

pub use super::pinned_passes::TEST_READ_DELAY_ENV;
pub use super::sqlite_check::{integrity_check, open_immutable, quick_check};
use super::{
    CheckMode, DrillJob, Drilled, Engine, EngineContext, EngineKind, EngineOutput, RestoreJob,
    Staged,
};
use crate::base::progress;
use crate::base::replace::Replacement;
use crate::compress::{open_decoded, WrittenFile};
use crate::config::Config;
use crate::crypt::Identities;
use crate::manifest::Manifest;
use crate::readback::Readback;

/// The SQLite engine, as registered.
#[derive(Debug, Clone, Copy)]
pub struct Sqlite;

impl EngineKind for Sqlite {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn configured(&self, cfg: &Config) -> Option<Box<dyn Engine>> {
        let path = cfg.sqlite.path.as_ref().filter(|_| cfg.sqlite.enabled)?;
        Some(Box::new(SqliteEngine::new(path.clone())))
    }

    fn content_check(&self) -> &'static str {
        CONTENT_CHECK
    }

    fn check_artifact(&self, path: &Path, keys: Option<&Identities>) -> anyhow::Result<String> {
        check_artifact(path, keys)
    }

    fn restore(&self, job: &RestoreJob<'_>) -> anyhow::Result<String> {
        restore(job.manifest, job.artifact, job.path, job.opts)
    }

    fn online_refusals(&self, cfg: &Config) -> anyhow::Result<Vec<String>> {
        match cfg.sqlite.path.as_deref().filter(|_| cfg.sqlite.enabled) {
            Some(db) => online_refusals(db),
            None => Ok(Vec::new()),
        }
    }

    fn leftovers(&self, cfg: &Config) -> Vec<PathBuf> {
        // The configured database is the one target known without --to.
        cfg.sqlite
            .path
            .as_deref()
            .map(restore_leftovers)
            .unwrap_or_default()
    }

    fn drill(&self, job: &DrillJob<'_>) -> anyhow::Result<Drilled> {
        let a = job.artifact;
        let target = job.work.join(sqlite_file_name(&a.path));
        let r = sqlite_into(job.path, a, &target, SqliteCheck::Full, job.keys)?;
        Ok(Drilled {
            line: format!(
                "{}: restored {} bytes, sha256 ok, integrity_check ok",
                a.path, r.bytes
            ),
            decompress_secs: r.decompress_secs,
            check_secs: r.check_secs,
            bytes: r.bytes,
        })
    }
}

/// Why the SQLite file `db` cannot be copied online: rollback-journal
/// mode (a reader held for the whole copy would block the tracker's
/// writes), or a file or folder this process cannot write (the self-pin
/// checkpoints, and every reader of a WAL database writes its `-shm`).
fn online_refusals(db: &Path) -> anyhow::Result<Vec<String>> {
    anyhow::ensure!(
        db.is_file(),
        "sqlite database {} does not exist",
        db.display()
    );
    let mode = journal_mode(db)?;
    if mode != "wal" {
        return Ok(vec![rollback_refusal(db, &mode)]);
    }
    Ok(not_writable(db)
        .map(|path| {
            format!(
                "{} is not writable by this process (uid {}): the online pin checkpoints the database and, like every reader of a WAL database, writes its -shm. Mount the database folder read-write into the backup container (compose: backup-once and backup-online do)",
                path.display(),
                // SAFETY: geteuid has no preconditions and cannot fail.
                unsafe { libc::geteuid() }
            )
        })
        .into_iter()
        .collect())
}

/// The refusal of a SQLite file in rollback-journal mode, with the fix
/// (also the online self-pin's, `crate::online::sqlite_pin`).
pub fn rollback_refusal(db: &Path, mode: &str) -> String {
    format!(
        "{} is in rollback-journal mode (journal_mode={mode}), which cannot be copied online: a reader held for the whole copy would block the tracker's writes (each one waits out its busy timeout). Convert it once to WAL, with the tracker stopped: `maintenance-sidecar sqlite-wal {}` (or compose/maintenance-backup.sh --convert-to-wal); from then on backups are online",
        db.display(),
        db.display()
    )
}

/// The journal mode recorded in the file (`wal`, `delete`, ...), read
/// without changing anything.
pub fn journal_mode(db: &Path) -> anyhow::Result<String> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("open {}", db.display()))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .with_context(|| format!("read the journal mode of {}", db.display()))?;
    Ok(mode.to_ascii_lowercase())
}

/// The database file or its folder, whichever this process cannot write.
fn not_writable(db: &Path) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let dir = db
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    [db, dir].into_iter().find_map(|p| {
        let c = std::ffi::CString::new(p.as_os_str().as_bytes()).ok()?;
        // SAFETY: `c` is a valid NUL-terminated path for the call's duration.
        let ok = unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0;
        (!ok).then(|| p.to_owned())
    })
}

/// Backs up one SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteEngine {
    path: PathBuf,
}

impl SqliteEngine {
    /// An engine for the database at `path`.
    pub fn new(path: PathBuf) -> Self {
        SqliteEngine { path }
    }

    fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "database.sqlite".into())
    }

    fn needs_backup_api(&self) -> bool {
        ["-wal", "-journal"].iter().any(|suffix| {
            let mut side = self.path.clone().into_os_string();
            side.push(suffix);
            std::fs::metadata(PathBuf::from(side))
                .map(|m| m.len() > 0)
                .unwrap_or(false)
        })
    }

    /// Opens a read transaction that keeps rollback-mode writers out during
    /// the copy. Best effort: on a read-only mount (the compose stack mounts
    /// the data folder `:ro`) SQLite cannot open a WAL database for reading,
    /// and the coordinator's quiescence is the guarantee. That happens every
    /// night by design there, so it is logged at info, not as a warning: a
    /// warning nobody should act on teaches operators to ignore warnings.
    fn read_guard(&self) -> Option<Connection> {
        let guard = Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| {
                c.execute_batch("BEGIN; SELECT count(*) FROM sqlite_master;")?;
                Ok(c)
            });
        match guard {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::info!(
                    "sqlite: no read lock on {} ({e}), as expected on a read-only mount; the tracker is quiesced, so the copy is consistent without it",
                    self.path.display()
                );
                None
            }
        }
    }

    fn copy_file(&self, ctx: &EngineContext, raw: &Path) -> anyhow::Result<()> {
        let guard = self.read_guard();
        let src =
            File::open(&self.path).with_context(|| format!("open {}", self.path.display()))?;
        let total = src.metadata()?.len();
        // The copy is only the input of compression: it needs no fsync (the
        // published artifact is synced before the rename), and syncing here
        // would count as tracker downtime. The kernel copies the bytes.
        let out = File::options().write(true).create_new(true).open(raw)?;
        progress::copy_file(
            &src,
            &out,
            &ctx.copy_options("sqlite snapshot", Some(total)),
        )
        .with_context(|| format!("copy {} into staging", self.path.display()))?;
        if let Some(g) = guard {
            g.execute_batch("COMMIT;")?;
        }
        Ok(())
    }

    /// The artifact's name without its extensions.
    fn stem(&self) -> String {
        format!("sqlite-{}", self.file_name())
    }

    /// Streams the staged copy `src` into the artifact.
    fn stream(&self, ctx: &EngineContext, src: &Path) -> anyhow::Result<WrittenFile> {
        let file = File::open(src).with_context(|| format!("open {}", src.display()))?;
        let total = file.metadata()?.len();
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut writer = ctx.artifact(&self.stem())?;
        let read = progress::copy(
            &mut reader,
            &mut writer,
            &ctx.copy_options("sqlite compress", Some(total)),
        )
        .with_context(|| format!("stream {} into its artifact", src.display()))?;
        anyhow::ensure!(
            read == total,
            "{}: read {read} bytes but the file has {total}; it changed while being read",
            src.display()
        );
        writer.finish().context("finish sqlite artifact")
    }

    fn backup_api(&self, raw: &Path) -> anyhow::Result<()> {
        tracing::warn!(
            "sqlite: {} has a non-empty -wal/-journal (not checkpointed); using the online backup API in one step",
            self.path.display()
        );
        let src = Connection::open(&self.path)
            .with_context(|| format!("open {}", self.path.display()))?;
        let mut dst = Connection::open(raw)?;
        {
            let backup = rusqlite::backup::Backup::new(&src, &mut dst)?;
            backup.step(-1).context("sqlite online backup")?;
        }
        dst.execute_batch("PRAGMA journal_mode=DELETE;")?;
        drop(dst);
        Ok(())
    }
}

impl Engine for SqliteEngine {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn preflight(&self) -> anyhow::Result<()> {
        if !self.path.is_file() {
            bail!("sqlite database {} does not exist", self.path.display());
        }
        Ok(())
    }

    fn snapshot(&self, ctx: &EngineContext) -> anyhow::Result<Staged> {
        if ctx.pinned {
            // The WAL was truncated before the pin: the main file alone is
            // the snapshot, and it stays frozen after the release.
            return Ok(Staged {
                read_after_release: true,
                ..Staged::default()
            });
        }
        let raw = ctx.staged(&format!(".snapshot-{}", self.file_name()));
        if self.needs_backup_api() {
            self.backup_api(&raw)?;
        } else {
            self.copy_file(ctx, &raw)?;
        }
        Ok(Staged {
            raw: Some(raw),
            ..Staged::default()
        })
    }

    fn finish(&self, ctx: &EngineContext, staged: Staged) -> anyhow::Result<EngineOutput> {
        let written = if staged.read_after_release {
            super::pinned_passes::back_up(ctx, &self.path, &self.stem())?
        } else {
            let raw = staged.raw.context("sqlite snapshot missing")?;
            // The staged copy is checked by the verify phase's full
            // integrity_check on the artifact.
            let written = self.stream(ctx, &raw)?;
            std::fs::remove_file(&raw)?;
            written
        };
        Ok(EngineOutput {
            engine: "sqlite",
            artifacts: vec![written],
            missing: Vec::new(),
        })
    }

    fn tool_version(&self) -> Option<String> {
        Some(format!("sqlite {}", rusqlite::version()))
    }
}

/// Name of the content check [`check_artifact`] runs. A manifest records it
/// for every artifact that passed; a restore trusts the bytes without
/// re-running it only when the manifest names exactly this check (and the
/// SHA-256 matches). Change it if `check_artifact` ever proves less.
pub const CONTENT_CHECK: &str = "integrity_check";

/// The cheap structural check of a restore whose bytes are proven identical
/// to a checked database: the SQLite header is valid, the page count it
/// records matches the file length, and the schema parses. Reads a few
/// pages, whatever the size of the database.
pub fn header_check(path: &Path) -> anyhow::Result<()> {
    use std::io::Read;
    let mut header = [0u8; 100];
    let mut file = File::open(path).with_context(|| format!("open {}", path.display()))?;
    let len = file.metadata()?.len();
    file.read_exact(&mut header)
        .with_context(|| format!("{}: shorter than a SQLite header", path.display()))?;
    if &header[..16] != b"SQLite format 3\0" {
        bail!("{}: not a SQLite database (bad header)", path.display());
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65536,
        n if n >= 512 && n.is_power_of_two() => u64::from(n),
        n => bail!("{}: invalid page size {n} in the header", path.display()),
    };
    let pages = u64::from(u32::from_be_bytes(header[28..32].try_into()?));
    let counter = &header[24..28];
    let valid_for = &header[92..96];
    if counter == valid_for && pages * page_size != len {
        bail!(
            "{}: the header records {pages} pages of {page_size} bytes but the file has {len} bytes",
            path.display()
        );
    }
    if len % page_size != 0 {
        bail!(
            "{}: {len} bytes is not a whole number of {page_size}-byte pages",
            path.display()
        );
    }
    let conn = open_immutable(path)?;
    let _: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .with_context(|| format!("{}: read the schema", path.display()))?;
    Ok(())
}

/// Decompresses `src` to `dst` (streaming).
pub fn decompress_to(src: &Path, dst: &Path, keys: Option<&Identities>) -> anyhow::Result<u64> {
    let mut reader = open_decoded(src, keys)?;
    let mut out = BufWriter::new(File::create(dst)?);
    let label = format!(
        "decompress {}",
        src.file_name().unwrap_or_default().to_string_lossy()
    );
    let n = progress::copy(
        &mut reader,
        &mut out,
        &progress::operator_copy(&label, None),
    )?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(n)
}

/// `verify` check: decompresses to a hidden temporary file in the backup
/// root (same disk, never inside the published folder) and runs
/// `PRAGMA integrity_check` on it.
pub fn check_artifact(path: &Path, keys: Option<&Identities>) -> anyhow::Result<String> {
    let dir = path
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(&crate::base::temp::verify_prefix())
        .tempfile_in(dir)
        .or_else(|_| tempfile::NamedTempFile::new())?;
    let checked = decompress_to(path, tmp.path(), keys).and_then(|n| {
        integrity_check(tmp.path())?;
        Ok(n)
    });
    // Reading a WAL-mode copy creates its -wal/-shm; the copy itself goes
    // with `tmp`.
    remove_companions(tmp.path());
    Ok(format!(
        "decompressed {} bytes, integrity_check ok",
        checked?
    ))
}

/// Removes the `-wal`, `-shm` and `-journal` files SQLite may leave beside
/// the database `db` (after its last connection closed).
pub fn remove_companions(db: &Path) {
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        if let Err(e) = std::fs::remove_file(&p) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("cannot remove {}: {e}", Path::new(&p).display());
            }
        }
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
            CheckMode::Auto if manifest.passed(&artifact.path, CONTENT_CHECK) => {
                SqliteCheck::Header
            }
            CheckMode::Auto => {
                tracing::warn!(
                    "{}: the manifest records no passed {}; running the full check",
                    artifact.path,
                    CONTENT_CHECK
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

/// The temporary files a killed restore of the database `target` left
/// beside it (`.restore-<host>-<pid>-<random>-<file name>`, with any SQLite
/// companions).
fn restore_leftovers(target: &Path) -> Vec<PathBuf> {
    crate::base::replace::leftovers(target, crate::base::temp::RESTORE_PREFIX)
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
    crate::base::temp::remove(&restore_leftovers(target));
    let mut tmp = Replacement::create(target, crate::base::temp::RESTORE_PREFIX)?;
    let mut decoded = Readback::open(path, artifact, keys)?;
    let label = format!("restore {}", artifact.path);
    let bytes = {
        let mut out = BufWriter::with_capacity(1 << 20, tmp.file());
        let n = progress::copy(
            &mut decoded,
            &mut out,
            &progress::operator_copy(&label, None),
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

/// Restores the SQLite artifact to `--to` (a file, or a folder to put it
/// in under its own name).
fn restore(
    manifest: &Manifest,
    artifact: &Artifact,
    path: &Path,
    opts: &super::RestoreOptions,
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
    let _lock = crate::base::restore_lock::RestoreLock::acquire(&target)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_wal_file_qualifies_for_an_online_backup() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch("CREATE TABLE t(x);").unwrap();
        let refusals = online_refusals(&db).unwrap();
        assert_eq!(refusals.len(), 1, "{refusals:?}");
        assert!(
            refusals[0].contains("journal_mode=delete")
                && refusals[0].contains("maintenance-sidecar sqlite-wal"),
            "{refusals:?}"
        );
        conn.execute_batch("PRAGMA journal_mode=WAL;").unwrap();
        assert_eq!(journal_mode(&db).unwrap(), "wal");
        assert_eq!(online_refusals(&db).unwrap(), Vec::<String>::new());
        let e = online_refusals(&dir.path().join("missing.db"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
    }
}
