//! The announce gate: the only part of the coordinator on the tracker's hot
//! path.
//!
//! Two turnstiles, one for announces and one for database writes. Each is a
//! single atomic word holding a "closed" bit and the number of requests
//! inside, so admitting a request while idle costs one uncontended atomic
//! add (and one subtract when its pass drops). Closing sets the bit; the
//! coordinator then waits for the count to reach zero, which is how
//! draining knows that every request admitted before the close has
//! finished.
//!
//! Policy `reject` closes both turnstiles; policy `defer-writes` closes only
//! the write turnstile, so announces keep being answered from memory.

use crate::machine::Now;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use maintenance_proto::AnnouncePolicy;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::Notify;

const CLOSED: usize = 1 << (usize::BITS - 1);

/// A counter of requests inside, with a closed bit.
#[derive(Default)]
struct Turnstile {
    word: AtomicUsize,
    emptied: Notify,
}

impl Turnstile {
    fn enter(&self) -> bool {
        let before = self.word.fetch_add(1, Ordering::SeqCst);
        if before & CLOSED == 0 {
            true
        } else {
            self.leave();
            false
        }
    }

    fn leave(&self) {
        let before = self.word.fetch_sub(1, Ordering::SeqCst);
        if before == CLOSED | 1 {
            self.emptied.notify_waiters();
        }
    }

    fn close(&self) {
        self.word.fetch_or(CLOSED, Ordering::SeqCst);
    }

    fn open(&self) {
        self.word.fetch_and(!CLOSED, Ordering::SeqCst);
    }

    fn is_closed(&self) -> bool {
        self.word.load(Ordering::SeqCst) & CLOSED != 0
    }

    fn inside(&self) -> usize {
        self.word.load(Ordering::SeqCst) & !CLOSED
    }

    /// Waits until nobody is inside. An open turnstile has nothing to
    /// drain (and would never signal), so it returns at once.
    async fn wait_empty(&self) {
        loop {
            let notified = self.emptied.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.is_closed() || self.inside() == 0 {
                return;
            }
            notified.await;
        }
    }
}

#[derive(Default)]
struct GateInner {
    announces: Turnstile,
    writes: Turnstile,
    /// When the running window is expected to end, in milliseconds of the
    /// monotonic clock ([`Now::mono`]): a refusal's retry time does not
    /// follow a stepped wall clock.
    reopen_mono_ms: AtomicI64,
    refused: Counter,
    deferred: Counter,
}

/// Cheap, clonable handle the tracker consults on every announce and before
/// every database write.
///
/// ```
/// use maintenance_coordinator::AnnounceGate;
/// let gate = AnnounceGate::always_open();
/// let pass = gate.admit_announce().expect("an idle gate admits");
/// drop(pass);
/// assert!(gate.begin_write().is_some());
/// ```
#[derive(Clone, Default)]
pub struct AnnounceGate {
    inner: Arc<GateInner>,
}

/// Held while an admitted announce is being handled; dropping it lets a
/// draining window proceed.
#[must_use = "the request counts as in flight only while the pass is held"]
pub struct AnnouncePass<'a> {
    turnstile: &'a Turnstile,
}

impl Drop for AnnouncePass<'_> {
    fn drop(&mut self) {
        self.turnstile.leave();
    }
}

/// Held while the tracker writes to its database.
#[must_use = "the write counts as in flight only while the pass is held"]
pub struct WritePass<'a> {
    turnstile: &'a Turnstile,
}

impl Drop for WritePass<'_> {
    fn drop(&mut self) {
        self.turnstile.leave();
    }
}

/// Why an announce was refused and when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// Time until the window is expected to end, plus a little jitter so
    /// clients do not return all at once. Never less than one second.
    pub retry_after: Duration,
}

impl AnnounceGate {
    /// A gate that is open and stays open until a coordinator closes it:
    /// what a tracker uses when maintenance is disabled.
    pub fn always_open() -> Self {
        Self::default()
    }

    /// Admits an announce, or refuses it while a `reject` window runs.
    ///
    /// ```
    /// use maintenance_coordinator::AnnounceGate;
    /// let gate = AnnounceGate::always_open();
    /// match gate.admit_announce() {
    ///     Ok(_pass) => { /* answer the announce while holding the pass */ }
    ///     Err(refusal) => println!("come back in {:?}", refusal.retry_after),
    /// };
    /// ```
    pub fn admit_announce(&self) -> Result<AnnouncePass<'_>, Refusal> {
        let inner = &*self.inner;
        if inner.announces.enter() {
            Ok(AnnouncePass {
                turnstile: &inner.announces,
            })
        } else {
            inner.refused.inc();
            Err(Refusal {
                retry_after: self.retry_after(),
            })
        }
    }

    /// Allows a database write, or returns `None` while writes are paused;
    /// the tracker then keeps the change buffered and retries later.
    pub fn begin_write(&self) -> Option<WritePass<'_>> {
        let inner = &*self.inner;
        if inner.writes.enter() {
            Some(WritePass {
                turnstile: &inner.writes,
            })
        } else {
            inner.deferred.inc();
            None
        }
    }

    /// True while database writes are paused (any policy).
    pub fn writes_paused(&self) -> bool {
        self.inner.writes.is_closed()
    }

    /// Announces refused since start-up.
    pub fn refused_total(&self) -> u64 {
        self.inner.refused.get()
    }

    /// Writes deferred since start-up.
    pub fn deferred_total(&self) -> u64 {
        self.inner.deferred.get()
    }

    fn retry_after(&self) -> Duration {
        let now_ms = Now::read().mono.as_millis() as i64;
        retry_in(self.inner.reopen_mono_ms.load(Ordering::Relaxed), now_ms)
    }

    // ---- coordinator side -------------------------------------------------

    /// The refusal and deferral counters, for the metrics registry.
    pub(crate) fn counters(&self) -> (Counter, Counter) {
        (self.inner.refused.clone(), self.inner.deferred.clone())
    }

    /// Closes the gate for `policy` until about `reopen_at_ms`.
    pub(crate) fn close(&self, policy: AnnouncePolicy, reopen_at_ms: i64) {
        let now = Now::read();
        let remaining_ms = (reopen_at_ms - now.wall.timestamp_millis()).max(0);
        self.inner.reopen_mono_ms.store(
            now.mono.as_millis() as i64 + remaining_ms,
            Ordering::Relaxed,
        );
        self.inner.writes.close();
        if policy == AnnouncePolicy::Reject {
            self.inner.announces.close();
        }
    }

    /// Waits until every pass admitted before the close has dropped.
    pub(crate) async fn drained(&self) {
        self.inner.announces.wait_empty().await;
        self.inner.writes.wait_empty().await;
    }

    /// Requests still in flight (announces, writes).
    pub(crate) fn in_flight(&self) -> (usize, usize) {
        (self.inner.announces.inside(), self.inner.writes.inside())
    }

    /// Announces flow again; writes stay paused until the resume hook ran.
    pub(crate) fn open_announces(&self) {
        self.inner.announces.open();
    }

    /// Database writes flow again.
    pub(crate) fn open_writes(&self) {
        self.inner.writes.open();
    }

    /// True while announces are refused.
    pub fn announces_closed(&self) -> bool {
        self.inner.announces.is_closed()
    }
}

/// The retry time told to a refused client at monotonic `now_ms` when the
/// window should end at monotonic `reopen_ms`: the time left, plus up to
/// 10 % (at most 15 s) of jitter from the clock's low bits, at least 1 s.
fn retry_in(reopen_ms: i64, now_ms: i64) -> Duration {
    let remaining_ms = (reopen_ms - now_ms).max(0) as u64;
    let spread_ms = (remaining_ms / 10).clamp(250, 15_000);
    let jitter_ms = (now_ms as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) % spread_ms;
    Duration::from_millis((remaining_ms + jitter_ms).max(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The retry time is measured on the monotonic clock from the close:
    /// whatever the wall clock does afterwards, it is the time left.
    #[test]
    fn retry_time_counts_down_on_the_monotonic_clock() {
        let r = retry_in(120_000, 0);
        assert!(
            r >= Duration::from_secs(120) && r <= Duration::from_secs(132),
            "{r:?}"
        );
        let r = retry_in(120_000, 100_000);
        assert!(
            r >= Duration::from_secs(20) && r <= Duration::from_secs(22),
            "{r:?}"
        );
        let late = retry_in(120_000, 500_000);
        assert!(
            late >= Duration::from_secs(1) && late < Duration::from_millis(1250),
            "{late:?}"
        );
        // A gate closed for two minutes tells two minutes, read at once.
        let gate = AnnounceGate::always_open();
        gate.close(
            AnnouncePolicy::Reject,
            chrono::Utc::now().timestamp_millis() + 120_000,
        );
        let told = gate.admit_announce().err().unwrap().retry_after;
        assert!(
            told >= Duration::from_secs(119) && told <= Duration::from_secs(132),
            "{told:?}"
        );
    }

    fn in_ms(ms: i64) -> i64 {
        chrono::Utc::now().timestamp_millis() + ms
    }

    #[test]
    fn reject_closes_announces_and_writes() {
        let gate = AnnounceGate::always_open();
        gate.close(AnnouncePolicy::Reject, in_ms(120_000));
        let refusal = gate.admit_announce().err().expect("closed gate refuses");
        assert!(refusal.retry_after >= Duration::from_secs(119));
        assert!(refusal.retry_after <= Duration::from_secs(120 + 13));
        assert!(gate.begin_write().is_none());
        assert_eq!(gate.refused_total(), 1);
        assert_eq!(gate.deferred_total(), 1);
        assert_eq!(gate.in_flight(), (0, 0), "refused requests leave no trace");
        gate.open_announces();
        assert!(gate.admit_announce().is_ok());
        assert!(gate.writes_paused());
        gate.open_writes();
        assert!(gate.begin_write().is_some());
    }

    #[test]
    fn defer_writes_keeps_announces_open() {
        let gate = AnnounceGate::always_open();
        gate.close(AnnouncePolicy::DeferWrites, in_ms(1000));
        assert!(gate.admit_announce().is_ok());
        assert!(gate.begin_write().is_none());
        assert!(gate.writes_paused());
    }

    #[tokio::test]
    async fn defer_writes_drain_ignores_announces_in_flight() {
        let gate = AnnounceGate::always_open();
        let _busy_announce = gate.admit_announce().unwrap();
        gate.close(AnnouncePolicy::DeferWrites, in_ms(1000));
        tokio::time::timeout(Duration::from_secs(1), gate.drained())
            .await
            .expect("announces are not drained under defer-writes");
    }

    #[test]
    fn retry_after_is_at_least_a_second() {
        let gate = AnnounceGate::always_open();
        gate.close(AnnouncePolicy::Reject, in_ms(-5000));
        assert_eq!(
            gate.admit_announce().err().unwrap().retry_after,
            Duration::from_secs(1)
        );
    }

    #[tokio::test]
    async fn drain_waits_for_passes_taken_before_the_close() {
        let gate = AnnounceGate::always_open();
        let announce = gate.admit_announce().unwrap();
        let write = gate.begin_write().unwrap();
        gate.close(AnnouncePolicy::Reject, in_ms(1000));
        assert_eq!(gate.in_flight(), (1, 1));
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.drained().await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "drain must wait for the passes");
        drop(announce);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "the write is still in flight");
        drop(write);
        tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .expect("drain finishes once passes drop")
            .unwrap();
    }

    #[tokio::test]
    async fn many_threads_never_lose_count() {
        let gate = AnnounceGate::always_open();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let gate = gate.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        let _pass = gate.admit_announce();
                    }
                })
            })
            .collect();
        gate.close(AnnouncePolicy::Reject, in_ms(1000));
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(gate.in_flight(), (0, 0));
        tokio::time::timeout(Duration::from_secs(1), gate.drained())
            .await
            .unwrap();
    }
}
