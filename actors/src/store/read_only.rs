//! Opening a data directory read-only, for an offline audit (`reward-engine verify`).
//!
//! Nothing is written inside the data directory:
//! - redb is opened with `redb::ReadOnlyDatabase` (the file is opened for reading only). A
//!   file left by an unclean shutdown needs a repair that a read-only open cannot do: the
//!   open is refused with a message saying so (start the engine once, or verify a backup).
//! - sled 0.34.7 has no read-only mode (opening recovers and rewrites its files), so its
//!   directory is copied into a scratch directory (a new temporary directory, under
//!   `scratch_dir` when given) and the copy is opened; the copy is deleted when the store
//!   is dropped.
//! - the write-ahead log is read, not replayed: records above the backend's
//!   `wal_applied_sequence` go into an in-memory overlay that reads consult first, under
//!   recovery's rules (a torn tail of the last segment is ignored, damage anywhere else is
//!   refused). Its memory is bounded by what the log holds (the engine's memtable bounds).
//!
//! A running engine holds the store's lock; opening then fails at once with
//! [`ENGINE_RUNNING`], never waits. The lock (redb's, or a `flock` on sled's `db` file, the
//! lock sled itself takes) is held while the store is open, so an engine cannot start and
//! replay the log underneath the audit. `commit` answers an error: the store is read-only.

use std::collections::BTreeMap;
use std::fs::File;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{ReadOnlyDatabase, ReadableDatabase};

use super::redb_store::{CACHE_BYTES, export_in, get_in, scan_in};
use super::wal::{any_record_after, applied_sequence_key, decode_record, segments};
use super::{
    ExportVisitor, KeyValue, SCHEMA_KEY, SCHEMA_VERSION, Scan, ScanOrder, SledStore, Store, StoreBackend, StoreError, Table, WriteOp, prefix_end,
    scan_bounds,
};

/// Why opening failed when an engine has the directory open.
pub const ENGINE_RUNNING: &str = "the engine is running on this directory: stop it, or verify a backup";

/// Where sled's scratch copy goes.
#[derive(Debug, Clone, Default)]
pub struct ReadOnlyOptions {
    /// A directory for sled's copy (it needs room for the whole store); the system's
    /// temporary directory when `None`. A new directory is made inside it and removed after.
    pub scratch_dir: Option<PathBuf>,
}

/// Opens the store of `backend` in `data_dir` read-only, with the write-ahead log's
/// unapplied records as an overlay. See the module doc.
pub fn open_store_read_only(backend: StoreBackend, data_dir: &Path) -> Result<Arc<dyn Store>, StoreError> {
    open_store_read_only_with(backend, data_dir, &ReadOnlyOptions::default())
}

/// [`open_store_read_only`] with sled's scratch directory chosen.
pub fn open_store_read_only_with(backend: StoreBackend, data_dir: &Path, options: &ReadOnlyOptions) -> Result<Arc<dyn Store>, StoreError> {
    if backend == StoreBackend::Postgres {
        return Err(StoreError::new(
            "a read-only open (verify) works on a redb or sled data directory; the postgres store has none: verify a backup of it instead",
        ));
    }
    if !data_dir.is_dir() {
        return Err(StoreError::new(format!("{} is not a directory", data_dir.display())));
    }
    super::backup::check_not_restoring(data_dir)?;
    let opened = match backend {
        StoreBackend::Redb => open_redb(&data_dir.join("reward.redb"))?,
        StoreBackend::Sled => open_sled_copy(&data_dir.join("reward.sled"), options)?,
        StoreBackend::Postgres => return Err(super::postgres_needs_url()),
    };
    let applied = match opened.backend.get(&applied_sequence_key())? {
        Some(bytes) => u64::from_be_bytes(bytes.as_slice().try_into().map_err(|_| StoreError::new("wal_applied_sequence is unreadable"))?),
        None => 0,
    };
    let (overlay, records) = read_log(&data_dir.join("wal"), applied)?;
    if records > 0 {
        tracing::info!(records, keys = overlay.len(), "read the write-ahead log's unapplied records into memory (not replayed)");
    }
    let store = ReadOnlyStore { overlay, backend: opened.backend, _lock: opened.lock, _scratch: opened.scratch };
    check_schema_read_only(&store)?;
    Ok(Arc::new(store))
}

/// A backend opened for reading, and what must live as long as it.
struct Opened {
    backend: Box<dyn Store>,
    lock: Option<File>,
    scratch: Option<tempfile::TempDir>,
}

fn open_redb(path: &Path) -> Result<Opened, StoreError> {
    if !path.is_file() {
        return Err(StoreError::new(format!("no redb store at {}", path.display())));
    }
    let db = redb::Builder::new().set_cache_size(CACHE_BYTES).open_read_only(path).map_err(|error| match error {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::new(ENGINE_RUNNING),
        redb::DatabaseError::RepairAborted => StoreError::new(format!(
            "{} was not shut down cleanly and needs a repair, which a read-only open does not do: start the engine on it once (it recovers), or verify a backup",
            path.display()
        )),
        other => StoreError::new(format!("redb: {other}")),
    })?;
    Ok(Opened { backend: Box::new(ReadOnlyRedb { db }), lock: None, scratch: None })
}

fn open_sled_copy(path: &Path, options: &ReadOnlyOptions) -> Result<Opened, StoreError> {
    let lock_path = path.join("db");
    let lock = File::open(&lock_path).map_err(|error| StoreError::new(format!("no sled store at {}: {error}", path.display())))?;
    // sled takes this exclusive flock while it runs: failing to get it means an engine has it.
    lock.try_lock().map_err(|error| match error {
        std::fs::TryLockError::WouldBlock => StoreError::new(ENGINE_RUNNING),
        std::fs::TryLockError::Error(error) => StoreError::new(format!("locking {}: {error}", lock_path.display())),
    })?;
    let builder = tempfile::Builder::new().prefix("reward-verify-").tempdir_in_or_default(options.scratch_dir.as_deref());
    let scratch = builder.map_err(|error| StoreError::new(format!("creating a scratch directory for sled's copy: {error}")))?;
    let copy = scratch.path().join("reward.sled");
    copy_dir(path, &copy)?;
    let backend = SledStore::open(&copy)?;
    Ok(Opened { backend: Box::new(backend), lock: Some(lock), scratch: Some(scratch) })
}

/// `tempdir_in(dir)` when a directory is given, else `tempdir()`.
trait TempdirIn {
    fn tempdir_in_or_default(&self, dir: Option<&Path>) -> std::io::Result<tempfile::TempDir>;
}

impl TempdirIn for tempfile::Builder<'_, '_> {
    fn tempdir_in_or_default(&self, dir: Option<&Path>) -> std::io::Result<tempfile::TempDir> {
        match dir {
            Some(dir) => self.tempdir_in(dir),
            None => self.tempdir(),
        }
    }
}

/// Copies sled's directory (its files and its `blobs/` folder) file by file.
fn copy_dir(from: &Path, to: &Path) -> Result<(), StoreError> {
    let fail = |what: &str, path: &Path, error: std::io::Error| StoreError::new(format!("copying sled's files ({what} {}): {error}", path.display()));
    std::fs::create_dir_all(to).map_err(|error| fail("creating", to, error))?;
    for entry in std::fs::read_dir(from).map_err(|error| fail("listing", from, error))? {
        let entry = entry.map_err(|error| fail("listing", from, error))?;
        let kind = entry.file_type().map_err(|error| fail("reading", &entry.path(), error))?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target).map_err(|error| fail("copying", &entry.path(), error))?;
        }
    }
    Ok(())
}

/// Keys written by the log's unapplied records, newest value per key (`None`: deleted).
type Overlay = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// The log's records above `applied`, newest value per key (`None`: deleted), and how many
/// records that was. Recovery's rules, without its writes.
fn read_log(dir: &Path, applied: u64) -> Result<(Overlay, u64), StoreError> {
    let mut overlay = BTreeMap::new();
    if !dir.is_dir() {
        return Ok((overlay, 0));
    }
    let paths = segments(dir)?;
    let mut last = applied;
    for (index, path) in paths.iter().enumerate() {
        let bytes = std::fs::read(path).map_err(|error| StoreError::new(format!("write-ahead log: reading {}: {error}", path.display())))?;
        let mut at = 0;
        while at < bytes.len() {
            let Some((sequence, ops, next)) = decode_record(&bytes, at) else {
                if index + 1 == paths.len() && !any_record_after(&bytes, at) {
                    tracing::warn!(segment = %path.display(), offset = at, "ignoring a torn record at the end of the log (never acknowledged)");
                    break;
                }
                return Err(StoreError::new(format!(
                    "write-ahead log: corrupt record in {} at byte {at} with log after it (acknowledged writes are damaged)",
                    path.display()
                )));
            };
            if sequence > applied {
                if sequence <= last {
                    return Err(StoreError::new(format!("write-ahead log: sequence {sequence} after {last} in {}", path.display())));
                }
                for op in ops {
                    match op {
                        WriteOp::Put { key, value } => overlay.insert(key, Some(value)),
                        WriteOp::Delete { key } => overlay.insert(key, None),
                    };
                }
                last = sequence;
            }
            at = next;
        }
    }
    Ok((overlay, last - applied))
}

fn check_schema_read_only(store: &dyn Store) -> Result<(), StoreError> {
    let bytes =
        store.get(&Table::Meta.key(&[SCHEMA_KEY]))?.ok_or_else(|| StoreError::new("no schema version: not a reward-engine data directory"))?;
    let found = <[u8; 4]>::try_from(bytes.as_slice()).map(u32::from_be_bytes).map_err(|_| StoreError::new("schema version is unreadable"))?;
    if found != SCHEMA_VERSION {
        return Err(StoreError::new(format!("data was written with schema version {found}; this build reads version {SCHEMA_VERSION}")));
    }
    Ok(())
}

fn read_only_error() -> StoreError {
    StoreError::new("read-only: this store was opened for an audit")
}

/// The backend under the log's overlay. Field order is drop order: the backend closes
/// before its lock is released and before the scratch copy is deleted.
struct ReadOnlyStore {
    overlay: Overlay,
    backend: Box<dyn Store>,
    _lock: Option<File>,
    _scratch: Option<tempfile::TempDir>,
}

impl ReadOnlyStore {
    /// The overlay's entries of a scan in its order, up to `limit` live ones, with every
    /// deletion met before them (those may hide backend keys).
    fn overlay_page(&self, bounds: (Bound<&[u8]>, Bound<&[u8]>), order: ScanOrder, limit: usize) -> Vec<(&Vec<u8>, &Option<Vec<u8>>)> {
        let range = self.overlay.range::<[u8], _>(bounds);
        let entries: Box<dyn Iterator<Item = _>> = match order {
            ScanOrder::Ascending => Box::new(range),
            ScanOrder::Descending => Box::new(range.rev()),
        };
        let mut live = 0;
        let mut page = Vec::new();
        for entry in entries {
            if live >= limit {
                break;
            }
            live += usize::from(entry.1.is_some());
            page.push(entry);
        }
        page
    }
}

impl Store for ReadOnlyStore {
    fn backend(&self) -> StoreBackend {
        self.backend.backend()
    }

    fn commit(&self, _write_sets: &[&[WriteOp]]) -> Result<(), StoreError> {
        Err(read_only_error())
    }

    fn unavailable_reason(&self) -> Option<String> {
        Some(read_only_error().message)
    }

    /// The backend's copy with the log's records merged in, in key order (both are sorted).
    fn export(&self, visit: &mut ExportVisitor<'_>) -> Result<(), StoreError> {
        let mut pending = self.overlay.iter().peekable();
        self.backend.export(&mut |key, value| {
            while let Some((logged, logged_value)) = pending.next_if(|(logged, _)| logged.as_slice() < key) {
                if let Some(logged_value) = logged_value {
                    visit(logged, logged_value)?;
                }
            }
            match pending.next_if(|(logged, _)| logged.as_slice() == key) {
                Some((_, Some(newer))) => visit(key, newer),
                Some((_, None)) => Ok(()),
                None => visit(key, value),
            }
        })?;
        for (logged, logged_value) in pending {
            if let Some(logged_value) = logged_value {
                visit(logged, logged_value)?;
            }
        }
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.overlay.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.backend.get(key),
        }
    }

    fn scan(&self, scan: Scan<'_>) -> Result<Vec<KeyValue>, StoreError> {
        let end = prefix_end(scan.prefix);
        let bounds = scan_bounds(&scan, end.as_deref());
        let page = self.overlay_page(bounds, scan.order, scan.limit);
        let deletions = page.iter().filter(|(_, value)| value.is_none()).count();
        let mut merged: Overlay = page.into_iter().map(|(key, value)| (key.clone(), value.clone())).collect();
        for (key, value) in self.backend.scan(Scan { limit: scan.limit + deletions, ..scan })? {
            merged.entry(key).or_insert(Some(value));
        }
        let live = merged.into_iter().filter_map(|(key, value)| value.map(|value| (key, value)));
        Ok(match scan.order {
            ScanOrder::Ascending => live.take(scan.limit).collect(),
            ScanOrder::Descending => live.rev().take(scan.limit).collect(),
        })
    }
}

/// redb opened with `ReadOnlyDatabase`: reads only.
struct ReadOnlyRedb {
    db: ReadOnlyDatabase,
}

fn redb_error(error: impl std::fmt::Display) -> StoreError {
    StoreError::new(format!("redb: {error}"))
}

impl Store for ReadOnlyRedb {
    fn backend(&self) -> StoreBackend {
        StoreBackend::Redb
    }

    fn commit(&self, _write_sets: &[&[WriteOp]]) -> Result<(), StoreError> {
        Err(read_only_error())
    }

    fn export(&self, visit: &mut ExportVisitor<'_>) -> Result<(), StoreError> {
        export_in(&self.db.begin_read().map_err(redb_error)?, visit)
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        get_in(&self.db.begin_read().map_err(redb_error)?, key)
    }

    fn scan(&self, scan: Scan<'_>) -> Result<Vec<KeyValue>, StoreError> {
        scan_in(&self.db.begin_read().map_err(redb_error)?, scan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{WalOptions, open_store, open_store_with};

    fn put(key: &[u8], value: &[u8]) -> WriteOp {
        WriteOp::Put { key: key.to_vec(), value: value.to_vec() }
    }

    /// Every file's bytes under `dir`, by path.
    fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut files = BTreeMap::new();
        let mut pending = vec![dir.to_owned()];
        while let Some(next) = pending.pop() {
            for entry in std::fs::read_dir(&next).expect("lists") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    files.insert(path.clone(), std::fs::read(&path).expect("reads"));
                }
            }
        }
        files
    }

    /// The log's unapplied records are read into the overlay (deletions too), the backend
    /// below, nothing in the directory changes, and commits are refused.
    fn reads_the_log_without_writing(backend: StoreBackend) {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            let store = open_store_with(backend, dir.path(), WalOptions { enabled: false, ..WalOptions::default() }).expect("opens");
            store.commit(&[&[put(&[6, 1], b"backend"), put(&[6, 2], b"deleted later"), put(&[6, 4], b"old")]]).expect("commits");
        }
        {
            let big = WalOptions { enabled: true, memtable_bytes_max: usize::MAX, apply_interval_ms: u64::MAX, frozen_max: 2 };
            let store = super::super::WalStore::open(open_backend(backend, dir.path()), &dir.path().join("wal"), big).expect("opens");
            store.commit(&[&[put(&[6, 3], b"logged"), WriteOp::Delete { key: vec![6, 2] }, put(&[6, 4], b"new")]]).expect("commits");
            store.abandon_for_test();
        }
        let before = snapshot(dir.path());
        {
            let store = open_store_read_only(backend, dir.path()).expect("opens read-only");
            assert_eq!(store.get(&[6, 3]).expect("reads"), Some(b"logged".to_vec()));
            assert_eq!(store.get(&[6, 2]).expect("reads"), None);
            let all = store.scan(Scan { prefix: &[6], after: None, order: ScanOrder::Ascending, limit: 10 }).expect("scans");
            let expected: Vec<KeyValue> = vec![(vec![6, 1], b"backend".to_vec()), (vec![6, 3], b"logged".to_vec()), (vec![6, 4], b"new".to_vec())];
            assert_eq!(all, expected);
            let first = store.scan(Scan { prefix: &[6], after: None, order: ScanOrder::Ascending, limit: 1 }).expect("scans");
            assert_eq!(first, expected[..1].to_vec());
            let last = store.scan(Scan { prefix: &[6], after: None, order: ScanOrder::Descending, limit: 2 }).expect("scans");
            assert_eq!(last, vec![expected[2].clone(), expected[1].clone()]);
            assert!(store.commit(&[&[put(&[6, 9], b"x")]]).expect_err("read-only").message.contains("read-only"));
            // An export merges the log into the backend's copy in key order, deletions applied.
            let mut exported: Vec<KeyValue> = Vec::new();
            store
                .export(&mut |key, value| {
                    exported.push((key.to_vec(), value.to_vec()));
                    Ok(())
                })
                .expect("exports");
            let exported: Vec<KeyValue> = exported.into_iter().filter(|(key, _)| key[0] == 6).collect();
            assert_eq!(exported, expected);
        }
        assert_eq!(snapshot(dir.path()), before, "nothing in the data directory changed");
        // The engine still recovers the log afterwards.
        let store = open_store(backend, dir.path()).expect("opens");
        assert_eq!(store.get(&[6, 3]).expect("reads"), Some(b"logged".to_vec()));
    }

    fn open_backend(backend: StoreBackend, dir: &Path) -> Arc<dyn Store> {
        match backend {
            StoreBackend::Redb => Arc::new(super::super::RedbStore::open(&dir.join("reward.redb")).expect("redb")),
            StoreBackend::Sled => Arc::new(SledStore::open(&dir.join("reward.sled")).expect("sled")),
            StoreBackend::Postgres => panic!("a read-only open has no postgres store"),
        }
    }

    #[test]
    fn redb_reads_the_log_without_writing() {
        reads_the_log_without_writing(StoreBackend::Redb);
    }

    #[test]
    fn sled_reads_the_log_without_writing() {
        reads_the_log_without_writing(StoreBackend::Sled);
    }

    fn an_open_store_is_refused_at_once(backend: StoreBackend) {
        let dir = tempfile::tempdir().expect("temp dir");
        let _running = open_store(backend, dir.path()).expect("opens");
        let started = std::time::Instant::now();
        let error = open_store_read_only(backend, dir.path()).err().expect("refused");
        assert_eq!(error.message, ENGINE_RUNNING);
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "fails fast, does not wait for the lock");
    }

    #[test]
    fn redb_an_open_store_is_refused_at_once() {
        an_open_store_is_refused_at_once(StoreBackend::Redb);
    }

    #[test]
    fn sled_an_open_store_is_refused_at_once() {
        an_open_store_is_refused_at_once(StoreBackend::Sled);
    }

    #[test]
    fn sled_is_copied_into_the_scratch_directory_and_the_copy_removed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let scratch = tempfile::tempdir().expect("scratch dir");
        drop(open_store(StoreBackend::Sled, dir.path()).expect("opens"));
        let options = ReadOnlyOptions { scratch_dir: Some(scratch.path().to_owned()) };
        let store = open_store_read_only_with(StoreBackend::Sled, dir.path(), &options).expect("opens read-only");
        let copies: Vec<_> = std::fs::read_dir(scratch.path()).expect("lists").collect();
        assert_eq!(copies.len(), 1, "one scratch copy while open");
        assert!(store.get(&Table::Meta.key(&[SCHEMA_KEY])).expect("reads").is_some());
        drop(store);
        assert_eq!(std::fs::read_dir(scratch.path()).expect("lists").count(), 0, "the copy is removed");
    }

    #[test]
    fn a_missing_store_or_another_schema_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(open_store_read_only(StoreBackend::Redb, dir.path()).err().expect("refused").message.contains("no redb store"));
        assert!(open_store_read_only(StoreBackend::Sled, dir.path()).err().expect("refused").message.contains("no sled store"));
        {
            let store = open_store(StoreBackend::Redb, dir.path()).expect("opens");
            store.commit(&[&[put(&Table::Meta.key(&[SCHEMA_KEY]), &99u32.to_be_bytes())]]).expect("commits");
        }
        let error = open_store_read_only(StoreBackend::Redb, dir.path()).err().expect("refused");
        assert!(error.message.contains("schema version 99"), "{error}");
    }
}
