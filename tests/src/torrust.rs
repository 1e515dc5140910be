//! The unmodified Torrust tracker 3.0.0 as a test subject: its binary
//! (`TORRUST_TRACKER_BIN`, built from crates.io by
//! `scripts/build-torrust-tracker.sh` and only ever run as a separate
//! process), its configuration, an HTTP client for its announces and a
//! paced announce load. The online-backup tests (`tests/torrust_online.rs`),
//! the host fallback's test (`tests/torrust_fallback.rs`, which starts
//! Torrust through `support/process-compose.sh`) and the `bench torrust`
//! benchmark share it.
//!
//! Two quirks of 3.0.0 shape it: the tracker ignores SIGTERM (SIGINT stops
//! it), and it does not load the persisted completed counts when it starts,
//! so counts are read from the database file itself (after a restart, its
//! next completion of a torrent overwrites the persisted count with one
//! counted from zero).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{decode, free_port, hex, http, http_announce, info_hash, sqlite_counts, Proc};

/// The Torrust binary, or `None` (the caller skips) outside CI; under `CI`
/// a missing binary is an error.
pub fn torrust_bin() -> Option<PathBuf> {
    match std::env::var_os("TORRUST_TRACKER_BIN") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!("TORRUST_TRACKER_BIN is not set in CI (scripts/build-torrust-tracker.sh prints it)");
            }
            eprintln!("SKIPPED: TORRUST_TRACKER_BIN is not set (scripts/build-torrust-tracker.sh)");
            None
        }
    }
}

/// The `n`th torrent of a load (a fixed info-hash family).
pub fn torrent(i: usize) -> [u8; 20] {
    info_hash(0x70, i as u32)
}

/// Where one Torrust configuration listens.
#[derive(Debug, Clone)]
pub struct TorrustConfig {
    /// The `config.toml` written.
    pub path: PathBuf,
    /// Its HTTP tracker.
    pub http: SocketAddr,
    /// Its health-check API (`/health_check`).
    pub health: SocketAddr,
}

impl TorrustConfig {
    /// Writes `dir/torrust-<name>.toml` for the database `db_url` (a
    /// `sqlite3` path or a `mysql://` URL), with fresh loopback ports and
    /// persisted completed counts.
    pub fn write(dir: &Path, name: &str, driver: &str, db_url: &str) -> TorrustConfig {
        let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let health: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let path = dir.join(format!("torrust-{name}.toml"));
        std::fs::write(
            &path,
            format!(
                r#"[metadata]
app = "torrust-tracker"
purpose = "configuration"
schema_version = "2.0.0"

[logging]
threshold = "info"

[core]
listed = false
private = false

[core.database]
driver = "{driver}"
path = "{db_url}"

[core.net]
# Loopback peers get this address in answers (the default, 0.0.0.0,
# would hand libtorrent unusable peers).
external_ip = "127.0.0.1"

[core.tracker_policy]
persistent_torrent_completed_stat = true

[[http_trackers]]
bind_address = "{http}"

[health_check_api]
bind_address = "{health}"
"#
            ),
        )
        .unwrap();
        TorrustConfig { path, http, health }
    }

    /// True once its HTTP tracker answers its health check.
    pub fn serving(&self) -> bool {
        matches!(
            http(self.http, "GET", "/health_check", None, None),
            Ok((200, _))
        )
    }
}

/// A running Torrust tracker, stopped with SIGKILL on drop.
pub struct Torrust {
    pub proc: Proc,
    pub http: SocketAddr,
}

impl Torrust {
    /// Starts `bin` on the database `db_url` (`sqlite3` path or `mysql://`
    /// URL); waits until its HTTP tracker answers its health check.
    pub fn start(bin: &Path, dir: &Path, name: &str, driver: &str, db_url: &str) -> Torrust {
        let config = TorrustConfig::write(dir, name, driver, db_url);
        let log = dir.join(format!("torrust-{name}.log"));
        let f = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TORRUST_TRACKER_CONFIG_TOML_PATH", &config.path)
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .expect("spawn torrust-tracker");
        let mut proc = Proc::from_child(child, log, format!("torrust-{name}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !config.serving() {
            assert!(
                proc.try_wait().is_none(),
                "Torrust exited at start:\n{}",
                proc.log_text()
            );
            assert!(
                Instant::now() < deadline,
                "Torrust did not serve within 30 s:\n{}",
                proc.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Torrust {
            proc,
            http: config.http,
        }
    }

    /// Still running (never stopped or crashed).
    pub fn running(&mut self) -> bool {
        self.proc.try_wait().is_none()
    }

    /// Stops it the only way 3.0.0 listens to: SIGINT (SIGTERM is ignored,
    /// which is checked on the way).
    pub fn stop(mut self) {
        self.proc.signal(libc::SIGTERM);
        std::thread::sleep(Duration::from_millis(1500));
        assert!(
            self.running(),
            "Torrust 3.0.0 stopped on SIGTERM (the quirk is gone?)"
        );
        self.proc.signal(libc::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.running() {
            assert!(Instant::now() < deadline, "Torrust did not stop on SIGINT");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One announce; `Err` with the reason when it was not served normally.
    pub fn announce(&self, hash: &[u8; 20], peer: u32, event: &str) -> Result<(), String> {
        TorrustClient { http: self.http }.announce(hash, peer, event)
    }

    /// Asserts that its log names no database error (Torrust drops failed
    /// writes without failing the announce, so its log and the counts are
    /// what tell).
    pub fn assert_no_database_errors(&self) {
        assert_no_database_errors(&self.proc.log_text());
    }
}

/// Asserts that a Torrust log names no locked or busy database.
pub fn assert_no_database_errors(log: &str) {
    let log = log.to_ascii_lowercase();
    for word in ["database is locked", "locked", "busy"] {
        assert!(!log.contains(word), "Torrust logged {word:?}:\n{log}");
    }
}

/// Announces to a Torrust tracker's HTTP address (usable from any thread).
#[derive(Debug, Clone, Copy)]
pub struct TorrustClient {
    pub http: SocketAddr,
}

impl TorrustClient {
    /// One announce; `Err` with the reason when it was not a 200 bencoded
    /// answer without a `failure reason`.
    pub fn announce(&self, hash: &[u8; 20], peer: u32, event: &str) -> Result<(), String> {
        let (code, body) =
            http_announce(self.http, hash, peer, event).map_err(|e| e.to_string())?;
        if code != 200 {
            return Err(format!("HTTP {code}: {}", String::from_utf8_lossy(&body)));
        }
        let v = decode(&body).map_err(|e| format!("not bencode ({e})"))?;
        match v.get("failure reason") {
            Some(reason) => Err(format!("failure reason {reason:?}")),
            None => Ok(()),
        }
    }
}

/// One acknowledged completion: the torrent and when it was sent/answered.
#[derive(Clone, Copy)]
pub struct Completion {
    pub torrent: usize,
    pub sent: Instant,
    pub answered: Instant,
}

/// A paced load of started+completed announces over the [`TORRENTS`]
/// torrents `torrent(0..TORRENTS)`, one fresh peer per completion, until
/// stopped (at the latest when dropped).
pub struct Load {
    stop: Arc<AtomicBool>,
    done: Arc<Mutex<Vec<Completion>>>,
    failures: Arc<Mutex<Vec<String>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

/// How many torrents a [`Load`] spreads its completions over.
pub const TORRENTS: usize = 16;

impl Load {
    /// Starts announcing to `http`, `pace` between completions.
    pub fn start(http: SocketAddr, pace: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let (s, d, f) = (stop.clone(), done.clone(), failures.clone());
        let handle = std::thread::spawn(move || {
            let t = TorrustClient { http };
            let mut peer = 1u32;
            while !s.load(Ordering::SeqCst) {
                let i = peer as usize % TORRENTS;
                let hash = torrent(i);
                let sent = Instant::now();
                let result = t
                    .announce(&hash, peer, "started")
                    .and_then(|()| t.announce(&hash, peer, "completed"));
                match result {
                    Ok(()) => d.lock().unwrap().push(Completion {
                        torrent: i,
                        sent,
                        answered: Instant::now(),
                    }),
                    Err(e) => f.lock().unwrap().push(format!("peer {peer}: {e}")),
                }
                peer += 1;
                std::thread::sleep(pace);
            }
        });
        Load {
            stop,
            done,
            failures,
            handle: Some(handle),
        }
    }

    /// The completions acknowledged so far.
    pub fn completions(&self) -> Vec<Completion> {
        self.done.lock().unwrap().clone()
    }

    /// Stops the load; every announce must have been served.
    pub fn finish(mut self) -> Vec<Completion> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.take().unwrap().join().unwrap();
        let failures = self.failures.lock().unwrap().clone();
        assert!(failures.is_empty(), "announces failed: {failures:?}");
        self.completions()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Per-torrent completions counted by `pred`.
pub fn counts_where(done: &[Completion], pred: impl Fn(&Completion) -> bool) -> Vec<i64> {
    let mut v = vec![0i64; TORRENTS];
    for c in done.iter().filter(|c| pred(c)) {
        v[c.torrent] += 1;
    }
    v
}

/// Completed count per load torrent in a database file (0 when absent).
pub fn file_counts(db: &Path) -> Vec<i64> {
    let rows = sqlite_counts(db);
    (0..TORRENTS)
        .map(|i| rows.get(&hex(&torrent(i))).copied().unwrap_or(0))
        .collect()
}

/// The journal mode of a SQLite file (`delete`, `wal`, ...).
pub fn journal_mode(db: &Path) -> String {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap()
}

/// The size of a SQLite file's `-wal` (0 when absent).
pub fn wal_len(db: &Path) -> u64 {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    std::fs::metadata(PathBuf::from(p))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// The environment of a sidecar backing up the SQLite file `db` into
/// `backups` without a coordinator.
pub fn online_env(db: &Path, backups: &Path) -> Vec<(String, String)> {
    vec![
        ("BACKUP_DIR".into(), backups.display().to_string()),
        ("BACKUP_SQLITE_ENABLED".into(), "true".into()),
        ("SQLITE_DATABASE_PATH".into(), db.display().to_string()),
        ("BACKUP_MYSQL_ENABLED".into(), "false".into()),
        ("BACKUP_SIDECAR_ID".into(), "torrust-online".into()),
    ]
}

/// `s` as one single-quoted shell word.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A path in the repository.
pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// A process `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// One "compose stack" of plain processes for
/// `tests/support/process-compose.sh`, in the folder `dir`: Torrust as the
/// `tracker` service (`tracker.start`) on the SQLite file `db`, the real
/// `maintenance-sidecar` as the one-shot `backup-once` service
/// (`backup-once.run`) backing up into `backups`. It drives the real host
/// fallback against Torrust without a container engine. Dropping it
/// SIGKILLs the Torrust process last recorded in `tracker.pid`.
pub struct ProcessStack {
    pub dir: PathBuf,
    pub db: PathBuf,
    pub backups: PathBuf,
    pub config: TorrustConfig,
    /// The sidecar's environment (verify, restore, the one-shot service).
    pub env: Vec<(String, String)>,
    pub torrust: PathBuf,
}

impl ProcessStack {
    /// Writes Torrust's configuration and the two service files.
    pub fn new(dir: &Path, torrust: &Path, db: &Path, backups: &Path) -> ProcessStack {
        let config = TorrustConfig::write(dir, "stack", "sqlite3", &db.display().to_string());
        let path = std::env::var("PATH").unwrap_or_default();
        std::fs::write(
            dir.join("tracker.start"),
            format!(
                "exec env -i PATH={} TORRUST_TRACKER_CONFIG_TOML_PATH={} {}\n",
                sh_quote(&path),
                sh_quote(&config.path.display().to_string()),
                sh_quote(&torrust.display().to_string()),
            ),
        )
        .unwrap();
        let env = online_env(db, backups);
        let assignments: Vec<String> = [
            ("PATH".to_owned(), path),
            ("RUST_LOG".into(), "info".into()),
        ]
        .iter()
        .chain(&env)
        .map(|(k, v)| format!("{k}={}", sh_quote(v)))
        .collect();
        std::fs::write(
            dir.join("backup-once.run"),
            format!(
                "exec env -i {} {} \"$@\"\n",
                assignments.join(" "),
                sh_quote(&crate::bin("maintenance-sidecar").display().to_string()),
            ),
        )
        .unwrap();
        ProcessStack {
            dir: dir.to_owned(),
            db: db.to_owned(),
            backups: backups.to_owned(),
            config,
            env,
            torrust: torrust.to_owned(),
        }
    }

    /// `program` with the stack's environment and nothing else.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(&self.dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TMPDIR", &self.dir)
            .env("PROCESS_COMPOSE_DIR", &self.dir);
        cmd
    }

    /// `process-compose.sh ARGS`, which must succeed.
    pub fn compose(&self, args: &[&str]) {
        let out = self
            .command(&repo_path("tests/support/process-compose.sh"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "process-compose.sh {args:?}: {out:?}");
    }

    /// `process-compose.sh start tracker`, then waits until Torrust serves.
    pub fn start_tracker(&self) {
        self.compose(&["start", "tracker"]);
        crate::wait_until(Duration::from_secs(60), "Torrust to serve", || {
            self.config.serving()
        });
    }

    /// The host fallback `compose/maintenance-backup.sh ARGS` pointed at
    /// this stack (no age skip, health from Torrust's health API); the
    /// caller adds `STOP_SIGNAL`, `STOP_TIMEOUT` as it needs.
    pub fn fallback_command(&self, args: &[&str]) -> Command {
        let mut cmd = self.command(&repo_path("compose/maintenance-backup.sh"));
        cmd.args(args)
            .env(
                "COMPOSE_CMD",
                repo_path("tests/support/process-compose.sh")
                    .canonicalize()
                    .unwrap(),
            )
            .env("COMPOSE_DIR", &self.dir)
            .env("BACKUP_HOST_DIR", &self.backups)
            .env("LOCK_FILE", self.dir.join("fallback.lock"))
            .env("MAX_BACKUP_AGE_HOURS", "0")
            .env(
                "HEALTH_URLS",
                format!("http://{}/health_check", self.config.health),
            )
            .env("HEALTH_TIMEOUT", "120");
        cmd
    }

    /// The pid process-compose recorded for Torrust, if any.
    pub fn recorded_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.join("tracker.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The recorded pid, checked to be a running Torrust process (the
    /// service's own pid, not a wrapper's).
    pub fn tracker_pid(&self) -> i32 {
        let pid = self.recorded_pid().expect("tracker.pid");
        assert!(alive(pid), "Torrust (pid {pid}) is not running");
        assert_eq!(
            std::fs::read_link(format!("/proc/{pid}/exe")).unwrap(),
            self.torrust.canonicalize().unwrap(),
            "pid {pid} is not Torrust's own"
        );
        pid
    }

    /// Torrust's output (`tracker.log`, appended across restarts).
    pub fn tracker_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("tracker.log")).unwrap_or_default()
    }

    /// A client of Torrust's HTTP tracker.
    pub fn client(&self) -> TorrustClient {
        TorrustClient {
            http: self.config.http,
        }
    }
}

impl Drop for ProcessStack {
    fn drop(&mut self) {
        if let Some(pid) = self.recorded_pid() {
            if pid > 0 && alive(pid) {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}
