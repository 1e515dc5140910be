//! The remote's URL (`s3://bucket/prefix`, `file:///path`) and the
//! `object_store` store built from it and the settings.
//!
//! Credentials come only from the configuration ([`RemoteConfig`]), never
//! from the URL, so the URL can be logged as is.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::config::RemoteConfig;

/// Where off-site copies go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteLocation {
    /// An S3 bucket (AWS or any S3-compatible service), with a key prefix.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix without leading or trailing `/` (may be empty).
        prefix: String,
    },
    /// A folder (a mounted NAS, a second disk).
    File {
        /// Absolute path of the folder.
        root: PathBuf,
    },
}

impl RemoteLocation {
    /// Parses `s3://bucket[/prefix]` or `file:///absolute/path`; the error
    /// says what is wrong.
    pub fn parse(url: &str) -> Result<RemoteLocation, String> {
        let url = url.trim();
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err("the bucket name is missing".into());
            }
            if bucket.contains(['@', ':']) {
                return Err("credentials or ports do not belong in the URL; use AWS_ACCESS_KEY_ID and AWS_ENDPOINT_URL".into());
            }
            return Ok(RemoteLocation::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
            });
        }
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(
                    "a file:// remote needs an absolute path (file:///mnt/nas/backups)".into(),
                );
            }
            return Ok(RemoteLocation::File {
                root: PathBuf::from(path),
            });
        }
        Err("unknown scheme".into())
    }
}

impl fmt::Display for RemoteLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteLocation::S3 { bucket, prefix } if prefix.is_empty() => {
                write!(f, "s3://{bucket}")
            }
            RemoteLocation::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            RemoteLocation::File { root } => write!(f, "file://{}", root.display()),
        }
    }
}

/// Builds the store and the key prefix (empty or ending in `/`).
pub fn open(
    location: &RemoteLocation,
    cfg: &RemoteConfig,
) -> anyhow::Result<(Arc<dyn ObjectStore>, String)> {
    match location {
        RemoteLocation::S3 { bucket, prefix } => {
            let mut b = AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_region(&cfg.region)
                .with_allow_http(cfg.allow_http)
                .with_retry(RetryConfig {
                    backoff: BackoffConfig {
                        init_backoff: Duration::from_millis(200),
                        max_backoff: Duration::from_secs(5),
                        base: 2.0,
                    },
                    max_retries: 3,
                    retry_timeout: Duration::from_secs(60),
                })
                .with_client_options(
                    ClientOptions::new()
                        .with_connect_timeout(Duration::from_secs(10))
                        .with_timeout(Duration::from_secs(120))
                        .with_allow_http(cfg.allow_http),
                );
            if let Some(e) = &cfg.endpoint {
                b = b.with_endpoint(e);
            }
            if let (Some(id), Some(secret)) = (&cfg.access_key_id, &cfg.secret_access_key) {
                b = b
                    .with_access_key_id(id.expose())
                    .with_secret_access_key(secret.expose());
            }
            let store = b
                .build()
                .with_context(|| format!("cannot set up the S3 remote {location}"))?;
            let prefix = if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            };
            Ok((Arc::new(store), prefix))
        }
        RemoteLocation::File { root } => {
            std::fs::create_dir_all(root)
                .with_context(|| format!("create the remote folder {}", root.display()))?;
            let store = LocalFileSystem::new_with_prefix(root)
                .with_context(|| format!("open the remote folder {}", root.display()))?
                .with_automatic_cleanup(true);
            Ok((Arc::new(store), String::new()))
        }
    }
}

/// What to do about the common remote errors, found in an error's text:
/// refused keys, a missing bucket, an unreachable endpoint.
pub fn hint(error_text: &str) -> Option<&'static str> {
    let t = error_text;
    if t.contains("InvalidAccessKeyId")
        || t.contains("SignatureDoesNotMatch")
        || t.contains("AccessDenied")
        || t.contains("403 Forbidden")
    {
        Some("the remote refused the credentials: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or their _FILE secrets) and the key's permissions on the bucket")
    } else if t.contains("NoSuchBucket") {
        Some("the bucket does not exist: create it, or fix the bucket name in BACKUP_REMOTE (and AWS_ENDPOINT_URL / AWS_REGION)")
    } else if t.contains("Connection refused")
        || t.contains("error sending request")
        || t.contains("dns error")
        || t.contains("timed out")
    {
        Some("the remote endpoint cannot be reached: check AWS_ENDPOINT_URL and the network")
    } else {
        None
    }
}

/// `e` as text, with the [`hint`] appended when one applies.
pub fn describe_error(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    match hint(&text) {
        Some(h) => format!("{h} ({text})"),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            RemoteLocation::parse("s3://b/x/y/").unwrap(),
            RemoteLocation::S3 {
                bucket: "b".into(),
                prefix: "x/y".into()
            }
        );
        assert_eq!(
            RemoteLocation::parse("s3://b").unwrap().to_string(),
            "s3://b"
        );
        assert_eq!(
            RemoteLocation::parse("file:///mnt/nas")
                .unwrap()
                .to_string(),
            "file:///mnt/nas"
        );
        assert!(RemoteLocation::parse("s3://").is_err());
        assert!(RemoteLocation::parse("s3://key:secret@b").is_err());
        assert!(RemoteLocation::parse("file://rel").is_err());
        assert!(RemoteLocation::parse("ftp://x").is_err());
    }
}
