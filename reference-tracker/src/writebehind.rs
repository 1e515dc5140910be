//! The write-behind buffer between announces and the database.
//!
//! An announce with `event=completed` only bumps a counter in memory; a
//! background task flushes the accumulated increments every
//! `flush_interval`, and only while the announce gate allows database writes.
//! That keeps the database off the request path, and is what makes policy
//! `defer-writes` possible: during a maintenance window increments simply
//! accumulate here and flow to the database after resume. A failed flush
//! puts its increments back, so nothing is lost. Every increment is also
//! appended to the completion journal (`journal.rs`), and the announce that
//! made it waits ([`WriteBehind::acknowledged`]) until the journal writer
//! took it as far as [`Durability`] asks, so an acknowledged completion
//! survives a crash.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use maintenance_coordinator::AnnounceGate;

use crate::durability::{Durability, Progress, Receipt, SYNC_INTERVAL};
use crate::journal::{self, Journal};
use crate::peers::InfoHash;
use crate::store::{Store, StoreError};

/// The pending increments and their journal, kept under one lock so a
/// journal mark always covers exactly the increments drained with it.
struct Deferred {
    counts: HashMap<InfoHash, u64>,
    journal: Journal,
    /// Journal generations compacted away whose database marks are not
    /// deleted yet (retried after every flush until it succeeds).
    retired: Vec<u64>,
}

/// Completed-count increments not yet in the database.
pub struct WriteBehind {
    pending: Mutex<Deferred>,
    store: Arc<dyn Store>,
    flush_lock: tokio::sync::Mutex<()>,
    quiesced: AtomicBool,
    /// Signalled by every append, so the journal sync rests while nothing
    /// is acknowledged.
    appended: tokio::sync::Notify,
    /// This process's claim on the journal file, for its whole life.
    _lock: journal::JournalLock,
    /// How durable a completion is before its announce is answered.
    durability: Durability,
    /// How far the journal writer got.
    progress: Progress,
}

impl WriteBehind {
    /// A buffer in front of `store`, journaled at `journal_path`. Replays
    /// the increments the journal holds beyond the store's mark: they are
    /// pending again (and returned, so the caller can count them) and reach
    /// the database with the next flush.
    pub async fn open(
        store: Arc<dyn Store>,
        journal_path: PathBuf,
        durability: Durability,
    ) -> Result<(Self, HashMap<InfoHash, u64>), StoreError> {
        // Relative defaults resolve against the working directory: say
        // which file that is, and make sure no other process uses it.
        let journal_path = std::path::absolute(&journal_path).unwrap_or(journal_path);
        let shown = journal_path.display().to_string();
        let journal_err =
            |e: std::io::Error| StoreError::Task(format!("completion journal {shown}: {e}"));
        let lock = journal::JournalLock::acquire(&journal_path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                StoreError::Task(e.to_string())
            } else {
                journal_err(e)
            }
        })?;
        tracing::info!(journal = %shown, lock = %lock.path().display(), "completion journal locked");
        // The mark of this file's own generation: other instances sharing
        // the database keep theirs in other rows.
        let path = journal_path.clone();
        let generation = tokio::task::spawn_blocking(move || journal::generation_of(&path))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
            .map_err(journal_err)?;
        let mark = match generation {
            Some(g) => store.load_journal_mark(g).await?,
            None => None,
        };
        let (journal, counts) =
            tokio::task::spawn_blocking(move || Journal::open(journal_path, mark))
                .await
                .map_err(|e| StoreError::Task(e.to_string()))?
                .map_err(journal_err)?;
        let replayed = counts.clone();
        let buffer = WriteBehind {
            pending: Mutex::new(Deferred {
                counts,
                journal,
                // The file now holds a new generation: the old one's mark
                // is useless.
                retired: generation.into_iter().collect(),
            }),
            store,
            flush_lock: tokio::sync::Mutex::new(()),
            quiesced: AtomicBool::new(false),
            appended: tokio::sync::Notify::new(),
            _lock: lock,
            durability,
            progress: Progress::default(),
        };
        buffer.forget_retired().await;
        Ok((buffer, replayed))
    }

    /// The store behind the buffer.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Counts one completion of `hash`, to be written later. Answer the
    /// announce only after [`WriteBehind::acknowledged`] of the receipt.
    pub fn record_completion(&self, hash: InfoHash) -> Receipt {
        let mut d = self.pending.lock().unwrap();
        let at = d.journal.append(&hash);
        *d.counts.entry(hash).or_insert(0) += 1;
        drop(d);
        self.appended.notify_one();
        Receipt(at)
    }

    /// Returns once the completion behind `receipt` is as durable as the
    /// configured [`Durability`] asks (at once for `interval`).
    pub async fn acknowledged(&self, receipt: Receipt) {
        self.progress.wait(self.durability, receipt).await;
    }

    /// The configured durability.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Sum of all increments waiting for a flush.
    pub fn pending_total(&self) -> u64 {
        self.pending.lock().unwrap().counts.values().sum()
    }

    /// Writes the journal records appended since the last call in one
    /// go, and syncs them when `sync`. Returns the file and the position
    /// written up to, or `None` when there was nothing to write.
    ///
    /// A failed write still releases the announces waiting for it (they
    /// are answered; their counts are in memory and reach the journal
    /// again with the compaction after the next flush), with a warning.
    pub async fn sync_journal(&self, sync: bool) -> Option<(Arc<std::fs::File>, u64)> {
        let (file, bytes, upto) = self.pending.lock().unwrap().journal.take_unwritten()?;
        let target = file.clone();
        let done =
            tokio::task::spawn_blocking(move || journal::write_out(&target, &bytes, sync)).await;
        let err = match done {
            Ok(Ok(())) => {
                if sync {
                    self.progress.synced(upto);
                } else {
                    self.progress.written(upto);
                }
                return Some((file, upto));
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        let mut d = self.pending.lock().unwrap();
        tracing::warn!(error = %err, journal = %d.journal.path().display(),
            "writing the completion journal failed; it is rewritten after the next flush");
        d.journal.mark_broken();
        drop(d);
        self.progress.synced(upto);
        None
    }

    /// `fdatasync`s `file`, written up to position `upto`.
    async fn sync_written(&self, file: Arc<std::fs::File>, upto: u64) {
        #[cfg(test)]
        stall::wait().await;
        match tokio::task::spawn_blocking(move || file.sync_data()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "syncing the completion journal failed"),
            Err(e) => tracing::warn!(error = %e, "syncing the completion journal failed"),
        }
        self.progress.synced(upto);
    }

    /// Runs forever: the journal writer. With no completions it waits
    /// without waking.
    ///
    /// - `write`: every append wakes it; it writes everything appended
    ///   meanwhile in one `write(2)` (group commit), releases those
    ///   announces, and `fdatasync`s within [`SYNC_INTERVAL`] of the first
    ///   unsynced write.
    /// - `fsync`: the same, with the `fdatasync` before the release; appends
    ///   arriving during one sync form the next group.
    /// - `interval`: [`SYNC_INTERVAL`] after an append, writes and syncs
    ///   (nobody waits for it).
    pub fn spawn_journal_sync(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            match self.durability {
                Durability::Interval => loop {
                    // An append during the sleep or the write leaves a
                    // permit, so the next round starts at once.
                    self.appended.notified().await;
                    tokio::time::sleep(SYNC_INTERVAL).await;
                    self.sync_journal(true).await;
                },
                Durability::Fsync => loop {
                    self.appended.notified().await;
                    if let Some((file, upto)) = self.sync_journal(false).await {
                        self.sync_written(file, upto).await;
                    }
                },
                Durability::Write => {
                    // Written but not yet synced: the file, up to where,
                    // and when the sync is due.
                    let mut unsynced: Option<(Arc<std::fs::File>, u64, tokio::time::Instant)> =
                        None;
                    loop {
                        match &unsynced {
                            None => self.appended.notified().await,
                            Some((_, _, due)) => {
                                let due = *due;
                                tokio::select! {
                                    _ = self.appended.notified() => {}
                                    _ = tokio::time::sleep_until(due) => {}
                                }
                            }
                        }
                        if let Some((file, upto)) = self.sync_journal(false).await {
                            let due = match unsynced.take() {
                                Some((_, _, due)) => due,
                                None => tokio::time::Instant::now() + SYNC_INTERVAL,
                            };
                            unsynced = Some((file, upto, due));
                        }
                        let due_now = unsynced
                            .as_ref()
                            .is_some_and(|(_, _, due)| *due <= tokio::time::Instant::now());
                        if due_now {
                            let (file, upto, _) = unsynced.take().unwrap();
                            self.sync_written(file, upto).await;
                        }
                    }
                }
            }
        })
    }

    /// True between [`WriteBehind::quiesce`] and [`WriteBehind::resume`].
    pub fn is_quiesced(&self) -> bool {
        self.quiesced.load(Ordering::SeqCst)
    }

    /// Writes every pending increment in one transaction. Returns how many
    /// completions were written. Does nothing while quiesced.
    pub async fn flush(&self) -> Result<u64, StoreError> {
        let _serial = self.flush_lock.lock().await;
        if self.is_quiesced() {
            return Ok(0);
        }
        self.flush_locked().await
    }

    async fn flush_locked(&self) -> Result<u64, StoreError> {
        let (mut batch, mark): (Vec<(InfoHash, u64)>, _) = {
            let mut d = self.pending.lock().unwrap();
            (d.counts.drain().collect(), d.journal.mark())
        };
        // One lock order for every writer: several tracker instances on one
        // database flush the same rows, and transactions that lock them in
        // different orders deadlock (MariaDB 1213, PostgreSQL 40P01).
        batch.sort_unstable_by_key(|(hash, _)| *hash);
        if batch.is_empty() {
            // Nothing pending means every journal record is in the database
            // (a shutdown's last flush lands here): leave an empty journal.
            self.compact_if_due();
            self.forget_retired().await;
            return Ok(0);
        }
        let total = batch.iter().map(|(_, n)| n).sum();
        if let Err(e) = self.store.add_completed(&batch, mark).await {
            let mut d = self.pending.lock().unwrap();
            for (hash, n) in batch {
                *d.counts.entry(hash).or_insert(0) += n;
            }
            return Err(e);
        }
        // Everything up to `mark` is in the database.
        self.compact_if_due();
        self.forget_retired().await;
        Ok(total)
    }

    /// Starts a new journal generation holding only the pending increments,
    /// when due. Called only after a successful flush (or with nothing
    /// pending), so every record not in the pending counts is in the
    /// database. The replaced generation joins the retired ones.
    fn compact_if_due(&self) {
        let mut d = self.pending.lock().unwrap();
        let d = &mut *d;
        if d.journal.compaction_due(d.counts.is_empty()) {
            match d.journal.compact(&d.counts) {
                Ok(replaced) => {
                    d.retired.push(replaced);
                    // Every record appended so far is in the database or
                    // in the new, synced generation.
                    self.progress.synced(d.journal.appended());
                }
                Err(e) => {
                    tracing::warn!(error = %e, journal = %d.journal.path().display(),
                    "compacting the completion journal failed; it keeps growing until it succeeds")
                }
            }
        }
    }

    /// Deletes the database marks of retired journal generations. Only
    /// after the compaction that retired them is on disk: until then a
    /// crash finds the old file and needs its mark. A failure keeps them
    /// for the next flush (a crash meanwhile leaves a stale row, which the
    /// start-up sweep deletes after [`crate::store::STALE_MARK_AGE`]).
    async fn forget_retired(&self) {
        let gens = self.pending.lock().unwrap().retired.clone();
        if gens.is_empty() {
            return;
        }
        match self.store.forget_journal_marks(&gens).await {
            Ok(()) => self
                .pending
                .lock()
                .unwrap()
                .retired
                .retain(|g| !gens.contains(g)),
            Err(e) => tracing::warn!(error = %e,
                "deleting the journal marks of compacted generations failed; retried after the next flush"),
        }
    }

    /// The quiesce step: flush everything, make the files consistent, close
    /// the database. Nothing touches the database again until
    /// [`WriteBehind::resume`].
    pub async fn quiesce(&self) -> Result<u64, StoreError> {
        let _serial = self.flush_lock.lock().await;
        if self.is_quiesced() {
            return Ok(0);
        }
        let written = self.flush_locked().await?;
        self.store.quiesce().await?;
        self.quiesced.store(true, Ordering::SeqCst);
        Ok(written)
    }

    /// Reopens the database; deferred increments are written by the next
    /// flush.
    pub async fn resume(&self) -> Result<(), StoreError> {
        let _serial = self.flush_lock.lock().await;
        self.store.resume().await?;
        self.quiesced.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Stops the task returned by [`WriteBehind::spawn_flusher`] between two
    /// flushes, never inside one: a flush cancelled after it drained its
    /// batch would drop those increments from memory (they would come back
    /// only from the journal at the next start).
    pub async fn stop_flusher(&self, flusher: tokio::task::JoinHandle<()>) {
        let _serial = self.flush_lock.lock().await;
        flusher.abort();
        // Cancelled at its next poll; it cannot be inside a flush while we
        // hold the lock.
        let _ = flusher.await;
    }

    /// Runs forever: every `every`, flushes if the gate allows writes (the
    /// write pass is held for the whole database write, so a window opening
    /// meanwhile waits for it to finish).
    pub fn spawn_flusher(
        self: Arc<Self>,
        gate: AnnounceGate,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if self.pending_total() == 0 {
                    continue;
                }
                let Some(_write) = gate.begin_write() else {
                    continue;
                };
                // Writes are allowed but the store is still closed: the
                // window ended without a successful resume (say the
                // database was down). Keep trying to reopen.
                if self.is_quiesced() {
                    if let Err(e) = self.resume().await {
                        tracing::warn!(error = %e, "reopening the database failed; counts stay buffered");
                        continue;
                    }
                }
                match self.flush().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(completions = n, "flushed completed counts"),
                    Err(e) => {
                        tracing::warn!(error = %e, "flush failed; counts kept for the next try")
                    }
                }
            }
        })
    }
}

/// The simulated crash point between a journal write and its
/// `fdatasync`: while stalled, the writer has handed its bytes to the
/// kernel (any process reading the file sees them) but the disk may not
/// hold them, which is where a power cut would strike.
#[cfg(test)]
mod stall {
    use std::sync::atomic::{AtomicBool, Ordering};

    pub static STALLED: AtomicBool = AtomicBool::new(false);

    pub async fn wait() {
        while STALLED.load(Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use super::*;
    use crate::config::JournalMode;
    use crate::store::sqlite::SqliteStore;

    async fn buffer(dir: &std::path::Path, durability: Durability) -> Arc<WriteBehind> {
        let store = SqliteStore::open(dir.join("t.db"), JournalMode::Wal)
            .await
            .unwrap();
        let (buffer, _) = WriteBehind::open(Arc::new(store), dir.join("t.journal"), durability)
            .await
            .unwrap();
        let buffer = Arc::new(buffer);
        buffer.clone().spawn_journal_sync();
        buffer
    }

    /// Records of `hash` in the journal file as any other process sees it
    /// (the page cache, not necessarily the disk).
    fn records_in_file(dir: &std::path::Path, hash: &InfoHash) -> u64 {
        journal::unapplied(&dir.join("t.journal"), None)
            .unwrap()
            .get(hash)
            .copied()
            .unwrap_or(0)
    }

    /// A crash simulated between the write and the fsync: with `write`
    /// the announce is answered while the record is only in the kernel
    /// (it survives the process, not a power cut); with `fsync` it is not
    /// answered until the record is on disk; `interval` answers before the
    /// record is even written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_each_durability_waits_for() {
        let hash = InfoHash([7; 20]);
        let patience = Duration::from_millis(400);
        stall::STALLED.store(true, Ordering::SeqCst);

        let dir = tempfile::tempdir().unwrap();
        let b = buffer(dir.path(), Durability::Interval).await;
        let r = b.record_completion(hash);
        tokio::time::timeout(Duration::from_millis(5), b.acknowledged(r))
            .await
            .expect("interval answers at once");
        assert_eq!(records_in_file(dir.path(), &hash), 0, "not written yet");

        let dir = tempfile::tempdir().unwrap();
        let b = buffer(dir.path(), Durability::Write).await;
        let r = b.record_completion(hash);
        tokio::time::timeout(patience, b.acknowledged(r))
            .await
            .expect("write answers once written, without the sync");
        assert_eq!(records_in_file(dir.path(), &hash), 1);

        let dir = tempfile::tempdir().unwrap();
        let b = buffer(dir.path(), Durability::Fsync).await;
        let r = b.record_completion(hash);
        let waiting = tokio::spawn({
            let b = b.clone();
            async move { b.acknowledged(r).await }
        });
        tokio::time::sleep(patience).await;
        assert_eq!(records_in_file(dir.path(), &hash), 1, "written ...");
        assert!(
            !waiting.is_finished(),
            "... but not answered before the sync"
        );
        stall::STALLED.store(false, Ordering::SeqCst);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("answered after the sync")
            .unwrap();
    }

    /// Announces in flight share one write: many receipts, few writes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_completions_are_written_in_groups() {
        let dir = tempfile::tempdir().unwrap();
        let b = buffer(dir.path(), Durability::Write).await;
        let hash = InfoHash([9; 20]);
        let receipts: Vec<Receipt> = (0..500).map(|_| b.record_completion(hash)).collect();
        for r in receipts {
            tokio::time::timeout(Duration::from_secs(5), b.acknowledged(r))
                .await
                .unwrap();
        }
        assert_eq!(records_in_file(dir.path(), &hash), 500);
    }
}
