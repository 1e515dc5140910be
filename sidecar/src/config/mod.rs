//! The sidecar's settings: one resolved [`Config`] built from an optional
//! TOML file overlaid by environment variables.
//!
//! Environment wins over the file so that a compose file written for the
//! original backup container (`BACKUP_MODE`, `MYSQL_HOST`, ...) keeps working
//! unchanged. Validation happens once, here, so the rest of the program can
//! trust every field.

mod env;
mod error;
mod file;
mod offsite;
mod online;
mod parse;
mod remote_location;
mod secret;

use std::path::{Path, PathBuf};

pub use error::ConfigError;
pub use offsite::{EncryptionConfig, RemoteConfig};
pub use online::OnlineConfig;
pub use remote_location::RemoteLocation;
pub use secret::Secret;

/// Compression applied to every artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// zstd (default): fast, good ratio, multi-GB friendly.
    Zstd,
    /// gzip: for tools that only know `.gz`.
    Gzip,
}

impl Compression {
    /// File-name suffix, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Zstd => "zst",
            Compression::Gzip => "gz",
        }
    }

    /// Guesses the compression of an artifact from its file name
    /// (`x.zst`, or `x.zst.age` when encrypted).
    pub fn from_path(path: &Path) -> Option<Compression> {
        let plain = if crate::crypt::is_encrypted(path) {
            Path::new(path.file_stem()?)
        } else {
            path
        };
        match plain.extension()?.to_str()? {
            "zst" => Some(Compression::Zstd),
            "gz" => Some(Compression::Gzip),
            _ => None,
        }
    }
}

/// What the process does when started without a subcommand
/// (the original container's `BACKUP_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One backup, then exit (`once`).
    Single,
    /// Keep running (`run`).
    Continuous,
}

/// What `run` does when one of several tracker instances is down, or its
/// window does not become ready in time (`coordinator.require`,
/// `MAINTENANCE_REQUIRE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Require {
    /// Every instance must take part, or the backup fails (the default:
    /// a backup without an instance lacks that instance's buffered writes).
    #[default]
    All,
    /// Go on with the instances that are reachable and ready; the manifest,
    /// the report and a webhook warning name the missing ones.
    Reachable,
}

impl Require {
    /// The configuration word (`all`, `reachable`).
    pub fn as_str(self) -> &'static str {
        match self {
            Require::All => "all",
            Require::Reachable => "reachable",
        }
    }
}

/// What a host name in a coordinator URL stands for
/// (`coordinator.resolve`, `MAINTENANCE_RESOLVE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resolve {
    /// One instance per URL, whichever address the connection picks (the
    /// default).
    #[default]
    First,
    /// One instance per address the name resolves to (A and AAAA records,
    /// e.g. a Kubernetes headless Service), resolved again before every
    /// window (`discovery.rs`).
    EachAddress,
}

impl Resolve {
    /// The configuration word (`first`, `each-address`).
    pub fn as_str(self) -> &'static str {
        match self {
            Resolve::First => "first",
            Resolve::EachAddress => "each-address",
        }
    }
}

/// How to reach the coordinator(s).
#[derive(Debug, Clone, Default)]
pub struct CoordinatorConfig {
    /// Base URLs (scheme, host, port; the API prefix is added): one per
    /// tracker instance. `run` drives all of them as one backup.
    pub urls: Vec<String>,
    /// Bearer token for the mutating calls.
    pub token: Option<Secret>,
    /// The readiness file written by the coordinator (a wake-up hint).
    pub ready_file: Option<PathBuf>,
    /// Seconds one status long-poll waits on the server.
    pub long_poll_secs: u64,
    /// Upper bound of the retry backoff when the coordinator is unreachable.
    pub max_backoff_secs: u64,
    /// With several instances: whether a missing one fails the backup.
    pub require: Require,
    /// With several instances: how long after the first instance's window
    /// was claimed the others may still become ready (clock skew, start-up
    /// and quiesce differences); past it, [`Require`] decides.
    pub gather_timeout_secs: u64,
    /// What a host name in [`Self::urls`] stands for.
    pub resolve: Resolve,
}

/// SQLite engine settings.
#[derive(Debug, Clone, Default)]
pub struct SqliteConfig {
    /// Back up the SQLite database.
    pub enabled: bool,
    /// The database file.
    pub path: Option<PathBuf>,
}

/// Settings of a database-server engine (MySQL/MariaDB or PostgreSQL): the
/// two have the same shape, only the defaults and the tools differ.
#[derive(Debug, Clone)]
pub struct DbServerConfig {
    /// Back up this database.
    pub enabled: bool,
    /// Server host.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Database (schema) to dump.
    pub database: Option<String>,
    /// User name.
    pub user: String,
    /// Password; passed to children in their environment (`MYSQL_PWD`,
    /// `PGPASSWORD`), never on argv.
    pub password: Option<Secret>,
    /// Dump program; empty means `mariadb-dump` (falling back to
    /// `mysqldump`) or `pg_dump`.
    pub dump_command: Option<String>,
    /// Restore program; empty means `mariadb` (falling back to `mysql`) or
    /// `pg_restore`.
    pub client_command: Option<String>,
}

/// MySQL/MariaDB engine settings.
pub type MysqlConfig = DbServerConfig;

/// PostgreSQL engine settings.
pub type PostgresConfig = DbServerConfig;

impl DbServerConfig {
    /// MySQL defaults: disabled, `root@127.0.0.1:3306`.
    pub fn mysql_defaults() -> Self {
        Self::defaults(3306, "root")
    }

    /// PostgreSQL defaults: disabled, `postgres@127.0.0.1:5432`.
    pub fn postgres_defaults() -> Self {
        Self::defaults(5432, "postgres")
    }

    fn defaults(port: u16, user: &str) -> Self {
        DbServerConfig {
            enabled: false,
            host: "127.0.0.1".into(),
            port,
            database: None,
            user: user.into(),
            password: None,
            dump_command: None,
            client_command: None,
        }
    }
}

/// Files engine settings.
#[derive(Debug, Clone, Default)]
pub struct FilesConfig {
    /// A text file listing paths, one per line (`#` comments, blanks ignored).
    pub paths_file: Option<PathBuf>,
}

/// Webhook notification settings.
#[derive(Debug, Clone, Default)]
pub struct WebhookConfig {
    /// Where to POST the JSON notification.
    pub url: Option<String>,
    /// Also notify on success (failures are always notified).
    pub notify_on_success: bool,
}

/// The resolved, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where backups are published.
    pub backup_dir: PathBuf,
    /// Artifact compression.
    pub compression: Compression,
    /// Compression level (engine default when `None`).
    pub compression_level: Option<i32>,
    /// Retention: keep backups younger than this many days.
    pub keep_days: u32,
    /// Retention: always keep this many newest backups.
    pub keep_last: u32,
    /// Behaviour without a subcommand.
    pub mode: Mode,
    /// Seconds between uncoordinated backups in continuous mode without a
    /// coordinator (the original container's loop); 0 disables it.
    pub interval_secs: u64,
    /// Name sent with claims.
    pub sidecar_id: String,
    /// Seconds between progress log lines during long copies.
    pub progress_secs: u64,
    /// Coordinator connection.
    pub coordinator: CoordinatorConfig,
    /// SQLite engine.
    pub sqlite: SqliteConfig,
    /// MySQL engine.
    pub mysql: MysqlConfig,
    /// PostgreSQL engine.
    pub postgres: PostgresConfig,
    /// Files engine.
    pub files: FilesConfig,
    /// Notifications.
    pub webhook: WebhookConfig,
    /// Where `run` serves `GET /metrics` (`metrics.bind`,
    /// `SIDECAR_METRICS_BIND`); `None` (the default) = no listener.
    pub metrics_bind: Option<std::net::SocketAddr>,
    /// Encryption at rest (`[encryption]`, `BACKUP_AGE_*`).
    pub encryption: EncryptionConfig,
    /// Off-site copy (`[remote]`, `BACKUP_REMOTE`, `AWS_*`).
    pub remote: RemoteConfig,
    /// Online mode without a coordinator (`BACKUP_WINDOW`, SQLite pin bounds).
    pub online: OnlineConfig,
}

impl Config {
    /// Loads the config: the TOML file (when given) overlaid by the process
    /// environment.
    pub fn load(path: Option<&Path>) -> Result<Config, anyhow::Error> {
        let text = match path {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", p.display()))?,
            ),
            None => None,
        };
        let lookup = |k: &str| std::env::var(k).ok();
        Ok(Config::from_sources(text.as_deref(), &lookup)?)
    }

    /// Builds the config from TOML text and an environment lookup (tests
    /// pass a map instead of the process environment).
    pub fn from_sources(
        toml_text: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw = match toml_text {
            Some(t) => file::parse(t)?,
            None => file::RawConfig::default(),
        };
        let mut cfg = file::resolve(raw)?;
        env::apply(&mut cfg, env)?;
        validate(&cfg)?;
        Ok(cfg)
    }

    /// True when at least one engine is enabled (otherwise the error is
    /// [`NO_ENGINE`]).
    pub fn any_engine(&self) -> bool {
        self.sqlite.enabled
            || self.mysql.enabled
            || self.postgres.enabled
            || self.files.paths_file.is_some()
    }
}

/// The error when [`Config::any_engine`] is false, naming every way to
/// enable one.
pub const NO_ENGINE: &str = "no engine is enabled: set SQLITE_DATABASE_PATH, \
    BACKUP_MYSQL_ENABLED/MYSQL_DATABASE, BACKUP_POSTGRES_ENABLED/POSTGRES_DATABASE \
    or BACKUP_PATHS_FILE";

fn validate(cfg: &Config) -> Result<(), ConfigError> {
    offsite::validate(&cfg.remote)?;
    if cfg.sqlite.enabled && cfg.sqlite.path.is_none() {
        return Err(ConfigError::new(
            "sqlite.path (SQLITE_DATABASE_PATH)",
            "",
            "the path of the SQLite database file when the SQLite backup is enabled",
        ));
    }
    if cfg.mysql.enabled && cfg.mysql.database.is_none() {
        return Err(ConfigError::new(
            "mysql.database (MYSQL_DATABASE)",
            "",
            "a database name when the MySQL backup is enabled",
        ));
    }
    if cfg.postgres.enabled && cfg.postgres.database.is_none() {
        return Err(ConfigError::new(
            "postgres.database (POSTGRES_DATABASE)",
            "",
            "a database name when the PostgreSQL backup is enabled",
        ));
    }
    for url in &cfg.coordinator.urls {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError::new(
                "coordinator.urls (MAINTENANCE_URL)",
                url.clone(),
                "http:// or https:// base URLs, comma-separated",
            ));
        }
    }
    if let Some(url) = &cfg.webhook.url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError::new(
                "webhook.url (BACKUP_WEBHOOK_URL)",
                url.clone(),
                "an http:// or https:// URL",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
