//! The off-site side of the sidecar's commands: the upload that follows
//! every published backup (log, metrics, webhook, report) and the
//! `--remote` variants of `list`, `verify`, `restore`, `drill` and `prune`,
//! plus `push` (upload an existing local backup again).
//!
//! The upload runs after the backup is published, so after the tracker has
//! resumed: it never lengthens the tracker's pause.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use maintenance_proto::RemoteCopy;

use crate::backup::Published;
use crate::commands::EXIT_FAILED;
use crate::config::Config;
use crate::crypt::Identities;
use crate::manifest::Manifest;
use crate::ops::list::age;
use crate::ops::restore::RestoreOptions;
use crate::progress::mib;
use crate::remote::{ops, store, upload, Remote, RemoteState};
use crate::webhook::{self, Notification};

/// Prefix of the folder `restore --remote` downloads into (in the backup
/// folder's root; the name carries its owner, see [`crate::owned_temp`]).
pub const REMOTE_RESTORE_PREFIX: &str = ".remote-restore-";

/// Prefix of the folder `verify --remote --identity` downloads into.
pub const REMOTE_VERIFY_PREFIX: &str = ".remote-verify-";

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
        tracing::warn!("remote retention on {}: {e:#}", remote.describe());
    }
}

/// What the configured retention keeps and removes on `remote` now.
async fn retention_plan(cfg: &Config, remote: &Remote) -> anyhow::Result<ops::RemotePlan> {
    let entries = ops::list(remote).await?;
    Ok(ops::plan(
        &entries,
        cfg.keep_days,
        cfg.keep_last,
        cfg.remote.incomplete_grace_hours,
        Utc::now(),
    ))
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

fn failed(what: &str, e: anyhow::Error) -> ExitCode {
    eprintln!("{what} failed: {}", store::describe_error(&e));
    ExitCode::from(EXIT_FAILED)
}

/// The identity for reading encrypted artifacts: `--identity`, else
/// `BACKUP_AGE_IDENTITY_FILE`.
pub fn identities(cfg: &Config, flag: Option<&Path>) -> anyhow::Result<Option<Identities>> {
    flag.or(cfg.encryption.identity_file.as_deref())
        .map(Identities::load)
        .transpose()
}

/// `list --remote`.
pub async fn list(cfg: &Config) -> ExitCode {
    let result = async {
        let remote = Remote::required(&cfg.remote)?;
        let entries = ops::list(&remote).await?;
        let now = Utc::now();
        println!("backups on {}", remote.describe());
        println!("{:<44} {:>8} {:>12}  STATUS", "NAME", "AGE", "SIZE");
        for e in &entries {
            match &e.state {
                RemoteState::Complete(m) => println!(
                    "{:<44} {:>8} {:>12}  {}{}",
                    e.name,
                    age((now - m.started_at).num_seconds()),
                    mib(m.total_bytes()),
                    if m.verified {
                        "complete"
                    } else {
                        "complete, unverified"
                    },
                    if m.encryption.is_some() {
                        ", encrypted"
                    } else {
                        ""
                    }
                ),
                RemoteState::Invalid(why) => {
                    println!("{:<44} {:>8} {:>12}  invalid: {why}", e.name, "-", "-")
                }
                RemoteState::Incomplete {
                    objects,
                    bytes,
                    last_modified,
                } => println!(
                    "{:<44} {:>8} {:>12}  INCOMPLETE (no manifest, {objects} objects)",
                    e.name,
                    last_modified
                        .map(|t| age((now - t).num_seconds()))
                        .unwrap_or_else(|| "-".into()),
                    mib(*bytes)
                ),
            }
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failed("list --remote", e),
    }
}

/// `verify --remote NAME|latest [--identity FILE]`: the streaming hash check;
/// with an identity, also the content check on a temporary download.
pub async fn verify(cfg: &Config, backup: &str, identity: Option<&Path>) -> ExitCode {
    let result = async {
        let keys = identities(cfg, identity)?;
        let remote = Remote::required(&cfg.remote)?;
        let manifest = ops::resolve(&remote, backup).await?;
        println!("remote backup {} on {}", manifest.name, remote.describe());
        if keys.is_none() {
            for line in ops::verify_hashes(&remote, &manifest).await? {
                println!("ok      {line}");
            }
            if manifest.encryption.is_some() {
                println!("content not checked: encrypted, give --identity FILE to check it");
            }
            return Ok(true);
        }
        let tmp = temp_under(&cfg.backup_dir, REMOTE_VERIFY_PREFIX)?;
        let dir = ops::fetch(&remote, &manifest, tmp.path()).await?;
        let report =
            tokio::task::spawn_blocking(move || crate::ops::verify::verify(&dir, keys.as_ref()))
                .await??;
        for line in &report.ok {
            println!("ok      {line}");
        }
        for line in &report.problems {
            println!("FAILED  {line}");
        }
        Ok(report.problems.is_empty())
    }
    .await;
    match result {
        Ok(true) => {
            println!("remote backup verified");
            ExitCode::SUCCESS
        }
        Ok(false) => ExitCode::from(EXIT_FAILED),
        Err(e) => failed("verify --remote", e),
    }
}

/// A temporary folder `<dir>/<kind><host>-<pid>-*`, removed on drop (and by
/// `prune` when its process was killed).
fn temp_under(dir: &Path, kind: &str) -> anyhow::Result<tempfile::TempDir> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    tempfile::Builder::new()
        .prefix(&crate::owned_temp::prefix(kind))
        .tempdir_in(dir)
        .with_context(|| format!("create a temporary folder in {}", dir.display()))
}

/// Downloads the remote backup `backup` (`NAME` or `latest`) into a new
/// folder under `into`, checking every hash; returns the local folder
/// (what `restore --remote` restores from).
pub async fn fetch_remote(cfg: &Config, backup: &str, into: &Path) -> anyhow::Result<PathBuf> {
    let remote = Remote::required(&cfg.remote)?;
    let manifest = ops::resolve(&remote, backup).await?;
    ops::fetch(&remote, &manifest, into).await
}

/// `restore --remote NAME|latest`: download (hash-checked) into a temporary
/// folder beside the backups, then the local restore.
pub async fn restore(
    cfg: &Config,
    backup: &str,
    opts: &RestoreOptions,
    identity: Option<&Path>,
) -> ExitCode {
    let result = async {
        let keys = identities(cfg, identity)?;
        let tmp = temp_under(&cfg.backup_dir, REMOTE_RESTORE_PREFIX)?;
        let dir = fetch_remote(cfg, backup, tmp.path()).await?;
        let opts = RestoreOptions {
            identities: keys.map(std::sync::Arc::new),
            ..opts.clone()
        };
        let (mysql, postgres) = (cfg.mysql.clone(), cfg.postgres.clone());
        let line = tokio::task::spawn_blocking(move || {
            crate::ops::restore::restore(&dir, &opts, &mysql, &postgres)
        })
        .await??;
        Ok::<_, anyhow::Error>(line)
    }
    .await;
    match result {
        Ok(line) => {
            println!("{line} (from {backup} on the remote)");
            ExitCode::SUCCESS
        }
        Err(e) => failed("restore --remote", e),
    }
}

/// `drill --remote NAME|latest [--identity FILE]`: downloads the remote
/// backup (hashes checked while streaming) into a temporary folder in the
/// backup folder, drills it like a local one (full content checks), reports
/// the RTO figures with the download time, and removes everything.
pub async fn drill(cfg: &Config, backup: &str, identity: Option<&Path>) -> ExitCode {
    let result = async {
        let keys = identities(cfg, identity)?;
        let remote = Remote::required(&cfg.remote)?;
        let started = std::time::Instant::now();
        let manifest = ops::resolve(&remote, backup).await?;
        let tmp = temp_under(&cfg.backup_dir, crate::ops::drill::PREFIX)?;
        let dir = ops::fetch(&remote, &manifest, tmp.path()).await?;
        let download = crate::ops::drill::Download {
            remote: remote.describe(),
            secs: started.elapsed().as_secs_f64(),
        };
        let backup_dir = cfg.backup_dir.clone();
        let report = tokio::task::spawn_blocking(move || {
            crate::ops::drill::drill(&backup_dir, &dir, keys.as_ref(), Some(download))
        })
        .await??;
        drop(tmp);
        Ok(report)
    }
    .await;
    crate::commands::drill_outcome(result)
}

/// `prune --remote [--dry-run]`.
pub async fn prune(cfg: &Config, dry_run: bool) -> ExitCode {
    let result = async {
        let remote = Remote::required(&cfg.remote)?;
        let plan = retention_plan(cfg, &remote).await?;
        for (name, why) in &plan.keep {
            println!("keep    {name} ({why})");
        }
        let verb = if dry_run { "would remove" } else { "remove" };
        for (name, why) in &plan.delete {
            println!("{verb} {name} ({why})");
        }
        if !dry_run {
            ops::apply(&remote, &plan).await?;
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failed("prune --remote", e),
    }
}

/// `push <backup>`: uploads an existing local backup (after a failed
/// upload, or to seed a new remote).
pub async fn push(cfg: &Config, backup: &str) -> ExitCode {
    let result = async {
        let dir = crate::ops::resolve_backup(&cfg.backup_dir, backup)?;
        let manifest = Manifest::load(&dir)?;
        let remote = Remote::required(&cfg.remote)?;
        let published = Published {
            path: dir,
            manifest,
        };
        let copy = upload_published(cfg, &published, "push", None)
            .await
            .expect("a remote is configured");
        match copy.error {
            None => Ok(format!(
                "uploaded {} to {} ({}, {:.1} s)",
                published.manifest.name,
                remote.describe(),
                mib(copy.bytes),
                copy.secs
            )),
            Some(e) => Err(anyhow::anyhow!(e)),
        }
    }
    .await;
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => failed("push", e),
    }
}
