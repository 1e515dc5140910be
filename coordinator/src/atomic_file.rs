//! Atomic replacement of a small file: the one way the coordinator writes
//! anything to disk (the readiness file, the last completed window).
//!
//! The new content goes to a temp file in the same folder, created
//! exclusively under an unpredictable name (no other process can have
//! prepared or be sharing it), is fsynced, renamed over the target, and the
//! folder is fsynced so the rename survives a crash. Readers see the old
//! file or the new one, never a mix.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Replaces `path` with `body`, creating its folder if needed. The file
/// is readable by all (mode 0644), like the file it replaces: the sidecar
/// reading it may run as another user.
pub(crate) fn replace(path: &Path, body: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} has no file name", path.display()),
            )
        })?
        .to_string_lossy()
        .into_owned();
    // A random name created with O_CREAT|O_EXCL: nothing planted in the
    // folder (a symlink, a file) is followed or overwritten.
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{name}.tmp-"))
        .tempfile_in(&dir)?;
    temp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o644))?;
    temp.write_all(body)?;
    temp.as_file().sync_all()?;
    // On failure the temp file is removed when the error drops it.
    temp.persist(path).map_err(|e| e.error)?;
    File::open(&dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/f.json");
        replace(&path, b"one").unwrap();
        replace(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["f.json".to_string()]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        replace(&path, b"old").unwrap();
        // A folder where the file should be: the rename fails, nothing is lost.
        let blocked = dir.path().join("d");
        fs::create_dir_all(blocked.join("x")).unwrap();
        assert!(replace(&blocked, b"new").is_err());
        assert!(
            blocked.join("x").is_dir(),
            "the replaced target must be untouched"
        );
        // No temp file is left beside the two entries that were there.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
        assert_eq!(fs::read(&path).unwrap(), b"old");
    }
}
