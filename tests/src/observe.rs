//! Watching a live process from the outside, the way an operator would with
//! `top` and `ss`: its CPU time from `/proc/<pid>/stat`, its memory from
//! `/proc/<pid>/status`, and the TCP connections opened towards one port
//! from `/proc/net/tcp`.
//!
//! Used by the tests and by the benchmarks, so both measure the same thing.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// User plus system CPU time a process has used so far.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `rest` starts at field 3.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_nanos(ticks * 1_000_000_000 / hz))
}

/// A memory figure of a live process, in KiB, from the `<field>:` line of
/// `/proc/<pid>/status` (`VmRSS`, `VmHWM`, ...); `None` when the process
/// or the line is gone.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Resident set of a live process now (`VmRSS`), in KiB.
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS")
}

/// Peak resident set of a live process (`VmHWM`), in KiB.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM")
}

/// Client-side TCP connections to `server` (IPv4) present right now, in any
/// state (including TIME_WAIT, which lingers for a minute after a close):
/// the set of their local ports.
pub fn client_ports_to(server: SocketAddr) -> BTreeSet<u16> {
    let SocketAddr::V4(v4) = server else {
        return BTreeSet::new();
    };
    // /proc/net/tcp prints the address as the in-memory u32 in hex.
    let want = format!(
        "{:08X}:{:04X}",
        u32::from_ne_bytes(v4.ip().octets()),
        v4.port()
    );
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let local = f.nth(1)?;
            let remote = f.next()?;
            (remote == want)
                .then(|| u16::from_str_radix(local.rsplit(':').next()?, 16).ok())
                .flatten()
        })
        .collect()
}

/// Counts distinct client connections to one server address by sampling
/// `/proc/net/tcp` every 100 ms in a thread. A closed connection stays
/// visible in TIME_WAIT for a minute, so none is missed; nothing else may
/// connect to that address while counting.
pub struct ConnectionCounter {
    before: BTreeSet<u16>,
    seen: Arc<Mutex<BTreeSet<u16>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ConnectionCounter {
    /// Starts counting connections to `server` opened from now on.
    pub fn start(server: SocketAddr) -> Self {
        let before = client_ports_to(server);
        let seen = Arc::new(Mutex::new(BTreeSet::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let now = client_ports_to(server);
                    seen.lock().unwrap().extend(now);
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        ConnectionCounter {
            before,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// Distinct connections opened since [`Self::start`] (seen so far).
    fn count(&self) -> usize {
        self.seen.lock().unwrap().difference(&self.before).count()
    }

    /// Stops sampling; the final count.
    pub fn finish(mut self) -> usize {
        self.halt();
        self.count()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ConnectionCounter {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_figures_of_this_process() {
        let me = std::process::id();
        let rss = super::vm_rss_kib(me).unwrap();
        let hwm = super::vm_hwm_kib(me).unwrap();
        assert!(rss > 0 && hwm >= rss, "VmRSS {rss} KiB, VmHWM {hwm} KiB");
        assert_eq!(super::status_kib(me, "NoSuchField"), None);
        assert_eq!(super::vm_rss_kib(u32::MAX), None);
    }
}
