//! `bench scale`: the pause of a window does not grow with the database.
//!
//! ```text
//! bench scale --size-gib 16 --dir /var/tmp/scale
//! ```
//!
//! The database (`<dir>/scale-<N>g.db`, see `maintenance_e2e::scale`) is
//! generated once and reused by later runs with the same `--dir`.
//!
//! One run measures, side by side on the same file: `zstd -T0 -3` alone
//! (the throughput baseline), a `reject` window and a `defer-writes` window
//! with the pinned snapshot (refusal, write pause, whole backup time, peak
//! extra disk, sidecar peak RSS, WAL growth under announce load), and the
//! host-cron path of the original note (stop, copy, start, healthy). It
//! ends with one Markdown table row for BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use maintenance_e2e::scale;

/// Torrents the tracker loads at start-up (a large public tracker).
const LIVE_ROWS: u64 = 2_000_000;

/// `bench scale`: pinned snapshots of a large database.
#[derive(Debug, clap::Args)]
pub struct ScaleOpts {
    /// Database size.
    #[arg(long, default_value_t = 1)]
    size_gib: u64,
    /// Work folder (a database of the asked size found there is reused).
    #[arg(long, default_value = "/var/tmp/scale")]
    dir: PathBuf,
    /// Only generate the database.
    #[arg(long)]
    generate_only: bool,
}

/// The database of `size_gib`, generated unless it is already in `dir`.
fn database(dir: &Path, size_gib: u64) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let db = dir.join(format!("scale-{size_gib}g.db"));
    // The generator writes with `synchronous=OFF`: gigabytes of dirty pages
    // stay in the page cache, and the first window's checkpoint (which
    // fsyncs the database) would pay for their writeback (2-3 s measured
    // right after generating 1 and 4 GiB). Written back here, before
    // anything is measured.
    let settle = |db: &Path| std::fs::File::open(db).unwrap().sync_all().unwrap();
    if db.exists() {
        settle(&db);
        println!(
            "# reusing {} ({:.2} GiB)",
            db.display(),
            std::fs::metadata(&db).unwrap().len() as f64 / (1u64 << 30) as f64
        );
        return db;
    }
    let tmp = dir.join(format!(".scale-{size_gib}g.db.generating"));
    let _ = std::fs::remove_file(&tmp);
    let g = scale::generate(&tmp, size_gib << 30, LIVE_ROWS);
    settle(&tmp);
    std::fs::rename(&tmp, &db).unwrap();
    println!(
        "# generated {}: {:.2} GiB, {} torrents + {} history rows, in {:.1} s ({:.0} MiB/s)",
        db.display(),
        g.bytes as f64 / (1u64 << 30) as f64,
        g.live_rows,
        g.history_rows,
        g.secs,
        g.bytes as f64 / 1048576.0 / g.secs
    );
    db
}

/// Seconds `zstd -T0 -3` takes to compress `db` into a file on the same
/// disk (removed afterwards).
fn zstd_cli(db: &Path, out: &Path) -> f64 {
    let t = Instant::now();
    let st = Command::new("zstd")
        .args(["-T0", "-3", "-q", "-f"])
        .arg(db)
        .arg("-o")
        .arg(out)
        .status()
        .expect("run zstd (install the zstd package)");
    assert!(st.success(), "zstd failed");
    let secs = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(out);
    secs
}

const MIB: f64 = 1048576.0;

/// Entry point of `bench scale`.
pub fn run(o: ScaleOpts) {
    let db = database(&o.dir, o.size_gib);
    if o.generate_only {
        return;
    }
    let size = std::fs::metadata(&db).unwrap().len() as f64;
    let opts = super::Opts {
        size_mib: (size / MIB) as u64,
        dir: o.dir.join(format!("runs-{}g", o.size_gib)),
        rounds: 1,
        round_secs: 0.0,
        conns: 8,
        windows: 1,
        // Two minutes a GiB: 16 GiB took 12 minutes with `zstd -T0` alone
        // at load 11 on this host.
        backup_cap_secs: (120 * o.size_gib).max(1200),
        idle_secs: 0,
    };
    let _ = std::fs::remove_dir_all(&opts.dir);
    std::fs::create_dir_all(&opts.dir).unwrap();
    println!(
        "\n## scale: {:.2} GiB SQLite database {}, host {} cores",
        size / (1u64 << 30) as f64,
        db.display(),
        super::cores()
    );
    let zstd_secs = zstd_cli(&db, &opts.dir.join("zstd-baseline.zst"));
    println!(
        "zstd -T0 -3 alone: {zstd_secs:.1} s = {:.0} MiB/s",
        size / MIB / zstd_secs
    );
    // Each window's folder (its artifact) goes once measured: at 16 GiB the
    // disk holds the database, one artifact and the host-cron copy, not more.
    let rj = super::window_run(&opts, &db, "reject", false, 1);
    let _ = std::fs::remove_dir_all(opts.dir.join("window-reject-1"));
    let dw = super::window_run(&opts, &db, "defer-writes", true, 1);
    let _ = std::fs::remove_dir_all(opts.dir.join("window-defer-writes-1"));
    let (cron_span, cron_total) = super::host_cron(&opts, &db);
    let _ = std::fs::remove_dir_all(&opts.dir);
    for (name, r) in [("reject", &rj), ("defer-writes", &dw)] {
        println!(
            "{name}: announce latency idle p50 {:.2} ms p99 {:.2} ms; during the backup p50 {:.2} ms p99 {:.2} ms; pin held {} s (whole backup {:.1} s)",
            r.idle_ms.0,
            r.idle_ms.1,
            r.backup_ms.0,
            r.backup_ms.1,
            r.pin_secs.map_or("?".into(), |p| format!("{p:.1}")),
            r.total_secs
        );
        println!(
            "{name}: refused {} announces over {:.3} s, connection errors {}; writes paused (quiesced) {:.3} s; whole backup {:.1} s = {:.0} MiB/s ({:.2}x zstd -T0 -3); artifact {:.0} MiB; peak extra disk {:.0} MiB (artifact + {:.1} MiB); sidecar peak RSS {:.1} MiB; WAL peak {:.1} MiB",
            r.refused,
            r.outage_secs,
            r.errors,
            r.quiesced_secs,
            r.total_secs,
            size / MIB / r.total_secs,
            zstd_secs / r.total_secs,
            r.artifact_bytes as f64 / MIB,
            r.peak_backup_bytes as f64 / MIB,
            (r.peak_backup_bytes as f64 - r.artifact_bytes as f64) / MIB,
            r.hwm_kib as f64 / 1024.0,
            r.peak_wal_bytes as f64 / MIB
        );
    }
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    let refusal = rj.outage_secs;
    let pause = dw.quiesced_secs.max(rj.quiesced_secs);
    let disk_over = rj.peak_backup_bytes.max(dw.peak_backup_bytes) as f64
        - rj.artifact_bytes.max(dw.artifact_bytes) as f64;
    let throughput = zstd_secs / rj.total_secs.max(dw.total_secs);
    let rss = rj.hwm_kib.max(dw.hwm_kib) as f64 / 1024.0;
    println!(
        "RESULT scale {}g: reject refusal {:.0} ms ({}), defer-writes write pause {:.0} ms, refused {} ({}); host-cron outage {cron_span:.1} s (stop to healthy {cron_total:.1} s) = {:.0}x the refusal ({}); peak extra disk artifact + {:.1} MiB ({}); throughput {throughput:.2}x zstd -T0 -3 ({}); sidecar RSS {rss:.1} MiB ({}); WAL peak {:.1} MiB",
        o.size_gib,
        refusal * 1000.0,
        met(refusal <= 0.1),
        pause * 1000.0,
        dw.refused + dw.errors,
        met(pause <= 0.1 && dw.refused + dw.errors == 0),
        cron_span / refusal,
        met(cron_span >= 100.0 * refusal),
        disk_over / MIB,
        met(disk_over <= 64.0 * MIB),
        met(throughput >= 0.8),
        met(rss <= 64.0),
        rj.peak_wal_bytes.max(dw.peak_wal_bytes) as f64 / MIB
    );
    println!(
        "| {:.2} GiB | {:.0} ms | {:.0} ms / 0 refused | {cron_span:.1} s | {:.0}x | {:.0} s ({:.0} MiB/s) | {zstd_secs:.0} s | {throughput:.2}x | +{:.1} MiB | {rss:.1} MiB | {:.1} MiB |",
        size / (1u64 << 30) as f64,
        refusal * 1000.0,
        dw.quiesced_secs * 1000.0,
        cron_span / refusal,
        rj.total_secs.max(dw.total_secs),
        size / MIB / rj.total_secs.max(dw.total_secs),
        disk_over / MIB,
        rj.peak_wal_bytes.max(dw.peak_wal_bytes) as f64 / MIB
    );
}
