//! `bench dumps`: the dump engines' pipeline beside the dump tools alone.
//!
//! ```text
//! bench dumps [--size-mib 1024] [--rounds 3] [--dir /var/tmp/dumps-bench]
//! ```
//!
//! PostgreSQL (`TEST_POSTGRES_URL`, `scripts/test-postgres.sh`): one
//! `torrents` table of at least `--size-mib` of heap (`BENCH_POSTGRES_DB`
//! names a database to reuse, filled once), then `--rounds` rounds, each
//! running in turn, on the same database:
//!
//! - the dump tool alone: `pg_dump --format=custom --compress=0` (what the
//!   sidecar runs) to `/dev/null`;
//! - the same dump piped into `zstd -T0 -3` to `/dev/null`: the dump and
//!   the compression alone, the floor of any pipeline that compresses;
//! - `pg_dump -Fc` to a file: its own compression, the hand-made backup;
//! - `maintenance-sidecar once`: dump → zstd → SHA-256 → file on threads
//!   of their own, then the verify phase (`pg_restore --list` and a full
//!   `pg_restore` read-through), with its peak RSS (VmHWM sampled every
//!   20 ms) and its own phase durations;
//! - with `BENCH_BASELINE_SIDECAR=/path/to/maintenance-sidecar`, the same
//!   with that build (an older one, side by side).
//!
//! MySQL (`TEST_MARIADB_URL`, `scripts/test-mariadb.sh`): the same with
//! `mariadb-dump --single-transaction` alone to `/dev/null` beside the
//! sidecar, on a table of `--size-mib / 4`. Medians and ratios are printed
//! with one `RESULT` line per engine.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use maintenance_e2e::*;

use super::median;

/// Options of `bench dumps`.
#[derive(Debug, clap::Args)]
pub struct DumpsOpts {
    /// Table size.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Rounds.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Work folder.
    #[arg(long, default_value = "/var/tmp/dumps-bench")]
    dir: PathBuf,
}

/// Wall time and peak RSS of one process run.
struct Timed {
    secs: f64,
    hwm_kib: u64,
}

/// Runs `cmd` to its end, sampling its VmHWM; panics on failure.
fn timed(mut cmd: Command, what: &str) -> Timed {
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("start {what}: {e}"));
    let mut hwm = 0;
    let status = loop {
        if let Some(kib) = vm_hwm_kib(child.id()) {
            hwm = hwm.max(kib);
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{what} failed: {status}");
    Timed {
        secs: started.elapsed().as_secs_f64(),
        hwm_kib: hwm,
    }
}

/// Runs `dump | zstd -T0 -3 -q > /dev/null` to its end (the dump and
/// the compression alone, no hashing, no file); returns the wall time.
fn dump_into_zstd(mut dump: Command, what: &str) -> f64 {
    let started = Instant::now();
    let mut dumper = dump
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let zstd = Command::new("zstd")
        .args(["-T0", "-3", "-q", "-c"])
        .stdin(dumper.stdout.take().unwrap())
        .stdout(std::fs::File::create("/dev/null").unwrap())
        .status()
        .expect("zstd on PATH");
    let dumped = dumper.wait().unwrap();
    assert!(
        dumped.success() && zstd.success(),
        "{what} failed: {dumped}, zstd {zstd}"
    );
    started.elapsed().as_secs_f64()
}

/// One sidecar `once` run: its time, peak RSS, artifact size and the
/// phase durations of its manifest.
struct SidecarRun {
    timed: Timed,
    artifact_bytes: u64,
    compress_secs: f64,
    verify_secs: f64,
}

fn sidecar_once(binary: &Path, env: &[(String, String)], backups: &Path, log: &Path) -> SidecarRun {
    let _ = std::fs::remove_dir_all(backups);
    let f = std::fs::File::create(log).unwrap();
    let mut cmd = sidecar_cmd_of(binary, env);
    cmd.arg("once").stdout(f.try_clone().unwrap()).stderr(f);
    let timed = timed(cmd, "maintenance-sidecar once");
    let backup = published(backups).pop().expect("a published backup");
    let m = manifest(&backup);
    let d = |k: &str| m["durations_secs"][k].as_f64().unwrap_or(f64::NAN);
    let run = SidecarRun {
        timed,
        artifact_bytes: m["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["size_bytes"].as_u64().unwrap())
            .sum(),
        compress_secs: d("compress"),
        verify_secs: d("verify"),
    };
    let _ = std::fs::remove_dir_all(backups);
    run
}

/// Medians of the rounds of one contender.
#[derive(Default)]
struct Rounds {
    secs: Vec<f64>,
    hwm_mib: Vec<f64>,
    bytes: Vec<f64>,
    compress: Vec<f64>,
    verify: Vec<f64>,
}

impl Rounds {
    fn push_sidecar(&mut self, r: SidecarRun) {
        self.secs.push(r.timed.secs);
        self.hwm_mib.push(r.timed.hwm_kib as f64 / 1024.0);
        self.bytes.push(r.artifact_bytes as f64);
        self.compress.push(r.compress_secs);
        self.verify.push(r.verify_secs);
    }

    fn line(&mut self, name: &str, mib: f64) -> String {
        let secs = median(&self.secs);
        let mut s = format!(
            "{name}: median {secs:.1} s ({:.0} MiB/s of table)",
            mib / secs
        );
        if !self.hwm_mib.is_empty() {
            s += &format!(", peak RSS {:.1} MiB", median(&self.hwm_mib));
        }
        if !self.bytes.is_empty() {
            s += &format!(", artifact {:.0} MiB", median(&self.bytes) / 1048576.0);
        }
        if !self.compress.is_empty() {
            s += &format!(
                ", phases: dump+compress {:.1} s, verify {:.1} s",
                median(&self.compress),
                median(&self.verify)
            );
        }
        s
    }

    fn median_secs(&mut self) -> f64 {
        median(&self.secs)
    }
}

/// Entry point of `bench dumps`.
pub fn run(o: DumpsOpts) {
    std::fs::create_dir_all(&o.dir).unwrap();
    println!(
        "\n## dumps: the sidecar's dump pipeline beside the dump tools alone ({} rounds, host {} cores, load {})",
        o.rounds,
        super::cores(),
        loadavg()
    );
    match postgres() {
        Some(pg) => postgres_rounds(&o, &pg),
        None => println!("SKIPPED postgres: TEST_POSTGRES_URL is not set"),
    }
    match maria() {
        Some(m) => mysql_rounds(&o, &m),
        None => println!("SKIPPED mysql: TEST_MARIADB_URL is not set"),
    }
    let _ = std::fs::remove_dir_all(&o.dir);
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The baseline sidecar build, when `BENCH_BASELINE_SIDECAR` names one.
fn baseline_sidecar() -> Option<PathBuf> {
    std::env::var_os("BENCH_BASELINE_SIDECAR").map(PathBuf::from)
}

fn postgres_rounds(o: &DumpsOpts, pg: &Pg) {
    let (_guard, db) = match std::env::var("BENCH_POSTGRES_DB") {
        Ok(name) if !name.is_empty() => (None, name),
        _ => {
            let db = pg.create_db("bench_dumps");
            let name = db.name.clone();
            (Some(db), name)
        }
    };
    // The tracker creates its schema; a filled database already has it
    // (and loading millions of rows would outlast the tracker's start-up).
    let has_table: String = pg.scalar(&db, "SELECT to_regclass('torrents') IS NOT NULL");
    if has_table.trim() != "t" {
        drop(start_postgres_tracker(
            &o.dir.join("pg-schema"),
            pg,
            &db,
            "reject",
        ));
    }
    let mib = super::postgres::grow_table(pg, &db, o.size_mib);
    let pg_cmd = |args: &[&str]| {
        let mut c = Command::new("pg_dump");
        c.arg(format!("--host={}", pg.host))
            .arg(format!("--port={}", pg.port))
            .arg(format!("--username={}", pg.user))
            .arg(format!("--dbname={db}"))
            .arg("--no-password")
            .args(args)
            .env("PGPASSWORD", &pg.password)
            .stdin(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let backups = o.dir.join("pg-backups");
    let mut env = vec![
        ("BACKUP_DIR".to_owned(), backups.display().to_string()),
        ("BACKUP_SQLITE_ENABLED".to_owned(), "false".to_owned()),
        ("BACKUP_MYSQL_ENABLED".to_owned(), "false".to_owned()),
        ("BACKUP_POSTGRES_ENABLED".to_owned(), "true".to_owned()),
    ];
    env.extend(pg.sidecar_env(&db));
    if let Ok(n) = std::env::var("BACKUP_ZSTD_WORKERS") {
        env.push(("BACKUP_ZSTD_WORKERS".to_owned(), n));
    }
    let fc_file = o.dir.join("pg_dump-Fc.dump");
    let log = o.dir.join("sidecar-pg.log");
    let (mut alone, mut fc, mut sidecar, mut base, mut zstd) = Default::default();
    let (alone, fc, sidecar, base, zstd): (
        &mut Rounds,
        &mut Rounds,
        &mut Rounds,
        &mut Rounds,
        &mut Rounds,
    ) = (&mut alone, &mut fc, &mut sidecar, &mut base, &mut zstd);
    for round in 1..=o.rounds {
        let mut c = pg_cmd(&["--format=custom", "--compress=0"]);
        c.stdout(std::fs::File::create("/dev/null").unwrap());
        let t = timed(c, "pg_dump to /dev/null");
        alone.secs.push(t.secs);
        zstd.secs.push(dump_into_zstd(
            pg_cmd(&["--format=custom", "--compress=0"]),
            "pg_dump | zstd",
        ));
        let mut c = pg_cmd(&["-Fc", "-f"]);
        c.arg(&fc_file).stdout(Stdio::null());
        let t = timed(c, "pg_dump -Fc to a file");
        fc.secs.push(t.secs);
        fc.bytes
            .push(std::fs::metadata(&fc_file).map(|m| m.len()).unwrap_or(0) as f64);
        let _ = std::fs::remove_file(&fc_file);
        sidecar.push_sidecar(sidecar_once(
            &bin("maintenance-sidecar"),
            &env,
            &backups,
            &log,
        ));
        if let Some(b) = baseline_sidecar() {
            base.push_sidecar(sidecar_once(&b, &env, &backups, &log));
        }
        println!(
            "round {round}: pg_dump alone {:.1} s, pg_dump | zstd -T0 -3 {:.1} s, pg_dump -Fc {:.1} s, sidecar {:.1} s{}",
            alone.secs[round - 1],
            zstd.secs[round - 1],
            fc.secs[round - 1],
            sidecar.secs[round - 1],
            base.secs
                .get(round - 1)
                .map(|s| format!(", baseline sidecar {s:.1} s"))
                .unwrap_or_default()
        );
    }
    println!(
        "{}",
        alone.line("pg_dump --format=custom --compress=0 > /dev/null", mib)
    );
    println!(
        "{}",
        zstd.line(
            "pg_dump --format=custom --compress=0 | zstd -T0 -3 > /dev/null",
            mib
        )
    );
    println!("{}", fc.line("pg_dump -Fc -f file", mib));
    println!("{}", sidecar.line("maintenance-sidecar once", mib));
    let has_base = !base.secs.is_empty();
    if has_base {
        println!("{}", base.line("baseline maintenance-sidecar once", mib));
    }
    let (a, f, s) = (alone.median_secs(), fc.median_secs(), sidecar.median_secs());
    let z = zstd.median_secs();
    println!(
        "RESULT dumps postgres {mib:.0} MiB: sidecar {s:.1} s = {:.2}x pg_dump -Fc to a file ({f:.1} s; goal >= 0.9x: {}), {:.2}x the dump alone to /dev/null ({a:.1} s), {:.2}x the dump into zstd -T0 -3 alone ({z:.1} s){}",
        f / s,
        if f / s >= 0.9 { "met" } else { "NOT met" },
        a / s,
        z / s,
        if has_base {
            format!("; baseline sidecar {:.1} s", base.median_secs())
        } else {
            String::new()
        }
    );
}

fn mysql_rounds(o: &DumpsOpts, m: &Maria) {
    let db = m.create_db("bench_dumps");
    drop(start_mysql_tracker(
        &o.dir.join("my-schema"),
        m,
        &db.name,
        "reject",
    ));
    let mib = (o.size_mib / 4).max(16);
    // ~100 bytes a row with the index.
    let rows = (mib << 20) / 100;
    let t = Instant::now();
    // `seq_1_to_N` is MariaDB's sequence engine, resolved in the current
    // database.
    m.sql(&format!(
        "USE `{}`; INSERT INTO torrents (info_hash, completed) \
         SELECT LPAD(HEX(seq), 40, '0'), seq % 1000 FROM seq_1_to_{rows}",
        db.name
    ));
    println!(
        "# mysql torrents: {rows} rows filled in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let dump = ["mariadb-dump", "mysqldump"]
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok())
        .expect("mariadb-dump or mysqldump on PATH");
    let backups = o.dir.join("my-backups");
    let mut env = vec![
        ("BACKUP_DIR".to_owned(), backups.display().to_string()),
        ("BACKUP_SQLITE_ENABLED".to_owned(), "false".to_owned()),
        ("BACKUP_MYSQL_ENABLED".to_owned(), "true".to_owned()),
    ];
    env.extend(m.sidecar_env(&db.name));
    let log = o.dir.join("sidecar-my.log");
    let (mut alone, mut sidecar) = (Rounds::default(), Rounds::default());
    for round in 1..=o.rounds {
        let mut c = Command::new(dump);
        c.arg(format!("--host={}", m.host))
            .arg(format!("--port={}", m.port))
            .arg(format!("--user={}", m.user))
            .args(["--single-transaction", "--quick"])
            .arg(&db.name)
            .env("MYSQL_PWD", &m.password)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create("/dev/null").unwrap())
            .stderr(Stdio::null());
        alone.secs.push(timed(c, "mariadb-dump to /dev/null").secs);
        sidecar.push_sidecar(sidecar_once(
            &bin("maintenance-sidecar"),
            &env,
            &backups,
            &log,
        ));
        println!(
            "round {round}: {dump} alone {:.1} s, sidecar {:.1} s",
            alone.secs[round - 1],
            sidecar.secs[round - 1]
        );
    }
    println!("{}", alone.line(&format!("{dump} > /dev/null"), mib as f64));
    println!("{}", sidecar.line("maintenance-sidecar once", mib as f64));
    let (a, s) = (alone.median_secs(), sidecar.median_secs());
    println!(
        "RESULT dumps mysql ~{mib} MiB: sidecar {s:.1} s = {:.2}x the dump alone to /dev/null ({a:.1} s)",
        a / s
    );
}
