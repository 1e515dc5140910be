//! The readiness file: the file half of the readiness signal.
//!
//! A sidecar watching the file's folder wakes up when it changes. The file
//! is only a hint (the claim over HTTP is what authorises a backup), but a
//! stale "ready" must still never be left behind, so every write is atomic
//! (temp file, fsync, rename, fsync of the folder) and the coordinator
//! rewrites the file at start-up and on every resume. The temp file has an
//! unpredictable name and is created exclusively, so a link or file planted
//! in the folder is never followed or overwritten.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use maintenance_proto::ReadinessDocument;

/// Writes readiness documents to one path.
#[derive(Debug, Clone)]
pub struct ReadinessFile {
    path: PathBuf,
}

impl ReadinessFile {
    /// A writer for `path`; its folder is created on first write.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        ReadinessFile { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Atomically replaces the file with `doc`.
    ///
    /// ```
    /// use maintenance_coordinator::ReadinessFile;
    /// use maintenance_proto::{ReadinessDocument, State};
    /// let dir = tempfile::tempdir().unwrap();
    /// let file = ReadinessFile::new(dir.path().join("ready.json"));
    /// file.write(&ReadinessDocument::not_ready("i-1", State::Idle, chrono::Utc::now())).unwrap();
    /// assert!(!file.read().unwrap().ready);
    /// ```
    pub fn write(&self, doc: &ReadinessDocument) -> io::Result<()> {
        let mut body = serde_json::to_vec_pretty(doc).map_err(io::Error::other)?;
        body.push(b'\n');
        crate::atomic_file::replace(&self.path, &body)
    }

    /// Reads and parses the file.
    pub fn read(&self) -> io::Result<ReadinessDocument> {
        let text = fs::read(&self.path)?;
        serde_json::from_slice(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maintenance_proto::{State, WindowId};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn write_replaces_the_document() {
        let dir = tempfile::tempdir().unwrap();
        let file = ReadinessFile::new(dir.path().join("sub/ready.json"));
        let mut doc = ReadinessDocument::not_ready("a", State::Ready, chrono::Utc::now());
        doc.ready = true;
        doc.window_id = Some(WindowId::new("w-1"));
        file.write(&doc).unwrap();
        assert_eq!(file.read().unwrap(), doc);
        let later = ReadinessDocument::not_ready("a", State::Idle, chrono::Utc::now());
        file.write(&later).unwrap();
        assert_eq!(file.read().unwrap(), later);
    }

    #[test]
    fn planted_links_and_files_at_temp_names_are_not_followed_or_overwritten() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let ready = dir.path().join("ready");
        fs::create_dir(&ready).unwrap();
        // The names earlier versions used (pid-based), and pid 1 as in a
        // container: a link to the victim, and a plain file.
        let link = ready.join(format!(".ready.json.tmp-{}", std::process::id()));
        symlink(&victim, &link).unwrap();
        let planted = ready.join(".ready.json.tmp-1");
        fs::write(&planted, "mine").unwrap();
        let file = ReadinessFile::new(ready.join("ready.json"));
        let doc = ReadinessDocument::not_ready("a", State::Idle, chrono::Utc::now());
        for _ in 0..3 {
            file.write(&doc).unwrap();
        }
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read_to_string(&planted).unwrap(), "mine");
        assert_eq!(file.read().unwrap(), doc);
        let meta = fs::symlink_metadata(file.path()).unwrap();
        assert!(meta.file_type().is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o644);
        assert_eq!(fs::read_dir(&ready).unwrap().count(), 3, "temp files left");
    }

    #[test]
    fn unwritable_location_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("not-a-dir");
        fs::write(&blocker, "x").unwrap();
        let file = ReadinessFile::new(blocker.join("ready.json"));
        let doc = ReadinessDocument::not_ready("a", State::Idle, chrono::Utc::now());
        assert!(file.write(&doc).is_err());
    }
}
