//! `push <backup>`: uploads an existing local backup again.

use std::process::ExitCode;

use crate::backup::Published;
use crate::base::progress::mib;
use crate::config::Config;
use crate::manifest::Manifest;
use crate::offsite;
use crate::remote::Remote;

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
        let copy = offsite::upload_published(cfg, &published, "push", None)
            .await
            .expect("a remote is configured");
        match copy.error {
            None => Ok(Some(format!(
                "uploaded {} to {} ({}, {:.1} s)",
                published.manifest.name,
                remote.describe(),
                mib(copy.bytes),
                copy.secs
            ))),
            // Already said in full by the `upload finished` line.
            Some(_) => Ok(None),
        }
    }
    .await;
    match result {
        Ok(Some(line)) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Ok(None) => {
            eprintln!("push failed: the upload did not finish (its error is above)");
            ExitCode::from(super::EXIT_FAILED)
        }
        Err(e) => super::shared::failed("push", e),
    }
}
