//! The event types of the contract (§9), as one enum: what partners subscribe to, what the
//! feed and deliveries carry, and what the OpenAPI document lists all come from
//! [`EventType::ALL`].
//!
//! Encoding: an event type serializes as its contract name, a plain string (serde's
//! `serialize_str`), so stored records that held it as a `String` before keep the same
//! bytes under the codec, and JSON shows the contract name. Decoding refuses a name that is
//! not a contract event type.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One contract event type. The declaration order is the contract's order, which the
/// subscription error message and the OpenAPI enum show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    ActionCompleted,
    ActionFailed,
    ActionReversed,
    TransactionCompleted,
    TokenPoolLowBalance,
    TokenPoolRefilled,
    CampaignStatusChanged,
    CampaignBudgetExhausted,
    PartnerStatusChanged,
    ApiKeyExpiring,
    DonationCompleted,
    WebhookTest,
    WebhookEndpointUnhealthy,
    WebhookEndpointDisabled,
    WebhookDeliveryExhausted,
}

impl EventType {
    /// Every event type a partner may subscribe to, in the contract's order.
    pub const ALL: [EventType; 15] = [
        EventType::ActionCompleted,
        EventType::ActionFailed,
        EventType::ActionReversed,
        EventType::TransactionCompleted,
        EventType::TokenPoolLowBalance,
        EventType::TokenPoolRefilled,
        EventType::CampaignStatusChanged,
        EventType::CampaignBudgetExhausted,
        EventType::PartnerStatusChanged,
        EventType::ApiKeyExpiring,
        EventType::DonationCompleted,
        EventType::WebhookTest,
        EventType::WebhookEndpointUnhealthy,
        EventType::WebhookEndpointDisabled,
        EventType::WebhookDeliveryExhausted,
    ];

    /// The contract name (`action.completed`).
    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::ActionCompleted => "action.completed",
            EventType::ActionFailed => "action.failed",
            EventType::ActionReversed => "action.reversed",
            EventType::TransactionCompleted => "transaction.completed",
            EventType::TokenPoolLowBalance => "token_pool.low_balance",
            EventType::TokenPoolRefilled => "token_pool.refilled",
            EventType::CampaignStatusChanged => "campaign.status_changed",
            EventType::CampaignBudgetExhausted => "campaign.budget_exhausted",
            EventType::PartnerStatusChanged => "partner.status_changed",
            EventType::ApiKeyExpiring => "api_key.expiring",
            EventType::DonationCompleted => "donation.completed",
            EventType::WebhookTest => "webhook.test",
            EventType::WebhookEndpointUnhealthy => "webhook_endpoint.unhealthy",
            EventType::WebhookEndpointDisabled => "webhook_endpoint.disabled",
            EventType::WebhookDeliveryExhausted => "webhook.delivery_exhausted",
        }
    }

    /// Every contract name, in the contract's order (for documents and messages).
    pub fn names() -> impl Iterator<Item = &'static str> {
        EventType::ALL.into_iter().map(EventType::as_str)
    }

    /// An event about webhooks themselves (a test, an endpoint's health, an exhausted
    /// delivery). When one of these runs out of attempts it raises no further event, so two
    /// failing endpoints cannot feed each other notices.
    pub const fn is_about_webhooks(self) -> bool {
        matches!(
            self,
            EventType::WebhookTest | EventType::WebhookEndpointUnhealthy | EventType::WebhookEndpointDisabled | EventType::WebhookDeliveryExhausted
        )
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A name that is not a contract event type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type {0:?}")]
pub struct UnknownEventType(pub String);

impl FromStr for EventType {
    type Err = UnknownEventType;

    fn from_str(name: &str) -> Result<EventType, UnknownEventType> {
        EventType::ALL.into_iter().find(|event_type| event_type.as_str() == name).ok_or_else(|| UnknownEventType(name.to_owned()))
    }
}

impl PartialEq<str> for EventType {
    fn eq(&self, name: &str) -> bool {
        self.as_str() == name
    }
}

impl PartialEq<&str> for EventType {
    fn eq(&self, name: &&str) -> bool {
        self.as_str() == *name
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A contract name, one of [`EventType::names`] (its serialized form, written by hand above).
#[cfg(feature = "schema")]
impl schemars::JsonSchema for EventType {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EventType".into()
    }

    fn json_schema(_generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "enum": EventType::names().collect::<Vec<_>>() })
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<EventType, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = EventType;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a contract event type name")
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<EventType, E> {
                name.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::IdGenerator;
    use crate::domain::model::EventRecord;
    use crate::store::codec::{decode, encode};

    /// [`EventRecord`] as it was stored while its type was a `String`.
    #[derive(Serialize, Deserialize)]
    struct EventRecordWithString {
        id: crate::domain::ids::Id,
        sequence: u64,
        event_type: String,
        created_at_ms: u64,
        envelope_json: Vec<u8>,
    }

    #[test]
    fn names_round_trip_and_are_unique() {
        for event_type in EventType::ALL {
            assert_eq!(event_type.as_str().parse::<EventType>(), Ok(event_type));
            assert_eq!(event_type.to_string(), event_type.as_str());
        }
        let mut names: Vec<&str> = EventType::names().collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EventType::ALL.len(), "one name per variant");
        assert_eq!("webhook.nope".parse::<EventType>(), Err(UnknownEventType("webhook.nope".into())));
        assert_eq!("".parse::<EventType>(), Err(UnknownEventType(String::new())));
    }

    #[test]
    fn the_codec_writes_the_same_bytes_as_a_string_did() {
        for event_type in EventType::ALL {
            let as_string = encode(&event_type.as_str().to_owned());
            assert_eq!(encode(&event_type), as_string, "{event_type}");
            assert_eq!(decode::<EventType>(&as_string).expect("old bytes decode"), event_type);
        }
        let subscribed = vec![EventType::ActionCompleted, EventType::WebhookDeliveryExhausted];
        let subscribed_strings: Vec<String> = subscribed.iter().map(ToString::to_string).collect();
        assert_eq!(encode(&subscribed), encode(&subscribed_strings));

        let id = IdGenerator::new().next(7);
        let record = EventRecord { id, sequence: 3, event_type: EventType::DonationCompleted, created_at_ms: 7, envelope_json: b"{}".to_vec() };
        let old = EventRecordWithString { id, sequence: 3, event_type: "donation.completed".into(), created_at_ms: 7, envelope_json: b"{}".to_vec() };
        assert_eq!(encode(&record), encode(&old));
        assert_eq!(decode::<EventRecord>(&encode(&old)).expect("an old record decodes"), record);
        assert!(decode::<EventType>(&encode(&"webhook.nope".to_owned())).is_err(), "an unknown name is refused");
    }

    #[test]
    fn json_shows_the_contract_name() {
        assert_eq!(serde_json::to_string(&EventType::TokenPoolLowBalance).expect("serializes"), r#""token_pool.low_balance""#);
        assert_eq!(serde_json::from_str::<EventType>(r#""api_key.expiring""#).expect("parses"), EventType::ApiKeyExpiring);
        assert!(serde_json::from_str::<EventType>(r#""api_key.nope""#).is_err());
    }

    #[test]
    fn events_about_webhooks_are_the_webhook_families() {
        for event_type in EventType::ALL {
            let name = event_type.as_str();
            let by_prefix = name.starts_with("webhook.") || name.starts_with("webhook_endpoint.");
            assert_eq!(event_type.is_about_webhooks(), by_prefix, "{name}");
        }
    }
}
