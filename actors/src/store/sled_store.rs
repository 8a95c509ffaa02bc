//! The sled backend (0.34.7): one tree, one atomic `apply_batch` plus one synchronous
//! `flush()` per commit. Only the committer thread flushes (concurrent `flush_async`
//! deadlocks, see DESIGN.md), and sled's own background flusher is off.
//!
//! Caveat: sled makes a batch visible to readers when it is applied, before `flush()`
//! returns, so a read may briefly show a write that a crash in that window would lose.
//! Answers to writers are still sent only after the flush.
//!
//! sled latches an I/O error (a full disk): every later operation fails with it, and
//! reopening the database in place while the disk is still full left it unreadable
//! ("Read corrupted data") in our full-tmpfs test. So a failed commit says a restart is
//! needed, and the restart (once the disk has room) recovers: sled to its last flush, the
//! write-ahead log from there.

use std::path::Path;

use super::{ExportVisitor, KeyValue, Scan, ScanOrder, Store, StoreBackend, StoreError, WriteOp, prefix_end, scan_bounds};

/// sled's page cache, the same budget as redb's.
const CACHE_BYTES: u64 = 256 * 1024 * 1024;

pub struct SledStore {
    db: sled::Db,
    /// The I/O error sled latched (it then fails every operation until reopened, and a
    /// reopen on a still-full disk left its files unreadable): set once, cleared by a restart.
    latched: parking_lot::Mutex<Option<String>>,
    /// Commits hold it shared, an export exclusively: sled's iterators are not snapshots, so
    /// a consistent copy keeps commits out (behind the write-ahead log only its applier
    /// commits, and the log holds it still during an export anyway).
    commits: parking_lot::RwLock<()>,
}

fn store_error(error: impl std::fmt::Display) -> StoreError {
    StoreError::new(format!("sled: {error}"))
}

/// How long opening waits for a previous handle's file lock: sled releases it when its last
/// internal reference drops, which can trail the handle's own drop by a moment (seen as a
/// `WouldBlock` on an immediate reopen in the same process).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(25);

impl SledStore {
    pub fn open(path: &Path) -> Result<SledStore, StoreError> {
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match sled::Config::new().path(path).cache_capacity(CACHE_BYTES).flush_every_ms(None).open() {
                Ok(db) => return Ok(SledStore { db, latched: parking_lot::Mutex::new(None), commits: parking_lot::RwLock::new(()) }),
                // sled reports it as `Other` with this text (sled 0.34.7, config.rs).
                Err(sled::Error::Io(error)) if error.to_string().starts_with("could not acquire lock") && std::time::Instant::now() < deadline => {
                    std::thread::sleep(LOCK_RETRY);
                }
                Err(error) => return Err(store_error(error)),
            }
        }
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        if let Err(error) = self.db.flush() {
            tracing::error!(%error, "sled flush at close failed");
        }
    }
}

impl Store for SledStore {
    fn backend(&self) -> StoreBackend {
        StoreBackend::Sled
    }

    fn commit(&self, write_sets: &[&[WriteOp]]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for op in write_sets.iter().flat_map(|write_set| write_set.iter()) {
            match op {
                WriteOp::Put { key, value } => batch.insert(key.as_slice(), value.as_slice()),
                WriteOp::Delete { key } => batch.remove(key.as_slice()),
            }
        }
        let _commit = self.commits.read();
        let latched = |error: sled::Error| {
            let error = store_error(format!("{error}; sled fails every operation after an I/O error: restart to recover"));
            self.latched.lock().get_or_insert_with(|| error.message.clone());
            error
        };
        self.db.apply_batch(batch).map_err(latched)?;
        self.db.flush().map_err(latched)?;
        Ok(())
    }

    fn export(&self, visit: &mut ExportVisitor<'_>) -> Result<(), StoreError> {
        let _no_commits = self.commits.write();
        for entry in self.db.iter() {
            let (key, value) = entry.map_err(store_error)?;
            visit(&key, &value)?;
        }
        Ok(())
    }

    fn unavailable_reason(&self) -> Option<String> {
        self.latched.lock().clone()
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get(key).map_err(store_error)?.map(|value| value.to_vec()))
    }

    fn scan(&self, scan: Scan<'_>) -> Result<Vec<KeyValue>, StoreError> {
        let end = prefix_end(scan.prefix);
        let (lower, upper) = scan_bounds(&scan, end.as_deref());
        let range = self.db.range::<&[u8], _>((lower, upper));
        let entries: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = match scan.order {
            ScanOrder::Ascending => Box::new(range),
            ScanOrder::Descending => Box::new(range.rev()),
        };
        entries.take(scan.limit).map(|entry| entry.map(|(key, value)| (key.to_vec(), value.to_vec())).map_err(store_error)).collect()
    }
}
