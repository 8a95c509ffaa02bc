//! The `Engine` handle: the only way the front reaches actors, the committer and the store.
//!
//! It owns the actix runtime (one system thread, N arbiter threads), the partner registry
//! (at most one live actor per (partner, environment)), the committer, and the caches.
//! Admission happens here, before any mailbox slot is taken: shutting down → 503, commit
//! queue full → 503, mailbox full → 503. Every wait on an actor or a commit is bounded.
//!
//! Beside the handle, the runtime it carries: `clock` (system or test time), `crypto` (secrets
//! at rest, random keys, digests), `error` (the engine's errors, each with its stable code),
//! `metrics` (the engine's Prometheus series) and `rate_limit` (per-partner GCRA budgets,
//! checked before a request takes a mailbox slot).

pub mod clock;
pub mod crypto;
pub mod error;
pub mod metrics;
pub mod rate_limit;

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use actix::dev::channel;
use actix::prelude::*;
use actix_rt::ArbiterHandle;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::engine::clock::Clock;
use crate::commit::{CommitterHandle, CommitterLimits, CommitterThread, start_committer};
use crate::engine::crypto::MasterKey;
use crate::engine::error::{EngineError, InvalidSetting, STORE_UNAVAILABLE_RETRY_AFTER_SECS};
use crate::api::facades::{Actions, Campaigns, Pools, Users, Webhooks};
use crate::domain::ids::{Id, IdGenerator};
use crate::services::key_lookup::AuthCache;
use crate::engine::metrics::EngineMetrics;
use crate::domain::model::PartnerEnv;
use crate::actor::{ActorReply, Command, Delivery, PartnerActor, PartnerCommand, RecordEvent, WriteOutcome};
use crate::engine::rate_limit::{Budget, ExceedsBurst, RateDecision, RateLimits};
use crate::domain::request::{ActionRequest, AllocationRequest, CampaignFields, PartnerUserId, RedemptionRequest, ReversalRequest, UserProfile};
use crate::store::Store;

/// Argon2 hashes computed at once: more would only queue on 2 cores and hold memory.
const PASSWORD_HASHES_MAX: usize = 4;

/// The engine's bounds and timings. Defaults are the production values; each says why.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Arbiter threads for partner actors. 0 means one per core.
    pub arbiters: usize,
    /// Messages one partner actor may have queued. At ~10 µs a message, 4096 is ~40 ms of
    /// work: a burst beyond that is refused (503) rather than queued into a timeout.
    pub mailbox_capacity: usize,
    /// Write sets in one durable transaction. Bounds a commit's latency and memory.
    pub commit_batch_max: usize,
    /// Write sets waiting for the committer before new work is refused. ~1 s of peak load.
    pub commit_queue_max: usize,
    /// How long the front waits for an actor's decision.
    pub reply_timeout_ms: u64,
    /// How long the front waits for a decided write to become durable (then 504).
    pub commit_timeout_ms: u64,
    /// An actor idle this long (and with nothing in flight) stops and frees its memory.
    pub passivate_after_secs: u64,
    /// How often an actor checks for idleness and settles commits while idle.
    pub idle_check_interval_ms: u64,
    /// Users one actor keeps in memory; committed entries are dropped past this.
    pub users_cached_max: usize,
    /// Token pools one (partner, environment) may hold; loaded whole into its actor.
    pub pools_per_partner_max: usize,
    /// Campaigns one (partner, environment) may hold; loaded whole into its actor.
    pub campaigns_per_partner_max: usize,
    /// Webhook endpoints one (partner, environment) may hold; loaded whole into its actor,
    /// and every event fans out to each.
    pub webhooks_per_partner_max: usize,
    /// Authenticated keys kept in memory; the cache is emptied when it reaches this.
    pub auth_cache_max: usize,
    /// Portal sign-in attempts (login, registration, refresh) per client address per minute.
    pub portal_attempts_per_minute: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            arbiters: 0,
            mailbox_capacity: 4096,
            commit_batch_max: 2048,
            commit_queue_max: 65_536,
            reply_timeout_ms: 5_000,
            commit_timeout_ms: 10_000,
            passivate_after_secs: 300,
            idle_check_interval_ms: 1_000,
            users_cached_max: 100_000,
            pools_per_partner_max: 1_000,
            campaigns_per_partner_max: 1_000,
            webhooks_per_partner_max: 16,
            auth_cache_max: 100_000,
            portal_attempts_per_minute: 20,
        }
    }
}

impl EngineConfig {
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let positive = [
            ("mailbox_capacity", self.mailbox_capacity as u64),
            ("commit_batch_max", self.commit_batch_max as u64),
            ("commit_queue_max", self.commit_queue_max as u64),
            ("reply_timeout_ms", self.reply_timeout_ms),
            ("commit_timeout_ms", self.commit_timeout_ms),
            ("idle_check_interval_ms", self.idle_check_interval_ms),
            ("users_cached_max", self.users_cached_max as u64),
            ("pools_per_partner_max", self.pools_per_partner_max as u64),
            ("campaigns_per_partner_max", self.campaigns_per_partner_max as u64),
            ("webhooks_per_partner_max", self.webhooks_per_partner_max as u64),
            ("auth_cache_max", self.auth_cache_max as u64),
            ("portal_attempts_per_minute", u64::from(self.portal_attempts_per_minute)),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(InvalidSetting::new(format!("engine.{name}"), format!("engine.{name} must be greater than 0")));
            }
        }
        if self.arbiters > 256 {
            return Err(InvalidSetting::new("engine.arbiters", "engine.arbiters must be at most 256"));
        }
        Ok(())
    }

    pub fn arbiter_count(&self) -> usize {
        if self.arbiters > 0 { self.arbiters } else { std::thread::available_parallelism().map_or(2, |cores| cores.get()) }
    }
}

/// State shared by the engine handle, every actor and the caches.
pub(crate) struct EngineShared {
    pub config: EngineConfig,
    pub store: Arc<dyn Store>,
    pub committer: CommitterHandle,
    pub clock: Arc<Clock>,
    pub ids: IdGenerator,
    pub metrics: Arc<EngineMetrics>,
    pub master_key: MasterKey,
    pub registry: Registry,
    pub auth_cache: AuthCache,
    pub key_usage: crate::services::keys::KeyUsage,
    /// Argon2 hashes in progress at once (each takes ~19 MiB and tens of ms of a core).
    pub password_permits: tokio::sync::Semaphore,
    pub portal_attempts: crate::engine::rate_limit::PortalAttempts,
    pub shutting_down: AtomicBool,
    /// Endpoints with new work, for the webhook dispatcher.
    pub webhook_signal: crate::webhooks::WebhookSignal,
    /// Replaced when the dispatcher starts; the defaults before (tests and benches without one).
    pub webhook_settings: parking_lot::RwLock<Arc<crate::webhooks::WebhookSettings>>,
    /// In cluster mode, which shards this node holds: a partner's actor starts only under one.
    pub cluster: Option<Arc<crate::cluster::Ownership>>,
}

impl EngineShared {
    pub fn webhook_settings(&self) -> Arc<crate::webhooks::WebhookSettings> {
        Arc::clone(&self.webhook_settings.read())
    }
}

/// A cheap, cloneable handle to the running engine.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<EngineInner>,
}

pub(crate) struct EngineInner {
    pub shared: Arc<EngineShared>,
    actix: Mutex<Option<ActixRuntime>>,
    committer_thread: Mutex<Option<CommitterThread>>,
    /// Serializes admin read-check-write sequences (slug uniqueness, key issuance). Admin
    /// writes are rare; money never goes through here (pools change in partner actors).
    pub admin_lock: tokio::sync::Mutex<()>,
    /// One delivery of pending announcements at a time (each is recorded once per pass).
    pub announce_lock: tokio::sync::Mutex<()>,
    /// The webhook dispatcher, once started.
    pub webhooks: Mutex<Option<crate::webhooks::dispatcher::DispatcherHandle>>,
    /// Online backups, one at a time (`operations`).
    pub backups: Arc<crate::services::operations::backups::Backups>,
    /// Housekeeping and the backup schedule, until shutdown.
    jobs: Mutex<Option<crate::services::operations::Jobs>>,
    /// The providers' donation link templates.
    pub donation_links: crate::services::donations::DonationsConfig,
    /// In cluster mode, the membership loop (heartbeats, claims, handoffs) until shutdown.
    membership: Mutex<Option<crate::cluster::membership::Membership>>,
    /// In cluster mode, the store (for the cluster's own tables; the node's id is its
    /// ownership view's, `shared.cluster`).
    cluster_store: Option<Arc<crate::store::PgStore>>,
}

/// What the front needs to forward a request in cluster mode.
#[derive(Clone)]
pub struct ClusterIdentity {
    pub node_id: String,
    /// Derived from the master key every node holds: authenticates forwarded requests' hops.
    pub forwarding_key: [u8; 32],
}

impl std::fmt::Debug for ClusterIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterIdentity").field("node_id", &self.node_id).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineStartError {
    #[error("invalid engine configuration: {0}")]
    Config(InvalidSetting),
    /// The webhook settings (`[webhook]`) do not parse.
    #[error("{0}")]
    WebhookSettings(InvalidSetting),
    /// The webhook delivery client cannot be built.
    #[error("cannot start the webhook dispatcher")]
    Webhooks(#[source] crate::webhooks::WebhookClientError),
    #[error("the engine starts its periodic jobs on a tokio runtime: call Engine::start inside one")]
    NoRuntime,
    #[error("cannot start engine threads: {0}")]
    Threads(#[from] std::io::Error),
    /// The master key is not the one the data was sealed under (or its check value is damaged).
    #[error("the master key is refused")]
    MasterKey(#[source] MasterKeyRefused),
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
}

/// Why [`Engine::start`] refuses the master key it was given for this data.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyRefused {
    /// The check value sealed at the first start does not open under it.
    #[error("this master key is not the one the data directory was created with")]
    NotTheDataKey(#[source] crate::engine::crypto::CryptoError),
    /// The check value opens but does not say what was sealed: the data is damaged.
    #[error("the master key check value is corrupt")]
    CheckValueCorrupt,
}

/// The associated data of the value sealed under the master key at the first start.
const MASTER_KEY_CHECK: &[u8] = b"master_key_check";

/// Refuses a master key other than the one the data was sealed under; seals a check value
/// under it at the first start.
fn check_master_key(store: &dyn Store, master_key: &MasterKey) -> Result<(), EngineStartError> {
    let check = crate::store::records::master_key_check();
    match check.get_bytes(store)? {
        Some(sealed) => {
            let opened =
                master_key.open(MASTER_KEY_CHECK, &sealed).map_err(|error| EngineStartError::MasterKey(MasterKeyRefused::NotTheDataKey(error)))?;
            if opened != b"ok" {
                return Err(EngineStartError::MasterKey(MasterKeyRefused::CheckValueCorrupt));
            }
            Ok(())
        }
        None => Ok(store.commit(&[&[check.put(&master_key.seal(MASTER_KEY_CHECK, b"ok"))]])?),
    }
}

/// What [`Engine::start`] needs: its configuration, an open store, the clock, the master key
/// the data is sealed under, and the settings of its periodic jobs.
pub struct EngineParts {
    pub config: EngineConfig,
    pub store: Arc<dyn Store>,
    pub clock: Arc<Clock>,
    pub master_key: MasterKey,
    pub jobs: crate::services::operations::JobsConfig,
    /// The providers' donation link templates.
    pub donations: crate::services::donations::DonationsConfig,
    /// Cluster mode (PostgreSQL only): the node's settings, ownership view and store.
    pub cluster: Option<crate::cluster::ClusterParts>,
}

impl Engine {
    /// Checks the master key against the data, starts the committer and the actor runtime
    /// over an open store, then the periodic jobs (webhook deliveries, housekeeping, scheduled
    /// backups) on the current tokio runtime; [`Engine::shutdown`] stops them all. Call it
    /// inside a tokio runtime.
    pub fn start(parts: EngineParts) -> Result<Engine, EngineStartError> {
        let EngineParts { config, store, clock, master_key, jobs, donations, cluster } = parts;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| EngineStartError::NoRuntime)?;
        config.validate().map_err(EngineStartError::Config)?;
        donations.check().map_err(EngineStartError::Config)?;
        let webhook_settings = jobs.webhooks.settings().map_err(EngineStartError::WebhookSettings)?;
        check_master_key(store.as_ref(), &master_key)?;
        let metrics = Arc::new(EngineMetrics::new());
        let backups = crate::services::operations::backups::Backups::new(Arc::clone(&store), &metrics.registry, jobs.backups);
        let limits = CommitterLimits { batch_write_sets_max: config.commit_batch_max };
        let (committer, committer_thread) = start_committer(Arc::clone(&store), Arc::clone(&metrics), limits)?;
        let actix = ActixRuntime::start(config.arbiter_count())?;
        let shared = Arc::new(EngineShared {
            registry: Registry::new(actix.arbiters.clone()),
            auth_cache: AuthCache::new(config.auth_cache_max),
            key_usage: crate::services::keys::KeyUsage::default(),
            password_permits: tokio::sync::Semaphore::new(PASSWORD_HASHES_MAX),
            portal_attempts: crate::engine::rate_limit::PortalAttempts::new(config.portal_attempts_per_minute),
            config,
            store,
            committer,
            clock,
            ids: IdGenerator::new(),
            metrics,
            master_key,
            shutting_down: AtomicBool::new(false),
            webhook_signal: crate::webhooks::WebhookSignal::default(),
            webhook_settings: parking_lot::RwLock::new(Arc::new(
                crate::webhooks::WebhookConfig::default().settings().expect("the default webhook settings are valid"),
            )),
            cluster: cluster.as_ref().map(|parts| Arc::clone(&parts.ownership)),
        });
        let engine = Engine {
            inner: Arc::new(EngineInner {
                shared,
                actix: Mutex::new(Some(actix)),
                committer_thread: Mutex::new(Some(committer_thread)),
                admin_lock: tokio::sync::Mutex::new(()),
                announce_lock: tokio::sync::Mutex::new(()),
                webhooks: Mutex::new(None),
                backups,
                jobs: Mutex::new(None),
                donation_links: donations,
                membership: Mutex::new(None),
                cluster_store: cluster.as_ref().map(|parts| Arc::clone(&parts.store)),
            }),
        };
        if let Some(parts) = cluster {
            let metrics = Arc::new(crate::cluster::membership::ClusterMetrics::register(&engine.inner.shared.metrics.registry));
            let host: Arc<dyn crate::cluster::membership::ClusterHost> = Arc::clone(&engine.inner.shared) as _;
            let membership = crate::cluster::membership::Membership::start(parts.config, parts.store, parts.ownership, host, metrics);
            *engine.inner.membership.lock() = Some(membership);
        }
        let _entered = runtime.enter();
        engine.start_webhooks(webhook_settings).map_err(EngineStartError::Webhooks)?;
        *engine.inner.jobs.lock() = Some(crate::services::operations::Jobs::start(&engine, jobs.maintenance, &engine.inner.backups));
        Ok(engine)
    }

    pub(crate) fn shared(&self) -> &Arc<EngineShared> {
        &self.inner.shared
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.shared.config
    }

    pub fn clock(&self) -> &Clock {
        &self.inner.shared.clock
    }

    pub fn ids(&self) -> &IdGenerator {
        &self.inner.shared.ids
    }

    pub fn store_backend(&self) -> crate::store::StoreBackend {
        self.inner.shared.store.backend()
    }

    pub fn metrics_registry(&self) -> &prometheus::Registry {
        &self.inner.shared.metrics.registry
    }

    /// Store open and engine answering: the committer and actor runtime are up.
    pub fn is_ready(&self) -> bool {
        self.not_ready_reason().is_none()
    }

    /// Why the engine is not ready (shutting down, the store refusing writes and why, the
    /// actor runtime stopped); `None` when it is.
    pub fn not_ready_reason(&self) -> Option<String> {
        let shared = &self.inner.shared;
        if shared.shutting_down.load(Ordering::Relaxed) {
            return Some("shutting down".into());
        }
        if let Some(reason) = shared.store.unavailable_reason() {
            return Some(format!("the store refuses writes: {reason}"));
        }
        if let Some(ownership) = &shared.cluster
            && !ownership.is_ready()
        {
            return Some(format!("cluster node {} does not hold every shard it should yet ({} held)", ownership.node_id(), ownership.held_count()));
        }
        self.inner.actix.lock().is_none().then(|| "the actor runtime is stopped".into())
    }

    /// Seconds a client should wait before retrying while the engine is not ready.
    pub fn not_ready_retry_after_secs(&self) -> u32 {
        if self.inner.shared.store.is_healthy() { 1 } else { STORE_UNAVAILABLE_RETRY_AFTER_SECS }
    }

    /// Brings gauges computed from live state (actors, mailboxes, queue) up to date.
    pub fn refresh_gauges(&self) {
        let shared = &self.inner.shared;
        shared.registry.refresh_gauges(&shared.metrics);
        shared.metrics.commit_queue_depth.set(shared.committer.queued() as i64);
    }

    /// Takes `units` from the partner's `budget` (no mailbox slot, no actor work). `limit` is
    /// the partner's current limit; a changed limit applies at once.
    pub fn check_rate_limit(
        &self,
        partner_env: PartnerEnv,
        budget: Budget,
        limit: crate::domain::model::RateLimit,
        units: u32,
    ) -> Result<RateDecision, ExceedsBurst> {
        let decision = self.inner.shared.registry.rate_limits.check(partner_env, budget, limit, units)?;
        if !decision.allowed {
            self.inner.shared.metrics.rate_limited.inc();
        }
        Ok(decision)
    }

    /// Counts a portal sign-in attempt from `address`; `Err(seconds)` when it must wait.
    pub fn check_portal_attempt(&self, address: std::net::IpAddr) -> Result<(), u64> {
        let checked = self.inner.shared.portal_attempts.check(address);
        if checked.is_err() {
            self.inner.shared.metrics.rate_limited.inc();
        }
        checked
    }

    /// Drops rate-limit state nobody needs any more (runs with housekeeping).
    pub(crate) fn forget_idle_rate_limits(&self) {
        self.inner.shared.portal_attempts.forget_idle();
    }

    /// The partner's budget as its last decision left it, spending nothing.
    pub fn peek_rate_limit(&self, partner_env: PartnerEnv, budget: Budget) -> Option<RateDecision> {
        self.inner.shared.registry.rate_limits.peek(partner_env, budget)
    }
}

impl Actions<'_> {
    /// Submits an action: the answer arrives once its effects are durable.
    pub async fn submit_action(&self, partner_env: PartnerEnv, request: ActionRequest, request_id: String) -> Result<WriteOutcome, EngineError> {
        self.engine.command(partner_env, Command::Submit(Arc::new(request)), request_id).await
    }

    /// The breakdown `submit_action` would answer now, with no side effects.
    pub async fn quote_action(&self, partner_env: PartnerEnv, request: ActionRequest, request_id: String) -> Result<WriteOutcome, EngineError> {
        self.engine.command(partner_env, Command::Quote(Arc::new(request)), request_id).await
    }
}

impl Pools<'_> {
    /// Allocates tokens to a pool (admin): idempotent by the request's key.
    pub async fn allocate_tokens(
        &self,
        partner_env: PartnerEnv,
        request: AllocationRequest,
        request_id: String,
    ) -> Result<WriteOutcome, EngineError> {
        self.engine.command(partner_env, Command::Allocate(Arc::new(request)), request_id).await
    }
}

impl Actions<'_> {
    /// Reverses (part of) an action: idempotent by the request's key.
    pub async fn reverse_action(&self, partner_env: PartnerEnv, request: ReversalRequest, request_id: String) -> Result<WriteOutcome, EngineError> {
        self.engine.command(partner_env, Command::Reverse(Arc::new(request)), request_id).await
    }
}

impl Users<'_> {
    /// Redeems tokens from a user's available balance: idempotent by the request's key.
    pub async fn redeem_tokens(&self, partner_env: PartnerEnv, request: RedemptionRequest, request_id: String) -> Result<WriteOutcome, EngineError> {
        self.engine.command(partner_env, Command::Redeem(Arc::new(request)), request_id).await
    }
}

impl Campaigns<'_> {
    pub async fn create_campaign(&self, partner_env: PartnerEnv, fields: CampaignFields, request_id: String) -> Result<WriteOutcome, EngineError> {
        self.engine.command(partner_env, Command::CreateCampaign(Arc::new(fields)), request_id).await
    }

    pub async fn update_campaign(
        &self,
        partner_env: PartnerEnv,
        campaign_id: Id,
        fields: CampaignFields,
        request_id: String,
    ) -> Result<WriteOutcome, EngineError> {
        self.engine.command(partner_env, Command::UpdateCampaign(campaign_id, Arc::new(fields)), request_id).await
    }
}

impl Users<'_> {
    pub async fn create_user(
        &self,
        partner_env: PartnerEnv,
        user: PartnerUserId,
        profile: UserProfile,
        request_id: String,
    ) -> Result<WriteOutcome, EngineError> {
        self.engine.command(partner_env, Command::CreateUser(Arc::new((user, profile))), request_id).await
    }

    pub async fn update_user(
        &self,
        partner_env: PartnerEnv,
        user: PartnerUserId,
        profile: UserProfile,
        request_id: String,
    ) -> Result<WriteOutcome, EngineError> {
        self.engine.command(partner_env, Command::UpdateUser(Arc::new((user, profile))), request_id).await
    }
}

impl Webhooks<'_> {
    /// Sends one command to the partner's actor; the answer arrives once it is durable.
    pub async fn create_webhook(&self, partner_env: PartnerEnv, fields: crate::webhooks::WebhookFields) -> Result<WriteOutcome, EngineError> {
        self.engine.command(partner_env, Command::CreateWebhook(Arc::new(fields)), String::new()).await
    }

    pub async fn update_webhook(
        &self,
        partner_env: PartnerEnv,
        endpoint_id: Id,
        fields: crate::webhooks::WebhookFields,
    ) -> Result<WriteOutcome, EngineError> {
        self.engine.command(partner_env, Command::UpdateWebhook(endpoint_id, Arc::new(fields)), String::new()).await
    }

    pub async fn delete_webhook(&self, partner_env: PartnerEnv, endpoint_id: Id) -> Result<WriteOutcome, EngineError> {
        self.engine.command(partner_env, Command::DeleteWebhook(endpoint_id), String::new()).await
    }

    pub async fn rotate_webhook_secret(&self, partner_env: PartnerEnv, endpoint_id: Id) -> Result<WriteOutcome, EngineError> {
        self.engine.command(partner_env, Command::RotateWebhookSecret(endpoint_id), String::new()).await
    }

    pub async fn test_webhook(&self, partner_env: PartnerEnv, endpoint_id: Id) -> Result<WriteOutcome, EngineError> {
        self.engine.command(partner_env, Command::TestWebhook(endpoint_id), String::new()).await
    }
}

impl Engine {
    /// Tells an endpoint's partner actor what happened to its deliveries (the dispatcher's
    /// report); answers once the actor's verdict is durable.
    pub(crate) async fn report_deliveries(
        &self,
        partner_env: PartnerEnv,
        endpoint_id: Id,
        facts: Arc<Vec<crate::webhooks::DeliveryFact>>,
    ) -> Result<WriteOutcome, EngineError> {
        self.command(partner_env, Command::ReportDeliveries(endpoint_id, facts), String::new()).await
    }

    async fn command(&self, partner_env: PartnerEnv, command: Command, request_id: String) -> Result<WriteOutcome, EngineError> {
        self.ask(partner_env, move |reply| PartnerCommand { command: command.clone(), request_id: request_id.clone(), reply }).await
    }
}

impl Webhooks<'_> {
    /// Records an announcement's event in a partner's feed through its actor (which alone
    /// assigns sequences), at most once: the actor marks `announcement` recorded with it.
    pub(crate) async fn record_announcement(
        &self,
        partner_env: PartnerEnv,
        event_type: crate::webhooks::EventType,
        data: serde_json::Value,
        announcement: Id,
    ) -> Result<(), EngineError> {
        self.engine.ask(partner_env, move |reply| RecordEvent { event_type, data: data.clone(), announcement: Some(announcement), reply }).await
    }
}

impl Actions<'_> {
    /// Submits several actions for one partner, in order: every message is in the actor's
    /// mailbox before the first answer is awaited, so the items' commits overlap. Each item
    /// stands alone: its own outcome, whatever the others'.
    pub async fn submit_batch(
        &self,
        partner_env: PartnerEnv,
        requests: Vec<ActionRequest>,
        request_id: String,
    ) -> Vec<Result<WriteOutcome, EngineError>> {
        let commands: Vec<Command> = requests.into_iter().map(|request| Command::Submit(Arc::new(request))).collect();
        let sent: Vec<_> = commands
            .iter()
            .map(|command| self.engine.send(partner_env, &|reply| PartnerCommand { command: command.clone(), request_id: request_id.clone(), reply }))
            .collect();
        let mut results = Vec::with_capacity(commands.len());
        for (command, sent) in commands.into_iter().zip(sent) {
            let result = match sent {
                Err(error) => Err(error),
                Ok(answer) => match self.engine.receive(answer).await {
                    Ok(Some(outcome)) => Ok(outcome),
                    // The actor retired first: this item goes again on its own.
                    Ok(None) => self.engine.command(partner_env, command, request_id.clone()).await,
                    Err(error) => Err(error),
                },
            };
            results.push(result);
        }
        results
    }
}

impl Engine {
    /// Sends a message to the partner's actor and waits, bounded, for its durable answer.
    async fn ask<T, M>(&self, partner_env: PartnerEnv, build: impl Fn(oneshot::Sender<Delivery<T>>) -> M) -> Result<T, EngineError>
    where
        M: Message<Result = ()> + Send + 'static,
        PartnerActor: Handler<M>,
    {
        // An actor can retire between lookup and answer (idle passivation, a failed commit);
        // each retry finds or starts its successor. Three tries cover a retire racing a start.
        const ATTEMPTS_MAX: usize = 3;
        for _ in 0..ATTEMPTS_MAX {
            let answer = self.send(partner_env, &build)?;
            if let Some(outcome) = self.receive(answer).await? {
                return Ok(outcome);
            }
        }
        Err(self.overloaded("actor_restarting"))
    }

    /// Puts a message in the partner actor's mailbox (starting the actor if needed), without
    /// waiting: the answer arrives on the returned channel.
    fn send<T, M>(
        &self,
        partner_env: PartnerEnv,
        build: &impl Fn(oneshot::Sender<Delivery<T>>) -> M,
    ) -> Result<oneshot::Receiver<Delivery<T>>, EngineError>
    where
        M: Message<Result = ()> + Send + 'static,
        PartnerActor: Handler<M>,
    {
        // A closed mailbox is an actor that stopped after lookup: its successor gets the message.
        const ATTEMPTS_MAX: usize = 3;
        let shared = &self.inner.shared;
        if shared.shutting_down.load(Ordering::Relaxed) {
            return Err(EngineError::ShuttingDown);
        }
        self.check_store_writable()?;
        if shared.committer.queued() >= shared.config.commit_queue_max {
            return Err(self.overloaded("commit_queue"));
        }
        for _ in 0..ATTEMPTS_MAX {
            let slot = shared.registry.route(shared, partner_env)?;
            if slot.mailbox_depth.fetch_add(1, Ordering::AcqRel) >= shared.config.mailbox_capacity {
                slot.mailbox_depth.fetch_sub(1, Ordering::AcqRel);
                return Err(self.overloaded("mailbox"));
            }
            let (reply, answer) = oneshot::channel();
            match slot.addr.try_send(build(reply)) {
                Ok(()) => return Ok(answer),
                Err(error) => {
                    slot.mailbox_depth.fetch_sub(1, Ordering::AcqRel);
                    match error {
                        SendError::Full(_) => return Err(self.overloaded("mailbox")),
                        SendError::Closed(_) => {
                            shared.registry.remove_if_generation(partner_env, slot.generation);
                        }
                    }
                }
            }
        }
        Err(self.overloaded("actor_restarting"))
    }

    /// Waits, bounded, for an actor's answer and then for its durability. `None`: the actor
    /// retired without handling the message (send it again).
    async fn receive<T>(&self, answer: oneshot::Receiver<Delivery<T>>) -> Result<Option<T>, EngineError> {
        let shared = &self.inner.shared;
        match tokio::time::timeout(Duration::from_millis(shared.config.reply_timeout_ms), answer).await {
            Err(_) => {
                shared.metrics.engine_timeouts.inc();
                Err(EngineError::Timeout)
            }
            Ok(Err(_)) | Ok(Ok(Delivery::Retired)) => Ok(None),
            Ok(Ok(Delivery::Handled(reply))) => self.await_durable(reply).await.map(Some),
        }
    }

    /// Waits for the reply's write set (if any) to be durable, then answers its outcome.
    async fn await_durable<T>(&self, reply: ActorReply<T>) -> Result<T, EngineError> {
        let shared = &self.inner.shared;
        if let Some(receipt) = reply.receipt {
            match tokio::time::timeout(Duration::from_millis(shared.config.commit_timeout_ms), receipt.durable()).await {
                Err(_) => {
                    shared.metrics.engine_timeouts.inc();
                    return Err(EngineError::Timeout);
                }
                // A failed commit may still have reached the disk (a log fsync that errs after
                // the write): the outcome is unknown, and a retry with the same key tells.
                // A rejection stands whether or not its action.failed event was recorded.
                Ok(Err(_)) if reply.outcome.is_ok() => {
                    shared.metrics.engine_timeouts.inc();
                    return Err(EngineError::Timeout);
                }
                Ok(_) => {}
            }
        }
        reply.outcome
    }

    /// 503 while the store refuses writes (a failing disk), before any work is queued.
    pub(crate) fn check_store_writable(&self) -> Result<(), EngineError> {
        if self.inner.shared.store.is_healthy() {
            return Ok(());
        }
        self.inner.shared.metrics.overloaded.with_label_values(&["store_unavailable"]).inc();
        Err(EngineError::Overloaded { reason: "store_unavailable", retry_after_secs: STORE_UNAVAILABLE_RETRY_AFTER_SECS })
    }

    /// In a cluster, records no partner owns (partners, keys, accounts, …) are written only by
    /// the holder of the admin shard, so the admin lock's guarantees hold cluster-wide; other
    /// nodes answer `NotOwner` (the front forwards to the holder).
    pub(crate) fn check_admin_shard(&self) -> Result<(), EngineError> {
        match &self.inner.shared.cluster {
            Some(ownership) if ownership.held(ownership.map().admin_shard()).is_none() => Err(not_owner_of(ownership, ownership.map().admin_shard())),
            _ => Ok(()),
        }
    }

    /// In cluster mode, the node's store (for the cluster's own tables) and id.
    pub(crate) fn cluster_node(&self) -> Option<(&crate::store::PgStore, &str)> {
        Some((self.inner.cluster_store.as_deref()?, self.inner.shared.cluster.as_ref()?.node_id()))
    }

    /// In cluster mode, this node's id and forwarding key; `None` on a single node.
    pub fn cluster_identity(&self) -> Option<ClusterIdentity> {
        let (_, node_id) = self.cluster_node()?;
        Some(ClusterIdentity { node_id: node_id.to_owned(), forwarding_key: self.inner.shared.master_key.derive("cluster request forwarding v1") })
    }

    /// The address of `shard`'s owner read from the database now (the view may be a heartbeat
    /// old); the view is updated with it. `None` when free, or on a single node.
    pub fn refresh_shard_owner(&self, shard: u32) -> Option<String> {
        let store = self.inner.cluster_store.as_ref()?;
        let ownership = self.inner.shared.cluster.as_ref()?;
        match store.shard_owner(shard) {
            Ok(owner) => {
                ownership.set_owner(shard, owner.clone());
                owner.map(|(_, address)| address)
            }
            Err(error) => {
                tracing::warn!(%error, shard, "reading a shard's owner failed");
                None
            }
        }
    }

    /// Tests: the store of a cluster node.
    #[cfg(feature = "internals")]
    pub fn cluster_store(&self) -> Option<Arc<crate::store::PgStore>> {
        self.inner.cluster_store.clone()
    }

    /// Tests: takes `shard` now, whoever holds it and however fresh their heartbeat (what the
    /// membership loop does once a holder's heartbeat is stale). Answers the new epoch.
    #[cfg(feature = "internals")]
    pub async fn take_over_shard_now(&self, shard: u32) -> Result<u64, crate::store::StoreError> {
        let (store, node_id) = self.cluster_node().expect("a cluster node");
        let connecting = store.cluster_db(node_id, "", 0);
        let claimed = store.spawn(async move { connecting.await?.force_claim(shard).await });
        let epoch = claimed.await.map_err(|error| crate::store::StoreError::new(error.to_string()))??;
        self.inner.shared.cluster.as_ref().expect("a cluster node").set_held(shard, Some(epoch));
        Ok(epoch)
    }

    /// Whether this node writes the records no partner owns (always, outside a cluster).
    pub fn holds_admin_shard(&self) -> bool {
        self.check_admin_shard().is_ok()
    }

    fn overloaded(&self, reason: &'static str) -> EngineError {
        self.inner.shared.metrics.overloaded.with_label_values(&[reason]).inc();
        EngineError::Overloaded { reason, retry_after_secs: 1 }
    }

    /// Stops the engine in order: refuse new work, stop actors after their current message,
    /// commit everything already queued, join every thread. Call after HTTP has drained.
    pub async fn shutdown(&self) {
        let jobs = self.inner.jobs.lock().take();
        if let Some(jobs) = jobs {
            jobs.stop().await;
        }
        if let Err(error) = self.keys().flush_key_usage().await {
            tracing::warn!(%error, "persisting keys' last use at shutdown failed");
        }
        // The dispatcher records its last attempts through the committer: stop it first.
        self.stop_webhooks().await;
        // In a cluster, hand every shard off (drained) before the actors and committer stop.
        let membership = self.inner.membership.lock().take();
        if let Some(membership) = membership {
            membership.stop().await;
        }
        let inner = Arc::clone(&self.inner);
        inner.shared.shutting_down.store(true, Ordering::Relaxed);
        let joined = tokio::task::spawn_blocking(move || {
            if let Some(actix) = inner.actix.lock().take() {
                actix.stop();
            }
            inner.shared.registry.clear();
            if let Some(mut committer) = inner.committer_thread.lock().take() {
                committer.stop();
            }
        })
        .await;
        if joined.is_err() {
            tracing::error!("engine shutdown panicked");
        }
    }
}

/// The actix system thread and its arbiters. actix stays inside this crate.
struct ActixRuntime {
    system: actix_rt::System,
    arbiters: Vec<ArbiterHandle>,
    thread: JoinHandle<()>,
}

impl ActixRuntime {
    fn start(arbiter_count: usize) -> std::io::Result<ActixRuntime> {
        let (started, ready) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new().name("reward-actix".into()).spawn(move || {
            let runner = actix_rt::System::new();
            let arbiters: Vec<Arbiter> = (0..arbiter_count).map(|_| Arbiter::new()).collect();
            let handles = arbiters.iter().map(Arbiter::handle).collect::<Vec<_>>();
            if started.send((actix_rt::System::current(), handles)).is_err() {
                return;
            }
            if let Err(error) = runner.run() {
                tracing::error!(%error, "actix system stopped with an error");
            }
            for arbiter in arbiters {
                arbiter.stop();
                if arbiter.join().is_err() {
                    tracing::error!("an arbiter thread panicked");
                }
            }
        })?;
        let (system, arbiters) = ready.recv().map_err(|_| std::io::Error::other("the actix system thread exited during start"))?;
        Ok(ActixRuntime { system, arbiters, thread })
    }

    fn stop(self) {
        self.system.stop();
        if self.thread.join().is_err() {
            tracing::error!("the actix system thread panicked");
        }
    }
}

/// Where a partner's requests go when this node does not hold its shard.
fn not_owner(ownership: &crate::cluster::Ownership, partner_env: &PartnerEnv) -> EngineError {
    not_owner_of(ownership, ownership.map().shard_of(partner_env))
}

/// `NotOwner` of `shard`, naming the owner the view shows unless that is this node (a view
/// a heartbeat old, after a takeover): then none, so the front reads the table again.
fn not_owner_of(ownership: &crate::cluster::Ownership, shard: u32) -> EngineError {
    let owner = ownership.owner_of(shard).filter(|(node, _)| node != ownership.node_id()).map(|(_, address)| address);
    EngineError::NotOwner { shard, owner }
}

impl crate::cluster::membership::ClusterHost for EngineShared {
    fn evict_shard(&self, shard: u32) -> Vec<Arc<AtomicUsize>> {
        let Some(ownership) = &self.cluster else { return Vec::new() };
        let map = ownership.map();
        self.registry.evict(|partner_env| map.shard_of(partner_env) == shard)
    }

    fn commit_fence(&self) -> crate::commit::CommitReceipt {
        self.committer.fence()
    }

    fn auth_changed(&self) {
        self.auth_cache.invalidate();
    }

    fn rate_budgets(&self, shard: u32) -> Vec<crate::store::BudgetRow> {
        let Some(ownership) = &self.cluster else { return Vec::new() };
        let map = ownership.map();
        let decisions = self.registry.rate_limits.decisions(|partner_env| map.shard_of(partner_env) == shard);
        decisions
            .into_iter()
            .map(|(partner_env, budget, decision)| crate::store::BudgetRow {
                partner_env,
                budget: budget.code(),
                hourly_limit: decision.hourly.limit,
                hourly_remaining: decision.hourly.remaining,
                burst_limit: decision.burst.limit,
                burst_remaining: decision.burst.remaining,
            })
            .collect()
    }

    fn seed_rate_budgets(&self, rows: Vec<(crate::store::BudgetRow, u64)>) {
        use crate::engine::rate_limit::QuotaState;
        for (row, elapsed_ms) in rows {
            let Some(budget) = Budget::from_code(row.budget) else { continue };
            let decision = RateDecision {
                allowed: true,
                hourly: QuotaState { limit: row.hourly_limit, remaining: row.hourly_remaining, reset_secs: 0 },
                burst: QuotaState { limit: row.burst_limit, remaining: row.burst_remaining, reset_secs: 0 },
                retry_after_secs: 0,
            };
            self.registry.rate_limits.seed(row.partner_env, budget, decision, Duration::from_millis(elapsed_ms));
        }
    }
}

/// At most one live actor per (partner, environment), and each partner's rate-limit
/// budgets, which outlive the actor (kept two hours after their last use, so passivation
/// never refills one). Sharded so lookups rarely contend.
pub(crate) struct Registry {
    shards: Vec<Mutex<HashMap<PartnerEnv, Slot>>>,
    arbiters: Vec<ArbiterHandle>,
    next_generation: AtomicU64,
    pub rate_limits: RateLimits,
}

#[derive(Clone)]
pub(crate) struct Slot {
    pub addr: Addr<PartnerActor>,
    pub generation: u64,
    pub arbiter: usize,
    pub mailbox_depth: Arc<AtomicUsize>,
}

/// Registry shards: enough that 2–64 front threads rarely meet on one lock.
const REGISTRY_SHARDS: usize = 64;

impl Registry {
    fn new(arbiters: Vec<ArbiterHandle>) -> Registry {
        Registry {
            shards: (0..REGISTRY_SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            arbiters,
            next_generation: AtomicU64::new(1),
            rate_limits: RateLimits::new(),
        }
    }

    fn hash(partner_env: &PartnerEnv) -> u64 {
        let mut hasher = DefaultHasher::new();
        partner_env.hash(&mut hasher);
        hasher.finish()
    }

    /// The partner's live actor, started (lazily, on the arbiter its hash picks) if none is.
    /// In cluster mode, only under a shard this node holds (else `NotOwner`).
    pub fn route(&self, shared: &Arc<EngineShared>, partner_env: PartnerEnv) -> Result<Slot, EngineError> {
        let hash = Registry::hash(&partner_env);
        let mut shard = self.shards[hash as usize % self.shards.len()].lock();
        if let Some(slot) = shard.get(&partner_env) {
            return Ok(slot.clone());
        }
        let epoch = match &shared.cluster {
            None => None,
            Some(ownership) => Some(ownership.epoch_for(&partner_env).ok_or_else(|| not_owner(ownership, &partner_env))?),
        };
        let arbiter = (hash >> 32) as usize % self.arbiters.len();
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let mailbox_depth = Arc::new(AtomicUsize::new(0));
        // The channel's own buffer only parks senders; admission is the depth counter above.
        let (sender, receiver) = channel::channel(shared.config.mailbox_capacity);
        let actor = PartnerActor::new(partner_env, generation, epoch, arbiter, Arc::clone(shared), Arc::clone(&mailbox_depth));
        let spawned = self.arbiters[arbiter].spawn_fn(move || {
            let context = Context::with_receiver(receiver);
            actix_rt::spawn(context.into_future(actor));
        });
        if !spawned {
            tracing::error!(arbiter, "arbiter is not running; the actor could not start");
        }
        shared.metrics.actors_started.inc();
        shared.metrics.actors_live.with_label_values(&[&arbiter.to_string()]).inc();
        let slot = Slot { addr: Addr::new(sender), generation, arbiter, mailbox_depth };
        shard.insert(partner_env, slot.clone());
        Ok(slot)
    }

    /// Removes every actor whose partner `belongs` says so (a shard leaving this node):
    /// messages go to them no more. Answers their mailbox depths, to wait for them to empty.
    pub fn evict(&self, belongs: impl Fn(&PartnerEnv) -> bool) -> Vec<Arc<AtomicUsize>> {
        let mut evicted = Vec::new();
        for shard in &self.shards {
            shard.lock().retain(|partner_env, slot| {
                let leaving = belongs(partner_env);
                if leaving {
                    evicted.push(Arc::clone(&slot.mailbox_depth));
                }
                !leaving
            });
        }
        evicted
    }

    /// Removes the entry only if it is still this generation's; answers whether it did.
    pub fn remove_if_generation(&self, partner_env: PartnerEnv, generation: u64) -> bool {
        let hash = Registry::hash(&partner_env);
        let mut shard = self.shards[hash as usize % self.shards.len()].lock();
        if shard.get(&partner_env).is_some_and(|slot| slot.generation == generation) {
            shard.remove(&partner_env);
            return true;
        }
        false
    }

    fn clear(&self) {
        for shard in &self.shards {
            shard.lock().clear();
        }
    }

    fn refresh_gauges(&self, metrics: &EngineMetrics) {
        let mut depth_per_arbiter = vec![0i64; self.arbiters.len()];
        let mut depth_max = 0usize;
        for shard in &self.shards {
            for slot in shard.lock().values() {
                let depth = slot.mailbox_depth.load(Ordering::Relaxed);
                depth_per_arbiter[slot.arbiter] += depth as i64;
                depth_max = depth_max.max(depth);
            }
        }
        for (arbiter, depth) in depth_per_arbiter.into_iter().enumerate() {
            metrics.mailbox_depth.with_label_values(&[&arbiter.to_string()]).set(depth);
        }
        metrics.mailbox_depth_max.set(depth_max as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{StoreBackend, open_store};

    #[test]
    fn another_master_key_is_refused_with_a_typed_cause() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = open_store(StoreBackend::Redb, dir.path()).expect("the store opens");
        check_master_key(store.as_ref(), &MasterKey::from_bytes(&[1; 32])).expect("the first key seals the check value");
        check_master_key(store.as_ref(), &MasterKey::from_bytes(&[1; 32])).expect("the same key opens it");
        let refused = check_master_key(store.as_ref(), &MasterKey::from_bytes(&[2; 32])).expect_err("another key is refused");
        assert!(matches!(refused, EngineStartError::MasterKey(MasterKeyRefused::NotTheDataKey(crate::engine::crypto::CryptoError::Unseal))), "{refused:?}");
        let cause = std::error::Error::source(&refused).map(ToString::to_string);
        assert_eq!(cause.as_deref(), Some("this master key is not the one the data directory was created with"));
    }
}
