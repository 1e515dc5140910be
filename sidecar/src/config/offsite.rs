//! Settings of encryption at rest and of the off-site copy: the `[encryption]`
//! and `[remote]` TOML sections and their environment variables
//! (`BACKUP_AGE_*`, `BACKUP_REMOTE*`, the standard `AWS_*`).
//!
//! Secrets (the S3 keys) are kept as [`Secret`]s and may come from `_FILE`
//! variables (Docker secrets); they never reach logs, argv or manifests.

use std::path::PathBuf;

use serde::Deserialize;

use super::parse;
use super::RemoteLocation;
use super::{ConfigError, Secret};
use crate::crypt::Recipients;

/// Encryption at rest.
#[derive(Debug, Clone, Default)]
pub struct EncryptionConfig {
    /// Encrypt every artifact to these age recipients; `None` = plaintext.
    pub recipients: Option<Recipients>,
    /// Identity file for reading encrypted artifacts (`verify`, `restore`).
    pub identity_file: Option<PathBuf>,
}

/// The off-site copy.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// Where copies go; `None` = no off-site copy.
    pub location: Option<RemoteLocation>,
    /// S3 endpoint URL (`AWS_ENDPOINT_URL`) for S3-compatible services.
    pub endpoint: Option<String>,
    /// S3 region (`AWS_REGION`, default `us-east-1`).
    pub region: String,
    /// S3 access key id.
    pub access_key_id: Option<Secret>,
    /// S3 secret access key.
    pub secret_access_key: Option<Secret>,
    /// Allow a plain `http://` endpoint (a local test server or a NAS):
    /// `BACKUP_REMOTE_ALLOW_HTTP`, or object_store's own `AWS_ALLOW_HTTP`.
    pub allow_http: bool,
    /// Seconds one backup's whole upload may take, retries included; then
    /// it fails (the local backup stands) instead of hanging on a frozen
    /// endpoint.
    pub upload_timeout_secs: u64,
    /// Attempts per object before the upload is reported failed.
    pub attempts: u32,
    /// Multipart part size in MiB (S3 needs at least 5).
    pub part_size_mib: usize,
    /// Parts in flight at once; memory is about part size × this.
    pub concurrency: usize,
    /// Hours before a remote backup without manifest is swept by prune.
    pub incomplete_grace_hours: u32,
}

/// Default of [`RemoteConfig::upload_timeout_secs`]: 6 hours, about 100 GiB
/// at 40 Mbit/s, well inside a daily backup's interval.
pub const DEFAULT_UPLOAD_TIMEOUT_SECS: u64 = 6 * 3600;

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig {
            location: None,
            endpoint: None,
            region: "us-east-1".into(),
            access_key_id: None,
            secret_access_key: None,
            allow_http: false,
            upload_timeout_secs: DEFAULT_UPLOAD_TIMEOUT_SECS,
            attempts: 5,
            part_size_mib: 8,
            concurrency: 4,
            incomplete_grace_hours: 24,
        }
    }
}

/// The `[encryption]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEncryption {
    recipients: Option<Vec<String>>,
    recipients_file: Option<PathBuf>,
    identity_file: Option<PathBuf>,
}

/// The `[remote]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRemote {
    url: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    access_key_id_file: Option<String>,
    secret_access_key_file: Option<String>,
    allow_http: Option<bool>,
    upload_timeout_secs: Option<u64>,
    attempts: Option<u32>,
    part_size_mib: Option<usize>,
    concurrency: Option<usize>,
    incomplete_grace_hours: Option<u32>,
}

fn recipients(key: &str, text: &str) -> Result<Recipients, ConfigError> {
    Recipients::parse(text).map_err(|bad| {
        ConfigError::new(
            key,
            bad,
            "age x25519 public keys (age1...), separated by commas or new lines, as printed by age-keygen",
        )
    })
}

fn recipients_file(key: &str, path: &std::path::Path) -> Result<Recipients, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            key,
            path.display().to_string(),
            format!("a readable age recipients file ({e})"),
        )
    })?;
    recipients(key, &text)
}

/// Resolves `[encryption]`.
pub fn resolve_encryption(raw: RawEncryption) -> Result<EncryptionConfig, ConfigError> {
    let recipients = match (raw.recipients, raw.recipients_file) {
        (Some(list), _) if !list.is_empty() => {
            Some(recipients("encryption.recipients", &list.join(","))?)
        }
        (_, Some(f)) => Some(recipients_file("encryption.recipients_file", &f)?),
        _ => None,
    };
    Ok(EncryptionConfig {
        recipients,
        identity_file: raw.identity_file,
    })
}

fn location(key: &str, url: &str) -> Result<RemoteLocation, ConfigError> {
    RemoteLocation::parse(url).map_err(|why| {
        ConfigError::new(
            key,
            url,
            format!("s3://bucket[/prefix] or file:///absolute/path ({why})"),
        )
    })
}

/// Resolves `[remote]`.
pub fn resolve_remote(raw: RawRemote) -> Result<RemoteConfig, ConfigError> {
    let d = RemoteConfig::default();
    let url = parse::non_empty(raw.url);
    Ok(RemoteConfig {
        location: url.map(|u| location("remote.url", &u)).transpose()?,
        endpoint: parse::non_empty(raw.endpoint),
        region: parse::non_empty(raw.region).unwrap_or(d.region),
        access_key_id: raw
            .access_key_id_file
            .map(|f| parse::secret_file("remote.access_key_id_file", &f))
            .transpose()?,
        secret_access_key: raw
            .secret_access_key_file
            .map(|f| parse::secret_file("remote.secret_access_key_file", &f))
            .transpose()?,
        allow_http: raw.allow_http.unwrap_or(false),
        upload_timeout_secs: raw
            .upload_timeout_secs
            .unwrap_or(d.upload_timeout_secs)
            .max(1),
        attempts: raw.attempts.unwrap_or(d.attempts).max(1),
        part_size_mib: raw.part_size_mib.unwrap_or(d.part_size_mib),
        concurrency: raw.concurrency.unwrap_or(d.concurrency).max(1),
        incomplete_grace_hours: raw
            .incomplete_grace_hours
            .unwrap_or(d.incomplete_grace_hours),
    })
}

/// Overlays the environment.
pub fn apply_env(
    enc: &mut EncryptionConfig,
    remote: &mut RemoteConfig,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    if let Some(v) = get("BACKUP_AGE_RECIPIENTS") {
        enc.recipients = Some(recipients("BACKUP_AGE_RECIPIENTS", &v)?);
    } else if let Some(f) = get("BACKUP_AGE_RECIPIENTS_FILE") {
        enc.recipients = Some(recipients_file(
            "BACKUP_AGE_RECIPIENTS_FILE",
            std::path::Path::new(&f),
        )?);
    }
    if let Some(v) = get("BACKUP_AGE_IDENTITY_FILE") {
        enc.identity_file = Some(PathBuf::from(v));
    }
    if let Some(v) = get("BACKUP_REMOTE") {
        remote.location = Some(location("BACKUP_REMOTE", &v)?);
    }
    if let Some(v) = get("AWS_ENDPOINT_URL") {
        remote.endpoint = Some(v);
    }
    if let Some(v) = get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION")) {
        remote.region = v;
    }
    // The keys (and their secret files) are read only for an S3 remote, so
    // a compose file can always point AWS_SECRET_ACCESS_KEY_FILE at its
    // (possibly empty) Docker secret.
    if matches!(remote.location, Some(RemoteLocation::S3 { .. })) {
        if let Some(v) = parse::env_secret(get, "AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID_FILE")? {
            remote.access_key_id = Some(v);
        }
        if let Some(v) =
            parse::env_secret(get, "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY_FILE")?
        {
            remote.secret_access_key = Some(v);
        }
    }
    // object_store's own name counts too, for an operator who set it for
    // other tools; the sidecar's name wins when both are set.
    if let Some(v) = get("BACKUP_REMOTE_ALLOW_HTTP") {
        remote.allow_http = parse::boolean("BACKUP_REMOTE_ALLOW_HTTP", &v)?;
    } else if let Some(v) = get("AWS_ALLOW_HTTP") {
        remote.allow_http = parse::boolean("AWS_ALLOW_HTTP", &v)?;
    }
    if let Some(v) = get("BACKUP_REMOTE_UPLOAD_TIMEOUT_SECS") {
        remote.upload_timeout_secs = parse::number::<u64>(
            "BACKUP_REMOTE_UPLOAD_TIMEOUT_SECS",
            &v,
            "whole seconds, 1 or more",
        )?
        .max(1);
    }
    if let Some(v) = get("BACKUP_REMOTE_ATTEMPTS") {
        remote.attempts =
            parse::number::<u32>("BACKUP_REMOTE_ATTEMPTS", &v, "a count, 1 or more")?.max(1);
    }
    if let Some(v) = get("BACKUP_REMOTE_PART_SIZE_MIB") {
        remote.part_size_mib = parse::number(
            "BACKUP_REMOTE_PART_SIZE_MIB",
            &v,
            "MiB per multipart part, 5 or more",
        )?;
    }
    if let Some(v) = get("BACKUP_REMOTE_CONCURRENCY") {
        remote.concurrency = parse::number::<usize>(
            "BACKUP_REMOTE_CONCURRENCY",
            &v,
            "parts in flight, 1 or more",
        )?
        .max(1);
    }
    if let Some(v) = get("BACKUP_REMOTE_INCOMPLETE_GRACE_HOURS") {
        remote.incomplete_grace_hours = parse::number(
            "BACKUP_REMOTE_INCOMPLETE_GRACE_HOURS",
            &v,
            "whole hours, 0 or more",
        )?;
    }
    Ok(())
}

/// Checks the combination of remote settings.
pub fn validate(remote: &RemoteConfig) -> Result<(), ConfigError> {
    if remote.part_size_mib < 5 || remote.part_size_mib > 5 * 1024 {
        return Err(ConfigError::new(
            "remote.part_size_mib (BACKUP_REMOTE_PART_SIZE_MIB)",
            remote.part_size_mib.to_string(),
            "5 to 5120 MiB (S3 multipart limits)",
        ));
    }
    if !matches!(remote.location, Some(RemoteLocation::S3 { .. })) {
        return Ok(());
    }
    if let Some(endpoint) = &remote.endpoint {
        let http = endpoint.starts_with("http://");
        if !(http || endpoint.starts_with("https://")) {
            return Err(ConfigError::new(
                "AWS_ENDPOINT_URL",
                endpoint.clone(),
                "an https:// URL (or http:// with BACKUP_REMOTE_ALLOW_HTTP=true or AWS_ALLOW_HTTP=true)",
            ));
        }
        if http && !remote.allow_http {
            return Err(ConfigError::new(
                "AWS_ENDPOINT_URL",
                endpoint.clone(),
                "an https:// URL; plain http:// only with BACKUP_REMOTE_ALLOW_HTTP=true or AWS_ALLOW_HTTP=true (remote.allow_http), for a local endpoint",
            ));
        }
    }
    if remote.access_key_id.is_none() || remote.secret_access_key.is_none() {
        return Err(ConfigError::new(
            "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
            "",
            "both keys for an s3:// remote (or AWS_ACCESS_KEY_ID_FILE / AWS_SECRET_ACCESS_KEY_FILE, Docker secrets)",
        ));
    }
    Ok(())
}
