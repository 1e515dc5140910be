//! The SQLite store's snapshot pin on real database files: in WAL mode the
//! main file keeps every byte while writes continue after the resume, and
//! the writes are all there after the unpin (which checkpoints the WAL);
//! in rollback-journal mode the pin blocks writers until the unpin.

use std::path::Path;

use maintenance_coordinator::PinMode;
use reference_tracker::config::JournalMode;
use reference_tracker::journal::JournalMark;
use reference_tracker::peers::InfoHash;
use reference_tracker::store::sqlite::SqliteStore;
use reference_tracker::store::Store;
use sha2::{Digest, Sha256};

fn sha(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

fn hash(n: u32) -> InfoHash {
    let mut h = [0u8; 20];
    h[..4].copy_from_slice(&n.to_be_bytes());
    InfoHash(h)
}

/// The completion-journal mark every write here stores with its counts.
const MARK: JournalMark = JournalMark {
    generation: 1,
    offset: 16,
};

fn total(counts: &[(InfoHash, u64)]) -> u64 {
    counts.iter().map(|(_, n)| n).sum()
}

fn wal_len(db: &Path) -> u64 {
    std::fs::metadata(db.with_extension("db-wal"))
        .map(|m| m.len())
        .unwrap_or(0)
}

#[tokio::test]
async fn wal_pin_freezes_the_main_file_while_writes_continue() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    let store = SqliteStore::open(db.clone(), JournalMode::Wal)
        .await
        .unwrap();
    let first: Vec<_> = (0..500).map(|i| (hash(i), 1)).collect();
    store.add_completed(&first, MARK).await.unwrap();

    store.quiesce().await.unwrap();
    assert_eq!(store.pin_mode(), Some(PinMode::WritesContinue));
    let frozen = sha(&db);
    store.resume().await.unwrap();
    // Continuous writes after the resume: thousands of new rows and updates.
    for round in 0..40u32 {
        let batch: Vec<_> = (0..250).map(|i| (hash(round * 1000 + i), 2)).collect();
        store.add_completed(&batch, MARK).await.unwrap();
    }
    assert_eq!(sha(&db), frozen, "the main file changed while pinned");
    assert!(store.wal_bytes().unwrap() > 0, "the writes went to the WAL");
    assert_eq!(store.wal_bytes(), Some(wal_len(&db)));

    store.unpin().await.unwrap();
    assert_eq!(store.pin_mode(), None);
    assert_eq!(store.wal_bytes(), Some(0), "unpin checkpoints the WAL");
    assert_ne!(sha(&db), frozen, "the writes reached the main file");
    let counts = store.load_completed().await.unwrap();
    // 500 ones, and 40 rounds of 250 twos (round 0 overlaps the first 250).
    assert_eq!(total(&counts), 500 + 40 * 250 * 2);
}

#[tokio::test]
async fn rollback_journal_pin_blocks_writers_until_the_unpin() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    let store = SqliteStore::open(db.clone(), JournalMode::Delete)
        .await
        .unwrap();
    store.add_completed(&[(hash(1), 1)], MARK).await.unwrap();
    store.quiesce().await.unwrap();
    assert_eq!(store.pin_mode(), Some(PinMode::WritesWait));
    assert_eq!(store.wal_bytes(), None);
    let frozen = sha(&db);
    store.resume().await.unwrap();
    // The coordinator keeps writes deferred; a write that came anyway
    // waits out the busy timeout and fails: the file cannot change.
    let blocked = store.add_completed(&[(hash(2), 1)], MARK).await;
    assert!(blocked.is_err(), "a writer got past the pin");
    assert_eq!(sha(&db), frozen);
    store.unpin().await.unwrap();
    store.add_completed(&[(hash(2), 1)], MARK).await.unwrap();
    assert_eq!(total(&store.load_completed().await.unwrap()), 2);
    assert!(!db.with_extension("db-wal").exists());
}
