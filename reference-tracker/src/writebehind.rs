//! The write-behind buffer between announces and the database.
//!
//! An announce with `event=completed` only bumps a counter in memory; a
//! background task flushes the accumulated increments every
//! `flush_interval`, and only while the announce gate allows database writes.
//! That keeps the database off the request path, and is what makes policy
//! `defer-writes` possible: during a maintenance window increments simply
//! accumulate here and flow to the database after resume. A failed flush
//! puts its increments back, so nothing is lost.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use maintenance_coordinator::AnnounceGate;

use crate::peers::InfoHash;
use crate::store::{Store, StoreError};

/// Completed-count increments not yet in the database.
pub struct WriteBehind {
    pending: Mutex<HashMap<InfoHash, u64>>,
    store: Arc<dyn Store>,
    flush_lock: tokio::sync::Mutex<()>,
    quiesced: AtomicBool,
}

impl WriteBehind {
    /// A buffer in front of `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        WriteBehind {
            pending: Mutex::new(HashMap::new()),
            store,
            flush_lock: tokio::sync::Mutex::new(()),
            quiesced: AtomicBool::new(false),
        }
    }

    /// The store behind the buffer.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Counts one completion of `hash`, to be written later.
    pub fn record_completion(&self, hash: InfoHash) {
        *self.pending.lock().unwrap().entry(hash).or_insert(0) += 1;
    }

    /// Sum of all increments waiting for a flush.
    pub fn pending_total(&self) -> u64 {
        self.pending.lock().unwrap().values().sum()
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
        let batch: Vec<(InfoHash, u64)> = self.pending.lock().unwrap().drain().collect();
        if batch.is_empty() {
            return Ok(0);
        }
        let total = batch.iter().map(|(_, n)| n).sum();
        if let Err(e) = self.store.add_completed(&batch).await {
            let mut pending = self.pending.lock().unwrap();
            for (hash, n) in batch {
                *pending.entry(hash).or_insert(0) += n;
            }
            return Err(e);
        }
        Ok(total)
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
