//! Off-site copies: published backups pushed to an object store (S3 or an
//! S3-compatible service, or a `file://` folder such as a mounted NAS) and
//! read back from it.
//!
//! Everything goes through `object_store`'s [`ObjectStore`] trait, so a new
//! kind of remote (WebDAV, SFTP, ...) is one more constructor in
//! [`store`] and touches nothing else. The layout on the remote mirrors the
//! local one: `<prefix>/<backup name>/<artifact>` and
//! `<prefix>/<backup name>/manifest.json`, the manifest always written last,
//! so a backup without a manifest is an incomplete upload.
//!
//! - [`store`]: the remote's URL and the store behind it;
//! - [`upload`]: pushing one published backup (multipart, retries);
//! - [`parts`]: the staging files unfinished uploads left on a `file://`
//!   remote;
//! - [`ops`]: list, verify, fetch/restore and prune on the remote.

pub mod ops;
pub mod parts;
pub mod store;
pub mod upload;

use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;

pub use crate::config::RemoteLocation;
pub use ops::{RemoteEntry, RemoteState};

use crate::config::RemoteConfig;

/// An opened remote: the store, the key prefix and the transfer settings.
#[derive(Debug, Clone)]
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    location: RemoteLocation,
    settings: RemoteConfig,
}

impl Remote {
    /// Opens the configured remote; `None` when `BACKUP_REMOTE` is unset.
    pub fn from_config(cfg: &RemoteConfig) -> anyhow::Result<Option<Remote>> {
        let Some(location) = cfg.location.clone() else {
            return Ok(None);
        };
        let (store, prefix) = store::open(&location, cfg)?;
        Ok(Some(Remote {
            store,
            prefix,
            location,
            settings: cfg.clone(),
        }))
    }

    /// Like [`Remote::from_config`], but an unset remote is an error naming
    /// the variable (for the `--remote` commands).
    pub fn required(cfg: &RemoteConfig) -> anyhow::Result<Remote> {
        Remote::from_config(cfg)?.ok_or_else(|| {
            anyhow::anyhow!(
                "no remote configured: set BACKUP_REMOTE=s3://bucket/prefix or file:///path (remote.url)"
            )
        })
    }

    /// The remote's URL, without credentials (for logs and reports).
    pub fn describe(&self) -> String {
        self.location.to_string()
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The folder of a `file://` remote.
    pub fn file_root(&self) -> Option<&std::path::Path> {
        match &self.location {
            RemoteLocation::File { root } => Some(root),
            RemoteLocation::S3 { .. } => None,
        }
    }

    /// Transfer settings.
    pub fn settings(&self) -> &RemoteConfig {
        &self.settings
    }

    /// The key of `file` inside backup `backup`.
    pub fn key(&self, backup: &str, file: &str) -> ObjectPath {
        ObjectPath::from(format!("{}{backup}/{file}", self.prefix))
    }

    /// The key prefix of backup `backup` (its "folder").
    pub fn backup_prefix(&self, backup: &str) -> ObjectPath {
        ObjectPath::from(format!("{}{backup}", self.prefix))
    }

    /// The prefix all backups live under (`None` = the bucket's root).
    pub fn root(&self) -> Option<ObjectPath> {
        let p = self.prefix.trim_end_matches('/');
        (!p.is_empty()).then(|| ObjectPath::from(p))
    }
}
