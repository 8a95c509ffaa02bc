//! The engine's Prometheus metrics, named and documented in one place. Label values are
//! bounded: arbiters (a few), message kinds (a handful), overload reasons (two).

use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

pub struct EngineMetrics {
    pub registry: Registry,
    /// `reward_actors_live{arbiter}`: partner actors running on each arbiter.
    pub actors_live: IntGaugeVec,
    /// `reward_actor_mailbox_depth{arbiter}`: messages admitted and not yet handled.
    pub mailbox_depth: IntGaugeVec,
    /// `reward_actor_mailbox_depth_max`: the deepest single mailbox at the last scrape.
    pub mailbox_depth_max: IntGauge,
    /// `reward_actors_started_total` / `reward_actors_stopped_total`.
    pub actors_started: IntCounter,
    pub actors_stopped: IntCounter,
    /// `reward_actor_messages_total{message}` and their handling time.
    pub actor_messages: IntCounterVec,
    pub actor_message_seconds: HistogramVec,
    /// `reward_commit_batch_write_sets`: write sets per durable transaction.
    pub commit_batch_size: Histogram,
    /// `reward_commit_seconds`: one durable transaction, from begin to durable.
    pub commit_seconds: Histogram,
    /// `reward_commit_queue_depth`: write sets waiting for the committer.
    pub commit_queue_depth: IntGauge,
    pub commit_write_sets: IntCounter,
    pub commit_failures: IntCounter,
    /// `reward_commit_fenced_write_sets_total`: write sets a cluster fence refused (their
    /// shard had moved to another node or epoch). Always 0 on a single node.
    pub commit_fenced: IntCounter,
    /// `reward_idempotent_replays_total`: requests answered from an idempotency record.
    pub idempotent_replays: IntCounter,
    /// `reward_engine_overloaded_total{reason}`: admissions refused (503).
    pub overloaded: IntCounterVec,
    /// `reward_engine_timeouts_total`: admitted requests not confirmed in time (504).
    pub engine_timeouts: IntCounter,
    /// `reward_rate_limited_total`: requests refused by a partner's rate limit (429).
    pub rate_limited: IntCounter,
    /// Webhook deliveries written to the outbox (one per event and subscribed endpoint).
    pub webhook_deliveries_created: IntCounter,
    /// Webhook deliveries that reached an end, by `status` (delivered, failed).
    pub webhook_deliveries_settled: IntCounterVec,
    /// Webhook attempts by `outcome` (delivered, failed, gone).
    pub webhook_attempts: IntCounterVec,
    pub webhook_attempt_seconds: Histogram,
    /// Attempts in flight now.
    pub webhook_in_flight: IntGauge,
    /// Deliveries the dispatcher holds as queued (due or scheduled), over all endpoints.
    pub webhook_queued: IntGauge,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, collector: T) -> T {
    registry.register(Box::new(collector.clone())).expect("metric names in this module are unique");
    collector
}

/// Exponential buckets: `count` buckets from `start`, each `factor` times the previous.
fn buckets(start: f64, factor: f64, count: usize) -> Vec<f64> {
    prometheus::exponential_buckets(start, factor, count).expect("bucket parameters here are positive constants")
}

impl EngineMetrics {
    pub fn new() -> EngineMetrics {
        let registry = Registry::new();
        EngineMetrics {
            actors_live: register(
                &registry,
                IntGaugeVec::new(Opts::new("reward_actors_live", "Partner actors running, per arbiter."), &["arbiter"]).expect("valid"),
            ),
            mailbox_depth: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new("reward_actor_mailbox_depth", "Messages admitted to partner actors and not yet handled, per arbiter."),
                    &["arbiter"],
                )
                .expect("valid"),
            ),
            mailbox_depth_max: register(
                &registry,
                IntGauge::new("reward_actor_mailbox_depth_max", "The deepest partner-actor mailbox at the last scrape.").expect("valid"),
            ),
            actors_started: register(&registry, IntCounter::new("reward_actors_started_total", "Partner actors started.").expect("valid")),
            actors_stopped: register(
                &registry,
                IntCounter::new("reward_actors_stopped_total", "Partner actors stopped (idle passivation or failure).").expect("valid"),
            ),
            actor_messages: register(
                &registry,
                IntCounterVec::new(Opts::new("reward_actor_messages_total", "Messages handled by partner actors."), &["message"]).expect("valid"),
            ),
            actor_message_seconds: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new("reward_actor_message_seconds", "Time a partner actor spent handling one message.")
                        .buckets(buckets(0.000_002, 2.0, 16)),
                    &["message"],
                )
                .expect("valid"),
            ),
            commit_batch_size: register(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new("reward_commit_batch_write_sets", "Write sets per durable commit.").buckets(buckets(1.0, 2.0, 14)),
                )
                .expect("valid"),
            ),
            commit_seconds: register(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new("reward_commit_seconds", "Duration of one durable commit.").buckets(buckets(0.000_05, 2.0, 16)),
                )
                .expect("valid"),
            ),
            commit_queue_depth: register(
                &registry,
                IntGauge::new("reward_commit_queue_depth", "Write sets waiting for the committer.").expect("valid"),
            ),
            commit_write_sets: register(&registry, IntCounter::new("reward_commit_write_sets_total", "Write sets made durable.").expect("valid")),
            commit_failures: register(
                &registry,
                IntCounter::new("reward_commit_failures_total", "Commits that failed (their write sets were not applied).").expect("valid"),
            ),
            commit_fenced: register(
                &registry,
                IntCounter::new(
                    "reward_commit_fenced_write_sets_total",
                    "Write sets the cluster fence refused: their shard had moved to another node or epoch (0 on a single node).",
                )
                .expect("valid"),
            ),
            idempotent_replays: register(
                &registry,
                IntCounter::new("reward_idempotent_replays_total", "Requests answered by replaying an idempotency record.").expect("valid"),
            ),
            overloaded: register(
                &registry,
                IntCounterVec::new(Opts::new("reward_engine_overloaded_total", "Requests refused at admission (503 OVERLOADED)."), &["reason"])
                    .expect("valid"),
            ),
            engine_timeouts: register(
                &registry,
                IntCounter::new("reward_engine_timeouts_total", "Admitted requests whose durable acknowledgement did not arrive in time (504).")
                    .expect("valid"),
            ),
            rate_limited: register(
                &registry,
                IntCounter::new("reward_rate_limited_total", "Requests refused by a partner's rate limit (429).").expect("valid"),
            ),
            webhook_deliveries_created: register(
                &registry,
                IntCounter::new("reward_webhook_deliveries_created_total", "Webhook deliveries queued in the outbox (event × subscribed endpoint).")
                    .expect("valid"),
            ),
            webhook_deliveries_settled: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "reward_webhook_deliveries_settled_total",
                        "Webhook deliveries that reached an end (the backlog is created − settled).",
                    ),
                    &["status"],
                )
                .expect("valid"),
            ),
            webhook_attempts: register(
                &registry,
                IntCounterVec::new(Opts::new("reward_webhook_attempts_total", "Webhook delivery attempts by outcome."), &["outcome"]).expect("valid"),
            ),
            webhook_attempt_seconds: register(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new("reward_webhook_attempt_seconds", "Duration of one webhook attempt.").buckets(buckets(0.000_5, 2.0, 16)),
                )
                .expect("valid"),
            ),
            webhook_in_flight: register(&registry, IntGauge::new("reward_webhook_in_flight", "Webhook attempts in flight.").expect("valid")),
            webhook_queued: register(
                &registry,
                IntGauge::new("reward_webhook_queued", "Webhook deliveries queued in the dispatcher (due now or scheduled for a retry).")
                    .expect("valid"),
            ),
            registry,
        }
    }
}

impl Default for EngineMetrics {
    fn default() -> Self {
        EngineMetrics::new()
    }
}
