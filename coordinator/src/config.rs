//! The `[maintenance]` configuration section.
//!
//! The section usually lives inside the tracker's own TOML file next to
//! sections the coordinator knows nothing about, but it may also be a file
//! of its own. Environment variables (`MAINTENANCE_<KEY>`) override single
//! keys so a container can be reconfigured without editing the file.
//!
//! Every error names the key, the bad value and what is allowed, because the
//! person reading it is an operator at 3 a.m., not the author.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{NaiveTime, Weekday};
use chrono_tz::Tz;
use maintenance_proto::AnnouncePolicy;

use maintenance_schedule::{
    parse_timezone, parse_window, Schedule, TIMEZONE_SYNTAX, WINDOW_SYNTAX,
};

/// Shortest token accepted, so a guessable token never reaches production.
pub const MIN_TOKEN_LEN: usize = 16;

/// Validated maintenance settings.
///
/// ```
/// use maintenance_coordinator::MaintenanceConfig;
/// let config = MaintenanceConfig::from_toml_str(r#"
///     [tracker]
///     something = "the coordinator ignores this"
///
///     [maintenance]
///     enabled = true
///     window = "03:00-03:05"
///     token = "0123456789abcdef-secret"
/// "#).unwrap();
/// assert!(config.enabled);
/// assert_eq!(config.schedule.to_string(), "03:00-03:05 UTC");
/// ```
#[derive(Clone)]
pub struct MaintenanceConfig {
    /// Scheduled windows open only when true. Ad hoc windows opened by an
    /// operator through the API work either way.
    pub enabled: bool,
    /// When windows happen.
    pub schedule: Schedule,
    /// What announces get during a window.
    pub announce_policy: AnnouncePolicy,
    /// Longest wait for in-flight requests and writes when a window opens.
    pub drain_timeout: Duration,
    /// Longest the tracker's quiesce hook may take.
    pub quiesce_timeout: Duration,
    /// Longest the tracker's resume hook may take before the gate opens anyway.
    pub resume_timeout: Duration,
    /// A claim lasts this long without a heartbeat.
    pub lease_ttl: Duration,
    /// Where readiness is published as a file; none means HTTP only.
    pub ready_file: Option<PathBuf>,
    /// Address the maintenance API listens on when served on its own port.
    pub bind: Option<SocketAddr>,
    /// Bearer token for mutating calls.
    pub token: Option<Token>,
}

impl fmt::Debug for MaintenanceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaintenanceConfig")
            .field("enabled", &self.enabled)
            .field("schedule", &self.schedule.to_string())
            .field("announce_policy", &self.announce_policy)
            .field("drain_timeout", &self.drain_timeout)
            .field("quiesce_timeout", &self.quiesce_timeout)
            .field("resume_timeout", &self.resume_timeout)
            .field("lease_ttl", &self.lease_ttl)
            .field("ready_file", &self.ready_file)
            .field("bind", &self.bind)
            .field("token", &self.token)
            .finish()
    }
}

/// A secret bearer token. Its `Debug` and `Display` never show the value.
///
/// ```
/// use maintenance_coordinator::Token;
/// let token = Token::new("0123456789abcdef-secret");
/// assert_eq!(format!("{token:?}"), "Token(<redacted>)");
/// assert!(token.matches(b"0123456789abcdef-secret"));
/// ```
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Token(secret.into())
    }

    /// Constant-time comparison with a presented token.
    pub fn matches(&self, presented: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(presented).into()
    }

    /// The secret itself, for clients that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// A configuration problem, phrased for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A key holds a value outside what is allowed.
    #[error("maintenance.{key}: invalid value {value:?}: {allowed}")]
    Invalid {
        /// Dotted key, e.g. `window`.
        key: String,
        /// The value as found.
        value: String,
        /// What would be accepted.
        allowed: String,
    },
    /// A file the section names cannot be used (missing, a directory,
    /// unreadable): the message names the path, its owner and the fix.
    #[error(transparent)]
    Unusable(#[from] maintenance_preflight::PathProblem),
    /// A key the coordinator does not know.
    #[error("maintenance.{key}: unknown key; allowed keys are {}", KNOWN_KEYS.join(", "))]
    UnknownKey {
        /// The unknown key.
        key: String,
    },
    /// A required key is absent.
    #[error("maintenance.{key}: missing; {hint}")]
    Missing {
        /// The missing key.
        key: String,
        /// How to provide it.
        hint: String,
    },
    /// The document is not valid TOML, or a file could not be read.
    #[error("{0}")]
    Syntax(String),
}

const KNOWN_KEYS: &[&str] = &[
    "enabled",
    "window",
    "timezone",
    "days",
    "announce_policy",
    "drain_timeout",
    "quiesce_timeout",
    "resume_timeout",
    "lease_ttl",
    "ready_file",
    "bind",
    "token",
    "token_file",
];

fn invalid(key: &str, value: impl fmt::Display, allowed: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        value: value.to_string(),
        allowed: allowed.into(),
    }
}

impl MaintenanceConfig {
    /// Parses a document holding a `[maintenance]` table among other
    /// sections, or a standalone file whose top level is the section.
    /// No environment overrides are applied.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        Self::from_toml_str_with_env(text, |_| None)
    }

    /// Like [`from_toml_str`](Self::from_toml_str), then applies overrides
    /// looked up by `env` (`MAINTENANCE_WINDOW`, `MAINTENANCE_TOKEN`, ...).
    ///
    /// ```
    /// use maintenance_coordinator::MaintenanceConfig;
    /// let text = "window = \"03:00-03:05\"\ntoken = \"0123456789abcdef-secret\"";
    /// let config = MaintenanceConfig::from_toml_str_with_env(text, |key| {
    ///     (key == "MAINTENANCE_WINDOW").then(|| "04:00-04:30".to_string())
    /// }).unwrap();
    /// assert_eq!(config.schedule.to_string(), "04:00-04:30 UTC");
    /// ```
    pub fn from_toml_str_with_env(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let doc: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Syntax(format!("invalid TOML: {e}")))?;
        let section = match doc.get("maintenance") {
            Some(toml::Value::Table(table)) => table.clone(),
            Some(other) => {
                return Err(invalid(
                    "maintenance",
                    other,
                    "a table: write `[maintenance]` followed by its keys",
                ))
            }
            None => doc,
        };
        Self::from_section(&section, env)
    }

    /// Reads the `[maintenance]` table of a tracker's config file. A file
    /// without that table yields [`disabled`](Self::disabled) (with
    /// environment overrides still applied, so `MAINTENANCE_ENABLED=true`
    /// with `MAINTENANCE_WINDOW` works on its own).
    pub fn from_tracker_toml(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let doc: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Syntax(format!("invalid TOML: {e}")))?;
        match doc.get("maintenance") {
            Some(_) => Self::from_toml_str_with_env(text, env),
            None => Self::from_section(&toml::Table::new(), env),
        }
    }

    /// Reads a file (standalone or a tracker's), applying the process
    /// environment.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::Syntax(format!("cannot read config {}: {e}", path.display()))
        })?;
        Self::from_toml_str_with_env(&text, |k| std::env::var(k).ok())
    }

    /// Maintenance off: no scheduled windows, a placeholder schedule.
    pub fn disabled() -> Self {
        Self::from_section(&toml::Table::new(), |_| None).expect("defaults are valid")
    }

    fn from_section(
        section: &toml::Table,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        for key in section.keys() {
            if !KNOWN_KEYS.contains(&key.as_str()) {
                return Err(ConfigError::UnknownKey { key: key.clone() });
            }
        }
        let raw = RawSection { section, env: &env };

        let enabled = raw.bool("enabled")?.unwrap_or(false);
        let window_text = raw.string("window")?;
        let timezone = match raw.string("timezone")? {
            None => Tz::UTC,
            Some(name) => {
                parse_timezone(&name).ok_or_else(|| invalid("timezone", &name, TIMEZONE_SYNTAX))?
            }
        };
        let days = match raw.days()? {
            None => None,
            Some(days) if days.is_empty() => {
                return Err(invalid(
                    "days",
                    "[]",
                    "at least one weekday, e.g. [\"sun\"], or omit the key for every day",
                ))
            }
            Some(days) => Some(days),
        };
        let (start, end) =
            match &window_text {
                Some(text) => {
                    parse_window(text).ok_or_else(|| invalid("window", text, WINDOW_SYNTAX))?
                }
                None if enabled => return Err(ConfigError::Missing {
                    key: "window".into(),
                    hint: "set window = \"HH:MM-HH:MM\" (e.g. \"03:00-03:05\"), or enabled = false"
                        .into(),
                }),
                None => (
                    NaiveTime::from_hms_opt(3, 0, 0).unwrap(),
                    NaiveTime::from_hms_opt(3, 5, 0).unwrap(),
                ),
            };
        let schedule = Schedule::new(start, end, timezone, days);

        let announce_policy = match raw.string("announce_policy")?.as_deref() {
            None => AnnouncePolicy::Reject,
            Some("reject") => AnnouncePolicy::Reject,
            Some("defer-writes") | Some("defer_writes") => AnnouncePolicy::DeferWrites,
            Some(other) => {
                return Err(invalid(
                    "announce_policy",
                    other,
                    "\"reject\" or \"defer-writes\"",
                ))
            }
        };
        let drain_timeout = raw.duration("drain_timeout")?.unwrap_or(secs(10));
        let quiesce_timeout = raw.duration("quiesce_timeout")?.unwrap_or(secs(60));
        let resume_timeout = raw.duration("resume_timeout")?.unwrap_or(secs(30));
        let lease_ttl = raw.duration("lease_ttl")?.unwrap_or(secs(30));
        let ready_file = raw.string("ready_file")?.map(PathBuf::from);
        let bind = match raw.string("bind")? {
            None => None,
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "bind",
                    &text,
                    "an address with a port, e.g. \"127.0.0.1:7070\" or \"0.0.0.0:7070\"",
                )
            })?),
        };

        let token = raw.token()?;
        let token = match token {
            Some(t) if t.len() < MIN_TOKEN_LEN => {
                return Err(invalid(
                    "token",
                    "<redacted>",
                    format!(
                        "at least {MIN_TOKEN_LEN} characters; generate one with `openssl rand -hex 32`"
                    ),
                ))
            }
            Some(t) => Some(Token(t)),
            None if enabled => {
                return Err(ConfigError::Missing {
                    key: "token".into(),
                    hint: "the sidecar must authenticate: set token_file = \"/run/secrets/maintenance_token\", or MAINTENANCE_TOKEN / MAINTENANCE_TOKEN_FILE in the environment".into(),
                })
            }
            None => None,
        };

        Ok(MaintenanceConfig {
            enabled,
            schedule,
            announce_policy,
            drain_timeout,
            quiesce_timeout,
            resume_timeout,
            lease_ttl,
            ready_file,
            bind,
            token,
        })
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn read_token_file(path: &Path) -> Result<String, ConfigError> {
    maintenance_preflight::readable_file("maintenance.token_file", path)?;
    let text = std::fs::read_to_string(path).map_err(|e| {
        invalid(
            "token_file",
            path.display(),
            format!("a readable file holding the token ({e})"),
        )
    })?;
    let token = text.trim().to_owned();
    if token.is_empty() {
        return Err(invalid(
            "token_file",
            path.display(),
            "a file holding the token; this one is empty",
        ));
    }
    Ok(token)
}

/// Values of the section, with the environment override of each key taken
/// first.
struct RawSection<'a, E> {
    section: &'a toml::Table,
    env: &'a E,
}

impl<E: Fn(&str) -> Option<String>> RawSection<'_, E> {
    fn env_name(key: &str) -> String {
        format!("MAINTENANCE_{}", key.to_ascii_uppercase())
    }

    fn override_of(&self, key: &str) -> Option<String> {
        (self.env)(&Self::env_name(key))
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        if let Some(text) = self.override_of(key) {
            return match text.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(Some(true)),
                "false" | "0" | "no" | "off" => Ok(Some(false)),
                _ => Err(invalid(
                    key,
                    text,
                    format!("{}: true or false", Self::env_name(key)),
                )),
            };
        }
        match self.section.get(key) {
            None => Ok(None),
            Some(toml::Value::Boolean(b)) => Ok(Some(*b)),
            Some(other) => Err(invalid(key, other, "true or false")),
        }
    }

    fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        if let Some(text) = self.override_of(key) {
            return Ok(Some(text));
        }
        match self.section.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(invalid(key, other, "a string in double quotes")),
        }
    }

    /// The token, by precedence: `MAINTENANCE_TOKEN`, `MAINTENANCE_TOKEN_FILE`,
    /// then the file's `token` or `token_file` (not both).
    fn token(&self) -> Result<Option<String>, ConfigError> {
        if let Some(token) = self.override_of("token") {
            return Ok(Some(token));
        }
        if let Some(path) = self.override_of("token_file") {
            return read_token_file(Path::new(&path)).map(Some);
        }
        let text = |key: &str| match self.section.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(key, "<redacted>", "a string in double quotes")),
        };
        match (text("token")?, text("token_file")?) {
            (Some(_), Some(_)) => Err(invalid(
                "token",
                "<redacted>",
                "set either token or token_file, not both",
            )),
            (Some(token), None) => Ok(Some(token)),
            (None, Some(path)) => read_token_file(Path::new(&path)).map(Some),
            (None, None) => Ok(None),
        }
    }

    fn duration(&self, key: &str) -> Result<Option<Duration>, ConfigError> {
        let allowed = "a positive duration: seconds as a number (30) or text such as \"500ms\", \"30s\", \"5m\", \"1h\"";
        let value = if let Some(text) = self.override_of(key) {
            text
        } else {
            match self.section.get(key) {
                None => return Ok(None),
                Some(toml::Value::Integer(n)) if *n > 0 => {
                    return Ok(Some(Duration::from_secs(*n as u64)))
                }
                Some(toml::Value::Float(f)) if *f > 0.0 && f.is_finite() => {
                    return Ok(Some(Duration::from_secs_f64(*f)))
                }
                Some(toml::Value::String(s)) => s.clone(),
                Some(other) => return Err(invalid(key, other, allowed)),
            }
        };
        parse_duration(&value)
            .filter(|d| !d.is_zero())
            .map(Some)
            .ok_or_else(|| invalid(key, &value, allowed))
    }

    fn days(&self) -> Result<Option<Vec<Weekday>>, ConfigError> {
        let allowed = "weekday names such as [\"mon\", \"sat\"] (mon tue wed thu fri sat sun)";
        let names: Vec<String> = if let Some(text) = self.override_of("days") {
            text.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        } else {
            match self.section.get("days") {
                None => return Ok(None),
                Some(toml::Value::Array(items)) => items
                    .iter()
                    .map(|item| match item {
                        toml::Value::String(s) => Ok(s.clone()),
                        other => Err(invalid("days", other, allowed)),
                    })
                    .collect::<Result<_, _>>()?,
                Some(other) => return Err(invalid("days", other, allowed)),
            }
        };
        let mut days = Vec::new();
        for name in names {
            let day = name
                .parse::<Weekday>()
                .map_err(|_| invalid("days", &name, allowed))?;
            if !days.contains(&day) {
                days.push(day);
            }
        }
        Ok(Some(days))
    }
}

/// Parses a duration the way every configuration file of the project
/// writes one: `"30"` (bare seconds), `"500ms"`, `"1.5s"`, `"5m"` (or
/// `"5min"`), `"1h"`. `None` for anything else, or a negative number;
/// zero is for the caller to refuse where it makes no sense.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: f64 = number.parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "token = \"0123456789abcdef-secret\"\n";

    fn parse(text: &str) -> Result<MaintenanceConfig, ConfigError> {
        MaintenanceConfig::from_toml_str(text)
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn original_note_form_inside_a_tracker_file() {
        let text = format!(
            "[logging]\nthreshold = \"info\"\n[core.database]\ndriver = \"sqlite3\"\n\
             [maintenance]\nenabled = true\nwindow = \"03:00-03:05\"  # UTC\n{TOKEN}"
        );
        let config = parse(&text).unwrap();
        assert!(config.enabled);
        assert_eq!(config.schedule.to_string(), "03:00-03:05 UTC");
        assert_eq!(config.announce_policy, AnnouncePolicy::Reject);
        assert_eq!(config.lease_ttl, Duration::from_secs(30));
    }

    #[test]
    fn standalone_file_with_every_key() {
        let dir = tempfile::tempdir().unwrap();
        let token_path = dir.path().join("token");
        std::fs::write(&token_path, "  abcdefghijklmnopqrstuvwxyz\n").unwrap();
        let text = format!(
            "enabled = true\nwindow = \"23:30-00:15\"\ntimezone = \"Europe/London\"\n\
             days = [\"sat\", \"sun\"]\nannounce_policy = \"defer-writes\"\n\
             drain_timeout = \"500ms\"\nquiesce_timeout = 5\nresume_timeout = \"1m\"\n\
             lease_ttl = \"2s\"\nready_file = \"/run/m/ready.json\"\nbind = \"127.0.0.1:7070\"\n\
             token_file = {:?}\n",
            token_path.display().to_string()
        );
        let config = parse(&text).unwrap();
        assert_eq!(
            config.schedule.to_string(),
            "23:30-00:15 Europe/London (Sat,Sun)"
        );
        assert_eq!(config.announce_policy, AnnouncePolicy::DeferWrites);
        assert_eq!(config.drain_timeout, Duration::from_millis(500));
        assert_eq!(config.quiesce_timeout, Duration::from_secs(5));
        assert_eq!(config.resume_timeout, Duration::from_secs(60));
        assert_eq!(config.lease_ttl, Duration::from_secs(2));
        assert_eq!(config.ready_file, Some(PathBuf::from("/run/m/ready.json")));
        assert_eq!(config.bind, Some("127.0.0.1:7070".parse().unwrap()));
        assert!(config.token.unwrap().matches(b"abcdefghijklmnopqrstuvwxyz"));
    }

    #[test]
    fn environment_overrides_single_keys() {
        let text = format!("[maintenance]\nenabled = false\nwindow = \"03:00-03:05\"\n{TOKEN}");
        let config = MaintenanceConfig::from_toml_str_with_env(&text, |k| match k {
            "MAINTENANCE_ENABLED" => Some("true".into()),
            "MAINTENANCE_TIMEZONE" => Some("America/New_York".into()),
            "MAINTENANCE_ANNOUNCE_POLICY" => Some("defer-writes".into()),
            "MAINTENANCE_TOKEN" => Some("from-the-environment-123".into()),
            "MAINTENANCE_DAYS" => Some("mon, fri".into()),
            _ => None,
        })
        .unwrap();
        assert!(config.enabled);
        assert_eq!(
            config.schedule.to_string(),
            "03:00-03:05 America/New_York (Mon,Fri)"
        );
        assert_eq!(config.announce_policy, AnnouncePolicy::DeferWrites);
        assert!(config.token.unwrap().matches(b"from-the-environment-123"));
    }

    #[test]
    fn token_file_from_environment_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "docker-secret-0123456789\n").unwrap();
        let text = format!("window = \"03:00-03:05\"\n{TOKEN}");
        let config = MaintenanceConfig::from_toml_str_with_env(&text, |k| {
            (k == "MAINTENANCE_TOKEN_FILE").then(|| path.display().to_string())
        })
        .unwrap();
        assert!(config.token.unwrap().matches(b"docker-secret-0123456789"));
        let both = format!("{TOKEN}token_file = \"/x\"\n");
        let message = err(&both);
        assert!(message.contains("not both"), "{message}");
    }

    #[test]
    fn tracker_file_without_section_is_disabled() {
        let config =
            MaintenanceConfig::from_tracker_toml("[core]\nlisteners = 3\n", |_| None).unwrap();
        assert!(!config.enabled);
        assert!(config.token.is_none());
    }

    #[test]
    fn bad_windows_name_key_value_and_allowed() {
        for bad in [
            "25:00-03:00",
            "03:00-03:00",
            "3-4",
            "03:00",
            "03:60-04:00",
            "aa:bb-cc:dd",
        ] {
            let message = err(&format!("window = \"{bad}\"\n{TOKEN}"));
            assert!(message.contains("maintenance.window"), "{message}");
            assert!(message.contains(bad), "{message}");
            assert!(message.contains("HH:MM-HH:MM"), "{message}");
        }
    }

    #[test]
    fn bad_values_are_explained() {
        let cases = [
            (
                "timezone = \"Mars/Olympus\"",
                "maintenance.timezone",
                "IANA",
            ),
            (
                "announce_policy = \"drop\"",
                "maintenance.announce_policy",
                "defer-writes",
            ),
            ("lease_ttl = \"soon\"", "maintenance.lease_ttl", "duration"),
            ("lease_ttl = 0", "maintenance.lease_ttl", "positive"),
            (
                "drain_timeout = true",
                "maintenance.drain_timeout",
                "duration",
            ),
            ("bind = \"localhost\"", "maintenance.bind", "port"),
            ("days = [\"funday\"]", "maintenance.days", "weekday"),
            ("days = []", "maintenance.days", "at least one"),
            ("enabled = \"yes\"", "maintenance.enabled", "true or false"),
            ("colour = \"blue\"", "maintenance.colour", "unknown key"),
        ];
        for (line, key, hint) in cases {
            let message = err(&format!("window = \"03:00-03:05\"\n{TOKEN}{line}\n"));
            assert!(message.contains(key), "{line}: {message}");
            assert!(message.contains(hint), "{line}: {message}");
        }
    }

    #[test]
    fn enabled_needs_a_window_and_a_token() {
        let message = err("enabled = true\n");
        assert!(message.contains("maintenance.window: missing"), "{message}");
        let message = err("enabled = true\nwindow = \"03:00-03:05\"\n");
        assert!(message.contains("maintenance.token: missing"), "{message}");
        assert!(message.contains("MAINTENANCE_TOKEN"), "{message}");
    }

    #[test]
    fn short_tokens_are_refused_without_echoing_them() {
        let message = err("window = \"03:00-03:05\"\ntoken = \"hunter2\"\n");
        assert!(message.contains("at least 16"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        let config = parse(&format!("window = \"03:00-03:05\"\n{TOKEN}")).unwrap();
        assert!(!format!("{config:?}").contains("secret"));
    }

    #[test]
    fn missing_token_file_is_named() {
        let message = err("window = \"03:00-03:05\"\ntoken_file = \"/nonexistent/token\"\n");
        assert!(message.contains("maintenance.token_file"), "{message}");
        assert!(message.contains("/nonexistent/token"), "{message}");
    }

    #[test]
    fn syntax_errors_are_reported() {
        let message = err("[maintenance\nenabled = true");
        assert!(message.contains("invalid TOML"), "{message}");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("7 weeks"), None);
        assert_eq!(parse_duration("-1s"), None);
    }
}
