//! The `object_store` store built from the remote's URL (see
//! [`RemoteLocation`]) and the settings.
//!
//! Credentials come only from the configuration ([`RemoteConfig`]), never
//! from the URL, so the URL can be logged as is.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::config::{RemoteConfig, RemoteLocation};

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

/// `e` and its causes as one line, like `{e:#}`, but without a cause whose
/// text the line already holds: an `object_store` error embeds its source's
/// text in its own, so `{e:#}` said a remote's XML answer three times.
pub fn chain_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// `e` as text ([`chain_text`]), with the [`hint`] put first when one
/// applies (once: an error already described keeps its one hint).
pub fn describe_error(e: &anyhow::Error) -> String {
    let text = chain_text(e);
    match hint(&text) {
        Some(h) if !text.contains(h) => format!("{h} ({text})"),
        _ => text,
    }
}

/// True when retrying what failed with `e` cannot help: the remote refused
/// the keys or the request (401, 403, a missing bucket), or a local file
/// did not match its manifest. Timeouts, refused connections and 5xx
/// answers may pass and are retried.
pub fn is_permanent(e: &anyhow::Error) -> bool {
    let refused = e.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<object_store::Error>(),
            Some(
                object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. }
                    | object_store::Error::NotSupported { .. }
                    | object_store::Error::NotImplemented { .. }
            )
        )
    });
    let text = format!("{e:#}");
    refused
        || [
            "NoSuchBucket",
            "AccessDenied",
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "403 Forbidden",
            "401 Unauthorized",
            "not uploading a corrupted artifact",
        ]
        .iter()
        .any(|t| text.contains(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error whose text embeds its source's, as `object_store`'s do.
    fn generic(xml: &str) -> anyhow::Error {
        anyhow::Error::new(object_store::Error::Generic {
            store: "S3",
            source: xml.to_owned().into(),
        })
        .context("upload of b/a.zst failed")
    }

    #[test]
    fn refused_keys_and_requests_are_permanent_and_passing_trouble_is_not() {
        let permanent = [
            anyhow::Error::new(object_store::Error::PermissionDenied {
                path: "b/a.zst".into(),
                source: "403 Forbidden".into(),
            })
            .context("start the multipart upload"),
            anyhow::Error::new(object_store::Error::Unauthenticated {
                path: "b/a.zst".into(),
                source: "401".into(),
            }),
            generic("<Error><Code>NoSuchBucket</Code></Error>"),
            generic("<Error><Code>SignatureDoesNotMatch</Code></Error>"),
            generic("<Error><Code>InvalidAccessKeyId</Code></Error>"),
            generic("Server returned non-2xx status code: 403 Forbidden: AccessDenied"),
            anyhow::anyhow!("a.zst: not uploading a corrupted artifact: sha256 differs"),
        ];
        for e in &permanent {
            assert!(is_permanent(e), "{e:#}");
        }
        let passing = [
            generic("Server returned non-2xx status code: 503 Service Unavailable: SlowDown"),
            generic("error sending request: Connection refused"),
            anyhow::Error::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "operation timed out",
            ))
            .context("upload part 3"),
            anyhow::Error::new(object_store::Error::NotFound {
                path: "b/manifest.json".into(),
                source: "404".into(),
            }),
        ];
        for e in &passing {
            assert!(!is_permanent(e), "{e:#}");
        }
    }

    #[test]
    fn chain_text_says_each_cause_once() {
        let xml = "<Error><Code>NoSuchBucket</Code></Error>";
        let e = generic(xml);
        // `{e:#}` repeats the source the object_store error already holds.
        assert_eq!(format!("{e:#}").matches(xml).count(), 2, "{e:#}");
        let text = chain_text(&e);
        assert_eq!(text.matches(xml).count(), 1, "{text}");
        assert!(text.starts_with("upload of b/a.zst failed: "), "{text}");
        // Causes with text of their own are all kept, in order.
        let e = anyhow::anyhow!("connection reset")
            .context("upload part 2")
            .context("push 20261208T0300Z");
        assert_eq!(
            chain_text(&e),
            "push 20261208T0300Z: upload part 2: connection reset"
        );
        // The hint goes first, once, also when described twice.
        let once = describe_error(&e.context(xml));
        assert!(once.starts_with("the bucket does not exist"), "{once}");
        let again = describe_error(&anyhow::anyhow!(once.clone()));
        assert_eq!(again, once);
    }
}
