//! Encryption at rest and off-site copies, against a real S3-compatible
//! server on loopback (moto's server mode, with authentication on): the
//! encrypted round trip, the server killed mid-upload, wrong credentials
//! (not retried, said once), a missing bucket, a wrong identity, tampered
//! ciphertext, and remote retention.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::{assert_failed_with, bin, make_sqlite, names_in, run, sqlite_rows, text};
use maintenance_e2e::s3::S3Server;
use maintenance_e2e::set_env;

struct Setup {
    dir: tempfile::TempDir,
    db: PathBuf,
    backups: PathBuf,
    identity: PathBuf,
    public: String,
}

impl Setup {
    fn new(rows: u32) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("tracker.db");
        make_sqlite(&db, rows);
        let identity = dir.path().join("identity.txt");
        let out = run(Command::new(bin()).args(["keygen", "--out"]).arg(&identity));
        assert!(out.status.success());
        let public = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        assert!(public.starts_with("age1"), "{public}");
        Setup {
            backups: dir.path().join("backups"),
            db,
            identity,
            public,
            dir,
        }
    }

    fn env(&self, s3: &S3Server) -> Vec<(String, String)> {
        let mut env = vec![
            ("SQLITE_DATABASE_PATH".into(), self.db.display().to_string()),
            ("BACKUP_DIR".into(), self.backups.display().to_string()),
            ("BACKUP_MYSQL_ENABLED".into(), "false".into()),
            ("BACKUP_AGE_RECIPIENTS".into(), self.public.clone()),
        ];
        env.extend(s3.sidecar_env("tracker"));
        env
    }
}

fn sidecar(env: &[(String, String)], args: &[&str]) -> Output {
    let mut cmd = common::sidecar(None);
    cmd.envs(env.iter().map(|(k, v)| (k, v))).args(args);
    run(&mut cmd)
}

fn only_published(backups: &Path) -> PathBuf {
    let p = common::published(backups);
    assert_eq!(p.len(), 1, "{p:?}");
    p[0].clone()
}

#[test]
fn encrypted_backup_round_trips_through_s3() {
    let s = Setup::new(300);
    let Some(s3) = S3Server::start(s.dir.path(), "offsite") else {
        return;
    };
    let env = s.env(&s3);
    let out = sidecar(&env, &["once"]);
    assert!(out.status.success(), "{}", text(&out));
    let log = text(&out);
    assert!(log.contains("upload finished") && log.contains("outcome=\"success\""));
    for secret in [&s3.secret_access_key, &s3.access_key_id] {
        assert!(!log.contains(secret.as_str()), "a key leaked into the log");
    }

    // Local: encrypted artifact, the manifest records public keys only.
    let local = only_published(&s.backups);
    let manifest_text = std::fs::read_to_string(local.join("manifest.json")).unwrap();
    let m: serde_json::Value = serde_json::from_str(&manifest_text).unwrap();
    assert_eq!(m["encryption"]["scheme"], "age");
    assert_eq!(m["encryption"]["recipients"][0], s.public.as_str());
    let artifact = m["artifacts"][0]["path"].as_str().unwrap().to_owned();
    assert!(artifact.ends_with(".zst.age"), "{artifact}");
    let secret_key = std::fs::read_to_string(&s.identity).unwrap();
    let secret_line = secret_key.lines().last().unwrap();
    assert!(!manifest_text.contains(secret_line));
    assert!(!manifest_text.contains(&s3.secret_access_key));
    // No plaintext on disk: the artifact is not a zstd frame.
    let bytes = std::fs::read(local.join(&artifact)).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1"));

    // Local verify: ciphertext only without identity, content with it.
    let out = sidecar(&env, &["verify", "latest"]);
    assert!(out.status.success());
    assert!(text(&out).contains("content not checked"));
    let id = s.identity.display().to_string();
    let out = sidecar(&env, &["verify", "latest", "--identity", &id]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("integrity_check ok"));

    // Remote: listed complete and encrypted, verified by streaming hashes.
    let name = local.file_name().unwrap().to_string_lossy().into_owned();
    let out = sidecar(&env, &["list", "--remote"]);
    assert!(out.status.success());
    let listing = text(&out);
    assert!(
        listing.contains(&name) && listing.contains("complete, encrypted"),
        "{listing}"
    );
    let out = sidecar(&env, &["verify", "--remote", "latest"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = sidecar(&env, &["verify", "--remote", &name, "--identity", &id]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("integrity_check ok"));

    // Restore from the remote on another folder, with the local backups
    // gone: the same rows.
    std::fs::remove_dir_all(&s.backups).unwrap();
    let target = s.dir.path().join("elsewhere/restored.db");
    let to = target.display().to_string();
    let out = sidecar(&env, &["restore", "--remote", "latest", "--to", &to]);
    assert_failed_with(&out, "encrypted with age: restore needs the identity");
    assert!(!target.exists());
    let out = sidecar(
        &env,
        &[
            "restore",
            "--remote",
            "latest",
            "--to",
            &to,
            "--identity",
            &id,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(sqlite_rows(&target), sqlite_rows(&s.db));
    assert_eq!(sqlite_rows(&target).len(), 300);
}

#[test]
fn wrong_credentials_missing_bucket_wrong_identity_and_tampering_fail_clearly() {
    let s = Setup::new(50);
    let Some(s3) = S3Server::start(s.dir.path(), "offsite") else {
        return;
    };
    let env = s.env(&s3);

    // Wrong secret: the backup stays local, the upload fails with a hint.
    let mut bad = env.clone();
    set_env(&mut bad, "AWS_SECRET_ACCESS_KEY", "not-the-secret");
    let out = sidecar(&bad, &["once"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("off-site upload failed") && t.contains("check AWS_ACCESS_KEY_ID"),
        "{t}"
    );
    assert!(!t.contains("not-the-secret"), "the secret leaked: {t}");
    // A 403 is not retried, and its error is said once: in the `upload
    // finished` line, which `once` and `push` point to.
    for out in [&out, &sidecar(&bad, &["push", "latest"])] {
        let t = text(out);
        assert_eq!(out.status.code(), Some(1), "{t}");
        assert!(t.contains("not retried"), "{t}");
        assert!(!t.contains("retrying in"), "a 403 was retried: {t}");
        for said_once in ["SignatureDoesNotMatch", "check AWS_ACCESS_KEY_ID"] {
            assert_eq!(t.matches(said_once).count(), 1, "{said_once:?} in:\n{t}");
        }
        assert!(t.contains("its error is above"), "{t}");
    }
    let local = only_published(&s.backups);
    let out = sidecar(&env, &["verify", "latest"]);
    assert!(out.status.success(), "the local backup is intact");
    let out = sidecar(&bad, &["list", "--remote"]);
    assert_failed_with(&out, "refused the credentials");

    // Missing bucket.
    let mut nobucket = env.clone();
    set_env(&mut nobucket, "BACKUP_REMOTE", "s3://no-such-bucket/x");
    let out = sidecar(&nobucket, &["list", "--remote"]);
    assert_failed_with(&out, "bucket does not exist");

    // Plain HTTP only when allowed.
    let mut nohttp = env.clone();
    nohttp.retain(|(k, _)| k != "BACKUP_REMOTE_ALLOW_HTTP");
    let out = sidecar(&nohttp, &["list", "--remote"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("BACKUP_REMOTE_ALLOW_HTTP"),
        "{}",
        text(&out)
    );

    // Push the backup with good keys, then read it with a wrong identity.
    let out = sidecar(&env, &["push", "latest"]);
    assert!(out.status.success(), "{}", text(&out));
    let other = s.dir.path().join("other-identity.txt");
    assert!(
        run(Command::new(bin()).args(["keygen", "--out"]).arg(&other))
            .status
            .success()
    );
    let to = s.dir.path().join("r.db").display().to_string();
    let wrong = other.display().to_string();
    let out = sidecar(
        &env,
        &[
            "restore",
            "--remote",
            "latest",
            "--to",
            &to,
            "--identity",
            &wrong,
        ],
    );
    assert_failed_with(&out, "wrong identity");
    let out = sidecar(&env, &["verify", "latest", "--identity", &wrong]);
    assert_failed_with(&out, "wrong identity");

    // Tampered ciphertext on the remote: the hash check catches it.
    let name = local.file_name().unwrap().to_string_lossy().into_owned();
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(local.join("manifest.json")).unwrap())
            .unwrap();
    let artifact = m["artifacts"][0]["path"].as_str().unwrap().to_owned();
    let mut bytes = std::fs::read(local.join(&artifact)).unwrap();
    let middle = bytes.len() - 40;
    bytes[middle] ^= 0x55;
    let remote = remote_handle(&env);
    put(&remote, &name, &artifact, bytes.clone());
    let out = sidecar(&env, &["verify", "--remote", "latest"]);
    assert_failed_with(&out, "damaged");

    // ... and when the manifest is rewritten to match, age's
    // authentication still refuses the changed chunk.
    let mut m2 = m.clone();
    m2["artifacts"][0]["sha256"] = sha256_hex(&bytes).into();
    put(
        &remote,
        &name,
        "manifest.json",
        serde_json::to_vec_pretty(&m2).unwrap(),
    );
    let id = s.identity.display().to_string();
    let out = sidecar(
        &env,
        &["restore", "--remote", &name, "--to", &to, "--identity", &id],
    );
    assert_failed_with(&out, "modified or truncated");
    assert!(
        !Path::new(&to).exists(),
        "nothing restored from tampered data"
    );
}

fn remote_handle(env: &[(String, String)]) -> maintenance_sidecar::remote::Remote {
    let lookup = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let cfg = maintenance_sidecar::config::Config::from_sources(None, &lookup).unwrap();
    maintenance_sidecar::remote::Remote::required(&cfg.remote).unwrap()
}

fn put(remote: &maintenance_sidecar::remote::Remote, backup: &str, file: &str, data: Vec<u8>) {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(maintenance_sidecar::remote::ops::put_bytes(
            remote, backup, file, data,
        ))
        .unwrap();
}

fn sha256_hex(data: &[u8]) -> String {
    maintenance_sidecar::base::hashing::sha256_reader(data)
        .unwrap()
        .1
}

#[test]
fn server_killed_mid_upload_never_leaves_a_complete_remote_backup() {
    // ~16 MiB of random pages: incompressible, several 5 MiB parts.
    let s = Setup::new(10);
    let conn = rusqlite::Connection::open(&s.db).unwrap();
    conn.execute_batch(
        "CREATE TABLE pad(x BLOB);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 4000)
         INSERT INTO pad SELECT randomblob(4000) FROM c;
         PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .unwrap();
    drop(conn);
    let Some(mut s3) = S3Server::start(s.dir.path(), "offsite") else {
        return;
    };
    let mut env = s.env(&s3);
    set_env(&mut env, "BACKUP_REMOTE_PART_SIZE_MIB", "5");
    set_env(&mut env, "BACKUP_REMOTE_CONCURRENCY", "1");
    set_env(&mut env, "BACKUP_REMOTE_ATTEMPTS", "2");

    // 1. Killed and not back: the upload fails, the local backup stays.
    let log = s.dir.path().join("once.log");
    let mut child = common::sidecar(None)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .arg("once")
        .stdout(std::fs::File::create(s.dir.path().join("once.out")).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    assert!(
        maintenance_e2e::poll(Duration::from_secs(180), || s3
            .log_text()
            .contains("partNumber=")),
        "no part was uploaded:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    s3.kill();
    let status = child.wait().unwrap();
    let t = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(1), "{t}");
    assert!(
        t.contains("attempt 1 of 2") && t.contains("off-site upload failed"),
        "{t}"
    );
    assert!(t.contains("local backup") && t.contains("is intact"), "{t}");
    let out = sidecar(&env, &["verify", "latest"]);
    assert!(
        out.status.success(),
        "local backup intact after the failed upload"
    );
    // The manifest goes last, so the killed server never received it: no
    // complete backup ever existed remotely.
    let requests = s3.log_text();
    let put = |l: &&str| l.contains("\"PUT ");
    assert!(
        requests
            .lines()
            .filter(put)
            .any(|l| l.contains("partNumber=")),
        "no part upload in the server's request log:\n{requests}"
    );
    assert!(
        !requests
            .lines()
            .filter(put)
            .any(|l| l.contains("/manifest.json")),
        "the manifest was uploaded before the parts finished:\n{requests}"
    );

    // The server is back (empty, like a replaced node) and answers again.
    s3.restart();
    let out = sidecar(&env, &["list", "--remote"]);
    assert!(out.status.success(), "{}", text(&out));

    // 2. Killed and back while the sidecar retries: the retry succeeds.
    set_env(&mut env, "BACKUP_REMOTE_ATTEMPTS", "10");
    let log2 = s.dir.path().join("push.log");
    let mut child = common::sidecar(None)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["push", "latest"])
        .stdout(std::fs::File::create(s.dir.path().join("push.out")).unwrap())
        .stderr(std::fs::File::create(&log2).unwrap())
        .spawn()
        .unwrap();
    let before = s3.log_text().matches("partNumber=").count();
    assert!(maintenance_e2e::poll(Duration::from_secs(180), || {
        s3.log_text().matches("partNumber=").count() > before
    }));
    s3.restart();
    let status = child.wait().unwrap();
    let t = std::fs::read_to_string(&log2).unwrap();
    assert!(status.success(), "{t}");
    assert!(t.contains("retrying in"), "{t}");
    let out = sidecar(&env, &["list", "--remote"]);
    assert!(text(&out).contains("complete, encrypted"), "{}", text(&out));
    let out = sidecar(&env, &["verify", "--remote", "latest"]);
    assert!(out.status.success());
}

#[test]
fn remote_retention_keeps_the_newest_verified_and_sweeps_incomplete_uploads() {
    let s = Setup::new(20);
    let Some(s3) = S3Server::start(s.dir.path(), "offsite") else {
        return;
    };
    let mut env = s.env(&s3);
    set_env(&mut env, "BACKUP_KEEP_LAST", "10");
    set_env(&mut env, "BACKUP_RETENTION_DAYS", "30");
    for _ in 0..2 {
        let out = sidecar(&env, &["once"]);
        assert!(out.status.success(), "{}", text(&out));
        std::thread::sleep(Duration::from_millis(1100));
    }
    let mut names: Vec<String> = common::published(&s.backups)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let (older, newest_verified) = (names[0].clone(), names[1].clone());

    // A newer but unverified backup, pushed through the same upload path.
    let src = s.backups.join(&newest_verified);
    let unverified = format!("{newest_verified}-unverified");
    let dst = s.backups.join(&unverified);
    std::fs::create_dir(&dst).unwrap();
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("manifest.json")).unwrap()).unwrap();
    for a in m["artifacts"].as_array().unwrap() {
        let f = a["path"].as_str().unwrap();
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    let started: chrono::DateTime<chrono::Utc> = m["started_at"].as_str().unwrap().parse().unwrap();
    m["started_at"] = (started + chrono::Duration::seconds(1)).to_rfc3339().into();
    m["name"] = unverified.clone().into();
    m["verified"] = false.into();
    std::fs::write(dst.join("manifest.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    let out = sidecar(&env, &["push", &unverified]);
    assert!(out.status.success(), "{}", text(&out));

    // An upload that never finished: an artifact, no manifest.
    let remote = remote_handle(&env);
    put(
        &remote,
        "20200101T000000Z-crashed",
        "sqlite-tracker.db.zst.age",
        vec![1; 100],
    );
    let out = sidecar(&env, &["list", "--remote"]);
    let listing = text(&out);
    assert!(
        listing.contains("20200101T000000Z-crashed") && listing.contains("INCOMPLETE"),
        "{listing}"
    );
    // Asked for by name, it is read alone: incomplete, or not there.
    for (name, error) in [
        ("20200101T000000Z-crashed", "is incomplete (no manifest"),
        (
            "20200101T000000Z-none",
            "no \"20200101T000000Z-none\" backup on",
        ),
    ] {
        let out = sidecar(&env, &["verify", "--remote", name]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).contains(error), "{}", text(&out));
    }

    // Every age says "delete": only the newest verified one stays; the
    // incomplete one is kept within its grace period.
    set_env(&mut env, "BACKUP_KEEP_LAST", "0");
    set_env(&mut env, "BACKUP_RETENTION_DAYS", "0");
    let out = sidecar(&env, &["prune", "--remote", "--dry-run"]);
    assert!(out.status.success());
    let t = text(&out);
    assert!(
        t.contains(&format!("keep    {newest_verified} (newest verified)")),
        "{t}"
    );
    assert!(t.contains(&format!("would remove {older}")), "{t}");
    assert!(t.contains(&format!("would remove {unverified}")), "{t}");
    assert!(
        t.contains("20200101T000000Z-crashed (incomplete, within"),
        "{t}"
    );
    let out = sidecar(&env, &["list", "--remote"]);
    assert!(text(&out).contains(&older), "dry run removed nothing");

    set_env(&mut env, "BACKUP_REMOTE_INCOMPLETE_GRACE_HOURS", "0");
    let out = sidecar(&env, &["prune", "--remote"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = sidecar(&env, &["list", "--remote"]);
    let listing = text(&out);
    assert!(listing.contains(&newest_verified), "{listing}");
    for gone in [&older, &unverified, &"20200101T000000Z-crashed".to_owned()] {
        assert!(
            !listing.contains(gone.as_str()),
            "{gone} should be gone:\n{listing}"
        );
    }
    let out = sidecar(&env, &["verify", "--remote", "latest"]);
    assert!(out.status.success());
    assert!(text(&out).contains(&newest_verified));
}

#[test]
fn a_remote_drill_downloads_checks_reports_and_cleans_up() {
    let s = Setup::new(400);
    let Some(s3) = S3Server::start(s.dir.path(), "drill") else {
        return;
    };
    let env = s.env(&s3);
    let out = sidecar(&env, &["once"]);
    assert!(out.status.success(), "{}", text(&out));
    let name = only_published(&s.backups)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let id = s.identity.display().to_string();

    // The local backups are gone: the drill can only use the remote copy.
    std::fs::remove_dir_all(&s.backups).unwrap();
    let out = sidecar(&env, &["drill", "--remote", "latest"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("--identity"), "{}", text(&out));
    let out = sidecar(&env, &["drill", "--remote", "latest", "--identity", &id]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("integrity_check ok")
            && stdout.contains(&format!("drill of {name} (s3://drill/tracker")),
        "{stdout}"
    );
    assert_eq!(
        names_in(&s.backups),
        [".last-drill.json"],
        "the drill left its download or its restored copy behind"
    );
    let record = maintenance_sidecar::ops::drill::last(&s.backups).expect("drill record");
    assert_eq!(record.backup, name);
    assert!(record.download_secs > 0.0);
    assert!(record.total_secs >= record.download_secs + record.check_secs);
    assert!(record.restored_bytes > 0);
    let first = std::fs::read(s.backups.join(".last-drill.json")).unwrap();

    // A damaged remote copy fails the drill, leaves nothing and keeps the
    // last successful drill's record.
    let artifact = "sqlite-tracker.db.zst.age";
    put(
        &remote_handle(&env),
        &name,
        artifact,
        b"not the backup".to_vec(),
    );
    let out = sidecar(&env, &["drill", "--remote", &name, "--identity", &id]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("damaged"), "{}", text(&out));
    assert_eq!(names_in(&s.backups), [".last-drill.json"]);
    assert_eq!(
        std::fs::read(s.backups.join(".last-drill.json")).unwrap(),
        first
    );

    // A name the remote does not have: a clear error, nothing created.
    let out = sidecar(&env, &["drill", "--remote", "20200101T000000Z-once"]);
    assert_failed_with(&out, "list --remote");
    assert_eq!(names_in(&s.backups), [".last-drill.json"]);
}

/// The sidecar with `env` and `args`, killed (failing) after `limit`.
fn sidecar_within(env: &[(String, String)], args: &[&str], limit: Duration) -> (Output, Duration) {
    let mut cmd = common::sidecar(None);
    cmd.envs(env.iter().map(|(k, v)| (k, v))).args(args);
    common::run_within(&mut cmd, limit)
}

#[test]
fn a_frozen_endpoint_fails_by_the_deadline_and_a_refused_upload_is_said_once() {
    let s = Setup::new(50);
    let Some(s3) = S3Server::start(s.dir.path(), "offsite") else {
        return;
    };
    // object_store's own AWS_ALLOW_HTTP is enough for a plain http:// endpoint.
    let mut env = s.env(&s3);
    env.retain(|(k, _)| k != "BACKUP_REMOTE_ALLOW_HTTP");
    set_env(&mut env, "AWS_ALLOW_HTTP", "true");
    let out = sidecar(&env, &["once"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("outcome=\"success\""), "{}", text(&out));

    // A missing bucket: refused at once, not retried, said once.
    let mut nobucket = env.clone();
    set_env(&mut nobucket, "BACKUP_REMOTE", "s3://no-such-bucket/x");
    let (out, _) = sidecar_within(&nobucket, &["push", "latest"], Duration::from_secs(60));
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(log.contains("bucket does not exist"), "{log}");
    assert!(
        !log.contains("retrying in"),
        "a missing bucket was retried: {log}"
    );
    assert_eq!(
        log.matches("NoSuchBucket").count(),
        1,
        "the error should be said once: {log}"
    );
    assert_eq!(
        log.matches("the bucket does not exist").count(),
        1,
        "the hint should be said once: {log}"
    );

    // A frozen endpoint: the upload's deadline ends it with a clear error.
    set_env(&mut env, "BACKUP_REMOTE_UPLOAD_TIMEOUT_SECS", "3");
    s3.freeze();
    let (out, took) = sidecar_within(&env, &["push", "latest"], Duration::from_secs(90));
    s3.thaw();
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("did not finish within 3 s") && log.contains("The local backup stands"),
        "{log}"
    );
    assert!(took < Duration::from_secs(60), "the push took {took:?}");
    let out = sidecar(&env, &["verify", "latest"]);
    assert!(out.status.success(), "the local backup is intact");
}

/// Fills the database of `s` with ~16 MiB of random pages
/// (incompressible: several 5 MiB parts).
fn pad_database(s: &Setup) {
    let conn = rusqlite::Connection::open(&s.db).unwrap();
    conn.execute_batch(
        "CREATE TABLE pad(x BLOB);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 4000)
         INSERT INTO pad SELECT randomblob(4000) FROM c;
         PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .unwrap();
}

#[test]
fn prune_removes_the_staging_part_a_killed_upload_left_on_a_file_remote() {
    let s = Setup::new(10);
    pad_database(&s);
    let remote = s.dir.path().join("nas");
    let url = format!("file://{}", remote.display());
    let mut env = vec![
        (
            "SQLITE_DATABASE_PATH".to_owned(),
            s.db.display().to_string(),
        ),
        ("BACKUP_DIR".into(), s.backups.display().to_string()),
        ("BACKUP_MYSQL_ENABLED".into(), "false".into()),
        ("BACKUP_REMOTE_PART_SIZE_MIB".into(), "5".into()),
        ("BACKUP_REMOTE_CONCURRENCY".into(), "1".into()),
    ];
    let out = sidecar(&env, &["once"]);
    assert!(out.status.success(), "{}", text(&out));
    let name = only_published(&s.backups)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();

    // A push killed as soon as its staging file `<artifact>#1` exists.
    env.push(("BACKUP_REMOTE".into(), url));
    let staged = |dir: &Path| {
        std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().contains('#'))
            })
            .unwrap_or(false)
    };
    let folder = remote.join(&name);
    let mut child = common::sidecar(None)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["push", "latest"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while !staged(&folder) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the push ended before it could be killed mid-upload"
        );
        assert!(t.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_micros(200));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let out = sidecar(&env, &["prune", "--remote", "--dry-run"]);
    let log = text(&out);
    assert!(
        log.contains(&format!(
            "keep    {name} (incomplete, within the 24 h grace"
        )),
        "{log}"
    );
    // A later push completes the backup; the killed one's part stays until
    // the grace period has passed, then goes.
    let out = sidecar(&env, &["push", "latest"]);
    assert!(out.status.success(), "{}", text(&out));
    set_env(&mut env, "BACKUP_REMOTE_INCOMPLETE_GRACE_HOURS", "0");
    let out = sidecar(&env, &["prune", "--remote"]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains(&format!("(unfinished upload of {name}")),
        "{log}"
    );
    assert!(!staged(&folder), "{:?}", names_in(&folder));
    assert!(names_in(&folder).contains(&"manifest.json".to_owned()));
}
