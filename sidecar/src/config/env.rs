//! Environment overrides, including the original backup container's
//! variables so existing compose files keep working.

use std::path::PathBuf;

use super::parse;
use super::{Config, ConfigError, Secret};

/// Overlays the environment onto `cfg`.
pub fn apply(cfg: &mut Config, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    let get = |k: &str| parse::non_empty(env(k));
    if let Some(v) = get("BACKUP_MODE") {
        cfg.mode = parse::mode("BACKUP_MODE", &v)?;
    }
    if let Some(v) = get("BACKUP_INTERVAL") {
        cfg.interval_secs = parse::number("BACKUP_INTERVAL", &v, "whole seconds, 0 or more")?;
    }
    if let Some(v) = get("BACKUP_RETENTION_DAYS") {
        cfg.keep_days = parse::number("BACKUP_RETENTION_DAYS", &v, "whole days, 0 or more")?;
    }
    if let Some(v) = get("BACKUP_KEEP_LAST") {
        cfg.keep_last = parse::number("BACKUP_KEEP_LAST", &v, "a count, 0 or more")?;
    }
    if let Some(v) = get("BACKUP_DIR") {
        cfg.backup_dir = PathBuf::from(v);
    }
    if let Some(v) = get("BACKUP_COMPRESSION") {
        cfg.compression = parse::compression("BACKUP_COMPRESSION", &v)?;
    }
    if let Some(v) = get("BACKUP_SIDECAR_ID") {
        cfg.sidecar_id = v;
    }
    apply_sqlite(cfg, &get)?;
    apply_mysql(cfg, &get)?;
    if let Some(v) = get("BACKUP_PATHS_FILE") {
        cfg.files.paths_file = Some(PathBuf::from(v));
    }
    if let Some(v) = get("BACKUP_WEBHOOK_URL") {
        cfg.webhook.url = Some(v);
    }
    if let Some(v) = get("BACKUP_WEBHOOK_ON_SUCCESS") {
        cfg.webhook.notify_on_success = parse::boolean("BACKUP_WEBHOOK_ON_SUCCESS", &v)?;
    }
    if let Some(v) = get("MAINTENANCE_URL") {
        cfg.coordinator.urls = parse::url_list(&v);
    }
    if let Some(v) = get("MAINTENANCE_TOKEN") {
        cfg.coordinator.token = Some(Secret::new(v));
    } else if let Some(f) = get("MAINTENANCE_TOKEN_FILE") {
        cfg.coordinator.token = Some(parse::secret_file("MAINTENANCE_TOKEN_FILE", &f)?);
    }
    if let Some(v) = env("SIDECAR_METRICS_BIND") {
        cfg.metrics_bind = parse::listen_addr("SIDECAR_METRICS_BIND", &v)?;
    }
    if let Some(v) = get("MAINTENANCE_READY_FILE") {
        cfg.coordinator.ready_file = Some(PathBuf::from(v));
    }
    Ok(())
}

fn apply_sqlite(cfg: &mut Config, get: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    if let Some(v) = get("SQLITE_DATABASE_PATH") {
        cfg.sqlite.path = Some(PathBuf::from(v));
        cfg.sqlite.enabled = true;
    }
    if let Some(v) = get("BACKUP_SQLITE_ENABLED") {
        cfg.sqlite.enabled = parse::boolean("BACKUP_SQLITE_ENABLED", &v)?;
    }
    Ok(())
}

fn apply_mysql(cfg: &mut Config, get: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    if let Some(v) = get("MYSQL_HOST") {
        cfg.mysql.host = v;
    }
    if let Some(v) = get("MYSQL_PORT") {
        cfg.mysql.port = parse::number("MYSQL_PORT", &v, "a TCP port, 1-65535")?;
    }
    if let Some(v) = get("MYSQL_DATABASE") {
        cfg.mysql.database = Some(v);
    }
    if let Some(v) = get("MYSQL_USER") {
        cfg.mysql.user = v;
    }
    if let Some(v) = env_secret(get, "MYSQL_PASSWORD", "MYSQL_PASSWORD_FILE")? {
        cfg.mysql.password = Some(v);
    }
    if let Some(v) = get("MYSQL_DUMP_COMMAND") {
        cfg.mysql.dump_command = Some(v);
    }
    if let Some(v) = get("BACKUP_MYSQL_ENABLED") {
        cfg.mysql.enabled = parse::boolean("BACKUP_MYSQL_ENABLED", &v)?;
    }
    Ok(())
}

fn env_secret(
    get: &dyn Fn(&str) -> Option<String>,
    key: &str,
    file_key: &str,
) -> Result<Option<Secret>, ConfigError> {
    if let Some(v) = get(key) {
        return Ok(Some(Secret::new(v)));
    }
    match get(file_key) {
        Some(f) => Ok(Some(parse::secret_file(file_key, &f)?)),
        None => Ok(None),
    }
}
