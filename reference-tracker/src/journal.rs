//! The completion journal: deferred counts that survive a crash.
//!
//! Completed-count increments wait in the write-behind buffer's memory until
//! a flush, and under policy `defer-writes` that can be a whole maintenance
//! window. So every increment is also appended to this journal, and the
//! `completed` announce is answered only once its record was written
//! (`durability.rs`: `write(2)` by default, `fdatasync` with `fsync`, or
//! at once with `interval`), and replayed at start.
//!
//! Format: a 16-byte header (`RTJRNL01` and a random 64-bit *generation*),
//! then fixed 24-byte records (20-byte info_hash, little-endian u32 count).
//! A torn last record is ignored.
//!
//! Exactly-once: every flush stores, in the same database transaction as the
//! increments, a [`JournalMark`] (generation, byte offset covered) in the
//! database row of that generation (one row per generation, so instances
//! sharing a database keep their own marks). At start the generation in the
//! file's header ([`generation_of`]) selects the row, and the records after
//! its mark are replayed (all of them when the generation has no row).
//! After a flush the journal is compacted into a new generation holding
//! only what is still unapplied (a temp file created exclusively under a
//! random name, fsynced, renamed, directory fsynced); only then is the old
//! generation's row deleted. A crash between the commit and the compaction
//! replays nothing twice (same generation, offset covered); a crash after
//! it replays the new generation, which the database has not seen.
//!
//! One journal, one process: [`JournalLock`] refuses a second tracker on the
//! same file at start.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::peers::InfoHash;

const MAGIC: &[u8; 8] = b"RTJRNL01";
const HEADER: u64 = 16;
const RECORD: usize = 24;
/// A journal bigger than this is compacted after every successful flush,
/// even while increments are still pending.
const COMPACT_ABOVE: u64 = 1 << 20;

/// The exclusive claim of one tracker process on a journal: a `flock` on
/// `<journal>.lock` beside it, held until drop. The journal file itself is
/// replaced by every compaction (a new inode), so the lock lives on a file
/// that is never renamed. Two trackers appending to one journal would each
/// replay the other's completions after a crash.
pub struct JournalLock {
    _file: File,
    path: PathBuf,
}

impl JournalLock {
    /// Takes the lock for the journal at `journal` (absolute), creating its
    /// folder and lock file when needed. A lock held by another process is
    /// an error naming both files and the fix.
    pub fn acquire(journal: &Path) -> io::Result<JournalLock> {
        let mut name = journal
            .file_name()
            .ok_or_else(|| invalid(journal, "has no file name"))?
            .to_os_string();
        name.push(".lock");
        let path = journal.with_file_name(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(JournalLock { _file: file, path }),
            Err(std::fs::TryLockError::WouldBlock) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "completion journal {} is in use by another tracker process (it holds {}); \
                     every tracker instance needs a journal of its own: set \
                     [core.database] completion_journal to a different file for each instance \
                     (or start each from its own folder), or stop the other process",
                    journal.display(),
                    path.display()
                ),
            )),
            Err(std::fs::TryLockError::Error(e)) => Err(io::Error::new(
                e.kind(),
                format!("cannot lock {}: {e}", path.display()),
            )),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// How far the database has applied the journal: stored with every flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalMark {
    /// The journal generation the offset refers to.
    pub generation: u64,
    /// Every record ending at or before this byte offset is in the database.
    pub offset: u64,
}

/// The open journal. Not locked itself: the write-behind buffer keeps it
/// under the same lock as its pending counts, so the two always agree.
pub struct Journal {
    path: PathBuf,
    file: Arc<File>,
    generation: u64,
    unwritten: Vec<u8>,
    end: u64,
    broken: bool,
    /// Records appended since the process started (never reset).
    appended: u64,
}

fn invalid(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "journal {} {what}; if its counts are not needed, move it aside and restart",
            path.display()
        ),
    )
}

/// The generation in the header of the journal at `path`, or `None` when
/// the file is missing or empty (nothing to replay). An unreadable header
/// is an error naming the file.
pub fn generation_of(path: &Path) -> io::Result<Option<u64>> {
    let mut head = Vec::with_capacity(HEADER as usize);
    match File::open(path) {
        Ok(f) => {
            f.take(HEADER).read_to_end(&mut head)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    }
    if head.is_empty() {
        return Ok(None);
    }
    header_generation(path, &head).map(Some)
}

/// The generation of a journal starting with `bytes`, checking the magic.
fn header_generation(path: &Path, bytes: &[u8]) -> io::Result<u64> {
    if bytes.len() < HEADER as usize || &bytes[..8] != MAGIC {
        return Err(invalid(path, "has no valid header"));
    }
    Ok(u64::from_le_bytes(bytes[8..16].try_into().unwrap()))
}

/// Reads the journal at `path` and returns the increments the database has
/// not applied according to `mark`. A missing file holds nothing.
pub fn unapplied(path: &Path, mark: Option<JournalMark>) -> io::Result<HashMap<InfoHash, u64>> {
    let mut out = HashMap::new();
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    }
    if bytes.is_empty() {
        return Ok(out);
    }
    let generation = header_generation(path, &bytes)?;
    let from = match mark {
        Some(m) if m.generation == generation => m.offset.max(HEADER),
        _ => HEADER,
    };
    let mut at = HEADER as usize;
    // A torn last record (shorter than RECORD) ends the loop.
    while at + RECORD <= bytes.len() {
        if at as u64 >= from {
            let rec = &bytes[at..at + RECORD];
            let hash = InfoHash(rec[..20].try_into().unwrap());
            let n = u32::from_le_bytes(rec[20..].try_into().unwrap());
            *out.entry(hash).or_insert(0) += n as u64;
        }
        at += RECORD;
    }
    Ok(out)
}

fn encode(out: &mut Vec<u8>, hash: &InfoHash, count: u32) {
    out.extend_from_slice(&hash.0);
    out.extend_from_slice(&count.to_le_bytes());
}

impl Journal {
    /// Opens the journal at `path`: returns the increments not yet in the
    /// database (per `mark`, the database's mark for the file's
    /// [`generation_of`]) and a fresh generation holding exactly those, so
    /// they are counted once whether or not the process dies again before
    /// the next flush.
    pub fn open(
        path: PathBuf,
        mark: Option<JournalMark>,
    ) -> io::Result<(Journal, HashMap<InfoHash, u64>)> {
        let pending = unapplied(&path, mark)?;
        let mut journal = Journal {
            file: Arc::new(File::open("/dev/null")?),
            path,
            generation: 0,
            unwritten: Vec::new(),
            end: 0,
            broken: false,
            appended: 0,
        };
        journal.compact(&pending)?;
        Ok((journal, pending))
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one completion of `hash` (written by the next
    /// [`Journal::take_unwritten`]); returns its position among every
    /// record appended since start.
    pub fn append(&mut self, hash: &InfoHash) -> u64 {
        encode(&mut self.unwritten, hash, 1);
        self.end += RECORD as u64;
        self.appended += 1;
        self.appended
    }

    /// Records appended since start: after a [`Journal::compact`], all of
    /// them are on disk (in the file or in the database).
    pub fn appended(&self) -> u64 {
        self.appended
    }

    /// The mark covering every record appended so far.
    pub fn mark(&self) -> JournalMark {
        JournalMark {
            generation: self.generation,
            offset: self.end,
        }
    }

    /// Bytes appended but not yet written, with the file they belong to
    /// and the position ([`Journal::append`]) of the last record in them.
    pub fn take_unwritten(&mut self) -> Option<(Arc<File>, Vec<u8>, u64)> {
        if self.unwritten.is_empty() {
            return None;
        }
        Some((
            self.file.clone(),
            std::mem::take(&mut self.unwritten),
            self.appended,
        ))
    }

    /// A write failed: offsets in the file may no longer match; compact at
    /// the next chance.
    pub fn mark_broken(&mut self) {
        self.broken = true;
    }

    /// Whether [`Journal::compact`] is due after a successful flush.
    pub fn compaction_due(&self, nothing_pending: bool) -> bool {
        self.broken || self.end > COMPACT_ABOVE || (nothing_pending && self.end > HEADER)
    }

    /// Replaces the journal with a new generation holding exactly `pending`
    /// (what the database has not applied): written to a temp file created
    /// exclusively under a random name, synced, renamed over the journal,
    /// directory synced. Returns the generation it replaced, whose database
    /// mark is useless from now on. On an error the old generation may
    /// still be the file on disk: its mark must stay.
    pub fn compact(&mut self, pending: &HashMap<InfoHash, u64>) -> io::Result<u64> {
        let generation = getrandom::u64().map_err(io::Error::other)?;
        let mut body = Vec::with_capacity(HEADER as usize + pending.len() * RECORD);
        body.extend_from_slice(MAGIC);
        body.extend_from_slice(&generation.to_le_bytes());
        for (hash, &n) in pending {
            let mut left = n;
            while left > 0 {
                let chunk = left.min(u32::MAX as u64);
                encode(&mut body, hash, chunk as u32);
                left -= chunk;
            }
        }
        let dir = match self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(d) => d.to_path_buf(),
            None => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir)?;
        let name = self
            .path
            .file_name()
            .ok_or_else(|| invalid(&self.path, "has no file name"))?
            .to_string_lossy()
            .into_owned();
        let mut temp = tempfile::Builder::new()
            .prefix(&format!(".{name}.tmp-"))
            .tempfile_in(&dir)?;
        temp.write_all(&body)?;
        temp.as_file().sync_all()?;
        let file = temp.persist(&self.path).map_err(|e| e.error)?;
        // The new generation is in place: appends go to it from now on.
        self.file = Arc::new(file);
        let replaced = std::mem::replace(&mut self.generation, generation);
        self.end = body.len() as u64;
        self.unwritten.clear();
        self.broken = false;
        File::open(&dir)?.sync_all()?;
        Ok(replaced)
    }
}

/// Writes `bytes` at the end of `file` (one `write(2)` unless the kernel
/// takes less), and syncs them to disk when `sync`.
pub fn write_out(file: &File, bytes: &[u8], sync: bool) -> io::Result<()> {
    let mut f = file;
    f.write_all(bytes)?;
    if sync {
        file.sync_data()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(b: u8) -> InfoHash {
        InfoHash([b; 20])
    }

    fn write_all(j: &mut Journal) {
        if let Some((f, bytes, _)) = j.take_unwritten() {
            write_out(&f, &bytes, true).unwrap();
        }
    }

    #[test]
    fn replays_after_the_mark_and_ignores_a_torn_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.journal");
        let (mut j, replayed) = Journal::open(path.clone(), None).unwrap();
        assert!(replayed.is_empty());
        j.append(&h(1));
        j.append(&h(1));
        let applied = j.mark();
        j.append(&h(2));
        write_all(&mut j);
        // A torn record: half of one written before the crash.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(&[3u8; 10]).unwrap();
        let got = unapplied(&path, Some(applied)).unwrap();
        assert_eq!(got, HashMap::from([(h(2), 1)]));
        // Another generation's mark: everything counts.
        let other = JournalMark {
            generation: applied.generation ^ 1,
            offset: applied.offset,
        };
        let got = unapplied(&path, Some(other)).unwrap();
        assert_eq!(got, HashMap::from([(h(1), 2), (h(2), 1)]));
    }

    #[test]
    fn a_crash_around_compaction_never_double_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.journal");
        let (mut j, _) = Journal::open(path.clone(), None).unwrap();
        for _ in 0..5 {
            j.append(&h(7));
        }
        write_all(&mut j);
        // The flush commits all five with this mark ...
        let committed = j.mark();
        // ... and the process dies before compacting: nothing to replay.
        assert!(unapplied(&path, Some(committed)).unwrap().is_empty());
        // Restarting from that state replays nothing, twice over.
        let (_, replayed) = Journal::open(path.clone(), Some(committed)).unwrap();
        assert!(replayed.is_empty());
        // Compaction with one increment still pending, then a crash: the
        // new generation is unknown to the database and replays exactly it.
        let (mut j, _) = Journal::open(path.clone(), Some(committed)).unwrap();
        j.append(&h(8));
        let committed = JournalMark {
            generation: 42,
            offset: 0,
        };
        j.compact(&HashMap::from([(h(8), 1)])).unwrap();
        let (_, replayed) = Journal::open(path.clone(), Some(committed)).unwrap();
        assert_eq!(replayed, HashMap::from([(h(8), 1)]));
    }

    #[test]
    fn the_header_names_the_generation_and_compaction_returns_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.journal");
        assert_eq!(generation_of(&path).unwrap(), None);
        std::fs::write(&path, b"").unwrap();
        assert_eq!(generation_of(&path).unwrap(), None);
        let (mut j, _) = Journal::open(path.clone(), None).unwrap();
        let first = j.mark().generation;
        assert_eq!(generation_of(&path).unwrap(), Some(first));
        let replaced = j.compact(&HashMap::new()).unwrap();
        assert_eq!(replaced, first);
        assert_eq!(generation_of(&path).unwrap(), Some(j.mark().generation));
        assert_ne!(j.mark().generation, first);
        std::fs::write(&path, b"RTJRNL0").unwrap();
        let e = generation_of(&path).err().unwrap();
        assert!(e.to_string().contains("move it aside"), "{e}");
    }

    #[test]
    fn a_bad_header_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.journal");
        std::fs::write(&path, b"not a journal at all").unwrap();
        let e = Journal::open(path, None).err().unwrap();
        assert!(e.to_string().contains("move it aside"), "{e}");
    }
}
