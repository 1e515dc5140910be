//! MySQL/MariaDB engine against the real throwaway server
//! (`TEST_MARIADB_URL`): round trip into a new database, a second restore
//! into the same database refused while the first runs, and dumps that die
//! midway publish nothing.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn seed(m: &Maria, db: &str, rows: u32) {
    m.sql(&format!("CREATE DATABASE `{db}`"));
    m.sql(&format!(
        "CREATE TABLE `{db}`.torrents (info_hash CHAR(40) PRIMARY KEY, completed INT NOT NULL)"
    ));
    let values: Vec<String> = (0..rows)
        .map(|i| format!("('{i:040x}', {})", i * 3))
        .collect();
    for chunk in values.chunks(500) {
        m.sql(&format!(
            "INSERT INTO `{db}`.torrents VALUES {}",
            chunk.join(",")
        ));
    }
}

fn rows(m: &Maria, db: &str) -> String {
    m.sql(&format!(
        "SELECT info_hash, completed FROM `{db}`.torrents ORDER BY info_hash"
    ))
}

fn config(dir: &Path, m: &Maria, db: &str, extra: &str) -> PathBuf {
    engine_config(dir, &maria_toml(m, db), extra)
}

#[test]
fn mariadb_backup_restore_into_new_database_gives_same_rows() {
    let Some(m) = maria() else { return };
    let db = unique_db("sidecar_src");
    let target = unique_db("sidecar_dst");
    seed(&m, &db, 3000);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &m, &db, "");

    let out = run(sidecar(Some(&cfg))
        .env("MYSQL_PASSWORD", &m.password)
        .arg("once"));
    assert!(out.status.success());
    // The password never reaches argv: the dump ran with MYSQL_PWD.
    let backups = published(&dir.path().join("backups"));
    assert_eq!(backups.len(), 1);
    let dump = backups[0].join(format!("mysql-{db}.sql.zst"));
    assert!(dump.is_file());

    let out = run(sidecar(Some(&cfg))
        .env("MYSQL_PASSWORD", &m.password)
        .args(["verify", "latest"]));
    assert!(out.status.success());

    let out = run(sidecar(Some(&cfg))
        .env("MYSQL_PASSWORD", &m.password)
        .args(["restore", "latest", "--database", &target]));
    assert!(out.status.success());
    assert_eq!(rows(&m, &target), rows(&m, &db));
    assert_eq!(rows(&m, &target).lines().count(), 3000);

    // A second restore into the now non-empty database is refused.
    let out = run(sidecar(Some(&cfg))
        .env("MYSQL_PASSWORD", &m.password)
        .args(["restore", "latest", "--database", &target]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));

    m.sql(&format!("DROP DATABASE `{db}`"));
    m.sql(&format!("DROP DATABASE `{target}`"));
}

#[test]
fn a_second_restore_into_the_same_database_is_refused_while_the_first_runs() {
    let Some(m) = maria() else { return };
    let db = unique_db("sidecar_src");
    let target = unique_db("sidecar_race");
    seed(&m, &db, 3000);
    let dir = tempfile::tempdir().unwrap();
    let (reached, gate) = (dir.path().join("reached"), dir.path().join("gate"));
    // The real client; its import into the target waits at the gate.
    let client = script(
        dir.path(),
        "client.sh",
        &gate_script_body("mariadb", &target, &reached, &gate),
    );
    let cfg = config(
        dir.path(),
        &m,
        &db,
        &format!("client_command = \"{}\"\n", client.display()),
    );
    assert!(run(sidecar(Some(&cfg))
        .env("MYSQL_PASSWORD", &m.password)
        .arg("once"))
    .status
    .success());
    let restore = || {
        let mut c = sidecar(Some(&cfg));
        c.env("MYSQL_PASSWORD", &m.password)
            .args(["restore", "latest", "--database", &target]);
        c
    };
    let (a, b) = gated_restores(&mut restore(), &mut restore(), &reached, &gate);
    assert!(a.status.success(), "{}", text(&a));
    let log = text(&b);
    assert_eq!(b.status.code(), Some(1), "both restores ran: {log}");
    assert!(
        log.contains(&format!("another restore into database {target} on"))
            && log.contains("IS_USED_LOCK"),
        "{log}"
    );
    assert!(
        !log.contains("already has"),
        "checked without the lock: {log}"
    );
    assert_eq!(rows(&m, &target), rows(&m, &db));
    // The lock ended with the first restore.
    let name = maintenance_sidecar::engine::db_lock::mysql_lock_name(&target);
    assert_eq!(m.sql(&format!("SELECT IS_FREE_LOCK('{name}')")).trim(), "1");

    m.sql(&format!("DROP DATABASE `{db}`"));
    m.sql(&format!("DROP DATABASE `{target}`"));
}

fn failing_dump(body: &str) {
    let Some(m) = maria() else { return };
    let db = unique_db("sidecar_fail");
    seed(&m, &db, 2000);
    let dir = tempfile::tempdir().unwrap();
    let wrapper = script(dir.path(), "dump.sh", body);
    let cfg = config(
        dir.path(),
        &m,
        &db,
        &format!("dump_command = \"{}\"\n", wrapper.display()),
    );
    let stderr = assert_dump_failure(
        sidecar(Some(&cfg))
            .env("MYSQL_PASSWORD", &m.password)
            .env("BACKUP_WEBHOOK_URL", "http://127.0.0.1:9/unreachable")
            .arg("once"),
        &dir.path().join("backups"),
        "mysql",
    );
    // The webhook being down is logged, not fatal to the reporting.
    assert!(stderr.contains("webhook"), "{stderr}");
    m.sql(&format!("DROP DATABASE `{db}`"));
}

#[test]
fn dump_that_exits_non_zero_after_output_publishes_nothing() {
    failing_dump("mariadb-dump \"$@\"\nexit 3");
}

#[test]
fn dump_killed_midway_publishes_nothing() {
    failing_dump("mariadb-dump \"$@\" | head -c 4000\nkill -KILL $$");
}

#[test]
fn dump_writing_an_error_to_stderr_publishes_nothing() {
    failing_dump("mariadb-dump \"$@\"\necho 'mariadb-dump: Error 2013: Lost connection to server during query' >&2");
}

#[test]
fn wrong_password_fails_cleanly() {
    let Some(m) = maria() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &m, "mysql", "");
    let out = run(sidecar(Some(&cfg))
        .env("MYSQL_PASSWORD", "definitely-wrong")
        .arg("once"));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Access denied"), "{stderr}");
    assert!(
        !stderr.contains("definitely-wrong"),
        "password leaked into logs"
    );
    assert_nothing_published(&dir.path().join("backups"));
}
