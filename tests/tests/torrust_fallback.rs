//! The host fallback `compose/maintenance-backup.sh` against the real,
//! unmodified Torrust tracker 3.0.0 (`TORRUST_TRACKER_BIN`, built by
//! `scripts/build-torrust-tracker.sh`; skipped without it outside CI),
//! without a container engine: the script's compose commands are answered
//! by `tests/support/process-compose.sh`, which runs Torrust as a plain
//! process (`tracker.start`) and the real `maintenance-sidecar` as the
//! one-shot backup service (`backup-once.run`).
//!
//! Checked, in order, on one tracker and one SQLite file: Torrust creates
//! the file in rollback-journal mode; the script's online attempt is
//! refused with the conversion advice and it falls back to stop-copy-start
//! (compose's TERM, which 3.0.0 ignores, then KILL after `STOP_TIMEOUT`):
//! new Torrust process, an `uncoordinated` backup that verifies and holds
//! the acknowledged counts, the file still in rollback-journal mode; then
//! `--convert-to-wal` (Torrust stopped with SIGINT) switches the file to
//! WAL, keeps the counts and publishes a verified backup; then the next
//! plain run backs up online under a paced load of started+completed
//! announces: the same Torrust process throughout, no announce failed, no
//! write lost, no locked/busy in its log, an `online` backup that verifies
//! and holds what was acknowledged before the run and nothing sent after.
//!
//! Torrust 3.0.0 does not load the persisted completed counts when it
//! starts (its next completion of a torrent writes a count from zero), so
//! counts are read from the file right after each restart, and the load
//! announces on torrents nothing touched before.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use maintenance_e2e::torrust::*;
use maintenance_e2e::*;

/// Announced before the restarts; not one of the load's torrents.
const KEPT: usize = TORRENTS;
/// Announced `started` only, to see Torrust serve after a restart.
const PROBE: usize = TORRENTS + 1;

/// Torrust 3.0.0's last log line of a clean stop (on SIGINT).
const CLEAN_SHUTDOWN: &str = "Torrust successfully shutdown.";

/// A [`ProcessStack`] in a temporary folder, with the test's checks.
struct Stack {
    stack: ProcessStack,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Stack {
    type Target = ProcessStack;
    fn deref(&self) -> &ProcessStack {
        &self.stack
    }
}

impl Stack {
    fn new(torrust: &Path) -> Stack {
        let dir = tempdir();
        let stack = ProcessStack::new(
            dir.path(),
            torrust,
            &dir.path().join("tracker.db"),
            &dir.path().join("backups"),
        );
        Stack { stack, _dir: dir }
    }

    /// Runs the fallback script with `args`; `stop_signal` is
    /// process-compose's STOP_SIGNAL (None: TERM, as compose). Returns its
    /// exit code and output; checks it left no temporary file in TMPDIR.
    fn fallback(&self, args: &[&str], stop_signal: Option<&str>) -> (Option<i32>, String) {
        let mut cmd = self.fallback_command(args);
        cmd.env("HEALTH_TIMEOUT", "30").env("STOP_TIMEOUT", "2");
        if let Some(sig) = stop_signal {
            cmd.env("STOP_SIGNAL", sig);
        }
        let started = Instant::now();
        let out = cmd.output().expect("run maintenance-backup.sh");
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!(
            "--- maintenance-backup.sh {args:?} (STOP_SIGNAL {stop_signal:?}): {} in {:?}\n{log}",
            out.status,
            started.elapsed()
        );
        let left: Vec<String> = std::fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("maintenance-backup"))
            .collect();
        assert!(left.is_empty(), "temporary files left in TMPDIR: {left:?}");
        (out.status.code(), log)
    }

    /// The completed count of `torrent(i)` in the file `db`.
    fn count(db: &Path, i: usize) -> i64 {
        sqlite_counts(db)
            .get(&hex(&torrent(i)))
            .copied()
            .unwrap_or(0)
    }

    /// The one backup published since `before` (the earlier listing),
    /// checked: verified, mode `once`, `consistency` as given, and
    /// `verify latest` passes on it.
    fn new_backup(&self, before: &[PathBuf], consistency: &str) -> PathBuf {
        let new: Vec<PathBuf> = published(&self.backups)
            .into_iter()
            .filter(|b| !before.contains(b))
            .collect();
        assert_eq!(new.len(), 1, "new backups: {new:?}");
        let backup = new[0].clone();
        let m = manifest(&backup);
        assert_eq!(m["consistency"], consistency, "{m}");
        assert_eq!(m["verified"], true, "{m}");
        assert_eq!(m["mode"], "once", "{m}");
        assert_eq!(
            std::fs::canonicalize(self.backups.join("latest")).unwrap(),
            backup.canonicalize().unwrap(),
            "`latest` names the new backup"
        );
        assert!(sidecar_output(&self.env, &["verify", "latest"])
            .status
            .success());
        backup
    }

    /// Restores `backup` into a fresh file `name` in the stack's folder.
    fn restore(&self, backup: &Path, name: &str) -> PathBuf {
        let to = self.dir.join(name);
        assert!(sidecar_output(
            &self.env,
            &[
                "restore",
                backup.to_str().unwrap(),
                "--to",
                to.to_str().unwrap()
            ]
        )
        .status
        .success());
        to
    }
}

/// The line of `log` containing `needle` (panics naming it otherwise).
fn line_with<'a>(log: &'a str, needle: &str) -> &'a str {
    log.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in:\n{log}"))
}

fn assert_has(log: &str, needles: &[&str]) {
    for n in needles {
        assert!(log.contains(n), "no {n:?} in:\n{log}");
    }
}

fn assert_lacks(log: &str, needles: &[&str]) {
    for n in needles {
        assert!(!log.contains(n), "{n:?} in:\n{log}");
    }
}

#[test]
fn rollback_journal_torrust_falls_back_then_converts_then_backs_up_online() {
    let Some(bin) = torrust_bin() else { return };
    let stack = Stack::new(&bin);
    let t = stack.client();

    // 1. Torrust on a fresh file, through process-compose.
    stack.start_tracker();
    let first = stack.tracker_pid();
    for peer in 1..=3 {
        t.announce(&torrent(KEPT), peer, "started").unwrap();
        t.announce(&torrent(KEPT), peer, "completed").unwrap();
    }
    assert_eq!(
        journal_mode(&stack.db),
        "delete",
        "Torrust 3.0.0's own default"
    );
    assert_eq!(Stack::count(&stack.db, KEPT), 3);

    // 2. No options: the online attempt is refused, stop-copy-start. The
    //    stop is compose's: TERM (ignored by 3.0.0), KILL after 2 s.
    let (code, log) = stack.fallback(&[], None);
    assert_eq!(code, Some(0), "{log}");
    let refusal = line_with(&log, "online backup refused:");
    assert_has(
        refusal,
        &[
            "rollback-journal mode (journal_mode=delete)",
            "maintenance-sidecar sqlite-wal",
            "--convert-to-wal",
        ],
    );
    assert_has(
        &log,
        &[
            "Running the online backup (the tracker keeps serving)",
            "cannot be copied online (see above); falling back to stop-copy-start",
            "Stopping tracker services: tracker",
            "Backup container completed successfully",
            "Starting tracker services: tracker",
            "Tracker is healthy",
            "=== Maintenance backup completed successfully",
        ],
    );
    let second = stack.tracker_pid();
    assert_ne!(second, first, "Torrust was not restarted");
    assert!(!alive(first), "the first Torrust still runs");
    assert_lacks(&stack.tracker_log(), &[CLEAN_SHUTDOWN]);
    let stopped = stack.new_backup(&[], "uncoordinated");
    let restored = stack.restore(&stopped, "restored-stopped.db");
    assert_eq!(
        Stack::count(&restored, KEPT),
        3,
        "the stopped backup holds every acknowledged completion"
    );
    assert_eq!(journal_mode(&stack.db), "delete", "nothing converted");
    assert_eq!(Stack::count(&stack.db, KEPT), 3);
    t.announce(&torrent(PROBE), 1, "started").unwrap();

    // 3. --convert-to-wal: stop (SIGINT, a clean stop), convert, back up,
    //    start.
    let before = published(&stack.backups);
    let (code, log) = stack.fallback(&["--convert-to-wal"], Some("INT"));
    assert_eq!(code, Some(0), "{log}");
    assert_has(
        &log,
        &[
            "Stopping tracker services: tracker",
            "Converting the tracker's SQLite database to WAL (tracker stopped)",
            "converted from journal_mode=delete to WAL",
            "Backup container completed successfully",
            "Tracker is healthy",
            "=== Maintenance backup completed successfully",
        ],
    );
    assert_lacks(
        &log,
        &["Running the online backup", "online backup refused"],
    );
    assert_eq!(journal_mode(&stack.db), "wal");
    let third = stack.tracker_pid();
    assert_ne!(third, second, "Torrust was not restarted");
    assert!(!alive(second), "the second Torrust still runs");
    assert_eq!(
        stack.tracker_log().matches(CLEAN_SHUTDOWN).count(),
        1,
        "the SIGINT stop was clean"
    );
    assert_eq!(
        Stack::count(&stack.db, KEPT),
        3,
        "the conversion kept the counts"
    );
    let converted = stack.new_backup(&before, "uncoordinated");
    let restored = stack.restore(&converted, "restored-converted.db");
    assert_eq!(Stack::count(&restored, KEPT), 3);
    t.announce(&torrent(PROBE), 2, "started").unwrap();

    // 4. No options again, under a paced load: online, Torrust untouched.
    let load = Load::start(stack.config.http, Duration::from_millis(5));
    std::thread::sleep(Duration::from_millis(500));
    let before = published(&stack.backups);
    let started = Instant::now();
    let (code, log) = stack.fallback(&[], Some("INT"));
    let ended = Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    let done = load.finish();
    assert_eq!(code, Some(0), "{log}");
    assert_has(
        &log,
        &[
            "Running the online backup (the tracker keeps serving)",
            "=== Online backup completed successfully",
            "(the tracker was not stopped)",
        ],
    );
    assert_lacks(
        &log,
        &[
            "online backup refused",
            "falling back",
            "Stopping tracker services",
            "Starting tracker services",
        ],
    );
    assert_eq!(stack.tracker_pid(), third, "Torrust was restarted");
    let online = stack.new_backup(&before, "online");
    let got = file_counts(&stack.restore(&online, "restored-online.db"));
    let lower = counts_where(&done, |c| c.answered < started);
    let upper = counts_where(&done, |c| c.sent < ended);
    for i in 0..TORRENTS {
        assert!(
            lower[i] <= got[i] && got[i] <= upper[i],
            "torrent {i}: {} in the backup, outside [{}, {}] (acknowledged before the run, sent before its end)",
            got[i],
            lower[i],
            upper[i]
        );
    }
    assert!(
        lower.iter().sum::<i64>() > 0,
        "the load made no completion before the run"
    );
    assert!(
        counts_where(&done, |c| c.sent > ended).iter().sum::<i64>() > 0,
        "the load made no completion after the run"
    );
    assert_eq!(
        file_counts(&stack.db),
        counts_where(&done, |_| true),
        "writes lost"
    );
    assert_eq!(Stack::count(&stack.db, KEPT), 3);
    let torrust_log = stack.tracker_log();
    assert_no_database_errors(&torrust_log);
    assert_eq!(
        torrust_log.matches(CLEAN_SHUTDOWN).count(),
        1,
        "Torrust stopped during the online run"
    );
}
