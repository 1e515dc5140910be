//! Operating on the remote: list its backups (complete or not), verify one
//! by a streaming download with hash checks, fetch one into a local folder
//! (what `restore --remote` and a restore drill use), and apply retention.
//!
//! A backup is complete only when its manifest is on the remote (it is
//! uploaded last). One without is listed as incomplete and swept by prune
//! once its newest object, or unfinished upload ([`super::parts`]), is
//! older than the grace period. One whose age cannot be told is kept.
//! Unfinished uploads are removed with their backup, and on their own once
//! older than the grace period (a killed upload completed later by `push`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::parts::{self, Part};
use super::Remote;
use crate::manifest::{self, Manifest};
use crate::retention;

/// What the remote holds under one backup name.
#[derive(Debug)]
pub enum RemoteState {
    /// The manifest is there (and parsed).
    Complete(Box<Manifest>),
    /// The manifest is there but unreadable.
    Invalid(String),
    /// No manifest: an upload that did not finish.
    Incomplete {
        /// Objects under the backup's prefix.
        objects: usize,
        /// Their total size.
        bytes: u64,
        /// The newest object's time.
        last_modified: Option<DateTime<Utc>>,
    },
}

/// One backup on the remote.
#[derive(Debug)]
pub struct RemoteEntry {
    /// Backup name (the "folder" under the prefix).
    pub name: String,
    /// Complete, invalid or incomplete.
    pub state: RemoteState,
}

impl RemoteEntry {
    /// The manifest of a complete backup.
    pub fn manifest(&self) -> Option<&Manifest> {
        match &self.state {
            RemoteState::Complete(m) => Some(m),
            _ => None,
        }
    }
}

/// Lists the remote's backups, complete ones newest first, then the rest.
pub async fn list(remote: &Remote) -> anyhow::Result<Vec<RemoteEntry>> {
    Ok(list_with_parts(remote).await?.0)
}

/// [`list`], with what unfinished uploads left counted in the incomplete
/// backups (a backup with nothing but such leftovers is listed too), and
/// those leftovers.
pub async fn list_with_parts(remote: &Remote) -> anyhow::Result<(Vec<RemoteEntry>, Vec<Part>)> {
    let mut entries = list_objects(remote).await?;
    let parts = match parts::list(remote).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(
                "cannot list unfinished uploads on {}: {}; their parts are not counted",
                remote.describe(),
                super::store::chain_text(&e)
            );
            Vec::new()
        }
    };
    for p in &parts {
        match entries.iter_mut().find(|e| e.name == p.backup) {
            Some(RemoteEntry {
                state:
                    RemoteState::Incomplete {
                        objects,
                        bytes,
                        last_modified,
                    },
                ..
            }) => {
                *objects += 1;
                *bytes += p.bytes;
                *last_modified = (*last_modified).max(Some(p.started));
            }
            Some(_) => {}
            None => entries.push(RemoteEntry {
                name: p.backup.clone(),
                state: RemoteState::Incomplete {
                    objects: 1,
                    bytes: p.bytes,
                    last_modified: Some(p.started),
                },
            }),
        }
    }
    Ok((entries, parts))
}

async fn list_objects(remote: &Remote) -> anyhow::Result<Vec<RemoteEntry>> {
    let root = remote.root();
    let listing = remote
        .store()
        .list_with_delimiter(root.as_ref())
        .await
        .with_context(|| format!("list {}", remote.describe()))?;
    let mut out = Vec::new();
    for p in listing.common_prefixes {
        let Some(name) = p.filename().map(str::to_owned) else {
            continue;
        };
        let state = match manifest_state(remote, &name).await? {
            Some(state) => state,
            None => incomplete(remote, &p).await?,
        };
        out.push(RemoteEntry { name, state });
    }
    out.sort_by(|a, b| match (a.manifest(), b.manifest()) {
        (Some(x), Some(y)) => y.started_at.cmp(&x.started_at).then(b.name.cmp(&a.name)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.name.cmp(&b.name),
    });
    Ok(out)
}

/// The state of backup `name` from its manifest: complete, invalid, or
/// `None` when there is no manifest. A manifest must carry the name of the
/// folder it lies in: a fetch creates its local folder from that name.
async fn manifest_state(remote: &Remote, name: &str) -> anyhow::Result<Option<RemoteState>> {
    let got = match remote
        .store()
        .get(&remote.key(name, manifest::FILE_NAME))
        .await
    {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => {
            return Err(anyhow::Error::from(e).context(format!("read the manifest of {name}")))
        }
    };
    let what = format!("{name}/{}", manifest::FILE_NAME);
    if got.meta.size > manifest::MAX_BYTES {
        // Never read into memory: a manifest is a few KiB.
        return Ok(Some(RemoteState::Invalid(format!(
            "{what} is {} bytes, more than the {} bytes a manifest may have; \
             it was not written by maintenance-sidecar, so this backup cannot be trusted",
            got.meta.size,
            manifest::MAX_BYTES
        ))));
    }
    let text = got.bytes().await?;
    Ok(Some(match Manifest::from_json(&text, &what) {
        Ok(m) if m.name != name => RemoteState::Invalid(format!(
            "{what} names the backup {:?}, not the folder it lies in; \
             the manifest is damaged or was not written by maintenance-sidecar, \
             so this backup cannot be trusted",
            m.name
        )),
        Ok(m) => RemoteState::Complete(Box::new(m)),
        Err(e) => RemoteState::Invalid(format!("{e:#}")),
    }))
}

async fn incomplete(remote: &Remote, prefix: &ObjectPath) -> anyhow::Result<RemoteState> {
    let mut objects = 0;
    let mut bytes = 0;
    let mut last_modified = None;
    let mut stream = remote.store().list(Some(prefix));
    while let Some(meta) = stream.next().await {
        let meta = meta?;
        objects += 1;
        bytes += meta.size;
        last_modified = last_modified.max(Some(meta.last_modified));
    }
    Ok(RemoteState::Incomplete {
        objects,
        bytes,
        last_modified,
    })
}

/// Resolves `NAME` or `latest` (the newest complete, verified backup) to a
/// complete remote backup.
pub async fn resolve(remote: &Remote, arg: &str) -> anyhow::Result<Manifest> {
    let found = if arg == crate::staging::LATEST {
        list(remote)
            .await?
            .into_iter()
            .find(|e| e.manifest().is_some_and(|m| m.verified))
            .map(|e| e.state)
    } else {
        // Only this backup's manifest, not the whole remote's.
        match manifest_state(remote, arg).await? {
            Some(state) => Some(state),
            None => match incomplete(remote, &remote.backup_prefix(arg)).await? {
                RemoteState::Incomplete { objects: 0, .. } => None,
                state => Some(state),
            },
        }
    };
    match found {
        Some(RemoteState::Complete(m)) => Ok(*m),
        Some(RemoteState::Invalid(why)) => bail!("remote backup {arg}: {why}"),
        Some(RemoteState::Incomplete { .. }) => bail!(
            "remote backup {arg} is incomplete (no manifest: its upload did not finish); choose another with list --remote"
        ),
        None => bail!(
            "no {} backup on {} (see list --remote)",
            if arg == crate::staging::LATEST {
                "complete, verified".to_owned()
            } else {
                format!("{arg:?}")
            },
            remote.describe()
        ),
    }
}

/// Streams every artifact of `manifest` from the remote, hashing it; when
/// `into` is given, also writes it there. Returns one line per artifact,
/// or the first mismatch as an error.
async fn stream_artifacts(
    remote: &Remote,
    manifest: &Manifest,
    into: Option<&Path>,
) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    for a in &manifest.artifacts {
        let key = remote.key(&manifest.name, &a.path);
        let got = remote
            .store()
            .get(&key)
            .await
            .with_context(|| format!("download {key}"))?;
        let mut out = match into {
            Some(dir) => Some(
                tokio::fs::File::options()
                    .write(true)
                    .create_new(true)
                    .open(dir.join(&a.path))
                    .await
                    .with_context(|| format!("create {}", dir.join(&a.path).display()))?,
            ),
            None => None,
        };
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.with_context(|| format!("download {key}"))?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
            if let Some(f) = out.as_mut() {
                f.write_all(&chunk).await?;
            }
        }
        let sha = hex::encode(hasher.finalize());
        if size != a.size_bytes || sha != a.sha256 {
            bail!(
                "{key}: downloaded {size} bytes with sha256 {sha}, the manifest says {} bytes with sha256 {}; the remote copy is damaged",
                a.size_bytes,
                a.sha256
            );
        }
        if let Some(mut f) = out {
            f.flush().await?;
            f.sync_all().await?;
        }
        lines.push(format!("{}: sha256 ok ({size} bytes downloaded)", a.path));
    }
    Ok(lines)
}

/// `verify --remote`: the streaming hash check of every artifact (no disk
/// used). Errors on the first damaged artifact.
pub async fn verify_hashes(remote: &Remote, manifest: &Manifest) -> anyhow::Result<Vec<String>> {
    stream_artifacts(remote, manifest, None).await
}

/// Downloads a complete remote backup into a new folder `into/<name>`
/// (which must not exist), checking every hash, manifest last; returns the
/// folder, a local backup that `verify` and `restore` accept. A failure
/// removes the partial folder.
pub async fn fetch(remote: &Remote, manifest: &Manifest, into: &Path) -> anyhow::Result<PathBuf> {
    let dir = into.join(&manifest.name);
    tokio::fs::create_dir_all(into).await?;
    tokio::fs::create_dir(&dir)
        .await
        .with_context(|| format!("create {}", dir.display()))?;
    let result = async {
        stream_artifacts(remote, manifest, Some(&dir)).await?;
        manifest.save(&dir)?;
        crate::base::fs::sync_dir(&dir)?;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }
    Ok(dir)
}

/// A remote prune's decisions.
#[derive(Debug, Default)]
pub struct RemotePlan {
    /// Backups kept, with the reason.
    pub keep: Vec<(String, String)>,
    /// Backups (complete, or incomplete past the grace period) to delete.
    pub delete: Vec<(String, String)>,
    /// Unfinished uploads to remove: those of the deleted backups, and
    /// those older than the grace period.
    pub parts: Vec<Part>,
}

/// Applies the local retention rule to the remote's manifests, and sweeps
/// incomplete uploads older than `grace_hours`.
pub fn plan(
    entries: &[RemoteEntry],
    keep_days: u32,
    keep_last: u32,
    grace_hours: u32,
    now: DateTime<Utc>,
) -> RemotePlan {
    let mut plan = RemotePlan::default();
    let complete: Vec<(&str, &Manifest)> = entries
        .iter()
        .filter_map(|e| e.manifest().map(|m| (e.name.as_str(), m)))
        .collect();
    let manifests: Vec<&Manifest> = complete.iter().map(|(_, m)| *m).collect();
    let verdicts = retention::decide(&manifests, keep_days, keep_last, now);
    for ((name, _), verdict) in complete.iter().zip(verdicts) {
        match verdict {
            Some(why) => plan.keep.push((name.to_string(), why.into())),
            None => plan.delete.push((name.to_string(), "retention".into())),
        }
    }
    let grace = chrono::Duration::hours(i64::from(grace_hours));
    for e in entries {
        match &e.state {
            RemoteState::Incomplete { last_modified, .. } => {
                let Some(newest) = last_modified else {
                    plan.keep.push((
                        e.name.clone(),
                        "incomplete, its age cannot be told (nothing listed in it)".into(),
                    ));
                    continue;
                };
                if now - *newest >= grace {
                    plan.delete.push((
                        e.name.clone(),
                        format!("incomplete for over {grace_hours} h"),
                    ));
                } else {
                    plan.keep.push((
                        e.name.clone(),
                        format!("incomplete, within the {grace_hours} h grace period"),
                    ));
                }
            }
            RemoteState::Invalid(why) => plan
                .keep
                .push((e.name.clone(), format!("unreadable manifest: {why}"))),
            RemoteState::Complete(_) => {}
        }
    }
    plan
}

/// Adds to `plan` the unfinished uploads to remove: every one of a backup
/// it deletes, and any other older than `grace_hours` (within the grace an
/// upload may still be running).
pub fn plan_parts(plan: &mut RemotePlan, parts: Vec<Part>, grace_hours: u32, now: DateTime<Utc>) {
    let grace = chrono::Duration::hours(i64::from(grace_hours));
    plan.parts = parts
        .into_iter()
        .filter(|p| plan.delete.iter().any(|(n, _)| *n == p.backup) || now - p.started >= grace)
        .collect();
}

/// Deletes every object of the backups in `plan.delete`, the manifest
/// first (so an interrupted delete leaves an incomplete backup, never a
/// complete one with missing parts). Returns how many backups went.
pub async fn apply(remote: &Remote, plan: &RemotePlan) -> anyhow::Result<usize> {
    let mut removed = 0;
    for (name, why) in &plan.delete {
        let manifest_key = remote.key(name, manifest::FILE_NAME);
        match remote.store().delete(&manifest_key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(anyhow::Error::from(e).context(format!("delete {manifest_key}"))),
        }
        let prefix = remote.backup_prefix(name);
        let mut stream = remote.store().list(Some(&prefix));
        let mut keys = Vec::new();
        while let Some(meta) = stream.next().await {
            keys.push(meta?.location);
        }
        for key in keys {
            match remote.store().delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(anyhow::Error::from(e).context(format!("delete {key}"))),
            }
        }
        tracing::info!(
            "remote retention: removed {name} from {} ({why})",
            remote.describe()
        );
        removed += 1;
    }
    for part in &plan.parts {
        parts::remove(part)?;
        tracing::info!(
            "remote retention: removed the unfinished upload {} from {}",
            part.name,
            remote.describe()
        );
    }
    if let Some(root) = remote.file_root() {
        // A deleted backup's folder, emptied of its objects and parts.
        for (name, _) in &plan.delete {
            let _ = std::fs::remove_dir(root.join(name));
        }
    }
    Ok(removed)
}

/// Puts raw bytes at `<backup>/<file>` (used by tests and tools that need
/// to place an object on the remote through the same store).
pub async fn put_bytes(
    remote: &Remote,
    backup: &str,
    file: &str,
    data: Vec<u8>,
) -> anyhow::Result<()> {
    remote
        .store()
        .put(&remote.key(backup, file), PutPayload::from(data))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incomplete(name: &str, last_modified: Option<DateTime<Utc>>) -> RemoteEntry {
        RemoteEntry {
            name: name.to_owned(),
            state: RemoteState::Incomplete {
                objects: 0,
                bytes: 0,
                last_modified,
            },
        }
    }

    fn names(list: &[(String, String)]) -> Vec<&str> {
        list.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn an_incomplete_upload_whose_age_cannot_be_told_is_kept() {
        let now = Utc::now();
        let hours = |h| now - chrono::Duration::hours(h);
        let entries = [
            incomplete("unknown", None),
            incomplete("old", Some(hours(25))),
            incomplete("recent", Some(hours(1))),
        ];
        let p = plan(&entries, 7, 3, 24, now);
        assert_eq!(names(&p.delete), ["old"], "{p:?}");
        assert_eq!(names(&p.keep), ["unknown", "recent"], "{p:?}");
        assert!(p.keep[0].1.contains("its age cannot be told"), "{p:?}");
        // Even without any grace period: an upload that may be running
        // right now is never taken for an old one.
        let p = plan(&entries, 7, 3, 0, now);
        assert_eq!(names(&p.delete), ["old", "recent"], "{p:?}");
        assert_eq!(names(&p.keep), ["unknown"], "{p:?}");
    }
}
