//! The JSON Schemas of what the views write in a form their Rust type does not tell: a
//! timestamp or an id as a `String`, an exact decimal or stored JSON as raw JSON text. A
//! view's field names one of these in `#[schemars(with = "…")]`, so its documented schema is
//! the one the text has, and the front's own answer types name them too. Only with the
//! `schema` feature (the front's OpenAPI document).
//!
//! Each is inlined where it is used (no component of its own), as the document always wrote
//! them; `Option<…>` of one adds `null`.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

/// Declares a marker type whose schema is the given JSON.
macro_rules! described_as {
    ($(#[$doc:meta])* $name:ident, $schema:tt) => {
        $(#[$doc])*
        pub struct $name;

        impl JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }

            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_generator: &mut SchemaGenerator) -> Schema {
                json_schema!($schema)
            }
        }
    };
}

described_as!(
    /// An RFC 3339 instant from 1970 on, as `clock::format_timestamp` writes it.
    Timestamp,
    {
        "type": "string", "format": "date-time", "pattern": "^(19[7-9][0-9]|[2-9][0-9]{3})-",
        "description": "ISO 8601 UTC with milliseconds", "examples": ["2026-11-23T09:12:00.123Z"],
    }
);

described_as!(
    /// An [`crate::ids::Id`] as `Id::to_hex` writes it.
    HexId,
    { "type": "string", "pattern": "^[0-9a-f]{24}$", "description": "24-character lowercase hex id" }
);

described_as!(
    /// A key's id (`Id::prefixed("key_")`).
    KeyId,
    { "type": "string", "pattern": "^key_[0-9a-f]{24}$" }
);

described_as!(
    /// A delivery's id (`Id::prefixed("dlv_")`).
    DeliveryId,
    { "type": "string", "pattern": "^dlv_[0-9a-f]{24}$" }
);

described_as!(
    /// An event's id (`Id::prefixed("evt_")`).
    EventId,
    { "type": "string", "pattern": "^evt_[0-9a-f]{24}$" }
);

described_as!(
    /// A request's id (`X-Request-Id`, and `requestId` in every error body).
    RequestId,
    { "type": "string", "pattern": "^req_[0-9a-f]{24}$" }
);

described_as!(
    /// An exact decimal (an amount, a multiplier) written as a JSON number from its text.
    Decimal,
    { "type": "number" }
);

described_as!(
    /// Stored free-form JSON a partner sent as an object (metadata).
    JsonObject,
    { "type": "object" }
);

described_as!(
    /// Any JSON value (an event's data, a batch item's own answer).
    AnyJson,
    {}
);

described_as!(
    /// A webhook endpoint's signing secret, shown only when it is made.
    WebhookSecret,
    { "type": "string", "pattern": "^whsec_" }
);
