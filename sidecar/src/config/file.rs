//! The TOML configuration file: raw shape and its resolution into [`Config`].
//!
//! Unknown keys are rejected (a typo such as `keep_dayz` would otherwise
//! silently fall back to a default and delete backups the operator meant to
//! keep).

use std::path::PathBuf;

use serde::Deserialize;

use super::parse;
use super::{
    Compression, Config, ConfigError, CoordinatorConfig, DbServerConfig, FilesConfig, Mode,
    Require, Resolve, Secret, SqliteConfig, WebhookConfig,
};

/// The file exactly as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    backup_dir: Option<PathBuf>,
    compression: Option<String>,
    compression_level: Option<i32>,
    keep_days: Option<u32>,
    keep_last: Option<u32>,
    mode: Option<String>,
    interval_secs: Option<u64>,
    sidecar_id: Option<String>,
    progress_secs: Option<u64>,
    #[serde(default)]
    coordinator: RawCoordinator,
    #[serde(default)]
    sqlite: RawSqlite,
    #[serde(default)]
    mysql: RawServer,
    #[serde(default)]
    postgres: RawServer,
    #[serde(default)]
    files: RawFiles,
    #[serde(default)]
    webhook: RawWebhook,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    encryption: super::offsite::RawEncryption,
    #[serde(default)]
    remote: super::offsite::RawRemote,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    bind: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCoordinator {
    url: Option<String>,
    urls: Option<Vec<String>>,
    token: Option<String>,
    token_file: Option<String>,
    ready_file: Option<PathBuf>,
    long_poll_secs: Option<u64>,
    max_backoff_secs: Option<u64>,
    require: Option<String>,
    gather_timeout_secs: Option<u64>,
    resolve: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSqlite {
    enabled: Option<bool>,
    path: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    enabled: Option<bool>,
    host: Option<String>,
    port: Option<u16>,
    database: Option<String>,
    user: Option<String>,
    password: Option<String>,
    password_file: Option<String>,
    dump_command: Option<String>,
    client_command: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFiles {
    paths_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: Option<String>,
    #[serde(default)]
    notify_on_success: bool,
}

/// Parses TOML text; syntax errors and unknown keys name the key and line.
pub fn parse(text: &str) -> Result<RawConfig, ConfigError> {
    toml::from_str(text).map_err(|e| {
        ConfigError::new(
            "config file",
            e.message().to_owned(),
            format!(
                "valid TOML with the documented keys ({})",
                e.to_string().trim()
            ),
        )
    })
}

/// Applies defaults and validates values.
pub fn resolve(raw: RawConfig) -> Result<Config, ConfigError> {
    let compression = match raw.compression {
        Some(v) => parse::compression("compression", &v)?,
        None => Compression::Zstd,
    };
    let mode = match raw.mode {
        Some(v) => parse::mode("mode", &v)?,
        None => Mode::Continuous,
    };
    let mut urls = raw.coordinator.urls.unwrap_or_default();
    if let Some(u) = raw.coordinator.url {
        urls.insert(0, u);
    }
    let urls = urls
        .iter()
        .flat_map(|u| parse::url_list(u))
        .collect::<Vec<_>>();
    let token = match (raw.coordinator.token, raw.coordinator.token_file) {
        (Some(t), _) if !t.trim().is_empty() => Some(Secret::new(t)),
        (_, Some(f)) => Some(parse::secret_file("coordinator.token_file", &f)?),
        _ => None,
    };
    let sqlite_path = raw.sqlite.path;
    let metrics_bind = match raw.metrics.bind {
        Some(b) => parse::listen_addr("metrics.bind", &b)?,
        None => None,
    };
    Ok(Config {
        online: super::OnlineConfig::default(),
        metrics_bind,
        encryption: super::offsite::resolve_encryption(raw.encryption)?,
        remote: super::offsite::resolve_remote(raw.remote)?,
        backup_dir: raw.backup_dir.unwrap_or_else(|| PathBuf::from("/backups")),
        compression,
        compression_level: raw.compression_level,
        keep_days: raw.keep_days.unwrap_or(7),
        keep_last: raw.keep_last.unwrap_or(3),
        mode,
        interval_secs: raw.interval_secs.unwrap_or(0),
        sidecar_id: raw.sidecar_id.unwrap_or_else(default_sidecar_id),
        progress_secs: raw.progress_secs.unwrap_or(5).max(1),
        coordinator: CoordinatorConfig {
            urls,
            token,
            ready_file: raw.coordinator.ready_file,
            long_poll_secs: raw.coordinator.long_poll_secs.unwrap_or(25).clamp(1, 300),
            max_backoff_secs: raw.coordinator.max_backoff_secs.unwrap_or(30).max(1),
            require: match raw.coordinator.require {
                Some(v) => parse::require("coordinator.require", &v)?,
                None => Require::All,
            },
            gather_timeout_secs: raw.coordinator.gather_timeout_secs.unwrap_or(30),
            resolve: match raw.coordinator.resolve {
                Some(v) => parse::resolve("coordinator.resolve", &v)?,
                None => Resolve::First,
            },
        },
        sqlite: SqliteConfig {
            enabled: raw.sqlite.enabled.unwrap_or(sqlite_path.is_some()),
            path: sqlite_path,
        },
        mysql: server(raw.mysql, "mysql", DbServerConfig::mysql_defaults())?,
        postgres: server(
            raw.postgres,
            "postgres",
            DbServerConfig::postgres_defaults(),
        )?,
        files: FilesConfig {
            paths_file: raw.files.paths_file,
        },
        webhook: WebhookConfig {
            url: parse::non_empty(raw.webhook.url),
            notify_on_success: raw.webhook.notify_on_success,
        },
    })
}

/// Resolves a `[mysql]` or `[postgres]` table over `defaults`; enabled
/// when a database is named unless `enabled` says otherwise.
fn server(
    raw: RawServer,
    section: &str,
    defaults: DbServerConfig,
) -> Result<DbServerConfig, ConfigError> {
    let password = match (raw.password, raw.password_file) {
        (Some(p), _) => Some(Secret::new(p)),
        (None, Some(f)) => Some(parse::secret_file(&format!("{section}.password_file"), &f)?),
        _ => None,
    };
    let database = parse::non_empty(raw.database);
    Ok(DbServerConfig {
        enabled: raw.enabled.unwrap_or(database.is_some()),
        host: raw.host.unwrap_or(defaults.host),
        port: raw.port.unwrap_or(defaults.port),
        database,
        user: raw.user.unwrap_or(defaults.user),
        password,
        dump_command: parse::non_empty(raw.dump_command),
        client_command: parse::non_empty(raw.client_command),
    })
}

fn default_sidecar_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let host = if host.is_empty() {
        "sidecar".to_owned()
    } else {
        host
    };
    format!("{host}-{}", std::process::id())
}
