//! Prometheus metrics of the sidecar, served by `run` on the metrics
//! listener (`metrics.bind` / `SIDECAR_METRICS_BIND`, off by default) at
//! `GET /metrics` in the OpenMetrics text format.
//!
//! Same crate (`prometheus-client`) and conventions as the coordinator's
//! `/maintenance/v1/metrics`: `_total` counters (the suffix is added by the
//! encoder), `_seconds` durations, `_bytes` sizes.
//!
//! The registry is process-wide: the backup runs on a blocking thread and
//! every backup (coordinated, interval loop or `once`) records into it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Result label of `maintenance_backups_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupResult {
    /// Published and verified.
    Success,
    /// An error stopped the backup; nothing published.
    Failed,
    /// The lease was lost (window ended by the coordinator); nothing published.
    LeaseLost,
}

impl BackupResult {
    /// Label value and `outcome` field of the summary line.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupResult::Success => "success",
            BackupResult::Failed => "failed",
            BackupResult::LeaseLost => "lease_lost",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EngineLabel {
    engine: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabel {
    instance: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceResultLabel {
    instance: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    // 10 ms .. ~5.8 h, the coordinator's buckets.
    Histogram::new(exponential_buckets(0.01, 2.5, 16))
}

/// Where the metrics learn when the last successful drill finished
/// (asked at every rendering).
pub type DrillSource = Box<dyn Fn() -> Option<chrono::DateTime<chrono::Utc>> + Send + Sync>;

/// Handles to every sidecar metric.
pub struct Metrics {
    registry: Registry,
    last_success: Gauge<f64, AtomicU64>,
    backups: Family<ResultLabel, Counter>,
    bytes: Family<EngineLabel, Gauge>,
    phases: HistogramFamily<PhaseLabel>,
    verify_failures: Counter,
    lease_losses: Counter,
    claims: Family<ResultLabel, Counter>,
    last_drill: Gauge<f64, AtomicU64>,
    drill_source: OnceLock<DrillSource>,
    remote_last_success: Gauge<f64, AtomicU64>,
    remote_uploads: Family<ResultLabel, Counter>,
    remote_bytes: Gauge,
    remote_duration: Gauge<f64, AtomicU64>,
    instance_up: Family<InstanceLabel, Gauge>,
    instance_windows: Family<InstanceResultLabel, Counter>,
}

/// Claim results for `maintenance_backup_claims_total{result}`.
pub const CLAIM_RESULTS: [&str; 3] = ["claimed", "conflict", "error"];

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let last_success = Gauge::<f64, AtomicU64>::default();
        let backups = Family::<ResultLabel, Counter>::default();
        let bytes = Family::<EngineLabel, Gauge>::default();
        let phases: HistogramFamily<PhaseLabel> =
            Family::new_with_constructor(duration_histogram as fn() -> Histogram);
        let verify_failures = Counter::default();
        let lease_losses = Counter::default();
        let claims = Family::<ResultLabel, Counter>::default();
        let last_drill = Gauge::<f64, AtomicU64>::default();
        let remote_last_success = Gauge::<f64, AtomicU64>::default();
        let remote_uploads = Family::<ResultLabel, Counter>::default();
        let remote_bytes = Gauge::default();
        let remote_duration = Gauge::<f64, AtomicU64>::default();
        let instance_up = Family::<InstanceLabel, Gauge>::default();
        let instance_windows = Family::<InstanceResultLabel, Counter>::default();
        registry.register(
            "maintenance_backup_instance_up",
            "1 while the tracker instance's coordinator answers the status long-poll, 0 while it is unreachable (label: its API URL)",
            instance_up.clone(),
        );
        registry.register(
            "maintenance_backup_instance_windows",
            "Windows per tracker instance, by result: completed (took part in a published backup), failed (took part, backup failed or cancelled), missing (not part of the snapshot)",
            instance_windows.clone(),
        );
        registry.register(
            "maintenance_backup_remote_last_success_timestamp_seconds",
            "Unix time of the last complete off-site upload (seeded from the remote at start; 0 = none)",
            remote_last_success.clone(),
        );
        registry.register(
            "maintenance_backup_remote_uploads",
            "Off-site uploads, by result (success, failed)",
            remote_uploads.clone(),
        );
        registry.register(
            "maintenance_backup_remote_upload_bytes",
            "Bytes sent by the last successful off-site upload",
            remote_bytes.clone(),
        );
        registry.register(
            "maintenance_backup_remote_upload_duration_seconds",
            "Duration of the last off-site upload, retries included",
            remote_duration.clone(),
        );
        registry.register(
            "maintenance_backup_last_success_timestamp_seconds",
            "Unix time of the last published and verified backup (seeded from BACKUP_DIR at start; 0 = none)",
            last_success.clone(),
        );
        registry.register(
            "maintenance_backups",
            "Backups run by this sidecar, by result (success, failed, lease_lost)",
            backups.clone(),
        );
        registry.register(
            "maintenance_backup_bytes",
            "Compressed size of the last successful backup, per engine",
            bytes.clone(),
        );
        registry.register(
            "maintenance_backup_phase_duration_seconds",
            "Duration of each backup phase (snapshot, compress, verify, total)",
            phases.clone(),
        );
        registry.register(
            "maintenance_backup_verify_failures",
            "Backups whose artifacts failed verification (hash or content check)",
            verify_failures.clone(),
        );
        registry.register(
            "maintenance_backup_lease_losses",
            "Backups abandoned because the coordinator ended the window (lease lost)",
            lease_losses.clone(),
        );
        registry.register(
            "maintenance_backup_claims",
            "Window claims attempted, by result (claimed, conflict, error)",
            claims.clone(),
        );
        registry.register(
            "maintenance_backup_last_drill_timestamp_seconds",
            "Unix time of the last successful restore drill (`maintenance-sidecar drill`, read from BACKUP_DIR/.last-drill.json; 0 = none)",
            last_drill.clone(),
        );
        for r in [
            BackupResult::Success,
            BackupResult::Failed,
            BackupResult::LeaseLost,
        ] {
            let _ = backups.get_or_create(&ResultLabel { result: r.as_str() });
        }
        for r in CLAIM_RESULTS {
            let _ = claims.get_or_create(&ResultLabel { result: r });
        }
        for r in ["success", "failed"] {
            let _ = remote_uploads.get_or_create(&ResultLabel { result: r });
        }
        Metrics {
            registry,
            last_success,
            backups,
            bytes,
            phases,
            verify_failures,
            lease_losses,
            claims,
            last_drill,
            drill_source: OnceLock::new(),
            remote_last_success,
            remote_uploads,
            remote_bytes,
            remote_duration,
            instance_up,
            instance_windows,
        }
    }

    /// Records whether an instance's coordinator answers.
    pub fn instance_up(&self, instance: &str, up: bool) {
        self.instance_up
            .get_or_create(&InstanceLabel {
                instance: instance.to_owned(),
            })
            .set(i64::from(up));
    }

    /// Records one instance's part in a backup (`completed`, `failed`,
    /// `missing`).
    pub fn instance_window(&self, instance: &str, result: &'static str) {
        self.instance_windows
            .get_or_create(&InstanceResultLabel {
                instance: instance.to_owned(),
                result,
            })
            .inc();
    }

    /// Records a successful restore drill that finished at `finished_at`.
    fn drill_succeeded(&self, finished_at: chrono::DateTime<chrono::Utc>) {
        self.last_drill
            .set(finished_at.timestamp_millis() as f64 / 1000.0);
    }

    /// Makes every rendering refresh the drill gauge from `last_drill`
    /// (when the last successful drill finished, if any): drills run as
    /// separate `drill` processes, so only a record they leave can say.
    pub fn watch_drills(&self, last_drill: DrillSource) {
        let _ = self.drill_source.set(last_drill);
    }

    /// Records an off-site upload.
    pub fn upload_finished(&self, ok: bool, bytes: u64, secs: f64) {
        let result = if ok { "success" } else { "failed" };
        self.remote_uploads
            .get_or_create(&ResultLabel { result })
            .inc();
        self.remote_duration.set(secs.max(0.0));
        if ok {
            self.remote_bytes
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
            self.remote_last_success.set(unix_now());
        }
    }

    /// Seeds the last off-site success from the remote's newest complete
    /// backup (its manifest's upload time), so a restart does not trip the
    /// off-site alert.
    pub fn seed_remote(&self, uploaded_at: chrono::DateTime<chrono::Utc>) {
        self.remote_last_success
            .set(uploaded_at.timestamp_millis() as f64 / 1000.0);
    }

    /// Records a finished backup.
    pub fn backup_finished(
        &self,
        result: BackupResult,
        durations_secs: &BTreeMap<String, f64>,
        bytes_per_engine: &BTreeMap<String, u64>,
        verify_failed: bool,
    ) {
        self.backups
            .get_or_create(&ResultLabel {
                result: result.as_str(),
            })
            .inc();
        for (phase, secs) in durations_secs {
            self.phases
                .get_or_create(&PhaseLabel {
                    phase: phase.clone(),
                })
                .observe(secs.max(0.0));
        }
        if verify_failed {
            self.verify_failures.inc();
        }
        match result {
            BackupResult::Success => {
                for (engine, bytes) in bytes_per_engine {
                    self.bytes
                        .get_or_create(&EngineLabel {
                            engine: engine.clone(),
                        })
                        .set(i64::try_from(*bytes).unwrap_or(i64::MAX));
                }
                self.last_success.set(unix_now());
            }
            BackupResult::LeaseLost => {
                self.lease_losses.inc();
            }
            BackupResult::Failed => {}
        }
    }

    /// Seeds the "last successful backup" gauges from `m`, the newest
    /// verified backup already on disk, so a restarted sidecar does not
    /// report "never" (and trip the 26 h alert) until its next window.
    pub fn seed_from_backup(&self, m: &crate::manifest::Manifest) {
        let mut per_engine: BTreeMap<String, u64> = BTreeMap::new();
        for a in &m.artifacts {
            *per_engine.entry(a.engine.clone()).or_default() += a.size_bytes;
        }
        for (engine, bytes) in per_engine {
            self.bytes
                .get_or_create(&EngineLabel { engine })
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        self.last_success
            .set(m.finished_at.timestamp_millis() as f64 / 1000.0);
    }

    /// Records a claim attempt (`claimed`, `conflict` or `error`).
    pub fn claim(&self, result: &'static str) {
        self.claims.get_or_create(&ResultLabel { result }).inc();
    }

    /// Renders the exposition.
    pub fn render(&self) -> String {
        if let Some(finished_at) = self.drill_source.get().and_then(|last| last()) {
            self.drill_succeeded(finished_at);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The process-wide metrics.
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Binds the metrics listener and serves `GET /metrics` (and `GET /` with
/// a pointer) in the background. Returns the bound address (useful with
/// port 0).
pub async fn serve(bind: SocketAddr) -> std::io::Result<SocketAddr> {
    use axum::http::header;
    use axum::routing::get as route_get;

    let listener = tokio::net::TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new()
        .route(
            "/metrics",
            route_get(|| async {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    get().render(),
                )
            }),
        )
        .route(
            "/",
            route_get(|| async { "maintenance-sidecar: metrics at /metrics\n" }),
        );
    tokio::spawn(async move {
        let forever = std::future::pending();
        if let Err(e) = maintenance_http::serve(listener, app, forever, Default::default()).await {
            tracing::error!("metrics listener stopped: {e}");
        }
    });
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_every_family_with_conventional_names() {
        let m = Metrics::new();
        let mut d = BTreeMap::new();
        d.insert("snapshot".to_owned(), 0.5);
        let mut b = BTreeMap::new();
        b.insert("sqlite".to_owned(), 1234);
        m.backup_finished(BackupResult::Success, &d, &b, false);
        m.claim("claimed");
        m.instance_up("http://a:1/maintenance/v1", true);
        m.instance_window("http://a:1/maintenance/v1", "missing");
        let text = m.render();
        for needle in [
            "maintenance_backup_last_success_timestamp_seconds ",
            "maintenance_backups_total{result=\"success\"} 1",
            "maintenance_backups_total{result=\"failed\"} 0",
            "maintenance_backup_bytes{engine=\"sqlite\"} 1234",
            "maintenance_backup_phase_duration_seconds_count{phase=\"snapshot\"} 1",
            "maintenance_backup_verify_failures_total 0",
            "maintenance_backup_lease_losses_total 0",
            "maintenance_backup_claims_total{result=\"claimed\"} 1",
            "maintenance_backup_last_drill_timestamp_seconds 0",
            "maintenance_backup_remote_uploads_total{result=\"failed\"} 0",
            "maintenance_backup_remote_last_success_timestamp_seconds ",
            "maintenance_backup_instance_up{instance=\"http://a:1/maintenance/v1\"} 1",
            "maintenance_backup_instance_windows_total{instance=\"http://a:1/maintenance/v1\",result=\"missing\"} 1",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
