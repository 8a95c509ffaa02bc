//! Webhooks (contract §9): endpoints, the durable outbox, signatures, the SSRF guard, the
//! retry policy, and the dispatcher that delivers.
//!
//! The outbox: when a partner actor commits events, the same write set holds one delivery
//! record per (event, subscribed enabled endpoint) and a queue row
//! `(partner, environment, endpoint, due time, delivery)`. The dispatcher claims due rows per
//! endpoint, delivers under a global and a per-endpoint concurrency bound, and records each
//! attempt durably (the delivery record, and the queue row moved to the next due time or
//! removed). A crash between an attempt and its record repeats the attempt: at least once,
//! with the same event id.
//!
//! Ownership, one writer each:
//! - An endpoint's **status** (its record: enabled or disabled and why, and its health
//!   record: the failing streak, the warning given) is written by its partner actor only.
//!   The actor owns the partner's records, writes the partner's changes, assigns the
//!   sequences of the events a status change raises, and fans events out to the endpoints
//!   it holds in memory; so the partner's change and the health policy's verdict are
//!   serialized in one mailbox and neither can overwrite the other. The dispatcher reports
//!   what it saw ([`DeliveryFact`]: an attempt's outcome and when it was made, a delivery
//!   exhausted); the actor judges the facts by the pure policy in `health` and commits the
//!   verdict with its events. The dispatcher learns the new status by reading the records
//!   once that write set is durable, never by guessing it. (The dispatcher as the writer
//!   would not do: every event's fan-out, in the write set of the submit that raised it,
//!   must skip disabled endpoints, and the partner's `PATCH` arrives at the actor.)
//! - Once created, delivery records and queue rows are written by the dispatcher only.
//!
//! One job per file: `dispatcher` (the delivery loop and its claims), `attempt` (the shared
//! client and one attempt), `health` and [`schedule`] (the health and retry policies, pure),
//! [`ssrf`] (the address guard), [`signing`] (both signature schemes), `reads` (endpoints,
//! deliveries and the health summary for the API), [`event_type`] (the contract's event
//! types), `testing` (an engine on a temporary store, for tests); this file holds the
//! records and views.

mod attempt;
pub(crate) mod dispatcher;
pub mod event_type;
pub(crate) mod health;
mod reads;
pub mod schedule;
pub mod signing;
pub mod ssrf;
#[cfg(test)]
pub(crate) mod testing;

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::domain::ids::{Id, IdGenerator};
use crate::domain::model::{EventRecord, PartnerEnv};
use crate::engine::crypto::{MasterKey, Secret};
use crate::engine::error::InvalidSetting;
use crate::store::WriteOp;
use crate::store::records::{self, QueueEntry};

pub use attempt::WebhookClientError;
pub use event_type::{EventType, UnknownEventType};
pub(crate) use health::HealthNotice;
pub use reads::WebhookHealth;
pub use schedule::{AttemptOutcome, NextStep, RetryPolicy, parse_duration};
pub use ssrf::{AddressPolicy, Cidr, UrlRefused};

/// Headers a partner may not set: the ones that carry the delivery's meaning or framing.
pub const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "user-agent",
    "host",
    "connection",
    "transfer-encoding",
    "x-sir-timestamp",
    "x-sir-signature",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// The `User-Agent` of every delivery.
pub const USER_AGENT: &str = "SIRGiving-Webhooks/1.0";
/// Bytes of a receiver's answer kept with an attempt.
pub const RESPONSE_EXCERPT_BYTES: usize = 4 * 1024;

/// Operators' webhook settings (`[webhook]`, `REWARD_WEBHOOK_<KEY>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Address blocks deliveries may reach although they are not public
    /// (`REWARD_WEBHOOK_ALLOWED_CIDRS=127.0.0.0/8`). Empty: public addresses only.
    pub allowed_cidrs: Vec<String>,
    /// The delay before each attempt, the first included (contract §9:
    /// `REWARD_WEBHOOK_RETRY_SCHEDULE=0s,5s,5m,30m,2h,5h,10h,10h`).
    pub retry_schedule: Vec<String>,
    /// Each delay varies by ± this percentage, so retries from an outage spread out.
    pub jitter_percent: u64,
    /// A receiver's `Retry-After` is honoured up to this (a duration like `1h`).
    pub retry_after_max: String,
    /// 429s and timeouts wait at least this long before the next attempt.
    pub backoff_floor: String,
    /// One attempt's whole time budget (connect, send, first 4 KiB of the answer).
    pub attempt_timeout: String,
    /// An endpoint whose every attempt failed for this long is disabled (half of it emits
    /// `webhook_endpoint.unhealthy`).
    pub disable_after: String,
    /// A rotated-out secret keeps signing alongside the new one this long.
    pub secret_overlap: String,
    /// Attempts in flight at once, over all endpoints.
    pub concurrency: usize,
    /// Attempts in flight at once to one endpoint, so a slow endpoint holds at most this
    /// many of the global slots and others' deliveries go on.
    pub endpoint_concurrency: usize,
    /// Attempts kept in a delivery's log (the oldest are dropped, the count is kept).
    pub attempts_kept_max: usize,
    /// How often the dispatcher looks for due deliveries without being woken.
    pub poll_interval: String,
    /// How often it rereads every endpoint and its queue (catches anything missed).
    pub sweep_interval: String,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            allowed_cidrs: Vec::new(),
            retry_schedule: ["0s", "5s", "5m", "30m", "2h", "5h", "10h", "10h"].map(String::from).to_vec(),
            jitter_percent: 20,
            retry_after_max: "1h".into(),
            backoff_floor: "5s".into(),
            attempt_timeout: "15s".into(),
            disable_after: "5d".into(),
            secret_overlap: "24h".into(),
            concurrency: 256,
            endpoint_concurrency: 16,
            attempts_kept_max: 32,
            poll_interval: "100ms".into(),
            sweep_interval: "5s".into(),
        }
    }
}

/// [`WebhookConfig`], checked and parsed.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub policy: AddressPolicy,
    pub retry: RetryPolicy,
    pub attempt_timeout: Duration,
    pub disable_after: Duration,
    pub secret_overlap: Duration,
    pub concurrency: usize,
    pub endpoint_concurrency: usize,
    pub attempts_kept_max: usize,
    pub poll_interval: Duration,
    pub sweep_interval: Duration,
}

impl WebhookConfig {
    pub fn settings(&self) -> Result<WebhookSettings, InvalidSetting> {
        let refused = |name: &str, message: String| InvalidSetting::new(format!("webhook.{name}"), message);
        let duration = |name: &str, text: &str| parse_duration(text).map_err(|error| refused(name, format!("webhook.{name}: {error}")));
        let allowed = self
            .allowed_cidrs
            .iter()
            .map(|text| text.parse::<Cidr>().map_err(|error| refused("allowed_cidrs", format!("webhook.allowed_cidrs: {error}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let schedule = self.retry_schedule.iter().map(|text| duration("retry_schedule", text)).collect::<Result<Vec<_>, _>>()?;
        if schedule.is_empty() || schedule.len() > 50 {
            return Err(refused("retry_schedule", "webhook.retry_schedule must hold 1 to 50 delays".into()));
        }
        if self.jitter_percent > 100 {
            return Err(refused("jitter_percent", "webhook.jitter_percent must be at most 100".into()));
        }
        for (name, value) in
            [("concurrency", self.concurrency), ("endpoint_concurrency", self.endpoint_concurrency), ("attempts_kept_max", self.attempts_kept_max)]
        {
            if value == 0 || value > 100_000 {
                return Err(refused(name, format!("webhook.{name} must be 1 to 100000")));
            }
        }
        let settings = WebhookSettings {
            policy: AddressPolicy::new(allowed),
            retry: RetryPolicy {
                schedule,
                jitter_percent: self.jitter_percent,
                retry_after_max: duration("retry_after_max", &self.retry_after_max)?,
                backoff_floor: duration("backoff_floor", &self.backoff_floor)?,
            },
            attempt_timeout: duration("attempt_timeout", &self.attempt_timeout)?,
            disable_after: duration("disable_after", &self.disable_after)?,
            secret_overlap: duration("secret_overlap", &self.secret_overlap)?,
            concurrency: self.concurrency,
            endpoint_concurrency: self.endpoint_concurrency,
            attempts_kept_max: self.attempts_kept_max,
            poll_interval: duration("poll_interval", &self.poll_interval)?,
            sweep_interval: duration("sweep_interval", &self.sweep_interval)?,
        };
        let intervals =
            [("attempt_timeout", settings.attempt_timeout), ("poll_interval", settings.poll_interval), ("sweep_interval", settings.sweep_interval)];
        if let Some((name, _)) = intervals.into_iter().find(|(_, interval)| interval.is_zero()) {
            return Err(refused(name, "webhook.attempt_timeout, poll_interval and sweep_interval must be more than 0".into()));
        }
        Ok(settings)
    }
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EndpointStatus {
    Enabled,
    Disabled,
}

/// A partner's webhook endpoint. Its secrets are sealed with the master key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    pub id: Id,
    pub url: String,
    pub description: Option<String>,
    pub event_types: Vec<EventType>,
    pub receive_all_events: bool,
    pub headers: Vec<(String, String)>,
    pub status: EndpointStatus,
    pub disabled_reason: Option<String>,
    pub sealed_secret: Vec<u8>,
    pub previous_sealed_secret: Option<Vec<u8>>,
    pub previous_secret_expires_at_ms: Option<u64>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

impl fmt::Debug for EndpointRecord {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("EndpointRecord")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("event_types", &self.event_types)
            .field("receive_all_events", &self.receive_all_events)
            .field("header_names", &self.headers.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>())
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl EndpointRecord {
    pub fn subscribes(&self, event_type: EventType) -> bool {
        self.receive_all_events || self.event_types.contains(&event_type)
    }

    /// The secrets it signs with now (the previous one only while its overlap lasts).
    pub fn signing_secrets(&self, master_key: &MasterKey, now_ms: u64) -> Result<signing::SigningSecrets, crate::engine::crypto::CryptoError> {
        let current = open_secret(master_key, self.id, &self.sealed_secret)?;
        let previous = match (&self.previous_sealed_secret, self.previous_secret_expires_at_ms) {
            (Some(sealed), Some(expires_at_ms)) if now_ms < expires_at_ms => Some(open_secret(master_key, self.id, sealed)?),
            _ => None,
        };
        Ok(signing::SigningSecrets { current, previous })
    }
}

fn secret_associated_data(endpoint_id: Id) -> Vec<u8> {
    [b"webhook-secret:".as_slice(), endpoint_id.as_bytes()].concat()
}

pub fn seal_secret(master_key: &MasterKey, endpoint_id: Id, secret: &Secret) -> Vec<u8> {
    master_key.seal(&secret_associated_data(endpoint_id), secret.expose().as_bytes())
}

pub fn open_secret(master_key: &MasterKey, endpoint_id: Id, sealed: &[u8]) -> Result<Secret, crate::engine::crypto::CryptoError> {
    let bytes = master_key.open(&secret_associated_data(endpoint_id), sealed)?;
    Ok(Secret::new(String::from_utf8_lossy(&bytes).into_owned()))
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

/// One attempt, as its delivery log shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub attempted_at_ms: u64,
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
    /// The first [`RESPONSE_EXCERPT_BYTES`] of the answer (lossy UTF-8).
    pub response_excerpt: String,
    /// `true` for a partner's redelivery.
    pub manual: bool,
}

/// One event on its way to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub id: Id,
    pub endpoint_id: Id,
    pub event_id: Id,
    pub event_type: EventType,
    /// The event in the feed; `None` for `webhook.test`, which is not in the feed.
    pub event_sequence: Option<u64>,
    /// The envelope of an event that is not in the feed.
    pub inline_envelope: Option<Vec<u8>>,
    pub status: DeliveryStatus,
    /// The newest attempts (at most `attempts_kept_max`).
    pub attempts: Vec<AttemptRecord>,
    /// Every attempt made, kept or not.
    pub attempt_count: u32,
    /// Scheduled attempts made (the retry schedule's position).
    pub scheduled_attempts: u32,
    pub next_attempt_at_ms: Option<u64>,
    /// A partner's redelivery: one attempt, then no schedule.
    pub manual: bool,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

impl DeliveryRecord {
    pub fn new(id: Id, endpoint_id: Id, event: &EventRecord, now_ms: u64) -> DeliveryRecord {
        DeliveryRecord {
            id,
            endpoint_id,
            event_id: event.id,
            event_type: event.event_type,
            event_sequence: Some(event.sequence),
            inline_envelope: None,
            status: DeliveryStatus::Pending,
            attempts: Vec::new(),
            attempt_count: 0,
            scheduled_attempts: 0,
            next_attempt_at_ms: Some(now_ms),
            manual: false,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        }
    }
}

/// An endpoint's health, durable across restarts: written by its partner actor only (the
/// verdicts of `health::judge`, a reset when the partner re-enables the endpoint).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthRecord {
    /// The first failed attempt since the last success.
    pub failing_since_ms: Option<u64>,
    /// `webhook_endpoint.unhealthy` was sent for this failing streak.
    pub unhealthy_notified: bool,
    pub last_success_ms: Option<u64>,
}

/// Deliveries a partner actor queued that the dispatcher can receive without scanning. More
/// than this and the hints are dropped: the dispatcher rereads the queues from the store.
pub const SIGNAL_QUEUED_MAX: usize = 1_000_000;

/// One queued delivery, as a hint to the dispatcher (the store's queue row is the truth).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuedDelivery {
    pub endpoint_id: Id,
    pub due_ms: u64,
    pub delivery_id: Id,
}

/// What a partner actor's write set changed for the dispatcher: endpoints (created,
/// updated, deleted, disabled) and deliveries queued. Heard once the write set is durable.
#[derive(Debug, Default)]
pub struct OutboxSignal {
    pub touched: Vec<Id>,
    pub queued: Vec<QueuedDelivery>,
}

impl OutboxSignal {
    pub fn touched(endpoint_id: Id) -> OutboxSignal {
        OutboxSignal { touched: vec![endpoint_id], queued: Vec::new() }
    }

    pub fn is_empty(&self) -> bool {
        self.touched.is_empty() && self.queued.is_empty()
    }
}

/// What partner actors told the dispatcher between two passes, all of it durable: endpoints
/// that changed, and the deliveries they queued (hints: the store's queue is the truth).
#[derive(Default)]
pub struct SignalState {
    pub endpoints: HashSet<(PartnerEnv, Id)>,
    pub queued: Vec<(PartnerEnv, QueuedDelivery)>,
    /// Hints were dropped at [`SIGNAL_QUEUED_MAX`]: reread every queue.
    pub overflowed: bool,
}

#[derive(Default)]
pub struct WebhookSignal {
    state: Mutex<SignalState>,
    pub(crate) notify: tokio::sync::Notify,
}

impl WebhookSignal {
    /// A partner environment's write set is durable: hear what it changed (on the committer
    /// thread, see `committer::AfterDurable`).
    pub(crate) fn hear(&self, partner_env: PartnerEnv, signal: OutboxSignal) {
        {
            let mut state = self.state.lock();
            state.endpoints.extend(signal.touched.into_iter().map(|endpoint_id| (partner_env, endpoint_id)));
            if state.queued.len() + signal.queued.len() > SIGNAL_QUEUED_MAX {
                state.overflowed = true;
            } else {
                state.queued.extend(signal.queued.into_iter().map(|delivery| (partner_env, delivery)));
            }
        }
        self.notify.notify_one();
    }

    pub(crate) fn take(&self) -> SignalState {
        std::mem::take(&mut *self.state.lock())
    }
}

/// The outbox rows of `events`: one delivery and one queue row per (event, enabled endpoint
/// subscribed to its type), except to `excluded` (the endpoint an event is about, and ones
/// known to be failing). Answers
/// the deliveries it queued.
pub fn fan_out(
    ops: &mut Vec<WriteOp>,
    partner_env: &PartnerEnv,
    endpoints: &[EndpointRecord],
    events: &[EventRecord],
    excluded: &[Id],
    ids: &IdGenerator,
    now_ms: u64,
) -> Vec<QueuedDelivery> {
    let mut queued = Vec::new();
    for endpoint in endpoints.iter().filter(|endpoint| endpoint.status == EndpointStatus::Enabled && !excluded.contains(&endpoint.id)) {
        for event in events.iter().filter(|event| endpoint.subscribes(event.event_type)) {
            let delivery = DeliveryRecord::new(ids.next(now_ms), endpoint.id, event, now_ms);
            // The record before its queue row: a reader that sees the row sees the record.
            ops.push(records::webhook_delivery(partner_env, endpoint.id, delivery.id).put(&delivery));
            ops.push(records::webhook_queue_row(partner_env, endpoint.id, now_ms, delivery.id).put(&QueueEntry));
            queued.push(QueuedDelivery { endpoint_id: endpoint.id, due_ms: now_ms, delivery_id: delivery.id });
        }
    }
    queued
}

/// Header values shown back in lists and reads: masked when the name suggests a credential.
pub fn shown_header_value(name: &str, value: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let sensitive = ["auth", "token", "secret", "key", "cookie", "password", "signature"].iter().any(|word| lower.contains(word));
    if sensitive { "********".into() } else { value.to_owned() }
}

/// What a partner sends to create or change an endpoint (already validated by the front).
#[derive(Debug, Clone, Default)]
pub struct WebhookFields {
    pub url: Option<String>,
    pub description: Option<Option<String>>,
    pub event_types: Option<Vec<EventType>>,
    pub receive_all_events: Option<bool>,
    pub headers: Option<Vec<(String, String)>>,
    pub status: Option<EndpointStatus>,
}

/// What the dispatcher saw happen to one endpoint's deliveries, reported to the partner
/// actor in the order it happened. Facts, not decisions: the actor judges them
/// (`health::judge`) and alone writes what follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryFact {
    /// An attempt made at `attempted_at_ms` ended so.
    Attempted { attempted_at_ms: u64, outcome: AttemptOutcome },
    /// A scheduled delivery ran out of attempts: `webhook.delivery_exhausted`.
    Exhausted { delivery_id: Id, event_id: Id, event_type: EventType, attempts: u32 },
}

impl DeliveryFact {
    /// Whether the fact may disable the endpoint or warn about it (a failed attempt).
    pub fn is_failure(&self) -> bool {
        matches!(self, DeliveryFact::Attempted { outcome: AttemptOutcome::Gone | AttemptOutcome::Failed { .. }, .. })
    }
}

/// An endpoint as the API shows it. `secret` only in the answers that create one.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "WebhookEndpoint"))]
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointView {
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::HexId"))]
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    pub event_types: Vec<EventType>,
    pub receive_all_events: bool,
    #[cfg_attr(feature = "schema", schemars(with = "std::collections::BTreeMap<String, String>"))]
    pub headers: serde_json::Map<String, serde_json::Value>,
    pub status: EndpointStatus,
    pub disabled_reason: Option<String>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::WebhookSecret>"))]
    pub secret: Option<String>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::Timestamp>"))]
    pub previous_secret_expires_at: Option<String>,
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::Timestamp"))]
    pub created_at: String,
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::Timestamp"))]
    pub updated_at: String,
}

/// Never the secret nor the custom headers' values (they may carry the receiver's credentials).
impl std::fmt::Debug for EndpointView {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("EndpointView")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("event_types", &self.event_types)
            .field("receive_all_events", &self.receive_all_events)
            .field("header_names", &self.headers.keys().collect::<Vec<_>>())
            .field("status", &self.status)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

impl EndpointView {
    pub fn new(endpoint: &EndpointRecord, secret: Option<&Secret>, now_ms: u64) -> EndpointView {
        use crate::engine::clock::format_timestamp;
        EndpointView {
            id: endpoint.id.to_hex(),
            url: endpoint.url.clone(),
            description: endpoint.description.clone(),
            event_types: endpoint.event_types.clone(),
            receive_all_events: endpoint.receive_all_events,
            headers: endpoint
                .headers
                .iter()
                .map(|(name, value)| (name.clone(), serde_json::Value::String(shown_header_value(name, value))))
                .collect(),
            status: endpoint.status,
            disabled_reason: endpoint.disabled_reason.clone(),
            secret: secret.map(|secret| secret.expose().to_owned()),
            previous_secret_expires_at: endpoint.previous_secret_expires_at_ms.filter(|expires| *expires > now_ms).map(format_timestamp),
            created_at: format_timestamp(endpoint.created_at_ms),
            updated_at: format_timestamp(endpoint.updated_at_ms),
        }
    }
}

/// The answer to an endpoint's deletion.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "WebhookEndpointDeleted"))]
#[derive(Debug, Serialize)]
pub struct EndpointDeleted {
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::HexId"))]
    pub id: String,
    pub deleted: bool,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "DeliveryAttempt"))]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::Timestamp"))]
    pub attempted_at: String,
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
    pub response_body: String,
    pub manual: bool,
}

/// A delivery and its attempts, newest last.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "Delivery"))]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::DeliveryId"))]
    pub id: String,
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::HexId"))]
    pub endpoint_id: String,
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::EventId"))]
    pub event_id: String,
    pub event_type: EventType,
    pub status: DeliveryStatus,
    pub attempt_count: u32,
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::Timestamp>"))]
    pub next_attempt_at: Option<String>,
    pub attempts: Vec<AttemptView>,
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::Timestamp"))]
    pub created_at: String,
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::Timestamp"))]
    pub updated_at: String,
}

impl From<&DeliveryRecord> for DeliveryView {
    fn from(delivery: &DeliveryRecord) -> DeliveryView {
        use crate::engine::clock::format_timestamp;
        DeliveryView {
            id: delivery.id.prefixed("dlv_"),
            endpoint_id: delivery.endpoint_id.to_hex(),
            event_id: delivery.event_id.prefixed("evt_"),
            event_type: delivery.event_type,
            status: delivery.status,
            attempt_count: delivery.attempt_count,
            next_attempt_at: delivery.next_attempt_at_ms.filter(|_| delivery.status == DeliveryStatus::Pending).map(format_timestamp),
            attempts: delivery
                .attempts
                .iter()
                .map(|attempt| AttemptView {
                    attempted_at: format_timestamp(attempt.attempted_at_ms),
                    status_code: attempt.status_code,
                    latency_ms: attempt.latency_ms,
                    error: attempt.error.clone(),
                    response_body: attempt.response_excerpt.clone(),
                    manual: attempt.manual,
                })
                .collect(),
            created_at: format_timestamp(delivery.created_at_ms),
            updated_at: format_timestamp(delivery.updated_at_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoints_debug_shows_neither_its_secret_nor_its_header_values() {
        let mut headers = serde_json::Map::new();
        headers.insert("Authorization".into(), serde_json::Value::String("Bearer receiver-credential".into()));
        let view = EndpointView {
            id: "00".repeat(12),
            url: "https://example.com/hooks".into(),
            description: None,
            event_types: Vec::new(),
            receive_all_events: true,
            headers,
            status: EndpointStatus::Enabled,
            disabled_reason: None,
            secret: Some("whsec_not_for_logs".into()),
            previous_secret_expires_at: None,
            created_at: "2026-12-02T00:00:00.000Z".into(),
            updated_at: "2026-12-02T00:00:00.000Z".into(),
        };
        let shown = format!("{view:?}");
        assert!(shown.contains("Authorization") && shown.contains("[redacted]"), "{shown}");
        assert!(!shown.contains("whsec_not_for_logs") && !shown.contains("receiver-credential"), "{shown}");
    }
}
