//! `restore <backup> [--remote]`: puts a backup back in place (with
//! `--remote`, downloaded and hash-checked into a temporary folder first).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::shared::identities;
use super::EXIT_FAILED;
use crate::base::temp;
use crate::config::Config;
use crate::ops::{self, restore::RestoreOptions};
use crate::remote::{ops as remote_ops, Remote};

/// `restore <backup> [--identity FILE]`.
pub fn local(
    cfg: &Config,
    backup: &str,
    opts: &RestoreOptions,
    identity: Option<&Path>,
) -> ExitCode {
    let result = identities(cfg, identity).and_then(|keys| {
        let opts = RestoreOptions {
            identities: keys.map(std::sync::Arc::new),
            ..opts.clone()
        };
        ops::resolve_backup(&cfg.backup_dir, backup)
            .and_then(|d| ops::restore::restore(&d, &opts, cfg))
    });
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("restore failed: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Downloads the remote backup `backup` (`NAME` or `latest`) into a new
/// folder under `into`, checking every hash; returns the local folder
/// (what `restore --remote` restores from).
pub async fn fetch_remote(cfg: &Config, backup: &str, into: &Path) -> anyhow::Result<PathBuf> {
    let remote = Remote::required(&cfg.remote)?;
    let manifest = remote_ops::resolve(&remote, backup).await?;
    remote_ops::fetch(&remote, &manifest, into).await
}

/// `restore --remote NAME|latest`: download (hash-checked) into a temporary
/// folder beside the backups, then the local restore.
pub async fn remote(
    cfg: &Config,
    backup: &str,
    opts: &RestoreOptions,
    identity: Option<&Path>,
) -> ExitCode {
    let result = async {
        let keys = identities(cfg, identity)?;
        if let Some(to) = &opts.to {
            // Before the download, not after it.
            crate::ops::restore::check_to(to)?;
        }
        let tmp = temp::dir_under(&cfg.backup_dir, temp::REMOTE_RESTORE_PREFIX)?;
        let dir = fetch_remote(cfg, backup, tmp.path()).await?;
        let opts = RestoreOptions {
            identities: keys.map(std::sync::Arc::new),
            ..opts.clone()
        };
        let cfg = cfg.clone();
        let line =
            tokio::task::spawn_blocking(move || crate::ops::restore::restore(&dir, &opts, &cfg))
                .await??;
        Ok::<_, anyhow::Error>(line)
    }
    .await;
    match result {
        Ok(line) => {
            println!("{line} (from {backup} on the remote)");
            ExitCode::SUCCESS
        }
        Err(e) => super::shared::failed("restore --remote", e),
    }
}
