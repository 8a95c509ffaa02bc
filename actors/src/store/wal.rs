//! A write-ahead log in front of a backend: durable appends now, B-tree work later, in bulk.
//!
//! A commit appends one checksummed record holding all its write sets to the current log
//! segment and `fdatasync`s it: that is the durability point, one sequential write per batch.
//! The ops then go into an in-memory ordered map (the memtable) that reads consult before
//! the backend, so a write is readable before its commit returns. When the memtable is big
//! or old enough it is frozen (the segment rotates with it) and an applier thread writes it
//! to the backend in one large durable transaction, with the last applied log sequence in
//! the same transaction; then the frozen memtable leaves the read path and its segment is
//! deleted. One large transaction touches each B-tree page once for thousands of write sets,
//! where a transaction per batch rewrote the same pages again and again.
//!
//! Invariants:
//! - a commit returns only after its record is durable in the log;
//! - every record not yet durable in the backend is in the log, at a sequence above the
//!   backend's `wal_applied_sequence`, and in a memtable on the read path;
//! - reads consult memtables newest first, then the backend; data only moves downwards
//!   (active → frozen → backend) and leaves a level only once the level below holds it;
//! - at open, records above the applied sequence are replayed into the backend; a torn or
//!   corrupt record ends the last segment (it was never acknowledged); anywhere else it is
//!   corruption and the store refuses to open.
//!
//! A failing disk (see README, "A failing disk"): a failed append, fdatasync or segment
//! rotation poisons the writer for the life of the process. After a failed fsync the page
//! cache's state is unknown (the kernel may have dropped the dirty pages and marked them
//! clean), so nothing more is appended to that log; the store reports itself unavailable
//! with the reason, and a restart recovers from what is really on disk (a torn tail is
//! dropped). A failed apply into the backend is retried: the log still holds the data, so
//! nothing is lost; the store is unavailable for writes while it fails and available again
//! once an apply succeeds (redb reopens itself after a failed commit; sled latches the
//! error and says a restart is needed).

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_skiplist::SkipMap;
use parking_lot::{Condvar, Mutex, RwLock};

use super::{ExportVisitor, KeyValue, Scan, ScanOrder, Store, StoreBackend, StoreError, Table, WriteOp, prefix_end, scan_bounds};

/// When memtables are frozen and applied.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WalOptions {
    /// Put the log in front of the backend (on by default). Off, every batch is a durable
    /// backend transaction; a log left by an earlier run is still replayed at open.
    pub enabled: bool,
    /// Freeze the memtable once it holds this many key and value bytes. Bounds the memory
    /// of the read overlay (at most `frozen_max + 1` memtables) and the size of one apply.
    pub memtable_bytes_max: usize,
    /// Freeze a non-empty memtable at the first commit after it is this old, so the backend
    /// trails the log by about this much under steady load.
    pub apply_interval_ms: u64,
    /// Frozen memtables waiting for the applier before commits wait for it (back-pressure).
    pub frozen_max: usize,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions { enabled: true, memtable_bytes_max: 64 * 1024 * 1024, apply_interval_ms: 250, frozen_max: 2 }
    }
}

const RECORD_MAGIC: u32 = 0x5245_5741; // "REWA"
/// magic, payload length, crc32, sequence.
const RECORD_HEADER_BYTES: usize = 4 + 4 + 4 + 8;
/// A record larger than this is corruption: one commit batch is far smaller.
const RECORD_PAYLOAD_BYTES_MAX: usize = 1 << 30;
const APPLIED_SEQUENCE_KEY: &[u8] = b"wal_applied_sequence";
/// How long the applier waits before retrying a failed backend commit.
const APPLY_RETRY_DELAY: Duration = Duration::from_secs(1);
/// How long an export waits for the applier to bring the backend up to the export's point
/// (normally one apply interval and one apply, well under a second).
const EXPORT_APPLY_WAIT: Duration = Duration::from_secs(60);
/// While an export holds the backend still, the applier cannot drain the queue, so memtables
/// that fill up (`memtable_bytes_max` each) are queued beyond `frozen_max` until the queue
/// and the active memtable hold this many key and value bytes (plus the skip list's own
/// overhead per entry); past it, commits wait for the export to end. 512 MiB is about a
/// minute of peak load on this machine, longer than a backup of a store of millions of rewards.
const EXPORT_QUEUE_BYTES_MAX: usize = 512 * 1024 * 1024;

/// A log file operation that [`LogFaults`] can make fail.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogOperation {
    /// Appending a record (`write_all`); a failure first writes half the record, as a full
    /// disk leaves a torn tail.
    Write,
    /// `fdatasync` of the segment after an append.
    Sync,
    /// The applier's commit of a frozen memtable into the backend.
    Apply,
}

/// Failures injected into the log's file operations and its applier, for the failures a real
/// disk cannot produce on demand (EIO from fsync, an apply failing while appends work).
/// Tests only: production opens the log without it.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct LogFaults {
    armed: Mutex<Vec<ArmedFault>>,
}

#[derive(Debug)]
struct ArmedFault {
    operation: LogOperation,
    skip: u64,
    times: u64,
    errno: i32,
}

impl LogFaults {
    /// After `skip` more calls of `operation` succeed, the next `times` calls fail with the
    /// OS error `errno` (28 is ENOSPC, 5 is EIO).
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    pub fn arm(&self, operation: LogOperation, skip: u64, times: u64, errno: i32) {
        self.armed.lock().push(ArmedFault { operation, skip, times, errno });
    }

    /// Removes every armed failure (the disk is healthy again).
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    pub fn clear(&self) {
        self.armed.lock().clear();
    }

    fn check(&self, operation: LogOperation) -> std::io::Result<()> {
        let mut armed = self.armed.lock();
        let Some(fault) = armed.iter_mut().find(|fault| fault.operation == operation && fault.times > 0) else {
            return Ok(());
        };
        if fault.skip > 0 {
            fault.skip -= 1;
            return Ok(());
        }
        fault.times -= 1;
        Err(std::io::Error::from_raw_os_error(fault.errno))
    }
}

/// The open segment's file, with the test-only fault layer in front of its two operations.
struct SegmentFile {
    file: File,
    faults: Option<Arc<LogFaults>>,
}

impl SegmentFile {
    fn check(&self, operation: LogOperation) -> std::io::Result<()> {
        self.faults.as_ref().map_or(Ok(()), |faults| faults.check(operation))
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if let Err(error) = self.check(LogOperation::Write) {
            // A full disk accepts part of a write: leave the torn tail recovery must drop.
            self.file.write_all(&bytes[..bytes.len() / 2])?;
            return Err(error);
        }
        self.file.write_all(bytes)
    }

    fn sync_data(&mut self) -> std::io::Result<()> {
        self.check(LogOperation::Sync)?;
        self.file.sync_data()
    }
}

/// Why the store refuses writes: the first reason wins until cleared, and the hot path
/// reads only the `set` flag, without a lock.
#[derive(Default)]
struct Failure {
    set: AtomicBool,
    reason: Mutex<Option<String>>,
}

impl Failure {
    fn raise(&self, reason: String) {
        let mut current = self.reason.lock();
        if current.is_none() {
            *current = Some(reason);
        }
        self.set.store(true, Ordering::Release);
    }

    fn clear(&self) {
        *self.reason.lock() = None;
        self.set.store(false, Ordering::Release);
    }

    fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    fn reason(&self) -> Option<String> {
        if !self.is_set() {
            return None;
        }
        self.reason.lock().clone()
    }
}

fn wal_error(context: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::new(format!("write-ahead log: {context}: {error}"))
}

/// Written keys and their values (`None`: deleted), newest state per key.
struct Memtable {
    entries: SkipMap<Vec<u8>, Option<Vec<u8>>>,
    bytes: AtomicUsize,
    last_sequence: AtomicU64,
    /// The log segment holding exactly this memtable's records, set when it is frozen.
    segment: Mutex<Option<PathBuf>>,
}

impl Memtable {
    fn new() -> Memtable {
        Memtable { entries: SkipMap::new(), bytes: AtomicUsize::new(0), last_sequence: AtomicU64::new(0), segment: Mutex::new(None) }
    }

    fn apply(&self, op: &WriteOp) {
        let (key, value) = match op {
            WriteOp::Put { key, value } => (key, Some(value.clone())),
            WriteOp::Delete { key } => (key, None),
        };
        self.bytes.fetch_add(key.len() + value.as_ref().map_or(0, Vec::len), Ordering::Relaxed);
        self.entries.insert(key.clone(), value);
    }
}

/// The memtables on the read path: the one being written, then frozen ones, newest first.
struct Overlay {
    active: Arc<Memtable>,
    frozen: Vec<Arc<Memtable>>,
}

impl Overlay {
    fn newest_first(&self) -> impl Iterator<Item = &Arc<Memtable>> {
        std::iter::once(&self.active).chain(self.frozen.iter())
    }
}

struct Shared {
    overlay: RwLock<Arc<Overlay>>,
    /// Frozen memtables in freeze order, oldest first: the applier's work.
    queue: Mutex<VecDeque<Arc<Memtable>>>,
    queue_changed: Condvar,
    stopping: AtomicBool,
    /// Set with the writer's `failed`, readable without waiting for a commit in progress.
    log_failure: Failure,
    /// Set while the applier's commits into the backend fail; cleared by one that succeeds.
    apply_failure: Failure,
    faults: Option<Arc<LogFaults>>,
    /// Held by the applier around each commit into the backend, and by an export for its
    /// whole copy: while an export runs, the backend does not change.
    backend_still: Mutex<()>,
    /// Set while an export holds `backend_still`: freezing then queues full memtables beyond
    /// `frozen_max` (up to [`EXPORT_QUEUE_BYTES_MAX`]) instead of waiting for the applier, and
    /// skips the freezes by age (the queue is not being applied, so small memtables only
    /// lengthen the read path).
    exporting: AtomicBool,
}

/// The committer's side: the open segment and the next sequence.
struct Writer {
    dir: PathBuf,
    file: SegmentFile,
    path: PathBuf,
    next_sequence: u64,
    frozen_at: Instant,
    failed: bool,
    buffer: Vec<u8>,
}

pub struct WalStore {
    backend: Arc<dyn Store>,
    shared: Arc<Shared>,
    writer: Mutex<Writer>,
    applier: Mutex<Option<JoinHandle<()>>>,
    options: WalOptions,
}

fn segment_path(dir: &Path, first_sequence: u64) -> PathBuf {
    dir.join(format!("wal-{first_sequence:020}.log"))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|handle| handle.sync_all()).map_err(|error| wal_error("syncing the log directory", error))
}

fn create_segment(dir: &Path, first_sequence: u64) -> Result<(File, PathBuf), StoreError> {
    let path = segment_path(dir, first_sequence);
    let file = OpenOptions::new().create_new(true).append(true).open(&path).map_err(|error| wal_error("creating a segment", error))?;
    // The new file's directory entry must be durable before records in it are acknowledged.
    sync_dir(dir)?;
    Ok((file, path))
}

/// The key holding the last log sequence the backend holds (a big-endian `u64`).
pub fn applied_sequence_key() -> Vec<u8> {
    Table::Meta.key(&[APPLIED_SEQUENCE_KEY])
}

impl WalStore {
    /// Opens the log in `dir` over `backend`, replaying what the backend has not applied.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    pub fn open(backend: Arc<dyn Store>, dir: &Path, options: WalOptions) -> Result<WalStore, StoreError> {
        WalStore::open_with_faults(backend, dir, options, None)
    }

    /// [`WalStore::open`] with injected failures (tests only).
    #[doc(hidden)]
    pub fn open_with_faults(
        backend: Arc<dyn Store>,
        dir: &Path,
        options: WalOptions,
        faults: Option<Arc<LogFaults>>,
    ) -> Result<WalStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|error| wal_error("creating the log directory", error))?;
        let applied = match backend.get(&applied_sequence_key())? {
            Some(bytes) => u64::from_be_bytes(bytes.as_slice().try_into().map_err(|_| wal_error("applied sequence", "unreadable"))?),
            None => 0,
        };
        let last_sequence = recover(backend.as_ref(), dir, applied)?;
        let (file, path) = create_segment(dir, last_sequence + 1)?;
        let shared = Arc::new(Shared {
            overlay: RwLock::new(Arc::new(Overlay { active: Arc::new(Memtable::new()), frozen: Vec::new() })),
            queue: Mutex::new(VecDeque::new()),
            queue_changed: Condvar::new(),
            stopping: AtomicBool::new(false),
            log_failure: Failure::default(),
            apply_failure: Failure::default(),
            faults: faults.clone(),
            backend_still: Mutex::new(()),
            exporting: AtomicBool::new(false),
        });
        let applier_shared = Arc::clone(&shared);
        let applier_backend = Arc::clone(&backend);
        let applier = std::thread::Builder::new()
            .name("reward-wal-applier".into())
            .spawn(move || run_applier(applier_backend.as_ref(), &applier_shared))
            .map_err(|error| wal_error("starting the applier", error))?;
        let writer = Writer {
            dir: dir.to_owned(),
            file: SegmentFile { file, faults },
            path,
            next_sequence: last_sequence + 1,
            frozen_at: Instant::now(),
            failed: false,
            buffer: Vec::new(),
        };
        Ok(WalStore { backend, shared, writer: Mutex::new(writer), applier: Mutex::new(Some(applier)), options })
    }

    /// Freezes what is in memory, lets the applier write everything to the backend, and
    /// stops it. After this the log is empty (unless an export held the backend or applies failed: then the
    /// records stay in the log and are replayed at the next start). Called on drop.
    pub fn close(&self) {
        let mut writer = self.writer.lock();
        if !writer.failed
            && let Err(error) = self.freeze(&mut writer)
        {
            tracing::error!(%error, "freezing the memtable at close failed; the log will be replayed at the next start");
        }
        self.stop_applier();
    }

    fn stop_applier(&self) {
        {
            // Under the queue lock, so the applier cannot miss the wake-up between its
            // check of `stopping` and its wait.
            let _queue = self.shared.queue.lock();
            self.shared.stopping.store(true, Ordering::Release);
            self.shared.queue_changed.notify_all();
        }
        if let Some(applier) = self.applier.lock().take()
            && applier.join().is_err()
        {
            tracing::error!("the write-ahead log applier panicked");
        }
    }

    /// Stops without applying anything, as a crash would (tests only).
    #[doc(hidden)]
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    pub fn abandon_for_test(&self) {
        self.mark_failed(&mut self.writer.lock(), "abandoned by a test".into());
        self.shared.queue.lock().clear();
        self.stop_applier();
    }

    fn mark_failed(&self, writer: &mut Writer, reason: String) {
        writer.failed = true;
        self.shared.log_failure.raise(reason);
    }

    fn overlay(&self) -> Arc<Overlay> {
        Arc::clone(&self.shared.overlay.read())
    }

    /// Moves the active memtable to the frozen list and the applier's queue, and starts a
    /// new segment for the next records. Waits while the applier is `frozen_max` behind and
    /// succeeding; while its applies fail it does not freeze at all (the store refuses new
    /// writes meanwhile, so the active memtable grows by at most what was already admitted).
    fn freeze(&self, writer: &mut Writer) -> Result<(), StoreError> {
        let active_bytes = {
            let overlay = self.overlay();
            if overlay.active.entries.is_empty() {
                return Ok(());
            }
            overlay.active.bytes.load(Ordering::Relaxed)
        };
        {
            let mut queue = self.shared.queue.lock();
            while queue.len() >= self.options.frozen_max && !self.shared.stopping.load(Ordering::Acquire) {
                if self.shared.apply_failure.is_set() {
                    return Ok(());
                }
                if self.shared.exporting.load(Ordering::Acquire) {
                    if active_bytes < self.options.memtable_bytes_max {
                        return Ok(());
                    }
                    let queued: usize = queue.iter().map(|memtable| memtable.bytes.load(Ordering::Relaxed)).sum();
                    if queued + active_bytes <= EXPORT_QUEUE_BYTES_MAX {
                        break;
                    }
                }
                self.shared.queue_changed.wait_for(&mut queue, Duration::from_millis(100));
            }
        }
        let (file, path) = create_segment(&writer.dir, writer.next_sequence)?;
        let closed_path = std::mem::replace(&mut writer.path, path);
        writer.file = SegmentFile { file, faults: self.shared.faults.clone() };
        writer.frozen_at = Instant::now();
        let frozen = {
            let mut overlay = self.shared.overlay.write();
            let frozen = Arc::clone(&overlay.active);
            *frozen.segment.lock() = Some(closed_path);
            let mut frozen_list = Vec::with_capacity(overlay.frozen.len() + 1);
            frozen_list.push(Arc::clone(&frozen));
            frozen_list.extend(overlay.frozen.iter().cloned());
            *overlay = Arc::new(Overlay { active: Arc::new(Memtable::new()), frozen: frozen_list });
            frozen
        };
        self.shared.queue.lock().push_back(frozen);
        self.shared.queue_changed.notify_all();
        Ok(())
    }

    /// The memtables' entries in a key range, newest value per key; with `live_max`, only
    /// each memtable's first `live_max` live entries in scan order.
    fn overlay_range(
        &self,
        overlay: &Overlay,
        bounds: (Bound<&[u8]>, Bound<&[u8]>),
        order: ScanOrder,
        live_max: Option<usize>,
    ) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
        let mut merged = BTreeMap::new();
        for memtable in overlay.newest_first().collect::<Vec<_>>().into_iter().rev() {
            let range = memtable.entries.range::<[u8], _>(bounds);
            let entries: Box<dyn Iterator<Item = _>> = match order {
                ScanOrder::Ascending => Box::new(range),
                ScanOrder::Descending => Box::new(range.rev()),
            };
            let mut live = 0;
            for entry in entries {
                if live_max.is_some_and(|max| live >= max) {
                    break;
                }
                live += usize::from(entry.value().is_some());
                merged.insert(entry.key().clone(), entry.value().clone());
            }
        }
        merged
    }

    /// Waits until the backend holds every record up to `sequence`: no frozen memtable at or
    /// below it is waiting for the applier (the caller froze the active one).
    fn wait_applied(&self, sequence: u64) -> Result<(), StoreError> {
        let deadline = Instant::now() + EXPORT_APPLY_WAIT;
        let mut queue = self.shared.queue.lock();
        while queue.front().is_some_and(|oldest| oldest.last_sequence.load(Ordering::Acquire) <= sequence) {
            if let Some(reason) = self.shared.apply_failure.reason() {
                return Err(wal_error("export", format!("the store is not applying the log: {reason}")));
            }
            if Instant::now() >= deadline {
                return Err(wal_error("export", format!("the log was not applied within {} s", EXPORT_APPLY_WAIT.as_secs())));
            }
            self.shared.queue_changed.wait_for(&mut queue, Duration::from_millis(100));
        }
        Ok(())
    }

    fn append(&self, writer: &mut Writer, write_sets: &[&[WriteOp]]) -> Result<u64, StoreError> {
        let sequence = writer.next_sequence;
        let Writer { buffer, file, .. } = writer;
        encode_record(buffer, sequence, write_sets);
        file.write_all(buffer).map_err(|error| wal_error("appending", error))?;
        file.sync_data().map_err(|error| wal_error("syncing", error))?;
        writer.next_sequence += 1;
        Ok(sequence)
    }
}

impl Drop for WalStore {
    fn drop(&mut self) {
        self.close();
    }
}

impl Store for WalStore {
    fn backend(&self) -> StoreBackend {
        self.backend.backend()
    }

    fn commit(&self, write_sets: &[&[WriteOp]]) -> Result<(), StoreError> {
        let mut writer = self.writer.lock();
        if writer.failed {
            return Err(wal_error("appending", "an earlier append failed; restart to recover from the log"));
        }
        let sequence = match self.append(&mut writer, write_sets) {
            Ok(sequence) => sequence,
            Err(error) => {
                // The segment may now end in a partial record; appending after it would
                // bury it mid-log, and after a failed fsync the page cache cannot be trusted.
                // Refuse further writes; a restart recovers from what is on disk.
                tracing::error!(%error, "the write-ahead log failed; writes stop until a restart");
                self.mark_failed(&mut writer, format!("{error}; writes stop until a restart"));
                return Err(error);
            }
        };
        let overlay = self.overlay();
        for op in write_sets.iter().flat_map(|write_set| write_set.iter()) {
            overlay.active.apply(op);
        }
        overlay.active.last_sequence.store(sequence, Ordering::Release);
        let full = overlay.active.bytes.load(Ordering::Relaxed) >= self.options.memtable_bytes_max;
        let old = writer.frozen_at.elapsed() >= Duration::from_millis(self.options.apply_interval_ms);
        if full || old {
            // The record is durable and readable: a failed rotation must not fail this commit.
            if let Err(error) = self.freeze(&mut writer) {
                tracing::error!(%error, "rotating the write-ahead log failed; writes stop until a restart");
                self.mark_failed(&mut writer, format!("{error}; writes stop until a restart"));
            }
        }
        Ok(())
    }

    /// Freezes the active memtable (so every acknowledged record is frozen or applied), waits
    /// for the applier to write those to the backend, then holds the applier and copies the
    /// backend. Commits go on into the log and memory meanwhile.
    fn export(&self, visit: &mut ExportVisitor<'_>) -> Result<(), StoreError> {
        let covered = {
            let mut writer = self.writer.lock();
            if writer.failed {
                return Err(wal_error("export", "the log failed; restart to recover before a backup"));
            }
            self.freeze(&mut writer)?;
            // Freezing yields (leaves the records in the active memtable) while applies fail
            // or another export holds the backend: then the backend cannot reach this point.
            if !self.overlay().active.entries.is_empty() {
                let reason = self.shared.apply_failure.reason().unwrap_or_else(|| "another export holds the store".into());
                return Err(wal_error("export", format!("the log cannot be applied now ({reason}); try again")));
            }
            writer.next_sequence - 1
        };
        self.wait_applied(covered)?;
        let _still = self.shared.backend_still.lock();
        self.shared.exporting.store(true, Ordering::Release);
        let copied = self.backend.export(visit);
        {
            let _queue = self.shared.queue.lock();
            self.shared.exporting.store(false, Ordering::Release);
            self.shared.queue_changed.notify_all();
        }
        copied
    }

    fn unavailable_reason(&self) -> Option<String> {
        self.shared.log_failure.reason().or_else(|| self.shared.apply_failure.reason())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let overlay = self.overlay();
        for memtable in overlay.newest_first() {
            if let Some(entry) = memtable.entries.get(key) {
                return Ok(entry.value().clone());
            }
        }
        self.backend.get(key)
    }

    fn scan(&self, scan: Scan<'_>) -> Result<Vec<KeyValue>, StoreError> {
        let overlay = self.overlay();
        let end = prefix_end(scan.prefix);
        let (lower, upper) = scan_bounds(&scan, end.as_deref());
        // From each memtable, its first `limit` live entries in scan order, older memtables
        // first so newer values overwrite them. A deletion can hide an older memtable's entry,
        // so when one is met the memtables' whole ranges are taken instead (still bounded by
        // the memtables' size); the engine's hot path never deletes.
        let mut merged = self.overlay_range(&overlay, (lower, upper), scan.order, Some(scan.limit));
        if merged.values().any(Option::is_none) {
            merged = self.overlay_range(&overlay, (lower, upper), scan.order, None);
        }
        let deletions = merged.values().filter(|value| value.is_none()).count();
        let from_backend = self.backend.scan(Scan { limit: scan.limit + deletions, ..scan })?;
        for (key, value) in from_backend {
            merged.entry(key).or_insert(Some(value));
        }
        let live = merged.into_iter().filter_map(|(key, value)| value.map(|value| (key, value)));
        Ok(match scan.order {
            ScanOrder::Ascending => live.take(scan.limit).collect(),
            ScanOrder::Descending => live.rev().take(scan.limit).collect(),
        })
    }
}

/// `[magic][payload length][crc32 of sequence and payload][sequence][payload]`, where the
/// payload is `[op count]` then `[kind][key length][key][value length][value]` per op.
fn encode_record(buffer: &mut Vec<u8>, sequence: u64, write_sets: &[&[WriteOp]]) {
    buffer.clear();
    buffer.resize(RECORD_HEADER_BYTES, 0);
    let ops: Vec<&WriteOp> = write_sets.iter().flat_map(|write_set| write_set.iter()).collect();
    buffer.extend_from_slice(&(ops.len() as u32).to_be_bytes());
    for op in ops {
        match op {
            WriteOp::Put { key, value } => {
                buffer.push(1);
                buffer.extend_from_slice(&(key.len() as u32).to_be_bytes());
                buffer.extend_from_slice(key);
                buffer.extend_from_slice(&(value.len() as u32).to_be_bytes());
                buffer.extend_from_slice(value);
            }
            WriteOp::Delete { key } => {
                buffer.push(0);
                buffer.extend_from_slice(&(key.len() as u32).to_be_bytes());
                buffer.extend_from_slice(key);
            }
        }
    }
    let payload_length = buffer.len() - RECORD_HEADER_BYTES;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&sequence.to_be_bytes());
    crc.update(&buffer[RECORD_HEADER_BYTES..]);
    buffer[0..4].copy_from_slice(&RECORD_MAGIC.to_be_bytes());
    buffer[4..8].copy_from_slice(&(payload_length as u32).to_be_bytes());
    buffer[8..12].copy_from_slice(&crc.finalize().to_be_bytes());
    buffer[12..20].copy_from_slice(&sequence.to_be_bytes());
}

/// Reads one record at `bytes[at..]`: `None` when what is there is not a whole valid record.
pub(super) fn decode_record(bytes: &[u8], at: usize) -> Option<(u64, Vec<WriteOp>, usize)> {
    let header = bytes.get(at..at + RECORD_HEADER_BYTES)?;
    let read_u32 = |slice: &[u8]| u32::from_be_bytes(slice.try_into().expect("four bytes"));
    if read_u32(&header[0..4]) != RECORD_MAGIC {
        return None;
    }
    let payload_length = read_u32(&header[4..8]) as usize;
    if payload_length > RECORD_PAYLOAD_BYTES_MAX {
        return None;
    }
    let sequence = u64::from_be_bytes(header[12..20].try_into().expect("eight bytes"));
    let payload = bytes.get(at + RECORD_HEADER_BYTES..at + RECORD_HEADER_BYTES + payload_length)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header[12..20]);
    crc.update(payload);
    if crc.finalize() != read_u32(&header[8..12]) {
        return None;
    }
    let ops = decode_ops(payload)?;
    Some((sequence, ops, at + RECORD_HEADER_BYTES + payload_length))
}

fn decode_ops(payload: &[u8]) -> Option<Vec<WriteOp>> {
    let mut at = 0;
    let mut take = |length: usize| -> Option<&[u8]> {
        let slice = payload.get(at..at + length)?;
        at += length;
        Some(slice)
    };
    let read_u32 = |slice: &[u8]| u32::from_be_bytes(slice.try_into().expect("four bytes")) as usize;
    let count = read_u32(take(4)?);
    let mut ops = Vec::with_capacity(count.min(1 << 20));
    for _ in 0..count {
        let kind = take(1)?[0];
        let key_length = read_u32(take(4)?);
        let key = take(key_length)?.to_vec();
        ops.push(match kind {
            1 => {
                let value_length = read_u32(take(4)?);
                WriteOp::Put { key, value: take(value_length)?.to_vec() }
            }
            0 => WriteOp::Delete { key },
            _ => return None,
        });
    }
    Some(ops)
}

/// Whether a whole valid record starts anywhere after `at`.
pub(super) fn any_record_after(bytes: &[u8], at: usize) -> bool {
    let magic = RECORD_MAGIC.to_be_bytes();
    (at + 1..bytes.len().saturating_sub(RECORD_HEADER_BYTES - 1))
        .any(|start| bytes[start..start + 4] == magic && decode_record(bytes, start).is_some())
}

/// Log segments in `dir`, oldest first.
pub(super) fn segments(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut found: Vec<(u64, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|error| wal_error("listing segments", error))? {
        let path = entry.map_err(|error| wal_error("listing segments", error))?.path();
        let first =
            path.file_name().and_then(|name| name.to_str()).and_then(|name| name.strip_prefix("wal-")?.strip_suffix(".log")?.parse::<u64>().ok());
        if let Some(first) = first {
            found.push((first, path));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, path)| path).collect())
}

/// Replays records above `applied` into the backend (one durable commit), deletes every
/// segment, and answers the last sequence seen.
fn recover(backend: &dyn Store, dir: &Path, applied: u64) -> Result<u64, StoreError> {
    let paths = segments(dir)?;
    let mut last = applied;
    let mut replay: Vec<WriteOp> = Vec::new();
    for (index, path) in paths.iter().enumerate() {
        let bytes = std::fs::read(path).map_err(|error| wal_error("reading a segment", error))?;
        let mut at = 0;
        while at < bytes.len() {
            let Some((sequence, ops, next)) = decode_record(&bytes, at) else {
                // A torn write can only be the very end of the log: it was never acknowledged.
                // Anything valid after it means a damaged acknowledged record: refuse.
                if index + 1 == paths.len() && !any_record_after(&bytes, at) {
                    tracing::warn!(segment = %path.display(), offset = at, "ignoring a torn record at the end of the log (never acknowledged)");
                    break;
                }
                return Err(wal_error(
                    "recovery",
                    format!("corrupt record in {} at byte {at} with log after it; refusing to drop acknowledged writes", path.display()),
                ));
            };
            if sequence > applied {
                if sequence <= last {
                    return Err(wal_error("recovery", format!("sequence {sequence} after {last} in {}", path.display())));
                }
                replay.extend(ops);
                last = sequence;
            }
            at = next;
        }
    }
    if last > applied {
        tracing::info!(records = last - applied, ops = replay.len(), "replaying the write-ahead log into the store");
        replay.push(WriteOp::Put { key: applied_sequence_key(), value: last.to_be_bytes().to_vec() });
        backend.commit(&[&replay])?;
    }
    for path in paths {
        std::fs::remove_file(&path).map_err(|error| wal_error("removing an applied segment", error))?;
    }
    sync_dir(dir)?;
    Ok(last)
}

fn run_applier(backend: &dyn Store, shared: &Shared) {
    loop {
        let memtable = {
            let mut queue = shared.queue.lock();
            loop {
                if let Some(front) = queue.front() {
                    break Arc::clone(front);
                }
                if shared.stopping.load(Ordering::Acquire) {
                    return;
                }
                shared.queue_changed.wait(&mut queue);
            }
        };
        if !apply_memtable(backend, shared, &memtable) {
            // Stopping with a backend that refuses writes: the log keeps the data for the
            // next start.
            return;
        }
    }
}

fn commit_to_backend(backend: &dyn Store, shared: &Shared, ops: &[WriteOp]) -> Result<(), StoreError> {
    let _still = shared.backend_still.lock();
    if let Some(faults) = &shared.faults {
        faults.check(LogOperation::Apply).map_err(|error| wal_error("applying to the store", error))?;
    }
    backend.commit(&[ops])
}

/// Writes a frozen memtable to the backend (retrying until it succeeds or the store stops),
/// then takes it off the read path and deletes its segment. Answers whether it applied.
fn apply_memtable(backend: &dyn Store, shared: &Shared, memtable: &Arc<Memtable>) -> bool {
    let mut ops: Vec<WriteOp> = memtable
        .entries
        .iter()
        .map(|entry| match entry.value() {
            Some(value) => WriteOp::Put { key: entry.key().clone(), value: value.clone() },
            None => WriteOp::Delete { key: entry.key().clone() },
        })
        .collect();
    let last_sequence = memtable.last_sequence.load(Ordering::Acquire);
    ops.push(WriteOp::Put { key: applied_sequence_key(), value: last_sequence.to_be_bytes().to_vec() });
    while let Err(error) = commit_to_backend(backend, shared, &ops) {
        tracing::error!(%error, "applying the write-ahead log to the store failed; retrying (the log still holds the data)");
        shared.apply_failure.raise(format!("{error}; retrying every {} s", APPLY_RETRY_DELAY.as_secs()));
        if shared.stopping.load(Ordering::Acquire) {
            return false;
        }
        std::thread::sleep(APPLY_RETRY_DELAY);
    }
    if shared.apply_failure.is_set() {
        tracing::info!("applying the write-ahead log to the store works again");
        shared.apply_failure.clear();
    }
    {
        let mut overlay = shared.overlay.write();
        let frozen = overlay.frozen.iter().filter(|candidate| !Arc::ptr_eq(candidate, memtable)).cloned().collect();
        *overlay = Arc::new(Overlay { active: Arc::clone(&overlay.active), frozen });
    }
    {
        let mut queue = shared.queue.lock();
        queue.pop_front();
    }
    shared.queue_changed.notify_all();
    if let Some(path) = memtable.segment.lock().take()
        && let Err(error) = std::fs::remove_file(&path)
    {
        tracing::warn!(%error, segment = %path.display(), "could not remove an applied segment; it is skipped at the next start");
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{RedbStore, SledStore};

    fn put(key: &[u8], value: &[u8]) -> WriteOp {
        WriteOp::Put { key: key.to_vec(), value: value.to_vec() }
    }

    fn open_backend(kind: StoreBackend, dir: &Path) -> Arc<dyn Store> {
        match kind {
            StoreBackend::Redb => Arc::new(RedbStore::open(&dir.join("data.redb")).expect("redb")),
            StoreBackend::Sled => Arc::new(SledStore::open(&dir.join("data.sled")).expect("sled")),
            StoreBackend::Postgres => panic!("the write-ahead log is never in front of the postgres store"),
        }
    }

    fn tiny() -> WalOptions {
        WalOptions { enabled: true, memtable_bytes_max: 64, apply_interval_ms: 0, frozen_max: 1 }
    }

    fn keys(pairs: Vec<KeyValue>) -> Vec<Vec<u8>> {
        pairs.into_iter().map(|(key, _)| key).collect()
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_is_not_a_record() {
        let mut buffer = Vec::new();
        let first: Vec<WriteOp> = vec![put(b"a", b"1"), WriteOp::Delete { key: b"b".to_vec() }];
        encode_record(&mut buffer, 7, &[&first]);
        let (sequence, ops, next) = decode_record(&buffer, 0).expect("valid");
        assert_eq!((sequence, ops, next), (7, first, buffer.len()));
        assert!(decode_record(&buffer[..buffer.len() - 1], 0).is_none(), "short");
        let mut flipped = buffer.clone();
        *flipped.last_mut().expect("bytes") ^= 1;
        assert!(decode_record(&flipped, 0).is_none(), "checksum");
    }

    fn reads_writes_and_recovers(kind: StoreBackend) {
        let dir = tempfile::tempdir().expect("temp dir");
        let wal_dir = dir.path().join("wal");
        {
            let store = WalStore::open(open_backend(kind, dir.path()), &wal_dir, tiny()).expect("opens");
            for index in 0..50u8 {
                store.commit(&[&[put(&[6, 1, index], &[index; 10])]]).expect("commits");
                assert_eq!(store.get(&[6, 1, index]).expect("reads"), Some(vec![index; 10]), "readable at once");
            }
            store.commit(&[&[WriteOp::Delete { key: vec![6, 1, 3] }]]).expect("commits");
            assert_eq!(store.get(&[6, 1, 3]).expect("reads"), None);
            let first = store.scan(Scan { prefix: &[6, 1], after: None, order: ScanOrder::Ascending, limit: 4 }).expect("scans");
            assert_eq!(keys(first), vec![vec![6, 1, 0], vec![6, 1, 1], vec![6, 1, 2], vec![6, 1, 4]]);
            let last = store.scan(Scan { prefix: &[6, 1], after: Some(&[6, 1, 49]), order: ScanOrder::Descending, limit: 2 }).expect("scans");
            assert_eq!(keys(last), vec![vec![6, 1, 48], vec![6, 1, 47]]);
            // Crash: nothing more is applied, the log holds what the backend lacks.
            store.commit(&[&[put(&[6, 2, 0], b"late")]]).expect("commits");
            store.abandon_for_test();
        }
        let store = WalStore::open(open_backend(kind, dir.path()), &wal_dir, tiny()).expect("reopens");
        assert_eq!(store.get(&[6, 2, 0]).expect("reads"), Some(b"late".to_vec()), "replayed from the log");
        assert_eq!(store.get(&[6, 1, 3]).expect("reads"), None, "a deletion replays too");
        assert_eq!(store.get(&[6, 1, 49]).expect("reads"), Some(vec![49; 10]));
        let all = store.scan(Scan { prefix: &[6], after: None, order: ScanOrder::Ascending, limit: 100 }).expect("scans");
        assert_eq!(all.len(), 50);
    }

    #[test]
    fn redb_behind_the_log_reads_writes_and_recovers() {
        reads_writes_and_recovers(StoreBackend::Redb);
    }

    #[test]
    fn sled_behind_the_log_reads_writes_and_recovers() {
        reads_writes_and_recovers(StoreBackend::Sled);
    }

    /// Polls `check` until it holds (bounded: a store test never waits long).
    fn wait_until(what: &str, check: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(Instant::now() < deadline, "{what} did not happen within 10 s");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn open_with(kind: StoreBackend, dir: &Path, options: WalOptions, faults: &Arc<LogFaults>) -> WalStore {
        WalStore::open_with_faults(open_backend(kind, dir), &dir.join("wal"), options, Some(Arc::clone(faults))).expect("opens")
    }

    /// A full disk during an append: the commit fails, the log is poisoned (reads go on),
    /// and a restart keeps every acknowledged record and drops the torn one.
    fn a_failed_append_poisons_the_log_until_a_restart(kind: StoreBackend, operation: LogOperation, errno: i32) {
        let dir = tempfile::tempdir().expect("temp dir");
        let faults = Arc::new(LogFaults::default());
        let big = WalOptions { enabled: true, memtable_bytes_max: usize::MAX, apply_interval_ms: u64::MAX, frozen_max: 2 };
        {
            let store = open_with(kind, dir.path(), big, &faults);
            store.commit(&[&[put(b"\x06a", b"acknowledged")]]).expect("commits");
            faults.arm(operation, 0, 1, errno);
            let error = store.commit(&[&[put(b"\x06b", b"failed")]]).expect_err("the disk fails");
            assert!(error.message.contains(&format!("os error {errno}")), "{error}");
            let reason = store.unavailable_reason().expect("the store says why it refuses writes");
            assert!(reason.contains(&format!("os error {errno}")) && reason.contains("restart"), "{reason}");
            assert!(store.commit(&[&[put(b"\x06c", b"after")]]).is_err(), "the disk works again, the poisoned log does not");
            assert_eq!(store.get(b"\x06a").expect("reads"), Some(b"acknowledged".to_vec()), "reads go on");
            assert_eq!(store.get(b"\x06b").expect("reads"), None, "a failed commit is not readable");
        }
        let store = open_with(kind, dir.path(), big, &faults);
        assert!(store.is_healthy(), "a restart recovers");
        assert_eq!(store.get(b"\x06a").expect("reads"), Some(b"acknowledged".to_vec()), "nothing acknowledged is lost");
        assert_eq!(store.get(b"\x06c").expect("reads"), None, "nothing refused is invented");
        let failed = store.get(b"\x06b").expect("reads");
        match operation {
            // Half a record reached the file: a torn tail, never acknowledged, dropped.
            LogOperation::Write => assert_eq!(failed, None),
            // The whole record reached the page cache before fsync failed: its outcome was
            // unknown (the client heard 504) and here it did reach the disk.
            _ => assert_eq!(failed, Some(b"failed".to_vec())),
        }
        store.commit(&[&[put(b"\x06d", b"new")]]).expect("the recovered log takes writes");
        assert_eq!(store.get(b"\x06d").expect("reads"), Some(b"new".to_vec()));
    }

    #[test]
    fn redb_a_full_disk_mid_append_poisons_the_log_until_a_restart() {
        a_failed_append_poisons_the_log_until_a_restart(StoreBackend::Redb, LogOperation::Write, 28);
    }

    #[test]
    fn sled_a_full_disk_mid_append_poisons_the_log_until_a_restart() {
        a_failed_append_poisons_the_log_until_a_restart(StoreBackend::Sled, LogOperation::Write, 28);
    }

    #[test]
    fn redb_a_failed_fsync_poisons_the_log_until_a_restart() {
        a_failed_append_poisons_the_log_until_a_restart(StoreBackend::Redb, LogOperation::Sync, 5);
    }

    #[test]
    fn sled_a_failed_fsync_poisons_the_log_until_a_restart() {
        a_failed_append_poisons_the_log_until_a_restart(StoreBackend::Sled, LogOperation::Sync, 5);
    }

    /// The backend refusing the applier's commits: the log keeps every write, commits do not
    /// block on the full frozen queue, the store says why, and it recovers once applies work.
    fn a_failing_apply_is_retried_and_recovers(kind: StoreBackend) {
        let dir = tempfile::tempdir().expect("temp dir");
        let faults = Arc::new(LogFaults::default());
        {
            let store = open_with(kind, dir.path(), tiny(), &faults);
            faults.arm(LogOperation::Apply, 0, u64::MAX, 5);
            for index in 0..20u8 {
                store.commit(&[&[put(&[6, 3, index], &[index; 16])]]).expect("the log still takes writes");
            }
            wait_until("the store reports the failing apply", || store.unavailable_reason().is_some_and(|reason| reason.contains("os error 5")));
            assert_eq!(store.get(&[6, 3, 0]).expect("reads"), Some(vec![0; 16]), "the memtables still serve what the backend lacks");
            faults.clear();
            wait_until("the applier recovers", || store.is_healthy());
            // The next commit freezes what accumulated while the applies failed.
            store.commit(&[&[put(&[6, 3, 20], b"after")]]).expect("commits");
            wait_until("everything is applied", || {
                let overlay = store.overlay();
                overlay.frozen.is_empty() && overlay.active.entries.is_empty()
            });
            assert_eq!(store.backend.get(&[6, 3, 19]).expect("reads"), Some(vec![19; 16]), "applied to the backend");
        }
        let store = open_with(kind, dir.path(), tiny(), &faults);
        let all = store.scan(Scan { prefix: &[6, 3], after: None, order: ScanOrder::Ascending, limit: 100 }).expect("scans");
        assert_eq!(all.len(), 21, "every acknowledged write survives a restart");
    }

    #[test]
    fn redb_a_failing_apply_is_retried_and_recovers() {
        a_failing_apply_is_retried_and_recovers(StoreBackend::Redb);
    }

    #[test]
    fn sled_a_failing_apply_is_retried_and_recovers() {
        a_failing_apply_is_retried_and_recovers(StoreBackend::Sled);
    }

    #[test]
    fn a_torn_last_record_is_ignored_and_earlier_corruption_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let wal_dir = dir.path().join("wal");
        let big = WalOptions { enabled: true, memtable_bytes_max: usize::MAX, apply_interval_ms: u64::MAX, frozen_max: 2 };
        {
            let store = WalStore::open(open_backend(StoreBackend::Redb, dir.path()), &wal_dir, big).expect("opens");
            store.commit(&[&[put(b"\x06k1", b"v1")]]).expect("commits");
            store.commit(&[&[put(b"\x06k2", b"v2")]]).expect("commits");
            store.abandon_for_test();
        }
        let segment = segments(&wal_dir).expect("lists").pop().expect("a segment");
        let mut file = OpenOptions::new().append(true).open(&segment).expect("opens");
        file.write_all(&RECORD_MAGIC.to_be_bytes()).expect("torn write");
        drop(file);
        {
            let store = WalStore::open(open_backend(StoreBackend::Redb, dir.path()), &wal_dir, big).expect("a torn tail is fine");
            assert_eq!(store.get(b"\x06k2").expect("reads"), Some(b"v2".to_vec()));
            store.commit(&[&[put(b"\x06k3", b"v3")]]).expect("commits");
            store.abandon_for_test();
        }
        // A damaged record with a valid one after it was acknowledged: refuse, keep the log.
        {
            let store = WalStore::open(open_backend(StoreBackend::Redb, dir.path()), &wal_dir, big).expect("reopens");
            store.commit(&[&[put(b"\x06k4", b"v4")]]).expect("commits");
            store.commit(&[&[put(b"\x06k5", b"v5")]]).expect("commits");
            store.abandon_for_test();
        }
        let segment = segments(&wal_dir).expect("lists").pop().expect("a segment");
        let mut bytes = std::fs::read(&segment).expect("reads");
        bytes[RECORD_HEADER_BYTES + 2] ^= 0xff;
        std::fs::write(&segment, &bytes).expect("writes");
        assert!(WalStore::open(open_backend(StoreBackend::Redb, dir.path()), &wal_dir, big).is_err(), "bit rot is not a torn tail");
        bytes[RECORD_HEADER_BYTES + 2] ^= 0xff;
        std::fs::write(&segment, &bytes).expect("writes");
        {
            let store = WalStore::open(open_backend(StoreBackend::Redb, dir.path()), &wal_dir, big).expect("repaired log opens");
            assert_eq!(store.get(b"\x06k5").expect("reads"), Some(b"v5".to_vec()));
            store.commit(&[&[put(b"\x06k6", b"v6")]]).expect("commits");
            store.abandon_for_test();
        }
        // Garbage in a segment that is not the last one is corruption.
        let segment = segments(&wal_dir).expect("lists").pop().expect("a segment");
        std::fs::write(wal_dir.join("wal-00000000000000000000.log"), b"garbage").expect("writes");
        assert!(segments(&wal_dir).expect("lists").len() == 2 && segment.exists());
        assert!(WalStore::open(open_backend(StoreBackend::Redb, dir.path()), &wal_dir, big).is_err());
    }
}
