//! `bench rto`: how long until a lost SQLite database is back and the
//! tracker serves again (recovery time objective).
//!
//! ```text
//! bench rto --db /var/tmp/scale/scale-1g.db [--dir D] [--rounds N] [--no-full] [--no-s3]
//!           [--artifact-from-cli] [--drop-db-after-backup]
//! BENCH_BASELINE_SIDECAR=/path/to/old/maintenance-sidecar bench rto ...
//! ```
//!
//! One backup of `--db` is made with `maintenance-sidecar once` (on a copy,
//! so the source is only read), or, with `--artifact-from-cli`, by
//! `zstd -T0` plus a manifest written here (for databases too large to copy
//! or to check at backup time). `--drop-db-after-backup` then deletes
//! `--db` itself (it is not needed any more: everything restores from the
//! artifact), for a disk that cannot hold the database, the artifact, the
//! baseline's scratch copy and the restored target at once (16 GiB). Then,
//! in every round and side by side:
//!
//! - baseline: `zstd -d -T0` of the artifact into a file, `cp` of the result
//!   to the target, `sync` of the target;
//! - `restore` (default: decompress in one pass while another thread reads
//!   and hashes the artifact, header check);
//! - with `BENCH_BASELINE_SIDECAR=PATH`, the same default `restore` by that
//!   older build of the sidecar ("restore (previous build)");
//! - `restore --check full` and `drill` (full integrity_check), unless
//!   `--no-full`;
//! - the same three from an S3-compatible server on loopback (moto, see
//!   `maintenance_e2e::s3`; the backup is uploaded once with `push`), so
//!   the figures include the download, unless `--no-s3` or moto is missing;
//! - the two halves of the restore's one pass on their own: `zstd -d -T1`
//!   of the artifact to /dev/null, and the SHA-256 of the artifact by
//!   `sha256sum` and by the `sha2` crate the sidecar hashes with (in this
//!   process, 1 MiB reads; it uses the CPU's SHA extensions when present);
//!
//! and once, the time from the `restore` command to the reference tracker
//! answering an announce on the restored database. Medians and ratios to
//! the baseline are printed. Page cache is warm for every variant (the
//! shared benchmark machine's caches are not dropped).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use maintenance_e2e::*;

/// `bench rto`: restore time of a large database (see the module doc).
#[derive(Debug, clap::Args)]
pub struct RtoOpts {
    /// The SQLite database to back up and restore.
    #[arg(long, default_value = "/var/tmp/scale/scale-1g.db")]
    db: PathBuf,
    /// Work folder (emptied first).
    #[arg(long, default_value = "/var/tmp/restore-rto")]
    dir: PathBuf,
    /// Rounds per measured path.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Skip `restore --check full` and `drill` (the full integrity_check).
    #[arg(long = "no-full", action = clap::ArgAction::SetFalse)]
    full: bool,
    /// Make the artifact with the `zstd` CLI plus a manifest written here
    /// instead of `maintenance-sidecar once` (databases too large to copy).
    #[arg(long)]
    artifact_from_cli: bool,
    /// Skip the rows restored from an S3-compatible server (moto).
    #[arg(long = "no-s3", action = clap::ArgAction::SetFalse)]
    s3: bool,
    /// Delete `--db` once the backup is made (a disk too small for
    /// everything at once).
    #[arg(long = "drop-db-after-backup")]
    drop_db: bool,
}

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

fn run_ok(cmd: &mut Command) -> f64 {
    let t = Instant::now();
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    secs(t)
}

fn sidecar(backups: &Path) -> Command {
    sidecar_at(&bin("maintenance-sidecar"), backups)
}

/// The sidecar build at `exe` (this one or the baseline's), restoring from
/// `backups`.
fn sidecar_at(exe: &Path, backups: &Path) -> Command {
    let mut c = Command::new(exe);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("BACKUP_DIR", backups);
    c
}

/// SHA-256 of `path` in this process with the `sha2` crate, as the
/// sidecar's reading thread does it (1 MiB reads); returns the seconds.
fn sha2_secs(path: &Path) -> f64 {
    use sha2::Digest;
    use std::io::Read;
    let t = Instant::now();
    let mut f = std::fs::File::open(path).unwrap();
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    std::hint::black_box(hasher.finalize());
    secs(t)
}

fn sha256_hex(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// The backup folder to restore from: made by the sidecar (`once`) on a
/// copy of the database, or by the zstd CLI with a hand-written manifest.
fn make_backup(o: &RtoOpts, backups: &Path) -> PathBuf {
    let t = Instant::now();
    if o.artifact_from_cli {
        let folder = backups.join("rto-cli");
        std::fs::create_dir_all(&folder).unwrap();
        let name = "sqlite-tracker.db.zst";
        let artifact = folder.join(name);
        run_ok(
            Command::new("zstd")
                .args(["-q", "-3", "-T0", "--check"])
                .arg(&o.db)
                .arg("-o")
                .arg(&artifact),
        );
        let now = chrono::Utc::now();
        let manifest = serde_json::json!({
            "format_version": 1, "name": "rto-cli", "started_at": now, "finished_at": now,
            "window_id": null, "mode": "once", "sidecar_id": "bench", "engines": ["sqlite"],
            "artifacts": [{"engine": "sqlite", "path": name,
                "size_bytes": std::fs::metadata(&artifact).unwrap().len(),
                "sha256": sha256_hex(&artifact)}],
            "verified": true,
            "content_checks": {name: "integrity_check"},
        });
        std::fs::write(folder.join("manifest.json"), manifest.to_string()).unwrap();
        println!(
            "# artifact made with zstd -3 -T0 in {:.1} s (manifest records integrity_check without running it)",
            secs(t)
        );
        return folder;
    }
    let src = o.dir.join("tracker.db");
    run_ok(Command::new("cp").arg(&o.db).arg(&src));
    let out = sidecar(backups)
        .env("SQLITE_DATABASE_PATH", &src)
        .env("RUST_LOG", "info")
        .arg("once")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(&src).unwrap();
    let folder = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let m = manifest(&folder);
    println!(
        "# backup by `maintenance-sidecar once` in {:.1} s (compress {:.1} s, verify {:.1} s)",
        secs(t),
        m["durations_secs"]["compress"].as_f64().unwrap_or(0.0),
        m["durations_secs"]["verify"].as_f64().unwrap_or(0.0),
    );
    folder
}

/// The candidates for the cheap check of a default restore, timed on one
/// restored database: `PRAGMA quick_check` (reads every page) against the
/// header check the sidecar runs (in the default restore's own time).
fn cheap_checks(backups: &Path, folder: &Path, target: &Path) {
    run_ok(
        sidecar(backups)
            .arg("restore")
            .arg(folder)
            .arg("--to")
            .arg(target),
    );
    let uri = format!("file:{}?immutable=1", target.display());
    let conn = rusqlite::Connection::open_with_flags(
        &uri,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
    )
    .unwrap();
    for pragma in ["quick_check", "integrity_check"] {
        let t = Instant::now();
        let r: String = conn
            .query_row(&format!("PRAGMA {pragma}"), [], |r| r.get(0))
            .unwrap();
        println!(
            "cheap-check candidate: PRAGMA {pragma}: {r} in {:.2} s",
            secs(t)
        );
    }
    let t = Instant::now();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .unwrap();
    println!(
        "cheap-check candidate: header + schema ({n} schema rows) in {:.4} s",
        secs(t)
    );
    drop(conn);
    std::fs::remove_file(target).unwrap();
}

/// Time from the `restore` command to an answered announce on the
/// restored database.
fn tracker_serving(o: &RtoOpts, backups: &Path, folder: &Path) -> (f64, f64) {
    let tdir = o.dir.join("tracker");
    std::fs::create_dir_all(&tdir).unwrap();
    let db = tdir.join("tracker.db");
    let t = Instant::now();
    run_ok(
        sidecar(backups)
            .arg("restore")
            .arg(folder)
            .arg("--to")
            .arg(&db),
    );
    let restored = secs(t);
    let tracker = Tracker::start(&tdir, &TrackerConfig::sqlite(&tdir, "reject"));
    tracker.announce_ok(&info_hash(0xAB, 1), 1, "started");
    let serving = secs(t);
    drop(tracker);
    std::fs::remove_dir_all(&tdir).unwrap();
    (restored, serving)
}

/// Entry point of `bench rto`.
pub fn run(o: RtoOpts) {
    assert!(o.db.is_file(), "{} does not exist", o.db.display());
    let _ = std::fs::remove_dir_all(&o.dir);
    let backups = o.dir.join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    let db_bytes = std::fs::metadata(&o.db).unwrap().len();
    println!(
        "# rto: database {} ({:.2} GiB), {} rounds, workdir {}",
        o.db.display(),
        db_bytes as f64 / (1u64 << 30) as f64,
        o.rounds,
        o.dir.display()
    );
    let folder = make_backup(&o, &backups);
    let artifact = folder.join("sqlite-tracker.db.zst");
    let artifact_bytes = std::fs::metadata(&artifact).unwrap().len();
    println!("# artifact {:.1} MiB", artifact_bytes as f64 / 1048576.0);
    if o.drop_db {
        std::fs::remove_file(&o.db).unwrap();
        println!(
            "# --drop-db-after-backup: deleted {} (everything below restores from the artifact)",
            o.db.display()
        );
    }
    let previous = std::env::var_os("BENCH_BASELINE_SIDECAR").map(PathBuf::from);
    if let Some(p) = &previous {
        assert!(
            p.is_file(),
            "BENCH_BASELINE_SIDECAR: {} is not a file",
            p.display()
        );
        println!("# previous build: {}", p.display());
    }
    let target = o.dir.join("restored.db");
    let scratch = o.dir.join("decompressed.db");
    let s3 = if o.s3 {
        maintenance_e2e::s3::S3Server::start(&o.dir, "rto")
    } else {
        None
    };
    let s3_env = s3
        .as_ref()
        .map(|s| s.sidecar_env("rto"))
        .unwrap_or_default();
    if s3.is_some() {
        let t = Instant::now();
        run_ok(
            sidecar(&backups)
                .envs(s3_env.clone())
                .arg("push")
                .arg(&folder),
        );
        println!("# pushed to the S3 test server in {:.1} s", secs(t));
    }
    let name = folder.file_name().unwrap().to_string_lossy().into_owned();
    let mut labels = vec!["baseline: zstd -d -T0 + cp + sync", "restore (default)"];
    if previous.is_some() {
        labels.push("restore (previous build)");
    }
    if o.full {
        labels.extend(["restore --check full", "drill"]);
    }
    if s3.is_some() {
        labels.push("S3: restore --remote (default)");
        if o.full {
            labels.extend(["S3: restore --remote --check full", "S3: drill --remote"]);
        }
    }
    labels.extend([
        "part: zstd -d -T1 to /dev/null",
        "part: sha256sum of the artifact",
        "part: sha2 crate of the artifact (in-process)",
    ]);
    let mut rows: Vec<(&str, Vec<f64>)> = labels.into_iter().map(|l| (l, Vec::new())).collect();
    for round in 0..o.rounds {
        // The previous build runs before the new one in every other round,
        // so neither always follows the baseline's writes.
        if previous.is_some() && round > 0 {
            rows.swap(1, 2);
        }
        for (label, times) in rows.iter_mut() {
            let _ = std::fs::remove_file(&target);
            let remote = label.starts_with("S3: ");
            let mut cmd = sidecar(&backups);
            if remote {
                cmd.envs(s3_env.clone());
            }
            let source: &std::ffi::OsStr = if remote {
                name.as_ref()
            } else {
                folder.as_os_str()
            };
            let secs = match label.trim_start_matches("S3: ") {
                l if l.starts_with("baseline") => {
                    let t = Instant::now();
                    run_ok(
                        Command::new("zstd")
                            .args(["-q", "-d", "-T0", "-f"])
                            .arg(&artifact)
                            .arg("-o")
                            .arg(&scratch),
                    );
                    run_ok(Command::new("cp").arg(&scratch).arg(&target));
                    run_ok(Command::new("sync").arg(&target));
                    let s = secs(t);
                    std::fs::remove_file(&scratch).unwrap();
                    s
                }
                l if l.starts_with("part: zstd") => run_ok(
                    Command::new("zstd")
                        .args(["-q", "-d", "-T1", "-f", "-o", "/dev/null"])
                        .arg(&artifact),
                ),
                l if l.starts_with("part: sha256sum") => run_ok(
                    Command::new("sha256sum")
                        .arg(&artifact)
                        .stdout(std::process::Stdio::null()),
                ),
                l if l.starts_with("part: sha2 crate") => sha2_secs(&artifact),
                l if l.starts_with("restore (previous") => run_ok(
                    sidecar_at(previous.as_deref().unwrap(), &backups)
                        .arg("restore")
                        .arg(source)
                        .arg("--to")
                        .arg(&target),
                ),
                l if l.starts_with("restore") => {
                    cmd.arg("restore").arg(source);
                    if remote {
                        cmd.arg("--remote");
                    }
                    if l.contains("--check full") {
                        cmd.args(["--check", "full"]);
                    }
                    run_ok(cmd.arg("--to").arg(&target))
                }
                _ => {
                    cmd.arg("drill").arg(source);
                    if remote {
                        cmd.arg("--remote");
                    }
                    run_ok(&mut cmd)
                }
            };
            println!("round {round}: {label}: {secs:.2} s");
            times.push(secs);
            let _ = std::fs::remove_file(&target);
        }
    }
    drop(s3);
    if previous.is_some() && o.rounds > 1 && o.rounds.is_multiple_of(2) {
        rows.swap(1, 2);
    }
    let base = super::median(&rows[0].1);
    println!("\n| variant | median s | ratio to baseline | rounds |");
    println!("|---|---|---|---|");
    for (label, times) in &rows {
        let m = super::median(times);
        let rounds: Vec<String> = times.iter().map(|t| format!("{t:.2}")).collect();
        println!(
            "| {label} | {m:.2} | {:.2} | {} |",
            m / base,
            rounds.join(", ")
        );
    }
    for (label, times) in &rows {
        if label.starts_with("part: s") {
            let m = super::median(times);
            println!(
                "{label}: {:.0} MiB/s",
                artifact_bytes as f64 / 1048576.0 / m
            );
        }
    }
    cheap_checks(&backups, &folder, &target);
    let (restored, serving) = tracker_serving(&o, &backups, &folder);
    println!(
        "\ntracker serving on the restored database: restore {restored:.1} s, first announce answered {serving:.1} s after the command (goal 120 s)"
    );
    // Restore time grows with the bytes; the tracker's start-up is taken as
    // growing with them too (the upper bound) or not at all.
    let scale = 16.0 * (1u64 << 30) as f64 / db_bytes as f64;
    println!(
        "extrapolated to 16 GiB (x{scale:.1}): restore {:.0} s, serving after {:.0} s (start-up constant) to {:.0} s (start-up scaled)",
        restored * scale,
        restored * scale + (serving - restored),
        serving * scale
    );
    std::thread::sleep(Duration::from_millis(100));
    std::fs::remove_dir_all(&o.dir).unwrap();
}
