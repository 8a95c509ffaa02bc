//! Group commit: one thread drains every pending write set and makes them durable in one
//! store transaction, then acknowledges them all.
//!
//! Throughput scales with the batch, not with the disk's fsync rate: while one batch is
//! being flushed the next accumulates. Invariants:
//! - a write set is acknowledged `Durable` only after the store's commit returned;
//! - write sets from one actor generation are committed in the order they were sent;
//! - after a failed commit, every later write set of the same actor generations fails too
//!   (they were computed on top of the lost one), until those actors reload from the store.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use tokio::sync::watch;

use crate::domain::model::PartnerEnv;
use crate::engine::metrics::EngineMetrics;
use crate::store::{FencedWrite, Store, WriteOp};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitState {
    Pending,
    Durable,
    Failed,
}

/// Runs on the committer thread right after its write set is durable (never when the commit
/// failed): how a writer tells another task about data it may now read. Keep it short.
pub type AfterDurable = Box<dyn FnOnce() + Send>;

/// The promise of one write set's commit. Cheap to clone; every clone sees the outcome.
#[derive(Debug, Clone)]
pub struct CommitReceipt(watch::Receiver<CommitState>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the commit failed; nothing of it was applied")]
pub struct CommitFailed;

impl CommitReceipt {
    pub fn state(&self) -> CommitState {
        *self.0.borrow()
    }

    /// Resolves once the write set is durable (or failed, or the committer is gone).
    pub async fn durable(mut self) -> Result<(), CommitFailed> {
        match self.0.wait_for(|state| *state != CommitState::Pending).await {
            Ok(state) if *state == CommitState::Durable => Ok(()),
            _ => Err(CommitFailed),
        }
    }
}

/// Which actor generation produced a write set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Origin {
    pub partner_env: PartnerEnv,
    pub generation: u64,
    /// In cluster mode, the epoch of the partner's shard the actor loaded its state under:
    /// the store refuses the write set once the shard has moved on (`store::pg_cluster`).
    pub epoch: Option<u64>,
}

struct CommitRequest {
    write_set: Vec<WriteOp>,
    origin: Option<Origin>,
    done: watch::Sender<CommitState>,
    after_durable: Option<AfterDurable>,
}

enum CommitterMessage {
    Write(CommitRequest),
    Stop,
}

/// How the committer batches.
#[derive(Debug, Clone, Copy)]
pub struct CommitterLimits {
    /// The most write sets in one transaction: bounds one commit's latency and memory.
    pub batch_write_sets_max: usize,
}

/// The sending side, shared by the engine and every actor.
#[derive(Clone)]
pub struct CommitterHandle {
    sender: Sender<CommitterMessage>,
    queued: Arc<AtomicUsize>,
}

impl CommitterHandle {
    /// Queues a write set. Never blocks: the queue's bound is enforced at admission
    /// (see `Engine`), which reads [`CommitterHandle::queued`] before taking work.
    pub fn submit(&self, write_set: Vec<WriteOp>, origin: Option<Origin>) -> CommitReceipt {
        self.submit_then(write_set, origin, None)
    }

    /// [`CommitterHandle::submit`], running `after_durable` once the write set is durable.
    pub fn submit_then(&self, write_set: Vec<WriteOp>, origin: Option<Origin>, after_durable: Option<AfterDurable>) -> CommitReceipt {
        let (done, receipt) = watch::channel(CommitState::Pending);
        self.queued.fetch_add(1, Ordering::Relaxed);
        if let Err(error) = self.sender.send(CommitterMessage::Write(CommitRequest { write_set, origin, done, after_durable })) {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            if let CommitterMessage::Write(request) = error.0 {
                let _ = request.done.send(CommitState::Failed);
            }
        }
        CommitReceipt(receipt)
    }

    /// A receipt that resolves once everything queued before it has been committed (or has
    /// failed): an actor takes one before loading its state, so no write set of a
    /// predecessor that died without retiring can land after the load.
    pub fn fence(&self) -> CommitReceipt {
        self.submit(Vec::new(), None)
    }

    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

/// Starts the committer thread.
pub fn start_committer(
    store: Arc<dyn Store>,
    metrics: Arc<EngineMetrics>,
    limits: CommitterLimits,
) -> std::io::Result<(CommitterHandle, CommitterThread)> {
    let (sender, receiver) = crossbeam_channel::unbounded();
    let queued = Arc::new(AtomicUsize::new(0));
    let thread_queued = Arc::clone(&queued);
    let thread = std::thread::Builder::new()
        .name("reward-committer".into())
        .spawn(move || run(store.as_ref(), &receiver, &metrics, limits, &thread_queued))?;
    Ok((CommitterHandle { sender: sender.clone(), queued }, CommitterThread { sender, thread: Some(thread) }))
}

/// Owns the committer thread; `stop` commits what is queued, then joins.
pub struct CommitterThread {
    sender: Sender<CommitterMessage>,
    thread: Option<JoinHandle<()>>,
}

impl CommitterThread {
    pub fn stop(&mut self) {
        let _ = self.sender.send(CommitterMessage::Stop);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the committer thread panicked");
        }
    }
}

impl Drop for CommitterThread {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Actor generations remembered as poisoned. A generation retires as soon as it sees its
/// failure, so only recent ones can still have write sets queued; older ones are forgotten.
const POISONED_GENERATIONS_MAX: usize = 65_536;

fn run(store: &dyn Store, receiver: &Receiver<CommitterMessage>, metrics: &EngineMetrics, limits: CommitterLimits, queued: &AtomicUsize) {
    let mut poisoned = Poisoned::default();
    let mut batch: Vec<CommitRequest> = Vec::with_capacity(limits.batch_write_sets_max);
    loop {
        let mut stopping = match receiver.recv() {
            Ok(CommitterMessage::Write(request)) => {
                batch.push(request);
                false
            }
            Ok(CommitterMessage::Stop) | Err(_) => true,
        };
        while !stopping && batch.len() < limits.batch_write_sets_max {
            match receiver.try_recv() {
                Ok(CommitterMessage::Write(request)) => batch.push(request),
                Ok(CommitterMessage::Stop) | Err(TryRecvError::Disconnected) => stopping = true,
                Err(TryRecvError::Empty) => break,
            }
        }
        if !batch.is_empty() {
            let count = batch.len();
            let outcomes = commit_batch(store, &mut batch, &mut poisoned, metrics);
            // Leave the queue before answering: whoever hears "durable" and sends again must
            // not find its own finished write set still counted against the bound.
            queued.fetch_sub(count, Ordering::Relaxed);
            metrics.commit_queue_depth.set(queued.load(Ordering::Relaxed) as i64);
            for (done, state, after_durable) in outcomes {
                let _ = done.send(state);
                if state == CommitState::Durable
                    && let Some(after_durable) = after_durable
                {
                    after_durable();
                }
            }
        }
        if stopping {
            break;
        }
    }
}

/// Actor generations whose later write sets must fail, oldest forgotten first.
#[derive(Default)]
struct Poisoned {
    set: HashSet<Origin>,
    order: std::collections::VecDeque<Origin>,
}

impl Poisoned {
    fn contains(&self, origin: &Origin) -> bool {
        self.set.contains(origin)
    }

    fn insert(&mut self, origin: Origin) {
        if self.set.insert(origin) {
            self.order.push_back(origin);
        }
        while self.order.len() > POISONED_GENERATIONS_MAX {
            if let Some(oldest) = self.order.pop_front() {
                self.set.remove(&oldest);
            }
        }
    }
}

/// A request's answer, and what runs once it is durable.
type Outcome = (watch::Sender<CommitState>, CommitState, Option<AfterDurable>);

/// Commits the batch's live write sets; answers each request's outcome (to be sent once the
/// queue counter is updated).
fn commit_batch(store: &dyn Store, batch: &mut Vec<CommitRequest>, poisoned: &mut Poisoned, metrics: &EngineMetrics) -> Vec<Outcome> {
    let (doomed, live): (Vec<CommitRequest>, Vec<CommitRequest>) =
        batch.drain(..).partition(|request| request.origin.is_some_and(|origin| poisoned.contains(&origin)));
    let mut outcomes: Vec<Outcome> = doomed.into_iter().map(|request| (request.done, CommitState::Failed, None)).collect();
    if live.is_empty() {
        return outcomes;
    }
    if live.iter().all(|request| request.write_set.is_empty()) {
        // Only fences: nothing to write, and everything before them is settled.
        outcomes.extend(live.into_iter().map(|request| (request.done, CommitState::Durable, request.after_durable)));
        return outcomes;
    }
    let writes: Vec<FencedWrite<'_>> =
        live.iter().map(|request| FencedWrite { ops: &request.write_set, actor_epoch: request.origin.and_then(|origin| origin.epoch) }).collect();
    let started = Instant::now();
    let result = store.commit_fenced(&writes);
    metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
    metrics.commit_batch_size.observe(live.len() as f64);
    match result {
        Ok(refused) => {
            metrics.commit_write_sets.inc_by((live.len() - refused.len()) as u64);
            if !refused.is_empty() {
                // Their shard moved to another node or epoch: nothing of them was written, and
                // their actors' memory belongs to a tenure that is over. They retire.
                tracing::warn!(write_sets = refused.len(), "write sets refused by the cluster fence; their actors retire");
                metrics.commit_fenced.inc_by(refused.len() as u64);
            }
            let mut refused = refused.into_iter().peekable();
            for (index, request) in live.into_iter().enumerate() {
                let state = if refused.next_if_eq(&index).is_some() {
                    if let Some(origin) = request.origin {
                        poisoned.insert(origin);
                    }
                    CommitState::Failed
                } else {
                    CommitState::Durable
                };
                outcomes.push((request.done, state, request.after_durable));
            }
        }
        Err(error) => {
            tracing::error!(%error, write_sets = live.len(), "commit failed; the actors that wrote these write sets will reload from the store");
            metrics.commit_failures.inc();
            live.iter().filter_map(|request| request.origin).for_each(|origin| poisoned.insert(origin));
            outcomes.extend(live.into_iter().map(|request| (request.done, CommitState::Failed, request.after_durable)));
        }
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::IdGenerator;
    use crate::domain::model::Environment;
    use crate::store::{KeyValue, Scan, StoreBackend, StoreError};
    use parking_lot::Mutex;

    /// A store that fails commits on request and records what it applied.
    #[derive(Default)]
    struct FlakyStore {
        fail_next: Mutex<bool>,
        applied: Mutex<Vec<Vec<u8>>>,
    }

    impl Store for FlakyStore {
        fn backend(&self) -> StoreBackend {
            StoreBackend::Redb
        }
        fn commit(&self, write_sets: &[&[WriteOp]]) -> Result<(), StoreError> {
            if std::mem::take(&mut *self.fail_next.lock()) {
                return Err(StoreError::new("injected failure"));
            }
            self.applied.lock().extend(write_sets.iter().flat_map(|set| set.iter().map(|op| op.key().to_vec())));
            Ok(())
        }
        fn get(&self, _key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(None)
        }
        fn scan(&self, _scan: Scan<'_>) -> Result<Vec<KeyValue>, StoreError> {
            Ok(Vec::new())
        }
        fn export(&self, _visit: &mut crate::store::ExportVisitor<'_>) -> Result<(), StoreError> {
            Ok(())
        }
    }

    fn put(key: u8) -> Vec<WriteOp> {
        vec![WriteOp::Put { key: vec![key], value: vec![] }]
    }

    #[tokio::test]
    async fn a_failed_commit_fails_the_later_write_sets_of_the_same_generation() {
        let store = Arc::new(FlakyStore::default());
        let metrics = Arc::new(EngineMetrics::new());
        let (handle, mut thread) = start_committer(store.clone(), metrics, CommitterLimits { batch_write_sets_max: 1 }).expect("starts");
        let origin = Origin { partner_env: PartnerEnv::new(IdGenerator::new().next(1), Environment::Sandbox), generation: 1, epoch: None };
        let other = Origin { generation: 2, ..origin };

        assert_eq!(handle.submit(put(1), Some(origin)).durable().await, Ok(()));
        *store.fail_next.lock() = true;
        assert_eq!(handle.submit(put(2), Some(origin)).durable().await, Err(CommitFailed));
        assert_eq!(handle.submit(put(3), Some(origin)).durable().await, Err(CommitFailed));
        assert_eq!(handle.submit(put(4), Some(other)).durable().await, Ok(()));
        thread.stop();
        assert_eq!(*store.applied.lock(), vec![vec![1], vec![4]]);
    }

    #[tokio::test]
    async fn stop_commits_everything_queued_before_it() {
        let store = Arc::new(FlakyStore::default());
        let (handle, mut thread) =
            start_committer(store.clone(), Arc::new(EngineMetrics::new()), CommitterLimits { batch_write_sets_max: 64 }).expect("starts");
        let receipts: Vec<CommitReceipt> = (0..100).map(|key| handle.submit(put(key), None)).collect();
        thread.stop();
        for receipt in receipts {
            assert_eq!(receipt.state(), CommitState::Durable);
        }
        assert_eq!(store.applied.lock().len(), 100);
        assert_eq!(handle.submit(put(200), None).durable().await, Err(CommitFailed), "after stop nothing commits");
    }

    #[tokio::test]
    async fn after_durable_runs_once_the_write_set_is_applied_and_never_after_a_failure() {
        let store = Arc::new(FlakyStore::default());
        let (handle, mut thread) =
            start_committer(store.clone(), Arc::new(EngineMetrics::new()), CommitterLimits { batch_write_sets_max: 1 }).expect("starts");
        let (heard, hear) = std::sync::mpsc::channel();
        let seen_store = Arc::clone(&store);
        let after = Box::new(move || heard.send(seen_store.applied.lock().clone()).expect("the test listens")) as AfterDurable;
        assert_eq!(handle.submit_then(put(1), None, Some(after)).durable().await, Ok(()));
        assert_eq!(hear.recv().expect("runs"), vec![vec![1]], "it ran after the write set was applied");
        *store.fail_next.lock() = true;
        let (heard, hear) = std::sync::mpsc::channel::<()>();
        let after = Box::new(move || heard.send(()).expect("the test listens")) as AfterDurable;
        assert_eq!(handle.submit_then(put(2), None, Some(after)).durable().await, Err(CommitFailed));
        thread.stop();
        assert!(hear.recv().is_err(), "dropped unrun when the commit failed");
    }
}
