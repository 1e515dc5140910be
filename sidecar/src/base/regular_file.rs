//! Opening a file that must be a plain regular file: a backup artifact, the
//! readiness file.
//!
//! Such a path can be replaced by whoever may write its folder. A symbolic
//! link there would make a command read (and report the size of) a file
//! outside the folder; a FIFO would block the opener for good; a device
//! could be anything. So the file is opened without following a symlink at
//! its last component (`O_NOFOLLOW`) and without blocking (`O_NONBLOCK`,
//! which a FIFO honours and a regular file ignores), and refused unless
//! the opened descriptor is a regular file.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Opens `path` for reading when it is a regular file; anything else (a
/// symbolic link, a FIFO, a socket, a device, a folder) is an error of
/// kind `InvalidInput` that names the path and what it is.
pub fn open(path: &Path) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => not_regular(path, "a symbolic link"),
            _ => io::Error::new(e.kind(), format!("open {}: {e}", path.display())),
        })?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        let what = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_dir() {
            "a folder"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_block_device() || kind.is_char_device() {
            "a device"
        } else {
            "not a plain file"
        };
        return Err(not_regular(path, what));
    }
    // Reads of a regular file never block anyway; clear the flag so the
    // descriptor behaves like any other.
    // SAFETY: fcntl on a descriptor this function owns.
    unsafe {
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
    }
    Ok(file)
}

fn not_regular(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} is {what}, not a regular file; refusing to read it",
            path.display()
        ),
    )
}

/// Reads the regular file `path` whole when it holds at most `limit`
/// bytes ([`open`]'s checks first); a larger file is an `InvalidData`
/// error naming its size and the limit, and is never read into memory.
pub fn read_small(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let file = open(path)?;
    let too_big = |size: u64| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is {size} bytes, more than the {limit} bytes allowed; refusing to read it",
                path.display()
            ),
        )
    };
    let size = file.metadata()?.len();
    if size > limit {
        return Err(too_big(size));
    }
    let mut buf = Vec::with_capacity(size as usize);
    // The file may grow between the size check and the read.
    file.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(too_big(buf.len() as u64));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_open() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a");
        std::fs::write(&file, b"abc").unwrap();
        assert_eq!(read_small(&file, 3).unwrap(), b"abc");
        let err = read_small(&file, 2).unwrap_err().to_string();
        assert!(err.contains("3 bytes, more than the 2"), "{err}");

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let err = open(&link).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("a symbolic link"), "{err}");

        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Without O_NONBLOCK this open would wait for a writer forever.
        let err = open(&fifo).unwrap_err();
        assert!(err.to_string().contains("a FIFO"), "{err}");

        let err = open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("a folder"), "{err}");
        let err = open(&dir.path().join("missing")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
