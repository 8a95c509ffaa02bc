//! `PartnerActor`: the only writer of one (partner, environment)'s money.
//!
//! It holds the hot state in memory (pools, event sequence, recently written users, keys in
//! flight), decides each message with pure functions (`rules`, `posting`), applies the
//! result to memory, and hands the write set to the committer without waiting for it: the
//! next message is handled at once (pipelining). The caller waits for the write set's
//! receipt, so nobody hears "done" before it is durable.
//!
//! Invariants:
//! - exactly one live actor per (partner, environment): the registry starts it, and it
//!   removes itself from the registry (retires) before it stops. A retired actor handles
//!   nothing; its messages are answered `Retired` and re-sent to its successor.
//! - an actor retires only with no commit in flight (idle), or right after a commit failed;
//!   its successor loads from the store, so memory is never ahead of what is durable.
//! - an idempotency key in flight is answered from memory (duplicates wait for the same
//!   commit); otherwise from the store, which holds every committed key forever.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::codec::{decode, encode};
use crate::committer::{CommitReceipt, CommitState, Origin};
use crate::engine::EngineShared;
use crate::error::EngineError;
use crate::ids::Id;
use crate::keys;
use crate::model::{IdempotencyRecord, IdempotencyScope, PartnerEnv, PartnerEnvState, PoolRecord, TransactionRecord, TransactionType, UserRecord};
use crate::money::TOKENS_MAX;
use crate::posting::{EventBuilder, RewardDraft, post_reward, push_events, put, reward_fits, reward_write_set};
use crate::request::{ActionRequest, AllocationRequest, Stakeholder};
use crate::rules::{RewardRule, evaluate};
use crate::store::{Scan, ScanOrder, WriteOp};
use crate::views::PoolView;

/// How an actor answers a message.
pub(crate) enum Delivery<T> {
    Handled(ActorReply<T>),
    /// This actor retired before handling the message: send it to the successor.
    Retired,
}

/// A decision, and the receipt of its write set when it wrote one.
pub(crate) struct ActorReply<T> {
    pub outcome: Result<T, EngineError>,
    pub receipt: Option<CommitReceipt>,
}

impl<T> ActorReply<T> {
    fn failed(error: EngineError) -> ActorReply<T> {
        ActorReply { outcome: Err(error), receipt: None }
    }
}

/// The status and body a write answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub status_code: u16,
    pub body: Arc<[u8]>,
}

/// The result of an idempotent write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// This request did the work.
    Done(Recorded),
    /// An earlier request with the same key and body did; this is its answer.
    Replayed { original: Recorded, original_request_id: String },
}

pub(crate) struct SubmitAction {
    pub request: Arc<ActionRequest>,
    pub request_id: String,
    pub reply: oneshot::Sender<Delivery<WriteOutcome>>,
}

impl Message for SubmitAction {
    type Result = ();
}

pub(crate) struct AllocateTokens {
    pub request: Arc<AllocationRequest>,
    pub request_id: String,
    pub reply: oneshot::Sender<Delivery<WriteOutcome>>,
}

impl Message for AllocateTokens {
    type Result = ();
}

/// Records an event in this partner's feed (sequence assigned here, like every event).
pub(crate) struct RecordEvent {
    pub event_type: String,
    pub data: serde_json::Value,
    pub reply: oneshot::Sender<Delivery<()>>,
}

impl Message for RecordEvent {
    type Result = ();
}

/// What the actor loads from the store when it starts.
struct LoadedState {
    env_state: PartnerEnvState,
    pools: HashMap<Id, PoolRecord>,
}

struct InflightKey {
    request_hash: [u8; 32],
    recorded: Recorded,
    request_id: String,
    receipt: CommitReceipt,
    write_sequence: u64,
}

struct CachedUser {
    record: UserRecord,
    /// The local sequence of the last write set that changed this user.
    write_sequence: u64,
}

/// Idempotency keys whose write sets are not yet durable, per scope.
#[derive(Default)]
struct InflightKeys {
    by_scope: [HashMap<String, InflightKey>; 2],
    order: VecDeque<(u64, IdempotencyScope, String)>,
}

impl InflightKeys {
    fn map(&self, scope: IdempotencyScope) -> &HashMap<String, InflightKey> {
        &self.by_scope[scope as usize - 1]
    }

    fn insert(&mut self, scope: IdempotencyScope, key: String, entry: InflightKey) {
        self.order.push_back((entry.write_sequence, scope, key.clone()));
        self.by_scope[scope as usize - 1].insert(key, entry);
    }

    /// Forgets keys whose write sets are durable: the store answers for them now.
    fn settle(&mut self, committed_sequence: u64) {
        while let Some((sequence, scope, _)) = self.order.front() {
            if *sequence > committed_sequence {
                break;
            }
            let scope = *scope;
            let (_, _, key) = self.order.pop_front().expect("front exists");
            self.by_scope[scope as usize - 1].remove(&key);
        }
    }
}

pub(crate) struct PartnerActor {
    partner_env: PartnerEnv,
    generation: u64,
    arbiter: usize,
    shared: Arc<EngineShared>,
    mailbox_depth: Arc<AtomicUsize>,
    state: Result<LoadedState, EngineError>,
    users: HashMap<String, CachedUser>,
    inflight: InflightKeys,
    pending_commits: VecDeque<(u64, CommitReceipt)>,
    next_write_sequence: u64,
    committed_sequence: u64,
    last_activity: Instant,
    retired: bool,
}

impl Actor for PartnerActor {
    type Context = Context<Self>;

    fn started(&mut self, context: &mut Context<Self>) {
        // A predecessor that died without retiring (a panic) may have write sets queued:
        // load only once everything queued before now has settled. Messages wait meanwhile.
        let fence = self.shared.committer.fence();
        context.wait(actix::fut::wrap_future::<_, Self>(fence.durable()).map(|_, actor, context| actor.load(context)));
        let interval = Duration::from_millis(self.shared.config.idle_check_interval_ms);
        context.run_interval(interval, |actor, context| actor.on_tick(context));
    }

    fn stopped(&mut self, _context: &mut Context<Self>) {
        self.shared.metrics.actors_stopped.inc();
        self.shared.metrics.actors_live.with_label_values(&[&self.arbiter.to_string()]).dec();
    }
}

impl Handler<SubmitAction> for PartnerActor {
    type Result = ();

    fn handle(&mut self, message: SubmitAction, context: &mut Context<Self>) {
        self.run_message(context, "submit_action", message.reply, |actor| actor.submit(&message.request, &message.request_id));
    }
}

impl Handler<AllocateTokens> for PartnerActor {
    type Result = ();

    fn handle(&mut self, message: AllocateTokens, context: &mut Context<Self>) {
        self.run_message(context, "allocate_tokens", message.reply, |actor| actor.allocate(&message.request, &message.request_id));
    }
}

impl Handler<RecordEvent> for PartnerActor {
    type Result = ();

    fn handle(&mut self, message: RecordEvent, context: &mut Context<Self>) {
        self.run_message(context, "record_event", message.reply, |actor| actor.record_event(&message.event_type, &message.data));
    }
}

impl PartnerActor {
    pub(crate) fn new(
        partner_env: PartnerEnv,
        generation: u64,
        arbiter: usize,
        shared: Arc<EngineShared>,
        mailbox_depth: Arc<AtomicUsize>,
    ) -> PartnerActor {
        PartnerActor {
            partner_env,
            generation,
            arbiter,
            shared,
            mailbox_depth,
            state: Err(EngineError::Internal("state not loaded yet".into())),
            users: HashMap::new(),
            inflight: InflightKeys::default(),
            pending_commits: VecDeque::new(),
            next_write_sequence: 1,
            committed_sequence: 0,
            last_activity: Instant::now(),
            retired: false,
        }
    }

    fn load(&mut self, context: &mut Context<Self>) {
        self.state = load_state(&self.shared, &self.partner_env);
        if let Err(error) = &self.state {
            // Retire so the next message starts a successor that tries again.
            tracing::error!(partner = %self.partner_env.partner_id, %error, "partner actor could not load its state; retiring");
            self.retire(context);
        }
    }

    /// The frame of every message: settle commits, refuse if retired, time the work.
    fn run_message<T>(
        &mut self,
        context: &mut Context<Self>,
        kind: &'static str,
        reply: oneshot::Sender<Delivery<T>>,
        work: impl FnOnce(&mut Self) -> ActorReply<T>,
    ) {
        self.mailbox_depth.fetch_sub(1, Ordering::AcqRel);
        self.last_activity = Instant::now();
        if !self.retired {
            self.settle_commits(context);
        }
        if self.retired {
            let _ = reply.send(Delivery::Retired);
            return;
        }
        let started = Instant::now();
        let answer = work(self);
        let _ = reply.send(Delivery::Handled(answer));
        let metrics = &self.shared.metrics;
        metrics.actor_messages.with_label_values(&[kind]).inc();
        metrics.actor_message_seconds.with_label_values(&[kind]).observe(started.elapsed().as_secs_f64());
    }

    fn on_tick(&mut self, context: &mut Context<Self>) {
        if self.retired {
            return;
        }
        self.settle_commits(context);
        let idle_for = self.last_activity.elapsed();
        let passivate_after = Duration::from_secs(self.shared.config.passivate_after_secs);
        if !self.retired && self.pending_commits.is_empty() && self.mailbox_depth.load(Ordering::Acquire) == 0 && idle_for >= passivate_after {
            tracing::debug!(partner = %self.partner_env.partner_id, environment = self.partner_env.environment.as_str(), "partner actor passivating");
            self.retire(context);
        }
    }

    /// Leaves the registry (so new messages start a successor) and stops.
    fn retire(&mut self, context: &mut Context<Self>) {
        self.shared.registry.remove_if_generation(self.partner_env, self.generation);
        self.retired = true;
        context.stop();
    }

    /// Advances `committed_sequence` over durable receipts, in order. A failed commit means
    /// memory is ahead of the store: retire so a successor reloads what is durable.
    fn settle_commits(&mut self, context: &mut Context<Self>) {
        while let Some((sequence, receipt)) = self.pending_commits.front() {
            match receipt.state() {
                CommitState::Pending => break,
                CommitState::Durable => {
                    self.committed_sequence = *sequence;
                    self.pending_commits.pop_front();
                }
                CommitState::Failed => {
                    tracing::error!(partner = %self.partner_env.partner_id, "a commit failed; the partner actor retires and its successor reloads from the store");
                    self.retire(context);
                    return;
                }
            }
        }
        self.inflight.settle(self.committed_sequence);
        if self.users.len() > self.shared.config.users_cached_max {
            let committed = self.committed_sequence;
            self.users.retain(|_, user| user.write_sequence > committed);
        }
    }

    fn commit(&mut self, write_set: Vec<WriteOp>) -> (u64, CommitReceipt) {
        let sequence = self.next_write_sequence;
        self.next_write_sequence += 1;
        let origin = Origin { partner_env: self.partner_env, generation: self.generation };
        let receipt = self.shared.committer.submit(write_set, Some(origin));
        self.pending_commits.push_back((sequence, receipt.clone()));
        (sequence, receipt)
    }

    /// Answers a request whose idempotency key was used before, from memory or the store.
    fn replay(&self, scope: IdempotencyScope, key: &str, request_hash: &[u8; 32]) -> Option<ActorReply<WriteOutcome>> {
        if let Some(inflight) = self.inflight.map(scope).get(key) {
            if inflight.request_hash != *request_hash {
                return Some(ActorReply::failed(EngineError::IdempotencyKeyReused));
            }
            self.shared.metrics.idempotent_replays.inc();
            let outcome = WriteOutcome::Replayed { original: inflight.recorded.clone(), original_request_id: inflight.request_id.clone() };
            return Some(ActorReply { outcome: Ok(outcome), receipt: Some(inflight.receipt.clone()) });
        }
        let stored = self
            .shared
            .store
            .get(&keys::idempotency(&self.partner_env, scope, key))
            .map_err(|error| EngineError::internal("reading an idempotency record", error));
        let record = match stored {
            Err(error) => return Some(ActorReply::failed(error)),
            Ok(None) => return None,
            Ok(Some(bytes)) => match decode::<IdempotencyRecord>(&bytes) {
                Ok(record) => record,
                Err(error) => return Some(ActorReply::failed(EngineError::internal("decoding an idempotency record", error))),
            },
        };
        if record.request_hash != *request_hash {
            return Some(ActorReply::failed(EngineError::IdempotencyKeyReused));
        }
        self.shared.metrics.idempotent_replays.inc();
        let original = Recorded { status_code: record.status_code, body: Arc::from(record.response_json) };
        Some(ActorReply { outcome: Ok(WriteOutcome::Replayed { original, original_request_id: record.request_id }), receipt: None })
    }

    /// The user's current record: memory first (it may be ahead of the store), then the store.
    fn load_user(&mut self, external_id: &str) -> Result<Option<UserRecord>, EngineError> {
        if let Some(cached) = self.users.get(external_id) {
            return Ok(Some(cached.record.clone()));
        }
        let stored =
            self.shared.store.get(&keys::user(&self.partner_env, external_id)).map_err(|error| EngineError::internal("reading a user", error))?;
        stored.map(|bytes| decode::<UserRecord>(&bytes).map_err(|error| EngineError::internal("decoding a user", error))).transpose()
    }

    fn stakeholder_users(&mut self, request: &ActionRequest, now_ms: u64) -> Result<Vec<UserRecord>, EngineError> {
        let mut users = Vec::with_capacity(request.stakeholders.len());
        for stakeholder in &request.stakeholders {
            match self.load_user(stakeholder.partner_user_id.as_str())? {
                Some(user) => users.push(user),
                None if request.auto_create_users => users.push(self.new_user(stakeholder, now_ms)),
                None => return Err(EngineError::UserNotFound { partner_user_id: stakeholder.partner_user_id.as_str().to_owned() }),
            }
        }
        Ok(users)
    }

    fn new_user(&self, stakeholder: &Stakeholder, now_ms: u64) -> UserRecord {
        UserRecord {
            email: stakeholder.user_email.clone(),
            first_name: stakeholder.user_first_name.clone(),
            last_name: stakeholder.user_last_name.clone(),
            ..UserRecord::new(self.shared.ids.next(now_ms), stakeholder.partner_user_id.as_str(), now_ms)
        }
    }

    /// The start of every idempotent write: an answer now if the state did not load or the
    /// key was used before.
    fn answer_early(&self, scope: IdempotencyScope, key: &str, request_hash: &[u8; 32]) -> Option<ActorReply<WriteOutcome>> {
        if let Err(error) = &self.state {
            return Some(ActorReply::failed(error.clone()));
        }
        self.replay(scope, key, request_hash)
    }

    fn submit(&mut self, request: &ActionRequest, request_id: &str) -> ActorReply<WriteOutcome> {
        let request_hash = request.fingerprint();
        if let Some(answer) = self.answer_early(IdempotencyScope::ActionSubmit, request.idempotency_key.as_str(), &request_hash) {
            return answer;
        }
        let now_ms = self.shared.clock.now_ms();
        let users = match self.stakeholder_users(request, now_ms) {
            Ok(users) => users,
            Err(error) => return ActorReply::failed(error),
        };
        // Campaigns are not stored yet, so a named campaign cannot apply.
        if let Some(campaign_id) = request.campaign_id {
            return self.reject(EngineError::CampaignNotApplicable { reason: format!("campaign {campaign_id} does not exist") }, request, now_ms);
        }
        let evaluation = match evaluate(&RewardRule::default_rule(), request.amount, &request.stakeholder_types()) {
            Ok(evaluation) => evaluation,
            Err(error) => return self.reject(EngineError::CampaignNotApplicable { reason: error.to_string() }, request, now_ms),
        };
        let state = self.state.as_ref().expect("checked above");
        let pool = state.env_state.default_pool_id.and_then(|pool_id| state.pools.get(&pool_id));
        let required = evaluation.tokens_distributed;
        // Funding applies only when something is issued: a 0-token action needs no pool.
        if required > 0 {
            match pool {
                None => return self.reject(EngineError::InsufficientPool { required, available: 0 }, request, now_ms),
                Some(pool) if pool.is_expired(now_ms) => {
                    let pool_id = pool.id;
                    return self.reject(EngineError::PoolExpired { pool_id }, request, now_ms);
                }
                Some(pool) if pool.balance < required => {
                    let available = pool.balance;
                    return self.reject(EngineError::InsufficientPool { required, available }, request, now_ms);
                }
                Some(_) => {}
            }
        }
        if !reward_fits(&evaluation, pool, &users) {
            return ActorReply::failed(EngineError::Invalid {
                field: "amount".into(),
                message: "this reward would take a balance or total past its maximum".into(),
            });
        }
        let draft = RewardDraft {
            partner_env: self.partner_env,
            request,
            request_id,
            evaluation: &evaluation,
            pool,
            users,
            next_event_sequence: state.env_state.next_event_sequence,
            now_ms,
        };
        let posting = post_reward(draft, &self.shared.ids);
        let idempotency = IdempotencyRecord {
            request_hash,
            resource_id: posting.action.id,
            response_json: posting.response_json.clone(),
            request_id: request_id.to_owned(),
            status_code: 200,
            created_at_ms: now_ms,
        };
        let state = self.state.as_mut().expect("checked above");
        state.env_state.next_event_sequence = posting.next_event_sequence;
        let write_set = reward_write_set(&self.partner_env, &posting, &state.env_state, &idempotency);
        if let Some(pool) = posting.pool {
            state.pools.insert(pool.id, pool);
        }
        let (sequence, receipt) = self.commit(write_set);
        for user in posting.users {
            self.users.insert(user.external_id.clone(), CachedUser { record: user, write_sequence: sequence });
        }
        let recorded = Recorded { status_code: 200, body: Arc::from(posting.response_json) };
        self.remember_inflight(
            IdempotencyScope::ActionSubmit,
            request.idempotency_key.as_str(),
            request_hash,
            &recorded,
            request_id,
            &receipt,
            sequence,
        );
        ActorReply { outcome: Ok(WriteOutcome::Done(recorded)), receipt: Some(receipt) }
    }

    #[allow(clippy::too_many_arguments)]
    fn remember_inflight(
        &mut self,
        scope: IdempotencyScope,
        key: &str,
        request_hash: [u8; 32],
        recorded: &Recorded,
        request_id: &str,
        receipt: &CommitReceipt,
        sequence: u64,
    ) {
        let entry = InflightKey {
            request_hash,
            recorded: recorded.clone(),
            request_id: request_id.to_owned(),
            receipt: receipt.clone(),
            write_sequence: sequence,
        };
        self.inflight.insert(scope, key.to_owned(), entry);
    }

    /// Commits one event (and the sequence it took) on its own.
    fn commit_event<T: Serialize>(&mut self, event_type: &str, data: &T, now_ms: u64) -> CommitReceipt {
        let state = self.state.as_mut().expect("events are recorded on loaded state");
        let mut events = EventBuilder {
            partner_env: self.partner_env,
            ids: &self.shared.ids,
            now_ms,
            next_sequence: state.env_state.next_event_sequence,
            events: Vec::new(),
        };
        events.push(event_type, data);
        state.env_state.next_event_sequence = events.next_sequence;
        let mut write_set = Vec::with_capacity(2);
        push_events(&mut write_set, &self.partner_env, &events.events, &state.env_state);
        self.commit(write_set).1
    }

    fn record_event(&mut self, event_type: &str, data: &serde_json::Value) -> ActorReply<()> {
        if let Err(error) = &self.state {
            return ActorReply::failed(error.clone());
        }
        let receipt = self.commit_event(event_type, data, self.shared.clock.now_ms());
        ActorReply { outcome: Ok(()), receipt: Some(receipt) }
    }

    /// An engine rejection (402/422): nothing is stored under the key, so the request may be
    /// retried; `action.failed` is recorded in the feed.
    fn reject(&mut self, error: EngineError, request: &ActionRequest, now_ms: u64) -> ActorReply<WriteOutcome> {
        debug_assert!(error.emits_action_failed());
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct ActionFailed<'a> {
            idempotency_key: &'a str,
            code: &'a str,
        }
        let failed = ActionFailed { idempotency_key: request.idempotency_key.as_str(), code: error.code() };
        let receipt = self.commit_event("action.failed", &failed, now_ms);
        ActorReply { outcome: Err(error), receipt: Some(receipt) }
    }

    fn allocate(&mut self, request: &AllocationRequest, request_id: &str) -> ActorReply<WriteOutcome> {
        let request_hash = request.fingerprint();
        if let Some(answer) = self.answer_early(IdempotencyScope::PoolAllocation, request.idempotency_key.as_str(), &request_hash) {
            return answer;
        }
        let now_ms = self.shared.clock.now_ms();
        let pools_max = self.shared.config.pools_per_partner_max;
        let state = self.state.as_mut().expect("checked above");
        let target = request.pool_id.or(state.env_state.default_pool_id);
        let (mut pool, created) = match target.map(|pool_id| state.pools.get(&pool_id)) {
            Some(Some(pool)) => (pool.clone(), false),
            Some(None) if request.pool_id.is_some() => return ActorReply::failed(EngineError::NotFound { resource: "token pool" }),
            _ if state.pools.len() >= pools_max => {
                return ActorReply::failed(EngineError::Invalid {
                    field: "poolId".into(),
                    message: format!("at most {pools_max} token pools per partner and environment"),
                });
            }
            _ => (PoolRecord::new(self.shared.ids.next(now_ms), self.partner_env.environment, now_ms), true),
        };
        let Some(balance) = pool.balance.checked_add(request.tokens).filter(|balance| *balance <= TOKENS_MAX) else {
            return ActorReply::failed(EngineError::Invalid {
                field: "tokens".into(),
                message: format!("the pool balance would exceed {TOKENS_MAX}"),
            });
        };
        let Some(allocated_total) = pool.allocated_total.checked_add(request.tokens) else {
            return ActorReply::failed(EngineError::Invalid {
                field: "tokens".into(),
                message: "the pool's allocated total would pass its maximum".into(),
            });
        };
        pool.balance = balance;
        pool.allocated_total = allocated_total;
        pool.updated_at_ms = now_ms;
        apply_pool_settings(&mut pool, request);
        pool.assert_conserved();
        if created && request.pool_id.is_none() {
            state.env_state.default_pool_id = Some(pool.id);
        }
        let transaction = TransactionRecord {
            id: self.shared.ids.next(now_ms),
            transaction_type: TransactionType::Allocation,
            tokens: i64::try_from(request.tokens).expect("tokens are at most TOKENS_MAX"),
            action_id: None,
            pool_id: pool.id,
            partner_user_id: None,
            stakeholder_type_code: None,
            campaign_id: None,
            vests_at_ms: None,
            created_at_ms: now_ms,
        };
        let response_json = serde_json::to_vec(&PoolView::from(&pool)).expect("serializing a pool view cannot fail");
        let status_code = if created { 201 } else { 200 };
        let idempotency = IdempotencyRecord {
            request_hash,
            resource_id: pool.id,
            response_json: response_json.clone(),
            request_id: request_id.to_owned(),
            status_code,
            created_at_ms: now_ms,
        };
        let write_set = vec![
            put(keys::idempotency(&self.partner_env, IdempotencyScope::PoolAllocation, request.idempotency_key.as_str()), encode(&idempotency)),
            put(keys::pool(&self.partner_env, pool.id), encode(&pool)),
            put(keys::transaction(&self.partner_env, transaction.id), encode(&transaction)),
            put(keys::partner_env_state(&self.partner_env), encode(&state.env_state)),
        ];
        state.pools.insert(pool.id, pool);
        let (sequence, receipt) = self.commit(write_set);
        let recorded = Recorded { status_code, body: Arc::from(response_json) };
        self.remember_inflight(
            IdempotencyScope::PoolAllocation,
            request.idempotency_key.as_str(),
            request_hash,
            &recorded,
            request_id,
            &receipt,
            sequence,
        );
        ActorReply { outcome: Ok(WriteOutcome::Done(recorded)), receipt: Some(receipt) }
    }
}

/// Settings sent with an allocation replace the pool's; absent ones leave it as it is.
fn apply_pool_settings(pool: &mut PoolRecord, request: &AllocationRequest) {
    if let Some(name) = &request.name {
        pool.name = Some(name.clone());
    }
    if let Some(expires_at_ms) = request.expires_at_ms {
        pool.expires_at_ms = Some(expires_at_ms);
    }
    if let Some(vesting_days) = request.vesting_days {
        pool.vesting_days = Some(vesting_days);
    }
    if let Some(threshold) = request.low_balance_threshold {
        pool.low_balance_threshold = Some(threshold);
    }
    if pool.low_balance_threshold.is_none_or(|threshold| pool.balance >= threshold) {
        pool.low_balance_notified = false;
    }
}

fn load_state(shared: &EngineShared, partner_env: &PartnerEnv) -> Result<LoadedState, EngineError> {
    let store = &shared.store;
    let env_state = match store.get(&keys::partner_env_state(partner_env)).map_err(|error| EngineError::internal("loading partner state", error))? {
        Some(bytes) => decode::<PartnerEnvState>(&bytes).map_err(|error| EngineError::internal("decoding partner state", error))?,
        None => PartnerEnvState { next_event_sequence: 1, default_pool_id: None },
    };
    let prefix = keys::pools_prefix(partner_env);
    let scan = Scan { prefix: &prefix, after: None, order: ScanOrder::Ascending, limit: shared.config.pools_per_partner_max };
    let mut pools = HashMap::new();
    for (_, bytes) in store.scan(scan).map_err(|error| EngineError::internal("loading pools", error))? {
        let pool = decode::<PoolRecord>(&bytes).map_err(|error| EngineError::internal("decoding a pool", error))?;
        pool.assert_conserved();
        pools.insert(pool.id, pool);
    }
    Ok(LoadedState { env_state, pools })
}
