//! One backup without a coordinator window (`once`, `once --online`, the
//! online schedule): the run, its metrics and summary line, the webhook,
//! then retention and the off-site copy. The caller's [`Release`] decides
//! what the run tells (nothing for `once`; the online mode takes its own
//! SQLite pin there).

use crate::backup::Release;
use crate::base::cancel::CancelToken;
use crate::config::Config;
use crate::retention::prune_quietly;
use crate::webhook::{self, Notification};

/// Runs one backup; prints the published folder on stdout. `Err` when the
/// backup or its upload failed (already logged).
pub async fn single_backup(
    cfg: &Config,
    cancel: CancelToken,
    mut release: Box<dyn Release + Send>,
) -> Result<(), ()> {
    let cfg2 = cfg.clone();
    let mode = release.mode();
    let run = tokio::task::spawn_blocking(move || {
        crate::backup::run(&cfg2, None, cancel, release.as_mut())
    })
    .await
    .expect("backup thread panicked");
    run.finish(mode, None, false);
    let report = run.report();
    webhook::notify(
        &cfg.webhook,
        &Notification::for_report(&cfg.sidecar_id, mode, None, &report),
    )
    .await;
    match run.result {
        Ok(p) => {
            println!("{}", p.path.display());
            prune_quietly(cfg);
            let copy = crate::offsite::upload_published(cfg, &p, mode, None).await;
            if copy.is_some_and(|c| c.error.is_some()) {
                // Its `upload finished` line holds the error: said once.
                eprintln!(
                    "off-site upload failed (its error is above); the local backup {} is intact",
                    p.path.display()
                );
                return Err(());
            }
            Ok(())
        }
        Err(e) => {
            tracing::error!("backup failed: {e:#}");
            Err(())
        }
    }
}
