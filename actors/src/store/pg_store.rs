//! The PostgreSQL backend (issue 13's first step: one engine on a database; no cluster yet):
//! one table `kv(key bytea primary key, value bytea not null)`, one transaction per commit.
//!
//! - **Commit**: the write sets' ops collapsed to the last per key, then upserts and deletes
//!   with array parameters (`unnest`, `= ANY`), a statement per [`STATEMENT_BYTES_MAX`] of
//!   keys and values, inside one `BEGIN … COMMIT` on the writer connection. Durable when
//!   `COMMIT` returns, as the database's `synchronous_commit` (on by default) makes it.
//! - **Reads** go to a pool of [`READ_CONNECTIONS`] connections (a `tokio-postgres` client
//!   pipelines concurrent queries); scans are `key` ranges over the bytewise `bytea` order.
//! - **Export** reads one `REPEATABLE READ, READ ONLY` snapshot on a connection of its own, in
//!   key-ordered pages, so commits go on meanwhile.
//! - The write-ahead log is never in front: another node must see every acknowledged write
//!   (issue 13), and the database already logs it.
//! - Only SQL that the PostgreSQL-wire distributed databases (CockroachDB, YugabyteDB) accept
//!   too: no advisory locks, LISTEN/NOTIFY or stored procedures.
//!
//! The trait is synchronous and is called from the committer's thread, the backup's thread
//! and from threads that run async tasks (actors, HTTP handlers), where a blocking client's
//! own `block_on` would panic. So the store owns a small runtime that drives `tokio-postgres`
//! and each call waits for its answer on a plain channel; callers never run the runtime.
//!
//! A lost writer connection (or a commit that failed with it) is reported by
//! [`Store::unavailable_reason`] and reconnected every [`RECONNECT_INTERVAL`] in the
//! background; the engine refuses writes meanwhile and accepts them again once it is back.
//! The URL may hold a password: it is never logged nor shown by `Debug` ([`PostgresUrl`]).

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::ops::Bound;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls};

use super::pg_cluster::{self, ClusterDb, FencedWrite};
use super::{ExportVisitor, KeyValue, Scan, ScanOrder, Store, StoreBackend, StoreError, WriteOp, prefix_end, scan_bounds};
use super::ownership::Ownership;

/// Connections for reads. Each pipelines concurrent queries, so a few cover the engine's
/// readers (actors loading, list routes); more would only cost the database a backend each.
pub const READ_CONNECTIONS: usize = 4;

/// Keys and values in one upsert or delete statement, at most (one larger value goes alone).
/// A group commit is typically a few hundred KiB, one statement; 16 MiB bounds what one
/// message holds in memory on both sides, far below the protocol's 1 GiB limit.
pub const STATEMENT_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Rows per page of an export: the backup's memory per round trip, at 1,000 small records.
const EXPORT_PAGE_ROWS: i64 = 1_000;

/// How long a connection attempt may take when the URL does not say (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one read or one commit may take before it fails (a commit that times out is
/// an unknown outcome, like any failed commit: the engine retires the actors concerned).
/// 30 s is far beyond a healthy database's milliseconds and within clients' patience.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a lost writer connection is tried again.
pub const RECONNECT_INTERVAL: Duration = Duration::from_secs(1);

/// Threads of the store's own runtime: they only move bytes between sockets and callers.
const RUNTIME_THREADS: usize = 2;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS kv (key bytea PRIMARY KEY, value bytea NOT NULL)";
const UPSERT: &str = "INSERT INTO kv (key, value) SELECT * FROM unnest($1::bytea[], $2::bytea[]) ON CONFLICT (key) DO UPDATE SET value = excluded.value";
const DELETE: &str = "DELETE FROM kv WHERE key = ANY($1::bytea[])";

/// A PostgreSQL connection URL (`postgresql://user:password@host:port/database`, or the
/// `key=value` form), checked when built. `Debug` shows where it points, never the password.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(String);

impl PostgresUrl {
    pub fn new(text: &str) -> Result<PostgresUrl, StoreError> {
        // The parser's error names what is wrong, not the URL.
        tokio_postgres::Config::from_str(text).map_err(|error| StoreError::new(format!("the PostgreSQL URL does not parse: {error}")))?;
        Ok(PostgresUrl(text.to_owned()))
    }

    fn config(&self) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::from_str(&self.0).expect("checked when the URL was built");
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config
    }

    /// Where it points: hosts, ports, database and user, no password.
    pub fn redacted(&self) -> String {
        let config = self.config();
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .map(|host| match host {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
        format!(
            "host={} port={} dbname={} user={}",
            hosts.join(","),
            ports.join(","),
            config.get_dbname().unwrap_or("(default)"),
            config.get_user().unwrap_or("(default)")
        )
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresUrl({}, password hidden)", self.redacted())
    }
}

impl serde::Serialize for PostgresUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for PostgresUrl {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<PostgresUrl, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(deserializer)?;
        PostgresUrl::new(&text).map_err(|error| serde::de::Error::custom(error.message))
    }
}

/// The error with its causes (`tokio-postgres` keeps the OS or server message in the
/// source: "error connecting to server: Connection refused"). No cause holds the password.
pub(super) fn store_error(error: impl std::error::Error) -> StoreError {
    let mut message = format!("postgres: {error}");
    let mut cause = error.source();
    while let Some(next) = cause {
        message.push_str(&format!(": {next}"));
        cause = next.source();
    }
    StoreError::new(message)
}

/// What a write transaction does between its `BEGIN` and `COMMIT`, on the writer connection.
type TransactionWork<T> = Box<dyn for<'c> FnOnce(&'c Client) -> Pin<Box<dyn Future<Output = Result<T, tokio_postgres::Error>> + Send + 'c>> + Send>;

/// What the background reconnector and the commits share about the writer connection.
pub(super) struct Writer {
    client: tokio::sync::Mutex<Option<Client>>,
    /// Why writes are refused; `None` while the writer connection is up.
    unavailable: parking_lot::Mutex<Option<String>>,
}

pub struct PgStore {
    /// `None` only while dropping: the runtime is shut down in the background, which is
    /// allowed from any thread (a blocking shutdown inside an async task panics).
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    url: PostgresUrl,
    writer: Arc<Writer>,
    readers: Arc<parking_lot::Mutex<Vec<Arc<Client>>>>,
    next_reader: AtomicUsize,
    /// In cluster mode, the node's ownership: commits go through the fence
    /// ([`Store::commit_fenced`], `pg_cluster.rs`).
    fencing: Option<Arc<Ownership>>,
    /// Tests: the next fenced commit stops between its fence check and its writes.
    #[cfg(any(test, feature = "internals"))]
    pause_after_fence: Arc<parking_lot::Mutex<Option<FencePause>>>,
}

/// Tests: where a paused commit says it reached the pause, and what lets it go on.
#[cfg(any(test, feature = "internals"))]
#[derive(Clone, Default)]
pub struct FencePause {
    pub reached: Arc<tokio::sync::Notify>,
    pub release: Arc<tokio::sync::Notify>,
}

/// Connects and drives the connection on the current runtime; its end is logged (without
/// the URL) and, for the writer, marks the store unavailable.
pub(super) async fn connect(url: &PostgresUrl, writer: Option<Arc<Writer>>) -> Result<Client, StoreError> {
    let (client, connection) = url.config().connect(NoTls).await.map_err(store_error)?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::error!(%error, "a PostgreSQL connection ended");
            if let Some(writer) = writer {
                writer.unavailable.lock().get_or_insert_with(|| format!("postgres: the writer connection was lost ({error}); reconnecting every 1 s"));
            }
        }
    });
    Ok(client)
}

impl PgStore {
    /// Connects (the writer and the readers), creates the table if it is missing, and starts
    /// the writer's reconnector.
    pub fn open(url: &PostgresUrl) -> Result<PgStore, StoreError> {
        PgStore::open_with(url, None)
    }

    /// [`PgStore::open`] for a node of a cluster: the cluster's tables are created (or their
    /// shard count checked), and every commit of the committer is fenced by `ownership`.
    pub fn open_cluster(url: &PostgresUrl, ownership: Arc<Ownership>) -> Result<PgStore, StoreError> {
        PgStore::open_with(url, Some(ownership))
    }

    fn open_with(url: &PostgresUrl, fencing: Option<Arc<Ownership>>) -> Result<PgStore, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_THREADS)
            .thread_name("postgres-store")
            .enable_all()
            .build()
            .map_err(|error| StoreError::new(format!("postgres: cannot start the store's runtime: {error}")))?;
        let handle = runtime.handle().clone();
        let writer = Arc::new(Writer { client: tokio::sync::Mutex::new(None), unavailable: parking_lot::Mutex::new(None) });
        let store = PgStore {
            runtime: Some(runtime),
            handle,
            url: url.clone(),
            writer: Arc::clone(&writer),
            readers: Arc::new(parking_lot::Mutex::new(Vec::new())),
            next_reader: AtomicUsize::new(0),
            fencing: fencing.clone(),
            #[cfg(any(test, feature = "internals"))]
            pause_after_fence: Arc::default(),
        };
        let url = url.clone();
        let shards = fencing.map(|ownership| ownership.map().shards());
        let readers = store.run(async move {
            let client = connect(&url, Some(Arc::clone(&writer))).await?;
            create_tables(&client, shards).await?;
            *writer.client.lock().await = Some(client);
            let mut readers = Vec::with_capacity(READ_CONNECTIONS);
            for _ in 0..READ_CONNECTIONS {
                readers.push(Arc::new(connect(&url, None).await?));
            }
            Ok(readers)
        })?;
        *store.readers.lock() = readers;
        store.handle.spawn(reconnect_writer(store.url.clone(), Arc::downgrade(&store.writer)));
        tracing::info!(database = %store.url.redacted(), read_connections = READ_CONNECTIONS, "PostgreSQL store open");
        Ok(store)
    }

    /// Runs `work` on the store's runtime and waits for it on this thread (which may be one
    /// that runs async tasks: it only blocks, it never drives a runtime).
    fn run<T: Send + 'static>(&self, work: impl Future<Output = Result<T, StoreError>> + Send + 'static) -> Result<T, StoreError> {
        let (answer, answered) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = answer.send(work.await);
        });
        answered.recv().map_err(|_| StoreError::new("postgres: the store's runtime stopped"))?
    }

    /// [`PgStore::run`] bounded by [`OPERATION_TIMEOUT`].
    fn run_bounded<T: Send + 'static>(&self, work: impl Future<Output = Result<T, StoreError>> + Send + 'static) -> Result<T, StoreError> {
        self.run(async move {
            tokio::time::timeout(OPERATION_TIMEOUT, work)
                .await
                .map_err(|_| StoreError::new(format!("postgres: no answer within {} s", OPERATION_TIMEOUT.as_secs())))?
        })
    }

    /// A connection of its own for the cluster's membership loop (to await on the store's
    /// runtime, see [`PgStore::spawn`]).
    pub fn cluster_db(&self, node_id: &str, address: &str, takeover_after_ms: u64) -> impl Future<Output = Result<ClusterDb, StoreError>> + Send + 'static {
        let (url, node_id, address) = (self.url.clone(), node_id.to_owned(), address.to_owned());
        async move { ClusterDb::connect(&url, &node_id, &address, takeover_after_ms).await }
    }

    /// Runs `task` on the store's runtime (the membership loop: it lives as long as the store).
    pub fn spawn<T: Send + 'static>(&self, task: impl Future<Output = T> + Send + 'static) -> tokio::task::JoinHandle<T> {
        self.handle.spawn(task)
    }

    /// The owner of `shard` and its advertised address, read now (a forwarder whose view was
    /// stale asks once before it retries). `None`: free, or its owner's row is gone.
    pub fn shard_owner(&self, shard: u32) -> Result<Option<(String, String)>, StoreError> {
        let reader = self.reader();
        self.run_bounded(async move {
            let client = reader.await?;
            let sql = "SELECT s.owner, n.address FROM reward_shards s JOIN reward_nodes n ON n.node_id = s.owner WHERE s.shard = $1";
            let row = client.query_opt(sql, &[&(shard as i32)]).await.map_err(store_error)?;
            Ok(row.map(|row| (row.get(0), row.get(1))))
        })
    }

    /// Cluster mode: the keys' last use this node saw (key id bytes, ms), for the admin
    /// shard's holder to persist; a later time for the same key and node wins.
    pub fn save_key_usage(&self, node_id: &str, used: &[(Vec<u8>, u64)]) -> Result<(), StoreError> {
        let keys: Vec<Vec<u8>> = used.iter().map(|(key_id, _)| key_id.clone()).collect();
        let times: Vec<i64> = used.iter().map(|(_, used_at_ms)| i64::try_from(*used_at_ms).unwrap_or(i64::MAX)).collect();
        let (node_id, reader) = (node_id.to_owned(), self.reader());
        self.run_bounded(async move {
            let sql = "INSERT INTO reward_key_usage (key_id, node_id, last_used_ms) SELECT k, $2, t FROM unnest($1::bytea[], $3::int8[]) AS u(k, t)
                       ON CONFLICT (key_id, node_id) DO UPDATE SET last_used_ms = GREATEST(reward_key_usage.last_used_ms, excluded.last_used_ms)";
            reader.await?.execute(sql, &[&keys, &node_id, &times]).await.map_err(store_error)?;
            Ok(())
        })
    }

    /// Cluster mode: takes (reads and deletes) every node's saved key usage.
    pub fn take_key_usage(&self) -> Result<Vec<(Vec<u8>, u64)>, StoreError> {
        let reader = self.reader();
        self.run_bounded(async move {
            let rows = reader.await?.query("DELETE FROM reward_key_usage RETURNING key_id, last_used_ms", &[]).await.map_err(store_error)?;
            Ok(rows.iter().map(|row| (row.get::<_, Vec<u8>>(0), u64::try_from(row.get::<_, i64>(1)).unwrap_or(0))).collect())
        })
    }

    /// Tests: the next fenced commit stops right after its fence check (its shards' rows
    /// locked) until `release` is notified; `reached` is notified when it gets there.
    #[cfg(any(test, feature = "internals"))]
    pub fn pause_next_commit_after_fence_check(&self) -> FencePause {
        let pause = FencePause::default();
        *self.pause_after_fence.lock() = Some(pause.clone());
        pause
    }

    /// `BEGIN`, `work`, `COMMIT` on the writer connection, bounded by [`OPERATION_TIMEOUT`].
    /// Whether a transaction that failed committed is unknown: the connection is dropped
    /// (which ends the transaction if it did not) and the reconnector opens a fresh one, as
    /// redb reopens its file; the store refuses writes meanwhile.
    fn write_transaction<T: Send + 'static>(&self, work: TransactionWork<T>) -> Result<T, StoreError> {
        let writer = Arc::clone(&self.writer);
        self.run(async move {
            let mut client = writer.client.lock().await;
            let Some(connected) = client.as_ref().filter(|client| !client.is_closed()) else {
                let reason = writer.unavailable.lock().clone();
                return Err(StoreError::new(reason.unwrap_or_else(|| "postgres: the writer connection is down; reconnecting every 1 s".into())));
            };
            let transaction = async {
                connected.batch_execute("BEGIN").await?;
                let done = work(connected).await?;
                connected.batch_execute("COMMIT").await?;
                Ok::<T, tokio_postgres::Error>(done)
            };
            let error = match tokio::time::timeout(OPERATION_TIMEOUT, transaction).await {
                Ok(Ok(done)) => return Ok(done),
                Ok(Err(error)) => store_error(error),
                Err(_) => StoreError::new(format!("postgres: the commit had no answer within {} s", OPERATION_TIMEOUT.as_secs())),
            };
            *client = None;
            *writer.unavailable.lock() = Some(format!("{}; reconnecting every 1 s", error.message));
            tracing::error!(%error, "a PostgreSQL commit failed; reconnecting");
            Err(error)
        })
    }

    /// A read connection, round robin; one that was lost is replaced first.
    fn reader(&self) -> impl Future<Output = Result<Arc<Client>, StoreError>> + Send + 'static {
        let slot = self.next_reader.fetch_add(1, Ordering::Relaxed) % READ_CONNECTIONS;
        let readers = Arc::clone(&self.readers);
        let url = self.url.clone();
        async move {
            let current = readers.lock().get(slot).cloned();
            match current {
                Some(client) if !client.is_closed() => Ok(client),
                _ => {
                    let client = Arc::new(connect(&url, None).await?);
                    let mut readers = readers.lock();
                    match readers.get_mut(slot) {
                        Some(entry) => *entry = Arc::clone(&client),
                        None => readers.push(Arc::clone(&client)),
                    }
                    Ok(client)
                }
            }
        }
    }
}

/// Nodes starting together race on `CREATE TABLE IF NOT EXISTS`, which PostgreSQL does not
/// make safe against itself (the loser fails on a catalog's unique index): tried again.
const CREATE_ATTEMPTS_MAX: u32 = 5;

/// Whether a `CREATE … IF NOT EXISTS` failed only because another session created the same
/// thing at the same moment (a catalog's unique index, or the table's row type).
pub(super) fn lost_create_race(error: &tokio_postgres::Error) -> bool {
    [SqlState::UNIQUE_VIOLATION, SqlState::DUPLICATE_OBJECT, SqlState::DUPLICATE_TABLE].iter().any(|state| error.code() == Some(state))
}

/// Creates the table (and in cluster mode the cluster's tables) if missing.
async fn create_tables(client: &Client, shards: Option<u32>) -> Result<(), StoreError> {
    let mut attempt = 1;
    loop {
        let created = async {
            client.batch_execute(CREATE_TABLE).await.map_err(|error| (lost_create_race(&error), store_error(error)))?;
            match shards {
                Some(shards) => pg_cluster::prepare(client, shards).await,
                None => Ok(()),
            }
        };
        match created.await {
            Ok(()) => return Ok(()),
            Err((true, _)) if attempt < CREATE_ATTEMPTS_MAX => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err((_, error)) => return Err(error),
        }
    }
}

/// Every [`RECONNECT_INTERVAL`], while the store lives: a writer connection that is missing
/// or closed is opened again, and the store accepts writes once it is.
async fn reconnect_writer(url: PostgresUrl, writer: std::sync::Weak<Writer>) {
    loop {
        tokio::time::sleep(RECONNECT_INTERVAL).await;
        let Some(writer) = writer.upgrade() else { return };
        let mut client = writer.client.lock().await;
        if client.as_ref().is_some_and(|client| !client.is_closed()) {
            continue;
        }
        *client = None;
        match connect(&url, Some(Arc::clone(&writer))).await {
            Ok(connected) => {
                *client = Some(connected);
                *writer.unavailable.lock() = None;
                tracing::info!("the PostgreSQL writer connection is back");
            }
            Err(error) => {
                *writer.unavailable.lock() = Some(format!("{}; reconnecting every 1 s", error.message));
            }
        }
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The batch's puts and deletes after collapsing every op to the last one per key.
#[derive(Debug, Default, PartialEq, Eq)]
struct Collapsed {
    puts: Vec<(Vec<u8>, Vec<u8>)>,
    deletes: Vec<Vec<u8>>,
}

/// The last op per key of `ops` (`None`: a delete), as puts and deletes in key order.
fn collapse_ops<K: Ord + Into<Vec<u8>>, V: Into<Vec<u8>>>(ops: impl Iterator<Item = (K, Option<V>)>) -> Collapsed {
    let last: BTreeMap<K, Option<V>> = ops.collect();
    let mut collapsed = Collapsed::default();
    for (key, value) in last {
        match value {
            Some(value) => collapsed.puts.push((key.into(), value.into())),
            None => collapsed.deletes.push(key.into()),
        }
    }
    collapsed
}

/// The batch's ops collapsed, copying only the keys and values that survive.
fn collapse(write_sets: &[&[WriteOp]]) -> Collapsed {
    collapse_ops(write_sets.iter().flat_map(|write_set| write_set.iter()).map(|op| match op {
        WriteOp::Put { key, value } => (key.as_slice(), Some(value.as_slice())),
        WriteOp::Delete { key } => (key.as_slice(), None),
    }))
}

/// [`collapse`] of write sets the caller gives away: keys and values move, not copied.
fn collapse_owned(write_sets: impl Iterator<Item = Vec<WriteOp>>) -> Collapsed {
    collapse_ops(write_sets.flatten().map(|op| match op {
        WriteOp::Put { key, value } => (key, Some(value)),
        WriteOp::Delete { key } => (key, None),
    }))
}

/// Splits `items` into runs of at most [`STATEMENT_BYTES_MAX`] bytes (by `bytes`); an item
/// larger than the bound is a run of its own.
fn chunks<T>(items: &[T], bytes: impl Fn(&T) -> usize, bytes_max: usize) -> Vec<&[T]> {
    let mut runs = Vec::new();
    let (mut start, mut run_bytes) = (0, 0);
    for (index, item) in items.iter().enumerate() {
        let size = bytes(item);
        if index > start && run_bytes + size > bytes_max {
            runs.push(&items[start..index]);
            (start, run_bytes) = (index, 0);
        }
        run_bytes += size;
    }
    if start < items.len() {
        runs.push(&items[start..]);
    }
    runs
}

/// The batch's upserts and deletes, inside the caller's transaction.
async fn write_rows(client: &Client, batch: &Collapsed) -> Result<(), tokio_postgres::Error> {
    for run in chunks(&batch.puts, |(key, value)| key.len() + value.len(), STATEMENT_BYTES_MAX) {
        let keys: Vec<&[u8]> = run.iter().map(|(key, _)| key.as_slice()).collect();
        let values: Vec<&[u8]> = run.iter().map(|(_, value)| value.as_slice()).collect();
        client.execute_typed(UPSERT, &[(&keys, Type::BYTEA_ARRAY), (&values, Type::BYTEA_ARRAY)]).await?;
    }
    for run in chunks(&batch.deletes, Vec::len, STATEMENT_BYTES_MAX) {
        let keys: Vec<&[u8]> = run.iter().map(Vec::as_slice).collect();
        client.execute_typed(DELETE, &[(&keys, Type::BYTEA_ARRAY)]).await?;
    }
    Ok(())
}

/// The `WHERE … ORDER BY … LIMIT` of a scan and its parameters (`$1`, `$2`, … in order).
fn scan_sql(scan: &Scan<'_>) -> (String, Vec<Vec<u8>>) {
    let end = prefix_end(scan.prefix);
    let (lower, upper) = scan_bounds(scan, end.as_deref());
    let mut conditions = Vec::new();
    let mut parameters = Vec::new();
    for (bound, included, excluded) in [(lower, ">=", ">"), (upper, "<=", "<")] {
        let (operator, key) = match bound {
            Bound::Included(key) => (included, key),
            Bound::Excluded(key) => (excluded, key),
            Bound::Unbounded => continue,
        };
        parameters.push(key.to_vec());
        conditions.push(format!("key {operator} ${}", parameters.len()));
    }
    let filter = if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) };
    let direction = match scan.order {
        ScanOrder::Ascending => "ASC",
        ScanOrder::Descending => "DESC",
    };
    (format!("SELECT key, value FROM kv{filter} ORDER BY key {direction} LIMIT {}", scan.limit), parameters)
}

fn key_values(rows: Vec<tokio_postgres::Row>) -> Result<Vec<KeyValue>, StoreError> {
    rows.into_iter().map(|row| Ok((row.try_get::<_, Vec<u8>>(0).map_err(store_error)?, row.try_get::<_, Vec<u8>>(1).map_err(store_error)?))).collect()
}

impl Store for PgStore {
    fn backend(&self) -> StoreBackend {
        StoreBackend::Postgres
    }

    fn commit(&self, write_sets: &[&[WriteOp]]) -> Result<(), StoreError> {
        let batch = collapse(write_sets);
        if batch.puts.is_empty() && batch.deletes.is_empty() {
            return Ok(());
        }
        self.write_transaction(Box::new(move |client| Box::pin(async move { write_rows(client, &batch).await })))
    }

    /// In cluster mode, one transaction that locks the write sets' shard rows, refuses those
    /// whose epochs moved on (`pg_cluster::check_fences`) and writes the others.
    fn commit_fenced(&self, writes: &[FencedWrite<'_>]) -> Result<Vec<usize>, StoreError> {
        let Some(ownership) = self.fencing.clone() else {
            let write_sets: Vec<&[WriteOp]> = writes.iter().map(|write| write.ops).collect();
            return self.commit(&write_sets).map(|()| Vec::new());
        };
        let expected = pg_cluster::expected_epochs(&ownership, writes);
        // Which write sets survive is known only inside the transaction: they go in owned.
        let mut owned: Vec<Option<Vec<WriteOp>>> = writes.iter().map(|write| Some(write.ops.to_vec())).collect();
        #[cfg(any(test, feature = "internals"))]
        let pause = self.pause_after_fence.lock().take();
        self.write_transaction(Box::new(move |client| {
            Box::pin(async move {
                let refused = pg_cluster::check_fences(client, &ownership, &expected).await?;
                #[cfg(any(test, feature = "internals"))]
                if let Some(pause) = pause {
                    pause.reached.notify_one();
                    pause.release.notified().await;
                }
                for index in &refused {
                    owned[*index] = None;
                }
                write_rows(client, &collapse_owned(owned.into_iter().flatten())).await?;
                Ok(refused)
            })
        }))
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_vec();
        let reader = self.reader();
        self.run_bounded(async move {
            let client = reader.await?;
            let row = client.query_typed_opt("SELECT value FROM kv WHERE key = $1", &[(&key, Type::BYTEA)]).await.map_err(store_error)?;
            row.map(|row| row.try_get::<_, Vec<u8>>(0).map_err(store_error)).transpose()
        })
    }

    fn scan(&self, scan: Scan<'_>) -> Result<Vec<KeyValue>, StoreError> {
        if scan.limit == 0 {
            return Ok(Vec::new());
        }
        let (sql, parameters) = scan_sql(&scan);
        let reader = self.reader();
        self.run_bounded(async move {
            let client = reader.await?;
            let typed: Vec<(&(dyn ToSql + Sync), Type)> = parameters.iter().map(|key| (key as &(dyn ToSql + Sync), Type::BYTEA)).collect();
            key_values(client.query_typed(&sql, &typed).await.map_err(store_error)?)
        })
    }

    /// One `REPEATABLE READ, READ ONLY` transaction on a connection of its own, read in pages
    /// of [`EXPORT_PAGE_ROWS`] keys after the last one seen: one snapshot, while commits go on.
    fn export(&self, visit: &mut ExportVisitor<'_>) -> Result<(), StoreError> {
        let url = self.url.clone();
        let client = self.run_bounded(async move {
            let client = connect(&url, None).await?;
            client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY").await.map_err(store_error)?;
            Ok(client)
        })?;
        let client = Arc::new(client);
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page_client = Arc::clone(&client);
            let page_after = after.clone();
            let page = self.run_bounded(async move {
                let rows = match &page_after {
                    None => page_client.query_typed("SELECT key, value FROM kv ORDER BY key ASC LIMIT $1", &[(&EXPORT_PAGE_ROWS, Type::INT8)]).await,
                    Some(after) => {
                        page_client
                            .query_typed("SELECT key, value FROM kv WHERE key > $1 ORDER BY key ASC LIMIT $2", &[
                                (after, Type::BYTEA),
                                (&EXPORT_PAGE_ROWS, Type::INT8),
                            ])
                            .await
                    }
                };
                key_values(rows.map_err(store_error)?)
            })?;
            for (key, value) in &page {
                visit(key, value)?;
            }
            // A short page is the last one.
            let full = page.len() == EXPORT_PAGE_ROWS as usize;
            match page.into_iter().next_back() {
                Some((key, _)) if full => after = Some(key),
                _ => break,
            }
        }
        // Read only: ending it changes nothing; dropping the client closes the connection.
        self.run_bounded(async move { client.batch_execute("COMMIT").await.map_err(store_error) })
    }

    fn unavailable_reason(&self) -> Option<String> {
        self.writer.unavailable.lock().clone()
    }
}

/// The test database for `test_name`: a fresh schema of that name in the database at
/// `REWARD_TEST_POSTGRES_URL` (`scripts/pg/test_server.sh start` prints one), and a URL whose
/// connections use it and name themselves after it (`application_name`), so tests run in
/// parallel. `None` (the test says it skipped) when the variable is unset, except under CI
/// (`CI` set), where that fails. Test support (unit tests, and the integration tests through
/// the `internals` feature): it panics on a database that does not answer.
#[cfg(any(test, feature = "internals"))]
#[doc(hidden)]
pub fn test_url(test_name: &str) -> Option<PostgresUrl> {
    let Some(base) = std::env::var("REWARD_TEST_POSTGRES_URL").ok().filter(|url| !url.is_empty()) else {
        assert!(std::env::var_os("CI").is_none(), "CI is set but REWARD_TEST_POSTGRES_URL is not: start scripts/pg/test_server.sh and export its url");
        eprintln!("SKIPPED {test_name}: REWARD_TEST_POSTGRES_URL is unset (scripts/pg/test_server.sh start prints one)");
        return None;
    };
    let schema = format!("test_{test_name}");
    // On a thread of its own: the caller may be an async test, where `block_on` panics.
    let (setup_base, setup_schema) = (base.clone(), schema.clone());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a test runtime");
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&setup_base, NoTls).await.expect("the test database answers");
            tokio::spawn(connection);
            let sql = format!("DROP SCHEMA IF EXISTS {setup_schema} CASCADE; CREATE SCHEMA {setup_schema}");
            client.batch_execute(&sql).await.expect("a fresh schema");
        });
    })
    .join()
    .expect("the test schema is made");
    let separator = if base.contains('?') { '&' } else { '?' };
    Some(PostgresUrl::new(&format!("{base}{separator}options=-csearch_path%3D{schema}&application_name={schema}")).expect("a test URL"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &[u8], value: &[u8]) -> WriteOp {
        WriteOp::Put { key: key.to_vec(), value: value.to_vec() }
    }

    #[test]
    fn a_batch_collapses_to_the_last_op_per_key() {
        let first = vec![put(&[1], b"a"), put(&[2], b"b"), WriteOp::Delete { key: vec![3] }];
        let second = vec![put(&[1], b"c"), WriteOp::Delete { key: vec![2] }, put(&[3], b"d")];
        let collapsed = collapse(&[&first, &second]);
        assert_eq!(collapsed.puts, vec![(vec![1], b"c".to_vec()), (vec![3], b"d".to_vec())]);
        assert_eq!(collapsed.deletes, vec![vec![2]]);
    }

    #[test]
    fn chunks_respect_the_byte_bound_and_give_a_large_item_its_own_run() {
        let sizes = [4usize, 4, 4, 20, 1];
        let runs = chunks(&sizes, |size| *size, 10);
        assert_eq!(runs, vec![&sizes[0..2], &sizes[2..3], &sizes[3..4], &sizes[4..5]]);
        assert!(chunks(&[] as &[usize], |size| *size, 10).is_empty());
    }

    #[test]
    fn scans_become_key_ranges() {
        let check = |prefix: &[u8], after: Option<&[u8]>, order, expected_sql: &str, expected_parameters: Vec<Vec<u8>>| {
            let (sql, parameters) = scan_sql(&Scan { prefix, after, order, limit: 5 });
            assert_eq!((sql.as_str(), parameters), (expected_sql, expected_parameters), "{prefix:?} {after:?} {order:?}");
        };
        let ascending = ScanOrder::Ascending;
        let descending = ScanOrder::Descending;
        check(&[6, 1], None, ascending, "SELECT key, value FROM kv WHERE key >= $1 AND key < $2 ORDER BY key ASC LIMIT 5", vec![vec![6, 1], vec![6, 2]]);
        check(&[6, 1], Some(&[6, 1, 2]), ascending, "SELECT key, value FROM kv WHERE key > $1 AND key < $2 ORDER BY key ASC LIMIT 5", vec![
            vec![6, 1, 2],
            vec![6, 2],
        ]);
        check(&[6, 1], Some(&[6, 1, 2]), descending, "SELECT key, value FROM kv WHERE key >= $1 AND key < $2 ORDER BY key DESC LIMIT 5", vec![
            vec![6, 1],
            vec![6, 1, 2],
        ]);
        check(&[0xff], None, descending, "SELECT key, value FROM kv WHERE key >= $1 ORDER BY key DESC LIMIT 5", vec![vec![0xff]]);
        check(&[], None, ascending, "SELECT key, value FROM kv WHERE key >= $1 ORDER BY key ASC LIMIT 5", vec![vec![]]);
    }

    #[test]
    fn the_url_never_shows_its_password() {
        let url = PostgresUrl::new("postgresql://reward:hunter2@db.internal:5433/rewards").expect("parses");
        let shown = format!("{url:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("db.internal") && shown.contains("5433") && shown.contains("rewards"), "{shown}");
        assert!(PostgresUrl::new("postgresql://[not a host").is_err());
    }

    fn store(test_name: &str) -> Option<PgStore> {
        test_url(test_name).map(|url| PgStore::open(&url).expect("opens"))
    }

    fn all(store: &PgStore) -> Vec<KeyValue> {
        let mut pairs = Vec::new();
        store
            .export(&mut |key, value| {
                pairs.push((key.to_vec(), value.to_vec()));
                Ok(())
            })
            .expect("exports");
        pairs
    }

    #[test]
    fn repeated_keys_in_a_batch_keep_the_last_op() {
        let Some(store) = store("repeated_keys") else { return };
        store.commit(&[&[put(&[6, 1], b"old")]]).expect("commits");
        let first = vec![put(&[6, 1], b"a"), put(&[6, 2], b"b"), put(&[6, 1], b"c")];
        let second = vec![WriteOp::Delete { key: vec![6, 3] }, put(&[6, 3], b"put after delete"), put(&[6, 2], b"d"), WriteOp::Delete { key: vec![6, 2] }];
        store.commit(&[&first, &second]).expect("commits");
        assert_eq!(all(&store), vec![(vec![6, 1], b"c".to_vec()), (vec![6, 3], b"put after delete".to_vec())]);
    }

    #[test]
    fn large_values_and_batches_above_the_statement_bound_commit_whole() {
        let Some(store) = store("large_values") else { return };
        let mebibyte = vec![0xab_u8; 1024 * 1024];
        let count = STATEMENT_BYTES_MAX / mebibyte.len() + 3;
        let ops: Vec<WriteOp> = (0..count as u16).map(|index| put(&[7, (index >> 8) as u8, index as u8], &mebibyte)).collect();
        let deletes: Vec<WriteOp> = (0..count as u16).map(|index| WriteOp::Delete { key: vec![8, (index >> 8) as u8, index as u8] }).collect();
        store.commit(&[&ops, &deletes]).expect("a batch of several statements commits");
        let stored = all(&store);
        assert_eq!(stored.len(), count);
        assert!(stored.iter().all(|(_, value)| *value == mebibyte));
        assert_eq!(store.get(&[7, 0, 1]).expect("reads").map(|value| value.len()), Some(1024 * 1024));
    }

    #[test]
    fn scans_at_the_edges_of_the_key_space() {
        let Some(store) = store("scan_edges") else { return };
        let keys: Vec<Vec<u8>> = vec![vec![0], vec![0xfe, 0xff], vec![0xff], vec![0xff, 0], vec![0xff, 0xff], vec![0xff, 0xff, 0xff]];
        let ops: Vec<WriteOp> = keys.iter().map(|key| put(key, b"v")).collect();
        store.commit(&[&ops]).expect("commits");
        let scanned = |prefix: &[u8], after: Option<&[u8]>, order| -> Vec<Vec<u8>> {
            store.scan(Scan { prefix, after, order, limit: 10 }).expect("scans").into_iter().map(|(key, _)| key).collect()
        };
        assert_eq!(scanned(&[0xff], None, ScanOrder::Ascending), keys[2..].to_vec());
        assert_eq!(scanned(&[0xff, 0xff], None, ScanOrder::Descending), vec![vec![0xff, 0xff, 0xff], vec![0xff, 0xff]]);
        assert_eq!(scanned(&[0xff], Some(&[0xff, 0]), ScanOrder::Ascending), keys[4..].to_vec());
        assert_eq!(scanned(&[0xfe], None, ScanOrder::Ascending), vec![vec![0xfe, 0xff]]);
        assert_eq!(scanned(&[], None, ScanOrder::Ascending), keys);
        assert_eq!(scanned(&[], Some(&[0xff]), ScanOrder::Descending), vec![vec![0xfe, 0xff], vec![0]]);
        assert_eq!(store.scan(Scan { prefix: &[], after: None, order: ScanOrder::Descending, limit: 1 }).expect("scans").len(), 1);
    }

    #[test]
    fn an_export_reads_one_snapshot_in_key_order_across_pages() {
        let Some(store) = store("export_pages") else { return };
        let count = EXPORT_PAGE_ROWS as u16 * 2 + 5;
        let ops: Vec<WriteOp> = (0..count).rev().map(|index| put(&[9, (index >> 8) as u8, index as u8], &index.to_be_bytes())).collect();
        store.commit(&[&ops]).expect("commits");
        let mut seen = Vec::new();
        store
            .export(&mut |key, _| {
                if seen.len() == 10 {
                    // A commit in the middle of the export is not in it.
                    store.commit(&[&[put(&[9, 0xff, 0xff], b"late")]]).expect("commits meanwhile");
                }
                seen.push(key.to_vec());
                Ok(())
            })
            .expect("exports");
        assert_eq!(seen.len(), count as usize);
        assert!(seen.windows(2).all(|pair| pair[0] < pair[1]), "in key order");
        assert_eq!(store.get(&[9, 0xff, 0xff]).expect("reads"), Some(b"late".to_vec()));
    }

    #[test]
    fn a_database_with_an_unfinished_restore_is_refused() {
        let Some(url) = test_url("unfinished_restore") else { return };
        let store = PgStore::open(&url).expect("opens");
        store.commit(&[&[put(&crate::store::restore_mark_key(), b"restoring")]]).expect("commits");
        let refused = crate::store::open_postgres_store(&url).err().expect("refused");
        assert!(refused.message.contains("restore into this database did not finish"), "{}", refused.message);
        store.commit(&[&[WriteOp::Delete { key: crate::store::restore_mark_key() }]]).expect("commits");
        assert!(crate::store::open_postgres_store(&url).is_ok(), "opens once the mark is gone");
    }

    #[test]
    fn a_lost_writer_connection_refuses_writes_then_recovers() {
        let Some(url) = test_url("lost_connection") else { return };
        let store = PgStore::open(&url).expect("opens");
        store.commit(&[&[put(&[6, 1], b"a")]]).expect("commits");
        assert_eq!(store.unavailable_reason(), None);
        // Another session ends every connection of this test (they carry its application_name).
        let ended = store
            .run(async move {
                let client = connect(&url, None).await?;
                let sql = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'test_lost_connection' AND pid <> pg_backend_pid()";
                client.query_one(sql, &[]).await.map(|row| row.get::<_, i64>(0)).map_err(store_error)
            })
            .expect("terminates");
        assert!(ended >= 1, "{ended}");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while store.unavailable_reason().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let reason = store.unavailable_reason().expect("the lost connection is reported");
        assert!(reason.contains("postgres"), "{reason}");
        assert!(store.commit(&[&[put(&[6, 2], b"b")]]).is_err(), "no write while the writer is down");
        while store.unavailable_reason().is_some() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(store.unavailable_reason(), None, "reconnected");
        store.commit(&[&[put(&[6, 2], b"b")]]).expect("commits again");
        assert_eq!(store.get(&[6, 1]).expect("a reader reconnects too"), Some(b"a".to_vec()));
    }
}
