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
    apply_server(&mut cfg.mysql, &get, &MYSQL_ENV)?;
    apply_server(&mut cfg.postgres, &get, &POSTGRES_ENV)?;
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
    if let Some(v) = get("MAINTENANCE_REQUIRE") {
        cfg.coordinator.require = parse::require("MAINTENANCE_REQUIRE", &v)?;
    }
    if let Some(v) = get("MAINTENANCE_RESOLVE") {
        cfg.coordinator.resolve = parse::resolve("MAINTENANCE_RESOLVE", &v)?;
    }
    if let Some(v) = get("MAINTENANCE_GATHER_TIMEOUT") {
        cfg.coordinator.gather_timeout_secs =
            parse::number("MAINTENANCE_GATHER_TIMEOUT", &v, "whole seconds, 0 or more")?;
    }
    if let Some(v) = get("MAINTENANCE_READY_FILE") {
        cfg.coordinator.ready_file = Some(PathBuf::from(v));
    }
    super::offsite::apply_env(&mut cfg.encryption, &mut cfg.remote, &get)?;
    super::online::apply_env(&mut cfg.online, &get)?;
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

/// The environment variable names of one database-server engine.
struct ServerEnv {
    host: &'static str,
    port: &'static str,
    /// Database name; the first one set wins.
    database: &'static [&'static str],
    user: &'static str,
    password: &'static str,
    password_file: &'static str,
    dump_command: &'static str,
    enabled: &'static str,
}

const MYSQL_ENV: ServerEnv = ServerEnv {
    host: "MYSQL_HOST",
    port: "MYSQL_PORT",
    database: &["MYSQL_DATABASE"],
    user: "MYSQL_USER",
    password: "MYSQL_PASSWORD",
    password_file: "MYSQL_PASSWORD_FILE",
    dump_command: "MYSQL_DUMP_COMMAND",
    enabled: "BACKUP_MYSQL_ENABLED",
};

/// `POSTGRES_DB` is accepted too: it is the name the official postgres
/// image uses, so one `.env` can serve both containers.
const POSTGRES_ENV: ServerEnv = ServerEnv {
    host: "POSTGRES_HOST",
    port: "POSTGRES_PORT",
    database: &["POSTGRES_DATABASE", "POSTGRES_DB"],
    user: "POSTGRES_USER",
    password: "POSTGRES_PASSWORD",
    password_file: "POSTGRES_PASSWORD_FILE",
    dump_command: "POSTGRES_DUMP_COMMAND",
    enabled: "BACKUP_POSTGRES_ENABLED",
};

fn apply_server(
    cfg: &mut super::DbServerConfig,
    get: &dyn Fn(&str) -> Option<String>,
    names: &ServerEnv,
) -> Result<(), ConfigError> {
    if let Some(v) = get(names.host) {
        cfg.host = v;
    }
    if let Some(v) = get(names.port) {
        cfg.port = parse::number(names.port, &v, "a TCP port, 1-65535")?;
    }
    if let Some(v) = names.database.iter().find_map(|k| get(k)) {
        cfg.database = Some(v);
    }
    if let Some(v) = get(names.user) {
        cfg.user = v;
    }
    if let Some(v) = parse::env_secret(get, names.password, names.password_file)? {
        cfg.password = Some(v);
    }
    if let Some(v) = get(names.dump_command) {
        cfg.dump_command = Some(v);
    }
    if let Some(v) = get(names.enabled) {
        cfg.enabled = parse::boolean(names.enabled, &v)?;
    }
    Ok(())
}
