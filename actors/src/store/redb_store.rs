//! The redb backend: one table of byte keys, one write transaction per commit with
//! `Durability::Immediate` (redb's default: durable when `commit` returns).

use std::path::Path;

use redb::{Database, ReadableDatabase, TableDefinition};

use super::{KeyValue, Scan, ScanOrder, Store, StoreBackend, StoreError, WriteOp, prefix_end, scan_bounds};

const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("data");

/// redb's page cache. 256 MiB keeps a large hot set in memory on a 24 GiB machine.
const CACHE_BYTES: usize = 256 * 1024 * 1024;

pub struct RedbStore {
    db: Database,
}

fn store_error(error: impl std::fmt::Display) -> StoreError {
    StoreError::new(format!("redb: {error}"))
}

impl RedbStore {
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        let db = Database::builder().set_cache_size(CACHE_BYTES).create(path).map_err(store_error)?;
        let write = db.begin_write().map_err(store_error)?;
        write.open_table(DATA).map_err(store_error)?;
        write.commit().map_err(store_error)?;
        Ok(RedbStore { db })
    }
}

impl Store for RedbStore {
    fn backend(&self) -> StoreBackend {
        StoreBackend::Redb
    }

    fn commit(&self, write_sets: &[&[WriteOp]]) -> Result<(), StoreError> {
        let write = self.db.begin_write().map_err(store_error)?;
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

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let read = self.db.begin_read().map_err(store_error)?;
        let table = read.open_table(DATA).map_err(store_error)?;
        Ok(table.get(key).map_err(store_error)?.map(|value| value.value().to_vec()))
    }

    fn scan(&self, scan: Scan<'_>) -> Result<Vec<KeyValue>, StoreError> {
        let read = self.db.begin_read().map_err(store_error)?;
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
}
