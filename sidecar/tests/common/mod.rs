//! Helpers shared by the integration tests: the real binary, real SQLite
//! files, the throwaway MariaDB from `TEST_MARIADB_*` and PostgreSQL from
//! `TEST_POSTGRES_*`, and assertions on the backup folder.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rusqlite::Connection;

/// Path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_maintenance-sidecar")
}

/// Writes `dir/sidecar.toml`: backups in `dir/backups`, the SQLite engine
/// on `db`, and `extra` top-level lines (such as `keep_last = 10`, or a
/// `[remote]` table); returns its path.
pub fn sqlite_config(dir: &Path, db: &Path, extra: &str) -> PathBuf {
    let cfg = dir.join("sidecar.toml");
    std::fs::write(
        &cfg,
        format!(
            "backup_dir = \"{}\"\n{extra}\n[sqlite]\npath = \"{}\"\n",
            dir.join("backups").display(),
            db.display()
        ),
    )
    .unwrap();
    cfg
}

/// The sorted names in `dir` (none when it does not exist).
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A sidecar command with a clean environment (no inherited BACKUP_*,
/// MYSQL_* or MAINTENANCE_* variables) and the given config file.
pub fn sidecar(config: Option<&Path>) -> Command {
    let mut cmd = Command::new(bin());
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info");
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd
}

/// Runs a `once` whose dump fails: it must exit 1, name `engine` in
/// stderr and publish nothing in `backups`. Returns stderr.
pub fn assert_dump_failure(cmd: &mut Command, backups: &Path, engine: &str) -> String {
    let out = run(cmd);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed dump must fail the backup"
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.contains(engine), "{stderr}");
    assert_nothing_published(backups);
    stderr
}

/// A command's stdout followed by its stderr.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts that a command failed with exit code 1 and that its output
/// names `problem`.
pub fn assert_failed_with(out: &Output, problem: &str) {
    let text = text(out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(problem), "want {problem:?} in:\n{text}");
}

/// Runs `cmd`, printing its output for debugging, and returns it.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run maintenance-sidecar");
    eprintln!(
        "--- {:?}\nstatus: {}\nstdout:\n{}\nstderr:\n{}",
        cmd,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Creates a SQLite database in WAL mode with the tracker's `torrents`
/// table and `n` rows, checkpointed like a quiesced tracker leaves it.
pub fn make_sqlite(path: &Path, n: u32) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE torrents (info_hash TEXT PRIMARY KEY, completed INTEGER NOT NULL);",
    )
    .unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    for i in 0..n {
        tx.execute(
            "INSERT INTO torrents VALUES (?1, ?2)",
            rusqlite::params![format!("{i:040x}"), i * 7],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
}

/// All rows of `torrents`, ordered.
pub fn sqlite_rows(path: &Path) -> Vec<(String, i64)> {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT info_hash, completed FROM torrents ORDER BY info_hash")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// What a backup folder holds after a run, from the end-to-end harness.
#[allow(unused_imports)] // not every test binary inspects the backup folder
pub use maintenance_e2e::{assert_nothing_published, published, staging_dirs};

/// The throwaway MariaDB (`TEST_MARIADB_URL`), from the end-to-end harness.
#[allow(unused_imports)] // not every test binary talks to MariaDB
pub use maintenance_e2e::{maria, Maria};

/// A `[mysql]` TOML section for database `db` of `m` (password via env in tests).
pub fn maria_toml(m: &Maria, db: &str) -> String {
    format!(
        "[mysql]\nenabled = true\nhost = \"{}\"\nport = {}\nuser = \"{}\"\ndatabase = \"{db}\"\n",
        m.host, m.port, m.user
    )
}

/// The throwaway PostgreSQL (`TEST_POSTGRES_URL`), from the end-to-end harness.
#[allow(unused_imports)] // not every test binary talks to PostgreSQL
pub use maintenance_e2e::{postgres, Pg, PgDb};

/// A `[postgres]` TOML section for database `db` of `pg` (password via env in tests).
pub fn postgres_toml(pg: &Pg, db: &str) -> String {
    format!(
        "[postgres]\nenabled = true\nhost = \"{}\"\nport = {}\nuser = \"{}\"\ndatabase = \"{db}\"\n",
        pg.host, pg.port, pg.user
    )
}

/// Writes `dir/sidecar.toml`: backups into `dir/backups`, then the engine
/// `section` and `extra` lines.
pub fn engine_config(dir: &Path, section: &str, extra: &str) -> PathBuf {
    let cfg = dir.join("sidecar.toml");
    std::fs::write(
        &cfg,
        format!(
            "backup_dir = \"{}\"\n{section}{extra}\n",
            dir.join("backups").display()
        ),
    )
    .unwrap();
    cfg
}

/// Writes an executable bash script `dir/name` running `body`.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    maintenance_e2e::dump_script(dir, name, body)
}

/// A unique database name for one test.
#[allow(unused_imports)] // only the MariaDB and PostgreSQL tests create databases
pub use maintenance_e2e::unique_db_name as unique_db;

/// A file of `compose/monitoring/`.
pub fn monitoring(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../compose/monitoring")
        .join(file)
}

/// Every `expr` of every panel (rows included), with the panel title.
pub fn dashboard_exprs(path: &Path) -> Vec<(String, String)> {
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("dashboard JSON");
    fn walk(panels: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("").to_owned();
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((title.clone(), e.to_owned()));
                }
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    out
}

/// `maintenance_*` metric names in a PromQL expression.
pub fn metric_names_in(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.starts_with("maintenance_"))
        .map(str::to_owned)
        .collect()
}

/// Plain HTTP/1.0 GET on loopback; returns the body (panics on non-200).
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s =
        std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").expect("HTTP response");
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "{head}"
    );
    body.to_owned()
}

/// Metric (sample) names in a text exposition, e.g. `x_total`, `y_bucket`.
pub fn exposed_names(text: &str) -> std::collections::HashSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// The value of the first sample whose line starts with `prefix`
/// (name plus labels, e.g. `x_total{result="success"}`).
pub fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix) && l[prefix.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Runs `cmd` with its output captured, killing it (and failing the test)
/// when it has not ended within `limit`: a hang fails instead of blocking
/// the suite. Returns the output and how long it ran.
pub fn run_within(cmd: &mut Command, limit: std::time::Duration) -> (Output, std::time::Duration) {
    let started = std::time::Instant::now();
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run maintenance-sidecar");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output().unwrap()));
    match rx.recv_timeout(limit) {
        Ok(out) => {
            eprintln!("--- {cmd:?}\n{}", text(&out));
            (out, started.elapsed())
        }
        Err(_) => {
            // SAFETY: a signal to the child this function started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("{cmd:?} still running after {limit:?}");
        }
    }
}

/// Two restores into one database, the first held at a gate: a wrapper
/// script of the test's stands in for the import tool, touches `reached`
/// and waits until `gate` exists. `first` runs until `reached` appears,
/// then `second` runs to its end (or for 30 s: then the gate opens anyway,
/// so a second restore that got past the lock fails the test instead of
/// hanging it), then the gate opens and `first` ends. Returns both outputs.
pub fn gated_restores(
    first: &mut Command,
    second: &mut Command,
    reached: &Path,
    gate: &Path,
) -> (Output, Output) {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let mut a = first
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !reached.exists() {
        if a.try_wait().unwrap().is_some() {
            let out = a.wait_with_output().unwrap();
            panic!("the first restore ended before its import:\n{}", text(&out));
        }
        assert!(t.elapsed() < Duration::from_secs(60), "no import started");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::remove_file(reached).unwrap();
    let mut b = second
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while b.try_wait().unwrap().is_none() && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(gate, "").unwrap();
    let b = b.wait_with_output().unwrap();
    let a = a.wait_with_output().unwrap();
    eprintln!("--- first:\n{}\n--- second:\n{}", text(&a), text(&b));
    (a, b)
}

/// The body of a wrapper around `tool` that, when its last argument is
/// `last`, touches `reached` and waits for `gate` before running it (see
/// [`gated_restores`]); any other call runs `tool` at once.
pub fn gate_script_body(tool: &str, last: &str, reached: &Path, gate: &Path) -> String {
    format!(
        "for a; do final=$a; done\n\
         if [ \"$final\" = \"{last}\" ]; then\n\
         touch '{r}'\n\
         while [ ! -e '{g}' ]; do sleep 0.05; done\n\
         fi\n\
         exec {tool} \"$@\"",
        r = reached.display(),
        g = gate.display()
    )
}
