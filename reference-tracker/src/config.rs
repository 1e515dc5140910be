//! The tracker's configuration file.
//!
//! It mirrors the Torrust tracker's `tracker.toml` for every key the two share
//! (`[core.database]`, `[core.announce_policy]`, `[core.tracker_policy]`,
//! `[[udp_trackers]]`, `[[http_trackers]]`, `[health_check_api]`), so an operator sees a familiar
//! file; unknown Torrust sections are ignored. The coordinator's
//! `[maintenance]` table lives in the same file and is parsed by the
//! coordinator itself from the whole text. Errors name the key, the bad value
//! and what is allowed.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use maintenance_coordinator::parse_duration;
use toml::{Table, Value};

use crate::durability::Durability;

/// Env variable whose value replaces the password of a `mysql://` or
/// `postgresql://` URL.
pub const PASSWORD_ENV: &str = "TRACKER_DATABASE_PASSWORD";

/// Env variable overriding `[core.database] path`, named as Torrust names it.
pub const PATH_ENV: &str = "TORRUST_TRACKER_CONFIG_OVERRIDE_CORE__DATABASE__PATH";

/// Which database driver stores completed counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// `driver = "sqlite3"`: `path` is a file.
    Sqlite3,
    /// `driver = "mysql"`: `path` is a `mysql://` URL.
    Mysql,
    /// `driver = "postgresql"`: `path` is a `postgresql://` URL.
    Postgresql,
}

/// `[core.database]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// The driver.
    pub driver: Driver,
    /// File path (SQLite) or URL (MySQL, PostgreSQL).
    pub path: String,
    /// How often the write-behind buffer is flushed (`flush_interval`,
    /// not a Torrust key; default 1 s).
    pub flush_interval: Duration,
    /// SQLite journal mode (`journal_mode`, not a Torrust key): WAL by
    /// default, or the rollback journal the upstream tracker runs with.
    pub journal_mode: JournalMode,
    /// The completion journal (`completion_journal`, not a Torrust key):
    /// completions acknowledged but not yet in the database. Default
    /// `<path>.completions` for SQLite,
    /// `./storage/tracker/lib/database/completions.journal` for MySQL and
    /// PostgreSQL.
    pub completion_journal: String,
    /// When a `completed` announce is answered (`journal_durability`, not a
    /// Torrust key): `"write"` (default), `"fsync"` or `"interval"`.
    pub journal_durability: Durability,
}

/// The SQLite journal mode the store puts the database in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JournalMode {
    /// `journal_mode = "wal"` (default): a snapshot pin freezes the main
    /// file while writes carry on into the `-wal` file.
    #[default]
    Wal,
    /// `journal_mode = "delete"`: the rollback journal. A snapshot pin
    /// blocks writers, so writes stay deferred until the unpin.
    Delete,
}

/// Everything the tracker reads from its file, except `[maintenance]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerConfig {
    /// `[core.database]`.
    pub database: DatabaseConfig,
    /// `[core.announce_policy] interval`, seconds.
    pub interval: u32,
    /// `[core.announce_policy] interval_min`, seconds.
    pub interval_min: u32,
    /// `[core.tracker_policy] max_peer_timeout`, seconds: a peer not heard
    /// from for this long is dropped.
    pub max_peer_timeout: u32,
    /// `[[udp_trackers]] bind_address`, one UDP (BEP 15) server each; none
    /// unless configured.
    pub udp_trackers: Vec<SocketAddr>,
    /// `[[http_trackers]] bind_address`, one server each.
    pub http_trackers: Vec<SocketAddr>,
    /// `[health_check_api] bind_address`.
    pub health_check: Option<SocketAddr>,
}

/// A config problem, naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// Not TOML.
    #[error("config is not valid TOML: {0}")]
    Syntax(String),
    /// A key with a bad value.
    #[error("config key `{key}`: {problem}")]
    Key {
        /// Dotted key path.
        key: String,
        /// What is wrong and what is allowed.
        problem: String,
    },
}

fn bad(key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: key.to_owned(),
        problem: problem.into(),
    }
}

fn table<'a>(t: &'a Table, name: &str, key: &str) -> Result<Option<&'a Table>, ConfigError> {
    match t.get(name) {
        None => Ok(None),
        Some(Value::Table(t)) => Ok(Some(t)),
        Some(other) => Err(bad(
            key,
            format!("expected a table, found {}", other.type_str()),
        )),
    }
}

fn string(t: &Table, name: &str, key: &str) -> Result<Option<String>, ConfigError> {
    match t.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(bad(key, format!("expected a string, found {other}"))),
    }
}

fn seconds(t: &Table, name: &str, key: &str, default: u32) -> Result<u32, ConfigError> {
    match t.get(name) {
        None => Ok(default),
        Some(Value::Integer(i)) if *i > 0 && *i <= u32::MAX as i64 => Ok(*i as u32),
        Some(other) => Err(bad(
            key,
            format!("{other} is not allowed: expected a whole number of seconds, at least 1"),
        )),
    }
}

fn addr(t: &Table, name: &str, key: &str) -> Result<Option<SocketAddr>, ConfigError> {
    match string(t, name, key)? {
        None => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| {
            bad(
                key,
                format!("{s:?} is not an address: expected IP:PORT, e.g. \"0.0.0.0:7070\""),
            )
        }),
    }
}

/// Reads an array of `[[name]] bind_address = "IP:PORT"` tables; `None`
/// when the array is absent. `example` appears in the error message.
fn listeners(
    root: &Table,
    name: &str,
    example: &str,
) -> Result<Option<Vec<SocketAddr>>, ConfigError> {
    match root.get(name) {
        None => Ok(None),
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let key = format!("{name}[{i}].bind_address");
                let t = item
                    .as_table()
                    .ok_or_else(|| bad(&format!("{name}[{i}]"), "expected a table"))?;
                out.push(addr(t, "bind_address", &key)?.ok_or_else(|| bad(&key, "missing"))?);
            }
            Ok(Some(out))
        }
        Some(_) => Err(bad(
            name,
            format!("expected an array of tables: [[{name}]] bind_address = \"{example}\""),
        )),
    }
}

/// A flush interval: `"1s"`, `"500ms"`, `"2m"`, or a bare number of
/// seconds (the project's one [`parse_duration`]); never zero.
fn flush_interval(s: &str) -> Option<Duration> {
    parse_duration(s).filter(|d| !d.is_zero())
}

impl TrackerConfig {
    /// Reads and parses a file.
    pub fn load(
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(Self, String), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let cfg = Self::parse(&text, env)?;
        Ok((cfg, text))
    }

    /// Parses the text of a file; `env` supplies overrides ([`PATH_ENV`]).
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let root: Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Syntax(e.to_string()))?;
        let empty = Table::new();
        let core = table(&root, "core", "core")?.unwrap_or(&empty);

        let db = table(core, "database", "core.database")?.unwrap_or(&empty);
        let driver = match string(db, "driver", "core.database.driver")?.as_deref() {
            None | Some("sqlite3") => Driver::Sqlite3,
            Some("mysql") => Driver::Mysql,
            Some("postgresql") => Driver::Postgresql,
            Some(other) => {
                return Err(bad(
                    "core.database.driver",
                    format!(
                    "{other:?} is not allowed: expected \"sqlite3\", \"mysql\" or \"postgresql\""
                ),
                ))
            }
        };
        let path = match env(PATH_ENV).filter(|p| !p.is_empty()) {
            Some(p) => p,
            None => string(db, "path", "core.database.path")?
                .unwrap_or_else(|| "./storage/tracker/lib/database/sqlite3.db".to_owned()),
        };
        if path.is_empty() {
            return Err(bad("core.database.path", "must not be empty"));
        }
        if driver == Driver::Mysql && !path.starts_with("mysql://") {
            return Err(bad(
                "core.database.path",
                "with driver = \"mysql\" the path must be a URL: mysql://USER:PASSWORD@HOST:PORT/DATABASE",
            ));
        }
        if driver == Driver::Postgresql
            && !(path.starts_with("postgresql://") || path.starts_with("postgres://"))
        {
            return Err(bad(
                "core.database.path",
                "with driver = \"postgresql\" the path must be a URL: postgresql://USER:PASSWORD@HOST:PORT/DATABASE",
            ));
        }
        let flush_interval = match db.get("flush_interval") {
            None => Duration::from_secs(1),
            Some(Value::String(s)) => flush_interval(s).ok_or_else(|| {
                bad(
                    "core.database.flush_interval",
                    format!("{s:?} is not a duration: expected e.g. \"1s\", \"500ms\", \"2m\""),
                )
            })?,
            Some(Value::Integer(i)) if *i > 0 => Duration::from_secs(*i as u64),
            Some(other) => {
                return Err(bad(
                    "core.database.flush_interval",
                    format!("{other} is not a duration: expected e.g. \"1s\" or \"500ms\""),
                ))
            }
        };

        let journal_mode = match string(db, "journal_mode", "core.database.journal_mode")?
            .map(|m| m.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("wal") => JournalMode::Wal,
            Some("delete") => JournalMode::Delete,
            Some(other) => {
                return Err(bad(
                    "core.database.journal_mode",
                    format!("{other:?} is not allowed: expected \"wal\" or \"delete\" (the rollback journal)"),
                ))
            }
        };

        let completion_journal =
            match string(db, "completion_journal", "core.database.completion_journal")? {
                Some(p) if p.is_empty() => {
                    return Err(bad(
                        "core.database.completion_journal",
                        "must not be empty: leave it out for the default",
                    ))
                }
                Some(p) => p,
                None if driver == Driver::Sqlite3 => format!("{path}.completions"),
                None => "./storage/tracker/lib/database/completions.journal".to_owned(),
            };

        let journal_durability =
            match string(db, "journal_durability", "core.database.journal_durability")? {
                None => Durability::default(),
                Some(v) => Durability::parse(&v).ok_or_else(|| {
                    bad(
                        "core.database.journal_durability",
                        format!(
                            "{v:?} is not allowed: expected \"write\" (answer once the journal \
                             record is written, the default), \"fsync\" (once it is synced to \
                             disk) or \"interval\" (at once; synced within 100 ms)"
                        ),
                    )
                })?,
            };

        let ap = table(core, "announce_policy", "core.announce_policy")?.unwrap_or(&empty);
        let interval = seconds(ap, "interval", "core.announce_policy.interval", 120)?;
        let interval_min = seconds(ap, "interval_min", "core.announce_policy.interval_min", 120)?;
        let tp = table(core, "tracker_policy", "core.tracker_policy")?.unwrap_or(&empty);
        let max_peer_timeout = seconds(
            tp,
            "max_peer_timeout",
            "core.tracker_policy.max_peer_timeout",
            900,
        )?;

        let udp_trackers = listeners(&root, "udp_trackers", "0.0.0.0:6969")?.unwrap_or_default();
        let http_trackers = listeners(&root, "http_trackers", "0.0.0.0:7070")?
            .unwrap_or_else(|| vec!["0.0.0.0:7070".parse().unwrap()]);
        let health_check = match table(&root, "health_check_api", "health_check_api")? {
            None => Some("127.0.0.1:1313".parse().unwrap()),
            Some(t) => addr(t, "bind_address", "health_check_api.bind_address")?,
        };

        Ok(TrackerConfig {
            database: DatabaseConfig {
                driver,
                path,
                flush_interval,
                journal_mode,
                completion_journal,
                journal_durability,
            },
            interval,
            interval_min,
            max_peer_timeout,
            udp_trackers,
            http_trackers,
            health_check,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn journal_mode_is_wal_unless_delete_is_asked() {
        let cfg = TrackerConfig::parse("", no_env).unwrap();
        assert_eq!(cfg.database.journal_mode, JournalMode::Wal);
        let cfg =
            TrackerConfig::parse("[core.database]\njournal_mode = \"DELETE\"", no_env).unwrap();
        assert_eq!(cfg.database.journal_mode, JournalMode::Delete);
        let e = TrackerConfig::parse("[core.database]\njournal_mode = \"memory\"", no_env)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("core.database.journal_mode") && e.contains("\"delete\""),
            "{e}"
        );
    }

    #[test]
    fn reads_torrust_layout_and_ignores_unknown_sections() {
        let cfg = TrackerConfig::parse(
            r#"
            [metadata]
            schema_version = "2.0.0"
            [logging]
            threshold = "info"
            [core.database]
            driver = "mysql"
            path = "mysql://u:p@127.0.0.1:3306/t"
            flush_interval = "250ms"
            [core.announce_policy]
            interval = 60
            interval_min = 30
            [[udp_trackers]]
            bind_address = "0.0.0.0:6969"
            [[http_trackers]]
            bind_address = "127.0.0.1:7070"
            [[http_trackers]]
            bind_address = "127.0.0.1:7071"
            [health_check_api]
            bind_address = "127.0.0.1:1313"
            [maintenance]
            enabled = true
            "#,
            no_env,
        )
        .unwrap();
        assert_eq!(cfg.database.driver, Driver::Mysql);
        assert_eq!(cfg.database.flush_interval, Duration::from_millis(250));
        assert_eq!(
            (cfg.interval, cfg.interval_min, cfg.max_peer_timeout),
            (60, 30, 900)
        );
        assert_eq!(cfg.http_trackers.len(), 2);
        assert_eq!(cfg.udp_trackers, ["0.0.0.0:6969".parse().unwrap()]);
        assert_eq!(cfg.health_check, Some("127.0.0.1:1313".parse().unwrap()));
    }

    #[test]
    fn errors_name_the_key() {
        let e = TrackerConfig::parse("[core.database]\ndriver = \"oracle\"", no_env).unwrap_err();
        assert!(e.to_string().contains("core.database.driver"), "{e}");
        assert!(e.to_string().contains("oracle"), "{e}");
        assert!(e.to_string().contains("\"postgresql\""), "{e}");
        let e =
            TrackerConfig::parse("[[http_trackers]]\nbind_address = \"nope\"", no_env).unwrap_err();
        assert!(
            e.to_string().contains("http_trackers[0].bind_address"),
            "{e}"
        );
        let e = TrackerConfig::parse(
            "[core.database]\ndriver = \"mysql\"\npath = \"t.db\"",
            no_env,
        )
        .unwrap_err();
        assert!(e.to_string().contains("core.database.path"), "{e}");
        assert!(e.to_string().contains("mysql://"), "{e}");
        let e = TrackerConfig::parse("[[udp_trackers]]\nbind_address = \"x\"", no_env).unwrap_err();
        assert!(
            e.to_string().contains("udp_trackers[0].bind_address"),
            "{e}"
        );
        let e = TrackerConfig::parse("udp_trackers = 6969", no_env).unwrap_err();
        assert!(
            e.to_string().contains("[[udp_trackers]] bind_address"),
            "{e}"
        );
        let e = TrackerConfig::parse("[core.announce_policy]\ninterval = -1", no_env).unwrap_err();
        assert!(
            e.to_string().contains("core.announce_policy.interval"),
            "{e}"
        );
    }

    #[test]
    fn postgresql_takes_a_url_in_the_upstream_form() {
        let cfg = TrackerConfig::parse(
            "[core.database]\ndriver = \"postgresql\"\npath = \"postgresql://u:p@127.0.0.1:5432/t\"",
            no_env,
        )
        .unwrap();
        assert_eq!(cfg.database.driver, Driver::Postgresql);
        let e = TrackerConfig::parse(
            "[core.database]\ndriver = \"postgresql\"\npath = \"mysql://u:p@h/t\"",
            no_env,
        )
        .unwrap_err();
        assert!(e.to_string().contains("core.database.path"), "{e}");
        assert!(e.to_string().contains("postgresql://"), "{e}");
    }

    #[test]
    fn env_overrides_the_database_path() {
        let cfg = TrackerConfig::parse("[core.database]\npath = \"a.db\"", |k| {
            (k == PATH_ENV).then(|| "b.db".to_owned())
        })
        .unwrap();
        assert_eq!(cfg.database.path, "b.db");
        assert_eq!(cfg.database.completion_journal, "b.db.completions");
    }

    #[test]
    fn journal_durability_defaults_to_write_and_names_the_choices() {
        let cfg = TrackerConfig::parse("", no_env).unwrap();
        assert_eq!(cfg.database.journal_durability, Durability::Write);
        let cfg = TrackerConfig::parse("[core.database]\njournal_durability = \"fsync\"", no_env)
            .unwrap();
        assert_eq!(cfg.database.journal_durability, Durability::Fsync);
        let e = TrackerConfig::parse(
            "[core.database]\njournal_durability = \"sometimes\"",
            no_env,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("core.database.journal_durability") && e.contains("\"interval\""),
            "{e}"
        );
    }

    #[test]
    fn completion_journal_is_configurable_and_never_empty() {
        let cfg = TrackerConfig::parse(
            "[core.database]\ndriver = \"mysql\"\npath = \"mysql://u:p@h/t\"",
            no_env,
        )
        .unwrap();
        assert!(cfg
            .database
            .completion_journal
            .ends_with("completions.journal"));
        let cfg =
            TrackerConfig::parse("[core.database]\ncompletion_journal = \"/j/x\"", no_env).unwrap();
        assert_eq!(cfg.database.completion_journal, "/j/x");
        let e =
            TrackerConfig::parse("[core.database]\ncompletion_journal = \"\"", no_env).unwrap_err();
        assert!(
            e.to_string().contains("core.database.completion_journal"),
            "{e}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(flush_interval("2s"), Some(Duration::from_secs(2)));
        assert_eq!(flush_interval("1.5m"), Some(Duration::from_secs(90)));
        // A bare number is seconds, as documented (it used to be refused).
        assert_eq!(flush_interval("10"), Some(Duration::from_secs(10)));
        assert_eq!(flush_interval("0s"), None);
        assert_eq!(flush_interval("0"), None);
        assert_eq!(flush_interval("ten"), None);
        let cfg =
            TrackerConfig::parse("[core.database]\nflush_interval = \"10\"", |_| None).unwrap();
        assert_eq!(cfg.database.flush_interval, Duration::from_secs(10));
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    #[test]
    fn the_shipped_example_is_valid() {
        let text = include_str!("../tracker.example.toml");
        let cfg = TrackerConfig::parse(text, |_| None).unwrap();
        assert_eq!(cfg.database.driver, Driver::Sqlite3);
        assert_eq!(cfg.database.flush_interval, Duration::from_secs(1));
        assert_eq!(cfg.http_trackers, vec!["0.0.0.0:7070".parse().unwrap()]);
        assert_eq!(cfg.udp_trackers, vec!["0.0.0.0:6969".parse().unwrap()]);
        // The token file does not exist here; the env override stands in.
        let m = maintenance_coordinator::MaintenanceConfig::from_tracker_toml(text, |k| {
            (k == "MAINTENANCE_TOKEN").then(|| "0123456789abcdef-example".to_owned())
        })
        .unwrap();
        assert!(m.enabled);
        assert_eq!(m.bind, Some("127.0.0.1:7071".parse().unwrap()));
        assert_eq!(
            m.announce_policy,
            maintenance_coordinator::proto::AnnouncePolicy::DeferWrites
        );
    }

    #[test]
    fn the_compose_database_configs_are_valid() {
        let mysql = include_str!("../../compose/storage/tracker/etc/tracker.mysql.toml");
        let cfg = TrackerConfig::parse(mysql, |_| None).unwrap();
        assert_eq!(cfg.database.driver, Driver::Mysql);
        let pg = include_str!("../../compose/storage/tracker/etc/tracker.postgresql.toml");
        let cfg = TrackerConfig::parse(pg, |_| None).unwrap();
        assert_eq!(cfg.database.driver, Driver::Postgresql);
        assert!(cfg
            .database
            .path
            .starts_with("postgresql://torrust@postgres:5432/"));
    }
}
