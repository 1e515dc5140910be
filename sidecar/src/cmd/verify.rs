//! `verify <backup> [--remote] [--identity FILE]`: re-hashes every artifact
//! of a backup and checks its content; with `--remote`, the streaming hash
//! check of the remote copy (and, with an identity, the content check on a
//! temporary download).

use std::path::Path;
use std::process::ExitCode;

use super::shared::identities;
use super::EXIT_FAILED;
use crate::base::temp;
use crate::config::Config;
use crate::ops;
use crate::remote::{ops as remote_ops, Remote};

/// `verify <backup> [--identity FILE]`.
pub fn local(cfg: &Config, backup: &str, identity: Option<&Path>) -> ExitCode {
    let result = identities(cfg, identity).and_then(|keys| {
        ops::resolve_backup(&cfg.backup_dir, backup)
            .and_then(|d| ops::verify::verify(&d, keys.as_ref()))
    });
    match result {
        Ok(r) => {
            for line in &r.ok {
                println!("ok      {line}");
            }
            for line in &r.problems {
                println!("FAILED  {line}");
            }
            if r.problems.is_empty() {
                println!("backup verified");
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FAILED)
            }
        }
        Err(e) => {
            eprintln!("verify failed: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// `verify --remote NAME|latest [--identity FILE]`: the streaming hash check;
/// with an identity, also the content check on a temporary download.
pub async fn remote(cfg: &Config, backup: &str, identity: Option<&Path>) -> ExitCode {
    let result = async {
        let keys = identities(cfg, identity)?;
        let remote = Remote::required(&cfg.remote)?;
        let manifest = remote_ops::resolve(&remote, backup).await?;
        println!("remote backup {} on {}", manifest.name, remote.describe());
        if keys.is_none() {
            for line in remote_ops::verify_hashes(&remote, &manifest).await? {
                println!("ok      {line}");
            }
            if manifest.encryption.is_some() {
                println!("content not checked: encrypted, give --identity FILE to check it");
            }
            return Ok(true);
        }
        let tmp = temp::dir_under(&cfg.backup_dir, temp::REMOTE_VERIFY_PREFIX)?;
        let dir = remote_ops::fetch(&remote, &manifest, tmp.path()).await?;
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
        Err(e) => super::shared::failed("verify --remote", e),
    }
}
