//! `open-window`: opens a manual maintenance window on every configured
//! coordinator instance (for tests and operators).

use std::process::ExitCode;

use super::{EXIT_FAILED, EXIT_USAGE};
use crate::client;
use crate::config::Config;

/// `open-window [--duration SECS]`: opens a manual window on every
/// configured coordinator instance; prints the window ids.
pub async fn open_window(cfg: &Config, duration: u64) -> ExitCode {
    let coords = match client::Coordinators::from_config(&cfg.coordinator) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("maintenance-sidecar open-window: {e:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if cfg.coordinator.token.is_none() {
        eprintln!("maintenance-sidecar open-window: no token configured (set MAINTENANCE_TOKEN or MAINTENANCE_TOKEN_FILE)");
        return ExitCode::from(EXIT_USAGE);
    }
    // Every instance at once, so their windows open as close together as
    // the network allows: one line per instance, in configuration order
    // (with one instance, just the window id).
    let several = coords.all().len() > 1;
    let opened = futures_util::future::join_all(
        coords
            .all()
            .iter()
            .map(|c| async move { (c.url(), c.open_window(duration).await) }),
    )
    .await;
    let mut failed = false;
    for (url, result) in opened {
        match result {
            Ok(w) if several => println!("{} {url}", w.window_id),
            Ok(w) => println!("{}", w.window_id),
            Err(e) => {
                failed = true;
                eprintln!("open-window failed on {url}: {e:#}");
            }
        }
    }
    if failed {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}
