//! The webhook dispatcher: one task that owns delivery state once the outbox row exists.
//!
//! Each pass it looks at the endpoints with work (woken by partner actors, due retries, or
//! the periodic sweep), claims due queue rows up to the endpoint's and the global
//! concurrency bound, and starts one attempt per row, each holding a semaphore permit (no
//! unbounded spawning). Finished attempts come back on a bounded channel; their records
//! (the attempt appended, the queue row moved to the next due time or removed) go to the
//! committer in one write set per pass. A claimed delivery stays claimed until that write
//! set is durable, so no row is attempted twice by one process; a crash before it repeats
//! the attempt (at least once, same event id).
//!
//! An endpoint's status is not the dispatcher's to write: its partner actor is the only
//! writer (see the module above). The dispatcher reports facts ([`DeliveryFact`]: each
//! attempt's outcome and when it was made, each delivery exhausted), at most one report per
//! endpoint in flight so they arrive in order, and keeps them until the actor's verdict is
//! durable (a refused report is sent again, [`REPORT_RETRY_INTERVAL`] later). It learns
//! the endpoint's status and health by reading them from the store after that, or after
//! the actor's `OutboxSignal`, never from a guess of its own. While a report holding a
//! failure awaits its verdict the endpoint gets no new attempt, so a 410 stops deliveries
//! as soon as the actor has judged it (one commit). Facts that would change nothing (a
//! success while healthy, a failure inside a streak that crosses no threshold) are left
//! out when the dispatcher's view of the health is current, so a healthy endpoint costs
//! its actor nothing. A reported fact that may raise an event (a 410, a threshold crossed,
//! a delivery exhausted) has its attempt's record written first, as before the event, so a
//! partner who hears it finds the attempt in the log; a crash before the verdict loses that
//! fact, and the condition raises it again (the next 410 or failure; an exhausted event is
//! lost, as before). Any other reported fact (a streak starting or ending) has its record
//! written only once the verdict is durable (its delivery stays claimed until then), so a
//! crash in between makes the attempt, and the fact, again: a lost success can never let a
//! streak run on.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::attempt::{self, EndpointKey, Finished, Job};
use super::health;
use super::{
    AttemptOutcome, DeliveryFact, DeliveryRecord, DeliveryStatus, EndpointRecord, EndpointStatus, HealthRecord, NextStep, WebhookClientError,
    WebhookSettings,
};
use crate::api::facades::Webhooks;
use crate::commit::{CommitReceipt, CommitState};
use crate::domain::ids::Id;
use crate::domain::model::{EventRecord, PartnerEnv};
use crate::engine::error::EngineError;
use crate::engine::{Engine, EngineShared};
use crate::store::records::{self, QueueEntry, RecordError, RecordKey, StoredValue};
use crate::store::{ScanOrder, WriteOp};

/// Deliveries one endpoint's pending set holds in memory; past it, the rest stay in the
/// store's queue and are read back as the set drains.
const PENDING_MAX: usize = 100_000;
/// Endpoints the sweep loads; far above `webhooks_per_partner_max` × the partners one
/// process serves.
const ENDPOINTS_SWEPT_MAX: usize = 500_000;
/// Orphaned queue rows (their endpoint deleted) removed per sweep.
const ORPHAN_ROWS_PURGED_MAX: usize = 10_000;
/// Facts about one endpoint kept for its partner actor while a report is in flight or
/// refused. An actor answers within milliseconds, and facts that change nothing are left
/// out, so this holds minutes of a failing endpoint's attempts while its actor is
/// unreachable. Past it, the newest fact replaces the one before it (warned): the streak's
/// start and the latest verdict are kept, a warning between them may be lost.
const FACTS_UNREPORTED_MAX: usize = 1_024;
/// Reports in flight to partner actors at once (one per endpoint at most): far above the
/// endpoints that change health in one pass; the rest wait for the next pass.
const REPORTS_IN_FLIGHT_MAX: usize = 1_024;
/// How long a refused report (the actor overloaded or restarting) waits to be sent again.
const REPORT_RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// A queue row whose delivery record is still absent this long after it fell due is an
/// orphan (its record and row are written together, so this never happens in practice).
const ORPHAN_AFTER_MS: u64 = 60_000;
/// Commands (redeliveries) waiting for the dispatcher.
const COMMANDS_MAX: usize = 1_024;
/// Passes run at most this often: wake-ups in between (commits, finished attempts) are
/// gathered into the next pass, so a busy engine costs one scan per endpoint per pass.
const PASS_INTERVAL_MIN: Duration = Duration::from_millis(5);
/// How long a stopping dispatcher waits for attempts in flight to finish and be recorded.
const STOP_GRACE: Duration = Duration::from_secs(5);

pub(crate) enum DispatcherCommand {
    Redeliver { partner_env: PartnerEnv, delivery_id: Id, reply: oneshot::Sender<Result<(DeliveryRecord, CommitReceipt), EngineError>> },
}

/// The running dispatcher, kept by the engine until shutdown.
pub(crate) struct DispatcherHandle {
    pub commands: mpsc::Sender<DispatcherCommand>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl DispatcherHandle {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the webhook dispatcher failed while stopping");
        }
    }
}

struct Slot {
    partner_env: PartnerEnv,
    /// The endpoint and its health as last read from the store (their partner actor writes
    /// both): what the dispatcher acts on, never changed here.
    endpoint: EndpointRecord,
    health: HealthRecord,
    /// Deliveries being attempted, or whose record is not yet durable.
    claimed: HashSet<Id>,
    /// Queued deliveries known in memory, by due time: from partner actors' hints, retries,
    /// and reads of the store's queue. The store's rows are the truth; this saves a scan of
    /// the queue (and of its fresh tombstones) on every pass.
    pending: std::collections::BTreeSet<(u64, Id)>,
    /// Read the store's queue into `pending` before the next dispatch.
    rescan: bool,
    /// The last read stopped at `PENDING_MAX`: read again once `pending` drains.
    truncated: bool,
    /// The endpoint's record is gone: nothing more is sent, its queue rows are purged, and
    /// the slot goes once its claims drain and its queue is empty.
    deleted: bool,
    /// Facts not yet reported to the partner actor, oldest first (at most
    /// [`FACTS_UNREPORTED_MAX`]).
    facts: Vec<DeliveryFact>,
    /// A report is in flight; `Some(true)` when it holds a failure.
    reporting: Option<bool>,
    /// A refused report goes again no sooner than this.
    report_after: Option<Instant>,
    /// The records of attempts whose facts (raising no event) wait in `facts`, and of those
    /// in the report in flight: written once the actor's verdict is durable, so a crash
    /// before it makes the attempt again and so its fact (at least once, like the attempt).
    held: Held,
    reporting_held: Held,
}

/// Attempts' records held back until their facts are judged; their deliveries stay claimed
/// meanwhile (so at most `endpoint_concurrency` per endpoint).
#[derive(Default)]
struct Held {
    ops: Vec<WriteOp>,
    deliveries: Vec<Id>,
}

enum Wake {
    Stop,
    Finished(Box<Finished>),
    Reported(Reported),
    Command(DispatcherCommand),
    Look,
}

struct Dispatcher {
    engine: Engine,
    shared: Arc<EngineShared>,
    settings: Arc<WebhookSettings>,
    client: reqwest::Client,
    slots: HashMap<EndpointKey, Slot>,
    permits: Arc<Semaphore>,
    finished_sender: mpsc::Sender<Finished>,
    finished: mpsc::Receiver<Finished>,
    /// Write sets of recorded attempts not yet durable, with the deliveries they release.
    unsettled: VecDeque<(CommitReceipt, Vec<(EndpointKey, Id)>)>,
    next_sweep: Instant,
    rotation: usize,
    /// Attempts and reports in flight. Those still running when the stop grace ends are
    /// aborted, so none outlives the engine (they hold its store).
    tasks: tokio::task::JoinSet<()>,
    reported_sender: mpsc::Sender<Reported>,
    reported: mpsc::Receiver<Reported>,
    reports_in_flight: usize,
    /// How long a stopping dispatcher waits for attempts and reports in flight.
    stop_grace: Duration,
}

/// A report's answer: the facts it carried, and whether the actor's verdict is durable.
struct Reported {
    key: EndpointKey,
    facts: Arc<Vec<DeliveryFact>>,
    result: Result<(), EngineError>,
}

impl Engine {
    /// Starts the webhook dispatcher with the operator's settings (by [`Engine::start`],
    /// inside the tokio runtime).
    pub(crate) fn start_webhooks(&self, settings: WebhookSettings) -> Result<(), WebhookClientError> {
        let settings = Arc::new(settings);
        *self.shared().webhook_settings.write() = Arc::clone(&settings);
        let dispatcher = Dispatcher::new(self, settings)?;
        let (commands_sender, commands) = mpsc::channel(COMMANDS_MAX);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(dispatcher.run(commands, stopped));
        *self.inner.webhooks.lock() = Some(DispatcherHandle { commands: commands_sender, stop, task });
        Ok(())
    }
}

impl Webhooks<'_> {
    /// The webhook settings in force (the operator's once the dispatcher started).
    pub fn webhook_settings(&self) -> Arc<WebhookSettings> {
        self.engine.shared().webhook_settings()
    }
}

impl Engine {
    /// Stops the dispatcher (attempts in flight get a short grace to be recorded).
    pub(crate) async fn stop_webhooks(&self) {
        let handle = self.inner.webhooks.lock().take();
        if let Some(handle) = handle {
            handle.stop().await;
        }
    }
}

impl Webhooks<'_> {
    /// `POST /webhooks/deliveries/:id/redeliver`: attempt the delivery again now. A pending
    /// delivery's next scheduled attempt moves to now (the schedule goes on from there); an
    /// ended one gets one more attempt, and no schedule after it.
    pub async fn redeliver(&self, partner_env: PartnerEnv, delivery_id: Id) -> Result<DeliveryRecord, EngineError> {
        let commands = self.engine.inner.webhooks.lock().as_ref().map(|handle| handle.commands.clone());
        let commands = commands.ok_or(EngineError::Overloaded { reason: "webhook dispatcher not running", retry_after_secs: 1 })?;
        let (reply, answer) = oneshot::channel();
        commands
            .try_send(DispatcherCommand::Redeliver { partner_env, delivery_id, reply })
            .map_err(|_| EngineError::Overloaded { reason: "webhook dispatcher busy", retry_after_secs: 1 })?;
        let wait = Duration::from_millis(self.engine.config().reply_timeout_ms);
        let (delivery, receipt) =
            tokio::time::timeout(wait, answer).await.map_err(|_| EngineError::Timeout)?.map_err(|_| EngineError::ShuttingDown)??;
        let commit_wait = Duration::from_millis(self.engine.config().commit_timeout_ms);
        match tokio::time::timeout(commit_wait, receipt.durable()).await {
            Ok(Ok(())) => Ok(delivery),
            Ok(Err(_)) => Err(EngineError::Internal("recording a redelivery failed".into())),
            Err(_) => Err(EngineError::Timeout),
        }
    }
}

fn jitter() -> f64 {
    rand::random::<f64>() * 2.0 - 1.0
}

impl Dispatcher {
    fn new(engine: &Engine, settings: Arc<WebhookSettings>) -> Result<Dispatcher, WebhookClientError> {
        let client = attempt::client(&settings)?;
        let (finished_sender, finished) = mpsc::channel(settings.concurrency);
        // Each report in flight sends one answer: this capacity never makes one wait.
        let (reported_sender, reported) = mpsc::channel(REPORTS_IN_FLIGHT_MAX);
        Ok(Dispatcher {
            engine: engine.clone(),
            shared: Arc::clone(engine.shared()),
            permits: Arc::new(Semaphore::new(settings.concurrency)),
            settings,
            client,
            slots: HashMap::new(),
            finished_sender,
            finished,
            unsettled: VecDeque::new(),
            next_sweep: Instant::now(),
            rotation: 0,
            tasks: tokio::task::JoinSet::new(),
            reported_sender,
            reported,
            reports_in_flight: 0,
            stop_grace: STOP_GRACE,
        })
    }

    async fn run(mut self, mut commands: mpsc::Receiver<DispatcherCommand>, mut stopped: watch::Receiver<bool>) {
        tracing::info!(concurrency = self.settings.concurrency, per_endpoint = self.settings.endpoint_concurrency, "webhook dispatcher started");
        let mut last_pass = tokio::time::Instant::now();
        loop {
            let wake = tokio::select! {
                _ = stopped.changed() => Wake::Stop,
                Some(finished) = self.finished.recv() => Wake::Finished(Box::new(finished)),
                Some(reported) = self.reported.recv() => Wake::Reported(reported),
                Some(command) = commands.recv() => Wake::Command(command),
                () = self.shared.webhook_signal.notify.notified() => Wake::Look,
                () = tokio::time::sleep(self.settings.poll_interval) => Wake::Look,
            };
            let mut finished = Vec::new();
            match wake {
                Wake::Stop => break,
                Wake::Finished(first) => finished.push(*first),
                Wake::Reported(reported) => self.on_reported(reported),
                Wake::Command(command) => self.on_command(command),
                Wake::Look => {}
            }
            tokio::time::sleep_until(last_pass + PASS_INTERVAL_MIN).await;
            last_pass = tokio::time::Instant::now();
            while let Ok(more) = self.finished.try_recv() {
                finished.push(more);
            }
            while let Ok(reported) = self.reported.try_recv() {
                self.on_reported(reported);
            }
            self.record(finished);
            self.report();
            self.settle();
            self.absorb_signal();
            if Instant::now() >= self.next_sweep {
                self.sweep();
            }
            self.dispatch();
            while self.tasks.try_join_next().is_some() {}
        }
        self.wind_down().await;
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        tracing::info!("webhook dispatcher stopped");
    }

    fn now_ms(&self) -> u64 {
        self.shared.clock.now_ms()
    }

    fn read<T: StoredValue>(&self, key: &RecordKey<T>, what: &str) -> Option<T> {
        match key.get(self.shared.store.as_ref()) {
            Ok(record) => record,
            Err(RecordError::Decode(error)) => {
                tracing::error!(%error, what, "webhook dispatcher cannot decode a record");
                None
            }
            Err(error) => {
                tracing::error!(%error, what, "webhook dispatcher cannot read the store");
                None
            }
        }
    }

    /// Adds or refreshes an endpoint from its durable record (and its health record, when
    /// read too). An endpoint enabled again has its queue read.
    fn upsert(&mut self, partner_env: PartnerEnv, endpoint: EndpointRecord, health: Option<HealthRecord>) {
        let key = (partner_env, endpoint.id);
        match self.slots.get_mut(&key) {
            Some(slot) => {
                slot.deleted = false;
                if slot.endpoint.status == EndpointStatus::Disabled && endpoint.status == EndpointStatus::Enabled {
                    slot.rescan = true;
                }
                slot.endpoint = endpoint;
                if let Some(health) = health {
                    slot.health = health;
                }
            }
            None => {
                let health = health.unwrap_or_else(|| self.read_health(partner_env, endpoint.id));
                let slot = Slot {
                    partner_env,
                    endpoint,
                    health,
                    claimed: HashSet::new(),
                    pending: std::collections::BTreeSet::new(),
                    rescan: true,
                    truncated: false,
                    deleted: false,
                    facts: Vec::new(),
                    reporting: None,
                    report_after: None,
                    held: Held::default(),
                    reporting_held: Held::default(),
                };
                self.slots.insert(key, slot);
            }
        }
    }

    fn read_health(&self, partner_env: PartnerEnv, endpoint_id: Id) -> HealthRecord {
        self.read(&records::webhook_health(&partner_env, endpoint_id), "webhook health").unwrap_or_default()
    }

    /// Reads an endpoint's durable record and health (after its actor's write set is
    /// durable): refreshes its slot, or marks it deleted.
    fn reread(&mut self, partner_env: PartnerEnv, endpoint_id: Id) {
        match self.read::<EndpointRecord>(&records::webhook_endpoint(&partner_env, endpoint_id), "webhook endpoint") {
            Some(endpoint) => {
                let health = self.read_health(partner_env, endpoint_id);
                self.upsert(partner_env, endpoint, Some(health));
            }
            // The change is durable, so absent is deleted.
            None => {
                if let Some(slot) = self.slots.get_mut(&(partner_env, endpoint_id)) {
                    slot.deleted = true;
                }
            }
        }
    }

    /// What partner actors said since the last pass (all of it durable): reread changed
    /// endpoints, then add the deliveries they queued to the pending sets.
    fn absorb_signal(&mut self) {
        let signal = self.shared.webhook_signal.take();
        if signal.overflowed {
            for slot in self.slots.values_mut() {
                slot.rescan = true;
            }
        }
        let mut named: HashSet<EndpointKey> = signal.endpoints;
        named
            .extend(signal.queued.iter().map(|(partner_env, queued)| (*partner_env, queued.endpoint_id)).filter(|key| !self.slots.contains_key(key)));
        for (partner_env, endpoint_id) in named {
            self.reread(partner_env, endpoint_id);
        }
        for (partner_env, queued) in &signal.queued {
            match self.slots.get_mut(&(*partner_env, queued.endpoint_id)) {
                Some(slot) if slot.pending.len() < PENDING_MAX => {
                    slot.pending.insert((queued.due_ms, queued.delivery_id));
                }
                Some(slot) => slot.truncated = true,
                // Its slot starts with a read of the store's queue, which holds this row.
                None => {}
            }
        }
    }

    /// Rereads every endpoint, drops deleted ones (and their leftover queue rows), and
    /// looks at every queue.
    fn sweep(&mut self) {
        self.next_sweep = Instant::now() + self.settings.sweep_interval;
        let rows = match records::all_webhook_endpoints().scan(self.shared.store.as_ref(), ScanOrder::Ascending, ENDPOINTS_SWEPT_MAX) {
            Ok(rows) => rows,
            Err(error) => {
                tracing::error!(%error, "webhook sweep cannot read endpoints");
                return;
            }
        };
        // In a cluster, this node delivers only for the shards it holds: the owner of the
        // others claims their queues. A slot of a shard that left is forgotten once its
        // attempts in flight end (their records are refused by the fence; the new owner
        // repeats them with the same event id: at least once).
        let cluster = self.shared.cluster.clone();
        let held = move |partner_env: &PartnerEnv| cluster.as_ref().is_none_or(|ownership| ownership.epoch_for(partner_env).is_some());
        self.slots.retain(|(partner_env, _), slot| held(partner_env) || !slot.claimed.is_empty());
        let mut present = HashSet::with_capacity(rows.len());
        for row in rows {
            let (Some(partner_env), Ok(endpoint)) = (row.key.partner_env(), row.record()) else {
                tracing::error!("webhook sweep skipped an undecodable endpoint record");
                continue;
            };
            if !held(&partner_env) {
                continue;
            }
            present.insert((partner_env, endpoint.id));
            self.upsert(partner_env, endpoint, None);
        }
        let gone: Vec<EndpointKey> = self.slots.keys().filter(|key| !present.contains(key) && held(&key.0)).copied().collect();
        for (partner_env, endpoint_id) in gone {
            let Some(slot) = self.slots.get_mut(&(partner_env, endpoint_id)) else { continue };
            slot.deleted = true;
            slot.pending.clear();
            if !slot.claimed.is_empty() {
                continue;
            }
            // Purge its leftover queue rows a chunk per sweep; the slot goes when none is left.
            match records::webhook_queue(&partner_env, endpoint_id).scan(self.shared.store.as_ref(), ScanOrder::Ascending, ORPHAN_ROWS_PURGED_MAX) {
                Ok(rows) if rows.is_empty() => {
                    self.slots.remove(&(partner_env, endpoint_id));
                }
                Ok(rows) => {
                    self.shared.committer.submit(rows.into_iter().map(|row| row.key.delete()).collect(), None);
                }
                Err(error) => tracing::error!(%error, "webhook sweep cannot read a deleted endpoint's queue"),
            }
        }
        for slot in self.slots.values_mut().filter(|slot| !slot.deleted) {
            slot.rescan = true;
        }
    }

    /// Releases deliveries whose recorded attempt is durable (or failed to be: then the
    /// queue row is still there and the attempt repeats).
    fn settle(&mut self) {
        while let Some((receipt, _)) = self.unsettled.front() {
            match receipt.state() {
                CommitState::Pending => break,
                CommitState::Durable | CommitState::Failed => {
                    let (_, released) = self.unsettled.pop_front().expect("front exists");
                    for (key, delivery_id) in released {
                        if let Some(slot) = self.slots.get_mut(&key) {
                            slot.claimed.remove(&delivery_id);
                        }
                    }
                }
            }
        }
    }

    /// Claims due rows and starts attempts, endpoint by endpoint (a rotating start, so no
    /// endpoint always goes first), until the global permits run out.
    fn dispatch(&mut self) {
        let now_ms = self.now_ms();
        let endpoint_concurrency = self.settings.endpoint_concurrency;
        // One pass over the slots: the queued gauge, and the endpoints with something due (or
        // a queue to read) and a free slot.
        let mut queued = 0usize;
        let mut keys: Vec<EndpointKey> = Vec::new();
        for (key, slot) in &self.slots {
            queued += slot.pending.len();
            let due = slot.pending.first().is_some_and(|(due_ms, _)| *due_ms <= now_ms);
            let read = slot.rescan || (slot.truncated && slot.pending.is_empty());
            if slot.may_claim(endpoint_concurrency) && (due || read) {
                keys.push(*key);
            }
        }
        self.shared.metrics.webhook_queued.set(i64::try_from(queued).unwrap_or(i64::MAX));
        if keys.is_empty() {
            return;
        }
        keys.sort_unstable_by_key(|(partner_env, endpoint_id)| (partner_env.key_prefix(), *endpoint_id.as_bytes()));
        self.rotation = self.rotation.wrapping_add(1);
        let start = self.rotation % keys.len();
        keys.rotate_left(start);
        let mut stale = Vec::new();
        for key in keys {
            if self.permits.available_permits() == 0 {
                break;
            }
            self.dispatch_endpoint(key, now_ms, &mut stale);
        }
        if !stale.is_empty() {
            self.shared.committer.submit(stale, None);
        }
    }

    /// Reads an endpoint's queue rows from the store into its pending set (rows being
    /// attempted excepted).
    fn rescan(&mut self, key: EndpointKey) {
        let Some(slot) = self.slots.get_mut(&key) else {
            return;
        };
        let rows = match records::webhook_queue(&slot.partner_env, key.1).scan(self.shared.store.as_ref(), ScanOrder::Ascending, PENDING_MAX) {
            Ok(rows) => rows,
            Err(error) => {
                tracing::error!(%error, "webhook dispatcher cannot read a queue");
                return;
            }
        };
        slot.rescan = false;
        slot.truncated = rows.len() == PENDING_MAX;
        for row in rows {
            if let Some((due_ms, delivery_id)) = row.key.due_ms_and_delivery()
                && !slot.claimed.contains(&delivery_id)
                && slot.pending.len() < PENDING_MAX
            {
                slot.pending.insert((due_ms, delivery_id));
            }
        }
    }

    fn dispatch_endpoint(&mut self, key: EndpointKey, now_ms: u64, stale: &mut Vec<WriteOp>) {
        let endpoint_concurrency = self.settings.endpoint_concurrency;
        let Some(slot) = self.slots.get(&key) else {
            return;
        };
        if !slot.may_claim(endpoint_concurrency) {
            return;
        }
        if slot.rescan || (slot.truncated && slot.pending.is_empty()) {
            self.rescan(key);
        }
        let Some(slot) = self.slots.get_mut(&key) else {
            return;
        };
        let free = (endpoint_concurrency - slot.claimed.len()).min(self.permits.available_permits());
        let due: Vec<(u64, Id)> = slot
            .pending
            .iter()
            .take_while(|(due_ms, _)| *due_ms <= now_ms)
            .filter(|(_, id)| !slot.claimed.contains(id))
            .take(free)
            .copied()
            .collect();
        if due.is_empty() {
            return;
        }
        let (partner_env, endpoint) = (slot.partner_env, slot.endpoint.clone());
        let secrets = match endpoint.signing_secrets(&self.shared.master_key, now_ms) {
            Ok(secrets) => secrets,
            Err(error) => {
                tracing::error!(%error, endpoint = %endpoint.id, "cannot open a webhook secret; deliveries to it wait");
                return;
            }
        };
        for (hinted_due_ms, delivery_id) in due {
            // The same delivery may be pending under two due times (a hint and a read of the
            // queue): never attempt it twice at once.
            if self.slots.get(&key).is_some_and(|slot| slot.claimed.contains(&delivery_id)) {
                if let Some(slot) = self.slots.get_mut(&key) {
                    slot.pending.remove(&(hinted_due_ms, delivery_id));
                }
                continue;
            }
            let delivery_key = records::webhook_delivery(&partner_env, endpoint.id, delivery_id);
            let read = self.read::<DeliveryRecord>(&delivery_key, "webhook delivery");
            let slot = self.slots.get_mut(&key).expect("the slot exists during its dispatch");
            let delivery = match read {
                Some(delivery) if delivery.status == DeliveryStatus::Pending => delivery,
                // Ended meanwhile (a redelivery or a duplicate hint): the row is stale.
                Some(_) => {
                    slot.pending.remove(&(hinted_due_ms, delivery_id));
                    stale.push(records::webhook_queue_row(&partner_env, endpoint.id, hinted_due_ms, delivery_id).delete());
                    continue;
                }
                // Written with its row, so absent means not durable yet; only a row long past
                // due without its record is an orphan.
                None => {
                    if hinted_due_ms.saturating_add(ORPHAN_AFTER_MS) < now_ms {
                        tracing::warn!(delivery = %delivery_id, "dropping a webhook queue row without its delivery record");
                        slot.pending.remove(&(hinted_due_ms, delivery_id));
                        stale.push(records::webhook_queue_row(&partner_env, endpoint.id, hinted_due_ms, delivery_id).delete());
                    }
                    continue;
                }
            };
            slot.pending.remove(&(hinted_due_ms, delivery_id));
            // The record knows the row's real due time (a hint may be older than a redelivery).
            let due_ms = delivery.next_attempt_at_ms.unwrap_or(hinted_due_ms);
            if due_ms > now_ms {
                slot.pending.insert((due_ms, delivery_id));
                continue;
            }
            let queue_key = records::webhook_queue_row(&partner_env, endpoint.id, due_ms, delivery_id);
            let envelope = match (&delivery.inline_envelope, delivery.event_sequence) {
                (Some(envelope), _) => Some(envelope.clone()),
                (None, Some(sequence)) => {
                    self.read::<EventRecord>(&records::event(&partner_env, sequence), "webhook event").map(|event| event.envelope_json)
                }
                (None, None) => None,
            };
            let Some(envelope) = envelope else {
                tracing::error!(delivery = %delivery.id, "a webhook delivery's event is missing; failing it");
                let mut failed = delivery;
                failed.status = DeliveryStatus::Failed;
                failed.next_attempt_at_ms = None;
                failed.updated_at_ms = now_ms;
                stale.push(queue_key.delete());
                stale.push(delivery_key.put(&failed));
                continue;
            };
            let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
                if let Some(slot) = self.slots.get_mut(&key) {
                    slot.pending.insert((due_ms, delivery_id));
                }
                break;
            };
            if let Some(slot) = self.slots.get_mut(&key) {
                slot.claimed.insert(delivery_id);
            }
            let job =
                Job { key, delivery, queue_key, envelope, url: endpoint.url.clone(), headers: endpoint.headers.clone(), secrets: secrets.clone() };
            let (client, settings, shared, sender) =
                (self.client.clone(), Arc::clone(&self.settings), Arc::clone(&self.shared), self.finished_sender.clone());
            shared.metrics.webhook_in_flight.inc();
            self.tasks.spawn(async move {
                let finished = attempt::attempt(&client, &settings, &shared, job).await;
                shared.metrics.webhook_in_flight.dec();
                let _ = sender.send(finished).await;
                drop(permit);
            });
        }
    }

    /// Records finished attempts in one write set and decides what each needs next; notes
    /// their facts for the partner actor, holding back the records that wait for a verdict.
    fn record(&mut self, finished: Vec<Finished>) {
        if finished.is_empty() {
            return;
        }
        let now_ms = self.now_ms();
        let mut write_set = Vec::with_capacity(finished.len() * 3);
        let mut released = Vec::with_capacity(finished.len());
        let disable_after = self.settings.disable_after;
        for Finished { key, mut delivery, queue_key, attempt, outcome } in finished {
            let (partner_env, endpoint_id) = key;
            // Health counts from when the attempt was made, not when it is recorded.
            let attempted_at_ms = attempt.attempted_at_ms;
            let mut ops = vec![queue_key.delete()];
            let outcome_label = match outcome {
                AttemptOutcome::Delivered => "delivered",
                AttemptOutcome::Gone => "gone",
                AttemptOutcome::Failed { .. } => "failed",
            };
            self.shared.metrics.webhook_attempts.with_label_values(&[outcome_label]).inc();
            let Some(slot) = self.slots.get_mut(&key).filter(|slot| !slot.deleted) else {
                // The endpoint was deleted meanwhile: nothing more to do.
                write_set.extend(ops);
                released.push((key, delivery.id));
                continue;
            };
            let manual = delivery.manual;
            delivery.attempt_count = delivery.attempt_count.saturating_add(1);
            if !manual {
                delivery.scheduled_attempts = delivery.scheduled_attempts.saturating_add(1);
            }
            delivery.attempts.push(attempt);
            let excess = delivery.attempts.len().saturating_sub(self.settings.attempts_kept_max);
            delivery.attempts.drain(..excess);
            delivery.manual = false;
            delivery.updated_at_ms = now_ms;
            let step = match (&outcome, manual) {
                (AttemptOutcome::Failed { .. }, true) => NextStep::Exhausted,
                _ => self.settings.retry.next_step(delivery.scheduled_attempts as usize, &outcome, now_ms, jitter()),
            };
            match step {
                NextStep::Delivered => delivery.status = DeliveryStatus::Delivered,
                NextStep::RetryAt { due_ms } => delivery.next_attempt_at_ms = Some(due_ms),
                NextStep::Exhausted | NextStep::DisableEndpoint => delivery.status = DeliveryStatus::Failed,
            }
            if delivery.status != DeliveryStatus::Pending {
                delivery.next_attempt_at_ms = None;
                let status = if delivery.status == DeliveryStatus::Delivered { "delivered" } else { "failed" };
                self.shared.metrics.webhook_deliveries_settled.with_label_values(&[status]).inc();
            }
            let attempted = DeliveryFact::Attempted { attempted_at_ms, outcome };
            // A fact that may raise an event has its record written first (the partner who
            // hears it finds the attempt); another reported fact's record waits for its verdict.
            let raises = health::may_raise_notice(&slot.health, &attempted, disable_after);
            let mut held = slot.note(attempted, disable_after) && !raises;
            // Health events about endpoints never raise more of them (no cascade between two
            // failing endpoints).
            let about_webhooks = delivery.event_type.is_about_webhooks();
            if step == NextStep::Exhausted && !manual && !about_webhooks {
                let attempts = delivery.attempt_count;
                let exhausted =
                    DeliveryFact::Exhausted { delivery_id: delivery.id, event_id: delivery.event_id, event_type: delivery.event_type, attempts };
                slot.note(exhausted, disable_after);
                held = false;
            }
            ops.push(records::webhook_delivery(&partner_env, endpoint_id, delivery.id).put(&delivery));
            if let NextStep::RetryAt { due_ms } = step {
                ops.push(records::webhook_queue_row(&partner_env, endpoint_id, due_ms, delivery.id).put(&QueueEntry));
                if slot.pending.len() < PENDING_MAX {
                    slot.pending.insert((due_ms, delivery.id));
                } else {
                    slot.truncated = true;
                }
            }
            if held {
                slot.held.ops.extend(ops);
                slot.held.deliveries.push(delivery.id);
            } else {
                write_set.extend(ops);
                released.push((key, delivery.id));
            }
        }
        if !write_set.is_empty() {
            let receipt = self.shared.committer.submit(write_set, None);
            self.unsettled.push_back((receipt, released));
        }
    }

    /// Sends each endpoint's unreported facts to its partner actor: one report per endpoint
    /// in flight at most (so they arrive in order), [`REPORTS_IN_FLIGHT_MAX`] in all.
    fn report(&mut self) {
        let now = Instant::now();
        for (key, slot) in &mut self.slots {
            if self.reports_in_flight >= REPORTS_IN_FLIGHT_MAX {
                return;
            }
            if slot.facts.is_empty() || slot.reporting.is_some() || slot.report_after.is_some_and(|after| now < after) {
                continue;
            }
            let facts = Arc::new(std::mem::take(&mut slot.facts));
            slot.reporting_held = std::mem::take(&mut slot.held);
            slot.reporting = Some(facts.iter().any(DeliveryFact::is_failure));
            slot.report_after = None;
            self.reports_in_flight += 1;
            let (engine, sender, key) = (self.engine.clone(), self.reported_sender.clone(), *key);
            self.tasks.spawn(async move {
                let result = engine.report_deliveries(key.0, key.1, Arc::clone(&facts)).await.map(|_| ());
                let _ = sender.send(Reported { key, facts, result }).await;
            });
        }
    }

    /// A report answered: once the verdict is durable, read the endpoint's status and health
    /// back from the store; a refused report's facts go again later, in their place.
    fn on_reported(&mut self, reported: Reported) {
        let Reported { key, facts, result } = reported;
        self.reports_in_flight = self.reports_in_flight.saturating_sub(1);
        let Some(slot) = self.slots.get_mut(&key) else {
            return;
        };
        slot.reporting = None;
        let held = std::mem::take(&mut slot.reporting_held);
        let deleted = slot.deleted || matches!(result, Err(EngineError::NotFound { .. }));
        match result {
            // Judged (or the endpoint is gone, its facts with it): the held records go now;
            // a deleted endpoint's only their queue rows' removal.
            Ok(()) | Err(EngineError::NotFound { .. }) => {
                let write_set: Vec<WriteOp> = held.ops.into_iter().filter(|op| !deleted || matches!(op, WriteOp::Delete { .. })).collect();
                if !write_set.is_empty() {
                    let receipt = self.shared.committer.submit(write_set, None);
                    self.unsettled.push_back((receipt, held.deliveries.into_iter().map(|delivery_id| (key, delivery_id)).collect()));
                }
                if !deleted {
                    self.reread(key.0, key.1);
                }
            }
            Err(error) => {
                tracing::warn!(%error, endpoint = %key.1, "reporting webhook deliveries to the partner actor failed; retrying");
                let newer = std::mem::replace(&mut slot.facts, Arc::unwrap_or_clone(facts));
                for fact in newer {
                    slot.push_fact(fact);
                }
                let newer = std::mem::replace(&mut slot.held, held);
                slot.held.ops.extend(newer.ops);
                slot.held.deliveries.extend(newer.deliveries);
                slot.report_after = Some(Instant::now() + REPORT_RETRY_INTERVAL);
            }
        }
    }

    /// Lets attempts in flight finish and be recorded, and reports be answered, within the
    /// stop grace. An attempt cut off, or whose record still waits for its verdict, is made
    /// again after the restart.
    async fn wind_down(&mut self) {
        let deadline = tokio::time::Instant::now() + self.stop_grace;
        loop {
            self.report();
            if self.permits.available_permits() == self.settings.concurrency && self.reports_in_flight == 0 {
                return;
            }
            tokio::select! {
                Some(finished) = self.finished.recv() => self.record(vec![finished]),
                Some(reported) = self.reported.recv() => self.on_reported(reported),
                () = tokio::time::sleep_until(deadline) => return,
            }
        }
    }

    fn on_command(&mut self, command: DispatcherCommand) {
        match command {
            DispatcherCommand::Redeliver { partner_env, delivery_id, reply } => {
                let _ = reply.send(self.redeliver(partner_env, delivery_id));
            }
        }
    }

    fn redeliver(&mut self, partner_env: PartnerEnv, delivery_id: Id) -> Result<(DeliveryRecord, CommitReceipt), EngineError> {
        let endpoints: Vec<Id> = self.slots.keys().filter(|(owner, _)| *owner == partner_env).map(|(_, endpoint_id)| *endpoint_id).collect();
        let found = endpoints.into_iter().find_map(|endpoint_id| {
            self.read::<DeliveryRecord>(&records::webhook_delivery(&partner_env, endpoint_id, delivery_id), "webhook delivery")
                .map(|delivery| (endpoint_id, delivery))
        });
        let (endpoint_id, mut delivery) = found.ok_or(EngineError::NotFound { resource: "webhook delivery" })?;
        let slot = self.slots.get_mut(&(partner_env, endpoint_id)).expect("found among the slots");
        if slot.endpoint.status != EndpointStatus::Enabled {
            return Err(EngineError::Conflict { message: "the endpoint is disabled; enable it (PATCH status ENABLED) first".into() });
        }
        if slot.claimed.contains(&delivery_id) {
            return Err(EngineError::Conflict { message: "the delivery is being attempted right now".into() });
        }
        let now_ms = self.shared.clock.now_ms();
        let mut write_set = Vec::with_capacity(3);
        let previous_due = delivery.next_attempt_at_ms.filter(|_| delivery.status == DeliveryStatus::Pending);
        match (delivery.status, delivery.next_attempt_at_ms) {
            (DeliveryStatus::Pending, Some(due_ms)) => {
                write_set.push(records::webhook_queue_row(&partner_env, endpoint_id, due_ms, delivery_id).delete())
            }
            _ => {
                delivery.status = DeliveryStatus::Pending;
                delivery.manual = true;
            }
        }
        delivery.next_attempt_at_ms = Some(now_ms);
        delivery.updated_at_ms = now_ms;
        write_set.push(records::webhook_delivery(&partner_env, endpoint_id, delivery_id).put(&delivery));
        write_set.push(records::webhook_queue_row(&partner_env, endpoint_id, now_ms, delivery_id).put(&QueueEntry));
        let receipt = self.shared.committer.submit(write_set, None);
        slot.claimed.insert(delivery_id);
        if let Some(due_ms) = previous_due {
            slot.pending.remove(&(due_ms, delivery_id));
        }
        slot.pending.insert((now_ms, delivery_id));
        self.unsettled.push_back((receipt.clone(), vec![((partner_env, endpoint_id), delivery_id)]));
        Ok((delivery, receipt))
    }
}

impl Slot {
    /// Whether new attempts may start: the endpoint exists, is enabled as last read, has a
    /// free slot, and no failure of it awaits its actor's verdict.
    fn may_claim(&self, endpoint_concurrency: usize) -> bool {
        let awaits_verdict = self.reporting == Some(true) || self.facts.iter().any(DeliveryFact::is_failure);
        !self.deleted && self.endpoint.status == EndpointStatus::Enabled && self.claimed.len() < endpoint_concurrency && !awaits_verdict
    }

    /// Keeps a fact for the next report, unless it would change nothing: only judged
    /// against a current view (no report in flight nor waiting, whose verdict may change it).
    /// Whether it was kept.
    fn note(&mut self, fact: DeliveryFact, disable_after: Duration) -> bool {
        let view_current = self.reporting.is_none() && self.facts.is_empty();
        if let DeliveryFact::Attempted { attempted_at_ms, outcome } = &fact
            && view_current
            && health::changes_nothing(&self.health, outcome, disable_after, *attempted_at_ms)
        {
            return false;
        }
        self.push_fact(fact);
        true
    }

    /// Appends a fact within [`FACTS_UNREPORTED_MAX`]: at the bound it replaces the newest.
    fn push_fact(&mut self, fact: DeliveryFact) {
        if self.facts.len() >= FACTS_UNREPORTED_MAX {
            tracing::warn!(endpoint = %self.endpoint.id, "too many webhook delivery facts unreported; the newest replaces the one before it");
            self.facts.pop();
        }
        self.facts.push(fact);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::testing::TestEngine;

    fn failed(attempted_at_ms: u64) -> DeliveryFact {
        DeliveryFact::Attempted {
            attempted_at_ms,
            outcome: AttemptOutcome::Failed { status_code: Some(500), retry_after_secs: None, overloaded: false },
        }
    }

    /// The dispatcher writes no status: it reports facts, holds new attempts while a failure
    /// awaits its verdict, and learns the verdict from the committed records. A refused
    /// report keeps its facts, in order, ahead of newer ones.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_dispatcher_reports_facts_and_reads_the_verdict_back() {
        let test = TestEngine::start(|_| {});
        let engine = &test.engine;
        engine.stop_webhooks().await;
        let mut dispatcher = Dispatcher::new(engine, engine.webhooks().webhook_settings()).expect("the dispatcher builds");
        let disable_after = dispatcher.settings.disable_after;
        let partner_env = test.partner_env();
        let endpoint = test.create_endpoint(partner_env, "https://example.com/hook").await;
        let key = (partner_env, endpoint.id);
        dispatcher.reread(partner_env, endpoint.id);
        let concurrency = dispatcher.settings.endpoint_concurrency;
        let now_ms = engine.clock().advance(1).expect("a test clock");

        // A success while healthy changes something only the first time (the first success).
        let slot = dispatcher.slots.get_mut(&key).expect("a slot");
        slot.health.last_success_ms = Some(1);
        slot.note(DeliveryFact::Attempted { attempted_at_ms: now_ms, outcome: AttemptOutcome::Delivered }, disable_after);
        assert!(slot.facts.is_empty(), "a success while healthy is not reported");
        // A failure starts a streak: reported, and no new attempt until its verdict.
        slot.note(failed(now_ms), disable_after);
        assert!(!slot.may_claim(concurrency));
        dispatcher.report();
        let slot = &dispatcher.slots[&key];
        assert_eq!((slot.reporting, slot.facts.len(), dispatcher.reports_in_flight), (Some(true), 0, 1));
        let reported = tokio::time::timeout(Duration::from_secs(10), dispatcher.reported.recv()).await.expect("answered").expect("a report");
        assert!(reported.result.is_ok());
        dispatcher.on_reported(reported);
        let slot = &dispatcher.slots[&key];
        assert_eq!(slot.health.failing_since_ms, Some(now_ms), "the health as the actor committed it");
        assert!(slot.may_claim(concurrency));
        assert_eq!(dispatcher.reports_in_flight, 0);
        // Inside the streak, a failure that crosses no threshold changes nothing.
        let slot = dispatcher.slots.get_mut(&key).expect("a slot");
        slot.note(failed(now_ms + 1), disable_after);
        assert!(slot.facts.is_empty());

        // A refused report: its facts go back ahead of the newer ones, sent again later.
        let gone = DeliveryFact::Attempted { attempted_at_ms: now_ms + 2, outcome: AttemptOutcome::Gone };
        slot.reporting = Some(true);
        slot.note(failed(now_ms + 3), disable_after);
        dispatcher.reports_in_flight = 1;
        let refused = EngineError::Overloaded { reason: "mailbox", retry_after_secs: 1 };
        dispatcher.on_reported(Reported { key, facts: Arc::new(vec![gone.clone()]), result: Err(refused) });
        let slot = &dispatcher.slots[&key];
        assert_eq!(slot.facts, vec![gone, failed(now_ms + 3)]);
        assert!(slot.report_after.is_some() && !slot.may_claim(concurrency));
        dispatcher.report();
        assert_eq!(dispatcher.reports_in_flight, 0, "not before the retry interval");
        dispatcher.slots.get_mut(&key).expect("a slot").report_after = None;
        dispatcher.report();
        let reported = tokio::time::timeout(Duration::from_secs(10), dispatcher.reported.recv()).await.expect("answered").expect("a report");
        dispatcher.on_reported(reported);
        let slot = &dispatcher.slots[&key];
        assert_eq!(slot.endpoint.status, EndpointStatus::Disabled, "read back from the actor's committed record");
        assert!(!slot.may_claim(concurrency));
        engine.shutdown().await;
    }

    /// The record of an attempt whose fact is reported waits for the verdict: a crash before
    /// it makes the attempt, and so the fact, again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_attempts_record_waits_for_the_verdict_on_its_fact() {
        let test = TestEngine::start(|_| {});
        let engine = &test.engine;
        engine.stop_webhooks().await;
        let mut dispatcher = Dispatcher::new(engine, engine.webhooks().webhook_settings()).expect("the dispatcher builds");
        let partner_env = test.partner_env();
        let endpoint = test.create_endpoint(partner_env, "https://example.com/hook").await;
        engine.webhooks().test_webhook(partner_env, endpoint.id).await.expect("a test delivery is queued");
        let key = (partner_env, endpoint.id);
        dispatcher.reread(partner_env, endpoint.id);
        let page = engine
            .webhooks()
            .list_deliveries(partner_env, endpoint.id, crate::store::reads::PageRequest { after: None, skip: 0, limit: 10 })
            .expect("deliveries");
        let delivery = page.items.into_iter().next().expect("the test delivery");
        let delivery_key = records::webhook_delivery(&partner_env, endpoint.id, delivery.id);
        let due_ms = delivery.next_attempt_at_ms.expect("due");
        let attempted_at_ms = engine.clock().advance(1).expect("a test clock");
        let attempt = crate::webhooks::AttemptRecord {
            attempted_at_ms,
            status_code: Some(500),
            latency_ms: 1,
            error: None,
            response_excerpt: String::new(),
            manual: false,
        };
        let outcome = AttemptOutcome::Failed { status_code: Some(500), retry_after_secs: None, overloaded: false };
        dispatcher.slots.get_mut(&key).expect("a slot").claimed.insert(delivery.id);
        let queue_key = records::webhook_queue_row(&partner_env, endpoint.id, due_ms, delivery.id);
        dispatcher.record(vec![Finished { key, delivery: delivery.clone(), queue_key, attempt, outcome }]);
        assert!(dispatcher.unsettled.is_empty(), "nothing written before the verdict");
        assert_eq!(dispatcher.slots[&key].held.deliveries, vec![delivery.id]);
        assert_eq!(dispatcher.read::<DeliveryRecord>(&delivery_key, "test").map(|stored| stored.attempt_count), Some(0));

        dispatcher.report();
        let reported = tokio::time::timeout(Duration::from_secs(10), dispatcher.reported.recv()).await.expect("answered").expect("a report");
        dispatcher.on_reported(reported);
        let (receipt, released) = dispatcher.unsettled.back().cloned().expect("the held record is written now");
        assert_eq!(released, vec![(key, delivery.id)]);
        receipt.durable().await.expect("durable");
        assert_eq!(dispatcher.read::<DeliveryRecord>(&delivery_key, "test").map(|stored| stored.attempt_count), Some(1));
        assert_eq!(dispatcher.slots[&key].health.failing_since_ms, Some(attempted_at_ms));
        engine.shutdown().await;
    }

    /// An attempt still running when the stop grace ends is aborted (its task dropped, its
    /// permit back), not left to run out its own timeout past the engine.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn attempts_in_flight_are_aborted_once_the_stop_grace_ends() {
        let test = TestEngine::start(|webhooks| {
            webhooks.allowed_cidrs = vec!["127.0.0.0/8".into()];
            webhooks.attempt_timeout = "60s".into();
        });
        let engine = &test.engine;
        // This test runs its own dispatcher, with a short grace: stop the engine's.
        engine.stop_webhooks().await;
        let mut dispatcher = Dispatcher::new(engine, engine.webhooks().webhook_settings()).expect("the dispatcher builds");
        dispatcher.stop_grace = Duration::from_millis(200);
        let (permits, concurrency) = (Arc::clone(&dispatcher.permits), dispatcher.settings.concurrency);
        let (_commands, commands) = mpsc::channel(1);
        let (stop, stopped) = watch::channel(false);
        let running = tokio::spawn(dispatcher.run(commands, stopped));

        // A receiver that accepts and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let url = format!("http://{}/hook", listener.local_addr().expect("an address"));
        let held = tokio::spawn(async move {
            let mut connections = Vec::new();
            while let Ok((connection, _)) = listener.accept().await {
                connections.push(connection);
            }
        });
        let partner_env = test.partner_env();
        let endpoint = test.create_endpoint(partner_env, &url).await;
        engine.webhooks().test_webhook(partner_env, endpoint.id).await.expect("a test delivery is queued");
        let in_flight = async {
            while permits.available_permits() == concurrency {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), in_flight).await.expect("the attempt starts");

        let stopping = std::time::Instant::now();
        stop.send(true).expect("the dispatcher listens");
        tokio::time::timeout(Duration::from_secs(5), running).await.expect("it stops within the grace").expect("it stops cleanly");
        assert!(stopping.elapsed() >= Duration::from_millis(200), "it waited the grace for the attempt");
        assert_eq!(permits.available_permits(), concurrency, "the attempt's task was aborted, its permit returned");
        held.abort();
        engine.shutdown().await;
    }
}
