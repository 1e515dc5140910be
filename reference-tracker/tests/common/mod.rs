//! Shared helpers for the end-to-end tests: run the real `reference-tracker`
//! binary on loopback with OS-assigned ports, talk to it over HTTP, and read
//! its database directly.
#![allow(dead_code)]

pub mod udp_client;

/// Shared with the end-to-end harness: percent-encoding, hex, the
/// `(info_hash, completed)` rows of a SQLite database.
#[allow(unused_imports)] // not every test binary reads a database
pub use maintenance_e2e::{hex, sqlite_counts, urlencode};

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use maintenance_proto::{State, StatusResponse};
use reference_tracker::bencode::{decode, Value};
use sha2::{Digest, Sha256};

/// Bearer token every test config uses.
pub const TOKEN: &str = "test-token-0123456789abcdef";

/// A running tracker process; killed on drop.
pub struct Tracker {
    child: Option<Child>,
    /// `[[http_trackers]]` address.
    pub http: SocketAddr,
    /// `[health_check_api]` address.
    pub health: SocketAddr,
    /// Maintenance API address, when configured.
    pub maintenance: Option<SocketAddr>,
    /// `[[udp_trackers]]` addresses, in the order they were bound.
    pub udp: Vec<SocketAddr>,
    /// Captured stderr lines (logs), for failure messages.
    stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    pub client: reqwest::Client,
    /// Lease ids answered to claims made through [`Tracker::post_api`].
    leases: std::sync::Mutex<HashMap<String, String>>,
}

/// Writes `config` into `dir/tracker.toml` and starts the binary on it,
/// in `dir` (relative paths in the config resolve there).
pub fn start(dir: &Path, config: &str) -> Tracker {
    start_with_env(dir, config, &[])
}

/// Like [`start`], with extra environment variables.
pub fn start_with_env(dir: &Path, config: &str, env: &[(&str, &str)]) -> Tracker {
    let path = dir.join("tracker.toml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reference-tracker"));
    cmd.arg("--config")
        .arg(&path)
        .current_dir(dir)
        .env("RUST_LOG", "info,reference_tracker=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn reference-tracker");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let logs2 = logs.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[tracker] {line}");
            logs2.lock().unwrap().push(line);
        }
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wants_maintenance = config.contains("[maintenance]") && config.contains("bind =");
    let wants_udp = config.matches("[[udp_trackers]]").count();
    let mut addrs: HashMap<String, SocketAddr> = HashMap::new();
    let mut udp = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let done = addrs.contains_key("http_tracker")
            && addrs.contains_key("health_check_api")
            && (!wants_maintenance || addrs.contains_key("maintenance_api"))
            && udp.len() == wants_udp;
        if done {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(rest) = line.strip_prefix("reference-tracker: ") {
                    if let Some((kind, addr)) = rest.split_once(" listening on ") {
                        if kind == "udp_tracker" {
                            udp.push(addr.parse().unwrap());
                        }
                        addrs.insert(kind.to_owned(), addr.parse().unwrap());
                    }
                }
            }
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().unwrap();
                panic!(
                    "tracker did not report its listeners (exit {status:?}); logs:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        }
    }
    Tracker {
        child: Some(child),
        http: addrs["http_tracker"],
        health: addrs["health_check_api"],
        maintenance: addrs.get("maintenance_api").copied(),
        udp,
        stderr: logs,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        leases: Default::default(),
    }
}

/// A 20-byte id made from a number, including non-UTF-8 bytes.
pub fn id20(tag: u8, n: u32) -> [u8; 20] {
    let mut id = [0xF0u8; 20];
    id[0] = tag;
    id[1] = 0x00;
    id[2] = 0xFF;
    id[16..].copy_from_slice(&n.to_be_bytes());
    id
}

impl Tracker {
    /// GETs a path on the HTTP tracker and decodes the bencoded body,
    /// checking it is a 200.
    pub async fn get_bencode(&self, path_and_query: &str) -> Value {
        let url = format!("http://{}{}", self.http, path_and_query);
        let resp = self.client.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 200, "GET {url}");
        let body = resp.bytes().await.unwrap();
        decode(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body:?}"))
    }

    /// Announces and decodes the answer. `extra` is appended as is.
    pub async fn announce(
        &self,
        info_hash: &[u8; 20],
        peer_id: &[u8; 20],
        port: u16,
        extra: &str,
    ) -> Value {
        self.get_bencode(&format!(
            "/announce?info_hash={}&peer_id={}&port={port}{extra}",
            urlencode(info_hash),
            urlencode(peer_id)
        ))
        .await
    }

    /// Scrapes the given torrents.
    pub async fn scrape(&self, hashes: &[[u8; 20]]) -> Value {
        let q: Vec<String> = hashes
            .iter()
            .map(|h| format!("info_hash={}", urlencode(h)))
            .collect();
        self.get_bencode(&format!("/scrape?{}", q.join("&"))).await
    }

    /// `downloaded` of one torrent according to scrape.
    pub async fn scraped_downloaded(&self, hash: &[u8; 20]) -> i64 {
        let v = self.scrape(&[*hash]).await;
        v.get("files")
            .and_then(|f| f.as_dict())
            .and_then(|f| f.get(&hash[..]))
            .and_then(|t| t.get("downloaded"))
            .and_then(|d| d.as_int())
            .unwrap_or_else(|| panic!("scrape without downloaded: {v:?}"))
    }

    fn api(&self, path: &str) -> String {
        let addr = self.maintenance.expect("maintenance API not configured");
        format!("http://{addr}/maintenance/v1/{path}")
    }

    /// The coordinator's status.
    pub async fn status(&self) -> StatusResponse {
        let resp = self.client.get(self.api("status")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    /// Opens an ad hoc window of `secs` seconds.
    pub async fn open_window(&self, secs: u64) {
        let resp = self
            .client
            .post(self.api("windows"))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({ "duration_secs": secs }))
            .send()
            .await
            .unwrap();
        let code = resp.status();
        let body = resp.text().await.unwrap();
        assert!(code.is_success(), "open window: {code} {body}");
    }

    /// Ends the running window.
    pub async fn abort(&self) {
        let st = self.status().await;
        let resp = self
            .client
            .post(self.api("abort"))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({ "window_id": st.window_id }))
            .send()
            .await
            .unwrap();
        let code = resp.status();
        let body = resp.text().await.unwrap();
        assert!(code.is_success(), "abort: {code} {body}");
    }

    /// POSTs a JSON body to a maintenance API call with the token and
    /// returns the status code and body. A claim says it speaks protocol 3;
    /// calls on a window claimed here carry its lease id unless `body` has
    /// one.
    pub async fn post_api(
        &self,
        call: &str,
        mut body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        maintenance_e2e::with_lease(call, &mut body, &self.leases.lock().unwrap());
        let resp = self
            .client
            .post(self.api(call))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let code = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        maintenance_e2e::remember_lease(call, &body, &json, &mut self.leases.lock().unwrap());
        (code, json)
    }

    /// Polls the status until `want`, or panics after `timeout`.
    pub async fn wait_state(&self, want: State, timeout: Duration) -> StatusResponse {
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.status().await;
            if st.state == want {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "state stayed {} (wanted {want}); status {st:?}",
                st.state
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        let ok = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "tracker exited with {status:?}");
                return;
            }
            assert!(Instant::now() < deadline, "tracker did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id (to read `/proc/PID/status`).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// The tracker's log so far.
    pub fn logs(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs the binary on `dir/tracker.toml` (already written), in `dir`, and
/// expects it to refuse to start: returns its stderr once it exited with a
/// failure within 30 s.
pub fn expect_refusal(dir: &Path, env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reference-tracker"));
    cmd.arg("--config")
        .arg(dir.join("tracker.toml"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn reference-tracker");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the tracker started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "exited 0: {stderr}");
    stderr
}

/// A config for a SQLite tracker in `dir` with its maintenance API on.
pub fn sqlite_config(dir: &Path, policy: &str) -> String {
    format!(
        r#"
[logging]
threshold = "info"

[core.database]
driver = "sqlite3"
path = "{db}"
flush_interval = "100ms"

[core.announce_policy]
interval = 120
interval_min = 60

[[http_trackers]]
bind_address = "127.0.0.1:0"

[health_check_api]
bind_address = "127.0.0.1:0"

[maintenance]
enabled = false
announce_policy = "{policy}"
bind = "127.0.0.1:0"
token = "{TOKEN}"
ready_file = "{ready}"
lease_ttl = "2s"
"#,
        db = dir.join("tracker.db").display(),
        ready = dir.join("ready.json").display(),
    )
}

/// `config` plus one `[[udp_trackers]]` entry per address.
pub fn with_udp(config: &str, addrs: &[&str]) -> String {
    let mut out = config.to_owned();
    for a in addrs {
        out.push_str(&format!("\n[[udp_trackers]]\nbind_address = \"{a}\"\n"));
    }
    out
}

/// Resident memory of a process in KiB, from `/proc/PID/status`.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Size, mtime and sha256 of a file, or `None` when absent.
pub fn fingerprint(path: &Path) -> Option<(u64, std::time::SystemTime, String)> {
    let meta = std::fs::metadata(path).ok()?;
    let bytes = std::fs::read(path).ok()?;
    Some((
        meta.len(),
        meta.modified().unwrap(),
        hex(&Sha256::digest(&bytes)),
    ))
}

/// The database file and its `-wal` companion.
pub fn db_files(db: &Path) -> Vec<PathBuf> {
    let name = db.file_name().unwrap().to_str().unwrap();
    vec![db.to_path_buf(), db.with_file_name(format!("{name}-wal"))]
}

/// Polls `f` until it returns true, or panics with `what` after `timeout`.
pub async fn eventually<F: FnMut() -> bool>(timeout: Duration, what: &str, mut f: F) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
