//! The write-behind buffer between announces and the database.
//!
//! An announce with `event=completed` only bumps a counter in memory; a
//! background task flushes the accumulated increments every
//! `flush_interval`, and only while the announce gate allows database writes.
//! That keeps the database off the request path, and is what makes policy
//! `defer-writes` possible: during a maintenance window increments simply
//! accumulate here and flow to the database after resume. A failed flush
//! puts its increments back, so nothing is lost. Every increment is also
//! appended to the completion journal (`journal.rs`), so a crash loses at
//! most the last [`crate::journal::SYNC_INTERVAL`] of them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use maintenance_coordinator::AnnounceGate;

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
}

impl WriteBehind {
    /// A buffer in front of `store`, journaled at `journal_path`. Replays
    /// the increments the journal holds beyond the store's mark: they are
    /// pending again (and returned, so the caller can count them) and reach
    /// the database with the next flush.
    pub async fn open(
        store: Arc<dyn Store>,
        journal_path: PathBuf,
    ) -> Result<(Self, HashMap<InfoHash, u64>), StoreError> {
        let shown = journal_path.display().to_string();
        let journal_err =
            |e: std::io::Error| StoreError::Task(format!("completion journal {shown}: {e}"));
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
        };
        buffer.forget_retired().await;
        Ok((buffer, replayed))
    }

    /// The store behind the buffer.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Counts one completion of `hash`, to be written later.
    pub fn record_completion(&self, hash: InfoHash) {
        let mut d = self.pending.lock().unwrap();
        d.journal.append(&hash);
        *d.counts.entry(hash).or_insert(0) += 1;
        drop(d);
        self.appended.notify_one();
    }

    /// Sum of all increments waiting for a flush.
    pub fn pending_total(&self) -> u64 {
        self.pending.lock().unwrap().counts.values().sum()
    }

    /// Writes and syncs the journal records appended since the last call.
    pub async fn sync_journal(&self) {
        let Some((file, bytes)) = self.pending.lock().unwrap().journal.take_unwritten() else {
            return;
        };
        let done = tokio::task::spawn_blocking(move || journal::write_out(&file, &bytes)).await;
        let err = match done {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        let mut d = self.pending.lock().unwrap();
        tracing::warn!(error = %err, journal = %d.journal.path().display(),
            "writing the completion journal failed; it is rewritten after the next flush");
        d.journal.mark_broken();
    }

    /// Runs forever: at most [`journal::SYNC_INTERVAL`] after a completion
    /// is appended, writes and syncs the journal, whatever the window
    /// state. With no completions it waits without waking.
    pub fn spawn_journal_sync(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                // An append during the sleep or the write leaves a permit,
                // so the next round starts at once.
                self.appended.notified().await;
                tokio::time::sleep(journal::SYNC_INTERVAL).await;
                self.sync_journal().await;
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
                Ok(replaced) => d.retired.push(replaced),
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
