//! The engine's public surface, by domain, named like the front's resource files: the front
//! (`src/` of the workspace root) names [`crate::Engine`], the crate root's types and these
//! modules, and nothing else of this crate (`tests/it/boundaries.rs` holds it to that). Each
//! module gathers what its domain's calls take and answer; the modules they come from are the
//! engine's own layout, free to change.

/// The shared vocabulary: identifiers, time, secrets, partner environments and scopes, money, paging.
pub mod common {
    pub use crate::cidr::Cidr;
    pub use crate::clock::{Clock, format_timestamp, parse_timestamp};
    pub use crate::crypto::{MasterKey, Secret, constant_time_eq, random_hex, sha256};
    pub use crate::ids::{Id, IdGenerator};
    pub use crate::model::{DAY_MS, Effect, Environment, Feature, PartnerEnv, Scope, ScopeSet};
    pub use crate::money::{AmountError, Currency, Money, Multiplier, TOKENS_MAX, parse_amount};
    pub use crate::rate_limit::{Budget, RateDecision};
    pub use crate::reads::{PAGE_LIMIT_MAX, PAGE_OFFSET_MAX, Page, PageRequest, TimeRange};
    pub use crate::request::{IdempotencyKey, PartnerUserId};
    pub use crate::views::raw_json;
}

/// Submitting, reading and reversing actions (`Engine::submit`, `submit_batch`, `reverse`, `list_actions`).
pub mod actions {
    pub use crate::model::ActionStatus;
    pub use crate::reads::ActionFilter;
    pub use crate::request::{ActionRequest, ReversalRequest, Stakeholder};
    pub use crate::views::ActionView;
}

/// Users, balances, transactions and redemptions.
pub mod users {
    pub use crate::model::TransactionType;
    pub use crate::reads::TransactionFilter;
    pub use crate::request::{RedemptionRequest, UserProfile};
    pub use crate::views::{BalanceView, TransactionView, UserView};
}

/// Campaign rules.
pub mod campaigns {
    pub use crate::model::{CampaignSplit, CampaignStatus, CampaignTier};
    pub use crate::request::CampaignFields;
    pub use crate::views::CampaignView;
}

/// Token pools, allocations and pool requests.
pub mod pools {
    pub use crate::model::AutoRefill;
    pub use crate::pool_requests::PoolRequestStatus;
    pub use crate::request::AllocationRequest;
    pub use crate::views::{PoolRequestView, PoolView};
}

/// Webhook endpoints, deliveries, event types and the dispatcher's settings.
pub mod webhooks {
    pub use crate::webhooks::signing::{verify_sir, verify_standard};
    pub use crate::webhooks::{
        DeliveryView, EndpointStatus, EndpointView, EventType, RESERVED_HEADERS, UnknownEventType, UrlRefused, WebhookConfig, WebhookFields,
        WebhookHealth,
    };
}

/// Partners (the operator's), their settings, tiers and daily totals.
pub mod partners {
    pub use crate::admin::{NewPartner, PartnerPatch};
    pub use crate::model::{DailyTotals, PartnerRecord, PartnerStatus, RateLimit, Tier, TipConfig};
    pub use crate::views::PartnerView;
}

/// API keys: issuing, rotating, looking up.
pub mod keys {
    pub use crate::api_keys::{KeyPatch, NewKey};
    pub use crate::key_lookup::KeyContext;
    pub use crate::model::{KeyKind, KeyStatus};
    pub use crate::views::KeyView;
}

/// Portal accounts.
pub mod portal {
    pub use crate::accounts::{AccountRecord, NewAccount};
}

/// Organizations, donations and their provider links.
pub mod donations {
    pub use crate::donations::{
        DonationStatus, DonationsConfig, Frequency, LINK_PLACEHOLDERS, NewDonation, OrganizationFields, OrganizationStatus, Provider, Settlement, Tip,
    };
    pub use crate::views::{DonationStatusView, OrganizationView};
}

/// Jobs and their settings, backups, restore, the store's opening and the offline audit (the command line's tools).
pub mod operations {
    pub use crate::audit::{AuditProgress, AuditReport, audit};
    pub use crate::operations::{BackupConfig, BackupRunError, CompletedBackup, JobsConfig, MaintenanceConfig};
    pub use crate::store::{
        ENGINE_RUNNING, ReadOnlyOptions, Store, StoreBackend, WalOptions, backup, open_store_read_only, open_store_read_only_with, open_store_with,
    };
}
