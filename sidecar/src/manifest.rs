//! `manifest.json`: the record inside every published backup folder.
//!
//! Retention and `list` read ages from here, never from mtimes (a restore
//! from off-site copy or a `cp -r` resets mtimes), and `verify` re-checks
//! the artifacts it lists.
//!
//! The file is read like the artifacts and the ready file
//! (`base/regular_file.rs`): a symbolic link in its place is not followed,
//! a FIFO does not block the reader, and a file above [`MAX_BYTES`] is
//! refused before it is read into memory.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};
use maintenance_proto::Artifact;
use serde::{Deserialize, Serialize};

/// Current manifest format.
pub const FORMAT_VERSION: u32 = 1;

/// File name of the manifest inside a backup folder.
pub const FILE_NAME: &str = "manifest.json";

/// The largest manifest read, locally or from a remote. One holds an entry
/// per artifact and is a few KiB, so this leaves room for thousands of
/// artifacts while a planted huge file is never read into memory.
pub const MAX_BYTES: u64 = 1 << 20;

/// The bytes of `dir/manifest.json`, which must be a regular file of at
/// most [`MAX_BYTES`]: a symbolic link, a FIFO, a device or a larger file
/// is refused with an error that names it.
pub fn read_file(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = dir.join(FILE_NAME);
    crate::base::regular_file::read_small(&path, MAX_BYTES).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => anyhow::anyhow!(
            "{e}; the sidecar writes a backup's manifest as a plain file of a few KiB, so this \
             folder was changed after the backup: take the backup from another copy \
             (`restore --remote`), or remove the folder"
        ),
        // Names the path already ("open …/manifest.json: …").
        _ => anyhow::Error::new(e),
    })
}

/// Everything known about one backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// Folder name of the backup.
    pub name: String,
    /// When the backup started (UTC).
    pub started_at: DateTime<Utc>,
    /// When it was verified and ready to publish (UTC).
    pub finished_at: DateTime<Utc>,
    /// The coordinator window it belongs to; `None` for `once`.
    pub window_id: Option<String>,
    /// `once` or `run`.
    pub mode: String,
    /// The sidecar that made it.
    pub sidecar_id: String,
    /// Engines that ran.
    pub engines: Vec<String>,
    /// Every artifact, with size and SHA-256.
    pub artifacts: Vec<Artifact>,
    /// Paths from the paths file that did not exist.
    #[serde(default)]
    pub missing_paths: Vec<String>,
    /// True when every artifact passed its content check before publishing.
    pub verified: bool,
    /// Artifact path → name of the content check it passed before
    /// publishing (`integrity_check` for SQLite). A restore skips its own
    /// full check only for an artifact recorded here with the full check;
    /// manifests written before this field existed have it empty, so their
    /// restores run the full check.
    #[serde(default)]
    pub content_checks: BTreeMap<String, String>,
    /// Versions of the tools involved (sidecar, sqlite, dump program).
    #[serde(default)]
    pub tool_versions: BTreeMap<String, String>,
    /// Phase durations in seconds.
    #[serde(default)]
    pub durations_secs: BTreeMap<String, f64>,
    /// How the artifacts are encrypted (public keys only); absent = plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<crate::crypt::Encryption>,
    /// The tracker instances (coordinators) the snapshot covered and those
    /// that were missing, with the policy that allowed it; absent for
    /// `once` and for backups made before this field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participation: Option<maintenance_proto::Participation>,
    /// How the copy was made consistent; absent in manifests written
    /// before this field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<Consistency>,
}

/// How a backup's copy was made consistent, so a reader knows what it
/// holds: only `coordinated` includes what the tracker had in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// Inside a coordinator's window: the tracker flushed and quiesced.
    Coordinated,
    /// While the tracker served, without its help: a self-pinned SQLite
    /// file, a MySQL/PostgreSQL snapshot transaction. What the tracker
    /// held in memory and had not written is not in it.
    Online,
    /// `once` without `--online`: consistent only if the caller stopped
    /// the tracker (the host fallback does).
    Uncoordinated,
}

impl Consistency {
    /// The manifest's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::Coordinated => "coordinated",
            Consistency::Online => "online",
            Consistency::Uncoordinated => "uncoordinated",
        }
    }
}

impl Manifest {
    /// Reads `dir/manifest.json` ([`read_file`]), and checks that every
    /// artifact path is a plain file name inside `dir` (see
    /// [`check_artifact_path`]), so no command reads or restores a file
    /// outside the backup folder.
    pub fn load(dir: &Path) -> anyhow::Result<Manifest> {
        let path = dir.join(FILE_NAME);
        let text = read_file(dir)?;
        let manifest: Manifest =
            serde_json::from_slice(&text).with_context(|| format!("parse {}", path.display()))?;
        manifest.check_paths(&path.display().to_string())?;
        Ok(manifest)
    }

    /// Parses a manifest (as read from a remote, `what` naming it in
    /// errors), with the same artifact-path check as [`Manifest::load`], so
    /// a fetch never writes a file outside the folder it downloads into.
    pub fn from_json(text: &[u8], what: &str) -> anyhow::Result<Manifest> {
        let manifest: Manifest =
            serde_json::from_slice(text).with_context(|| format!("parse {what}"))?;
        manifest.check_paths(what)?;
        Ok(manifest)
    }

    /// Every artifact path must pass [`check_artifact_path`]; `what` names
    /// the manifest in the error.
    fn check_paths(&self, what: &str) -> anyhow::Result<()> {
        for a in &self.artifacts {
            check_artifact_path(&a.path).with_context(|| what.to_owned())?;
        }
        Ok(())
    }

    /// Writes `dir/manifest.json` and fsyncs it.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let path = dir.join(FILE_NAME);
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        crate::base::fs::sync_file(&path)?;
        Ok(())
    }

    /// True when `artifact` (a path of [`Manifest::artifacts`]) passed the
    /// content check named `check` before it was published.
    pub fn passed(&self, artifact: &str, check: &str) -> bool {
        self.verified && self.content_checks.get(artifact).map(String::as_str) == Some(check)
    }

    /// Total size of the artifacts.
    pub fn total_bytes(&self) -> u64 {
        self.artifacts.iter().map(|a| a.size_bytes).sum()
    }
}

/// An artifact path must be a plain file name: not empty, not `.` or `..`,
/// no `/` (so neither absolute nor in another folder), no NUL.
pub fn check_artifact_path(name: &str) -> anyhow::Result<()> {
    let plain = !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0']);
    anyhow::ensure!(
        plain,
        "artifact path {name:?} is not a plain file name inside the backup folder \
         (it must be a name like \"sqlite-tracker.db.zst\": not empty, not \".\" or \"..\", \
         no \"/\"); the manifest is damaged or was not written by maintenance-sidecar, \
         so this backup cannot be trusted"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_file_names_are_artifact_paths() {
        for ok in [
            "sqlite-tracker.db.zst",
            "files.tar.zst",
            ".hidden",
            "a..b",
            "x y",
        ] {
            check_artifact_path(ok).unwrap();
        }
        for bad in [
            "",
            ".",
            "..",
            "../x.zst",
            "../../x.zst",
            "/etc/passwd",
            "sub/x.zst",
            "x/",
            "./x",
            "x\0y",
        ] {
            let e = check_artifact_path(bad).unwrap_err().to_string();
            assert!(e.contains("not a plain file name"), "{bad:?}: {e}");
        }
    }
}
