//! Webhook notifications: one JSON POST per backup outcome.
//!
//! Failures and warnings (a tracker instance missing from a backup) are
//! always sent, plain successes only when asked. A webhook that is
//! down is logged and otherwise ignored: a notification must never turn a
//! good backup into a failed one.

use std::time::Duration;

use serde::Serialize;

use crate::config::WebhookConfig;

/// The JSON body sent.
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    /// `backup_succeeded` or `backup_failed`.
    pub event: &'static str,
    /// The sidecar that sends it.
    pub sidecar_id: String,
    /// `once` or `run`.
    pub mode: String,
    /// The coordinator window, if any.
    pub window_id: Option<String>,
    /// The published backup's folder name.
    pub backup: Option<String>,
    /// Error text on failure.
    pub error: Option<String>,
    /// Set when the backup lacks a tracker instance (`require =
    /// "reachable"`, or the cause of a failure under `all`).
    pub warning: Option<String>,
    /// Every tracker instance and whether it took part (coordinated runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub participation: Option<maintenance_proto::Participation>,
    /// Phase durations.
    pub durations_secs: std::collections::BTreeMap<String, f64>,
    /// When it was sent.
    pub at: chrono::DateTime<chrono::Utc>,
}

impl Notification {
    /// The notification for one backup's report.
    pub fn for_report(
        sidecar_id: &str,
        mode: &str,
        window_id: Option<&str>,
        report: &maintenance_proto::BackupReport,
    ) -> Self {
        Notification {
            event: if report.error.is_none() {
                "backup_succeeded"
            } else {
                "backup_failed"
            },
            sidecar_id: sidecar_id.to_owned(),
            mode: mode.to_owned(),
            window_id: window_id.map(str::to_owned),
            backup: report.backup.clone(),
            error: report.error.clone(),
            warning: report.participation.as_ref().and_then(|p| {
                let missing = missing_list(p);
                (!missing.is_empty()).then(|| {
                    format!(
                        "tracker instance(s) missing from the backup (require = {}): {missing}",
                        p.require
                    )
                })
            }),
            participation: report.participation.clone(),
            durations_secs: report.durations_secs.clone(),
            at: chrono::Utc::now(),
        }
    }
}

/// Sends `n` if the config asks for it; logs and swallows any failure.
pub async fn notify(cfg: &WebhookConfig, n: &Notification) {
    let Some(url) = &cfg.url else { return };
    if n.error.is_none() && n.warning.is_none() && !cfg.notify_on_success {
        return;
    }
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("webhook: cannot build HTTP client: {e}");
            return;
        }
    };
    match client.post(url).json(n).send().await {
        Ok(r) if r.status().is_success() => tracing::info!("webhook: {} sent", n.event),
        Ok(r) => tracing::warn!("webhook: {} answered {}", url, r.status()),
        Err(e) => tracing::warn!("webhook: cannot reach {url}: {e}"),
    }
}

/// `url (reason), ...` of the missing instances.
pub fn missing_list(p: &maintenance_proto::Participation) -> String {
    p.missing()
        .map(|i| format!("{} ({})", i.url, i.reason.as_deref().unwrap_or("missing")))
        .collect::<Vec<_>>()
        .join(", ")
}
