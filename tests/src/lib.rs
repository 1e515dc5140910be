//! Harness for the end-to-end tests and the benchmarks: runs the real
//! `reference-tracker` and `maintenance-sidecar` binaries on loopback, talks
//! HTTP to them with a tiny blocking client, decodes bencode, polls the
//! coordinator's status, and inspects backup folders, SQLite files, the
//! throwaway MariaDB (`TEST_MARIADB_URL`) and PostgreSQL (`TEST_POSTGRES_URL`).
//!
//! Everything is synchronous (std threads and sockets), so a test reads
//! top to bottom and a hung process shows up as a timeout naming what it
//! waited for, with the process logs attached.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub mod s3;

pub use maintenance_proto::{Outcome, State, StatusResponse, WindowOutcome};

pub mod observe;
pub use observe::{cpu_time, status_kib, vm_hwm_kib, vm_rss_kib, ConnectionCounter};
pub mod scale;
pub mod torrust;
pub mod udp;

/// Bearer token every test tracker accepts.
pub const TOKEN: &str = "e2e-token-0123456789abcdef";

// ---------------------------------------------------------------------------
// Binaries

/// Folder holding `reference-tracker` and `maintenance-sidecar`.
///
/// `MAINTENANCE_E2E_BIN_DIR` wins; otherwise the profile folder of the
/// running test or bench executable (`target/<profile>/`), where
/// `cargo test --workspace` / `cargo build` put them. When they are missing
/// there they are built once, into `target/e2e-bins` (a separate target
/// dir, so a `cargo` nested in `cargo test` never waits on its parent's lock).
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(d) = std::env::var_os("MAINTENANCE_E2E_BIN_DIR") {
            return PathBuf::from(d);
        }
        let exe = std::env::current_exe().expect("current_exe");
        let mut dir = exe.parent().unwrap().to_path_buf();
        if dir.file_name().is_some_and(|n| n == "deps") {
            dir.pop();
        }
        let have = |d: &Path| {
            d.join("reference-tracker").is_file() && d.join("maintenance-sidecar").is_file()
        };
        if have(&dir) {
            return dir;
        }
        let release = dir.file_name().is_some_and(|n| n == "release");
        let target = dir.parent().unwrap().to_path_buf();
        let alt_target = target.join("e2e-bins");
        let alt = alt_target.join(if release { "release" } else { "debug" });
        if !have(&alt) {
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
            eprintln!(
                "e2e: building reference-tracker and maintenance-sidecar into {}",
                alt_target.display()
            );
            let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            cmd.current_dir(workspace)
                .args([
                    "build",
                    "-p",
                    "reference-tracker",
                    "-p",
                    "maintenance-sidecar",
                    "--bins",
                    "--target-dir",
                ])
                .arg(&alt_target);
            if release {
                cmd.arg("--release");
            }
            let st = cmd.status().expect("run cargo build");
            assert!(st.success(), "cargo build of the binaries failed");
        }
        alt
    })
}

/// Path of one of the product binaries.
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

// ---------------------------------------------------------------------------
// Processes

/// A child process whose stdout+stderr go to a log file; SIGKILLed on drop.
pub struct Proc {
    child: Option<Child>,
    pub log: PathBuf,
    pub name: String,
}

impl Proc {
    /// Wraps a spawned child whose output goes to `log`.
    pub fn from_child(child: Child, log: PathBuf, name: String) -> Proc {
        Proc {
            child: Some(child),
            log,
            name,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `sig`, unless the process has exited and been reaped: its pid
    /// may then belong to another process (another test's tracker).
    pub fn signal(&mut self, sig: i32) {
        if let Some(c) = self.child.as_mut() {
            if matches!(c.try_wait(), Ok(None)) {
                unsafe { libc::kill(c.id() as i32, sig) };
            }
        }
    }

    /// kill -9 and reap (nothing is sent once the process has been reaped).
    pub fn sigkill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait up to `timeout` for the exit.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let mut c = self.child.take().expect("process already gone");
        if let Some(s) = c.try_wait().unwrap() {
            return s;
        }
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let t = Instant::now();
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            if t.elapsed() > timeout {
                let _ = c.kill();
                let _ = c.wait();
                panic!(
                    "{} did not exit on SIGTERM; log:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Exit status if it already exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().unwrap())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- {} log ({}) -----\n{}",
                self.name,
                self.log.display(),
                self.log_text()
            );
        }
        self.sigkill();
    }
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------------------------------------------------------------------------
// Tracker

/// Where the tracker keeps its completed counts.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(PathBuf),
    Mysql(String),
    Postgres(String),
}

/// Settings of one test tracker; [`TrackerConfig::toml`] renders them.
#[derive(Clone, Debug)]
pub struct TrackerConfig {
    pub db: Db,
    pub policy: &'static str,
    pub lease_ttl: &'static str,
    pub ready_file: PathBuf,
    /// 0 = OS-assigned.
    pub http_port: u16,
    pub health_port: u16,
    pub maintenance_port: u16,
    pub flush_interval: &'static str,
    /// `false` writes no `[maintenance]` table at all (the no-coordinator baseline).
    pub maintenance: bool,
    /// `Some(port)` adds one `[[udp_trackers]]` on loopback (0 = OS-assigned).
    pub udp_port: Option<u16>,
    /// SQLite `journal_mode` key (`wal`, `delete`); `None` keeps the default.
    pub journal_mode: Option<&'static str>,
    /// `completion_journal` for MySQL and PostgreSQL (in the test's folder,
    /// not the working directory); SQLite keeps its default beside the file.
    pub completion_journal: PathBuf,
    /// `journal_durability` key (`write`, `fsync`, `interval`); `None`
    /// keeps the default.
    pub journal_durability: Option<&'static str>,
    /// How long [`Tracker::start`] waits for the listeners: a tracker loads
    /// every completed count before it listens, so a benchmark on millions
    /// of rows raises it.
    pub start_timeout: Duration,
}

impl TrackerConfig {
    /// SQLite tracker in `dir` (db `dir/tracker.db`, ready file `dir/ready/ready.json`).
    pub fn sqlite(dir: &Path, policy: &'static str) -> Self {
        Self::with_db(dir, Db::Sqlite(dir.join("tracker.db")), policy)
    }

    pub fn with_db(dir: &Path, db: Db, policy: &'static str) -> Self {
        std::fs::create_dir_all(dir.join("ready")).unwrap();
        TrackerConfig {
            db,
            policy,
            lease_ttl: "2s",
            ready_file: dir.join("ready/ready.json"),
            http_port: 0,
            health_port: 0,
            maintenance_port: 0,
            flush_interval: "100ms",
            maintenance: true,
            udp_port: None,
            journal_mode: None,
            completion_journal: dir.join("completions.journal"),
            journal_durability: None,
            start_timeout: Duration::from_secs(30),
        }
    }

    /// Fixes every port, so a restarted tracker comes back at the same addresses.
    pub fn fixed_ports(mut self) -> Self {
        self.http_port = free_port();
        self.health_port = free_port();
        self.maintenance_port = free_port();
        self
    }

    pub fn toml(&self) -> String {
        let (driver, path) = match &self.db {
            Db::Sqlite(p) => ("sqlite3", p.display().to_string()),
            Db::Mysql(url) => ("mysql", url.clone()),
            Db::Postgres(url) => ("postgresql", url.clone()),
        };
        let journal = match &self.db {
            Db::Sqlite(_) => String::new(),
            _ => format!(
                "completion_journal = \"{}\"\n",
                self.completion_journal.display()
            ),
        };
        let mut s = format!(
            r#"[core.database]
driver = "{driver}"
path = "{path}"
flush_interval = "{flush}"
{journal}
[core.announce_policy]
interval = 120
interval_min = 60

[[http_trackers]]
bind_address = "127.0.0.1:{http}"

[health_check_api]
bind_address = "127.0.0.1:{health}"
"#,
            flush = self.flush_interval,
            http = self.http_port,
            health = self.health_port,
        );
        if let Some(durability) = self.journal_durability {
            s = s.replacen(
                "[core.announce_policy]",
                &format!("journal_durability = \"{durability}\"\n\n[core.announce_policy]"),
                1,
            );
        }
        if let Some(mode) = self.journal_mode {
            s = s.replacen(
                "[core.announce_policy]",
                &format!("journal_mode = \"{mode}\"\n\n[core.announce_policy]"),
                1,
            );
        }
        if let Some(port) = self.udp_port {
            s.push_str(&format!(
                "\n[[udp_trackers]]\nbind_address = \"127.0.0.1:{port}\"\n"
            ));
        }
        if self.maintenance {
            s.push_str(&format!(
                r#"
[maintenance]
enabled = false
announce_policy = "{policy}"
drain_timeout = "1s"
quiesce_timeout = "10s"
resume_timeout = "10s"
lease_ttl = "{lease}"
ready_file = "{ready}"
bind = "127.0.0.1:{mport}"
token = "{TOKEN}"
"#,
                policy = self.policy,
                lease = self.lease_ttl,
                ready = self.ready_file.display(),
                mport = self.maintenance_port,
            ));
        }
        s
    }
}

/// A running tracker binary and the addresses it said it listens on: the
/// one process wrapper of every tracker test (the harness's [`Tracker`],
/// the reference tracker's own tests). Killed on drop (the log is printed
/// when a test panics).
pub struct TrackerProcess {
    /// The process; its stderr goes to `proc.log`.
    pub proc: Proc,
    /// `[[http_trackers]]` address.
    pub http: SocketAddr,
    /// `[health_check_api]` address.
    pub health: SocketAddr,
    /// Maintenance API address, when configured.
    pub maintenance: Option<SocketAddr>,
    /// `[[udp_trackers]]` addresses, in the order they were bound.
    pub udp: Vec<SocketAddr>,
}

static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
fn seq() -> u32 {
    SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

impl TrackerProcess {
    /// Writes `toml` into `dir` and starts the tracker binary `bin` on it,
    /// in `dir` (relative paths in the config resolve there), with `env`
    /// added (`RUST_LOG` defaults to `info`). Returns once it printed every
    /// listener the config asks for (`reference-tracker: <kind> listening
    /// on <addr>`: the HTTP tracker, the health check, the maintenance API
    /// when `[maintenance]` has a `bind`, one per `[[udp_trackers]]`) and
    /// `/health_check` answers; panics with its log after `timeout`.
    pub fn start(
        bin: &Path,
        dir: &Path,
        toml: &str,
        env: &[(&str, &str)],
        timeout: Duration,
    ) -> TrackerProcess {
        let n = seq();
        let cfg_path = dir.join(format!("tracker-{n}.toml"));
        std::fs::write(&cfg_path, toml).unwrap();
        let log = dir.join(format!("tracker-{n}.log"));
        let err = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("--config")
            .arg(&cfg_path)
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn reference-tracker");
        let stdout = child.stdout.take().unwrap();
        let proc = Proc {
            child: Some(child),
            log,
            name: format!("tracker-{n}"),
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let want_maintenance = toml.contains("[maintenance]") && toml.contains("bind =");
        let want_udp = toml.matches("[[udp_trackers]]").count();
        let mut addrs: BTreeMap<String, SocketAddr> = BTreeMap::new();
        let mut udp = Vec::new();
        let deadline = Instant::now() + timeout;
        while !(addrs.contains_key("http_tracker")
            && addrs.contains_key("health_check_api")
            && (!want_maintenance || addrs.contains_key("maintenance_api"))
            && udp.len() == want_udp)
        {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Some((kind, addr)) = line
                        .strip_prefix("reference-tracker: ")
                        .and_then(|r| r.split_once(" listening on "))
                    {
                        let addr: SocketAddr = addr.trim().parse().unwrap();
                        if kind == "udp_tracker" {
                            udp.push(addr);
                        }
                        addrs.insert(kind.to_owned(), addr);
                    }
                }
                Err(_) => panic!(
                    "tracker did not report its listeners; log:\n{}",
                    proc.log_text()
                ),
            }
        }
        let t = TrackerProcess {
            proc,
            http: addrs["http_tracker"],
            health: addrs["health_check_api"],
            maintenance: addrs.get("maintenance_api").copied(),
            udp,
        };
        wait_until(Duration::from_secs(10), "tracker health check", || {
            matches!(
                http(t.health, "GET", "/health_check", None, None),
                Ok((200, _))
            )
        });
        t
    }

    /// Sends SIGTERM and waits up to 20 s for the exit, which must be clean.
    pub fn stop(mut self) {
        let status = self.proc.terminate(Duration::from_secs(20));
        assert!(
            status.success(),
            "tracker exited with {status:?}; log:\n{}",
            self.proc.log_text()
        );
    }

    /// The process id (to read `/proc/PID/status`).
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The tracker's log so far.
    pub fn logs(&self) -> String {
        self.proc.log_text()
    }
}

/// A running `reference-tracker` of the end-to-end tests, started from a
/// [`TrackerConfig`].
pub struct Tracker {
    pub proc: Proc,
    pub http: SocketAddr,
    pub health: SocketAddr,
    pub maintenance: Option<SocketAddr>,
    /// The `[[udp_trackers]]` address, when configured.
    pub udp: Option<SocketAddr>,
    pub config: TrackerConfig,
    pub dir: PathBuf,
    /// Lease ids answered to claims through [`Tracker::api`], shared by
    /// every `Api` it hands out.
    pub leases: Arc<Mutex<HashMap<String, String>>>,
}

impl Tracker {
    /// Writes the config into `dir` and starts the tracker; returns once it
    /// printed every listener and `/health_check` answers.
    pub fn start(dir: &Path, config: &TrackerConfig) -> Tracker {
        Self::start_with_env(dir, config, &[])
    }

    /// Like [`Tracker::start`], with extra environment variables.
    pub fn start_with_env(dir: &Path, config: &TrackerConfig, env: &[(&str, &str)]) -> Tracker {
        let TrackerProcess {
            proc,
            http,
            health,
            maintenance,
            udp,
        } = TrackerProcess::start(
            &bin("reference-tracker"),
            dir,
            &config.toml(),
            env,
            config.start_timeout,
        );
        Tracker {
            proc,
            http,
            health,
            maintenance,
            udp: udp.first().copied(),
            config: config.clone(),
            leases: Default::default(),
            dir: dir.to_owned(),
        }
    }

    pub fn healthy(&self) -> bool {
        matches!(
            http(self.health, "GET", "/health_check", None, None),
            Ok((200, _))
        )
    }

    /// Announce; returns the decoded body (a dict; `failure reason` when refused).
    pub fn announce(&self, info_hash: &[u8; 20], peer: u32, event: &str) -> Value {
        let (code, body) = http_announce(self.http, info_hash, peer, event)
            .unwrap_or_else(|e| panic!("announce: {e}\n{}", self.proc.log_text()));
        assert_eq!(
            code,
            200,
            "announce status; body {:?}",
            String::from_utf8_lossy(&body)
        );
        decode(&body).unwrap_or_else(|e| panic!("announce body not bencode ({e}): {body:?}"))
    }

    /// Announce that must be served normally (no failure reason, an interval).
    pub fn announce_ok(&self, info_hash: &[u8; 20], peer: u32, event: &str) -> Value {
        let v = self.announce(info_hash, peer, event);
        assert!(v.get("failure reason").is_none(), "announce refused: {v:?}");
        assert!(
            v.get("interval").and_then(Value::int).is_some(),
            "no interval: {v:?}"
        );
        v
    }

    /// `downloaded` of each torrent according to `/scrape`.
    pub fn scrape_downloaded(&self, hashes: &[[u8; 20]]) -> Vec<i64> {
        let q: Vec<String> = hashes
            .iter()
            .map(|h| format!("info_hash={}", urlencode(h)))
            .collect();
        let (code, body) = http(
            self.http,
            "GET",
            &format!("/scrape?{}", q.join("&")),
            None,
            None,
        )
        .unwrap();
        assert_eq!(code, 200);
        let v = decode(&body).unwrap();
        hashes
            .iter()
            .map(|h| {
                v.get("files")
                    .and_then(|f| f.get_bytes(&h[..]))
                    .and_then(|t| t.get("downloaded"))
                    .and_then(Value::int)
                    .unwrap_or(0)
            })
            .collect()
    }

    fn maint(&self) -> SocketAddr {
        self.maintenance.expect("no maintenance API")
    }

    pub fn api(&self) -> Api {
        Api {
            addr: self.maint(),
            token: TOKEN.to_owned(),
            leases: self.leases.clone(),
        }
    }

    pub fn status(&self) -> StatusResponse {
        self.api().status()
    }

    /// Polls until the coordinator is in `want`.
    pub fn wait_state(&self, want: State, timeout: Duration) -> StatusResponse {
        let api = self.api();
        let mut last = None;
        let ok = poll(timeout, || {
            let st = api.status();
            let hit = st.state == want;
            last = Some(st);
            hit
        });
        let st = last.unwrap();
        assert!(
            ok,
            "state stayed {} (wanted {want}): {st:?}\ntracker log:\n{}",
            st.state,
            self.proc.log_text()
        );
        st
    }

    /// Polls until an outcome for `window_id` is recorded.
    pub fn wait_outcome(&self, window_id: &str, timeout: Duration) -> WindowOutcome {
        let api = self.api();
        let mut found = None;
        poll(timeout, || {
            found = api
                .status()
                .last_outcomes
                .into_iter()
                .find(|o| o.window_id.as_str() == window_id);
            found.is_some()
        });
        found.unwrap_or_else(|| {
            panic!(
                "no outcome for {window_id} within {timeout:?}: {:?}\ntracker log:\n{}",
                api.status(),
                self.proc.log_text()
            )
        })
    }

    /// Restarts with the same config (and ports when they were fixed).
    pub fn restart(self) -> Tracker {
        let (dir, cfg) = (self.dir.clone(), self.config.clone());
        drop(self);
        Tracker::start(&dir, &cfg)
    }
}

/// The announce path for `peer` (a number) on `info_hash`.
pub fn announce_path(info_hash: &[u8; 20], peer: u32, event: &str) -> String {
    let ev = if event.is_empty() {
        String::new()
    } else {
        format!("&event={event}")
    };
    let left = if event == "completed" { 0 } else { 1000 };
    format!(
        "/announce?info_hash={}&peer_id={}&port={}&uploaded=0&downloaded=0&left={left}&compact=1{ev}",
        urlencode(info_hash),
        urlencode(&peer_id(peer)),
        10000 + (peer % 50000)
    )
}

/// One HTTP announce GET to `addr` (see [`announce_path`]): status and body.
pub fn http_announce(
    addr: SocketAddr,
    info_hash: &[u8; 20],
    peer: u32,
    event: &str,
) -> std::io::Result<(u16, Vec<u8>)> {
    http(
        addr,
        "GET",
        &announce_path(info_hash, peer, event),
        None,
        None,
    )
}

/// A 20-byte info hash from a tag and number, including non-UTF-8 bytes.
pub fn info_hash(tag: u8, n: u32) -> [u8; 20] {
    let mut h = [0xA5u8; 20];
    h[0] = tag;
    h[1] = 0xFF;
    h[16..].copy_from_slice(&n.to_be_bytes());
    h
}

pub fn peer_id(n: u32) -> [u8; 20] {
    let mut p = *b"-E2E001-000000000000";
    p[12..16].copy_from_slice(&n.to_be_bytes());
    p
}

pub fn urlencode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `event=completed` from `n` distinct peers on `hash`.
pub fn complete_n(t: &Tracker, hash: &[u8; 20], first_peer: u32, n: u32) {
    for p in first_peer..first_peer + n {
        t.announce_ok(hash, p, "completed");
    }
}

// ---------------------------------------------------------------------------
// Maintenance API

/// The coordinator's HTTP API at `addr`.
#[derive(Clone)]
pub struct Api {
    pub addr: SocketAddr,
    pub token: String,
    /// Lease ids its claims were answered, by window id: [`Api::post`]
    /// adds them to the calls on those windows that carry none.
    pub leases: Arc<Mutex<HashMap<String, String>>>,
}

/// Makes `body` a protocol-3 call: a claim says its protocol, the calls on
/// a claimed window carry its lease id (unless the body names one).
pub fn with_lease(call: &str, body: &mut serde_json::Value, leases: &HashMap<String, String>) {
    let Some(obj) = body.as_object_mut() else {
        return;
    };
    let window = obj.get("window_id").and_then(|w| w.as_str()).unwrap_or("");
    match call {
        "claim" => {
            obj.entry("protocol_version")
                .or_insert(maintenance_proto::PROTOCOL_VERSION.into());
        }
        "heartbeat" | "release" | "unpin" | "complete" if !obj.contains_key("lease_id") => {
            if let Some(lease) = leases.get(window) {
                obj.insert("lease_id".into(), lease.clone().into());
            }
        }
        _ => {}
    }
}

/// Remembers the lease id a successful claim of `body`'s window answered.
pub fn remember_lease(
    call: &str,
    body: &serde_json::Value,
    answer: &serde_json::Value,
    leases: &mut HashMap<String, String>,
) {
    if let (true, Some(window), Some(lease)) = (
        call == "claim",
        body["window_id"].as_str(),
        answer["lease_id"].as_str(),
    ) {
        leases.insert(window.to_owned(), lease.to_owned());
    }
}

impl Api {
    pub fn status(&self) -> StatusResponse {
        let (code, body) =
            http(self.addr, "GET", "/maintenance/v1/status", None, None).expect("GET status");
        assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).expect("status JSON")
    }

    /// POSTs `body` to `call` with the token; status code and JSON body.
    /// A claim says it speaks protocol 3, and calls on a window this `Api`
    /// claimed carry its lease id unless `body` has one.
    pub fn post(&self, call: &str, mut body: serde_json::Value) -> (u16, serde_json::Value) {
        with_lease(call, &mut body, &self.leases.lock().unwrap());
        let (code, text) = http(
            self.addr,
            "POST",
            &format!("/maintenance/v1/{call}"),
            Some(&self.token),
            Some(body.to_string().as_bytes()),
        )
        .unwrap_or_else(|e| panic!("POST {call}: {e}"));
        let json = serde_json::from_slice(&text)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&text).into()));
        remember_lease(call, &body, &json, &mut self.leases.lock().unwrap());
        (code, json)
    }

    /// Opens an ad hoc window; returns its id.
    pub fn open_window(&self, secs: u64) -> String {
        let (code, body) = self.post("windows", serde_json::json!({ "duration_secs": secs }));
        assert!((200..300).contains(&code), "open window: {code} {body}");
        body["window_id"].as_str().expect("window_id").to_owned()
    }
}

// ---------------------------------------------------------------------------
// Sidecar

/// `MAINTENANCE_URL` for one sidecar serving every tracker in `trackers`:
/// their maintenance APIs, comma-separated.
pub fn maintenance_urls(trackers: &[Tracker]) -> String {
    trackers
        .iter()
        .map(|t| format!("http://{}", t.maintenance.unwrap()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Environment of a sidecar pointed at `tracker` (SQLite engine when the
/// tracker uses SQLite), backing up into `backups`.
pub fn sidecar_env(tracker: &Tracker, backups: &Path) -> Vec<(String, String)> {
    sidecar_env_for(&tracker.config, tracker.maintenance.unwrap(), backups)
}

/// [`sidecar_env`] plus the database variables `db_env`, with the dump
/// program replaced by `script` through `dump_var` (`MYSQL_DUMP_COMMAND`,
/// `POSTGRES_DUMP_COMMAND`).
pub fn sidecar_env_with_dump(
    tracker: &Tracker,
    backups: &Path,
    db_env: Vec<(String, String)>,
    dump_var: &str,
    script: &Path,
) -> Vec<(String, String)> {
    let mut env = sidecar_env(tracker, backups);
    env.extend(db_env);
    set_env(&mut env, dump_var, &script.display().to_string());
    env
}

/// Like [`sidecar_env`] for a tracker that may not be running.
pub fn sidecar_env_for(
    config: &TrackerConfig,
    maintenance: SocketAddr,
    backups: &Path,
) -> Vec<(String, String)> {
    sidecar_env_of(&config.db, &config.ready_file, maintenance, backups)
}

/// The sidecar's environment for any tracker whose database is `db`,
/// readiness file `ready_file` and maintenance API `maintenance` (the
/// torrust-actix embedding's tests use it with their own tracker).
pub fn sidecar_env_of(
    db: &Db,
    ready_file: &Path,
    maintenance: SocketAddr,
    backups: &Path,
) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "MAINTENANCE_URL".to_owned(),
            format!("http://{maintenance}"),
        ),
        ("MAINTENANCE_TOKEN".to_owned(), TOKEN.to_owned()),
        (
            "MAINTENANCE_READY_FILE".to_owned(),
            ready_file.display().to_string(),
        ),
        ("BACKUP_DIR".to_owned(), backups.display().to_string()),
    ];
    match db {
        Db::Sqlite(p) => {
            env.push(("BACKUP_SQLITE_ENABLED".into(), "true".into()));
            env.push(("SQLITE_DATABASE_PATH".into(), p.display().to_string()));
            env.push(("BACKUP_MYSQL_ENABLED".into(), "false".into()));
        }
        Db::Mysql(_) => {
            env.push(("BACKUP_SQLITE_ENABLED".into(), "false".into()));
            env.push(("BACKUP_MYSQL_ENABLED".into(), "true".into()));
        }
        Db::Postgres(_) => {
            env.push(("BACKUP_SQLITE_ENABLED".into(), "false".into()));
            env.push(("BACKUP_MYSQL_ENABLED".into(), "false".into()));
            env.push(("BACKUP_POSTGRES_ENABLED".into(), "true".into()));
        }
    }
    env
}

/// Replaces or adds `key` in an env list.
pub fn set_env(env: &mut Vec<(String, String)>, key: &str, value: &str) {
    env.retain(|(k, _)| k != key);
    env.push((key.to_owned(), value.to_owned()));
}

/// A sidecar command with a clean environment plus `env`.
pub fn sidecar_cmd(env: &[(String, String)]) -> Command {
    sidecar_cmd_of(&bin("maintenance-sidecar"), env)
}

/// Like [`sidecar_cmd`] for another build of the sidecar (a baseline).
pub fn sidecar_cmd_of(binary: &Path, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(binary);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Starts `maintenance-sidecar run`; its log goes to `dir/sidecar-<name>.log`.
pub fn spawn_sidecar(dir: &Path, name: &str, env: &[(String, String)]) -> Proc {
    spawn_sidecar_of(&bin("maintenance-sidecar"), dir, name, env)
}

/// Like [`spawn_sidecar`] for another build of the sidecar (a baseline).
pub fn spawn_sidecar_of(binary: &Path, dir: &Path, name: &str, env: &[(String, String)]) -> Proc {
    let log = dir.join(format!("sidecar-{name}.log"));
    let f = std::fs::File::create(&log).unwrap();
    let child = sidecar_cmd_of(binary, env)
        .arg("run")
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .expect("spawn maintenance-sidecar");
    Proc {
        child: Some(child),
        log,
        name: format!("sidecar-{name}"),
    }
}

/// Runs a one-shot sidecar command (`verify`, `restore`, ...).
pub fn sidecar_output(env: &[(String, String)], args: &[&str]) -> Output {
    let out = sidecar_cmd(env)
        .args(args)
        .output()
        .expect("run maintenance-sidecar");
    eprintln!(
        "--- maintenance-sidecar {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Published backup folders (non-hidden directories, not `latest`).
pub fn published(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter(|e| e.file_name() != "latest")
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// Hidden staging folders.
pub fn staging_dirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".staging"))
        .map(|e| e.path())
        .collect()
}

/// No backup folder, no `latest`, no staging left behind.
pub fn assert_nothing_published(dir: &Path) {
    assert!(published(dir).is_empty(), "published: {:?}", published(dir));
    assert!(
        std::fs::symlink_metadata(dir.join("latest")).is_err(),
        "`latest` exists in {}",
        dir.display()
    );
    assert!(
        staging_dirs(dir).is_empty(),
        "staging left: {:?}",
        staging_dirs(dir)
    );
}

/// The manifest of a published backup.
pub fn manifest(backup: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(backup.join("manifest.json")).expect("manifest.json");
    serde_json::from_str(&text).unwrap()
}

// ---------------------------------------------------------------------------
// SQLite

/// `(info_hash hex, completed)` rows of a tracker database.
pub fn sqlite_counts(db: &Path) -> BTreeMap<String, i64> {
    sqlite_pairs(db, "SELECT info_hash, completed FROM torrents")
}

/// The `(text, integer)` rows `sql` selects from a SQLite file, read-only
/// (another tracker's schema: torrust-actix's `hex(infohash), completed`).
pub fn sqlite_pairs(db: &Path, sql: &str) -> BTreeMap<String, i64> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Creates a tracker-schema SQLite database with `torrents` rows and a
/// padding table of `pad_bytes` bytes of random blobs (incompressible),
/// in one transaction, checkpointed.
pub fn make_tracker_sqlite(db: &Path, torrents: &[([u8; 20], i64)], pad_bytes: u64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE IF NOT EXISTS torrents (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            info_hash TEXT NOT NULL UNIQUE,
            completed INTEGER DEFAULT 0 NOT NULL);
         CREATE TABLE IF NOT EXISTS padding (b BLOB);",
    )
    .unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    for (h, c) in torrents {
        tx.execute(
            "INSERT INTO torrents (info_hash, completed) VALUES (?1, ?2)",
            rusqlite::params![hex(h), c],
        )
        .unwrap();
    }
    let rows = pad_bytes / 65536;
    if rows > 0 {
        tx.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
             INSERT INTO padding SELECT randomblob(65536) FROM n",
            [rows as i64],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
}

// ---------------------------------------------------------------------------
// MariaDB

/// A database name no other test uses: `e2e_<prefix>_<pid>_<nanos>`.
pub fn unique_db_name(prefix: &str) -> String {
    format!(
        "e2e_{prefix}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

/// The throwaway MariaDB from `TEST_MARIADB_URL`.
#[derive(Debug, Clone)]
pub struct Maria {
    pub host: String,
    pub port: String,
    pub user: String,
    pub password: String,
}

/// Host, port, user and password of a throwaway test server, read from
/// `TEST_<NAME>_URL` (`scheme://user:pass@host:port[/db]`, one of
/// `schemes`), each overridable by `TEST_<NAME>_HOST`/`_PORT`/`_USER`/
/// `_PASSWORD`. `None` (after a skip message) when the URL is unset, but a
/// panic under `CI`, so a database test cannot silently skip there.
fn server_from_env(
    name: &str,
    product: &str,
    schemes: &[&str],
    default_port: &str,
    starter: &str,
) -> Option<[String; 4]> {
    let var = format!("TEST_{name}_URL");
    let url = match std::env::var(&var) {
        Ok(u) if !u.is_empty() => u,
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!("{var} is not set in CI ({starter} starts one)");
            }
            eprintln!("SKIPPED: {var} is not set; this {product} test did not run");
            return None;
        }
    };
    let rest = schemes
        .iter()
        .find_map(|s| url.strip_prefix(s))
        .unwrap_or(&url);
    let (cred, addr) = rest
        .rsplit_once('@')
        .unwrap_or_else(|| panic!("{var} must be {}user:pass@host:port", schemes[0]));
    let (user, password) = cred.split_once(':').unwrap_or((cred, ""));
    let addr = addr.split('/').next().unwrap();
    let (host, port) = addr.split_once(':').unwrap_or((addr, default_port));
    let get = |key: &str, parsed: &str| {
        std::env::var(format!("TEST_{name}_{key}"))
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| parsed.to_owned())
    };
    Some([
        get("HOST", host),
        get("PORT", port),
        get("USER", user),
        get("PASSWORD", password),
    ])
}

/// `Some` when `TEST_MARIADB_URL` is set; panics when unset under `CI`;
/// otherwise prints a skip message and returns `None`.
pub fn maria() -> Option<Maria> {
    let [host, port, user, password] = server_from_env(
        "MARIADB",
        "MariaDB",
        &["mysql://"],
        "3306",
        "scripts/test-mariadb.sh",
    )?;
    Some(Maria {
        host,
        port,
        user,
        password,
    })
}

impl Maria {
    /// Runs SQL with the `mariadb` client; returns stdout (tab-separated, no headers).
    pub fn sql(&self, sql: &str) -> String {
        let out = Command::new("mariadb")
            .args([
                &format!("--host={}", self.host),
                &format!("--port={}", self.port),
                &format!("--user={}", self.user),
                "--protocol=TCP",
                "-N",
                "-B",
                "-e",
                sql,
            ])
            .env("MYSQL_PWD", &self.password)
            .output()
            .expect("run mariadb client");
        assert!(
            out.status.success(),
            "sql failed: {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates a uniquely named empty database; dropped with the guard.
    pub fn create_db(&self, prefix: &str) -> MariaDb {
        let name = unique_db_name(prefix);
        self.sql(&format!("CREATE DATABASE `{name}`"));
        MariaDb {
            maria: self.clone(),
            name,
        }
    }

    /// The tracker's `[core.database] path` URL for `db` (the password
    /// comes from `TRACKER_DATABASE_PASSWORD`, see [`Maria::tracker_env`]).
    pub fn url(&self, db: &str) -> String {
        format!("mysql://{}:x@{}:{}/{db}", self.user, self.host, self.port)
    }

    /// The tracker's environment: the database password.
    pub fn tracker_env(&self) -> Vec<(&str, &str)> {
        tracker_password_env(&self.password)
    }

    /// MYSQL_* variables for the sidecar.
    pub fn sidecar_env(&self, db: &str) -> Vec<(String, String)> {
        vec![
            ("MYSQL_HOST".into(), self.host.clone()),
            ("MYSQL_PORT".into(), self.port.clone()),
            ("MYSQL_USER".into(), self.user.clone()),
            ("MYSQL_PASSWORD".into(), self.password.clone()),
            ("MYSQL_DATABASE".into(), db.to_owned()),
        ]
    }

    /// `(info_hash, completed)` rows of `db`.
    pub fn counts(&self, db: &str) -> BTreeMap<String, i64> {
        self.sql(&format!("SELECT info_hash, completed FROM `{db}`.torrents"))
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(h, c)| (h.to_owned(), c.trim().parse().unwrap()))
            .collect()
    }
}

/// A database on the test server, dropped on drop.
pub struct MariaDb {
    pub maria: Maria,
    pub name: String,
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| {
            self.maria
                .sql(&format!("DROP DATABASE IF EXISTS `{}`", self.name))
        });
    }
}

/// `TRACKER_DATABASE_PASSWORD`, the way a tracker gets its database
/// password (never in its config file).
fn tracker_password_env(password: &str) -> Vec<(&str, &str)> {
    vec![("TRACKER_DATABASE_PASSWORD", password)]
}

/// Starts a tracker on a MariaDB database.
pub fn start_mysql_tracker(dir: &Path, m: &Maria, db: &str, policy: &'static str) -> Tracker {
    let cfg = TrackerConfig::with_db(dir, Db::Mysql(m.url(db)), policy);
    Tracker::start_with_env(dir, &cfg, &m.tracker_env())
}

// ---------------------------------------------------------------------------
// PostgreSQL

/// The throwaway PostgreSQL cluster from `TEST_POSTGRES_URL`
/// (`scripts/test-postgres.sh` starts one).
#[derive(Debug, Clone)]
pub struct Pg {
    pub host: String,
    pub port: String,
    pub user: String,
    pub password: String,
}

/// `Some` when `TEST_POSTGRES_URL` is set; panics when unset under `CI`;
/// otherwise prints a skip message and returns `None`.
pub fn postgres() -> Option<Pg> {
    let [host, port, user, password] = server_from_env(
        "POSTGRES",
        "PostgreSQL",
        &["postgresql://", "postgres://"],
        "5432",
        "scripts/test-postgres.sh",
    )?;
    Some(Pg {
        host,
        port,
        user,
        password,
    })
}

impl Pg {
    /// Runs SQL in `db` with `psql`; returns stdout (`|`-separated, no headers).
    pub fn sql_in(&self, db: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                &self.host,
                "-p",
                &self.port,
                "-U",
                &self.user,
                "-d",
                db,
                "-c",
                sql,
            ])
            .env("PGPASSWORD", &self.password)
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "sql failed: {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The single value `sql` returns in `db`, parsed.
    pub fn scalar<T: std::str::FromStr>(&self, db: &str, sql: &str) -> T
    where
        T::Err: std::fmt::Debug,
    {
        let out = self.sql_in(db, sql);
        out.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{sql}: {out:?} is not one value: {e:?}"))
    }

    /// Creates a uniquely named empty database; dropped with the guard.
    pub fn create_db(&self, prefix: &str) -> PgDb {
        let name = unique_db_name(prefix);
        self.sql_in("postgres", &format!("CREATE DATABASE \"{name}\""));
        PgDb {
            pg: self.clone(),
            name,
        }
    }

    /// The tracker's `[core.database] path` URL for `db` (the password
    /// comes from `TRACKER_DATABASE_PASSWORD`, see [`Pg::tracker_env`]).
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgresql://{}:x@{}:{}/{db}",
            self.user, self.host, self.port
        )
    }

    /// The tracker's environment: the database password.
    pub fn tracker_env(&self) -> Vec<(&str, &str)> {
        tracker_password_env(&self.password)
    }

    /// POSTGRES_* variables for the sidecar.
    pub fn sidecar_env(&self, db: &str) -> Vec<(String, String)> {
        vec![
            ("POSTGRES_HOST".into(), self.host.clone()),
            ("POSTGRES_PORT".into(), self.port.clone()),
            ("POSTGRES_USER".into(), self.user.clone()),
            ("POSTGRES_PASSWORD".into(), self.password.clone()),
            ("POSTGRES_DATABASE".into(), db.to_owned()),
        ]
    }

    /// `(info_hash, completed)` rows of `db`.
    pub fn counts(&self, db: &str) -> BTreeMap<String, i64> {
        self.sql_in(db, "SELECT info_hash, completed FROM torrents")
            .lines()
            .filter_map(|l| l.split_once('|'))
            .map(|(h, c)| (h.to_owned(), c.trim().parse().unwrap()))
            .collect()
    }
}

/// A database on the test cluster, dropped on drop.
pub struct PgDb {
    pub pg: Pg,
    pub name: String,
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| {
            self.pg.sql_in(
                "postgres",
                &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
            )
        });
    }
}

/// Starts a tracker on a PostgreSQL database.
pub fn start_postgres_tracker(dir: &Path, pg: &Pg, db: &str, policy: &'static str) -> Tracker {
    let cfg = TrackerConfig::with_db(dir, Db::Postgres(pg.url(db)), policy);
    Tracker::start_with_env(dir, &cfg, &pg.tracker_env())
}

// ---------------------------------------------------------------------------
// Waiting

/// The median of `values` (the mean of the two middle ones for an even
/// count; NaN for none): the one median of every benchmark.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Polls `f` every 20 ms until true; false after `timeout`.
pub fn poll(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Like [`poll`], panicking with `what` on timeout.
pub fn wait_until(timeout: Duration, what: &str, f: impl FnMut() -> bool) {
    assert!(
        poll(timeout, f),
        "timed out after {timeout:?} waiting for {what}"
    );
}

/// A fresh temp dir under the system temp folder.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("maint-e2e-")
        .tempdir()
        .unwrap()
}

/// Writes an executable shell script.
pub fn write_script(path: &Path, body: &str) {
    std::fs::write(path, body).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Writes the bash script `dir/name` running `body` (a stand-in or wrapper
/// for a dump program); returns its path.
pub fn dump_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    write_script(&path, &format!("#!/bin/bash\n{body}\n"));
    path
}

// ---------------------------------------------------------------------------
// HTTP/1.1 (blocking, one connection per request)

/// One request with `Connection: close`; returns status and (de-chunked) body.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or(b"");
    if method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    let end = find(raw, b"\r\n\r\n").ok_or_else(|| bad("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let code: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let mut body = raw[end + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = find(rest, b"\r\n").ok_or_else(|| bad("chunk"))?;
            let n = usize::from_str_radix(String::from_utf8_lossy(&rest[..nl]).trim(), 16)
                .map_err(|_| bad("chunk size"))?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + n]);
            rest = &rest[nl + 4 + n..];
        }
        body = out;
    }
    Ok((code, body))
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// A keep-alive HTTP/1.1 connection for GETs (benchmarks).
pub struct KeepAlive {
    stream: BufReader<TcpStream>,
    host: String,
}

impl KeepAlive {
    pub fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(KeepAlive {
            stream: BufReader::new(s),
            host: addr.to_string(),
        })
    }

    /// GET `path`; status and body. Needs a Content-Length response.
    pub fn get(&mut self, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host);
        self.stream.get_mut().write_all(req.as_bytes())?;
        let mut line = String::new();
        self.stream.read_line(&mut line)?;
        let code: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("status line {line:?}"),
                )
            })?;
        let mut len = 0usize;
        loop {
            line.clear();
            self.stream.read_line(&mut line)?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            let l = line.to_ascii_lowercase();
            if let Some(v) = l.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; len];
        self.stream.read_exact(&mut body)?;
        Ok((code, body))
    }
}

// ---------------------------------------------------------------------------
// Bencode

/// A decoded bencode value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Dict(BTreeMap<Vec<u8>, Value>),
}

impl Value {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.get_bytes(key.as_bytes())
    }
    pub fn get_bytes(&self, key: &[u8]) -> Option<&Value> {
        match self {
            Value::Dict(d) => d.get(key),
            _ => None,
        }
    }
    pub fn int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    pub fn str(&self) -> Option<String> {
        match self {
            Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

/// Decodes one complete bencode value (trailing bytes are an error).
pub fn decode(input: &[u8]) -> Result<Value, String> {
    let (v, rest) = decode_one(input)?;
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes", rest.len()));
    }
    Ok(v)
}

fn decode_one(b: &[u8]) -> Result<(Value, &[u8]), String> {
    match b.first() {
        Some(b'i') => {
            let e = b
                .iter()
                .position(|&c| c == b'e')
                .ok_or("unterminated int")?;
            let n = std::str::from_utf8(&b[1..e]).map_err(|e| e.to_string())?;
            Ok((
                Value::Int(n.parse().map_err(|_| format!("bad int {n:?}"))?),
                &b[e + 1..],
            ))
        }
        Some(b'l') => {
            let mut rest = &b[1..];
            let mut v = Vec::new();
            while rest.first() != Some(&b'e') {
                let (x, r) = decode_one(rest)?;
                v.push(x);
                rest = r;
            }
            Ok((Value::List(v), &rest[1..]))
        }
        Some(b'd') => {
            let mut rest = &b[1..];
            let mut d = BTreeMap::new();
            while rest.first() != Some(&b'e') {
                let (k, r) = decode_one(rest)?;
                let Value::Bytes(k) = k else {
                    return Err("non-string key".into());
                };
                let (x, r) = decode_one(r)?;
                d.insert(k, x);
                rest = r;
            }
            Ok((Value::Dict(d), &rest[1..]))
        }
        Some(c) if c.is_ascii_digit() => {
            let colon = b.iter().position(|&c| c == b':').ok_or("no colon")?;
            let n: usize = std::str::from_utf8(&b[..colon])
                .unwrap()
                .parse()
                .map_err(|_| "bad length")?;
            let s = colon + 1;
            if b.len() < s + n {
                return Err("short string".into());
            }
            Ok((Value::Bytes(b[s..s + n].to_vec()), &b[s + n..]))
        }
        _ => Err("unexpected end or byte".into()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(super::median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(super::median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(super::median(&[]).is_nan());
    }
}
