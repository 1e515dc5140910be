//! The operator experience without a coordinator: the alert rules pass
//! `promtool` (syntax and unit tests), the dashboard is valid JSON whose
//! queries all name metrics, `--log-format json` gives parseable lines with
//! the `backup finished` summary, and `status` works when the coordinator
//! is unreachable. The checks against live endpoints are in `run_mode.rs`.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// `promtool` if installed; `None` (after a skip message) when missing
/// outside CI; panics when missing in CI.
fn promtool() -> Option<&'static str> {
    match Command::new("promtool").arg("--version").output() {
        Ok(o) if o.status.success() => Some("promtool"),
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!("promtool is not installed in CI (Debian package `prometheus`)");
            }
            eprintln!("skipped: promtool is not installed (Debian package `prometheus`)");
            None
        }
    }
}

#[test]
fn alert_rules_pass_promtool_check_and_unit_tests() {
    let Some(promtool) = promtool() else { return };
    let rules = monitoring("alerts.yml").canonicalize().unwrap();
    let out = run(Command::new(promtool).arg("check").arg("rules").arg(&rules));
    assert!(out.status.success(), "promtool check rules failed");

    let dir = tempfile::tempdir().unwrap();
    let template = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/alerts_test.yml"),
    )
    .unwrap();
    let test_file = dir.path().join("alerts_test.yml");
    std::fs::write(
        &test_file,
        template.replace("@ALERTS@", rules.to_str().unwrap()),
    )
    .unwrap();
    let out = run(Command::new(promtool)
        .arg("test")
        .arg("rules")
        .arg(&test_file));
    assert!(out.status.success(), "promtool test rules failed");
}

#[test]
fn dashboard_is_grafana_json_with_the_promised_panels() {
    let path = monitoring("grafana-dashboard.json");
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(dash["title"].is_string() && dash["uid"].is_string());
    assert!(dash["schemaVersion"].as_u64().unwrap() >= 30);
    let mut ids = std::collections::HashSet::new();
    for p in dash["panels"].as_array().unwrap() {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "duplicate panel id");
        for k in ["x", "y", "w", "h"] {
            assert!(p["gridPos"][k].is_u64(), "panel {} gridPos.{k}", p["title"]);
        }
    }
    let exprs = dashboard_exprs(&path);
    let all: String = exprs.iter().map(|(_, e)| e.as_str()).collect();
    for metric in [
        "maintenance_state",
        "maintenance_windows_total",
        "maintenance_quiesced_seconds",
        "maintenance_announces_refused_total",
        "maintenance_writes_deferred_total",
        "maintenance_backup_last_success_timestamp_seconds",
        "maintenance_backup_bytes",
        "maintenance_backup_phase_duration_seconds",
        "maintenance_backup_remote_last_success_timestamp_seconds",
        "maintenance_backup_remote_upload_bytes",
    ] {
        assert!(all.contains(metric), "no panel queries {metric}");
    }
    for (title, e) in &exprs {
        assert!(
            !metric_names_in(e).is_empty(),
            "panel {title}: {e} names no metric"
        );
    }
}

#[test]
fn json_logs_are_parseable_and_carry_the_backup_summary() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    make_sqlite(&db, 300);
    let out = run(sidecar(None)
        .args(["--log-format", "json", "once"])
        .env("SQLITE_DATABASE_PATH", &db)
        .env("BACKUP_DIR", dir.path().join("b")));
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 3, "{stderr}");
    let summaries: Vec<_> = lines
        .iter()
        .filter(|l| l["message"] == "backup finished")
        .collect();
    assert_eq!(summaries.len(), 1, "one summary line per backup: {stderr}");
    let s = summaries[0];
    assert_eq!(s["outcome"], "success");
    assert_eq!(s["mode"], "once");
    assert_eq!(s["artifacts"], 1);
    assert!(s["total_bytes"].as_u64().unwrap() > 0);
    assert!(s["snapshot_secs"].as_f64().is_some() && s["total_secs"].as_f64().is_some());
    assert!(s["backup"].as_str().unwrap().ends_with("-once"));
    assert_eq!(s["level"], "INFO");

    // The default is human-readable text with the same greppable line.
    let out = run(sidecar(None)
        .arg("once")
        .env("SQLITE_DATABASE_PATH", &db)
        .env("BACKUP_DIR", dir.path().join("b")));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("backup finished"))
        .expect("summary line");
    assert!(!line.trim_start().starts_with('{'), "{line}");
    assert!(
        line.contains("outcome=\"success\"") && line.contains("total_bytes="),
        "{line}"
    );
}

#[test]
fn failed_backup_summary_names_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(sidecar(None)
        .args(["--log-format", "json", "once"])
        .env("SQLITE_DATABASE_PATH", dir.path().join("missing.db"))
        .env("BACKUP_DIR", dir.path().join("b")));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let s: serde_json::Value = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message"] == "backup finished")
        .unwrap_or_else(|| panic!("no summary: {stderr}"));
    assert_eq!(s["outcome"], "failed");
    assert_eq!(s["level"], "ERROR");
    assert!(!s["error"].as_str().unwrap().is_empty());
}

#[test]
fn status_without_a_reachable_coordinator_still_lists_backups() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    make_sqlite(&db, 50);
    let backups = dir.path().join("b");
    assert!(run(sidecar(None)
        .arg("once")
        .env("SQLITE_DATABASE_PATH", &db)
        .env("BACKUP_DIR", &backups))
    .status
    .success());
    let name = published(&backups)[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();

    // Nothing listens on this port.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = run(sidecar(None)
        .arg("status")
        .env("BACKUP_DIR", &backups)
        .env("MAINTENANCE_URL", format!("http://{addr}")));
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("UNREACHABLE"), "{text}");
    assert!(text.contains(&name), "{text}");
    assert!(text.contains("yes"), "verified column: {text}");

    let out = run(sidecar(None).arg("status").env("BACKUP_DIR", &backups));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("not configured"), "{text}");
    assert!(text.contains(&name), "{text}");
}
