//! Shared helpers for the end-to-end tests: run the real `reference-tracker`
//! binary on loopback with OS-assigned ports (through the harness's process
//! wrapper, [`maintenance_e2e::TrackerProcess`]), talk to it over HTTP, and
//! read its database directly.
#![allow(dead_code)]

pub mod udp_client;

/// Shared with the end-to-end harness: percent-encoding, hex, the
/// `(info_hash, completed)` rows of a SQLite database, a 20-byte id with
/// non-UTF-8 bytes, polling until a condition holds, a process's memory.
#[allow(unused_imports)] // not every test binary uses each of them
pub use maintenance_e2e::{hex, info_hash, sqlite_counts, urlencode, vm_rss_kib, wait_until};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use maintenance_e2e::TrackerProcess;
use maintenance_proto::{State, StatusResponse};
use reference_tracker::bencode::{decode, Value};
use sha2::{Digest, Sha256};

/// Bearer token every test config uses.
pub const TOKEN: &str = "test-token-0123456789abcdef";

/// A running tracker process (killed on drop) with an HTTP client for its
/// tracker and maintenance API; its addresses, [`TrackerProcess::pid`] and
/// [`TrackerProcess::logs`] are the process wrapper's.
pub struct Tracker {
    process: TrackerProcess,
    /// The client every helper here uses.
    pub client: reqwest::Client,
    /// Lease ids answered to claims made through [`Tracker::post_api`].
    leases: std::sync::Mutex<HashMap<String, String>>,
}

impl std::ops::Deref for Tracker {
    type Target = TrackerProcess;

    fn deref(&self) -> &TrackerProcess {
        &self.process
    }
}

/// Writes `config` into `dir` and starts the binary on it, in `dir`
/// (relative paths in the config resolve there).
pub fn start(dir: &Path, config: &str) -> Tracker {
    start_with_env(dir, config, &[])
}

/// Like [`start`], with extra environment variables (the tracker logs at
/// debug level unless `env` sets `RUST_LOG`).
pub fn start_with_env(dir: &Path, config: &str, env: &[(&str, &str)]) -> Tracker {
    let mut all = vec![("RUST_LOG", "info,reference_tracker=debug")];
    all.extend_from_slice(env);
    Tracker {
        process: TrackerProcess::start(
            Path::new(env!("CARGO_BIN_EXE_reference-tracker")),
            dir,
            config,
            &all,
            Duration::from_secs(30),
        ),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        leases: Default::default(),
    }
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
    pub fn stop(self) {
        self.process.stop();
    }
}

/// Writes `config` into `dir/refused.toml` and runs the binary on it, in
/// `dir`, expecting it to refuse to start: returns its stderr once it
/// exited with a failure within 30 s.
pub fn expect_refusal(dir: &Path, config: &str, env: &[(&str, &str)]) -> String {
    let path = dir.join("refused.toml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reference-tracker"));
    cmd.arg("--config")
        .arg(&path)
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
