//! Streaming copy with progress lines (bytes, MB/s) and cancellation.
//!
//! Every byte the sidecar moves goes through [`copy`], so memory stays at
//! one fixed buffer whatever the database size, and a long copy tells the
//! operator how far it got: an indicatif progress bar when an operator runs
//! `once`/`restore` on a terminal ([`set_interactive`]), plain progress log
//! lines otherwise (containers, cron, pipes).

use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::base::cancel::CancelToken;

/// Size of the single copy buffer.
pub const BUFFER_SIZE: usize = 1 << 20;

/// How progress is reported and when the copy must stop.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Name of the copy in log lines, e.g. `sqlite snapshot`.
    pub label: String,
    /// Seconds between progress lines.
    pub every: Duration,
    /// Checked between chunks.
    pub cancel: CancelToken,
    /// Expected total, when known, for a percentage.
    pub total: Option<u64>,
}

static INTERACTIVE: AtomicBool = AtomicBool::new(false);

/// Shows progress bars instead of progress lines (the binary sets this for
/// `once` and `restore` when stderr is a terminal).
pub fn set_interactive(on: bool) {
    INTERACTIVE.store(on, Ordering::Relaxed);
}

/// True when progress bars are shown.
pub fn interactive() -> bool {
    INTERACTIVE.load(Ordering::Relaxed)
}

fn bar(opts: &CopyOptions) -> ProgressBar {
    let pb = match opts.total {
        Some(t) if t > 0 => ProgressBar::new(t).with_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        ),
        _ => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template(
                "{spinner} {msg}: {bytes} {binary_bytes_per_sec} {elapsed}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    pb.set_message(opts.label.clone());
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// Copy options for a one-off operator copy (restore): progress every 5 s,
/// never cancelled.
pub fn operator_copy(label: &str, total: Option<u64>) -> CopyOptions {
    CopyOptions {
        label: label.to_owned(),
        every: Duration::from_secs(5),
        cancel: CancelToken::new(),
        total,
    }
}

/// Formats a byte count for humans (KiB below 1 MiB, else MiB, one decimal).
pub fn mib(bytes: u64) -> String {
    if bytes < 1 << 20 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    }
}

/// Copies `reader` to `writer` through one buffer; logs progress every
/// `opts.every`; returns the bytes copied.
pub fn copy(reader: &mut dyn Read, writer: &mut dyn Write, opts: &CopyOptions) -> io::Result<u64> {
    let mut buf = vec![0u8; BUFFER_SIZE];
    copy_chunks(opts, || loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(0),
            Ok(n) => {
                writer.write_all(&buf[..n])?;
                return Ok(n as u64);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    })
}

/// Bytes moved per step of [`copy_file`] (progress and cancellation are
/// checked between steps).
const KERNEL_CHUNK: u64 = 64 << 20;

/// Copies one file into another inside the kernel (`copy_file_range`, or
/// `sendfile`, as `std::io::copy` picks), in chunks so progress and
/// cancellation still work. No user-space buffer: as fast as `cp`.
pub fn copy_file(src: &File, dst: &File, opts: &CopyOptions) -> io::Result<u64> {
    copy_chunks(opts, || {
        let mut dst = dst;
        io::copy(&mut src.take(KERNEL_CHUNK), &mut dst)
    })
}

/// Runs `step` (which returns the bytes it moved, 0 at the end) until the
/// end, with progress lines or a bar and cancellation between steps.
fn copy_chunks(opts: &CopyOptions, mut step: impl FnMut() -> io::Result<u64>) -> io::Result<u64> {
    let started = Instant::now();
    let mut last_log = started;
    let mut total = 0u64;
    let bar = interactive().then(|| bar(opts));
    loop {
        opts.cancel.check()?;
        let n = step()?;
        if n == 0 {
            break;
        }
        total += n;
        if let Some(b) = &bar {
            b.set_position(total);
        } else if last_log.elapsed() >= opts.every {
            last_log = Instant::now();
            log_progress(opts, total, started.elapsed());
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let secs = started.elapsed().as_secs_f64().max(1e-6);
    tracing::info!(
        "{}: {} copied in {:.1} s ({:.1} MB/s)",
        opts.label,
        mib(total),
        secs,
        total as f64 / 1e6 / secs
    );
    Ok(total)
}

fn log_progress(opts: &CopyOptions, total: u64, elapsed: Duration) {
    let rate = total as f64 / 1e6 / elapsed.as_secs_f64().max(1e-6);
    match opts.total {
        Some(t) if t > 0 => tracing::info!(
            "{}: {} of {} ({:.0}%), {:.1} MB/s",
            opts.label,
            mib(total),
            mib(t),
            total as f64 * 100.0 / t as f64,
            rate
        ),
        _ => tracing::info!("{}: {} so far, {:.1} MB/s", opts.label, mib(total), rate),
    }
}

/// Formats an age as `3d 4h`, `5h 2m` or `42s`.
pub fn age(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m) = (secs / 86400, secs % 86400 / 3600, secs % 3600 / 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {}s", secs % 60)
    } else {
        format!("{secs}s")
    }
}
