//! Settings of the online mode, for a tracker that does not embed the
//! coordinator: the sidecar's own backup window (`BACKUP_WINDOW`,
//! `BACKUP_TIMEZONE`, the coordinator's syntax and DST rules through the
//! shared `maintenance-schedule` crate) and the bounds of the SQLite
//! self-pin (`BACKUP_SQLITE_WAL_LIMIT_MIB`, `BACKUP_SQLITE_PIN_TIMEOUT`).

use maintenance_schedule::{
    parse_timezone, parse_window, Schedule, TIMEZONE_SYNTAX, WINDOW_SYNTAX,
};

use super::{parse, ConfigError};

/// Default WAL growth allowed while the SQLite file is pinned, in MiB.
pub const DEFAULT_WAL_LIMIT_MIB: u64 = 1024;

/// Default read rate of an online backup's SQLite file, in MiB a second.
pub const DEFAULT_READ_LIMIT_MIBPS: u64 = 64;

/// Default time to get the pin (checkpoint retries included), in seconds.
pub const DEFAULT_PIN_TIMEOUT_SECS: u64 = 30;

/// The online mode's settings.
#[derive(Debug, Clone)]
pub struct OnlineConfig {
    /// The sidecar's own daily window (`run` without `MAINTENANCE_URL`):
    /// one online backup when it opens, retried inside it after a failure.
    pub schedule: Option<Schedule>,
    /// Past this many MiB of `-wal` while pinned the backup gives up and
    /// unpins rather than fill the disk.
    pub wal_limit_mib: u64,
    /// How long the pin may take to get (the checkpoint is retried while
    /// the tracker writes); past it the backup fails and the tracker is
    /// untouched.
    pub pin_timeout_secs: u64,
    /// Whether an online backup reads and writes in the idle I/O class
    /// (`BACKUP_ONLINE_IO_PRIORITY=idle`, the default) so the tracker's
    /// own I/O goes first, or in the default class (`normal`).
    pub idle_io: bool,
    /// The most an online backup reads the SQLite file from the disk at,
    /// in MiB a second (`BACKUP_ONLINE_READ_LIMIT_MIBPS`; 0 means no
    /// limit): a slower read holds the pin longer but leaves the disk to
    /// the tracker's own I/O.
    pub read_limit_mib_per_sec: u64,
}

impl Default for OnlineConfig {
    fn default() -> Self {
        OnlineConfig {
            schedule: None,
            wal_limit_mib: DEFAULT_WAL_LIMIT_MIB,
            pin_timeout_secs: DEFAULT_PIN_TIMEOUT_SECS,
            idle_io: true,
            read_limit_mib_per_sec: DEFAULT_READ_LIMIT_MIBPS,
        }
    }
}

/// Overlays `BACKUP_WINDOW`, `BACKUP_TIMEZONE`, `BACKUP_SQLITE_WAL_LIMIT_MIB`,
/// `BACKUP_SQLITE_PIN_TIMEOUT`, `BACKUP_ONLINE_IO_PRIORITY` and
/// `BACKUP_ONLINE_READ_LIMIT_MIBPS`.
pub fn apply_env(
    cfg: &mut OnlineConfig,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    let timezone = match get("BACKUP_TIMEZONE") {
        Some(name) => Some(
            parse_timezone(&name)
                .ok_or_else(|| ConfigError::new("BACKUP_TIMEZONE", name, TIMEZONE_SYNTAX))?,
        ),
        None => None,
    };
    match get("BACKUP_WINDOW") {
        Some(text) => {
            let (start, end) = parse_window(&text)
                .ok_or_else(|| ConfigError::new("BACKUP_WINDOW", text, WINDOW_SYNTAX))?;
            cfg.schedule = Some(Schedule::new(
                start,
                end,
                timezone.unwrap_or(chrono_tz::UTC),
                None,
            ));
        }
        None if timezone.is_some() => return Err(ConfigError::new(
            "BACKUP_TIMEZONE",
            get("BACKUP_TIMEZONE").unwrap_or_default(),
            "a zone only together with BACKUP_WINDOW=\"HH:MM-HH:MM\" (the window it applies to)",
        )),
        None => {}
    }
    if let Some(v) = get("BACKUP_SQLITE_WAL_LIMIT_MIB") {
        cfg.wal_limit_mib =
            parse::number("BACKUP_SQLITE_WAL_LIMIT_MIB", &v, "whole MiB, 1 or more")?;
        if cfg.wal_limit_mib == 0 {
            return Err(ConfigError::new(
                "BACKUP_SQLITE_WAL_LIMIT_MIB",
                v,
                "whole MiB, 1 or more",
            ));
        }
    }
    if let Some(v) = get("BACKUP_SQLITE_PIN_TIMEOUT") {
        cfg.pin_timeout_secs =
            parse::number("BACKUP_SQLITE_PIN_TIMEOUT", &v, "whole seconds, 1 or more")?;
        cfg.pin_timeout_secs = cfg.pin_timeout_secs.max(1);
    }
    if let Some(v) = get("BACKUP_ONLINE_IO_PRIORITY") {
        cfg.idle_io = match v.trim() {
            "idle" => true,
            "normal" => false,
            _ => {
                return Err(ConfigError::new(
                    "BACKUP_ONLINE_IO_PRIORITY",
                    v,
                    "idle (the default: the tracker's I/O goes first) or normal",
                ))
            }
        };
    }
    if let Some(v) = get("BACKUP_ONLINE_READ_LIMIT_MIBPS") {
        cfg.read_limit_mib_per_sec = parse::number(
            "BACKUP_ONLINE_READ_LIMIT_MIBPS",
            &v,
            "whole MiB a second, or 0 for no limit",
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(pairs: &[(&str, &str)]) -> Result<OnlineConfig, ConfigError> {
        let mut cfg = OnlineConfig::default();
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.to_string())
        };
        apply_env(&mut cfg, &get).map(|()| cfg)
    }

    #[test]
    fn window_and_zone_use_the_coordinator_syntax() {
        let cfg = apply(&[
            ("BACKUP_WINDOW", "23:30-00:15"),
            ("BACKUP_TIMEZONE", "Europe/London"),
        ])
        .unwrap();
        assert_eq!(
            cfg.schedule.unwrap().to_string(),
            "23:30-00:15 Europe/London"
        );
        assert!(apply(&[]).unwrap().schedule.is_none());
    }

    #[test]
    fn bad_values_name_the_variable_and_what_is_allowed() {
        let e = apply(&[("BACKUP_WINDOW", "25:00-03:00")]).unwrap_err();
        assert_eq!(e.key, "BACKUP_WINDOW");
        assert!(e.allowed.contains("HH:MM-HH:MM"), "{e}");
        let e = apply(&[
            ("BACKUP_WINDOW", "03:00-03:05"),
            ("BACKUP_TIMEZONE", "Mars/Olympus"),
        ])
        .unwrap_err();
        assert_eq!(e.key, "BACKUP_TIMEZONE");
        let e = apply(&[("BACKUP_TIMEZONE", "UTC")]).unwrap_err();
        assert!(e.allowed.contains("BACKUP_WINDOW"), "{e}");
        let e = apply(&[("BACKUP_ONLINE_IO_PRIORITY", "high")]).unwrap_err();
        assert_eq!(e.key, "BACKUP_ONLINE_IO_PRIORITY");
        assert!(e.allowed.contains("idle"), "{e}");
        assert!(apply(&[]).unwrap().idle_io);
        assert!(
            !apply(&[("BACKUP_ONLINE_IO_PRIORITY", "normal")])
                .unwrap()
                .idle_io
        );
        let e = apply(&[("BACKUP_SQLITE_WAL_LIMIT_MIB", "0")]).unwrap_err();
        assert_eq!(e.key, "BACKUP_SQLITE_WAL_LIMIT_MIB");
        assert_eq!(
            apply(&[("BACKUP_SQLITE_WAL_LIMIT_MIB", "64")])
                .unwrap()
                .wal_limit_mib,
            64
        );
        let e = apply(&[("BACKUP_ONLINE_READ_LIMIT_MIBPS", "fast")]).unwrap_err();
        assert_eq!(e.key, "BACKUP_ONLINE_READ_LIMIT_MIBPS");
        assert!(e.allowed.contains("0 for no limit"), "{e}");
        assert_eq!(
            apply(&[("BACKUP_ONLINE_READ_LIMIT_MIBPS", "80")])
                .unwrap()
                .read_limit_mib_per_sec,
            80
        );
    }
}
