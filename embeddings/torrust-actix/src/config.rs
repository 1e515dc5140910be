//! The one configuration file: torrust-actix's own `config.toml`, read
//! with its own types and environment overrides, plus one `[maintenance]`
//! table read by the coordinator (same keys and meaning as the reference
//! tracker's).
//!
//! Upstream reads `./config.toml` only; this binary takes `--config PATH`
//! and falls back to the same `./config.toml`. torrust-actix's parser
//! ignores the table it does not know, so one file serves both.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use maintenance_coordinator::MaintenanceConfig;
use torrust_actix::config::structs::configuration::Configuration;

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the config file {path}: {source}; pass --config PATH (default ./config.toml, see config.example.toml)")]
    Read {
        /// The path tried.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// torrust-actix's part of the file does not parse.
    #[error("{path}: {message}; the keys are torrust-actix 4.2.15's (see config.example.toml)")]
    Tracker {
        /// The file.
        path: PathBuf,
        /// torrust-actix's parse error.
        message: String,
    },
    /// The `[maintenance]` table is wrong.
    #[error("{path}: {source}")]
    Maintenance {
        /// The file.
        path: PathBuf,
        /// The coordinator's error, naming the key, the value and what is allowed.
        source: maintenance_coordinator::ConfigError,
    },
    /// A listener this binary cannot serve.
    #[error("{path}: {message}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is not supported and what to do instead.
        message: String,
    },
}

/// Both halves of the configuration.
#[derive(Debug, Clone)]
pub struct EmbeddingConfig {
    /// torrust-actix's configuration, environment overrides applied.
    pub tracker: Arc<Configuration>,
    /// The coordinator's `[maintenance]` table.
    pub maintenance: MaintenanceConfig,
}

impl EmbeddingConfig {
    /// Reads `path`, applying the environment through `env` (the
    /// coordinator's `MAINTENANCE_*` overrides) and torrust-actix's own
    /// overrides (read from the process environment by its code).
    pub fn load(path: &Path, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text, env)
    }

    /// Parses the text of the file at `path` (named in errors).
    pub fn parse(
        path: &Path,
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut tracker =
            Configuration::load(text.as_bytes()).map_err(|e| ConfigError::Tracker {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        Configuration::env_overrides(&mut tracker);
        let maintenance = MaintenanceConfig::from_tracker_toml(text, env).map_err(|source| {
            ConfigError::Maintenance {
                path: path.to_owned(),
                source,
            }
        })?;
        let config = EmbeddingConfig {
            tracker: Arc::new(tracker),
            maintenance,
        };
        config.check_supported(path)?;
        Ok(config)
    }

    /// Refuses the listeners this binary does not serve, rather than
    /// silently not serving them.
    fn check_supported(&self, path: &Path) -> Result<(), ConfigError> {
        let unsupported = |message: String| ConfigError::Unsupported {
            path: path.to_owned(),
            message,
        };
        if let Some(h) = self.tracker.http_server.iter().find(|h| h.enabled && h.ssl) {
            return Err(unsupported(format!(
                "http_server {} has ssl = true, which this build does not serve; \
                 terminate TLS in a reverse proxy in front of it and set ssl = false",
                h.bind_address
            )));
        }
        if self
            .tracker
            .http_server
            .iter()
            .any(|h| h.enabled && h.rtctorrent)
        {
            return Err(unsupported(
                "an http_server has rtctorrent = true (WebRTC), which this build does not serve; set it to false".into(),
            ));
        }
        Ok(())
    }

    /// True when anything is kept in the database (upstream's rule: a
    /// table's own `persistent`, else `database.persistent`).
    pub fn any_persistent(&self) -> bool {
        Persistence::of(&self.tracker).any()
    }
}

/// Which of torrust-actix's tables are saved, as its `main.rs` decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Persistence {
    /// Torrents (completed counts).
    pub torrents: bool,
    /// Whitelist, when enabled.
    pub whitelist: bool,
    /// Blacklist, when enabled.
    pub blacklist: bool,
    /// Keys, when enabled.
    pub keys: bool,
    /// Users, when enabled.
    pub users: bool,
}

impl Persistence {
    /// Upstream's rule for each table: its own `persistent` if set, else
    /// `database.persistent`; lists, keys and users also need their
    /// feature enabled.
    pub fn of(c: &Configuration) -> Self {
        let db = c.database.persistent;
        let s = &c.database_structure;
        let t = &c.tracker_config;
        Persistence {
            torrents: s.torrents.persistent.unwrap_or(db),
            whitelist: s.whitelist.persistent.unwrap_or(db) && t.whitelist_enabled,
            blacklist: s.blacklist.persistent.unwrap_or(db) && t.blacklist_enabled,
            keys: s.keys.persistent.unwrap_or(db) && t.keys_enabled,
            users: s.users.persistent.unwrap_or(db) && t.users_enabled,
        }
    }

    /// True when any table is saved.
    pub fn any(&self) -> bool {
        self.torrents || self.whitelist || self.blacklist || self.keys || self.users
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../config.example.toml");

    #[test]
    fn the_example_parses_with_its_maintenance_table() {
        let c = EmbeddingConfig::parse(Path::new("config.example.toml"), EXAMPLE, |_| None)
            .expect("config.example.toml parses");
        assert!(c.maintenance.enabled);
        assert_eq!(c.tracker.http_server.len(), 1);
        assert_eq!(c.tracker.udp_server.len(), 1);
        assert!(c.any_persistent());
        assert!(c.tracker.database.path.starts_with("sqlite://"));
    }

    #[test]
    fn a_bad_maintenance_key_names_itself() {
        let text = format!("{EXAMPLE}\n").replace("window = \"03:00-03:05\"", "window = \"3am\"");
        let e = EmbeddingConfig::parse(Path::new("c.toml"), &text, |_| None).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("c.toml") && msg.contains("window"), "{msg}");
    }

    #[test]
    fn a_missing_file_names_the_flag() {
        let e = EmbeddingConfig::load(Path::new("/nonexistent/config.toml"), |_| None).unwrap_err();
        assert!(e.to_string().contains("--config"), "{e}");
    }

    #[test]
    fn tls_listeners_are_refused_with_the_fix() {
        let text = EXAMPLE.replacen("ssl = false", "ssl = true", 1);
        let e = EmbeddingConfig::parse(Path::new("c.toml"), &text, |_| None).unwrap_err();
        assert!(e.to_string().contains("reverse proxy"), "{e}");
    }
}
