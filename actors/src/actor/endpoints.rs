//! Webhook endpoints, written through the actor: it fans every event out to them (so it
//! must know them), and it is the only writer of their status: the partner's changes
//! (create, update, enable, disable, delete) and the health policy's verdicts on the
//! delivery facts the dispatcher reports meet in this one mailbox, so neither overwrites
//! the other. The health events (`webhook_endpoint.*`, `webhook.delivery_exhausted`) take
//! their sequences here like every event.

use std::sync::Arc;

use serde_json::json;

use super::{ActorReply, PartnerActor, Recorded, WriteOutcome};
use crate::api::views::EventEnvelope;
use crate::domain::ids::Id;
use crate::domain::model::{Effect, EventRecord};
use crate::engine::error::EngineError;
use crate::store::records::{self, QueueEntry};
use crate::store::{ScanOrder, WriteOp};
use crate::webhooks::OutboxSignal;
use crate::webhooks::signing::generate_secret;
use crate::webhooks::{
    DeliveryFact, DeliveryRecord, DeliveryView, EndpointDeleted, EndpointRecord, EndpointStatus, EndpointView, EventType, HealthNotice, HealthRecord,
    QueuedDelivery, WebhookFields, health, seal_secret,
};

/// Queue rows removed with a deleted endpoint in one write set; the dispatcher drops any
/// left over when it finds their endpoint gone.
const QUEUE_ROWS_PURGED_MAX: usize = 10_000;

fn answer(effect: Effect, body: &impl serde::Serialize) -> Recorded {
    Recorded { effect, body: Arc::from(serde_json::to_vec(body).expect("views serialize")) }
}

impl PartnerActor {
    fn webhook(&self, endpoint_id: Id) -> Result<EndpointRecord, EngineError> {
        self.loaded()
            .webhooks
            .iter()
            .find(|endpoint| endpoint.id == endpoint_id)
            .cloned()
            .ok_or(EngineError::NotFound { resource: "webhook endpoint" })
    }

    /// Writes an endpoint record (and `extra` ops), keeps it in memory, and wakes the
    /// dispatcher for it.
    fn write_webhook(&mut self, endpoint: EndpointRecord, extra: Vec<WriteOp>, recorded: Recorded) -> ActorReply<WriteOutcome> {
        let mut write_set = extra;
        write_set.push(records::webhook_endpoint(&self.partner_env, endpoint.id).put(&endpoint));
        let endpoint_id = endpoint.id;
        let webhooks = &mut self.loaded_mut().webhooks;
        match webhooks.iter_mut().find(|known| known.id == endpoint_id) {
            Some(known) => *known = endpoint,
            None => webhooks.push(endpoint),
        }
        let (_, receipt) = self.commit(write_set, OutboxSignal::touched(endpoint_id));
        ActorReply { outcome: Ok(WriteOutcome::Done(recorded)), receipt: Some(receipt) }
    }

    pub(super) fn create_webhook(&mut self, fields: &WebhookFields, now_ms: u64) -> ActorReply<WriteOutcome> {
        let endpoints_max = self.shared.config.webhooks_per_partner_max;
        if self.loaded().webhooks.len() >= endpoints_max {
            return ActorReply::failed(EngineError::Conflict {
                message: format!("a partner may hold at most {endpoints_max} webhook endpoints per environment"),
            });
        }
        let Some(url) = fields.url.clone() else {
            return ActorReply::failed(EngineError::Invalid { field: "url".into(), message: "is required".into() });
        };
        let id = self.shared.ids.next(now_ms);
        let secret = generate_secret();
        let mut endpoint = EndpointRecord {
            id,
            url,
            description: None,
            event_types: Vec::new(),
            receive_all_events: false,
            headers: Vec::new(),
            status: EndpointStatus::Enabled,
            disabled_reason: None,
            sealed_secret: seal_secret(&self.shared.master_key, id, &secret),
            previous_sealed_secret: None,
            previous_secret_expires_at_ms: None,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        };
        apply_fields(&mut endpoint, fields);
        let recorded = answer(Effect::Created, &EndpointView::new(&endpoint, Some(&secret), now_ms));
        self.write_webhook(endpoint, Vec::new(), recorded)
    }

    pub(super) fn update_webhook(&mut self, endpoint_id: Id, fields: &WebhookFields, now_ms: u64) -> ActorReply<WriteOutcome> {
        let mut endpoint = match self.webhook(endpoint_id) {
            Ok(endpoint) => endpoint,
            Err(error) => return ActorReply::failed(error),
        };
        let was_disabled = endpoint.status == EndpointStatus::Disabled;
        apply_fields(&mut endpoint, fields);
        endpoint.updated_at_ms = now_ms;
        let mut extra = Vec::new();
        // Enabled again: it starts healthy (no streak, no warning given).
        if was_disabled && endpoint.status == EndpointStatus::Enabled {
            extra.push(records::webhook_health(&self.partner_env, endpoint_id).put(&HealthRecord::default()));
            self.loaded_mut().webhook_health.insert(endpoint_id, HealthRecord::default());
        }
        let recorded = answer(Effect::Applied, &EndpointView::new(&endpoint, None, now_ms));
        self.write_webhook(endpoint, extra, recorded)
    }

    pub(super) fn rotate_webhook_secret(&mut self, endpoint_id: Id, now_ms: u64) -> ActorReply<WriteOutcome> {
        let mut endpoint = match self.webhook(endpoint_id) {
            Ok(endpoint) => endpoint,
            Err(error) => return ActorReply::failed(error),
        };
        let overlap_ms = u64::try_from(self.shared.webhook_settings().secret_overlap.as_millis()).unwrap_or(u64::MAX);
        let secret = generate_secret();
        endpoint.previous_sealed_secret =
            Some(std::mem::replace(&mut endpoint.sealed_secret, seal_secret(&self.shared.master_key, endpoint.id, &secret)));
        endpoint.previous_secret_expires_at_ms = Some(now_ms.saturating_add(overlap_ms));
        endpoint.updated_at_ms = now_ms;
        let recorded = answer(Effect::Applied, &EndpointView::new(&endpoint, Some(&secret), now_ms));
        self.write_webhook(endpoint, Vec::new(), recorded)
    }

    pub(super) fn delete_webhook(&mut self, endpoint_id: Id) -> ActorReply<WriteOutcome> {
        if let Err(error) = self.webhook(endpoint_id) {
            return ActorReply::failed(error);
        }
        let queued = match records::webhook_queue(&self.partner_env, endpoint_id).scan(
            self.shared.store.as_ref(),
            ScanOrder::Ascending,
            QUEUE_ROWS_PURGED_MAX,
        ) {
            Ok(rows) => rows,
            Err(error) => return ActorReply::failed(EngineError::internal("reading a webhook queue", error)),
        };
        let mut write_set: Vec<WriteOp> = queued.into_iter().map(|row| row.key.delete()).collect();
        write_set.push(records::webhook_endpoint(&self.partner_env, endpoint_id).delete());
        write_set.push(records::webhook_health(&self.partner_env, endpoint_id).delete());
        let state = self.loaded_mut();
        state.webhooks.retain(|endpoint| endpoint.id != endpoint_id);
        state.webhook_health.remove(&endpoint_id);
        let (_, receipt) = self.commit(write_set, OutboxSignal::touched(endpoint_id));
        // Through a `Value`: this answer has always been written with its keys sorted.
        let deleted = serde_json::to_value(EndpointDeleted { id: endpoint_id.to_hex(), deleted: true }).expect("two fields serialize");
        let recorded = answer(Effect::Applied, &deleted);
        ActorReply { outcome: Ok(WriteOutcome::Done(recorded)), receipt: Some(receipt) }
    }

    /// `webhook.test`: one delivery to this endpoint only, not in the feed (no sequence).
    pub(super) fn test_webhook(&mut self, endpoint_id: Id, now_ms: u64) -> ActorReply<WriteOutcome> {
        let endpoint = match self.webhook(endpoint_id) {
            Ok(endpoint) => endpoint,
            Err(error) => return ActorReply::failed(error),
        };
        let event_id = self.shared.ids.next(now_ms);
        let envelope = EventEnvelope {
            id: event_id.prefixed("evt_"),
            event_type: EventType::WebhookTest,
            created_at: crate::engine::clock::format_timestamp(now_ms),
            environment: self.partner_env.environment,
            partner_id: self.partner_env.partner_id.to_hex(),
            sequence: None,
            data: &json!({ "endpointId": endpoint.id.to_hex(), "message": "This is a test event from the reward engine." }),
        };
        let event = EventRecord {
            id: event_id,
            sequence: 0,
            event_type: EventType::WebhookTest,
            created_at_ms: now_ms,
            envelope_json: serde_json::to_vec(&envelope).expect("envelopes serialize"),
        };
        let mut delivery = DeliveryRecord::new(self.shared.ids.next(now_ms), endpoint.id, &event, now_ms);
        delivery.event_sequence = None;
        delivery.inline_envelope = Some(event.envelope_json);
        let write_set = vec![
            records::webhook_delivery(&self.partner_env, endpoint.id, delivery.id).put(&delivery),
            records::webhook_queue_row(&self.partner_env, endpoint.id, now_ms, delivery.id).put(&QueueEntry),
        ];
        let queued = vec![QueuedDelivery { endpoint_id: endpoint.id, due_ms: now_ms, delivery_id: delivery.id }];
        let (_, receipt) = self.commit(write_set, OutboxSignal { queued, ..OutboxSignal::default() });
        let recorded = answer(Effect::Applied, &DeliveryView::from(&delivery));
        ActorReply { outcome: Ok(WriteOutcome::Done(recorded)), receipt: Some(receipt) }
    }

    /// The dispatcher's report on an endpoint's deliveries: judge the facts by the health
    /// policy and commit the verdict in one write set (the health record, the endpoint
    /// disabled, the events, to the partner's other healthy endpoints and the feed). A report
    /// that changes nothing writes nothing. The dispatcher hears the new status once durable.
    pub(super) fn judge_deliveries(&mut self, endpoint_id: Id, facts: &[DeliveryFact], now_ms: u64) -> ActorReply<WriteOutcome> {
        let endpoint = match self.webhook(endpoint_id) {
            Ok(endpoint) => endpoint,
            Err(error) => return ActorReply::failed(error),
        };
        let health = self.loaded().webhook_health.get(&endpoint_id).cloned().unwrap_or_default();
        let disable_after = self.shared.webhook_settings().disable_after;
        let (judged, notices) = health::judge(&endpoint, &health, facts, disable_after);
        let done = || Ok(WriteOutcome::Done(answer(Effect::Applied, &json!({}))));
        if judged == health && notices.is_empty() {
            return ActorReply { outcome: done(), receipt: None };
        }
        let mut extra = Vec::with_capacity(2);
        if judged != health {
            extra.push(records::webhook_health(&self.partner_env, endpoint_id).put(&judged));
            self.loaded_mut().webhook_health.insert(endpoint_id, judged);
        }
        let endpoint_hex = endpoint.id.to_hex();
        let mut events = Vec::with_capacity(notices.len());
        let mut after = endpoint.clone();
        for notice in notices {
            let event = match notice {
                HealthNotice::Disable { reason } => {
                    after.status = EndpointStatus::Disabled;
                    after.disabled_reason = Some(reason.clone());
                    after.updated_at_ms = now_ms;
                    (EventType::WebhookEndpointDisabled, json!({ "endpointId": endpoint_hex, "url": endpoint.url, "reason": reason }))
                }
                HealthNotice::Unhealthy { failing_since_ms } => {
                    let failing_since = crate::engine::clock::format_timestamp(failing_since_ms);
                    (EventType::WebhookEndpointUnhealthy, json!({ "endpointId": endpoint_hex, "url": endpoint.url, "failingSince": failing_since }))
                }
                HealthNotice::Exhausted { delivery_id, event_id, event_type, attempts } => (
                    EventType::WebhookDeliveryExhausted,
                    json!({
                        "endpointId": endpoint_hex, "url": endpoint.url, "deliveryId": delivery_id.prefixed("dlv_"),
                        "eventId": event_id.prefixed("evt_"), "eventType": event_type, "attempts": attempts,
                    }),
                ),
            };
            events.push(event);
        }
        if after != endpoint {
            extra.push(records::webhook_endpoint(&self.partner_env, endpoint_id).put(&after));
            if let Some(known) = self.loaded_mut().webhooks.iter_mut().find(|known| known.id == endpoint_id) {
                *known = after;
            }
        }
        // §9: health events go to the partner's other *healthy* endpoints.
        let state = self.loaded();
        let failing = state.webhook_health.iter().filter(|(_, health)| health.failing_since_ms.is_some()).map(|(id, _)| *id);
        let excluded: Vec<Id> = std::iter::once(endpoint_id).chain(failing).collect();
        let receipt = self.commit_events_with(&events, now_ms, &excluded, extra, OutboxSignal::touched(endpoint_id));
        ActorReply { outcome: done(), receipt: Some(receipt) }
    }
}

/// Applies the fields given. Re-enabling clears the reason; disabling by hand gives one.
fn apply_fields(endpoint: &mut EndpointRecord, fields: &WebhookFields) {
    let WebhookFields { url, description, event_types, receive_all_events, headers, status } = fields.clone();
    if let Some(url) = url {
        endpoint.url = url;
    }
    if let Some(description) = description {
        endpoint.description = description;
    }
    if let Some(event_types) = event_types {
        endpoint.event_types = event_types;
    }
    if let Some(receive_all_events) = receive_all_events {
        endpoint.receive_all_events = receive_all_events;
    }
    if let Some(headers) = headers {
        endpoint.headers = headers;
    }
    match status {
        Some(EndpointStatus::Enabled) => {
            endpoint.status = EndpointStatus::Enabled;
            endpoint.disabled_reason = None;
        }
        Some(EndpointStatus::Disabled) if endpoint.status == EndpointStatus::Enabled => {
            endpoint.status = EndpointStatus::Disabled;
            endpoint.disabled_reason = Some("disabled by the partner".into());
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::webhooks::testing::TestEngine;
    use crate::webhooks::{AttemptOutcome, DeliveryFact, EndpointStatus, EventType, WebhookFields};

    fn attempted(attempted_at_ms: u64, outcome: AttemptOutcome) -> Arc<Vec<DeliveryFact>> {
        Arc::new(vec![DeliveryFact::Attempted { attempted_at_ms, outcome }])
    }

    fn failed() -> AttemptOutcome {
        AttemptOutcome::Failed { status_code: Some(500), retry_after_secs: None, overloaded: false }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_partner_update_and_a_disable_verdict_in_flight_together_both_land() {
        let test = TestEngine::start(|_| {});
        let (engine, partner_env) = (&test.engine, test.partner_env());
        // Both orders: the update reaches the mailbox first, then the report first.
        for update_first in [true, false] {
            let endpoint = test.create_endpoint(partner_env, "https://example.com/hook").await;
            // An attempt made after the update (the clock moves on between the two): not stale.
            let gone_at_ms = engine.clock().advance(1).expect("a test clock") + 1_000;
            let fields = WebhookFields { description: Some(Some("renamed".into())), ..WebhookFields::default() };
            let webhooks = engine.webhooks();
            let update = webhooks.update_webhook(partner_env, endpoint.id, fields);
            let report = engine.report_deliveries(partner_env, endpoint.id, attempted(gone_at_ms, AttemptOutcome::Gone));
            let (updated, reported) = if update_first {
                tokio::join!(update, report)
            } else {
                let (reported, updated) = tokio::join!(report, update);
                (updated, reported)
            };
            updated.expect("the update is durable");
            reported.expect("the verdict is durable");
            let stored = test.endpoint(partner_env, &endpoint);
            assert_eq!(stored.description.as_deref(), Some("renamed"), "the partner's change kept (update first: {update_first})");
            assert_eq!(stored.status, EndpointStatus::Disabled, "the verdict kept (update first: {update_first})");
            assert!(stored.disabled_reason.is_some_and(|reason| reason.contains("410")));
        }
        let health = engine.webhooks().webhook_health(partner_env).expect("health reads");
        assert_eq!((health.endpoints, health.disabled, health.failing), (2, 2, 2));
        let feed = engine.webhooks().list_events(partner_env, 0, 100).expect("the feed reads").items;
        let disabled = feed.iter().filter(|event| event.event_type == EventType::WebhookEndpointDisabled).count();
        assert_eq!(disabled, 2, "one webhook_endpoint.disabled per endpoint");
        engine.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_result_older_than_the_partner_re_enabling_does_not_disable_again() {
        let test = TestEngine::start(|_| {});
        let (engine, partner_env) = (&test.engine, test.partner_env());
        let endpoint = test.create_endpoint(partner_env, "https://example.com/hook").await;
        let before_ms = engine.clock().advance(1).expect("a test clock");
        engine.report_deliveries(partner_env, endpoint.id, attempted(before_ms, AttemptOutcome::Gone)).await.expect("judged");
        assert_eq!(test.endpoint(partner_env, &endpoint).status, EndpointStatus::Disabled);

        engine.clock().advance(1).expect("a test clock");
        let enable = WebhookFields { status: Some(EndpointStatus::Enabled), ..WebhookFields::default() };
        engine.webhooks().update_webhook(partner_env, endpoint.id, enable).await.expect("re-enabled");
        let health = engine.webhooks().webhook_health(partner_env).expect("health reads");
        assert_eq!((health.enabled, health.failing), (1, 0), "enabled again, it starts healthy");

        // A 410 and a failure from attempts made before the re-enable (in flight meanwhile):
        // stale, so nothing changes.
        let stale = vec![
            DeliveryFact::Attempted { attempted_at_ms: before_ms, outcome: AttemptOutcome::Gone },
            DeliveryFact::Attempted { attempted_at_ms: before_ms, outcome: failed() },
        ];
        engine.report_deliveries(partner_env, endpoint.id, Arc::new(stale)).await.expect("judged");
        let stored = test.endpoint(partner_env, &endpoint);
        assert_eq!((stored.status, stored.disabled_reason), (EndpointStatus::Enabled, None));
        assert_eq!(engine.webhooks().webhook_health(partner_env).expect("health reads").failing, 0);

        // A failure after it starts a streak; a 410 after it disables: the policy says so.
        let after_ms = engine.clock().advance(1).expect("a test clock");
        engine.report_deliveries(partner_env, endpoint.id, attempted(after_ms, failed())).await.expect("judged");
        let health = engine.webhooks().webhook_health(partner_env).expect("health reads");
        assert_eq!((health.enabled, health.failing), (1, 1));
        engine.report_deliveries(partner_env, endpoint.id, attempted(after_ms, AttemptOutcome::Gone)).await.expect("judged");
        assert_eq!(test.endpoint(partner_env, &endpoint).status, EndpointStatus::Disabled);
        engine.shutdown().await;
    }
}
