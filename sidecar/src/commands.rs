//! The operator subcommands other than `run`, each returning the process
//! exit code.

use std::path::Path;
use std::process::ExitCode;

use chrono::Utc;

use crate::cancel::CancelToken;
use crate::config::Config;
use crate::ops::{self, restore::RestoreOptions};
use crate::retention;
use crate::webhook::{self, Notification};

/// Exit code for a failed backup, verify or restore.
pub const EXIT_FAILED: u8 = 1;
/// Exit code for usage and configuration errors.
pub const EXIT_USAGE: u8 = 2;

/// The configuration error when no engine is enabled (exit 2 from `once`
/// and `run`).
pub fn require_engine(cfg: &Config, command: &str) -> Result<(), ExitCode> {
    if cfg.any_engine() {
        return Ok(());
    }
    eprintln!(
        "maintenance-sidecar {command}: {}",
        crate::config::NO_ENGINE
    );
    Err(ExitCode::from(EXIT_USAGE))
}

/// `once`: one uncoordinated backup, then retention.
pub async fn once(cfg: &Config) -> ExitCode {
    if let Err(code) = require_engine(cfg, "once") {
        return code;
    }
    let cfg2 = cfg.clone();
    let run = tokio::task::spawn_blocking(move || {
        crate::backup::run(
            &cfg2,
            None,
            CancelToken::new(),
            &mut crate::backup::Uncoordinated,
        )
    })
    .await
    .expect("backup thread panicked");
    run.finish("once", None, false);
    let report = run.report();
    webhook::notify(
        &cfg.webhook,
        &Notification::for_report(&cfg.sidecar_id, "once", None, &report),
    )
    .await;
    match run.result {
        Ok(p) => {
            println!("{}", p.path.display());
            prune_quietly(cfg);
            let copy = crate::offsite::upload_published(cfg, &p, "once", None).await;
            if let Some(err) = copy.and_then(|c| c.error) {
                eprintln!(
                    "off-site upload failed (the local backup {} is intact): {err}",
                    p.path.display()
                );
                return ExitCode::from(EXIT_FAILED);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("backup failed: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// The retention plan for the backup folder, plus what a killed restore
/// left beside the configured SQLite database.
fn prune_plan(cfg: &Config) -> std::io::Result<retention::Plan> {
    let mut plan = retention::plan(&cfg.backup_dir, cfg.keep_days, cfg.keep_last, Utc::now())?;
    if let Some(db) = &cfg.sqlite.path {
        plan.leftovers.extend(retention::restore_leftovers(db));
    }
    Ok(plan)
}

/// Applies retention, logging instead of failing.
pub fn prune_quietly(cfg: &Config) {
    match prune_plan(cfg) {
        Ok(plan) => {
            retention::apply(&plan);
        }
        Err(e) => tracing::warn!("retention: cannot scan {}: {e}", cfg.backup_dir.display()),
    }
}

/// `prune [--dry-run]`.
pub fn prune(cfg: &Config, dry_run: bool) -> ExitCode {
    let plan = match prune_plan(cfg) {
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

/// `list`.
pub fn list(cfg: &Config) -> ExitCode {
    match ops::list::table(&cfg.backup_dir, Utc::now()) {
        Ok(t) => {
            print!("{t}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot list {}: {e:#}", cfg.backup_dir.display());
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// `verify <backup> [--identity FILE]`.
pub fn verify(cfg: &Config, backup: &str, identity: Option<&Path>) -> ExitCode {
    let result = crate::offsite::identities(cfg, identity).and_then(|keys| {
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

/// `restore <backup> [--identity FILE]`.
pub fn restore(
    cfg: &Config,
    backup: &str,
    opts: &RestoreOptions,
    identity: Option<&Path>,
) -> ExitCode {
    let result = crate::offsite::identities(cfg, identity).and_then(|keys| {
        let opts = RestoreOptions {
            identities: keys.map(std::sync::Arc::new),
            ..opts.clone()
        };
        ops::resolve_backup(&cfg.backup_dir, backup)
            .and_then(|d| ops::restore::restore(&d, &opts, &cfg.mysql, &cfg.postgres))
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

/// `drill [backup] [--identity FILE]`.
pub fn drill(cfg: &Config, backup: &str, identity: Option<&Path>) -> ExitCode {
    let result = crate::offsite::identities(cfg, identity).and_then(|keys| {
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
