//! The redb backend: one table of byte keys, one write transaction per commit with
//! `Durability::Immediate` (redb's default: durable when `commit` returns).
//!
//! redb latches an I/O error: after one (a full disk), every operation answers `PreviousIo`
//! until the database is closed and reopened. So a failed commit closes and reopens it
//! (what a restart would do: redb recovers to its last durable commit), and a reopen that
//! fails (the disk still full) is tried again at the next commit, the applier's retry.

use std::path::{Path, PathBuf};

use parking_lot::RwLock;
use redb::{Database, ReadTransaction, ReadableDatabase, TableDefinition};

use super::{ExportVisitor, KeyValue, Scan, ScanOrder, Store, StoreBackend, StoreError, WriteOp, prefix_end, scan_bounds};

pub(super) const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("data");

/// redb's page cache. 256 MiB keeps a large hot set in memory on a 24 GiB machine.
pub(super) const CACHE_BYTES: usize = 256 * 1024 * 1024;

pub struct RedbStore {
    path: PathBuf,
    /// `None` between a failed reopen and the next attempt. Operations hold the read lock
    /// for their whole transaction, so a reopen (write lock) waits for them to finish.
    db: RwLock<Option<Database>>,
}

fn store_error(error: impl std::fmt::Display) -> StoreError {
    StoreError::new(format!("redb: {error}"))
}

fn open_database(path: &Path) -> Result<Database, StoreError> {
    let db = Database::builder().set_cache_size(CACHE_BYTES).create(path).map_err(store_error)?;
    let write = db.begin_write().map_err(store_error)?;
    write.open_table(DATA).map_err(store_error)?;
    write.commit().map_err(store_error)?;
    Ok(db)
}

fn closed() -> StoreError {
    StoreError::new("redb: closed after an I/O error; reopening at the next commit")
}

impl RedbStore {
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        let db = open_database(path)?;
        Ok(RedbStore { path: path.to_owned(), db: RwLock::new(Some(db)) })
    }

    /// Closes the database and opens it again, clearing a latched I/O error. Readers wait
    /// for it (a repair after an unclean close grows with the file; see the README's
    /// "A failing disk"): opening without the lock let the B-tree-full test see the store
    /// ready again too early, so it stays under the lock until that is understood.
    fn reopen(&self) -> Result<(), StoreError> {
        let mut db = self.db.write();
        // Close first: redb refuses a second handle on a file that is still open.
        drop(db.take());
        *db = Some(open_database(&self.path)?);
        tracing::info!("redb reopened after a failed commit");
        Ok(())
    }

    fn write(&self, write_sets: &[&[WriteOp]]) -> Result<(), StoreError> {
        let db = self.db.read();
        let write = db.as_ref().ok_or_else(closed)?.begin_write().map_err(store_error)?;
        {
            let mut table = write.open_table(DATA).map_err(store_error)?;
            for op in write_sets.iter().flat_map(|write_set| write_set.iter()) {
                match op {
                    WriteOp::Put { key, value } => {
                        table.insert(key.as_slice(), value.as_slice()).map_err(store_error)?;
                    }
                    WriteOp::Delete { key } => {
                        table.remove(key.as_slice()).map_err(store_error)?;
                    }
                }
            }
        }
        write.commit().map_err(store_error)
    }
}

impl Store for RedbStore {
    fn backend(&self) -> StoreBackend {
        StoreBackend::Redb
    }

    fn commit(&self, write_sets: &[&[WriteOp]]) -> Result<(), StoreError> {
        if self.db.read().is_none() {
            self.reopen()?;
        }
        let result = self.write(write_sets);
        if let Err(error) = &result {
            // Whatever failed, a reopen is what a restart would do; after an I/O error it is
            // the only way redb answers again.
            tracing::error!(%error, "a redb commit failed; reopening the database");
            if let Err(error) = self.reopen() {
                tracing::error!(%error, "reopening redb failed; retrying at the next commit");
            }
        }
        result
    }

    fn unavailable_reason(&self) -> Option<String> {
        self.db.read().is_none().then(|| closed().message)
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let db = self.db.read();
        get_in(&db.as_ref().ok_or_else(closed)?.begin_read().map_err(store_error)?, key)
    }

    /// One read transaction: redb's MVCC snapshot stays consistent while commits go on.
    fn export(&self, visit: &mut ExportVisitor<'_>) -> Result<(), StoreError> {
        let db = self.db.read();
        export_in(&db.as_ref().ok_or_else(closed)?.begin_read().map_err(store_error)?, visit)
    }

    fn scan(&self, scan: Scan<'_>) -> Result<Vec<KeyValue>, StoreError> {
        let db = self.db.read();
        scan_in(&db.as_ref().ok_or_else(closed)?.begin_read().map_err(store_error)?, scan)
    }
}

/// The reads of both redb handles (this store's and the audit's read-only one), within one
/// read transaction.
pub(super) fn get_in(read: &ReadTransaction, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
    let table = read.open_table(DATA).map_err(store_error)?;
    Ok(table.get(key).map_err(store_error)?.map(|value| value.value().to_vec()))
}

pub(super) fn export_in(read: &ReadTransaction, visit: &mut ExportVisitor<'_>) -> Result<(), StoreError> {
    let table = read.open_table(DATA).map_err(store_error)?;
    for entry in table.range::<&[u8]>(..).map_err(store_error)? {
        let (key, value) = entry.map_err(store_error)?;
        visit(key.value(), value.value())?;
    }
    Ok(())
}

pub(super) fn scan_in(read: &ReadTransaction, scan: Scan<'_>) -> Result<Vec<KeyValue>, StoreError> {
    let table = read.open_table(DATA).map_err(store_error)?;
    let end = prefix_end(scan.prefix);
    let (lower, upper) = scan_bounds(&scan, end.as_deref());
    let range = table.range::<&[u8]>((lower, upper)).map_err(store_error)?;
    let entries: Box<dyn Iterator<Item = _>> = match scan.order {
        ScanOrder::Ascending => Box::new(range),
        ScanOrder::Descending => Box::new(range.rev()),
    };
    entries.take(scan.limit).map(|entry| entry.map(|(key, value)| (key.value().to_vec(), value.value().to_vec())).map_err(store_error)).collect()
}
