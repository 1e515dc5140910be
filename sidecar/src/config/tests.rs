//! Unit tests of config resolution: defaults, env overrides, error wording.

use std::collections::HashMap;

use super::*;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k: &str| map.get(k).cloned()
}

#[test]
fn defaults_without_file_or_env() {
    let cfg = Config::from_sources(None, &env_of(&[])).unwrap();
    assert_eq!(cfg.keep_days, 7);
    assert_eq!(cfg.keep_last, 3);
    assert_eq!(cfg.compression, Compression::Zstd);
    assert!(!cfg.any_engine());
}

#[test]
fn original_container_variables_are_accepted() {
    let env = env_of(&[
        ("BACKUP_MODE", "single"),
        ("BACKUP_INTERVAL", "86400"),
        ("BACKUP_RETENTION_DAYS", "14"),
        ("BACKUP_MYSQL_ENABLED", "true"),
        ("BACKUP_SQLITE_ENABLED", "false"),
        ("SQLITE_DATABASE_PATH", "/data/tracker.db"),
        ("MYSQL_HOST", "mysql"),
        ("MYSQL_PORT", "3307"),
        ("MYSQL_DATABASE", "torrust"),
        ("MYSQL_USER", "u"),
        ("MYSQL_PASSWORD", "p"),
        ("BACKUP_PATHS_FILE", "/config/paths.txt"),
        ("MAINTENANCE_URL", "http://a:1/, http://b:2"),
        ("MAINTENANCE_TOKEN", " tok \n"),
    ]);
    let cfg = Config::from_sources(None, &env).unwrap();
    assert_eq!(cfg.mode, Mode::Single);
    assert_eq!(cfg.interval_secs, 86400);
    assert_eq!(cfg.keep_days, 14);
    assert!(cfg.mysql.enabled);
    assert!(!cfg.sqlite.enabled);
    assert_eq!(cfg.mysql.port, 3307);
    assert_eq!(cfg.mysql.password.as_ref().unwrap().expose(), "p");
    assert_eq!(cfg.coordinator.urls, vec!["http://a:1", "http://b:2"]);
    assert_eq!(cfg.coordinator.token.as_ref().unwrap().expose(), "tok");
}

#[test]
fn env_overrides_file() {
    let toml = "backup_dir = \"/x\"\nkeep_last = 5\n[sqlite]\npath = \"/db\"\n";
    let cfg = Config::from_sources(Some(toml), &env_of(&[("BACKUP_KEEP_LAST", "9")])).unwrap();
    assert_eq!(cfg.keep_last, 9);
    assert!(cfg.sqlite.enabled);
    assert_eq!(cfg.backup_dir, std::path::PathBuf::from("/x"));
}

#[test]
fn bad_value_names_key_value_and_allowed() {
    let err = Config::from_sources(None, &env_of(&[("BACKUP_MODE", "sometimes")])).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("BACKUP_MODE"), "{text}");
    assert!(text.contains("sometimes"), "{text}");
    assert!(text.contains("single or continuous"), "{text}");

    let err = Config::from_sources(Some("compression = \"lz4\""), &env_of(&[])).unwrap_err();
    assert_eq!(err.key, "compression");
    assert_eq!(err.value, "lz4");
}

#[test]
fn unknown_toml_key_is_rejected() {
    let err = Config::from_sources(Some("keep_dayz = 3"), &env_of(&[])).unwrap_err();
    assert!(err.to_string().contains("keep_dayz"), "{err}");
}

#[test]
fn enabled_sqlite_without_path_is_an_error() {
    let err = Config::from_sources(None, &env_of(&[("BACKUP_SQLITE_ENABLED", "yes")])).unwrap_err();
    assert!(err.key.contains("SQLITE_DATABASE_PATH"));
}

#[test]
fn token_file_is_read_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("token");
    std::fs::write(&f, "s3cret\n").unwrap();
    let cfg = Config::from_sources(
        None,
        &env_of(&[("MAINTENANCE_TOKEN_FILE", f.to_str().unwrap())]),
    )
    .unwrap();
    assert_eq!(cfg.coordinator.token.unwrap().expose(), "s3cret");
}

#[test]
fn metrics_bind_from_file_env_and_off() {
    let cfg =
        Config::from_sources(Some("[metrics]\nbind = \"127.0.0.1:9187\"\n"), &env_of(&[])).unwrap();
    assert_eq!(cfg.metrics_bind, Some("127.0.0.1:9187".parse().unwrap()));
    let cfg = Config::from_sources(
        Some("[metrics]\nbind = \"127.0.0.1:9187\"\n"),
        &env_of(&[("SIDECAR_METRICS_BIND", "off")]),
    )
    .unwrap();
    assert_eq!(cfg.metrics_bind, None);
    assert_eq!(
        Config::from_sources(None, &env_of(&[]))
            .unwrap()
            .metrics_bind,
        None
    );
    let e = Config::from_sources(None, &env_of(&[("SIDECAR_METRICS_BIND", "9187")])).unwrap_err();
    assert!(e.to_string().contains("SIDECAR_METRICS_BIND"), "{e}");
}

#[test]
fn postgres_variables_mirror_the_mysql_ones() {
    let env = env_of(&[
        ("BACKUP_POSTGRES_ENABLED", "true"),
        ("POSTGRES_HOST", "db"),
        ("POSTGRES_PORT", "5433"),
        ("POSTGRES_DB", "torrust"),
        ("POSTGRES_USER", "u"),
        ("POSTGRES_PASSWORD", "p"),
        (
            "POSTGRES_DUMP_COMMAND",
            "/usr/lib/postgresql/15/bin/pg_dump",
        ),
    ]);
    let cfg = Config::from_sources(None, &env).unwrap();
    assert!(cfg.postgres.enabled && !cfg.mysql.enabled);
    assert_eq!(cfg.postgres.host, "db");
    assert_eq!(cfg.postgres.port, 5433);
    assert_eq!(cfg.postgres.database.as_deref(), Some("torrust"));
    assert_eq!(cfg.postgres.password.as_ref().unwrap().expose(), "p");
    assert!(cfg.any_engine());

    let toml = "[postgres]\ndatabase = \"tracker\"\n";
    let cfg = Config::from_sources(Some(toml), &env_of(&[])).unwrap();
    assert!(cfg.postgres.enabled);
    assert_eq!(
        (cfg.postgres.port, cfg.postgres.user.as_str()),
        (5432, "postgres")
    );
    assert_eq!((cfg.mysql.port, cfg.mysql.user.as_str()), (3306, "root"));

    let err = Config::from_sources(None, &env_of(&[("BACKUP_POSTGRES_ENABLED", "yes")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("POSTGRES_DATABASE"), "{err}");
    let err = Config::from_sources(None, &env_of(&[("POSTGRES_PORT", "x")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("POSTGRES_PORT"), "{err}");
}

#[test]
fn require_policy_from_file_and_env_defaults_to_all() {
    let cfg = Config::from_sources(None, &env_of(&[])).unwrap();
    assert_eq!(cfg.coordinator.require, Require::All);
    assert_eq!(cfg.coordinator.gather_timeout_secs, 30);
    let toml = "[coordinator]\nurls = [\"http://a:1\", \"http://b:2\"]\nrequire = \"reachable\"\ngather_timeout_secs = 5\n";
    let cfg = Config::from_sources(Some(toml), &env_of(&[])).unwrap();
    assert_eq!(cfg.coordinator.require, Require::Reachable);
    assert_eq!(cfg.coordinator.gather_timeout_secs, 5);
    assert_eq!(cfg.coordinator.urls, vec!["http://a:1", "http://b:2"]);
    let env = env_of(&[
        ("MAINTENANCE_REQUIRE", "ALL"),
        ("MAINTENANCE_GATHER_TIMEOUT", "12"),
    ]);
    let cfg = Config::from_sources(Some(toml), &env).unwrap();
    assert_eq!(cfg.coordinator.require, Require::All);
    assert_eq!(cfg.coordinator.gather_timeout_secs, 12);
    let err = Config::from_sources(None, &env_of(&[("MAINTENANCE_REQUIRE", "most")])).unwrap_err();
    assert_eq!(err.key, "MAINTENANCE_REQUIRE");
    assert!(err.to_string().contains("reachable"), "{err}");
}

#[test]
fn resolve_from_file_and_env_bad_value_named() {
    let cfg = Config::from_sources(None, &env_of(&[])).unwrap();
    assert_eq!(cfg.coordinator.resolve, Resolve::First);
    let toml = "[coordinator]\nurl = \"http://trackers:7071\"\nresolve = \"each-address\"\n";
    let cfg = Config::from_sources(Some(toml), &env_of(&[])).unwrap();
    assert_eq!(cfg.coordinator.resolve, Resolve::EachAddress);
    let cfg =
        Config::from_sources(Some(toml), &env_of(&[("MAINTENANCE_RESOLVE", "first")])).unwrap();
    assert_eq!(cfg.coordinator.resolve, Resolve::First);
    let err = Config::from_sources(None, &env_of(&[("MAINTENANCE_RESOLVE", "every")])).unwrap_err();
    assert_eq!(err.key, "MAINTENANCE_RESOLVE");
    assert!(err.to_string().contains("each-address"), "{err}");
}
