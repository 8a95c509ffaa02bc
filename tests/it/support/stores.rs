//! Stores that wrap a real backend to observe durability: every commit is logged with the
//! instant it returned (became durable) and the idempotency keys it carried, and commits
//! can be held at a gate or refused (a transient store failure).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};
use reward_actors::store::{KeyValue, Scan, Store, StoreBackend, StoreError, Table, WriteOp};

#[derive(Debug, Clone)]
pub struct CommitEntry {
    pub durable_at: Instant,
    pub idempotency_keys: Vec<String>,
}

pub struct InstrumentedStore {
    inner: Arc<dyn Store>,
    log: Mutex<Vec<CommitEntry>>,
    gate_open: Mutex<bool>,
    gate_changed: Condvar,
    pub commits_started: AtomicUsize,
    /// Commits carrying a submit (an idempotency record) to refuse from now, before they
    /// reach the store: a transient store failure that background writes cannot absorb.
    pub fail_submits: AtomicUsize,
}

impl InstrumentedStore {
    pub fn new(inner: Arc<dyn Store>) -> InstrumentedStore {
        InstrumentedStore {
            inner,
            log: Mutex::new(Vec::new()),
            gate_open: Mutex::new(true),
            gate_changed: Condvar::new(),
            commits_started: AtomicUsize::new(0),
            fail_submits: AtomicUsize::new(0),
        }
    }

    pub fn close_gate(&self) {
        *self.gate_open.lock() = false;
    }

    pub fn open_gate(&self) {
        *self.gate_open.lock() = true;
        self.gate_changed.notify_all();
    }

    /// Closes the gate until the returned guard drops (also when a failing test unwinds,
    /// so a held committer never outlives its test).
    pub fn hold_commits(self: &Arc<Self>) -> GateGuard {
        self.close_gate();
        GateGuard(Arc::clone(self))
    }

    pub fn log(&self) -> Vec<CommitEntry> {
        self.log.lock().clone()
    }

    /// When the commit holding this submit's idempotency key became durable.
    pub fn durable_at(&self, idempotency_key: &str) -> Option<Instant> {
        self.log.lock().iter().find(|entry| entry.idempotency_keys.iter().any(|key| key == idempotency_key)).map(|entry| entry.durable_at)
    }
}

pub struct GateGuard(Arc<InstrumentedStore>);

impl Drop for GateGuard {
    fn drop(&mut self) {
        self.0.open_gate();
    }
}

/// The idempotency key inside an idempotency-record key: table byte, 13-byte
/// (partner, environment) prefix, scope byte, then the key text.
fn idempotency_key_of(op: &WriteOp) -> Option<String> {
    let key = op.key();
    (key.first() == Some(&(Table::Idempotency as u8)) && key.len() > 15).then(|| String::from_utf8_lossy(&key[15..]).into_owned())
}

impl Store for InstrumentedStore {
    fn backend(&self) -> StoreBackend {
        self.inner.backend()
    }

    fn commit(&self, write_sets: &[&[WriteOp]]) -> Result<(), StoreError> {
        self.commits_started.fetch_add(1, Ordering::SeqCst);
        {
            let mut open = self.gate_open.lock();
            while !*open {
                self.gate_changed.wait(&mut open);
            }
        }
        let carries_submit = write_sets.iter().flat_map(|set| set.iter()).any(|op| idempotency_key_of(op).is_some());
        if carries_submit && self.fail_submits.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(1)).is_ok() {
            return Err(StoreError::new("injected commit failure"));
        }
        self.inner.commit(write_sets)?;
        let durable_at = Instant::now();
        let idempotency_keys = write_sets.iter().flat_map(|set| set.iter()).filter_map(idempotency_key_of).collect();
        self.log.lock().push(CommitEntry { durable_at, idempotency_keys });
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }

    fn scan(&self, scan: Scan<'_>) -> Result<Vec<KeyValue>, StoreError> {
        self.inner.scan(scan)
    }

    fn export(&self, visit: &mut reward_actors::store::ExportVisitor<'_>) -> Result<(), StoreError> {
        self.inner.export(visit)
    }

    fn unavailable_reason(&self) -> Option<String> {
        self.inner.unavailable_reason()
    }
}
