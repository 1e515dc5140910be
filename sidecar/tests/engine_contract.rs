//! The engine contract: one generic suite that every registered engine
//! runs through the real binary (`sqlite`, `mysql`, `postgres`, `files`):
//!
//! - snapshot (`once`), `verify`, `restore` into a fresh target with the
//!   same content, `drill`;
//! - a corrupted artifact: `verify`, `restore` and `drill` fail and nothing
//!   is restored;
//! - a killed tool: the process producing the artifact dies by SIGKILL
//!   midway (the dump tool for MySQL and PostgreSQL, the sidecar itself for
//!   the in-process engines); nothing is published, and the next backup
//!   works.
//!
//! MySQL and PostgreSQL use the throwaway servers of `TEST_MARIADB_URL` and
//! `TEST_POSTGRES_URL` (skipped with a message when unset, required under
//! `CI`), like the other server tests.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// What the suite needs to know about one engine.
trait Subject {
    /// The engine's name in manifests and in `--engine`.
    fn engine(&self) -> &'static str;
    /// Creates the source data under `dir`; the config section (and
    /// top-level lines) that back it up.
    fn setup(&mut self, dir: &Path) -> String;
    /// Environment the sidecar needs (passwords).
    fn env(&self) -> Vec<(String, String)>;
    /// The `restore latest` arguments that put the backup into a fresh
    /// target.
    fn restore_args(&mut self, dir: &Path) -> Vec<String>;
    /// The restored target holds exactly the source's content.
    fn assert_restored(&self, dir: &Path);
    /// The target holds nothing (a failed restore left no trace).
    fn assert_not_restored(&self, dir: &Path);
    /// Config lines for a dump tool that dies by SIGKILL midway, when the
    /// engine runs an external tool; `None` for an in-process engine.
    fn killed_tool(&self, dir: &Path) -> Option<String>;
    /// Makes an in-process snapshot slow enough to be killed midway (a
    /// bigger source from the next `setup`, or the returned environment).
    fn make_slow(&mut self) -> Vec<(String, String)> {
        Vec::new()
    }
}

fn sidecar_for(subject: &dyn Subject, cfg: &Path) -> Command {
    let mut cmd = sidecar(Some(cfg));
    cmd.envs(subject.env());
    cmd
}

fn backups(dir: &Path) -> PathBuf {
    dir.join("backups")
}

fn write_config(dir: &Path, section: &str, extra: &str) -> PathBuf {
    engine_config(dir, section, extra)
}

/// Snapshot, verify, restore into a fresh target, drill.
fn round_trip(mut subject: impl Subject) {
    let dir = tempfile::tempdir().unwrap();
    let section = subject.setup(dir.path());
    let cfg = write_config(dir.path(), &section, "");

    let out = run(sidecar_for(&subject, &cfg).arg("once"));
    assert!(out.status.success(), "once: {}", text(&out));
    let published = published(&backups(dir.path()));
    assert_eq!(published.len(), 1, "one backup published");
    let manifest = std::fs::read_to_string(published[0].join("manifest.json")).unwrap();
    assert!(
        manifest.contains(&format!("\"engine\": \"{}\"", subject.engine())),
        "{manifest}"
    );

    let out = run(sidecar_for(&subject, &cfg).args(["verify", "latest"]));
    assert!(out.status.success(), "verify: {}", text(&out));
    assert!(text(&out).contains("backup verified"), "{}", text(&out));

    let mut restore = vec!["restore".to_owned(), "latest".to_owned()];
    restore.extend(subject.restore_args(dir.path()));
    let out = run(sidecar_for(&subject, &cfg).args(&restore));
    assert!(out.status.success(), "restore: {}", text(&out));
    subject.assert_restored(dir.path());

    let out = run(sidecar_for(&subject, &cfg).args(["drill", "latest"]));
    assert!(out.status.success(), "drill: {}", text(&out));
    assert!(text(&out).contains("passed"), "{}", text(&out));
    // The drill removed what it restored.
    assert!(
        !names_in(&backups(dir.path()))
            .iter()
            .any(|n| n.starts_with(".drill-")),
        "{:?}",
        names_in(&backups(dir.path()))
    );
}

/// Flips bytes in the middle of the file.
fn corrupt(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.len() > 64,
        "{} is too small to corrupt",
        path.display()
    );
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 16] {
        *b ^= 0x5a;
    }
    std::fs::write(path, bytes).unwrap();
}

/// A corrupted artifact fails verify, restore and drill; nothing is restored.
fn corrupted_artifact(mut subject: impl Subject) {
    let dir = tempfile::tempdir().unwrap();
    let section = subject.setup(dir.path());
    let cfg = write_config(dir.path(), &section, "");
    let out = run(sidecar_for(&subject, &cfg).arg("once"));
    assert!(out.status.success(), "once: {}", text(&out));
    let backup = published(&backups(dir.path())).remove(0);
    let artifact = std::fs::read_dir(&backup)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap() != "manifest.json")
        .expect("an artifact");
    corrupt(&artifact);

    let out = run(sidecar_for(&subject, &cfg).args(["verify", "latest"]));
    assert_eq!(out.status.code(), Some(1), "verify: {}", text(&out));
    assert!(text(&out).contains("FAILED"), "{}", text(&out));

    let mut restore = vec!["restore".to_owned(), "latest".to_owned()];
    restore.extend(subject.restore_args(dir.path()));
    let out = run(sidecar_for(&subject, &cfg).args(&restore));
    assert_eq!(out.status.code(), Some(1), "restore: {}", text(&out));
    subject.assert_not_restored(dir.path());

    let out = run(sidecar_for(&subject, &cfg).args(["drill", "latest"]));
    assert_eq!(out.status.code(), Some(1), "drill: {}", text(&out));
    assert!(text(&out).contains("drill failed"), "{}", text(&out));
}

/// The process producing the artifact dies midway: nothing is published,
/// and the next backup works.
fn killed_tool(mut subject: impl Subject) {
    let dir = tempfile::tempdir().unwrap();
    let slow = subject.make_slow();
    let section = subject.setup(dir.path());
    let root = backups(dir.path());
    match subject.killed_tool(dir.path()) {
        Some(extra) => {
            let cfg = write_config(dir.path(), &section, &extra);
            let out = run(sidecar_for(&subject, &cfg).arg("once"));
            assert_eq!(out.status.code(), Some(1), "once: {}", text(&out));
            assert!(
                String::from_utf8_lossy(&out.stderr).contains(subject.engine()),
                "{}",
                text(&out)
            );
            assert_nothing_published(&root);
        }
        None => {
            let cfg = write_config(dir.path(), &section, "");
            let mut child = sidecar_for(&subject, &cfg)
                .envs(slow)
                .arg("once")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            while staging_dirs(&root).is_empty() {
                assert!(
                    child.try_wait().unwrap().is_none(),
                    "the backup ended before it could be killed"
                );
                assert!(Instant::now() < deadline, "no staging folder appeared");
                std::thread::sleep(Duration::from_millis(5));
            }
            child.kill().unwrap();
            child.wait().unwrap();
            assert!(!staging_dirs(&root).is_empty(), "killed mid-snapshot");
            assert!(published(&root).is_empty(), "{:?}", names_in(&root));
            // The killed process's staging folder is swept by prune.
            let out = run(sidecar_for(&subject, &cfg).arg("prune"));
            assert!(out.status.success(), "prune: {}", text(&out));
            assert_nothing_published(&root);
        }
    }
    // The next backup, with the real tool, works.
    let cfg = write_config(dir.path(), &section, "");
    let out = run(sidecar_for(&subject, &cfg).arg("once"));
    assert!(out.status.success(), "once after the kill: {}", text(&out));
    assert_eq!(published(&root).len(), 1);
}

/// The SQLite engine: a database file.
struct Sqlite {
    source: PathBuf,
}

impl Sqlite {
    fn new() -> Option<Self> {
        Some(Sqlite {
            source: PathBuf::new(),
        })
    }
}

impl Subject for Sqlite {
    fn engine(&self) -> &'static str {
        "sqlite"
    }
    fn setup(&mut self, dir: &Path) -> String {
        self.source = dir.join("tracker.db");
        // Big enough (several MiB) for the slowed read to be killed midway.
        make_sqlite(&self.source, 20_000);
        format!("[sqlite]\npath = \"{}\"\n", self.source.display())
    }
    fn env(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    fn restore_args(&mut self, dir: &Path) -> Vec<String> {
        vec![
            "--to".into(),
            dir.join("restored.db").to_string_lossy().into_owned(),
        ]
    }
    fn assert_restored(&self, dir: &Path) {
        let restored = sqlite_rows(&dir.join("restored.db"));
        assert_eq!(restored.len(), 20_000);
        assert_eq!(restored, sqlite_rows(&self.source));
    }
    fn assert_not_restored(&self, dir: &Path) {
        assert!(!dir.join("restored.db").exists());
        assert!(
            !names_in(dir).iter().any(|n| n.starts_with(".restore-")),
            "{:?}",
            names_in(dir)
        );
    }
    fn killed_tool(&self, _dir: &Path) -> Option<String> {
        None
    }
    fn make_slow(&mut self) -> Vec<(String, String)> {
        vec![(
            maintenance_sidecar::engine::sqlite::TEST_READ_DELAY_ENV.to_owned(),
            "200".to_owned(),
        )]
    }
}

/// The files engine: a folder listed in a paths file.
struct Files {
    source: PathBuf,
    /// Add a large sparse file, which keeps the archive busy long enough
    /// to be killed midway.
    big: bool,
}

impl Files {
    fn new() -> Option<Self> {
        Some(Files {
            source: PathBuf::new(),
            big: false,
        })
    }
}

impl Subject for Files {
    fn engine(&self) -> &'static str {
        "files"
    }
    fn setup(&mut self, dir: &Path) -> String {
        self.source = dir.join("data");
        std::fs::create_dir_all(self.source.join("sub")).unwrap();
        for i in 0..20u32 {
            let body: Vec<u8> = (0..40_000u32)
                .map(|j| (j.wrapping_mul(31).wrapping_add(i * 7) % 251) as u8)
                .collect();
            std::fs::write(self.source.join("sub").join(format!("f{i}")), body).unwrap();
        }
        if self.big {
            let big = std::fs::File::create(self.source.join("big.img")).unwrap();
            big.set_len(1 << 30).unwrap();
        }
        let list = dir.join("paths.txt");
        std::fs::write(&list, format!("{}\n", self.source.display())).unwrap();
        format!("[files]\npaths_file = \"{}\"\n", list.display())
    }
    fn env(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    fn restore_args(&mut self, dir: &Path) -> Vec<String> {
        vec![
            "--to".into(),
            dir.join("restored").to_string_lossy().into_owned(),
        ]
    }
    fn assert_restored(&self, dir: &Path) {
        let rel: PathBuf = self
            .source
            .components()
            .filter(|c| matches!(c, std::path::Component::Normal(_)))
            .collect();
        let restored = dir.join("restored").join(rel);
        for i in 0..20u32 {
            let name = Path::new("sub").join(format!("f{i}"));
            assert_eq!(
                std::fs::read(restored.join(&name)).unwrap(),
                std::fs::read(self.source.join(&name)).unwrap(),
                "{}",
                name.display()
            );
        }
    }
    fn assert_not_restored(&self, dir: &Path) {
        assert!(names_in(&dir.join("restored")).is_empty());
    }
    fn killed_tool(&self, _dir: &Path) -> Option<String> {
        None
    }
    fn make_slow(&mut self) -> Vec<(String, String)> {
        self.big = true;
        Vec::new()
    }
}

/// The MySQL/MariaDB engine: a database on the throwaway server.
struct Mysql {
    maria: Maria,
    source: Option<maintenance_e2e::MariaDb>,
    target: Option<maintenance_e2e::MariaDb>,
}

impl Mysql {
    fn new() -> Option<Self> {
        Some(Mysql {
            maria: maria()?,
            source: None,
            target: None,
        })
    }
    fn rows(&self, db: &str) -> String {
        self.maria.sql(&format!(
            "SELECT info_hash, completed FROM `{db}`.torrents ORDER BY info_hash"
        ))
    }
    fn target(&self) -> &str {
        &self.target.as_ref().expect("restore target").name
    }
}

impl Subject for Mysql {
    fn engine(&self) -> &'static str {
        "mysql"
    }
    fn setup(&mut self, _dir: &Path) -> String {
        let db = self.maria.create_db("contract_src");
        self.maria.sql(&format!(
            "CREATE TABLE `{0}`.torrents (info_hash CHAR(40) PRIMARY KEY, completed INT NOT NULL);
             INSERT INTO `{0}`.torrents SELECT LPAD(HEX(seq), 40, '0'), seq * 3 FROM `{0}`.seq_0_to_2999",
            db.name
        ));
        let section = maria_toml(&self.maria, &db.name);
        self.source = Some(db);
        section
    }
    fn env(&self) -> Vec<(String, String)> {
        vec![("MYSQL_PASSWORD".into(), self.maria.password.clone())]
    }
    fn restore_args(&mut self, _dir: &Path) -> Vec<String> {
        let target = self.maria.create_db("contract_dst");
        let args = vec!["--database".into(), target.name.clone()];
        self.target = Some(target);
        args
    }
    fn assert_restored(&self, _dir: &Path) {
        let source = &self.source.as_ref().unwrap().name;
        assert_eq!(self.rows(self.target()).lines().count(), 3000);
        assert_eq!(self.rows(self.target()), self.rows(source));
    }
    fn assert_not_restored(&self, _dir: &Path) {
        let tables = self.maria.sql(&format!(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{}'",
            self.target()
        ));
        assert_eq!(tables.trim(), "0");
    }
    fn killed_tool(&self, dir: &Path) -> Option<String> {
        let wrapper = script(
            dir,
            "dump.sh",
            "mariadb-dump \"$@\" | head -c 4000\nkill -KILL $$",
        );
        Some(format!("dump_command = \"{}\"\n", wrapper.display()))
    }
}

/// The PostgreSQL engine: a database on the throwaway cluster.
struct Postgres {
    pg: Pg,
    source: Option<PgDb>,
    target: Option<PgDb>,
}

impl Postgres {
    fn new() -> Option<Self> {
        Some(Postgres {
            pg: postgres()?,
            source: None,
            target: None,
        })
    }
    fn rows(&self, db: &str) -> String {
        self.pg.sql_in(
            db,
            "SELECT info_hash, completed FROM torrents ORDER BY info_hash",
        )
    }
    fn target(&self) -> &str {
        &self.target.as_ref().expect("restore target").name
    }
}

impl Subject for Postgres {
    fn engine(&self) -> &'static str {
        "postgres"
    }
    fn setup(&mut self, _dir: &Path) -> String {
        let db = self.pg.create_db("contract_src");
        self.pg.sql_in(
            &db.name,
            "CREATE TABLE torrents (info_hash VARCHAR(40) PRIMARY KEY, completed INTEGER NOT NULL);
             INSERT INTO torrents SELECT lpad(to_hex(g), 40, '0'), g * 3 FROM generate_series(0, 2999) g",
        );
        let section = postgres_toml(&self.pg, &db.name);
        self.source = Some(db);
        section
    }
    fn env(&self) -> Vec<(String, String)> {
        vec![("POSTGRES_PASSWORD".into(), self.pg.password.clone())]
    }
    fn restore_args(&mut self, _dir: &Path) -> Vec<String> {
        let target = self.pg.create_db("contract_dst");
        let args = vec!["--database".into(), target.name.clone()];
        self.target = Some(target);
        args
    }
    fn assert_restored(&self, _dir: &Path) {
        let source = &self.source.as_ref().unwrap().name;
        assert_eq!(self.rows(self.target()).lines().count(), 3000);
        assert_eq!(self.rows(self.target()), self.rows(source));
    }
    fn assert_not_restored(&self, _dir: &Path) {
        let tables: i64 = self.pg.scalar(
            self.target(),
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
        );
        assert_eq!(tables, 0);
    }
    fn killed_tool(&self, dir: &Path) -> Option<String> {
        let wrapper = script(
            dir,
            "dump.sh",
            "pg_dump \"$@\" | head -c 4000\nkill -KILL $$",
        );
        Some(format!("dump_command = \"{}\"\n", wrapper.display()))
    }
}

/// The contract, once per engine: every registered engine must appear.
macro_rules! contract {
    ($($module:ident => $subject:ident),* $(,)?) => {
        $(
            mod $module {
                use super::*;

                #[test]
                fn snapshot_verify_restore_drill() {
                    let Some(s) = $subject::new() else { return };
                    round_trip(s);
                }

                #[test]
                fn a_corrupted_artifact_fails_verify_restore_and_drill() {
                    let Some(s) = $subject::new() else { return };
                    corrupted_artifact(s);
                }

                #[test]
                fn a_killed_tool_publishes_nothing() {
                    let Some(s) = $subject::new() else { return };
                    killed_tool(s);
                }
            }
        )*

        #[test]
        fn every_registered_engine_runs_the_contract() {
            let covered = [$(stringify!($module)),*];
            let registered: Vec<&str> = maintenance_sidecar::engine::ENGINES
                .iter()
                .map(|k| k.name())
                .collect();
            assert_eq!(registered, covered);
        }
    };
}

contract! {
    sqlite => Sqlite,
    mysql => Mysql,
    postgres => Postgres,
    files => Files,
}
