//! `prune [--dry-run] [--remote]`: applies the retention policy to the
//! backup folder (and what killed processes left), or to the remote.

use std::process::ExitCode;

use super::EXIT_FAILED;
use crate::config::Config;
use crate::offsite;
use crate::remote::{ops as remote_ops, Remote};
use crate::retention;

/// `prune [--dry-run]`.
pub fn local(cfg: &Config, dry_run: bool) -> ExitCode {
    let plan = match retention::local_plan(cfg) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cannot scan {}: {e}", cfg.backup_dir.display());
            return ExitCode::from(EXIT_FAILED);
        }
    };
    for (name, why) in &plan.keep {
        println!("keep    {name} ({why})");
    }
    for (name, why) in &plan.skipped {
        println!("skip    {name} (unreadable manifest: {why})");
    }
    let verb = if dry_run { "would remove" } else { "remove" };
    for p in plan.delete.iter().chain(&plan.leftovers) {
        println!("{verb} {}", p.display());
    }
    if !dry_run {
        retention::apply(&plan);
    }
    ExitCode::SUCCESS
}

/// `prune --remote [--dry-run]`.
pub async fn remote(cfg: &Config, dry_run: bool) -> ExitCode {
    let result = async {
        let remote = Remote::required(&cfg.remote)?;
        let plan = offsite::retention_plan(cfg, &remote).await?;
        for (name, why) in &plan.keep {
            println!("keep    {name} ({why})");
        }
        let verb = if dry_run { "would remove" } else { "remove" };
        for (name, why) in &plan.delete {
            println!("{verb} {name} ({why})");
        }
        for part in &plan.parts {
            println!(
                "{verb} {} (unfinished upload of {}, started {} ago)",
                part.name,
                part.backup,
                crate::base::progress::age((chrono::Utc::now() - part.started).num_seconds())
            );
        }
        if !dry_run {
            remote_ops::apply(&remote, &plan).await?;
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => super::shared::failed("prune --remote", e),
    }
}
