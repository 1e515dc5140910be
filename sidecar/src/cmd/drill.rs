//! `drill [backup] [--remote] [--identity FILE]`: restores a backup into a
//! temporary folder, checks it fully, reports the RTO figures and removes
//! everything again.

use std::path::Path;
use std::process::ExitCode;

use super::shared::identities;
use super::EXIT_FAILED;
use crate::base::temp;
use crate::config::Config;
use crate::ops;
use crate::remote::{ops as remote_ops, Remote};

/// `drill [backup] [--identity FILE]`.
pub fn local(cfg: &Config, backup: &str, identity: Option<&Path>) -> ExitCode {
    let result = identities(cfg, identity).and_then(|keys| {
        ops::resolve_backup(&cfg.backup_dir, backup)
            .and_then(|d| ops::drill::drill(&cfg.backup_dir, &d, keys.as_ref(), None))
    });
    drill_outcome(result)
}

/// Prints a drill's RTO figures (or its error); the exit code.
pub fn drill_outcome(result: anyhow::Result<ops::drill::DrillReport>) -> ExitCode {
    match result {
        Ok(r) => {
            for line in &r.artifacts {
                println!("ok      {line}");
            }
            println!(
                "drill of {} ({}) passed: download {:.2} s, decompress {:.2} s, check {:.2} s, total {:.2} s ({} bytes restored and removed)",
                r.backup, r.source, r.download_secs, r.decompress_secs, r.check_secs, r.total_secs, r.restored_bytes
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("drill failed: {}", crate::remote::store::describe_error(&e));
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// `drill --remote NAME|latest [--identity FILE]`: downloads the remote
/// backup (hashes checked while streaming) into a temporary folder in the
/// backup folder, drills it like a local one (full content checks), reports
/// the RTO figures with the download time, and removes everything.
pub async fn remote(cfg: &Config, backup: &str, identity: Option<&Path>) -> ExitCode {
    let result = async {
        let keys = identities(cfg, identity)?;
        let remote = Remote::required(&cfg.remote)?;
        let started = std::time::Instant::now();
        let manifest = remote_ops::resolve(&remote, backup).await?;
        let tmp = temp::dir_under(&cfg.backup_dir, temp::DRILL_PREFIX)?;
        let dir = remote_ops::fetch(&remote, &manifest, tmp.path()).await?;
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
    drill_outcome(result)
}
