//! Pushing one published backup to the remote.
//!
//! Each artifact goes up as a multipart upload read from disk in parts of
//! `part_size_mib`, at most `concurrency` parts in flight, so memory stays
//! near part size × (concurrency + 1) whatever the artifact's size. The
//! bytes sent are hashed on the way and must match the manifest. A failed
//! object is aborted and retried whole with exponential backoff (the store
//! also retries single requests), unless retrying cannot help (refused
//! keys, a missing bucket, a local file that does not match: see
//! [`super::store::is_permanent`]); then it fails at once, the error said
//! once. The manifest goes last, only after every artifact is on the
//! remote with the right size, so a half-uploaded backup is never listed as
//! complete. The whole upload has a deadline (`upload_timeout_secs`): a
//! frozen endpoint makes it fail with a clear error instead of hanging for
//! as long as every timeout and retry allows.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::Remote;
use crate::manifest::{self, Manifest};

/// What an upload did.
#[derive(Debug, Clone)]
pub struct Uploaded {
    /// The backup's name on the remote.
    pub backup: String,
    /// Bytes sent (artifacts and manifest).
    pub bytes: u64,
    /// Wall time, retries included.
    pub secs: f64,
}

/// Uploads the published backup in `dir` (its manifest is `manifest`),
/// within the configured deadline.
pub async fn upload_backup(
    remote: &Remote,
    dir: &Path,
    manifest: &Manifest,
) -> anyhow::Result<Uploaded> {
    let limit = Duration::from_secs(remote.settings().upload_timeout_secs);
    match tokio::time::timeout(limit, upload_all(remote, dir, manifest)).await {
        Ok(result) => result,
        Err(_) => bail!(
            "the upload of {} to {} did not finish within {} s \
             (remote.upload_timeout_secs, BACKUP_REMOTE_UPLOAD_TIMEOUT_SECS); \
             the remote endpoint stopped answering or is too slow. \
             The local backup stands; `push {}` uploads it again",
            manifest.name,
            remote.describe(),
            limit.as_secs(),
            manifest.name
        ),
    }
}

async fn upload_all(remote: &Remote, dir: &Path, manifest: &Manifest) -> anyhow::Result<Uploaded> {
    let started = Instant::now();
    let name = &manifest.name;
    let mut bytes = 0;
    tracing::info!(
        "upload of {name} to {} started ({} artifacts, {})",
        remote.describe(),
        manifest.artifacts.len(),
        crate::base::progress::mib(manifest.total_bytes())
    );
    for a in &manifest.artifacts {
        let key = remote.key(name, &a.path);
        let path = dir.join(&a.path);
        retrying(remote, &format!("{name}/{}", a.path), || {
            upload_file(remote, &path, &key, a.size_bytes, &a.sha256)
        })
        .await?;
        bytes += a.size_bytes;
    }
    let text = manifest::read_file(dir)?;
    let manifest_len = text.len() as u64;
    let key = remote.key(name, manifest::FILE_NAME);
    let payload = PutPayload::from(text);
    retrying(
        remote,
        &format!("{name}/{}", manifest::FILE_NAME),
        || async {
            remote
                .store()
                .put(&key, payload.clone())
                .await
                .map(|_| ())
                .map_err(anyhow::Error::from)
        },
    )
    .await?;
    bytes += manifest_len;
    Ok(Uploaded {
        backup: name.clone(),
        bytes,
        secs: started.elapsed().as_secs_f64(),
    })
}

/// Runs `op` up to `attempts` times, waiting 1 s, 2 s, 4 s ... (max 30 s)
/// between tries; an error that retrying cannot fix ends it at once.
async fn retrying<F, Fut>(remote: &Remote, what: &str, mut op: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let attempts = remote.settings().attempts.max(1);
    let mut delay = Duration::from_secs(1);
    for attempt in 1..=attempts {
        match op().await {
            Ok(()) => return Ok(()),
            Err(e) if super::store::is_permanent(&e) => {
                return Err(e.context(format!(
                    "upload of {what} to {} failed (not retried: retrying cannot help)",
                    remote.describe()
                )))
            }
            Err(e) if attempt < attempts => {
                tracing::warn!(
                    "upload of {what} failed (attempt {attempt} of {attempts}): {}; retrying in {} s",
                    super::store::chain_text(&e),
                    delay.as_secs()
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
            Err(e) => {
                return Err(e.context(format!(
                    "upload of {what} to {} failed after {attempts} attempts",
                    remote.describe()
                )))
            }
        }
    }
    unreachable!("at least one attempt")
}

async fn upload_file(
    remote: &Remote,
    path: &Path,
    key: &object_store::path::Path,
    size: u64,
    sha256: &str,
) -> anyhow::Result<()> {
    let part = remote.settings().part_size_mib << 20;
    let concurrency = remote.settings().concurrency;
    let mut file = tokio::fs::File::from_std(
        crate::base::regular_file::open(path)
            .with_context(|| format!("open {}", path.display()))?,
    );
    let upload = remote
        .store()
        .put_multipart(key)
        .await
        .with_context(|| format!("start the multipart upload of {key}"))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, part);
    let result = async {
        let mut hasher = Sha256::new();
        let mut sent = 0u64;
        loop {
            writer.wait_for_capacity(concurrency).await?;
            let mut buf = Vec::with_capacity(part);
            let n = (&mut file)
                .take(part as u64)
                .read_to_end(&mut buf)
                .await
                .with_context(|| format!("read {}", path.display()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf);
            sent += n as u64;
            writer.put(bytes::Bytes::from(buf));
        }
        let sha = hex::encode(hasher.finalize());
        if sent != size || sha != sha256 {
            bail!(
                "{}: the file on disk ({sent} bytes, sha256 {sha}) differs from its manifest ({size} bytes, sha256 {sha256}); not uploading a corrupted artifact",
                path.display()
            );
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            writer
                .finish()
                .await
                .with_context(|| format!("complete the multipart upload of {key}"))?;
        }
        Err(e) => {
            if let Err(abort) = writer.abort().await {
                tracing::warn!("could not abort the multipart upload of {key}: {abort}");
            }
            return Err(e);
        }
    }
    let meta = remote
        .store()
        .head(key)
        .await
        .with_context(|| format!("check {key} after upload"))?;
    if meta.size != size {
        bail!(
            "{key}: the remote holds {} bytes after upload, expected {size}",
            meta.size
        );
    }
    Ok(())
}
