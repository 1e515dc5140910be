//! `once`: one uncoordinated backup now (the host-cron fallback: the host
//! stopped the tracker), then retention and the off-site upload.

use std::process::ExitCode;

use super::{require_engine, EXIT_FAILED};
use crate::base::cancel::CancelToken;
use crate::config::Config;
use crate::retention::prune_quietly;
use crate::webhook::{self, Notification};

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
