//! Webhook endpoints, written through the actor: it fans every event out to them (so it
//! must know them), and it assigns the sequences of the health events the dispatcher
//! asks for.

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
    DeliveryRecord, DeliveryView, EndpointRecord, EndpointStatus, EndpointView, EventType, HealthNotice, QueuedDelivery, WebhookFields, seal_secret,
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
        apply_fields(&mut endpoint, fields);
        endpoint.updated_at_ms = now_ms;
        let recorded = answer(Effect::Applied, &EndpointView::new(&endpoint, None, now_ms));
        self.write_webhook(endpoint, Vec::new(), recorded)
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
        self.loaded_mut().webhooks.retain(|endpoint| endpoint.id != endpoint_id);
        let (_, receipt) = self.commit(write_set, OutboxSignal::touched(endpoint_id));
        let recorded = answer(Effect::Applied, &json!({ "id": endpoint_id.to_hex(), "deleted": true }));
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

    /// The dispatcher's report on an endpoint: record the event (to the partner's other
    /// endpoints and the feed), and disable the endpoint when asked.
    pub(super) fn webhook_health(&mut self, endpoint_id: Id, notice: &HealthNotice, failing: &[Id], now_ms: u64) -> ActorReply<WriteOutcome> {
        let excluded: Vec<Id> = std::iter::once(endpoint_id).chain(failing.iter().copied()).collect();
        let endpoint = match self.webhook(endpoint_id) {
            Ok(endpoint) => endpoint,
            Err(error) => return ActorReply::failed(error),
        };
        let endpoint_hex = endpoint.id.to_hex();
        let receipt = match notice {
            HealthNotice::Disable { reason } => {
                if endpoint.status == EndpointStatus::Disabled {
                    return ActorReply { outcome: Ok(WriteOutcome::Done(answer(Effect::Applied, &json!({})))), receipt: None };
                }
                let mut disabled = endpoint.clone();
                disabled.status = EndpointStatus::Disabled;
                disabled.disabled_reason = Some(reason.clone());
                disabled.updated_at_ms = now_ms;
                let extra = vec![records::webhook_endpoint(&self.partner_env, endpoint.id).put(&disabled)];
                if let Some(known) = self.loaded_mut().webhooks.iter_mut().find(|known| known.id == endpoint_id) {
                    *known = disabled;
                }
                let data = json!({ "endpointId": endpoint_hex, "url": endpoint.url, "reason": reason });
                self.commit_event_with(EventType::WebhookEndpointDisabled, &data, now_ms, &excluded, extra, OutboxSignal::touched(endpoint_id))
            }
            HealthNotice::Unhealthy { failing_since_ms } => {
                let data = json!({ "endpointId": endpoint_hex, "url": endpoint.url, "failingSince": crate::engine::clock::format_timestamp(*failing_since_ms) });
                self.commit_event_with(EventType::WebhookEndpointUnhealthy, &data, now_ms, &excluded, Vec::new(), OutboxSignal::touched(endpoint_id))
            }
            HealthNotice::Exhausted { delivery_id, event_id, event_type, attempts } => {
                let data = json!({
                    "endpointId": endpoint_hex, "url": endpoint.url, "deliveryId": delivery_id.prefixed("dlv_"),
                    "eventId": event_id.prefixed("evt_"), "eventType": event_type, "attempts": attempts,
                });
                self.commit_event_with(EventType::WebhookDeliveryExhausted, &data, now_ms, &excluded, Vec::new(), OutboxSignal::touched(endpoint_id))
            }
        };
        ActorReply { outcome: Ok(WriteOutcome::Done(answer(Effect::Applied, &json!({})))), receipt: Some(receipt) }
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
