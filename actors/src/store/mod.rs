//! Storage behind a narrow trait: point reads, prefix scans, and one atomic durable commit
//! of many write sets.
//!
//! The store owns the key layout ([`Table`] bytes in front of every key, `layout.rs`) and
//! the value encoding (`codec.rs`); a backend is a plain ordered key-value store. Two
//! embedded backends implement it (`redb`, `sled`) and one networked backend (`pg_store.rs`,
//! PostgreSQL, issue 13's first step, never behind the write-ahead log); all pass the same
//! behaviour tests (`check_store` below). Its reading side lives here too: `reads.rs`
//! (the one paging loop over typed ranges) and `audit.rs` (the offline audit's one pass).
//!
//! Invariants: `commit` applies all of its write sets or none, and returns only after they
//! are durable; it is called by one thread (the committer) at a time. Reads see committed
//! data (sled may also show data whose flush is still running; see README).
//!
//! **Nothing outside `store/` sees a key layout.** The rest of the engine names records
//! through [`records`] (`records::pool(&partner_env, pool_id)`: a typed key to get, put or
//! delete; `records::pools(&partner_env)`: a typed range to scan); `layout` is private to this
//! folder, so tenancy (every partner-owned key starts with its (partner, environment)
//! prefix) and the stored bytes are decided in one place. `tests/it/boundaries.rs` fails on
//! a file outside `store/` that names `layout` or builds a key from a `Table` byte.

pub(crate) mod audit;
pub mod backup;
pub mod codec;
mod layout;
pub mod ownership;
pub(crate) mod pg_cluster;
mod pg_store;
pub mod reads;
pub mod records;
mod read_only;
mod redb_store;
mod sled_store;
mod wal;

use std::fmt;
use std::ops::Bound;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

pub use pg_cluster::{BudgetRow, ClusterDb, FencedWrite, ShardRow};
#[cfg(feature = "internals")]
pub use pg_store::FencePause;
pub use pg_store::{PgStore, PostgresUrl};
#[cfg(feature = "internals")]
pub use pg_store::test_url as postgres_test_url;
pub use read_only::{ENGINE_RUNNING, ReadOnlyOptions, open_store_read_only, open_store_read_only_with};
pub use redb_store::RedbStore;
pub use sled_store::SledStore;
// `LogOperation` arms test faults (the `internals` feature).
#[cfg_attr(not(feature = "internals"), allow(unused_imports))]
pub use wal::{LogFaults, LogOperation, WalOptions, WalStore, applied_sequence_key};

/// The data format's version: bump it when a key encoding or a stored record's layout
/// changes, so a data directory from another format is refused at open, not misread.
/// 2: the partner API (campaigns, users by creation, vesting, auto-refill, daily totals).
pub const SCHEMA_VERSION: u32 = 2;

/// The first byte of every key names its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Table {
    Meta = 0,
    Partners = 1,
    PartnerSlugs = 2,
    ApiKeys = 3,
    KeyDigests = 4,
    PartnerEnvState = 5,
    Pools = 6,
    Users = 7,
    Actions = 8,
    Transactions = 9,
    UserTransactions = 10,
    Idempotency = 11,
    Events = 12,
    /// Index: a partner's keys (`partner id ‖ key id` → empty).
    PartnerKeys = 13,
    Accounts = 14,
    AccountEmails = 15,
    RefreshTokens = 16,
    PoolRequests = 17,
    /// Events decided by operator-side writes, waiting to be recorded by partner actors.
    Announcements = 18,
    Campaigns = 19,
    /// Index: a partner's users in creation order (`prefix ‖ user id` → external id).
    UsersByCreation = 20,
    /// The nonprofit registry, by slug.
    Organizations = 21,
    Donations = 22,
    /// Webhook endpoints, per (partner, environment).
    WebhookEndpoints = 23,
    /// Deliveries, per endpoint, in id (time) order.
    WebhookDeliveries = 24,
    /// The outbox queue: `prefix ‖ endpoint ‖ due ms ‖ delivery` → empty.
    WebhookQueue = 25,
    /// The dispatcher's health record of each endpoint.
    WebhookHealth = 26,
}

impl Table {
    /// The table byte followed by `parts`, concatenated.
    pub fn key(self, parts: &[&[u8]]) -> Vec<u8> {
        let length = 1 + parts.iter().map(|part| part.len()).sum::<usize>();
        let mut key = Vec::with_capacity(length);
        key.push(self as u8);
        for part in parts {
            key.extend_from_slice(part);
        }
        key
    }
}

/// One change in a write set. Keys include their table byte (see [`Table::key`]).
#[derive(Clone, PartialEq, Eq)]
pub enum WriteOp {
    Put { key: Vec<u8>, value: Vec<u8> },
    Delete { key: Vec<u8> },
}

impl fmt::Debug for WriteOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may hold sealed secrets and personal data: show sizes, not bytes.
        match self {
            WriteOp::Put { key, value } => write!(f, "Put(table {}, {} key bytes, {} value bytes)", key[0], key.len(), value.len()),
            WriteOp::Delete { key } => write!(f, "Delete(table {}, {} key bytes)", key[0], key.len()),
        }
    }
}

impl WriteOp {
    pub fn key(&self) -> &[u8] {
        match self {
            WriteOp::Put { key, .. } | WriteOp::Delete { key } => key,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanOrder {
    Ascending,
    Descending,
}

/// A bounded scan over the keys that start with `prefix`. `after` continues a previous
/// page: the scan starts just past that key in the scan's direction.
#[derive(Debug, Clone, Copy)]
pub struct Scan<'a> {
    pub prefix: &'a [u8],
    pub after: Option<&'a [u8]>,
    pub order: ScanOrder,
    pub limit: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("store: {message}")]
pub struct StoreError {
    pub message: String,
}

impl StoreError {
    pub fn new(message: impl Into<String>) -> StoreError {
        StoreError { message: message.into() }
    }
}

pub type KeyValue = (Vec<u8>, Vec<u8>);

/// What [`Store::export`] calls with each key and value, in key order.
pub type ExportVisitor<'a> = dyn FnMut(&[u8], &[u8]) -> Result<(), StoreError> + 'a;

pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> StoreBackend;

    /// Writes every write set in one atomic transaction and returns once it is durable.
    fn commit(&self, write_sets: &[&[WriteOp]]) -> Result<(), StoreError>;

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    fn scan(&self, scan: Scan<'_>) -> Result<Vec<KeyValue>, StoreError>;

    /// Commits the write sets that may still be written and answers the indexes of those
    /// refused: in cluster mode (PostgreSQL), one whose shard moved to another node or
    /// another epoch (`pg_cluster.rs`); every other backend writes them all, like `commit`.
    fn commit_fenced(&self, writes: &[FencedWrite<'_>]) -> Result<Vec<usize>, StoreError> {
        let write_sets: Vec<&[WriteOp]> = writes.iter().map(|write| write.ops).collect();
        self.commit(&write_sets).map(|()| Vec::new())
    }

    /// Calls `visit` with every key and value in key order, all as of one consistent point
    /// that covers every write acknowledged before the call began; the copy's log sequence is
    /// the `wal_applied_sequence` key it holds (see `applied_sequence_key`). The engine keeps
    /// serving meanwhile: the write-ahead log holds the backend still and takes writes in
    /// memory; a bare redb reads one MVCC snapshot; a bare sled (no log) makes commits wait.
    fn export(&self, visit: &mut ExportVisitor<'_>) -> Result<(), StoreError>;

    /// Why the store refuses writes, while it does: a failed log append (until a restart)
    /// or a failing apply into the backend (until one succeeds). `None` when it accepts them.
    /// The reason names the failure (e.g. the OS error), never a key or a value.
    fn unavailable_reason(&self) -> Option<String> {
        None
    }

    /// Whether the store accepts writes (see [`Store::unavailable_reason`]).
    fn is_healthy(&self) -> bool {
        self.unavailable_reason().is_none()
    }
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    Redb,
    Sled,
    /// A PostgreSQL database ([`open_postgres_store`]); no data directory, no write-ahead log.
    Postgres,
}

impl StoreBackend {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreBackend::Redb => "redb",
            StoreBackend::Sled => "sled",
            StoreBackend::Postgres => "postgres",
        }
    }
}

impl fmt::Display for StoreBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StoreBackend {
    type Err = String;

    fn from_str(text: &str) -> Result<StoreBackend, String> {
        match text {
            "redb" => Ok(StoreBackend::Redb),
            "sled" => Ok(StoreBackend::Sled),
            "postgres" => Ok(StoreBackend::Postgres),
            other => Err(format!("unknown store '{other}': expected redb, sled or postgres")),
        }
    }
}

/// Opens (creating if needed) the store of `backend` inside `data_dir` behind the
/// write-ahead log with its default options.
pub fn open_store(backend: StoreBackend, data_dir: &Path) -> Result<Arc<dyn Store>, StoreError> {
    open_store_with(backend, data_dir, WalOptions::default())
}

/// Opens the backend, checks or writes the schema version, replays any write-ahead log
/// left in `data_dir/wal`, and (when the log is enabled) puts the log in front.
pub fn open_store_with(backend: StoreBackend, data_dir: &Path, wal: WalOptions) -> Result<Arc<dyn Store>, StoreError> {
    open_store_with_faults(backend, data_dir, wal, None)
}

/// [`open_store_with`] with failures injected into the log's file operations and its
/// applier (tests only: the failures a real disk cannot produce on demand).
#[doc(hidden)]
pub fn open_store_with_faults(
    backend: StoreBackend,
    data_dir: &Path,
    wal: WalOptions,
    faults: Option<Arc<LogFaults>>,
) -> Result<Arc<dyn Store>, StoreError> {
    if backend == StoreBackend::Postgres {
        return Err(postgres_needs_url());
    }
    std::fs::create_dir_all(data_dir).map_err(|error| StoreError::new(format!("cannot create {}: {error}", data_dir.display())))?;
    backup::check_not_restoring(data_dir)?;
    let store: Arc<dyn Store> = match backend {
        StoreBackend::Redb => Arc::new(RedbStore::open(&data_dir.join("reward.redb"))?),
        StoreBackend::Sled => Arc::new(SledStore::open(&data_dir.join("reward.sled"))?),
        StoreBackend::Postgres => return Err(postgres_needs_url()),
    };
    check_schema(store.as_ref())?;
    let logged = WalStore::open_with_faults(Arc::clone(&store), &data_dir.join("wal"), wal, faults)?;
    if wal.enabled {
        return Ok(Arc::new(logged));
    }
    // Opening replayed whatever an earlier run logged; closing leaves the log empty.
    drop(logged);
    Ok(store)
}

/// Opens the PostgreSQL store at `url`: creates its table if missing, then checks or writes
/// the schema version. Never behind the write-ahead log (see `pg_store.rs`).
pub fn open_postgres_store(url: &PostgresUrl) -> Result<Arc<dyn Store>, StoreError> {
    let store: Arc<dyn Store> = Arc::new(PgStore::open(url)?);
    check_no_restore_mark(store.as_ref())?;
    check_schema(store.as_ref())?;
    Ok(store)
}

/// The Meta key a restore into PostgreSQL writes first and removes last.
pub(crate) fn restore_mark_key() -> Vec<u8> {
    Table::Meta.key(&[b"restore_in_progress"])
}

/// Refuses a database a restore has not finished loading (its records are incomplete).
pub(crate) fn check_no_restore_mark(store: &dyn Store) -> Result<(), StoreError> {
    match store.get(&restore_mark_key())? {
        Some(_) => Err(StoreError::new(
            "a restore into this database did not finish (its mark is still there): empty the kv table and run reward-engine restore again",
        )),
        None => Ok(()),
    }
}

/// [`open_postgres_store`] for a node of a cluster: the cluster's tables too, and commits
/// fenced by `ownership` (`pg_cluster.rs`).
pub fn open_postgres_cluster_store(url: &PostgresUrl, ownership: Arc<ownership::Ownership>) -> Result<Arc<PgStore>, StoreError> {
    let store = Arc::new(PgStore::open_cluster(url, ownership)?);
    check_no_restore_mark(store.as_ref())?;
    check_schema(store.as_ref())?;
    Ok(store)
}

/// What a data-directory operation answers for PostgreSQL, which has none.
pub(crate) fn postgres_needs_url() -> StoreError {
    StoreError::new("the postgres store lives in a database, not a data directory: open it with its URL (store.postgres_url)")
}

/// The Meta key of the schema version (4 bytes, big-endian).
pub(crate) const SCHEMA_KEY: &[u8] = b"schema_version";

/// The key holding the data's schema version (a big-endian `u32`).
pub fn schema_key() -> Vec<u8> {
    Table::Meta.key(&[SCHEMA_KEY])
}

fn check_schema(store: &dyn Store) -> Result<(), StoreError> {
    let key = Table::Meta.key(&[SCHEMA_KEY]);
    match store.get(&key)? {
        Some(bytes) => {
            let found = <[u8; 4]>::try_from(bytes.as_slice()).map(u32::from_be_bytes).map_err(|_| StoreError::new("schema version is unreadable"))?;
            if found != SCHEMA_VERSION {
                return Err(StoreError::new(format!("data was written with schema version {found}; this build reads version {SCHEMA_VERSION}")));
            }
            Ok(())
        }
        None => {
            let anything = store.scan(Scan { prefix: &[], after: None, order: ScanOrder::Ascending, limit: 1 })?;
            if !anything.is_empty() {
                return Err(StoreError::new("data directory holds data without a schema version; refusing to use it"));
            }
            store.commit(&[&[WriteOp::Put { key, value: SCHEMA_VERSION.to_be_bytes().to_vec() }]])
        }
    }
}

/// The key range a scan covers, as bounds over borrowed keys. `end` is the scan's
/// [`prefix_end`], owned by the caller so the bounds can borrow it.
pub(crate) fn scan_bounds<'a>(scan: &Scan<'a>, end: Option<&'a [u8]>) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    let upper: Bound<&[u8]> = end.map_or(Bound::Unbounded, Bound::Excluded);
    match (scan.order, scan.after) {
        (ScanOrder::Ascending, Some(after)) => (Bound::Excluded(after), upper),
        (ScanOrder::Descending, Some(after)) => (Bound::Included(scan.prefix), Bound::Excluded(after)),
        (_, None) => (Bound::Included(scan.prefix), upper),
    }
}

/// The smallest key greater than every key that starts with `prefix`; `None` when there
/// is none (the prefix is empty or all `0xff`).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &[u8], value: &[u8]) -> WriteOp {
        WriteOp::Put { key: key.to_vec(), value: value.to_vec() }
    }

    fn keys(pairs: Vec<KeyValue>) -> Vec<Vec<u8>> {
        pairs.into_iter().map(|(key, _)| key).collect()
    }

    /// The behaviour every backend must have, run against each, with and without the log.
    fn check_backend(backend: StoreBackend) {
        for enabled in [true, false] {
            check_backend_with(backend, WalOptions { enabled, ..WalOptions::default() });
        }
    }

    fn check_backend_with(backend: StoreBackend, wal: WalOptions) {
        let dir = tempfile::tempdir().expect("temp dir");
        check_store(&|| open_store_with(backend, dir.path(), wal).expect("opens"));
    }

    /// The behaviour tests on a store `open` opens (and opens again, to find the data).
    fn check_store(open: &dyn Fn() -> Arc<dyn Store>) {
        {
            let store = open();
            let first: Vec<WriteOp> = vec![put(&[6, 1, 1], b"a"), put(&[6, 1, 2], b"b"), put(&[6, 2, 1], b"c")];
            let second: Vec<WriteOp> = vec![put(&[6, 1, 3], b"d"), WriteOp::Delete { key: vec![6, 2, 1] }];
            store.commit(&[&first, &second]).expect("commits");
            assert_eq!(store.get(&[6, 1, 2]).expect("reads"), Some(b"b".to_vec()));
            assert_eq!(store.get(&[6, 2, 1]).expect("reads"), None);
            let ascending = store.scan(Scan { prefix: &[6, 1], after: None, order: ScanOrder::Ascending, limit: 10 }).expect("scans");
            assert_eq!(keys(ascending), vec![vec![6, 1, 1], vec![6, 1, 2], vec![6, 1, 3]]);
            let descending = store.scan(Scan { prefix: &[6, 1], after: None, order: ScanOrder::Descending, limit: 2 }).expect("scans");
            assert_eq!(keys(descending), vec![vec![6, 1, 3], vec![6, 1, 2]]);
            let next_page = store.scan(Scan { prefix: &[6, 1], after: Some(&[6, 1, 2]), order: ScanOrder::Descending, limit: 2 }).expect("scans");
            assert_eq!(keys(next_page), vec![vec![6, 1, 1]]);
            let after_ascending =
                store.scan(Scan { prefix: &[6, 1], after: Some(&[6, 1, 1]), order: ScanOrder::Ascending, limit: 10 }).expect("scans");
            assert_eq!(keys(after_ascending), vec![vec![6, 1, 2], vec![6, 1, 3]]);
        }
        // Reopening finds the data and the schema version.
        let store = open();
        assert_eq!(store.get(&[6, 1, 3]).expect("reads"), Some(b"d".to_vec()));
    }

    #[test]
    fn redb_backend_behaves() {
        check_backend(StoreBackend::Redb);
    }

    #[test]
    fn sled_backend_behaves() {
        check_backend(StoreBackend::Sled);
    }

    #[test]
    fn postgres_backend_behaves() {
        let Some(url) = pg_store::test_url("backend_behaves") else { return };
        check_store(&|| open_postgres_store(&url).expect("opens"));
        let store = open_postgres_store(&url).expect("opens");
        store.commit(&[&[put(&Table::Meta.key(&[SCHEMA_KEY]), &99u32.to_be_bytes())]]).expect("commits");
        drop(store);
        let error = open_postgres_store(&url).err().expect("refused");
        assert!(error.message.contains("schema version 99"), "{error}");
    }

    #[test]
    fn postgres_has_no_data_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let error = open_store(StoreBackend::Postgres, dir.path()).err().expect("refused");
        assert!(error.message.contains("URL"), "{error}");
        let error = open_store_read_only(StoreBackend::Postgres, dir.path()).err().expect("refused");
        assert!(error.message.contains("postgres"), "{error}");
        assert_eq!("postgres".parse::<StoreBackend>(), Ok(StoreBackend::Postgres));
    }

    #[test]
    fn a_different_schema_version_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            let store = open_store(StoreBackend::Redb, dir.path()).expect("opens");
            store.commit(&[&[put(&Table::Meta.key(&[SCHEMA_KEY]), &99u32.to_be_bytes())]]).expect("commits");
        }
        let error = open_store(StoreBackend::Redb, dir.path()).err().expect("refused");
        assert!(error.message.contains("schema version 99"), "{error}");
    }

    #[test]
    fn prefix_end_skips_trailing_ff() {
        assert_eq!(prefix_end(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff]), None);
        assert_eq!(prefix_end(&[]), None);
    }
}
