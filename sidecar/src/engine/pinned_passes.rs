//! The passes over a pinned SQLite file, side by side.
//!
//! A pinned backup must read the frozen file into its artifact, prove the
//! file sound (`PRAGMA integrity_check`) and prove the artifact decodes to
//! exactly the bytes read. Run one after the other, the pin (and the WAL
//! behind it) lasted for their sum; here they run at once, each on a
//! thread of its own, and the backup is done when the slowest is:
//!
//! - **read**: a thread reads the file and hashes it ([`ReadAhead`]); the
//!   calling thread compresses what it reads (zstd workers beside it, see
//!   `zstd_workers.rs`), and the artifact writer's stage thread encrypts,
//!   hashes and writes (`pipeline.rs`);
//! - **integrity_check**: its own immutable connection to the same file
//!   (the second reader hits the page cache);
//! - **digest proof**: follows the artifact file as it is written
//!   (`follow.rs`), hashes those bytes and decodes them, hashing the
//!   decoded bytes; the verify phase then compares the digests.
//!
//! Rules kept from the passes in sequence: this returns only once every
//! pass ended, so the caller's `unpin` follows the last read of the pinned
//! file; the first pass to fail stops the others (they share a child of the
//! run's cancellation token, so a lost lease stops all of them too), and
//! the run then publishes nothing. Each pass logs how it ended.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::sqlite_check::pragma_check;
use super::EngineContext;
use crate::base::cancel::CancelToken;
use crate::base::follow::{Follower, ABANDONED};
use crate::base::hashing::{sha256_reader, HashingReader};
use crate::base::read_ahead::ReadAhead;
use crate::base::read_pace::{PacedReader, ReadPace};
use crate::compress::{decode_stream, ArtifactWriter, ContentProof, WrittenFile};
use crate::crypt::Sealing;

/// Test-only: milliseconds to sleep after every MiB read under the pin, and
/// a fiftieth of that after every virtual machine step of its
/// `integrity_check` (a few hundred on a test database), so tests can kill
/// a process or end a lease in the middle of the passes deterministically.
/// Unset (the default) means no delay; never set it in production.
pub const TEST_READ_DELAY_ENV: &str = "SIDECAR_TEST_READ_DELAY_MS_PER_MIB";

/// What the digest proof read back: (artifact bytes, artifact SHA-256,
/// decoded bytes, decoded SHA-256).
type ReadBack = (u64, String, u64, String);

/// Streams the pinned file at `path` into the artifact `stem` while it is
/// checked and the artifact is read back; returns the artifact with its
/// [`ContentProof`].
pub(super) fn back_up(ctx: &EngineContext, path: &Path, stem: &str) -> anyhow::Result<WrittenFile> {
    let passes = ctx.cancel.child();
    let first_failed = Mutex::new(None::<&'static str>);
    let file = File::open(path).with_context(|| format!("open {}", path.display()))?;
    let total = file.metadata()?.len();
    let writer = ctx.artifact(stem)?;
    let follower = writer.follow(passes.clone())?;
    let artifact = writer.path().to_owned();
    let sealing = ctx.sealing.clone();
    let pace = ctx.read_limit.map(|limit| {
        tracing::info!(
            "online read paced at {} MiB/s over the read and the integrity_check (BACKUP_ONLINE_READ_LIMIT_MIBPS)",
            limit >> 20
        );
        ReadPace::new(limit)
    });

    let (read, check, proof) = std::thread::scope(|s| {
        let (passes, first_failed) = (&passes, &first_failed);
        let pass = move |name: &'static str| Pass {
            name,
            passes,
            first_failed,
        };
        let check_pace = pace.clone();
        let check = std::thread::Builder::new()
            .name("pass-check".into())
            .spawn_scoped(s, move || {
                pass("integrity_check").run(|| {
                    check_pinned(path, passes, check_pace).context("check the pinned source")
                })
            });
        let proof = std::thread::Builder::new()
            .name("pass-proof".into())
            .spawn_scoped(s, move || {
                pass("digest proof").run(|| prove(follower, &artifact, sealing.as_deref()))
            });
        let read = pass("read").run(|| read(ctx, file, total, path, writer, passes, pace.clone()));
        (read, joined(check, passes), joined(proof, passes))
    });
    ctx.cancel.check()?;
    let first = *first_failed.lock().unwrap_or_else(|e| e.into_inner());
    match (read, check, proof) {
        (Ok((mut written, source_sha256)), Ok(()), Ok(back)) => {
            let (artifact_bytes, artifact_sha256, decoded_bytes, decoded_sha256) = back;
            written.proof = Some(ContentProof {
                source_sha256,
                artifact_bytes,
                artifact_sha256,
                decoded_bytes,
                decoded_sha256,
            });
            Ok(written)
        }
        (read, check, proof) => {
            // The error of the pass that failed first; the others only
            // say they were stopped.
            let mut errors: Vec<(&str, anyhow::Error)> = [
                ("read", read.err()),
                ("integrity_check", check.err()),
                ("digest proof", proof.err()),
            ]
            .into_iter()
            .filter_map(|(n, e)| e.map(|e| (n, e)))
            .collect();
            let i = errors
                .iter()
                .position(|(n, _)| Some(*n) == first)
                .unwrap_or(0);
            Err(errors.swap_remove(i).1)
        }
    }
}

/// The result of a pass's thread; one that could not start stops the
/// others.
fn joined<T>(
    thread: io::Result<std::thread::ScopedJoinHandle<'_, anyhow::Result<T>>>,
    passes: &CancelToken,
) -> anyhow::Result<T> {
    let thread = thread.inspect_err(|_| passes.cancel())?;
    thread
        .join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("a backup pass panicked")))
}

/// One pass: its name, the token the passes share, and which failed first.
struct Pass<'a> {
    name: &'static str,
    passes: &'a CancelToken,
    first_failed: &'a Mutex<Option<&'static str>>,
}

impl Pass<'_> {
    /// Runs `f`, logs how it ended, and on failure stops the other passes.
    fn run<T>(&self, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
        let started = Instant::now();
        let result = f();
        let secs = started.elapsed().as_secs_f64();
        match &result {
            Ok(_) => tracing::info!("pinned pass {}: done in {secs:.1} s", self.name),
            // A follower whose writer was dropped unfinished only echoes
            // the writer's failure (a full disk, say): the pass that wrote
            // reports the cause and stops the others, however the threads
            // raced.
            Err(e) if self.passes.is_cancelled() || format!("{e:#}").contains(ABANDONED) => {
                tracing::info!(
                    "pinned pass {}: stopped after {secs:.1} s ({e:#})",
                    self.name
                )
            }
            Err(e) => {
                let mut first = self.first_failed.lock().unwrap_or_else(|e| e.into_inner());
                first.get_or_insert(self.name);
                self.passes.cancel();
                tracing::warn!(
                    "pinned pass {}: failed after {secs:.1} s ({e:#}); stopping the others",
                    self.name
                );
            }
        }
        result
    }
}

/// The read pass: the file, read and hashed on its own thread, compressed
/// into the artifact; returns the artifact and the digest of the bytes read.
fn read(
    ctx: &EngineContext,
    file: File,
    total: u64,
    path: &Path,
    mut writer: ArtifactWriter,
    passes: &CancelToken,
    pace: Option<ReadPace>,
) -> anyhow::Result<(WrittenFile, String)> {
    let name = path.display().to_string();
    let source: Box<dyn Read + Send> = match pace {
        Some(pace) => Box::new(PacedReader::new(Throttled::from_env(file), pace)),
        None => Box::new(Throttled::from_env(file)),
    };
    let (mut reader, digest) = ReadAhead::spawn_reader(source, &name, "pass-read", true)?;
    let mut options = ctx.copy_options("sqlite read under the pin", Some(total));
    options.cancel = passes.clone();
    crate::base::progress::copy(&mut reader, &mut writer, &options)
        .with_context(|| format!("stream {} into its artifact", path.display()))?;
    drop(reader);
    let (read, sha256) = digest
        .result()
        .with_context(|| format!("{}: not read to its end", path.display()))?;
    anyhow::ensure!(
        read == total,
        "{}: read {read} bytes but the file has {total}; it changed while being read",
        path.display()
    );
    let written = writer.finish().context("finish sqlite artifact")?;
    Ok((written, sha256))
}

/// The digest proof: the artifact file as it is written, hashed, decoded
/// (decrypted with the run's check key when sealed) and the decoded bytes
/// hashed.
fn prove(
    follower: Follower,
    artifact: &Path,
    sealing: Option<&Sealing>,
) -> anyhow::Result<ReadBack> {
    let keys = sealing.map(Sealing::check_identities);
    let mut hashed = HashingReader::new(follower);
    let (decoded_bytes, decoded_sha256) = {
        let decoded = decode_stream(artifact, &mut hashed, keys)?;
        sha256_reader(decoded).with_context(|| format!("decode {}", artifact.display()))?
    };
    let trailing = io::copy(&mut hashed, &mut io::sink())?;
    anyhow::ensure!(
        trailing == 0,
        "{}: {trailing} bytes follow the end of the compressed stream",
        artifact.display()
    );
    let (_, artifact_bytes, artifact_sha256) = hashed.finish();
    Ok((
        artifact_bytes,
        artifact_sha256,
        decoded_bytes,
        decoded_sha256,
    ))
}

/// The `integrity_check` of the pinned source, on a connection of its own;
/// `cancel` stops it (a lost lease, another pass failed), `pace` holds its
/// reads to the online read limit together with the read pass's.
fn check_pinned(path: &Path, cancel: &CancelToken, pace: Option<ReadPace>) -> anyhow::Result<()> {
    let started = Instant::now();
    let pause = test_delay().map(|d| d / 50);
    pragma_check(path, "integrity_check", Some(cancel), pause, pace)?;
    tracing::info!(
        "integrity_check of the pinned source: ok in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The test delay of [`TEST_READ_DELAY_ENV`], when set.
fn test_delay() -> Option<Duration> {
    std::env::var(TEST_READ_DELAY_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
}

/// A reader that sleeps after every MiB when [`TEST_READ_DELAY_ENV`] is
/// set (tests only); a plain pass-through otherwise.
struct Throttled<R> {
    inner: R,
    delay: Option<Duration>,
    since_pause: usize,
}

impl<R: Read> Throttled<R> {
    /// Wraps `inner`, delayed when [`TEST_READ_DELAY_ENV`] is set.
    fn from_env(inner: R) -> Self {
        let delay = test_delay();
        if let Some(d) = delay {
            tracing::warn!(
                "{TEST_READ_DELAY_ENV} is set: the read sleeps {} ms per MiB (test setting)",
                d.as_millis()
            );
        }
        Throttled {
            inner,
            delay,
            since_pause: 0,
        }
    }
}

impl<R: Read> Read for Throttled<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(d) = self.delay {
            self.since_pause += n;
            while self.since_pause >= 1 << 20 {
                self.since_pause -= 1 << 20;
                std::thread::sleep(d);
            }
        }
        Ok(n)
    }
}
