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
//! - it is also the only writer of its webhook endpoints' status (record and health): the
//!   partner's changes and the health policy's verdicts on the dispatcher's delivery facts
//!   are handled in one mailbox (`endpoints`), so neither overwrites the other.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::commit::{CommitReceipt, CommitState, Origin};
use crate::domain::ids::Id;
use crate::domain::model::{CampaignRecord, Effect, IdempotencyRecord, IdempotencyScope, PartnerEnv, PartnerEnvState, PoolRecord, UserRecord};
use crate::domain::posting::{EventBuilder, PostingUser, RewardPosting, push_events};
use crate::domain::request::{
    ActionRequest, AllocationRequest, CampaignFields, PartnerUserId, RedemptionRequest, ReversalRequest, Stakeholder, UserProfile,
};
use crate::engine::EngineShared;
use crate::engine::error::EngineError;
use crate::store::records;
use crate::store::{ScanOrder, WriteOp};
use crate::webhooks::{DeliveryFact, EndpointRecord, EventType, HealthRecord, OutboxSignal, WebhookFields, fan_out};

mod campaign_commands;
mod endpoints;
mod pools;
mod reversals;
mod rewards;
mod users;

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

/// What a write did and the body it answered with (the contract's JSON, kept as bytes so a
/// replay answers exactly the original).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub effect: Effect,
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

/// What a partner actor is asked to do. Every command answers a [`WriteOutcome`] (the
/// status and body of the answer), idempotent commands also as replays.
#[derive(Debug, Clone)]
pub(crate) enum Command {
    Submit(Arc<ActionRequest>),
    /// The breakdown a submit would get, with no side effects.
    Quote(Arc<ActionRequest>),
    Allocate(Arc<AllocationRequest>),
    Reverse(Arc<ReversalRequest>),
    Redeem(Arc<RedemptionRequest>),
    CreateCampaign(Arc<CampaignFields>),
    UpdateCampaign(Id, Arc<CampaignFields>),
    CreateUser(Arc<(PartnerUserId, UserProfile)>),
    UpdateUser(Arc<(PartnerUserId, UserProfile)>),
    CreateWebhook(Arc<WebhookFields>),
    UpdateWebhook(Id, Arc<WebhookFields>),
    DeleteWebhook(Id),
    RotateWebhookSecret(Id),
    TestWebhook(Id),
    /// From the dispatcher: what happened to an endpoint's deliveries, to judge by the health
    /// policy (this actor alone writes the endpoint's status).
    ReportDeliveries(Id, Arc<Vec<DeliveryFact>>),
}

impl Command {
    fn kind(&self) -> &'static str {
        match self {
            Command::Submit(_) => "submit_action",
            Command::Quote(_) => "quote_action",
            Command::Allocate(_) => "allocate_tokens",
            Command::Reverse(_) => "reverse_action",
            Command::Redeem(_) => "redeem_tokens",
            Command::CreateCampaign(_) => "create_campaign",
            Command::UpdateCampaign(..) => "update_campaign",
            Command::CreateUser(_) => "create_user",
            Command::UpdateUser(_) => "update_user",
            Command::CreateWebhook(_) => "create_webhook",
            Command::UpdateWebhook(..) => "update_webhook",
            Command::DeleteWebhook(_) => "delete_webhook",
            Command::RotateWebhookSecret(_) => "rotate_webhook_secret",
            Command::TestWebhook(_) => "test_webhook",
            Command::ReportDeliveries(..) => "report_deliveries",
        }
    }
}

pub(crate) struct PartnerCommand {
    pub command: Command,
    pub request_id: String,
    pub reply: oneshot::Sender<Delivery<WriteOutcome>>,
}

impl Message for PartnerCommand {
    type Result = ();
}

/// Records an event in this partner's feed (sequence assigned here, like every event).
pub(crate) struct RecordEvent {
    pub event_type: EventType,
    pub data: serde_json::Value,
    /// An announcement's id: record the event only if this feed has not recorded it yet, and
    /// mark it recorded in the same commit (at most once, whichever node delivers it).
    pub announcement: Option<Id>,
    pub reply: oneshot::Sender<Delivery<()>>,
}

impl Message for RecordEvent {
    type Result = ();
}

/// What the actor loads from the store when it starts.
struct LoadedState {
    env_state: PartnerEnvState,
    pools: HashMap<Id, PoolRecord>,
    campaigns: HashMap<Id, CampaignRecord>,
    /// Every webhook endpoint (events fan out to them in the write set that makes them).
    webhooks: Vec<EndpointRecord>,
    /// Their health records (absent: healthy, nothing written yet); this actor alone writes
    /// them, with the endpoints' status.
    webhook_health: HashMap<Id, HealthRecord>,
}

struct InflightKey {
    request_hash: [u8; 32],
    recorded: Recorded,
    request_id: String,
    receipt: CommitReceipt,
    write_sequence: u64,
}

struct CachedAction {
    record: crate::domain::model::ActionRecord,
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
    by_scope: [HashMap<String, InflightKey>; IdempotencyScope::ALL.len()],
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
    /// In cluster mode, the epoch of the partner's shard when this actor started: its write
    /// sets carry it, and the store refuses them once the shard has moved on.
    epoch: Option<u64>,
    arbiter: usize,
    shared: Arc<EngineShared>,
    mailbox_depth: Arc<AtomicUsize>,
    state: Result<LoadedState, EngineError>,
    users: HashMap<String, CachedUser>,
    /// Actions written by this actor (a reversal must see the one before it, durable or not).
    actions: HashMap<Id, CachedAction>,
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

impl Handler<PartnerCommand> for PartnerActor {
    type Result = ();

    fn handle(&mut self, message: PartnerCommand, context: &mut Context<Self>) {
        let PartnerCommand { command, request_id, reply } = message;
        self.run_message(context, command.kind(), reply, |actor| {
            if let Err(error) = &actor.state {
                return ActorReply::failed(error.clone());
            }
            let now_ms = actor.shared.clock.now_ms();
            match &command {
                Command::Submit(request) => actor.submit(request, &request_id, now_ms),
                Command::Quote(request) => actor.quote(request, now_ms),
                Command::Allocate(request) => actor.allocate(request, &request_id, now_ms),
                Command::Reverse(request) => actor.reverse(request, &request_id, now_ms),
                Command::Redeem(request) => actor.redeem(request, &request_id, now_ms),
                Command::CreateCampaign(fields) => actor.create_campaign(fields, now_ms),
                Command::UpdateCampaign(campaign_id, fields) => actor.update_campaign(*campaign_id, fields, now_ms),
                Command::CreateUser(user) => actor.create_user(&user.0, &user.1, now_ms),
                Command::UpdateUser(user) => actor.update_user(&user.0, &user.1, now_ms),
                Command::CreateWebhook(fields) => actor.create_webhook(fields, now_ms),
                Command::UpdateWebhook(endpoint_id, fields) => actor.update_webhook(*endpoint_id, fields, now_ms),
                Command::DeleteWebhook(endpoint_id) => actor.delete_webhook(*endpoint_id),
                Command::RotateWebhookSecret(endpoint_id) => actor.rotate_webhook_secret(*endpoint_id, now_ms),
                Command::TestWebhook(endpoint_id) => actor.test_webhook(*endpoint_id, now_ms),
                Command::ReportDeliveries(endpoint_id, facts) => actor.judge_deliveries(*endpoint_id, facts, now_ms),
            }
        });
    }
}

impl Handler<RecordEvent> for PartnerActor {
    type Result = ();

    fn handle(&mut self, message: RecordEvent, context: &mut Context<Self>) {
        self.run_message(context, "record_event", message.reply, |actor| actor.record_event(message.event_type, &message.data, message.announcement));
    }
}

impl PartnerActor {
    pub(crate) fn new(
        partner_env: PartnerEnv,
        generation: u64,
        epoch: Option<u64>,
        arbiter: usize,
        shared: Arc<EngineShared>,
        mailbox_depth: Arc<AtomicUsize>,
    ) -> PartnerActor {
        PartnerActor {
            partner_env,
            generation,
            epoch,
            arbiter,
            shared,
            mailbox_depth,
            state: Err(EngineError::Internal("state not loaded yet".into())),
            users: HashMap::new(),
            actions: HashMap::new(),
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
        let committed = self.committed_sequence;
        if self.users.len() > self.shared.config.users_cached_max {
            self.users.retain(|_, user| user.write_sequence > committed);
        }
        // Durable actions are in the store; only those still in flight need memory.
        self.actions.retain(|_, action| action.write_sequence > committed);
    }

    /// Commits `write_set`; once it is durable, tells the dispatcher what `signal` names (so
    /// the dispatcher never reads a change that is not yet durable).
    fn commit(&mut self, write_set: Vec<WriteOp>, signal: OutboxSignal) -> (u64, CommitReceipt) {
        let sequence = self.next_write_sequence;
        self.next_write_sequence += 1;
        let origin = Origin { partner_env: self.partner_env, generation: self.generation, epoch: self.epoch };
        // Most partners have no endpoint: touch no shared counter or lock for them.
        let after_durable = (!signal.is_empty()).then(|| {
            self.shared.metrics.webhook_deliveries_created.inc_by(signal.queued.len() as u64);
            let (shared, partner_env) = (Arc::clone(&self.shared), self.partner_env);
            Box::new(move || shared.webhook_signal.hear(partner_env, signal)) as crate::commit::AfterDurable
        });
        let receipt = self.shared.committer.submit_then(write_set, Some(origin), after_durable);
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
        let record = match records::idempotency(&self.partner_env, scope, key).get(self.shared.store.as_ref()) {
            Err(records::RecordError::Decode(error)) => {
                return Some(ActorReply::failed(EngineError::internal("decoding an idempotency record", error)));
            }
            Err(error) => return Some(ActorReply::failed(EngineError::internal("reading an idempotency record", error))),
            Ok(None) => return None,
            Ok(Some(record)) => record,
        };
        if record.request_hash != *request_hash {
            return Some(ActorReply::failed(EngineError::IdempotencyKeyReused));
        }
        self.shared.metrics.idempotent_replays.inc();
        let original = Recorded { effect: record.effect, body: Arc::from(record.response_json) };
        Some(ActorReply { outcome: Ok(WriteOutcome::Replayed { original, original_request_id: record.request_id }), receipt: None })
    }

    /// The user's current record: memory first (it may be ahead of the store), then the store.
    fn load_user(&mut self, external_id: &str) -> Result<Option<UserRecord>, EngineError> {
        if let Some(cached) = self.users.get(external_id) {
            return Ok(Some(cached.record.clone()));
        }
        records::user(&self.partner_env, external_id).get(self.shared.store.as_ref()).map_err(|error| EngineError::internal("reading a user", error))
    }

    /// An action's current record: memory first (a write may be in flight), then the store.
    fn load_action(&self, action_id: Id) -> Result<Option<crate::domain::model::ActionRecord>, EngineError> {
        if let Some(cached) = self.actions.get(&action_id) {
            return Ok(Some(cached.record.clone()));
        }
        records::action(&self.partner_env, action_id)
            .get(self.shared.store.as_ref())
            .map_err(|error| EngineError::internal("reading an action", error))
    }

    fn stakeholder_users(&mut self, request: &ActionRequest, now_ms: u64) -> Result<Vec<PostingUser>, EngineError> {
        let mut users = Vec::with_capacity(request.stakeholders.len());
        for stakeholder in &request.stakeholders {
            match self.load_user(stakeholder.partner_user_id.as_str())? {
                Some(record) => users.push(PostingUser { record, is_new: false }),
                None if request.auto_create_users => users.push(PostingUser { record: self.new_user(stakeholder, now_ms), is_new: true }),
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

    fn loaded(&self) -> &LoadedState {
        self.state.as_ref().expect("commands run only on loaded state")
    }

    fn loaded_mut(&mut self) -> &mut LoadedState {
        self.state.as_mut().expect("commands run only on loaded state")
    }

    /// Applies a posting to memory and hands its write set to the committer: the pools,
    /// campaigns and users it changed, the event sequence it took, today's totals, and (for
    /// an idempotent write) the key in flight. Answers `effect` with the posting's body.
    fn finish(
        &mut self,
        posting: RewardPosting,
        idempotent: Option<(IdempotencyScope, &str, [u8; 32])>,
        request_id: &str,
        effect: Effect,
        totals: (u64, u64, u64),
        now_ms: u64,
    ) -> ActorReply<WriteOutcome> {
        let RewardPosting { mut changes, response_json, next_event_sequence } = posting;
        if let Some((scope, key, request_hash)) = idempotent {
            let resource_id = changes.action.as_ref().map_or_else(|| self.shared.ids.next(now_ms), |action| action.id);
            let record = IdempotencyRecord {
                request_hash,
                resource_id,
                response_json: response_json.clone(),
                request_id: request_id.to_owned(),
                effect,
                created_at_ms: now_ms,
            };
            changes.idempotency = Some((scope, key.to_owned(), record));
        }
        let partner_env = self.partner_env;
        let shared = Arc::clone(&self.shared);
        let state = self.state.as_mut().expect("commands run only on loaded state");
        state.env_state.next_event_sequence = next_event_sequence;
        let (actions, issued, reversed) = totals;
        if actions + issued + reversed > 0 {
            state.env_state.count(now_ms, actions, issued, reversed);
        }
        let mut write_set = changes.write_set(&partner_env, &state.env_state);
        let queued = fan_out(&mut write_set, &partner_env, &state.webhooks, &changes.events, &[], &shared.ids, now_ms);
        for pool in &changes.pools {
            state.pools.insert(pool.id, pool.clone());
        }
        for campaign in &changes.campaigns {
            state.campaigns.insert(campaign.id, campaign.clone());
        }
        let (sequence, receipt) = self.commit(write_set, OutboxSignal { queued, ..OutboxSignal::default() });
        for user in changes.users {
            self.users.insert(user.record.external_id.clone(), CachedUser { record: user.record, write_sequence: sequence });
        }
        if let Some(action) = changes.action {
            self.actions.insert(action.id, CachedAction { record: action, write_sequence: sequence });
        }
        let recorded = Recorded { effect, body: Arc::from(response_json) };
        if let Some((scope, key, request_hash)) = idempotent {
            self.remember_inflight(scope, key, request_hash, &recorded, request_id, &receipt, sequence);
        }
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
    fn commit_event<T: Serialize>(&mut self, event_type: EventType, data: &T, now_ms: u64) -> CommitReceipt {
        self.commit_events_with(&[(event_type, data)], now_ms, &[], Vec::new(), OutboxSignal::default())
    }

    /// Commits events (in order) with `extra` writes, fanned out to every subscribed endpoint
    /// but `excluded` (the endpoint they are about); `signal` names what else changed.
    fn commit_events_with<T: Serialize>(
        &mut self,
        to_record: &[(EventType, T)],
        now_ms: u64,
        excluded: &[Id],
        extra: Vec<WriteOp>,
        mut signal: OutboxSignal,
    ) -> CommitReceipt {
        let partner_env = self.partner_env;
        let state = self.state.as_mut().expect("events are recorded on loaded state");
        let mut events =
            EventBuilder { partner_env, ids: &self.shared.ids, now_ms, next_sequence: state.env_state.next_event_sequence, events: Vec::new() };
        for (event_type, data) in to_record {
            events.push(*event_type, data);
        }
        state.env_state.next_event_sequence = events.next_sequence;
        let mut write_set = extra;
        push_events(&mut write_set, &partner_env, &events.events, &state.env_state);
        let queued = fan_out(&mut write_set, &partner_env, &state.webhooks, &events.events, excluded, &self.shared.ids, now_ms);
        signal.queued.extend(queued);
        self.commit(write_set, signal).1
    }

    fn record_event(&mut self, event_type: EventType, data: &serde_json::Value, announcement: Option<Id>) -> ActorReply<()> {
        if let Err(error) = &self.state {
            return ActorReply::failed(error.clone());
        }
        let now_ms = self.shared.clock.now_ms();
        let Some(announcement_id) = announcement else {
            return ActorReply { outcome: Ok(()), receipt: Some(self.commit_event(event_type, data, now_ms)) };
        };
        // Deliveries of one announcement never overlap on this node (one pass at a time, each
        // waiting for its commit), and only this actor writes the mark: a read suffices.
        let mark = records::idempotency(&self.partner_env, IdempotencyScope::AnnouncementRecorded, &announcement_id.to_hex());
        match mark.exists(self.shared.store.as_ref()) {
            Ok(true) => ActorReply { outcome: Ok(()), receipt: None },
            Ok(false) => {
                let marked = IdempotencyRecord {
                    request_hash: [0; 32],
                    resource_id: announcement_id,
                    response_json: b"{}".to_vec(),
                    request_id: String::new(),
                    effect: Effect::Applied,
                    created_at_ms: now_ms,
                };
                let receipt = self.commit_events_with(&[(event_type, data)], now_ms, &[], vec![mark.put(&marked)], OutboxSignal::default());
                ActorReply { outcome: Ok(()), receipt: Some(receipt) }
            }
            Err(error) => ActorReply::failed(EngineError::internal("reading an announcement's mark", error)),
        }
    }
}

fn load_state(shared: &EngineShared, partner_env: &PartnerEnv) -> Result<LoadedState, EngineError> {
    let store = &shared.store;
    let env_state =
        records::partner_env_state(partner_env).get(store.as_ref()).map_err(|error| EngineError::internal("loading partner state", error))?;
    let env_state = env_state.unwrap_or(PartnerEnvState { next_event_sequence: 1, ..PartnerEnvState::default() });
    let config = &shared.config;
    let pools = records::pools(partner_env).read(store.as_ref(), ScanOrder::Ascending, config.pools_per_partner_max);
    let mut pools_by_id = HashMap::new();
    for pool in pools.map_err(|error| EngineError::internal("loading pools", error))? {
        pool.assert_conserved();
        pools_by_id.insert(pool.id, pool);
    }
    let campaigns = records::campaigns(partner_env).read(store.as_ref(), ScanOrder::Ascending, config.campaigns_per_partner_max);
    let campaigns =
        campaigns.map_err(|error| EngineError::internal("loading campaigns", error))?.into_iter().map(|campaign| (campaign.id, campaign)).collect();
    let webhooks = records::webhook_endpoints(partner_env).read(store.as_ref(), ScanOrder::Ascending, config.webhooks_per_partner_max);
    let webhooks = webhooks.map_err(|error| EngineError::internal("loading webhook endpoints", error))?;
    let mut webhook_health = HashMap::new();
    for endpoint in &webhooks {
        let health = records::webhook_health(partner_env, endpoint.id).get(store.as_ref());
        if let Some(health) = health.map_err(|error| EngineError::internal("loading webhook health", error))? {
            webhook_health.insert(endpoint.id, health);
        }
    }
    Ok(LoadedState { env_state, pools: pools_by_id, campaigns, webhooks, webhook_health })
}
