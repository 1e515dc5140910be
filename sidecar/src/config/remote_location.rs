//! The remote's URL (`s3://bucket/prefix`, `file:///path`), parsed once
//! with the rest of the configuration.

use std::fmt;
use std::path::PathBuf;

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
