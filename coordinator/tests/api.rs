//! Drives a real coordinator through its HTTP API on a loopback port:
//! ad hoc windows end to end, every timeout path, authentication, fencing,
//! long-poll wake-up and the readiness file.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use maintenance_coordinator::{
    Coordinator, HookError, MaintenanceConfig, MaintenanceHooks, PinMode, ReadinessFile, WindowInfo,
};
use maintenance_proto::{
    Ack, BackupReport, CompleteResponse, ErrorBody, ErrorCode, LeaseResponse, OpenWindowResponse,
    Outcome, ReadinessDocument, State, StatusResponse, WindowId,
};
use serde_json::{json, Value};

const TOKEN: &str = "test-token-0123456789";

/// Hooks that record calls and can be told to fail or hang.
#[derive(Default)]
struct RecordingHooks {
    quiesce_calls: AtomicUsize,
    resume_calls: AtomicUsize,
    quiesce_delay: Duration,
    quiesce_error: Option<&'static str>,
    /// The pin quiesce leaves, if any.
    pin: Option<PinMode>,
    unpin_calls: AtomicUsize,
}

#[async_trait::async_trait]
impl MaintenanceHooks for RecordingHooks {
    async fn quiesce(&self, _w: &WindowInfo) -> Result<(), HookError> {
        self.quiesce_calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.quiesce_delay).await;
        match self.quiesce_error {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    async fn resume(&self, _w: &WindowInfo) -> Result<(), HookError> {
        self.resume_calls.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn pin_mode(&self) -> Option<PinMode> {
        self.pin
    }

    async fn unpin(&self, _w: &WindowInfo) -> Result<(), HookError> {
        self.unpin_calls.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn wal_bytes(&self) -> Option<u64> {
        Some(4096)
    }
}

/// Hooks whose quiesce leaves a pin of `mode`.
fn pinned(mode: PinMode) -> RecordingHooks {
    RecordingHooks {
        pin: Some(mode),
        ..RecordingHooks::default()
    }
}

struct Harness {
    coordinator: Coordinator,
    hooks: Arc<RecordingHooks>,
    base: String,
    http: reqwest::Client,
    ready_file: PathBuf,
    /// Lease ids answered to claims made through [`Harness::post`].
    leases: std::sync::Mutex<std::collections::HashMap<String, String>>,
    _dir: tempfile::TempDir,
}

async fn start(extra: &str, hooks: RecordingHooks) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let ready_file = dir.path().join("ready.json");
    start_in(dir, ready_file, extra, hooks).await
}

async fn start_in(
    dir: tempfile::TempDir,
    ready_file: PathBuf,
    extra: &str,
    hooks: RecordingHooks,
) -> Harness {
    // Defaults for a fast test, unless `extra` sets the key itself.
    let defaults: String = [
        "drain_timeout = \"2s\"",
        "quiesce_timeout = \"2s\"",
        "lease_ttl = \"2s\"",
    ]
    .iter()
    .filter(|line| !extra.contains(line.split(' ').next().unwrap()))
    .map(|line| format!("{line}\n"))
    .collect();
    let text = format!(
        "[tracker]\nname = \"ignored\"\n\n[maintenance]\nwindow = \"03:00-03:05\"\ntoken = \"{TOKEN}\"\n\
         ready_file = {:?}\n{defaults}{extra}\n",
        ready_file.display().to_string()
    );
    launch(&text, dir, ready_file, hooks).await
}

async fn launch(
    text: &str,
    dir: tempfile::TempDir,
    ready_file: PathBuf,
    hooks: RecordingHooks,
) -> Harness {
    let config = MaintenanceConfig::from_toml_str(text).unwrap();
    let hooks = Arc::new(hooks);
    let coordinator = Coordinator::start(config, hooks.clone()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = coordinator.clone();
    tokio::spawn(async move { server.serve(listener).await.unwrap() });
    Harness {
        coordinator,
        hooks,
        base: format!("http://{addr}/maintenance/v1"),
        http: reqwest::Client::new(),
        ready_file,
        leases: Default::default(),
        _dir: dir,
    }
}

impl Harness {
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.post_with(path, body, Some(TOKEN)).await
    }

    /// POSTs `body`; a claim says it speaks protocol 3, and calls on a
    /// window claimed here carry its lease id unless `body` has one.
    async fn post_with(&self, path: &str, mut body: Value, token: Option<&str>) -> (u16, Value) {
        maintenance_e2e::with_lease(path, &mut body, &self.leases.lock().unwrap());
        let mut req = self.http.post(format!("{}/{path}", self.base)).json(&body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let answer: Value = resp.json().await.unwrap();
        maintenance_e2e::remember_lease(path, &body, &answer, &mut self.leases.lock().unwrap());
        (status, answer)
    }

    async fn status(&self) -> StatusResponse {
        self.get_status("").await
    }

    async fn get_status(&self, query: &str) -> StatusResponse {
        let resp = self
            .http
            .get(format!("{}/status{query}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    /// Long-polls until `pred` holds, failing after `limit`.
    async fn wait_until(
        &self,
        limit: Duration,
        pred: impl Fn(&StatusResponse) -> bool,
    ) -> StatusResponse {
        let deadline = Instant::now() + limit;
        let mut status = self.status().await;
        while !pred(&status) {
            assert!(
                Instant::now() < deadline,
                "condition not reached; last status: {status:?}"
            );
            status = self
                .get_status(&format!("?wait=1&since={}", status.version))
                .await;
        }
        status
    }

    async fn open(&self, secs: u64) -> WindowId {
        let (code, body) = self.post("windows", json!({"duration_secs": secs})).await;
        assert_eq!(code, 200, "{body}");
        let opened: OpenWindowResponse = serde_json::from_value(body).unwrap();
        opened.window_id
    }

    async fn open_until_ready(&self, secs: u64) -> WindowId {
        let id = self.open(secs).await;
        self.wait_until(Duration::from_secs(5), |s| s.state == State::Ready)
            .await;
        id
    }

    async fn claim(&self, id: &WindowId, sidecar: &str) -> (u16, Value) {
        self.post("claim", json!({"window_id": id, "sidecar_id": sidecar}))
            .await
    }

    async fn last_outcome(&self) -> maintenance_proto::WindowOutcome {
        let status = self
            .wait_until(Duration::from_secs(10), |s| {
                s.state == State::Idle && !s.last_outcomes.is_empty()
            })
            .await;
        status.last_outcomes[0].clone()
    }

    async fn wait_ready_doc(&self, pred: impl Fn(&ReadinessDocument) -> bool) -> ReadinessDocument {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let doc = self.ready_doc();
            if pred(&doc) {
                return doc;
            }
            assert!(
                Instant::now() < deadline,
                "ready file never matched: {doc:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn ready_doc(&self) -> ReadinessDocument {
        ReadinessFile::new(&self.ready_file).read().unwrap()
    }
}

fn error_code(body: &Value) -> ErrorCode {
    let err: ErrorBody = serde_json::from_value(body.clone()).unwrap();
    assert!(!err.message.is_empty());
    err.code
}

#[tokio::test]
async fn ad_hoc_window_end_to_end_with_release() {
    let h = start("", RecordingHooks::default()).await;
    let gate = h.coordinator.gate();
    assert!(gate.admit_announce().is_ok());

    let id = h.open_until_ready(30).await;
    let status = h.status().await;
    assert_eq!(status.window_id.as_ref(), Some(&id));
    assert!(status.current_window.is_some());
    assert_eq!(h.hooks.quiesce_calls.load(Ordering::SeqCst), 1);

    // The status turns ready first; the file follows from the blocking pool.
    let doc = h.wait_ready_doc(|d| d.ready).await;
    assert_eq!(doc.state, State::Ready);
    assert_eq!(doc.window_id.as_ref(), Some(&id));
    assert_eq!(doc.instance_id, status.instance_id);

    let refusal = gate.admit_announce().err().expect("reject policy refuses");
    assert!(refusal.retry_after >= Duration::from_secs(20));
    assert!(gate.begin_write().is_none());

    let (code, body) = h.claim(&id, "sidecar-a").await;
    assert_eq!(code, 200, "{body}");
    let lease: LeaseResponse = serde_json::from_value(body).unwrap();
    assert_eq!(lease.window_id, id);
    assert_eq!(lease.lease_ttl_secs, 2.0);
    assert_eq!(h.status().await.state, State::Claimed);

    let (code, _) = h.post("heartbeat", json!({"window_id": id})).await;
    assert_eq!(code, 200);
    let (code, body) = h.post("release", json!({"window_id": id})).await;
    assert_eq!(code, 200);
    let ack: Ack = serde_json::from_value(body).unwrap();
    assert_eq!(ack.state, State::Resuming);

    // The tracker resumes right after release, before completion.
    let status = h
        .wait_until(Duration::from_secs(5), |s| s.state == State::Idle)
        .await;
    assert_eq!(status.released_window.unwrap().window_id, id);
    assert!(gate.admit_announce().is_ok());
    assert!(gate.begin_write().is_some());
    assert_eq!(h.hooks.resume_calls.load(Ordering::SeqCst), 1);
    assert!(!h.ready_doc().ready);

    // Heartbeats still work while compressing; then complete.
    let (code, _) = h.post("heartbeat", json!({"window_id": id})).await;
    assert_eq!(code, 200);
    let report = BackupReport {
        backup: Some("20261126T030000Z-x".into()),
        ..Default::default()
    };
    let (code, body) = h
        .post("complete", json!({"window_id": id, "report": report}))
        .await;
    assert_eq!(code, 200, "{body}");
    let done: CompleteResponse = serde_json::from_value(body).unwrap();
    assert_eq!(done.outcome, Outcome::Completed);
    let outcome = h.last_outcome().await;
    assert_eq!(outcome.window_id, id);
    assert_eq!(outcome.outcome, Outcome::Completed);
    assert_eq!(
        outcome.report.unwrap().backup.as_deref(),
        Some("20261126T030000Z-x")
    );
    assert!(h.status().await.released_window.is_none());

    // Completion is idempotent.
    let (code, body) = h
        .post("complete", json!({"window_id": id, "report": report}))
        .await;
    assert_eq!(code, 200);
    assert_eq!(body["outcome"], "completed");
    assert_eq!(h.status().await.last_outcomes.len(), 1);
}

/// The lease belongs to its claimant alone (protocol 3): calls without
/// the claim's lease id, or on a window nobody claimed, get 409 with a
/// JSON reason and change nothing; a sidecar of an older protocol is
/// refused at the claim with the upgrade named.
#[tokio::test]
async fn the_lease_belongs_to_the_claimant_alone() {
    let h = start("lease_ttl = \"30s\"", pinned(PinMode::WritesContinue)).await;
    let id = h.open_until_ready(60).await;

    // Unpin of a window nobody claimed: refused, the pin stays.
    let (code, body) = h.post("unpin", json!({"window_id": id})).await;
    assert_eq!(
        (code, error_code(&body)),
        (409, ErrorCode::WrongState),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("not claimed"),
        "{body}"
    );
    assert!(h.status().await.pin.is_some_and(|p| p.window_id == id));
    assert_eq!(h.hooks.unpin_calls.load(Ordering::SeqCst), 0);

    // An older sidecar's claim (no protocol_version, or 2): refused.
    for old in [json!(null), json!(2)] {
        let (code, body) = h
            .post(
                "claim",
                json!({"window_id": id, "sidecar_id": "old", "protocol_version": old}),
            )
            .await;
        assert_eq!(
            (code, error_code(&body)),
            (400, ErrorCode::InvalidRequest),
            "{body}"
        );
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("upgrade maintenance-sidecar"), "{message}");
    }
    assert_eq!(h.status().await.state, State::Ready);

    let (code, body) = h.claim(&id, "sidecar-a").await;
    assert_eq!(code, 200, "{body}");
    let lease: LeaseResponse = serde_json::from_value(body).unwrap();
    let lease_id = lease.lease_id.clone().expect("a lease id");
    assert_eq!(lease_id.len(), 32);
    assert!(lease_id.chars().all(|c| c.is_ascii_hexdigit()));
    let expires = h.status().await.lease_expires_at;

    // Another sidecar, or the same name without the lease id: no claim.
    for sidecar in ["sidecar-b", "sidecar-a"] {
        let (code, body) = h.claim(&id, sidecar).await;
        assert_eq!(
            (code, error_code(&body)),
            (409, ErrorCode::AlreadyClaimed),
            "{body}"
        );
    }
    // Heartbeat, release, unpin, complete without the lease id or with
    // another one (what another sidecar has): 409, nothing moves.
    let report = json!({"backup": "b", "artifacts": [], "durations_secs": {}, "error": null});
    for lease in [json!(null), json!("0123456789abcdef0123456789abcdef")] {
        for (call, body) in [
            (
                "heartbeat",
                json!({"window_id": id, "lease_id": lease, "sidecar_id": "sidecar-b"}),
            ),
            ("release", json!({"window_id": id, "lease_id": lease})),
            ("unpin", json!({"window_id": id, "lease_id": lease})),
            (
                "complete",
                json!({"window_id": id, "lease_id": lease, "report": report}),
            ),
        ] {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let (code, answer) = h.post(call, body).await;
            assert_eq!(
                (code, error_code(&answer)),
                (409, ErrorCode::LeaseMismatch),
                "{call} {lease}: {answer}"
            );
            assert!(
                answer["message"].as_str().unwrap().contains("sidecar-a"),
                "{answer}"
            );
        }
    }
    let status = h.status().await;
    assert_eq!(status.state, State::Claimed);
    assert_eq!(
        status.lease_expires_at, expires,
        "the lease was not extended"
    );
    assert_eq!(h.hooks.unpin_calls.load(Ordering::SeqCst), 0);

    // Complete before release, even by the claimant: refused.
    let (code, body) = h
        .post("complete", json!({"window_id": id, "report": report}))
        .await;
    assert_eq!(
        (code, error_code(&body)),
        (409, ErrorCode::WrongState),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("never released"),
        "{body}"
    );
    assert_eq!(h.status().await.state, State::Claimed);

    // The claimant renews with its lease id, and goes on.
    let (code, body) = h
        .post(
            "claim",
            json!({"window_id": id, "sidecar_id": "sidecar-a", "lease_id": lease_id}),
        )
        .await;
    assert_eq!(
        (code, body["lease_id"].as_str()),
        (200, Some(lease_id.as_str())),
        "{body}"
    );
    assert_eq!(h.post("heartbeat", json!({"window_id": id})).await.0, 200);
    let (code, body) = h
        .post("release", json!({"window_id": id, "keep_pin": true}))
        .await;
    assert_eq!(
        (code, body["pinned"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    assert_eq!(h.post("unpin", json!({"window_id": id})).await.0, 200);
    let (code, body) = h
        .post("complete", json!({"window_id": id, "report": report}))
        .await;
    assert_eq!(
        (code, &body["outcome"]),
        (200, &json!("completed")),
        "{body}"
    );
}

#[tokio::test]
async fn complete_without_release_resumes_and_records_failure() {
    let h = start("", RecordingHooks::default()).await;
    let id = h.open_until_ready(30).await;
    assert_eq!(h.claim(&id, "s").await.0, 200);
    let report = json!({"backup": null, "artifacts": [], "durations_secs": {}, "error": "mariadb-dump exited 2"});
    let (code, body) = h
        .post("complete", json!({"window_id": id, "report": report}))
        .await;
    assert_eq!(code, 200);
    assert_eq!(body["outcome"], "failed");
    let outcome = h.last_outcome().await;
    assert_eq!(outcome.outcome, Outcome::Failed);
    assert_eq!(outcome.reason.as_deref(), Some("mariadb-dump exited 2"));
    assert!(h.coordinator.gate().admit_announce().is_ok());
}

#[tokio::test]
async fn mutating_calls_need_the_token() {
    let h = start("", RecordingHooks::default()).await;
    for token in [None, Some("wrong-token-0123456789")] {
        for path in [
            "windows",
            "claim",
            "heartbeat",
            "release",
            "complete",
            "abort",
        ] {
            let (code, body) = h.post_with(path, json!({"duration_secs": 5}), token).await;
            assert_eq!(code, 401, "{path}: {body}");
            assert_eq!(error_code(&body), ErrorCode::Unauthorized);
            assert!(!body.to_string().contains(TOKEN));
        }
    }
    let status = h.status().await;
    assert_eq!(status.state, State::Idle, "nothing changed");
    // Reads stay open.
    let health: Value = h
        .http
        .get(format!("{}/health", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
}

#[tokio::test]
async fn coordinator_without_token_refuses_changes() {
    let config = MaintenanceConfig::from_toml_str("window = \"03:00-03:05\"").unwrap();
    let coordinator = Coordinator::start(config, Arc::new(RecordingHooks::default()))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = coordinator.clone();
    tokio::spawn(async move { server.serve(listener).await.unwrap() });
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/maintenance/v1/windows"))
        .bearer_auth("anything-at-all-123456")
        .json(&json!({"duration_secs": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("no token"));
}

#[tokio::test]
async fn stale_foreign_and_racing_calls_get_409() {
    let h = start("", RecordingHooks::default()).await;
    let id = h.open_until_ready(30).await;
    let foreign = WindowId::new("000000000000-1");
    for path in ["claim", "heartbeat", "release"] {
        let (code, body) = h
            .post(path, json!({"window_id": foreign, "sidecar_id": "s"}))
            .await;
        assert_eq!(code, 409, "{path}");
        assert_eq!(error_code(&body), ErrorCode::StaleWindow);
    }
    assert_eq!(h.status().await.state, State::Ready, "nothing changed");
    // Two sidecars race: exactly one wins.
    let (a, b) = tokio::join!(h.claim(&id, "sidecar-a"), h.claim(&id, "sidecar-b"));
    let codes = [a.0, b.0];
    assert!(codes.contains(&200) && codes.contains(&409), "{codes:?}");
    let loser = if a.0 == 409 { a.1 } else { b.1 };
    assert_eq!(error_code(&loser), ErrorCode::AlreadyClaimed);
    // A second window cannot open while one runs.
    let (code, body) = h.post("windows", json!({"duration_secs": 5})).await;
    assert_eq!(code, 409);
    assert_eq!(error_code(&body), ErrorCode::WindowBusy);
    // After the window, its id is stale.
    h.post("abort", json!({})).await;
    h.last_outcome().await;
    let (code, body) = h.post("heartbeat", json!({"window_id": id})).await;
    assert_eq!(code, 409);
    assert_eq!(error_code(&body), ErrorCode::StaleWindow);
}

#[tokio::test]
async fn claim_before_ready_is_wrong_state() {
    let hooks = RecordingHooks {
        quiesce_delay: Duration::from_millis(1500),
        ..Default::default()
    };
    let h = start("", hooks).await;
    let id = h.open(30).await;
    h.wait_until(Duration::from_secs(5), |s| s.state == State::Quiescing)
        .await;
    let (code, body) = h.claim(&id, "s").await;
    assert_eq!(code, 409);
    assert_eq!(error_code(&body), ErrorCode::WrongState);
    assert!(!h.ready_doc().ready, "not ready while quiescing");
}

#[tokio::test]
async fn malformed_requests_get_400_with_json() {
    let h = start("", RecordingHooks::default()).await;
    for (path, body) in [
        ("windows", json!({"duration_secs": 0})),
        ("windows", json!({"duration_secs": 100000})),
        ("windows", json!({"minutes": 5})),
        ("claim", json!({"window": "x"})),
        ("complete", json!({"window_id": "x"})),
    ] {
        let (code, resp) = h.post(path, body.clone()).await;
        assert_eq!(code, 400, "{path} {body}: {resp}");
        assert_eq!(error_code(&resp), ErrorCode::InvalidRequest);
    }
    let resp = h
        .http
        .get(format!("{}/status?wait=soon", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

/// Every error, including those axum answers itself, is JSON with a code.
#[tokio::test]
async fn not_found_wrong_method_and_oversized_bodies_get_json_errors() {
    let h = start("", RecordingHooks::default()).await;
    let root = h.base.trim_end_matches("/maintenance/v1").to_owned();
    let big = vec![b' '; 2 << 20];
    let cases = [
        (
            reqwest::Method::GET,
            format!("{}/nope", h.base),
            None,
            404,
            "not_found",
        ),
        (
            reqwest::Method::GET,
            format!("{root}/elsewhere"),
            None,
            404,
            "not_found",
        ),
        (
            reqwest::Method::GET,
            format!("{root}/"),
            None,
            404,
            "not_found",
        ),
        (
            reqwest::Method::DELETE,
            format!("{}/status", h.base),
            None,
            405,
            "method_not_allowed",
        ),
        (
            reqwest::Method::GET,
            format!("{}/claim", h.base),
            None,
            405,
            "method_not_allowed",
        ),
        (
            reqwest::Method::POST,
            format!("{}/complete", h.base),
            Some(big),
            413,
            "body_too_large",
        ),
    ];
    for (method, url, body, want_status, want_code) in cases {
        let mut req = h.http.request(method.clone(), &url).bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), want_status, "{method} {url}");
        let ctype = resp.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            ctype.starts_with("application/json"),
            "{method} {url}: {ctype}"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], want_code, "{method} {url}: {body}");
        assert!(!body["message"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn long_poll_wakes_on_change() {
    let h = Arc::new(start("", RecordingHooks::default()).await);
    let version = h.status().await.version;
    let poller = {
        let h = h.clone();
        tokio::spawn(async move {
            let began = Instant::now();
            let status = h.get_status(&format!("?wait=20&since={version}")).await;
            (status, began.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !poller.is_finished(),
        "the poll waits while nothing changes"
    );
    h.open(30).await;
    let (status, waited) = tokio::time::timeout(Duration::from_secs(5), poller)
        .await
        .expect("the poll returned after the change, long before its 20 s")
        .unwrap();
    assert!(status.version > version);
    assert_ne!(status.state, State::Idle);
    assert!(waited < Duration::from_secs(5));
    // A stale `since` returns at once.
    let began = Instant::now();
    h.get_status(&format!("?wait=20&since={version}")).await;
    assert!(began.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn drain_timeout_expires_the_window() {
    let h = start("drain_timeout = \"300ms\"", RecordingHooks::default()).await;
    let gate = h.coordinator.gate();
    let stuck = gate.admit_announce().unwrap();
    h.open(30).await;
    let outcome = h.last_outcome().await;
    assert_eq!(outcome.outcome, Outcome::Expired);
    assert!(
        outcome
            .reason
            .as_deref()
            .unwrap()
            .contains("drain timeout: 1 announces"),
        "{outcome:?}"
    );
    assert_eq!(h.hooks.quiesce_calls.load(Ordering::SeqCst), 0);
    drop(stuck);
    assert!(gate.admit_announce().is_ok());
}

#[tokio::test]
async fn quiesce_hook_error_fails_the_window() {
    let hooks = RecordingHooks {
        quiesce_error: Some("database is locked"),
        ..Default::default()
    };
    let h = start("", hooks).await;
    h.open(30).await;
    let outcome = h.last_outcome().await;
    assert_eq!(outcome.outcome, Outcome::Failed);
    assert_eq!(
        outcome.reason.as_deref(),
        Some("quiesce hook failed: database is locked")
    );
    assert_eq!(h.hooks.resume_calls.load(Ordering::SeqCst), 1);
    assert!(!h.ready_doc().ready);
    assert!(h.coordinator.gate().admit_announce().is_ok());
}

#[tokio::test]
async fn quiesce_hook_timeout_fails_the_window() {
    let hooks = RecordingHooks {
        quiesce_delay: Duration::from_secs(30),
        ..Default::default()
    };
    let h = start("quiesce_timeout = \"300ms\"", hooks).await;
    h.open(30).await;
    let outcome = h.last_outcome().await;
    assert_eq!(outcome.outcome, Outcome::Failed);
    assert!(outcome.reason.unwrap().contains("did not finish"));
    assert_eq!(h.hooks.resume_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn deadline_cuts_a_hanging_quiesce_hook() {
    let hooks = RecordingHooks {
        quiesce_delay: Duration::from_secs(60),
        ..Default::default()
    };
    let h = start("quiesce_timeout = \"60s\"", hooks).await;
    let began = Instant::now();
    h.open(1).await;
    let outcome = h.last_outcome().await;
    assert_eq!(outcome.outcome, Outcome::Expired);
    assert!(outcome.reason.unwrap().contains("while quiescing"));
    assert!(began.elapsed() < Duration::from_secs(10));
    assert!(h.coordinator.gate().admit_announce().is_ok());
}

#[tokio::test]
async fn no_claim_before_deadline_expires() {
    let h = start("", RecordingHooks::default()).await;
    h.open_until_ready(1).await;
    let outcome = h.last_outcome().await;
    assert_eq!(outcome.outcome, Outcome::Expired);
    assert!(outcome.reason.unwrap().contains("no sidecar claimed"));
    assert!(!h.ready_doc().ready);
    assert!(h.coordinator.gate().admit_announce().is_ok());
}

#[tokio::test]
async fn lost_lease_expires_the_window() {
    let h = start("lease_ttl = \"500ms\"", RecordingHooks::default()).await;
    let id = h.open_until_ready(30).await;
    assert_eq!(h.claim(&id, "s").await.0, 200);
    let outcome = h.last_outcome().await;
    assert_eq!(outcome.outcome, Outcome::Expired);
    assert!(outcome.reason.unwrap().contains("lease lost"));
    assert!(h.coordinator.gate().admit_announce().is_ok());
    // The sidecar learns it lost the lease.
    let (code, _) = h.post("heartbeat", json!({"window_id": id})).await;
    assert_eq!(code, 409);
}

#[tokio::test]
async fn deadline_while_claimed_expires_despite_heartbeats() {
    let h = start("lease_ttl = \"1s\"", RecordingHooks::default()).await;
    let id = h.open_until_ready(2).await;
    assert_eq!(h.claim(&id, "s").await.0, 200);
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(4) {
        let (code, _) = h.post("heartbeat", json!({"window_id": id})).await;
        if code == 409 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let outcome = h.last_outcome().await;
    assert_eq!(outcome.outcome, Outcome::Expired);
    assert!(
        outcome
            .reason
            .as_deref()
            .unwrap()
            .contains("deadline reached while claimed"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn released_window_without_completion_expires() {
    let h = start("lease_ttl = \"500ms\"", RecordingHooks::default()).await;
    let id = h.open_until_ready(30).await;
    assert_eq!(h.claim(&id, "s").await.0, 200);
    assert_eq!(h.post("release", json!({"window_id": id})).await.0, 200);
    let outcome = h.last_outcome().await;
    assert_eq!(outcome.outcome, Outcome::Expired);
    assert!(outcome.reason.unwrap().contains("after release"));
}

#[tokio::test]
async fn operator_abort_ends_the_window() {
    let h = start("", RecordingHooks::default()).await;
    let id = h.open_until_ready(30).await;
    let (code, body) = h
        .post(
            "abort",
            json!({"window_id": id, "reason": "replacing a disk"}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let outcome = h.last_outcome().await;
    assert_eq!(outcome.outcome, Outcome::Aborted);
    assert_eq!(outcome.reason.as_deref(), Some("replacing a disk"));
    let (code, body) = h.post("abort", json!({})).await;
    assert_eq!(code, 409);
    assert_eq!(error_code(&body), ErrorCode::WrongState);
}

#[tokio::test]
async fn defer_writes_keeps_announces_open() {
    let h = start(
        "announce_policy = \"defer-writes\"",
        RecordingHooks::default(),
    )
    .await;
    let gate = h.coordinator.gate();
    h.open_until_ready(30).await;
    assert!(gate.admit_announce().is_ok());
    assert!(gate.begin_write().is_none());
    h.post("abort", json!({})).await;
    h.last_outcome().await;
    assert!(gate.begin_write().is_some());
}

#[tokio::test]
async fn stale_ready_file_is_rewritten_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ready.json");
    let mut stale = ReadinessDocument::not_ready("old-instance", State::Ready, chrono::Utc::now());
    stale.ready = true;
    stale.window_id = Some(WindowId::new("20261126T030000Z-oldinstance0-1"));
    ReadinessFile::new(&path).write(&stale).unwrap();
    let h = start_in(dir, path, "", RecordingHooks::default()).await;
    let doc = h.ready_doc();
    assert!(!doc.ready);
    assert_eq!(doc.state, State::Idle);
    assert_eq!(doc.instance_id, h.status().await.instance_id);
    assert!(doc.window_id.is_none());
}

#[tokio::test]
async fn scheduled_window_covering_now_opens_and_next_is_reported() {
    let now = chrono::Utc::now();
    let start = now.format("%H:%M").to_string();
    let end = (now + chrono::Duration::minutes(2))
        .format("%H:%M")
        .to_string();
    let h = start_with_window(&start, &end).await;
    let status = h
        .wait_until(Duration::from_secs(5), |s| s.state == State::Ready)
        .await;
    let current = status.current_window.unwrap();
    assert!(current.contains(now) || current.start > now - chrono::Duration::minutes(1));
    let next = status
        .next_window
        .expect("the next scheduled window is shown");
    assert!(next.start > current.start + chrono::Duration::hours(23));
    h.post("abort", json!({})).await;
    let outcome = h.last_outcome().await;
    assert_eq!(outcome.outcome, Outcome::Aborted);
    // The same occurrence does not reopen after it ended.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.status().await.state, State::Idle);
}

async fn start_with_window(start: &str, end: &str) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let ready_file = dir.path().join("ready.json");
    let text = format!(
        "enabled = true\nwindow = \"{start}-{end}\"\ntoken = \"{TOKEN}\"\nready_file = {:?}\nlease_ttl = \"5s\"\n",
        ready_file.display().to_string()
    );
    launch(&text, dir, ready_file, RecordingHooks::default()).await
}

#[tokio::test]
async fn shutdown_ends_a_running_window_and_resumes() {
    let h = start("", RecordingHooks::default()).await;
    h.open_until_ready(30).await;
    let gate = h.coordinator.gate();
    assert!(gate.admit_announce().is_err());
    h.coordinator.shutdown().await;
    assert!(gate.admit_announce().is_ok());
    assert_eq!(h.hooks.resume_calls.load(Ordering::SeqCst), 1);
    assert!(!h.ready_doc().ready);
    assert_eq!(
        h.coordinator.status().last_outcomes[0].outcome,
        Outcome::Aborted
    );
}

#[tokio::test]
async fn metrics_move_as_windows_run() {
    let h = start("", RecordingHooks::default()).await;
    let scrape = || async {
        h.http
            .get(format!("{}/metrics", h.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let before = scrape().await;
    assert!(
        before.contains("maintenance_state{state=\"idle\"} 1"),
        "{before}"
    );
    assert!(
        before.contains("maintenance_windows_total{outcome=\"aborted\"} 0"),
        "{before}"
    );
    h.open_until_ready(30).await;
    let _ = h.coordinator.gate().admit_announce();
    assert!(scrape()
        .await
        .contains("maintenance_state{state=\"ready\"} 1"));
    h.post("abort", json!({})).await;
    h.last_outcome().await;
    let after = scrape().await;
    assert!(
        after.contains("maintenance_windows_total{outcome=\"aborted\"} 1"),
        "{after}"
    );
    assert!(
        after.contains("maintenance_announces_refused_total 1"),
        "{after}"
    );
    assert!(
        after.contains("maintenance_phase_duration_seconds_count{phase=\"quiescing\"} 1"),
        "{after}"
    );
    assert!(
        after.contains("maintenance_quiesced_seconds_count 1"),
        "{after}"
    );
}

/// Protocol 2: release with `keep_pin` resumes the tracker at once; the
/// pin is dropped at `unpin`, once. A pin that blocks writers keeps the
/// writes deferred (announces flow) until then.
#[tokio::test]
async fn pinned_release_resumes_now_and_unpins_later() {
    for mode in [PinMode::WritesContinue, PinMode::WritesWait] {
        let h = start("", pinned(mode)).await;
        let gate = h.coordinator.gate();
        let id = h.open_until_ready(30).await;
        assert_eq!(h.status().await.pin.unwrap().mode, mode);
        let (code, body) = h.claim(&id, "sidecar-a").await;
        assert_eq!(code, 200, "{body}");
        let lease: LeaseResponse = serde_json::from_value(body).unwrap();
        assert_eq!(lease.pin.unwrap().mode, mode);

        let (code, body) = h
            .post("release", json!({"window_id": id, "keep_pin": true}))
            .await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["pinned"], true);
        h.wait_until(Duration::from_secs(5), |s| s.state == State::Idle)
            .await;
        assert!(gate.admit_announce().is_ok(), "announces flow while pinned");
        assert_eq!(
            gate.begin_write().is_some(),
            mode == PinMode::WritesContinue,
            "writes under {mode:?}"
        );
        assert_eq!(h.hooks.unpin_calls.load(Ordering::SeqCst), 0);
        let metrics = h
            .http
            .get(format!("{}/metrics", h.base))
            .send()
            .await
            .unwrap();
        let text = metrics.text().await.unwrap();
        assert!(text.contains("maintenance_pin_held 1"), "{text}");
        assert!(text.contains("maintenance_wal_bytes 4096"), "{text}");

        let (code, body) = h.post("unpin", json!({"window_id": id})).await;
        assert_eq!(code, 200, "{body}");
        assert!(body["held_secs"].as_f64().unwrap() >= 0.0);
        h.wait_until(Duration::from_secs(5), |s| s.pin.is_none())
            .await;
        assert_eq!(h.hooks.unpin_calls.load(Ordering::SeqCst), 1);
        assert!(gate.begin_write().is_some(), "writes flow after the unpin");
        let (code, _) = h.post("unpin", json!({"window_id": id})).await;
        assert_eq!(code, 200, "unpin is idempotent");
        let (code, _) = h
            .post("complete", json!({"window_id": id, "report": {"backup": "b", "artifacts": [], "durations_secs": {}}}))
            .await;
        assert_eq!(code, 200);
        assert_eq!(h.hooks.unpin_calls.load(Ordering::SeqCst), 1);
        h.coordinator.shutdown().await;
    }
}

/// The answer to a release comes with announces flowing again: a client
/// that learns of the release (from its answer, or from the status showing
/// the kept pin) is never refused, however far the runner still is from
/// its own resume steps (the readiness file's fsync, the resume hook).
/// Repeated, because the gap this closes is a race.
#[tokio::test]
async fn announces_flow_as_soon_as_the_release_is_answered() {
    for keep_pin in [true, false] {
        let h = start("", pinned(PinMode::WritesContinue)).await;
        let gate = h.coordinator.gate();
        for round in 0..10 {
            let id = h.open_until_ready(30).await;
            assert!(gate.admit_announce().is_err(), "reject policy refuses");
            let (code, body) = h.claim(&id, "sidecar-a").await;
            assert_eq!(code, 200, "{body}");
            let (code, body) = h
                .post("release", json!({"window_id": id, "keep_pin": keep_pin}))
                .await;
            assert_eq!(code, 200, "{body}");
            assert_eq!(body["state"], "resuming");
            assert!(
                gate.admit_announce().is_ok(),
                "round {round}, keep_pin {keep_pin}: announce refused right after the release was answered"
            );
            if keep_pin {
                assert_eq!(h.post("unpin", json!({"window_id": id})).await.0, 200);
            }
            let (code, _) = h
                .post("complete", json!({"window_id": id, "report": {"backup": "b", "artifacts": [], "durations_secs": {}}}))
                .await;
            assert_eq!(code, 200);
            h.wait_until(Duration::from_secs(5), |s| {
                s.state == State::Idle && s.pin.is_none() && s.released_window.is_none()
            })
            .await;
        }
        h.coordinator.shutdown().await;
    }
}

/// A version-1 sidecar releases after copying, without `keep_pin`: the
/// pin is dropped before the tracker resumes; an abort while pinned drops
/// it and an `unpin` after that is refused as `pin_lost`.
#[tokio::test]
async fn unkept_or_aborted_pins_are_dropped() {
    let h = start("", pinned(PinMode::WritesWait)).await;
    let gate = h.coordinator.gate();
    let id = h.open_until_ready(30).await;
    h.claim(&id, "sidecar-a").await;
    let (code, body) = h.post("release", json!({"window_id": id})).await;
    assert_eq!(code, 200);
    assert!(body.get("pinned").is_none(), "{body}");
    h.wait_until(Duration::from_secs(5), |s| {
        s.state == State::Idle && s.pin.is_none()
    })
    .await;
    assert_eq!(h.hooks.unpin_calls.load(Ordering::SeqCst), 1);
    assert!(gate.begin_write().is_some());
    h.post(
        "complete",
        json!({"window_id": id, "report": {"backup": "b", "artifacts": [], "durations_secs": {}}}),
    )
    .await;

    let id = h.open_until_ready(30).await;
    h.claim(&id, "sidecar-a").await;
    h.post("release", json!({"window_id": id, "keep_pin": true}))
        .await;
    h.wait_until(Duration::from_secs(5), |s| s.state == State::Idle)
        .await;
    assert!(gate.begin_write().is_none());
    let (code, _) = h.post("abort", json!({"window_id": id})).await;
    assert_eq!(code, 200);
    h.wait_until(Duration::from_secs(5), |s| s.pin.is_none())
        .await;
    assert_eq!(h.hooks.unpin_calls.load(Ordering::SeqCst), 2);
    assert!(gate.begin_write().is_some());
    let (code, body) = h.post("unpin", json!({"window_id": id})).await;
    assert_eq!(code, 409);
    assert_eq!(body["code"], "pin_lost", "{body}");
    h.coordinator.shutdown().await;
}

/// Shutting the coordinator down drops a kept pin.
#[tokio::test]
async fn shutdown_drops_a_kept_pin() {
    let h = start("", pinned(PinMode::WritesContinue)).await;
    let id = h.open_until_ready(30).await;
    h.claim(&id, "sidecar-a").await;
    h.post("release", json!({"window_id": id, "keep_pin": true}))
        .await;
    h.wait_until(Duration::from_secs(5), |s| s.state == State::Idle)
        .await;
    h.coordinator.shutdown().await;
    assert_eq!(h.hooks.unpin_calls.load(Ordering::SeqCst), 1);
}

/// Hostile input: arbitrary values for every query parameter and every JSON
/// field of every endpoint (numbers far outside any range, wrong types,
/// nesting, unknown keys, the live window id) never get a 5xx, never drop
/// the connection, and leave the coordinator answering.
mod hostile_input {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    /// Raw JSON text for one value.
    fn value() -> BoxedStrategy<String> {
        let leaf = prop_oneof![
            prop::sample::select(vec![
                "null",
                "true",
                "false",
                "[]",
                "{}",
                "0",
                "-0",
                "-1",
                "1e20",
                "-1e20",
                "1e400",
                "-1e400",
                "1e-400",
                "86400",
                "86401",
                "18446744073709551615",
                "18446744073709551616",
                "-9223372036854775809",
                "\"\"",
                "\"@live\"",
            ])
            .prop_map(str::to_owned),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            any::<f64>()
                .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
                .prop_map(|f| format!("{f:e}")),
            ".{0,40}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        ];
        leaf.prop_recursive(2, 12, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec(("[a-z_]{1,12}", inner), 0..4).prop_map(|kv| {
                    let fields: Vec<String> = kv
                        .into_iter()
                        .map(|(k, v)| format!("{}:{v}", serde_json::to_string(&k).unwrap()))
                        .collect();
                    format!("{{{}}}", fields.join(","))
                }),
            ]
        })
        .boxed()
    }

    /// An object with each of `fields` present or not, each holding a value
    /// from its strategy, plus sometimes a key nobody knows.
    fn object(fields: Vec<(&'static str, BoxedStrategy<String>)>) -> BoxedStrategy<String> {
        let parts: Vec<BoxedStrategy<Option<String>>> = fields
            .into_iter()
            .map(|(key, strategy)| {
                prop::option::weighted(0.85, strategy)
                    .prop_map(move |v| v.map(|v| format!("\"{key}\":{v}")))
                    .boxed()
            })
            .collect();
        (parts, prop::option::of(value()))
            .prop_map(|(parts, extra)| {
                let mut fields: Vec<String> = parts.into_iter().flatten().collect();
                if let Some(extra) = extra {
                    fields.push(format!("\"unknown_key\":{extra}"));
                }
                format!("{{{}}}", fields.join(","))
            })
            .boxed()
    }

    fn report() -> BoxedStrategy<String> {
        let artifact = object(vec![
            ("engine", value()),
            ("path", value()),
            ("size_bytes", value()),
            ("sha256", value()),
        ]);
        let instance = object(vec![
            ("url", value()),
            ("instance_id", value()),
            ("window_id", value()),
            ("took_part", value()),
            ("reason", value()),
        ]);
        let durations = prop::collection::vec(("[a-z]{1,8}", value()), 0..4)
            .prop_map(|kv| {
                let f: Vec<String> = kv
                    .into_iter()
                    .map(|(k, v)| format!("\"{k}\":{v}"))
                    .collect();
                format!("{{{}}}", f.join(","))
            })
            .boxed();
        prop_oneof![
            1 => value(),
            4 => object(vec![
                ("backup", value()),
                ("artifacts", prop::collection::vec(artifact, 0..3).prop_map(|v| format!("[{}]", v.join(","))).boxed()),
                ("durations_secs", durations),
                ("error", value()),
                ("remote", object(vec![
                    ("remote", value()), ("uploaded", value()), ("bytes", value()),
                    ("secs", value()), ("error", value()),
                ])),
                ("participation", object(vec![
                    ("require", value()),
                    ("instances", prop::collection::vec(instance, 0..3).prop_map(|v| format!("[{}]", v.join(","))).boxed()),
                ])),
            ]),
        ]
        .boxed()
    }

    /// `(path, body)` for every POST endpoint; bodies are sometimes not
    /// objects at all.
    fn post() -> impl Strategy<Value = (&'static str, String)> {
        let id = || prop_oneof![3 => Just("\"@live\"".to_owned()), 2 => value()].boxed();
        let lease = || prop_oneof![2 => Just("\"@lease\"".to_owned()), 1 => value()].boxed();
        let body = |fields| prop_oneof![8 => object(fields), 1 => value(), 1 => ".{0,30}"].boxed();
        prop_oneof![
            body(vec![
                ("window_id", id()),
                ("sidecar_id", value()),
                (
                    "protocol_version",
                    prop_oneof![3 => Just("3".to_owned()), 1 => value()].boxed()
                ),
                ("lease_id", lease()),
            ])
            .prop_map(|b| ("claim", b)),
            body(vec![("window_id", id()), ("lease_id", lease())]).prop_map(|b| ("heartbeat", b)),
            body(vec![
                ("window_id", id()),
                ("lease_id", lease()),
                ("keep_pin", value())
            ])
            .prop_map(|b| ("release", b)),
            body(vec![("window_id", id()), ("lease_id", lease())]).prop_map(|b| ("unpin", b)),
            body(vec![
                ("window_id", id()),
                ("lease_id", lease()),
                ("report", report())
            ])
            .prop_map(|b| ("complete", b)),
            body(vec![(
                "duration_secs",
                prop_oneof![2 => Just("30".to_owned()), 3 => value()].boxed()
            )])
            .prop_map(|b| ("windows", b)),
            body(vec![("window_id", id()), ("reason", value())]).prop_map(|b| ("abort", b)),
        ]
    }

    /// A query parameter's text: numbers in and out of range, words, bytes.
    fn query_value() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "1e20",
                "1e400",
                "-1e400",
                "inf",
                "-inf",
                "NaN",
                "-1",
                "-0",
                "0",
                "0.05",
                "1e-300",
                "300",
                "301",
                "18446744073709551615",
                "18446744073709551616",
                "",
                "%00",
                "1,2",
            ])
            .prop_map(str::to_owned),
            any::<f64>().prop_map(|f| format!("{f:e}")),
            any::<i64>().prop_map(|n| n.to_string()),
            ".{0,20}",
        ]
    }

    #[test]
    fn arbitrary_values_for_every_parameter_and_field_never_get_a_5xx() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let h = rt.block_on(start(
            "lease_ttl = \"30s\"\n",
            pinned(PinMode::WritesContinue),
        ));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let mut runner = TestRunner::new(Config {
            cases: 400,
            failure_persistence: None,
            ..Config::default()
        });
        let lease = std::sync::Mutex::new(String::new());
        let case = (
            post(),
            prop::option::of(query_value()),
            prop::option::of(query_value()),
            any::<bool>(),
        );
        runner
            .run(&case, |((path, body), wait, since, with_token)| {
                rt.block_on(async {
                    let status = h.status().await;
                    let live = status
                        .window_id
                        .or(status.released_window.map(|r| r.window_id));
                    let live = live.map(|w| w.to_string()).unwrap_or_default();
                    let body = body
                        .replace("@live", &live)
                        .replace("@lease", &lease.lock().unwrap());
                    let mut req = http
                        .post(format!("{}/{path}", h.base))
                        .header("content-type", "application/json")
                        .body(body.clone());
                    if with_token {
                        req = req.bearer_auth(TOKEN);
                    }
                    let resp = req.send().await;
                    let resp =
                        resp.map_err(|e| TestCaseError::fail(format!("POST {path} {body}: {e}")))?;
                    let code = resp.status().as_u16();
                    let answer: Value = resp.json().await.map_err(|e| {
                        TestCaseError::fail(format!("POST {path} {body}: not JSON: {e}"))
                    })?;
                    prop_assert!(code < 500, "POST {path} {body}: {code} {answer}");
                    if let Some(id) = answer.get("lease_id").and_then(Value::as_str) {
                        *lease.lock().unwrap() = id.to_owned();
                    }
                    let mut query = Vec::new();
                    if let Some(wait) = &wait {
                        query.push(("wait", wait.clone()));
                    }
                    if let Some(since) = &since {
                        query.push(("since", since.clone()));
                    }
                    let url =
                        reqwest::Url::parse_with_params(&format!("{}/status", h.base), &query)
                            .unwrap();
                    match http.get(url).send().await {
                        // A valid wait long-polls: still waiting is an answer too.
                        Err(e) if e.is_timeout() => {}
                        Err(e) => prop_assert!(false, "GET status {query:?}: {e}"),
                        Ok(resp) => {
                            let code = resp.status().as_u16();
                            prop_assert!(code < 500, "GET status {query:?}: {code}");
                            let answer: Result<Value, _> = resp.json().await;
                            prop_assert!(answer.is_ok(), "GET status {query:?}: not JSON");
                        }
                    }
                    Ok(())
                })
            })
            .unwrap();
        let status = rt.block_on(h.status());
        assert_eq!(status.protocol_version, maintenance_proto::PROTOCOL_VERSION);
    }
}
