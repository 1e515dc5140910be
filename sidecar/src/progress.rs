//! Streaming copy with progress lines (bytes, MB/s) and cancellation.
//!
//! Every byte the sidecar moves goes through [`copy`], so memory stays at
//! one fixed buffer whatever the database size, and a long copy tells the
//! operator how far it got.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use crate::cancel::CancelToken;

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
    let started = Instant::now();
    let mut last_log = started;
    let mut total = 0u64;
    loop {
        opts.cancel.check()?;
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        writer.write_all(&buf[..n])?;
        total += n as u64;
        if last_log.elapsed() >= opts.every {
            last_log = Instant::now();
            log_progress(opts, total, started.elapsed());
        }
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
