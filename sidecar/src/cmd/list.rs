//! `list`: a table of the backups in the backup dir with age, size and
//! status, newest first (`--remote`: the same for the remote's backups).

use std::fmt::Write;
use std::path::Path;
use std::process::ExitCode;

use chrono::{DateTime, Utc};

use super::EXIT_FAILED;
use crate::config::Config;
use crate::remote::{ops as remote_ops, Remote, RemoteState};

use crate::base::progress::{age, mib};
use crate::retention::scan;

/// Renders the table.
pub fn table(root: &Path, now: DateTime<Utc>) -> anyhow::Result<String> {
    let latest = std::fs::read_link(root.join(crate::staging::LATEST))
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    let mut out = String::new();
    writeln!(out, "{:<44} {:>8} {:>12}  STATUS", "NAME", "AGE", "SIZE")?;
    for e in scan(root)? {
        let mark = if latest.as_deref() == Some(e.name.as_str()) {
            " (latest)"
        } else {
            ""
        };
        match &e.manifest {
            Ok(m) => writeln!(
                out,
                "{:<44} {:>8} {:>12}  {}{mark}",
                e.name,
                age((now - m.started_at).num_seconds()),
                mib(m.total_bytes()),
                if m.verified { "verified" } else { "unverified" }
            )?,
            Err(err) => writeln!(out, "{:<44} {:>8} {:>12}  invalid: {err}", e.name, "-", "-")?,
        }
    }
    Ok(out)
}

/// `list`.
pub fn local(cfg: &Config) -> ExitCode {
    match table(&cfg.backup_dir, Utc::now()) {
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

/// `list --remote`.
pub async fn remote(cfg: &Config) -> ExitCode {
    let result = async {
        let remote = Remote::required(&cfg.remote)?;
        let entries = remote_ops::list(&remote).await?;
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
        Err(e) => super::shared::failed("list --remote", e),
    }
}
