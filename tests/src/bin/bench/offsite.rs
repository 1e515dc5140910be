//! `bench offsite`: pushing a multi-GiB encrypted backup to a real
//! S3-compatible server, the sidecar beside `rclone copy` of the same
//! artifact to the same server, in one run.
//!
//! ```text
//! bench offsite [--size-mib 2048] [--rounds 3] [--dir /var/tmp/offsite-bench]
//! ```
//!
//! The database holds `--size-mib` MiB of random blobs, so its compressed
//! and age-encrypted artifact is as large as the database. Every round
//! starts a fresh server (moto keeps objects in memory), then runs, one
//! after the other (the sidecar's run makes the artifact, so both uploads
//! read it from the page cache):
//!
//! - `maintenance-sidecar once` with an age recipient and `BACKUP_REMOTE`:
//!   its `upload finished` log line gives the bytes and the seconds of the
//!   upload alone (multipart, retries included), and its peak RSS (for the
//!   whole run: snapshot, compress, encrypt, verify, upload) comes from
//!   `/usr/bin/time`;
//! - `rclone copy` of the artifact that run published, to another prefix of
//!   the same bucket, with rclone's defaults (it hashes the file before a
//!   multipart upload, as the sidecar has hashed it while writing it).
//!
//! Needs moto (`scripts/install-s3-test-server.sh`), `rclone` and
//! `/usr/bin/time`. The work folder is deleted at the end of a complete
//! run; an interrupted run's database is reused by the next one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use maintenance_e2e::s3::S3Server;
use maintenance_e2e::*;

use super::{median, SizeRoundsDir};

fn parse(args: &[String]) -> SizeRoundsDir {
    SizeRoundsDir {
        size_mib: 2048,
        rounds: 3,
        dir: PathBuf::from("/var/tmp/offsite-bench"),
    }
    .parse("offsite", args)
}

/// One upload's figures.
struct Upload {
    bytes: u64,
    secs: f64,
    peak_rss_mib: f64,
}

impl Upload {
    fn mib_per_sec(&self) -> f64 {
        self.bytes as f64 / 1_048_576.0 / self.secs
    }
}

/// Maximum resident set size in MiB that `/usr/bin/time -f %M -o file`
/// wrote.
fn time_rss_mib(file: &Path) -> f64 {
    let text = std::fs::read_to_string(file).expect("read /usr/bin/time output");
    let kib: f64 = text
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .next_back()
        .unwrap_or_else(|| panic!("no RSS figure in {text:?}"));
    kib / 1024.0
}

/// Runs `maintenance-sidecar once` with encryption and the remote; returns
/// the upload's figures and the local artifact it published.
fn sidecar_round(
    work: &Path,
    db: &Path,
    recipient: &str,
    server: &S3Server,
    round: usize,
) -> (Upload, PathBuf) {
    let backups = work.join(format!("backups-{round}"));
    let rss = work.join(format!("sidecar-rss-{round}"));
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-f").arg("%M").arg("-o").arg(&rss);
    cmd.arg(bin("maintenance-sidecar")).arg("once");
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LOG_FORMAT", "json")
        .env("BACKUP_DIR", &backups)
        .env("SQLITE_DATABASE_PATH", db)
        .env("BACKUP_MYSQL_ENABLED", "false")
        .env("BACKUP_AGE_RECIPIENTS", recipient);
    for (k, v) in server.sidecar_env("sidecar") {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run maintenance-sidecar once");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sidecar once failed:\n{log}");
    let finished = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "upload finished")
        .unwrap_or_else(|| panic!("no 'upload finished' line in the sidecar's log:\n{log}"));
    let fields = &finished;
    let upload = Upload {
        bytes: fields["bytes"].as_u64().expect("bytes"),
        secs: fields["secs"].as_f64().expect("secs"),
        peak_rss_mib: time_rss_mib(&rss),
    };
    let folder = published(&backups)
        .pop()
        .expect("a published backup folder");
    let manifest = manifest(&folder);
    let artifact = folder.join(
        manifest["artifacts"][0]["path"]
            .as_str()
            .expect("artifact path"),
    );
    (upload, artifact)
}

/// `rclone copy` of `artifact` to `<bucket>/rclone-<round>/` on `server`;
/// the credentials go through rclone's environment, never its argv.
fn rclone_round(work: &Path, artifact: &Path, server: &S3Server, round: usize) -> Upload {
    let rss = work.join(format!("rclone-rss-{round}"));
    let started = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss)
        .arg("rclone")
        .arg("copy")
        .arg(artifact)
        .arg(format!("bench:{}/rclone-{round}/", server.bucket()))
        // rclone's S3 backend refuses a custom CA bundle on a plain-HTTP
        // endpoint; the loopback server needs none.
        .env_remove("AWS_CA_BUNDLE")
        .env("RCLONE_CONFIG", work.join("rclone.conf"))
        .env("RCLONE_CONFIG_BENCH_TYPE", "s3")
        .env("RCLONE_CONFIG_BENCH_PROVIDER", "Other")
        .env("RCLONE_CONFIG_BENCH_ENDPOINT", &server.endpoint)
        .env("RCLONE_CONFIG_BENCH_REGION", "us-east-1")
        .env("RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE", "true")
        .env("RCLONE_CONFIG_BENCH_ACCESS_KEY_ID", &server.access_key_id)
        .env(
            "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY",
            &server.secret_access_key,
        )
        .output()
        .expect("run rclone (Debian package rclone)");
    let secs = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "rclone copy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Upload {
        bytes: std::fs::metadata(artifact).unwrap().len(),
        secs,
        peak_rss_mib: time_rss_mib(&rss),
    }
}

/// Entry point of `bench offsite`.
pub fn run(args: &[String]) {
    let o = parse(args);
    std::fs::create_dir_all(&o.dir).unwrap();
    std::fs::write(o.dir.join("rclone.conf"), "").unwrap();
    // A database of the asked size left by an interrupted run is reused.
    let db = o.dir.join(format!("tracker-{}m.db", o.size_mib));
    if !db.exists() {
        let t = Instant::now();
        make_tracker_sqlite(&db, &[(info_hash(1, 1), 3)], o.size_mib << 20);
        println!(
            "# database of {} MiB random blobs generated in {:.1} s",
            o.size_mib,
            t.elapsed().as_secs_f64()
        );
    }
    let identity = o.dir.join("identity.txt");
    let _ = std::fs::remove_file(&identity);
    let out = Command::new(bin("maintenance-sidecar"))
        .args(["keygen", "--out"])
        .arg(&identity)
        .output()
        .expect("maintenance-sidecar keygen");
    assert!(
        out.status.success(),
        "keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recipient = String::from_utf8_lossy(&out.stdout).trim().to_owned();

    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..o.rounds {
        let Some(server) = S3Server::start(&o.dir, "offsite-bench") else {
            println!("SKIPPED: bench offsite needs moto (scripts/install-s3-test-server.sh)");
            return;
        };
        let (sidecar, artifact) = sidecar_round(&o.dir, &db, &recipient, &server, round);
        let rclone = rclone_round(&o.dir, &artifact, &server, round);
        println!(
            "round {round}: sidecar {:.0} MiB in {:.2} s = {:.1} MiB/s, peak RSS {:.1} MiB | rclone {:.0} MiB in {:.2} s = {:.1} MiB/s, peak RSS {:.1} MiB",
            sidecar.bytes as f64 / 1_048_576.0,
            sidecar.secs,
            sidecar.mib_per_sec(),
            sidecar.peak_rss_mib,
            rclone.bytes as f64 / 1_048_576.0,
            rclone.secs,
            rclone.mib_per_sec(),
            rclone.peak_rss_mib,
        );
        ours.push(sidecar);
        theirs.push(rclone);
        let _ = std::fs::remove_dir_all(o.dir.join(format!("backups-{round}")));
    }
    let rates = |v: &[Upload]| v.iter().map(Upload::mib_per_sec).collect::<Vec<_>>();
    let rss = |v: &[Upload]| v.iter().map(|u| u.peak_rss_mib).collect::<Vec<_>>();
    let ratios: Vec<f64> = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| a.mib_per_sec() / b.mib_per_sec())
        .collect();
    let ratio = median(&mut ratios.clone());
    let rss_max = rss(&ours).into_iter().fold(0.0, f64::max);
    println!(
        "RESULT offsite: sidecar upload median {:.1} MiB/s, rclone copy median {:.1} MiB/s, \
         throughput ratio median {ratio:.3} (goal >= 0.8: {}); sidecar peak RSS max {rss_max:.1} MiB \
         (goal <= 64: {}), rclone peak RSS median {:.1} MiB",
        median(&mut rates(&ours)),
        median(&mut rates(&theirs)),
        if ratio >= 0.8 { "met" } else { "missed" },
        if rss_max <= 64.0 { "met" } else { "missed" },
        median(&mut rss(&theirs)),
    );
    let _ = std::fs::remove_dir_all(&o.dir);
}
