//! A backup target that fills up fails cleanly: exit code 1, nothing
//! published, no staging left. Uses a 2 MiB tmpfs as the backup dir (we
//! run as root in CI); where mounting is not allowed, `RLIMIT_FSIZE` on the
//! child plays the full disk.

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use common::*;

/// A database of ~8 MiB of random (incompressible) blobs.
fn big_random_db(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE torrents (info_hash TEXT PRIMARY KEY, completed INTEGER NOT NULL);
         CREATE TABLE blobs (b BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 8000)
         INSERT INTO blobs SELECT randomblob(1024) FROM n;",
    )
    .unwrap();
}

struct Tmpfs<'a>(&'a Path);

impl Drop for Tmpfs<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

#[test]
fn full_disk_fails_cleanly_and_publishes_nothing() {
    scenario(true);
}

/// The fallback path on its own, so it is exercised even where mount works.
#[test]
fn file_size_limit_fails_cleanly_and_publishes_nothing() {
    scenario(false);
}

fn scenario(try_mount: bool) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    big_random_db(&db);
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();

    let mounted = try_mount
        && Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(&backups)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    let _guard = mounted.then(|| Tmpfs(&backups));

    let mut cmd = sidecar(None);
    cmd.env("BACKUP_DIR", &backups)
        .env("SQLITE_DATABASE_PATH", &db)
        .arg("once");
    if !mounted {
        eprintln!("mount not allowed: simulating a full disk with RLIMIT_FSIZE");
        unsafe {
            cmd.pre_exec(|| {
                // Ignore SIGXFSZ so writes fail with EFBIG instead of killing.
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let lim = libc::rlimit {
                    rlim_cur: 2 << 20,
                    rlim_max: 2 << 20,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let out = run(&mut cmd);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a full disk must fail the backup"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("No space left") || stderr.contains("too large"),
        "{stderr}"
    );
    assert_nothing_published(&backups);
}
