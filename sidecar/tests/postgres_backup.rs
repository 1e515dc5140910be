//! PostgreSQL engine against the real throwaway cluster
//! (`TEST_POSTGRES_URL`): round trip into a new database, the password
//! never on argv, a second restore into the same database refused while
//! the first runs, dumps that fail or die midway publish nothing, a wrong
//! password fails with a clear error.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn seed(pg: &Pg, rows: u32) -> PgDb {
    let db = pg.create_db("sidecar");
    pg.sql_in(
        &db.name,
        &format!(
            "CREATE TABLE torrents (id SERIAL PRIMARY KEY, info_hash VARCHAR(40) NOT NULL UNIQUE, completed INTEGER NOT NULL);
             INSERT INTO torrents (info_hash, completed)
             SELECT lpad(to_hex(g), 40, '0'), g * 3 FROM generate_series(0, {}) g",
            rows - 1
        ),
    );
    db
}

fn rows(pg: &Pg, db: &str) -> String {
    pg.sql_in(
        db,
        "SELECT info_hash, completed FROM torrents ORDER BY info_hash",
    )
}

fn config(dir: &Path, pg: &Pg, db: &str, extra: &str) -> PathBuf {
    engine_config(dir, &postgres_toml(pg, db), extra)
}

#[test]
fn postgres_backup_restore_into_new_database_gives_same_rows() {
    let Some(pg) = postgres() else { return };
    let src = seed(&pg, 3000);
    let target = unique_db("sidecar_dst");
    let dir = tempfile::tempdir().unwrap();
    // The real pg_dump behind a wrapper that records its argv and whether
    // the password arrived in the environment.
    let seen = dir.path().join("seen");
    let wrapper = script(
        dir.path(),
        "dump.sh",
        &format!(
            "echo \"argv: $*\" > {0}\necho \"pgpassword: ${{PGPASSWORD:+set}}\" >> {0}\nexec pg_dump \"$@\"",
            seen.display()
        ),
    );
    let cfg = config(
        dir.path(),
        &pg,
        &src.name,
        &format!("dump_command = \"{}\"\n", wrapper.display()),
    );

    let out = run(sidecar(Some(&cfg))
        .env("POSTGRES_PASSWORD", &pg.password)
        .arg("once"));
    assert!(out.status.success());
    let seen = std::fs::read_to_string(&seen).unwrap();
    assert!(seen.contains("--snapshot="), "{seen}");
    assert!(seen.contains("--format=custom"), "{seen}");
    assert!(seen.contains("pgpassword: set"), "{seen}");
    assert!(!seen.contains(&pg.password), "password on argv: {seen}");
    let backups = published(&dir.path().join("backups"));
    assert_eq!(backups.len(), 1);
    assert!(backups[0]
        .join(format!("postgres-{}.dump.zst", src.name))
        .is_file());

    let out = run(sidecar(Some(&cfg))
        .env("POSTGRES_PASSWORD", &pg.password)
        .args(["verify", "latest"]));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("pg_restore --list"));

    let out = run(sidecar(Some(&cfg))
        .env("POSTGRES_PASSWORD", &pg.password)
        .args(["restore", "latest", "--database", &target]));
    let _guard = PgDb {
        pg: pg.clone(),
        name: target.clone(),
    };
    assert!(out.status.success());
    assert_eq!(rows(&pg, &target), rows(&pg, &src.name));
    assert_eq!(rows(&pg, &target).lines().count(), 3000);

    // A second restore into the now non-empty database is refused...
    let out = run(sidecar(Some(&cfg))
        .env("POSTGRES_PASSWORD", &pg.password)
        .args(["restore", "latest", "--database", &target]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    // ...and with --force replaces what is there.
    pg.sql_in(&target, "DELETE FROM torrents WHERE completed > 30");
    let out = run(sidecar(Some(&cfg))
        .env("POSTGRES_PASSWORD", &pg.password)
        .args(["restore", "latest", "--database", &target, "--force"]));
    assert!(out.status.success());
    assert_eq!(rows(&pg, &target).lines().count(), 3000);
}

#[test]
fn a_second_restore_into_the_same_database_is_refused_while_the_first_runs() {
    let Some(pg) = postgres() else { return };
    let src = seed(&pg, 3000);
    let target = unique_db("sidecar_race");
    let dir = tempfile::tempdir().unwrap();
    let (reached, gate) = (dir.path().join("reached"), dir.path().join("gate"));
    // The real pg_restore, waiting at the gate first.
    let client = script(
        dir.path(),
        "pg_restore.sh",
        &gate_script_body("pg_restore", &format!("--dbname={target}"), &reached, &gate),
    );
    let cfg = config(
        dir.path(),
        &pg,
        &src.name,
        &format!("client_command = \"{}\"\n", client.display()),
    );
    assert!(run(sidecar(Some(&cfg))
        .env("POSTGRES_PASSWORD", &pg.password)
        .arg("once"))
    .status
    .success());
    let restore = || {
        let mut c = sidecar(Some(&cfg));
        c.env("POSTGRES_PASSWORD", &pg.password)
            .args(["restore", "latest", "--database", &target]);
        c
    };
    let (a, b) = gated_restores(&mut restore(), &mut restore(), &reached, &gate);
    let _guard = PgDb {
        pg: pg.clone(),
        name: target.clone(),
    };
    assert!(a.status.success(), "{}", text(&a));
    let log = text(&b);
    assert_eq!(b.status.code(), Some(1), "both restores ran: {log}");
    assert!(
        log.contains(&format!("another restore into database {target} on"))
            && log.contains("advisory lock"),
        "{log}"
    );
    assert!(
        !log.contains("already has"),
        "checked without the lock: {log}"
    );
    assert_eq!(rows(&pg, &target), rows(&pg, &src.name));
    // The lock ended with the first restore.
    let key = maintenance_sidecar::engine::db_lock::postgres_lock_key(&target);
    let free = pg.sql_in(
        "postgres",
        &format!("SELECT pg_try_advisory_lock({key}), pg_advisory_unlock({key})"),
    );
    assert_eq!(free.trim(), "t|t", "the advisory lock outlived the restore");
}

#[test]
fn verify_notices_a_truncated_archive() {
    let Some(pg) = postgres() else { return };
    let src = seed(&pg, 20000);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &pg, &src.name, "");
    let out = run(sidecar(Some(&cfg))
        .env("POSTGRES_PASSWORD", &pg.password)
        .arg("once"));
    assert!(out.status.success());
    let backup = &published(&dir.path().join("backups"))[0];
    let artifact = backup.join(format!("postgres-{}.dump.zst", src.name));
    // Re-compress the first 16 KiB of the archive: a valid zstd file whose
    // TOC is intact but whose data ends early.
    let raw = zstd::decode_all(std::fs::File::open(&artifact).unwrap()).unwrap();
    assert!(raw.len() > 65536, "archive too small: {}", raw.len());
    let cut = zstd::encode_all(&raw[..16384], 3).unwrap();
    let bad = dir.path().join("truncated.dump.zst");
    std::fs::write(&bad, cut).unwrap();
    let err = maintenance_sidecar::engine::check_artifact("postgres", &bad, None).unwrap_err();
    assert!(format!("{err:#}").contains("pg_restore"), "{err:#}");
    maintenance_sidecar::engine::check_artifact("postgres", &artifact, None).unwrap();
}

fn failing_dump(body: &str) {
    let Some(pg) = postgres() else { return };
    let src = seed(&pg, 20000);
    let dir = tempfile::tempdir().unwrap();
    let wrapper = script(dir.path(), "dump.sh", body);
    let cfg = config(
        dir.path(),
        &pg,
        &src.name,
        &format!("dump_command = \"{}\"\n", wrapper.display()),
    );
    assert_dump_failure(
        sidecar(Some(&cfg))
            .env("POSTGRES_PASSWORD", &pg.password)
            .arg("once"),
        &dir.path().join("backups"),
        "postgres dump",
    );
}

#[test]
fn dump_that_exits_non_zero_after_output_publishes_nothing() {
    failing_dump("pg_dump \"$@\"\nexit 3");
}

#[test]
fn dump_killed_midway_publishes_nothing() {
    failing_dump("pg_dump \"$@\" | head -c 4000\nkill -KILL $$");
}

#[test]
fn dump_writing_an_error_to_stderr_publishes_nothing() {
    failing_dump(
        "pg_dump \"$@\"\necho 'pg_dump: error: Dumping the contents of table \"torrents\" failed' >&2",
    );
}

#[test]
fn wrong_password_fails_cleanly() {
    let Some(pg) = postgres() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &pg, "postgres", "");
    let out = run(sidecar(Some(&cfg))
        .env("POSTGRES_PASSWORD", "definitely-wrong")
        .arg("once"));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("password authentication failed"),
        "{stderr}"
    );
    assert!(stderr.contains("cannot connect to PostgreSQL"), "{stderr}");
    assert!(
        !stderr.contains("definitely-wrong"),
        "password leaked into logs"
    );
    assert_nothing_published(&dir.path().join("backups"));
}
