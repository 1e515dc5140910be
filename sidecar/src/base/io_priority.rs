//! The I/O priority of an online backup.
//!
//! An online backup reads the whole database while the tracker serves from
//! the same disk, and every announce that writes waits for the tracker's
//! fsync. Reads queued ahead of that fsync are what stalled an unmodified
//! Torrust's announces (BENCHMARKS.md section 18). The Linux I/O
//! schedulers that honour priorities (mq-deadline since 5.14, BFQ) serve
//! the idle class only when nothing else waits, with an aging limit
//! (mq-deadline: 10 s) so it is never starved for good. Linux I/O priority
//! belongs to a thread and is inherited by the threads it starts, so it is
//! set once, before the runtime and the backup's threads exist.

use std::io;

/// `ioprio_set`'s "which": one thread, 0 meaning the caller.
const IOPRIO_WHO_PROCESS: libc::c_int = 1;
/// The class lives above the 13 bits of per-class data.
const IOPRIO_CLASS_SHIFT: u32 = 13;
const IOPRIO_CLASS_IDLE: libc::c_int = 3;

/// Puts the calling thread, and every thread it starts from now on, in
/// the idle I/O class.
///
/// ```
/// # // Lowering one's own priority needs no privilege.
/// maintenance_sidecar::base::io_priority::set_idle().unwrap();
/// assert_eq!(maintenance_sidecar::base::io_priority::class().unwrap(), 3);
/// ```
pub fn set_idle() -> io::Result<()> {
    let value = IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT;
    // SAFETY: a plain system call with integer arguments.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The calling thread's I/O class (0 none set, 1 real-time, 2 best-effort,
/// 3 idle).
pub fn class() -> io::Result<i32> {
    // SAFETY: as above.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok((rc as i32) >> IOPRIO_CLASS_SHIFT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_started_after_it_inherit_the_idle_class() {
        // On a thread of its own, so the test runner's threads keep theirs.
        std::thread::spawn(|| {
            assert_ne!(class().unwrap(), IOPRIO_CLASS_IDLE);
            set_idle().unwrap();
            assert_eq!(class().unwrap(), IOPRIO_CLASS_IDLE);
            let child = std::thread::spawn(class).join().unwrap().unwrap();
            assert_eq!(child, IOPRIO_CLASS_IDLE);
        })
        .join()
        .unwrap();
    }
}
