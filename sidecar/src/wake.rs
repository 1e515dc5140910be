//! Wake-ups from the readiness file: an inotify watch (via `notify`) on the
//! file's folder.
//!
//! The folder, not the file, is watched because the coordinator replaces
//! the file by rename, which would orphan a watch on the file itself. The
//! file is only a hint: the runner still claims over HTTP.
//!
//! Only events that can change what the file says wake the runner: the
//! file created, renamed into place, or closed after writing (and a queue
//! overflow, after which anything may have changed). Opens, reads and
//! closes without writing never do: the runner reads the file on every
//! wake-up, and waking on its own reads made an idle sidecar spin.
//!
//! Anyone who can write the folder can plant something else at the path:
//! the file is read only when it is a regular file of at most
//! [`MAX_READY_FILE_BYTES`], opened without following a link and without
//! blocking ([`crate::base::regular_file`]); anything else is skipped with one
//! warning, and the runner keeps relying on the HTTP long-poll.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use maintenance_proto::ReadinessDocument;
use notify::event::{AccessKind, AccessMode, EventKind, Flag, ModifyKind, RenameMode};
use notify::{RecursiveMode, Watcher};
use tokio::sync::Notify;

/// The largest readiness file read; the coordinator writes a few hundred
/// bytes.
pub const MAX_READY_FILE_BYTES: u64 = 64 * 1024;

/// True when `ev` may have changed the content of the file called `name`
/// in the watched folder.
pub fn is_content_change(ev: &notify::Event, name: &OsStr) -> bool {
    if ev.flag() == Some(Flag::Rescan) {
        return true;
    }
    let names = |p: &PathBuf| p.file_name() == Some(name);
    match ev.kind {
        EventKind::Create(_) | EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
            ev.paths.iter().any(names)
        }
        // `Both` lists (from, to): only the destination counts.
        EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Any)) => {
            ev.paths.iter().any(names)
        }
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => ev.paths.last().is_some_and(names),
        _ => false,
    }
}

/// Watches the readiness file (when configured).
pub struct ReadyFileWatch {
    path: Option<PathBuf>,
    watcher: Option<notify::RecommendedWatcher>,
    wake: Arc<Notify>,
    /// The last problem warned about, so a hostile file is reported once,
    /// not on every wake-up.
    warned: Mutex<Option<String>>,
}

impl ReadyFileWatch {
    /// Prepares a watch on `path`; the watch itself starts in [`Self::ensure`].
    pub fn new(path: Option<PathBuf>) -> Self {
        let path = path.filter(|p| {
            let named = p.file_name().is_some();
            if !named {
                tracing::warn!(
                    "ready file {} names no file; relying on HTTP long-poll",
                    p.display()
                );
            }
            named
        });
        let mut w = ReadyFileWatch {
            path,
            watcher: None,
            wake: Arc::new(Notify::new()),
            warned: Mutex::new(None),
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
        let dir = crate::base::fs::parent_dir(path);
        if !dir.is_dir() {
            return;
        }
        let Some(name) = path.file_name().map(|n| n.to_owned()) else {
            return;
        };
        let wake = self.wake.clone();
        let watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            if ev.is_ok_and(|ev| is_content_change(&ev, &name)) {
                wake.notify_one();
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

    /// Resolves on the next change of the file (or at once when one
    /// happened since the last call); never when not watching.
    pub async fn changed(&self) {
        if self.watcher.is_some() {
            self.wake.notified().await
        } else {
            std::future::pending().await
        }
    }

    /// The current document, if the file exists, is a regular file of at
    /// most [`MAX_READY_FILE_BYTES`] and parses. Anything else at the path
    /// (a link, a FIFO, a huge file) is warned about once and ignored.
    pub fn read(&self) -> Option<ReadinessDocument> {
        let path = self.path.as_ref()?;
        let problem = match crate::base::regular_file::read_small(path, MAX_READY_FILE_BYTES) {
            Ok(text) => {
                *self.warned.lock().unwrap_or_else(|p| p.into_inner()) = None;
                return serde_json::from_slice(&text).ok();
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => e.to_string(),
        };
        let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
        if warned.as_deref() != Some(problem.as_str()) {
            tracing::warn!(
                "ready file ignored: {problem}; only the coordinator should write it \
                 (relying on HTTP long-poll until it does)"
            );
            *warned = Some(problem);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, MetadataKind, RemoveKind};
    use notify::Event;
    use std::time::Duration;

    fn ev(kind: EventKind, paths: &[&str]) -> Event {
        paths
            .iter()
            .fold(Event::new(kind), |e, p| e.add_path(PathBuf::from(p)))
    }

    #[test]
    fn only_events_that_can_change_the_file_pass() {
        let name = OsStr::new("ready.json");
        let f = "/run/m/ready.json";
        let other = "/run/m/.ready.json.tmp-7";
        let pass = [
            ev(EventKind::Create(CreateKind::File), &[f]),
            ev(
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                &[f],
            ),
            ev(EventKind::Modify(ModifyKind::Name(RenameMode::To)), &[f]),
            ev(
                EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
                &[other, f],
            ),
            ev(EventKind::Other, &[]).set_flag(Flag::Rescan),
        ];
        for e in &pass {
            assert!(is_content_change(e, name), "should wake: {e:?}");
        }
        let block = [
            // The runner's own reads.
            ev(EventKind::Access(AccessKind::Open(AccessMode::Any)), &[f]),
            ev(EventKind::Access(AccessKind::Close(AccessMode::Read)), &[f]),
            ev(EventKind::Access(AccessKind::Read), &[f]),
            ev(
                EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
                &[f],
            ),
            // Half-written: the close-write follows.
            ev(EventKind::Modify(ModifyKind::Data(DataChange::Any)), &[f]),
            ev(EventKind::Remove(RemoveKind::File), &[f]),
            // Moved away, and other files in the folder.
            ev(EventKind::Modify(ModifyKind::Name(RenameMode::From)), &[f]),
            ev(
                EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
                &[f, other],
            ),
            ev(EventKind::Create(CreateKind::File), &[other]),
            ev(
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                &[other],
            ),
            ev(EventKind::Other, &[f]),
        ];
        for e in &block {
            assert!(!is_content_change(e, name), "should not wake: {e:?}");
        }
    }

    async fn woken(w: &ReadyFileWatch) -> bool {
        tokio::time::timeout(Duration::from_millis(300), w.changed())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn reads_never_wake_a_replacement_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ready.json");
        std::fs::write(&path, r#"{"not":"a document"}"#).unwrap();
        let w = ReadyFileWatch::new(Some(path.clone()));
        assert!(w.watcher.is_some());
        // Drain whatever the setup produced.
        while woken(&w).await {}
        for _ in 0..50 {
            assert!(w.read().is_none());
        }
        assert!(!woken(&w).await, "its own reads woke the watch");
        let tmp = dir.path().join(".ready.json.tmp");
        std::fs::write(&tmp, "{}").unwrap();
        assert!(
            !woken(&w).await,
            "another file in the folder woke the watch"
        );
        std::fs::rename(&tmp, &path).unwrap();
        assert!(
            woken(&w).await,
            "the file replaced by rename did not wake the watch"
        );
        std::fs::write(&path, "{}").unwrap();
        assert!(
            woken(&w).await,
            "the file rewritten in place did not wake the watch"
        );
    }
}
