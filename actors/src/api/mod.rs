//! The engine's public surface, by domain, named like the front's resource files: the front
//! (`src/` of the workspace root) names [`crate::Engine`], the crate root's types and these
//! modules, and nothing else of this crate (`tests/it/boundaries.rs` holds it to that). Each
//! module gathers what its domain's calls take and answer; the modules they come from are the
//! engine's own layout, free to change.
//!
//! `facades` holds the handle's methods by domain (`engine.actions()`, `engine.webhooks()`, …);
//! `views` the typed answers those methods return (the contract's shapes, which the front
//! serializes; the engine itself writes JSON only where it persists or sends it: an action's
//! replay body, a webhook's payload). With the `schema` feature every answer type derives its
//! JSON Schema (`schemars::JsonSchema`), and `schema` describes what views write as text or
//! raw JSON, for the front's OpenAPI document.

pub(crate) mod facades;
pub(crate) mod views;

/// The shared vocabulary: identifiers, time, secrets, partner environments and scopes, money, paging.
pub mod common {
    pub use crate::api::views::raw_json;
    pub use crate::domain::cidr::Cidr;
    pub use crate::domain::ids::{Id, IdGenerator};
    pub use crate::domain::model::{DAY_MS, Effect, Environment, Feature, PartnerEnv, Scope, ScopeSet};
    pub use crate::domain::money::{AmountError, Currency, Money, Multiplier, TOKENS_MAX, parse_amount};
    pub use crate::domain::request::{IdempotencyKey, PartnerUserId};
    pub use crate::engine::clock::{Clock, format_timestamp, parse_timestamp};
    pub use crate::engine::crypto::{MasterKey, Secret, constant_time_eq, hmac_sha256, random_hex, sha256};
    pub use crate::engine::rate_limit::{Budget, RateDecision};
    pub use crate::services::reads::TimeRange;
    pub use crate::store::reads::{PAGE_LIMIT_MAX, PAGE_OFFSET_MAX, Page, PageRequest};
}

/// Submitting, reading and reversing actions (`Engine::submit`, `submit_batch`, `reverse`, `list_actions`).
pub mod actions {
    pub use crate::api::views::{ActionResponse, ActionView, BreakdownView, QuoteView};
    pub use crate::domain::model::ActionStatus;
    pub use crate::domain::posting::ReversalResponse;
    pub use crate::domain::request::{ActionRequest, ReversalRequest, Stakeholder};
    pub use crate::services::reads::ActionFilter;
}

/// Users, balances, transactions and redemptions.
pub mod users {
    pub use crate::api::views::{BalanceView, TransactionView, UserView};
    pub use crate::domain::model::TransactionType;
    pub use crate::domain::posting::RedemptionResponse;
    pub use crate::domain::request::{RedemptionRequest, UserProfile};
    pub use crate::services::reads::TransactionFilter;
}

/// Campaign rules.
pub mod campaigns {
    pub use crate::api::views::CampaignView;
    pub use crate::domain::model::{CampaignSplit, CampaignStatus, CampaignTier};
    pub use crate::domain::request::CampaignFields;
}

/// Token pools, allocations and pool requests.
pub mod pools {
    pub use crate::api::views::{PoolRequestView, PoolView};
    pub use crate::domain::model::AutoRefill;
    pub use crate::domain::request::AllocationRequest;
    pub use crate::services::pool_requests::PoolRequestStatus;
}

/// Webhook endpoints, deliveries, event types and the dispatcher's settings.
pub mod webhooks {
    pub use crate::api::views::EventEnvelope;
    pub use crate::webhooks::signing::{verify_sir, verify_standard};
    pub use crate::webhooks::{
        DeliveryView, EndpointDeleted, EndpointStatus, EndpointView, EventType, RESERVED_HEADERS, UnknownEventType, UrlRefused, WebhookConfig,
        WebhookFields, WebhookHealth,
    };
}

/// Partners (the operator's), their settings, tiers and daily totals.
pub mod partners {
    pub use crate::api::views::PartnerView;
    pub use crate::domain::model::{DailyTotals, PartnerRecord, PartnerStatus, RateLimit, Tier, TipConfig};
    pub use crate::services::partners::{NewPartner, PartnerPatch};
}

/// API keys: issuing, rotating, looking up.
pub mod keys {
    pub use crate::api::views::{CreatedKeyView, KeyView};
    pub use crate::domain::model::{KeyKind, KeyStatus};
    pub use crate::services::key_lookup::KeyContext;
    pub use crate::services::keys::{KeyPatch, NewKey};
}

/// Portal accounts.
pub mod portal {
    pub use crate::services::portal::{AccountRecord, NewAccount};
}

/// Organizations, donations and their provider links.
pub mod donations {
    pub use crate::api::views::{DonationStatusView, OrganizationView};
    pub use crate::services::donations::{
        DonationStatus, DonationsConfig, Frequency, LINK_PLACEHOLDERS, NewDonation, OrganizationFields, OrganizationStatus, Provider, Settlement, Tip,
    };
}

/// Jobs and their settings, backups, restore, the store's opening and the offline audit (the command line's tools).
pub mod operations {
    pub use crate::cluster::{ClusterConfig, ClusterParts, START_WAIT as CLUSTER_START_WAIT, open_cluster_store};
    pub use crate::engine::ClusterIdentity;
    pub use crate::services::operations::{BackupConfig, BackupRunError, CompletedBackup, JobsConfig, MaintenanceConfig};
    pub use crate::store::audit::{AuditProgress, AuditReport, audit};
    pub use crate::store::{
        ENGINE_RUNNING, PostgresUrl, ReadOnlyOptions, Store, StoreBackend, WalOptions, backup, open_postgres_store, open_store_read_only,
        open_store_read_only_with, open_store_with,
    };
}

/// The JSON Schemas of what the views write as plain text or raw JSON (timestamps, ids, exact
/// decimals, metadata), for the front's own answer types (feature `schema`).
#[cfg(feature = "schema")]
pub mod schema {
    pub use crate::schema::{AnyJson, DeliveryId, EventId, HexId, JsonObject, KeyId, RequestId, Timestamp, WebhookSecret};
}
