//! One DNS name, several tracker instances (`MAINTENANCE_RESOLVE=each-address`).
//!
//! What a Kubernetes headless Service gives the sidecar, without a
//! cluster: one name whose address records are the tracker instances.
//! Three real `reference-tracker` processes listen on 127.0.0.2, .3 and .4
//! (same maintenance port); the real `maintenance-sidecar run` gets
//! `MAINTENANCE_URL=http://trackers.test:PORT` and resolves the name with
//! the system resolver. The name's records live in a hosts file of the
//! test, bind-mounted over `/etc/hosts` inside the sidecar's own mount
//! namespace (`unshare --mount`), so the machine's `/etc/hosts` is never
//! touched. Needs root (CI runs as root); skipped with a message elsewhere,
//! failing under `CI`.
//!
//! Checked: every address takes part in one backup (the manifest's
//! participation), and the sidecar follows the records: an instance added
//! to the name takes part in the next window, one removed is no longer
//! waited for (under `require = all`, which would fail the round).

use std::path::Path;
use std::time::Duration;

use maintenance_e2e::*;

const NAME: &str = "trackers.test";

fn can_unshare() -> bool {
    let ok = std::process::Command::new("unshare")
        .args(["--mount", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "unshare --mount failed under CI (the test needs root)"
        );
        eprintln!("skipped: `unshare --mount` needs root");
    }
    ok
}

/// Rewrites the hosts file in place (the bind mount follows the inode):
/// `NAME` resolves to 127.0.0.N for each N.
fn publish(hosts: &Path, last_octets: &[u8]) {
    let mut text = String::from("127.0.0.1 localhost\n");
    for n in last_octets {
        text.push_str(&format!("127.0.0.{n} {NAME}\n"));
    }
    std::fs::write(hosts, text).unwrap();
}

/// The instance URLs (sorted) that took part in the newest backup.
fn took_part(backups: &Path) -> Vec<String> {
    let newest = published(backups).pop().expect("a published backup");
    let m = manifest(&newest);
    assert_eq!(m["verified"], true, "{m}");
    let mut urls: Vec<String> = m["participation"]["instances"]
        .as_array()
        .expect("participation in the manifest")
        .iter()
        .inspect(|i| assert_eq!(i["took_part"], true, "{m}"))
        .map(|i| i["url"].as_str().unwrap().to_owned())
        .collect();
    urls.sort();
    urls
}

fn api_url(n: u8, port: u16) -> String {
    format!("http://127.0.0.{n}:{port}/maintenance/v1")
}

/// Opens a window on each of `trackers` and waits until each completed.
fn window_on(trackers: &[&Tracker], backups: &Path) {
    let before = published(backups).len();
    let ids: Vec<String> = trackers.iter().map(|t| t.api().open_window(60)).collect();
    for (t, id) in trackers.iter().zip(&ids) {
        let o = t.wait_outcome(id, Duration::from_secs(60));
        assert_eq!(o.outcome.as_str(), "completed", "{o:?}");
    }
    wait_until(Duration::from_secs(10), "the backup published", || {
        published(backups).len() > before
    });
}

#[test]
fn a_name_with_several_addresses_is_every_instance_and_its_changes_are_followed() {
    if !can_unshare() {
        return;
    }
    let dir = tempdir();
    let port = free_port();
    let trackers: Vec<Tracker> = (2u8..=4)
        .map(|n| {
            let d = dir.path().join(format!("t{n}"));
            std::fs::create_dir_all(&d).unwrap();
            let cfg = TrackerConfig::sqlite(&d, "reject");
            let bind = format!("127.0.0.{n}:{port}");
            Tracker::start_with_env(&d, &cfg, &[("MAINTENANCE_BIND", bind.as_str())])
        })
        .collect();
    for (t, n) in trackers.iter().zip(2u8..) {
        assert_eq!(
            t.maintenance.unwrap().to_string(),
            format!("127.0.0.{n}:{port}")
        );
    }
    let hosts = dir.path().join("hosts");
    publish(&hosts, &[2, 3]);

    let backups = dir.path().join("backups");
    // The database backed up: one the test owns, which no tracker writes
    // (the instances' own databases are not what this test is about).
    let db = dir.path().join("backed-up.db");
    make_tracker_sqlite(&db, &[(info_hash(7, 1), 5)], 0);
    let mut env = sidecar_env(&trackers[0], &backups);
    set_env(&mut env, "SQLITE_DATABASE_PATH", &db.display().to_string());
    set_env(
        &mut env,
        "MAINTENANCE_URL",
        &format!("http://{NAME}:{port}"),
    );
    set_env(&mut env, "MAINTENANCE_RESOLVE", "each-address");
    set_env(&mut env, "MAINTENANCE_GATHER_TIMEOUT", "10");
    // `run` inside its own mount namespace, where the test's hosts file is
    // /etc/hosts.
    let wrapper = dir.path().join("sidecar-in-namespace.sh");
    write_script(
        &wrapper,
        &format!(
            "#!/bin/sh\nexec unshare --mount sh -c 'mount --bind \"$1\" /etc/hosts && shift && exec \"$@\"' sh {} {} \"$@\"\n",
            hosts.display(),
            bin("maintenance-sidecar").display()
        ),
    );
    let sidecar = spawn_sidecar_of(&wrapper, dir.path(), "discovery", &env);
    wait_until(
        Duration::from_secs(20),
        "the sidecar watching both instances",
        || sidecar.log_text().contains(&api_url(3, port)),
    );

    window_on(&[&trackers[0], &trackers[1]], &backups);
    assert_eq!(
        took_part(&backups),
        vec![api_url(2, port), api_url(3, port)],
        "{}",
        sidecar.log_text()
    );

    // A third record: the next window waits for that instance too.
    publish(&hosts, &[2, 3, 4]);
    wait_until(
        Duration::from_secs(30),
        "the sidecar finding the third instance",
        || sidecar.log_text().contains("tracker instances changed"),
    );
    window_on(&[&trackers[0], &trackers[1], &trackers[2]], &backups);
    assert_eq!(
        took_part(&backups),
        vec![api_url(2, port), api_url(3, port), api_url(4, port)],
        "{}",
        sidecar.log_text()
    );

    // A record removed: that instance (still running) is no longer part
    // of the round, so require = all does not fail without it.
    publish(&hosts, &[3, 4]);
    wait_until(
        Duration::from_secs(30),
        "the sidecar dropping an instance",
        || {
            sidecar
                .log_text()
                .matches("tracker instances changed")
                .count()
                >= 2
        },
    );
    window_on(&[&trackers[1], &trackers[2]], &backups);
    assert_eq!(
        took_part(&backups),
        vec![api_url(3, port), api_url(4, port)],
        "{}",
        sidecar.log_text()
    );
}
