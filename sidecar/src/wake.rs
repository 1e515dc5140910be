//! Wake-ups from the readiness file: an inotify watch (via `notify`) on the
//! file's folder.
//!
//! The folder, not the file, is watched because the coordinator replaces
//! the file by rename, which would orphan a watch on the file itself. The
//! file is only a hint: the runner still claims over HTTP.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use maintenance_proto::ReadinessDocument;
use notify::{RecursiveMode, Watcher};
use tokio::sync::Notify;

/// Watches the readiness file (when configured).
pub struct ReadyFileWatch {
    path: Option<PathBuf>,
    watcher: Option<notify::RecommendedWatcher>,
    wake: Arc<Notify>,
}

impl ReadyFileWatch {
    /// Prepares a watch on `path`; the watch itself starts in [`Self::ensure`].
    pub fn new(path: Option<PathBuf>) -> Self {
        let mut w = ReadyFileWatch {
            path,
            watcher: None,
            wake: Arc::new(Notify::new()),
        };
        w.ensure();
        w
    }

    /// Starts the watch if it is not running and the folder exists (the
    /// folder may be created after the sidecar starts, e.g. a shared volume).
    pub fn ensure(&mut self) {
        if self.watcher.is_some() {
            return;
        }
        let Some(path) = &self.path else { return };
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        if !dir.is_dir() {
            return;
        }
        let name = path.file_name().map(|n| n.to_owned());
        let wake = self.wake.clone();
        let watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            if let Ok(ev) = ev {
                if ev.paths.iter().any(|p| p.file_name() == name.as_deref()) {
                    wake.notify_one();
                }
            }
        });
        match watcher {
            Ok(mut w) => match w.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    tracing::info!("watching {} for readiness", path.display());
                    self.watcher = Some(w);
                }
                Err(e) => tracing::warn!(
                    "cannot watch {}: {e}; relying on HTTP long-poll",
                    dir.display()
                ),
            },
            Err(e) => tracing::warn!("cannot start file watcher: {e}; relying on HTTP long-poll"),
        }
    }

    /// Resolves on the next change of the file; never when not watching.
    pub async fn changed(&self) {
        if self.watcher.is_some() {
            self.wake.notified().await
        } else {
            std::future::pending().await
        }
    }

    /// The current document, if the file exists and parses.
    pub fn read(&self) -> Option<ReadinessDocument> {
        let text = std::fs::read_to_string(self.path.as_ref()?).ok()?;
        serde_json::from_str(&text).ok()
    }
}
