//! The off-site copy as a service: the upload that follows every published
//! backup (log, metrics, webhook, report), remote retention, and what
//! `status` and the metrics read from the remote. The `--remote` variants
//! of the commands are in `cmd/`.
//!
//! The upload runs after the backup is published, so after the tracker has
//! resumed: it never lengthens the tracker's pause.

use chrono::Utc;
use maintenance_proto::RemoteCopy;

use crate::backup::Published;
use crate::base::progress::age;
use crate::base::progress::mib;
use crate::config::Config;
use crate::manifest::Manifest;
use crate::remote::{ops, store, upload, Remote, RemoteState};
use crate::webhook::{self, Notification};

/// Uploads a just-published backup when a remote is configured, then
/// applies remote retention. Logs one `upload finished` line, records the
/// metrics, sends the webhook on failure. `None` without a remote.
pub async fn upload_published(
    cfg: &Config,
    published: &Published,
    mode: &str,
    window_id: Option<&str>,
) -> Option<RemoteCopy> {
    let remote = match Remote::from_config(&cfg.remote) {
        Ok(Some(r)) => r,
        Ok(None) => return None,
        Err(e) => {
            let copy = RemoteCopy {
                remote: cfg
                    .remote
                    .location
                    .as_ref()
                    .map(|l| l.to_string())
                    .unwrap_or_default(),
                error: Some(store::describe_error(&e)),
                ..RemoteCopy::default()
            };
            report_upload(cfg, &published.manifest.name, &copy, mode, window_id).await;
            return Some(copy);
        }
    };
    let started = std::time::Instant::now();
    let result = upload::upload_backup(&remote, &published.path, &published.manifest).await;
    let copy = match result {
        Ok(u) => RemoteCopy {
            remote: remote.describe(),
            uploaded: true,
            bytes: u.bytes,
            secs: u.secs,
            error: None,
        },
        Err(e) => RemoteCopy {
            remote: remote.describe(),
            uploaded: false,
            bytes: 0,
            secs: started.elapsed().as_secs_f64(),
            error: Some(store::describe_error(&e)),
        },
    };
    report_upload(cfg, &published.manifest.name, &copy, mode, window_id).await;
    if copy.uploaded {
        prune_remote_quietly(cfg, &remote).await;
    }
    Some(copy)
}

async fn report_upload(
    cfg: &Config,
    backup: &str,
    copy: &RemoteCopy,
    mode: &str,
    window_id: Option<&str>,
) {
    crate::metrics::get().upload_finished(copy.uploaded, copy.bytes, copy.secs);
    let mbps = copy.bytes as f64 / 1_048_576.0 / copy.secs.max(1e-9);
    if copy.uploaded {
        tracing::info!(
            outcome = "success",
            backup,
            remote = copy.remote.as_str(),
            bytes = copy.bytes,
            secs = copy.secs,
            mib_per_sec = mbps,
            "upload finished"
        );
    } else {
        let error = copy.error.clone().unwrap_or_default();
        tracing::error!(
            outcome = "failed",
            backup,
            remote = copy.remote.as_str(),
            secs = copy.secs,
            error,
            "upload finished"
        );
        let n = Notification {
            event: "upload_failed",
            sidecar_id: cfg.sidecar_id.clone(),
            mode: mode.to_owned(),
            window_id: window_id.map(str::to_owned),
            backup: Some(backup.to_owned()),
            error: copy.error.clone(),
            warning: None,
            participation: None,
            durations_secs: [("upload".to_owned(), copy.secs)].into(),
            at: Utc::now(),
        };
        webhook::notify(&cfg.webhook, &n).await;
    }
}

async fn prune_remote_quietly(cfg: &Config, remote: &Remote) {
    let result = async { ops::apply(remote, &retention_plan(cfg, remote).await?).await }.await;
    if let Err(e) = result {
        tracing::warn!(
            "remote retention on {}: {}",
            remote.describe(),
            store::chain_text(&e)
        );
    }
}

/// What the configured retention keeps and removes on `remote` now.
pub async fn retention_plan(cfg: &Config, remote: &Remote) -> anyhow::Result<ops::RemotePlan> {
    let (entries, parts) = ops::list_with_parts(remote).await?;
    let now = Utc::now();
    let grace = cfg.remote.incomplete_grace_hours;
    let mut plan = ops::plan(&entries, cfg.keep_days, cfg.keep_last, grace, now);
    ops::plan_parts(&mut plan, parts, grace, now);
    Ok(plan)
}

/// Seeds the off-site metric from the remote (in the background of `run`).
pub async fn seed_metrics(cfg: &Config) {
    let Ok(Some(remote)) = Remote::from_config(&cfg.remote) else {
        return;
    };
    match newest_complete(&remote).await {
        Ok(Some((_, uploaded_at))) => crate::metrics::get().seed_remote(uploaded_at),
        Ok(None) => {}
        Err(e) => tracing::warn!("cannot read {}: {e:#}", remote.describe()),
    }
}

/// The newest complete, verified remote backup and when its manifest was
/// uploaded.
pub async fn newest_complete(
    remote: &Remote,
) -> anyhow::Result<Option<(Manifest, chrono::DateTime<Utc>)>> {
    let entries = ops::list(remote).await?;
    let Some(m) = entries
        .into_iter()
        .filter_map(|e| match e.state {
            RemoteState::Complete(m) if m.verified => Some(*m),
            _ => None,
        })
        .next()
    else {
        return Ok(None);
    };
    let meta = object_store::ObjectStoreExt::head(
        remote.store().as_ref(),
        &remote.key(&m.name, crate::manifest::FILE_NAME),
    )
    .await?;
    Ok(Some((m, meta.last_modified)))
}

/// The `status` lines about the remote: its newest complete backup and
/// when it was uploaded, or why it cannot be read. `None` without a remote.
pub async fn status_section(cfg: &Config, now: chrono::DateTime<Utc>) -> Option<String> {
    let remote = match Remote::from_config(&cfg.remote) {
        Ok(Some(r)) => r,
        Ok(None) => return None,
        Err(e) => return Some(format!("off-site copy  {}\n", store::describe_error(&e))),
    };
    let mut out = format!("off-site copy  {}\n", remote.describe());
    let newest = tokio::time::timeout(std::time::Duration::from_secs(20), newest_complete(&remote))
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within 20 s")));
    match newest {
        Ok(Some((m, uploaded))) => out.push_str(&format!(
            "newest copy   {} ({}), uploaded {} ({} ago){}\n",
            m.name,
            mib(m.total_bytes()),
            uploaded.format("%Y-%m-%d %H:%M:%S UTC"),
            age((now - uploaded).num_seconds()),
            if m.encryption.is_some() {
                ", encrypted"
            } else {
                ""
            }
        )),
        Ok(None) => {
            out.push_str("newest copy   none complete (maintenance-sidecar list --remote)\n")
        }
        Err(e) => out.push_str(&format!(
            "newest copy   UNREACHABLE: {}\n",
            store::describe_error(&e)
        )),
    }
    Some(out)
}
