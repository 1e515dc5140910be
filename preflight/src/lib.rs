//! Start-up checks of the files and folders a process needs.
//!
//! Containers turn set-up mistakes into crash loops with terse errors: a
//! secret file that was missing becomes an empty directory (the engine
//! creates it), a folder owned by the wrong uid gives "unable to open
//! database file", an unwritable backup folder shows up only at the first
//! window, hours later. The tracker and the sidecar run these checks before
//! they start, so each mistake stops start-up at once with one message that
//! names the path, what is wrong (with the owner and mode found and the uid
//! the process runs as) and the fix.
//!
//! The checks do what the process will do: open the file for reading,
//! create (and remove) a file in the folder, so a read-only mount, ACLs or
//! a missing capability are caught as well as plain permissions.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// What the fix messages point set-up at. Appears in every message.
pub const SETUP_HINT: &str = "with the compose stack, `compose/init.sh` sets this up";

/// A path that cannot be used, with a message naming the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathProblem {
    message: String,
}

impl PathProblem {
    fn new(what: &str, path: &Path, problem: impl fmt::Display, fix: impl fmt::Display) -> Self {
        PathProblem {
            message: format!(
                "{what} {}: {problem}; fix: {fix} ({SETUP_HINT})",
                path.display()
            ),
        }
    }

    /// The whole message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PathProblem {}

/// The effective uid and gid of this process.
fn me() -> (u32, u32) {
    // SAFETY: geteuid and getegid cannot fail and touch no memory.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

fn owner(meta: &fs::Metadata) -> String {
    format!(
        "owned by {}:{} with mode {:o}",
        meta.uid(),
        meta.gid(),
        meta.permissions().mode() & 0o7777
    )
}

/// Checks that `path` is a regular file this process can read.
///
/// `what` names the setting, e.g. `maintenance.token_file`.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let problem = maintenance_preflight::readable_file("token_file", dir.path()).unwrap_err();
/// assert!(problem.message().contains("is a directory"));
/// ```
pub fn readable_file(what: &str, path: &Path) -> Result<(), PathProblem> {
    let meta = inspect(what, path, "create the file (or correct the path)")?;
    if meta.is_dir() {
        return Err(PathProblem::new(
            what,
            path,
            "is a directory, not a file (a container engine creates an empty directory when the file it should mount is missing)",
            "remove the directory and create the file",
        ));
    }
    match File::open(path) {
        Ok(_) => Ok(()),
        Err(e) => {
            let (uid, gid) = me();
            Err(PathProblem::new(
                what,
                path,
                format!(
                    "cannot be read by uid {uid} (gid {gid}), the user this runs as: {} ({e})",
                    owner(&meta)
                ),
                format!("chown {uid}:{gid} {p} && chmod 600 {p}", p = path.display()),
            ))
        }
    }
}

/// Checks that `path` is a folder in which this process can create files.
///
/// Creates and removes one probe file with an unpredictable name.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// maintenance_preflight::writable_dir("backup dir", dir.path()).unwrap();
/// ```
pub fn writable_dir(what: &str, path: &Path) -> Result<(), PathProblem> {
    let meta = inspect(
        what,
        path,
        "create the folder, owned by the user this runs as",
    )?;
    if !meta.is_dir() {
        return Err(PathProblem::new(
            what,
            path,
            "is not a folder",
            "replace it with a folder",
        ));
    }
    let probe = path.join(format!(".write-probe-{}-{}", std::process::id(), nonce()));
    match OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => {
            let (uid, gid) = me();
            let fix = if e.raw_os_error() == Some(libc::EROFS) {
                "mount it read-write".to_owned()
            } else {
                format!("chown -R {uid}:{gid} {}", path.display())
            };
            Err(PathProblem::new(
                what,
                path,
                format!(
                    "is not writable by uid {uid} (gid {gid}), the user this runs as: {} ({e})",
                    owner(&meta)
                ),
                fix,
            ))
        }
    }
}

/// The metadata of `path`, or the problem: missing (`create` says how to
/// fix it) or not reachable.
fn inspect(what: &str, path: &Path, create: &str) -> Result<fs::Metadata, PathProblem> {
    fs::metadata(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            PathProblem::new(what, path, "does not exist", create)
        } else {
            PathProblem::new(
                what,
                path,
                format!("cannot be inspected ({e})"),
                "make its parent folders searchable by this user",
            )
        }
    })
}

/// A value that differs between calls and processes, for probe names.
fn nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_and_folder_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let m = readable_file("token_file", &missing)
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("token_file") && m.contains("does not exist"),
            "{m}"
        );
        assert!(m.contains(&missing.display().to_string()), "{m}");
        assert!(m.contains("compose/init.sh"), "{m}");
        let m = writable_dir("backup dir", &missing)
            .unwrap_err()
            .to_string();
        assert!(m.contains("does not exist"), "{m}");
    }

    #[test]
    fn a_directory_in_place_of_the_file_is_explained() {
        let dir = tempfile::tempdir().unwrap();
        let m = readable_file("token_file", dir.path())
            .unwrap_err()
            .to_string();
        assert!(m.contains("is a directory"), "{m}");
        assert!(m.contains("remove the directory"), "{m}");
    }

    #[test]
    fn a_file_in_place_of_the_folder_is_explained() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        fs::write(&f, "x").unwrap();
        let m = writable_dir("backup dir", &f).unwrap_err().to_string();
        assert!(m.contains("is not a folder"), "{m}");
        readable_file("token_file", &f).unwrap();
    }

    #[test]
    fn the_probe_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        writable_dir("backup dir", dir.path()).unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    /// Permission checks need a non-root process: root reads and writes
    /// everything. Run as root, the test drops to an unprivileged uid in a
    /// child process via `setpriv`, when available.
    #[test]
    fn wrong_owner_names_owner_mode_and_fix() {
        let (uid, _) = me();
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        fs::write(&token, "secret").unwrap();
        fs::set_permissions(&token, fs::Permissions::from_mode(0o600)).unwrap();
        let data = dir.path().join("data");
        fs::create_dir(&data).unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
        if uid != 0 {
            // Owned by us: fine. Nothing else to check without a second user.
            readable_file("token_file", &token).unwrap();
            writable_dir("data", &data).unwrap();
            return;
        }
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        // As uid 4242 the root-owned 0600 token and 0755 folder must fail.
        let me_exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=4242", "--regid=4242", "--clear-groups"])
            .arg(&me_exe)
            .args(["--exact", "tests::child_reports", "--nocapture"])
            .env("PREFLIGHT_CHILD_TOKEN", &token)
            .env("PREFLIGHT_CHILD_DATA", &data)
            .output();
        let Ok(out) = out else {
            eprintln!("setpriv not available; skipping the unprivileged half");
            return;
        };
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains("CHILD-OK"),
            "child did not run its checks: {text}"
        );
    }

    /// The unprivileged half of the test above (does nothing on its own).
    #[test]
    fn child_reports() {
        let (Some(token), Some(data)) = (
            std::env::var_os("PREFLIGHT_CHILD_TOKEN"),
            std::env::var_os("PREFLIGHT_CHILD_DATA"),
        ) else {
            return;
        };
        let m = readable_file("token_file", Path::new(&token))
            .unwrap_err()
            .to_string();
        assert!(m.contains("cannot be read by uid 4242"), "{m}");
        assert!(m.contains("owned by 0:0 with mode 600"), "{m}");
        assert!(m.contains("chown 4242:4242"), "{m}");
        let m = writable_dir("data folder", Path::new(&data))
            .unwrap_err()
            .to_string();
        assert!(m.contains("not writable by uid 4242"), "{m}");
        assert!(m.contains("owned by 0:0 with mode 755"), "{m}");
        assert!(m.contains("chown -R 4242:4242"), "{m}");
        println!("CHILD-OK");
    }
}
