//! The JSON shapes the contract defines, built from records. camelCase, optional fields
//! present as `null`, timestamps as ISO 8601 with milliseconds, exact decimals as JSON
//! numbers written from their text (never through a float).

use serde::Serialize;
use serde_json::value::RawValue;

use crate::domain::ids::Id;
use crate::domain::model::{
    ActionRecord, ActionStatus, AllocationRecord, Environment, Feature, PartnerRecord, PartnerStatus, PoolRecord, RateLimit, Scope, Tier, TipConfig,
    TransactionRecord, TransactionType, UserRecord,
};
use crate::domain::money::{Currency, Money};
use crate::engine::clock::format_timestamp;

/// A JSON number written from exact decimal text.
pub fn json_number(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).expect("decimal text from Money/Multiplier is a valid JSON number")
}

fn hex_id(id: Option<Id>) -> Option<String> {
    id.map(Id::to_hex)
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "Allocation"))]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AllocationView {
    pub partner_user_id: String,
    pub stakeholder_type_code: String,
    pub tokens: u64,
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::HexId>"))]
    pub transaction_id: Option<String>,
}

impl From<&AllocationRecord> for AllocationView {
    fn from(allocation: &AllocationRecord) -> AllocationView {
        AllocationView {
            partner_user_id: allocation.partner_user_id.clone(),
            stakeholder_type_code: allocation.stakeholder_type_code.clone(),
            tokens: allocation.tokens,
            transaction_id: hex_id(allocation.transaction_id),
        }
    }
}

/// The 200 body of `actions/submit`, stored with the idempotency record and replayed as is.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "Action"))]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionResponse {
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::HexId"))]
    pub action_id: String,
    pub idempotency_key: String,
    pub status: ActionStatus,
    pub tokens_distributed: u64,
    #[cfg_attr(feature = "schema", schemars(with = "Vec<crate::schema::HexId>"))]
    pub transaction_ids: Vec<String>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::HexId>"))]
    pub campaign_id: Option<String>,
    pub allocations: Vec<AllocationView>,
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::Timestamp"))]
    pub created_at: String,
}

impl ActionResponse {
    /// The response as it was when the action completed (status COMPLETED).
    pub fn from_record(action: &ActionRecord) -> ActionResponse {
        ActionResponse {
            action_id: action.id.to_hex(),
            idempotency_key: action.idempotency_key.clone(),
            status: ActionStatus::Completed,
            tokens_distributed: action.tokens_distributed,
            transaction_ids: action.allocations.iter().filter_map(|allocation| allocation.transaction_id.map(Id::to_hex)).collect(),
            campaign_id: hex_id(action.campaign_id),
            allocations: action.allocations.iter().map(AllocationView::from).collect(),
            created_at: format_timestamp(action.created_at_ms),
        }
    }
}

/// `GET /v1/partner/actions/:id`: the submit response plus the action's current state.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "ActionDetail"))]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionView {
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::HexId"))]
    pub action_id: String,
    pub idempotency_key: String,
    pub status: ActionStatus,
    pub tokens_distributed: u64,
    pub reversed_tokens: u64,
    #[cfg_attr(feature = "schema", schemars(with = "Vec<crate::schema::HexId>"))]
    pub transaction_ids: Vec<String>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::HexId>"))]
    pub campaign_id: Option<String>,
    pub allocations: Vec<AllocationView>,
    pub action_type: String,
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::Decimal>"))]
    pub amount: Option<Box<RawValue>>,
    pub currency: Option<String>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::HexId>"))]
    pub token_pool_id: Option<String>,
    #[cfg_attr(feature = "schema", schemars(with = "BreakdownView"))]
    pub breakdown: Box<RawValue>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::JsonObject>"))]
    pub metadata: Option<Box<RawValue>>,
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::Timestamp"))]
    pub created_at: String,
}

impl ActionView {
    pub fn from_record(action: &ActionRecord) -> ActionView {
        let response = ActionResponse::from_record(action);
        let money = action.amount.as_ref().and_then(|(minor, code)| Currency::from_code(code).map(|currency| Money { minor: *minor, currency }));
        ActionView {
            action_id: response.action_id,
            idempotency_key: response.idempotency_key,
            status: action.status,
            tokens_distributed: action.tokens_distributed,
            reversed_tokens: action.reversed_tokens,
            transaction_ids: response.transaction_ids,
            campaign_id: response.campaign_id,
            allocations: response.allocations,
            action_type: action.action_type.clone(),
            amount: money.map(|money| json_number(&money.to_decimal_text())),
            currency: action.amount.as_ref().map(|(_, code)| code.clone()),
            token_pool_id: action.pool_id.map(Id::to_hex),
            breakdown: raw_json(&action.breakdown_json),
            metadata: action.metadata_json.as_deref().map(raw_json),
            created_at: response.created_at,
        }
    }
}

/// Stored JSON bytes as a raw JSON value (they were produced by serde_json, so they parse).
pub fn raw_json(bytes: &[u8]) -> Box<RawValue> {
    let text = String::from_utf8_lossy(bytes).into_owned();
    RawValue::from_string(text).unwrap_or_else(|_| RawValue::from_string("null".to_owned()).expect("null is JSON"))
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "Share"))]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShareView {
    pub partner_user_id: String,
    pub stakeholder_type_code: String,
    pub tokens: u64,
}

/// Why an action paid what it paid: stored with the action, shown by quote and GET.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "Breakdown"))]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BreakdownView {
    /// `DEFAULT` (no campaign) or `CAMPAIGN`.
    #[cfg_attr(feature = "schema", schemars(extend("enum" = ["DEFAULT", "CAMPAIGN"])))]
    pub rule: &'static str,
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::HexId>"))]
    pub campaign_id: Option<String>,
    pub tier_index: Option<usize>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::Decimal>"))]
    pub multiplier: Option<Box<RawValue>>,
    pub fixed_tokens: Option<u64>,
    pub max_tokens_per_action: Option<u64>,
    pub base_tokens: u64,
    pub total_tokens: u64,
    pub capped: bool,
    pub tokens_distributed: u64,
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::HexId>"))]
    pub token_pool_id: Option<String>,
    pub shares: Vec<ShareView>,
}

/// The answer to a quote: the breakdown a submit would get now, and whether it would be funded.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "Quote"))]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuoteView {
    pub campaign: Option<QuotedCampaign>,
    pub tokens_distributed: u64,
    #[cfg_attr(feature = "schema", schemars(with = "BreakdownView"))]
    pub breakdown: Box<RawValue>,
    pub funding: QuoteFunding,
}

/// The campaign a quote would apply.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotedCampaign {
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::HexId"))]
    pub id: String,
    pub name: String,
    pub priority: i32,
}

/// Whether a quoted action would be funded, and if not the code a submit would answer.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuoteFunding {
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::HexId>"))]
    pub token_pool_id: Option<String>,
    pub pool_balance: Option<u64>,
    pub campaign_budget_remaining: Option<u64>,
    pub sufficient: bool,
    pub code: Option<&'static str>,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "AutoRefill"))]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoRefillView {
    pub threshold_tokens: u64,
    pub refill_tokens: u64,
    pub max_refills_per_month: u32,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "TokenPool"))]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolView {
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::HexId"))]
    pub id: String,
    pub environment: Environment,
    pub name: Option<String>,
    pub balance: u64,
    pub allocated_total: u64,
    pub refilled_total: u64,
    pub issued_total: u64,
    pub reversed_total: u64,
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::Timestamp>"))]
    pub expires_at: Option<String>,
    pub vesting_days: Option<u32>,
    pub low_balance_threshold: Option<u64>,
    pub auto_refill: Option<AutoRefillView>,
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::Timestamp"))]
    pub created_at: String,
}

impl From<&PoolRecord> for PoolView {
    fn from(pool: &PoolRecord) -> PoolView {
        PoolView {
            id: pool.id.to_hex(),
            environment: pool.environment,
            name: pool.name.clone(),
            balance: pool.balance,
            allocated_total: pool.allocated_total,
            refilled_total: pool.refilled_total,
            issued_total: pool.issued_total,
            reversed_total: pool.reversed_total,
            expires_at: pool.expires_at_ms.map(format_timestamp),
            vesting_days: pool.vesting_days,
            low_balance_threshold: pool.low_balance_threshold,
            auto_refill: pool.auto_refill.map(|refill| AutoRefillView {
                threshold_tokens: refill.threshold_tokens,
                refill_tokens: refill.refill_tokens,
                max_refills_per_month: refill.max_refills_per_month,
            }),
            created_at: format_timestamp(pool.created_at_ms),
        }
    }
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "Balance"))]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BalanceView {
    pub partner_user_id: String,
    #[cfg_attr(feature = "schema", schemars(description = "may be negative after a reversal"))]
    pub available: i64,
    pub pending: u64,
    pub lifetime_earned: u64,
    pub lifetime_reversed: u64,
    pub lifetime_redeemed: u64,
}

impl BalanceView {
    /// The balance at `now_ms`: unvested credit is pending, the rest available.
    pub fn of(user: &UserRecord, now_ms: u64) -> BalanceView {
        BalanceView {
            partner_user_id: user.external_id.clone(),
            available: user.available(now_ms),
            pending: user.pending(now_ms),
            lifetime_earned: user.lifetime_earned,
            lifetime_reversed: user.lifetime_reversed,
            lifetime_redeemed: user.lifetime_redeemed,
        }
    }
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "Transaction"))]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionView {
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::HexId"))]
    pub id: String,
    #[serde(rename = "type")]
    pub transaction_type: TransactionType,
    pub tokens: i64,
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::HexId>"))]
    pub action_id: Option<String>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::HexId>"))]
    pub pool_id: Option<String>,
    pub partner_user_id: Option<String>,
    pub stakeholder_type_code: Option<String>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::HexId>"))]
    pub campaign_id: Option<String>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::Timestamp>"))]
    pub vests_at: Option<String>,
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::Timestamp"))]
    pub created_at: String,
}

impl From<&TransactionRecord> for TransactionView {
    fn from(transaction: &TransactionRecord) -> TransactionView {
        TransactionView {
            id: transaction.id.to_hex(),
            transaction_type: transaction.transaction_type,
            tokens: transaction.tokens,
            action_id: hex_id(transaction.action_id),
            pool_id: transaction.pool_id.map(Id::to_hex),
            partner_user_id: transaction.partner_user_id.clone(),
            stakeholder_type_code: transaction.stakeholder_type_code.clone(),
            campaign_id: hex_id(transaction.campaign_id),
            vests_at: transaction.vests_at_ms.map(format_timestamp),
            created_at: format_timestamp(transaction.created_at_ms),
        }
    }
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "Partner"))]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartnerView {
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::HexId"))]
    pub id: String,
    pub name: String,
    pub slug: String,
    pub legal_entity: Option<String>,
    pub contact_email: String,
    pub status: PartnerStatus,
    pub tier: Tier,
    pub rate_limit: RateLimit,
    pub enabled_features: Vec<Feature>,
    pub stakeholder_types: Vec<String>,
    pub ip_allowlist: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub allow_basic_auth: bool,
    pub production_approved: bool,
    pub tip_config: TipConfig,
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::Timestamp"))]
    pub created_at: String,
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::Timestamp"))]
    pub updated_at: String,
}

impl From<&PartnerRecord> for PartnerView {
    fn from(partner: &PartnerRecord) -> PartnerView {
        PartnerView {
            id: partner.id.to_hex(),
            name: partner.name.clone(),
            slug: partner.slug.clone(),
            legal_entity: partner.legal_entity.clone(),
            contact_email: partner.contact_email.clone(),
            status: partner.status,
            tier: partner.tier,
            rate_limit: partner.rate_limit,
            enabled_features: partner.enabled_features.clone(),
            stakeholder_types: partner.stakeholder_types.clone(),
            ip_allowlist: partner.ip_allowlist.iter().map(ToString::to_string).collect(),
            allowed_origins: partner.allowed_origins.clone(),
            allow_basic_auth: partner.allow_basic_auth,
            production_approved: partner.production_approved,
            tip_config: partner.tip_config,
            created_at: format_timestamp(partner.created_at_ms),
            updated_at: format_timestamp(partner.updated_at_ms),
        }
    }
}

/// The answer to a key creation: the only time the secrets are shown.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "CreatedKey"))]
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedKeyView {
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::KeyId"))]
    pub id: String,
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::HexId"))]
    pub partner_id: String,
    pub name: String,
    pub environment: Environment,
    pub public_key: String,
    #[cfg_attr(feature = "schema", schemars(description = "shown once"))]
    pub secret_key: String,
    #[cfg_attr(feature = "schema", schemars(description = "shown once"))]
    pub hmac_secret: String,
    pub scopes: Vec<Scope>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::Timestamp>"))]
    pub expires_at: Option<String>,
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::Timestamp"))]
    pub created_at: String,
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::KeyId>"))]
    pub rotated_from: Option<String>,
}

impl std::fmt::Debug for CreatedKeyView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedKeyView").field("id", &self.id).field("partner_id", &self.partner_id).finish_non_exhaustive()
    }
}

/// An event envelope, as delivered and as listed in the feed.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "Event"))]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventEnvelope<T: Serialize> {
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::EventId"))]
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: crate::webhooks::EventType,
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::Timestamp"))]
    pub created_at: String,
    pub environment: Environment,
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::HexId"))]
    pub partner_id: String,
    /// null only for `webhook.test`, which is not in the feed.
    pub sequence: Option<u64>,
    pub data: T,
}

/// A key in a list or read: never a secret, only what recognises the key.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "Key"))]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyView {
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::KeyId"))]
    pub id: String,
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::HexId"))]
    pub partner_id: String,
    pub name: String,
    pub environment: Environment,
    /// `pk_test_` or `pk_live_`, and the key's last four characters.
    pub public_key_prefix: String,
    pub public_key_last4: String,
    pub secret_key_prefix: String,
    pub secret_key_last4: String,
    pub scopes: Vec<Scope>,
    pub status: crate::domain::model::KeyStatus,
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::Timestamp"))]
    pub created_at: String,
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::Timestamp>"))]
    pub last_used_at: Option<String>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::Timestamp>"))]
    pub expires_at: Option<String>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::KeyId>"))]
    pub rotated_from: Option<String>,
}

impl From<&crate::domain::model::ApiKeyRecord> for KeyView {
    fn from(key: &crate::domain::model::ApiKeyRecord) -> KeyView {
        let word = key.environment.key_word();
        KeyView {
            id: key.id.prefixed("key_"),
            partner_id: key.partner_id.to_hex(),
            name: key.name.clone(),
            environment: key.environment,
            public_key_prefix: format!("pk_{word}_"),
            public_key_last4: key.public_key_last4.clone(),
            secret_key_prefix: format!("sk_{word}_"),
            secret_key_last4: key.secret_key_last4.clone(),
            scopes: key.scopes.to_vec(),
            status: key.status,
            created_at: format_timestamp(key.created_at_ms),
            last_used_at: key.last_used_at_ms.map(format_timestamp),
            expires_at: key.expires_at_ms.map(format_timestamp),
            rotated_from: key.rotated_from.map(|id| id.prefixed("key_")),
        }
    }
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "PoolRequest"))]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolRequestView {
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::HexId"))]
    pub id: String,
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::HexId"))]
    pub partner_id: String,
    pub environment: Environment,
    pub tokens: u64,
    pub reason: String,
    pub status: crate::services::pool_requests::PoolRequestStatus,
    pub decision_note: Option<String>,
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::Timestamp"))]
    pub created_at: String,
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::Timestamp>"))]
    pub decided_at: Option<String>,
}

impl From<&crate::services::pool_requests::PoolRequestRecord> for PoolRequestView {
    fn from(record: &crate::services::pool_requests::PoolRequestRecord) -> PoolRequestView {
        PoolRequestView {
            id: record.id.to_hex(),
            partner_id: record.partner_env.partner_id.to_hex(),
            environment: record.partner_env.environment,
            tokens: record.tokens,
            reason: record.reason.clone(),
            status: record.status,
            decision_note: record.decision_note.clone(),
            created_at: format_timestamp(record.created_at_ms),
            decided_at: record.decided_at_ms.map(format_timestamp),
        }
    }
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "User"))]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::HexId"))]
    pub id: String,
    pub external_id: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::JsonObject>"))]
    pub metadata: Option<Box<RawValue>>,
    pub balance: BalanceView,
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::Timestamp"))]
    pub created_at: String,
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::Timestamp"))]
    pub updated_at: String,
}

impl UserView {
    pub fn of(user: &UserRecord, now_ms: u64) -> UserView {
        UserView {
            id: user.id.to_hex(),
            external_id: user.external_id.clone(),
            email: user.email.clone(),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            metadata: user.metadata_json.as_deref().map(raw_json),
            balance: BalanceView::of(user, now_ms),
            created_at: format_timestamp(user.created_at_ms),
            updated_at: format_timestamp(user.updated_at_ms),
        }
    }
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "CampaignTier"))]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TierView {
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::Decimal"))]
    pub min_amount: Box<RawValue>,
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::Decimal"))]
    pub multiplier: Box<RawValue>,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "CampaignSplit"))]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SplitView {
    pub stakeholder_type_code: String,
    pub percent: u8,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "CampaignSchedule"))]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleView {
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::Timestamp>"))]
    pub starts_at: Option<String>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::Timestamp>"))]
    pub ends_at: Option<String>,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "Campaign"))]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CampaignView {
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::HexId"))]
    pub id: String,
    pub name: String,
    pub status: crate::domain::model::CampaignStatus,
    pub action_types: Vec<String>,
    pub priority: i32,
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::Decimal"))]
    pub multiplier: Box<RawValue>,
    pub tiers: Vec<TierView>,
    pub fixed_tokens: Option<u64>,
    pub max_tokens_per_action: Option<u64>,
    pub splits: Vec<SplitView>,
    pub schedule: ScheduleView,
    pub budget_tokens: Option<u64>,
    pub budget_remaining: Option<u64>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::HexId>"))]
    pub token_pool_id: Option<String>,
    pub currencies: Vec<String>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::JsonObject>"))]
    pub metadata: Option<Box<RawValue>>,
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::Timestamp"))]
    pub created_at: String,
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::Timestamp"))]
    pub updated_at: String,
}

/// Ten-thousandths as exact decimal text (`15000` → `1.5`).
fn decimal_of_ten_thousandths(value: u64) -> Box<RawValue> {
    let whole = value / 10_000;
    let fraction = value % 10_000;
    if fraction == 0 {
        return json_number(&whole.to_string());
    }
    let fraction = format!("{fraction:04}");
    json_number(&format!("{whole}.{}", fraction.trim_end_matches('0')))
}

impl From<&crate::domain::model::CampaignRecord> for CampaignView {
    fn from(campaign: &crate::domain::model::CampaignRecord) -> CampaignView {
        CampaignView {
            id: campaign.id.to_hex(),
            name: campaign.name.clone(),
            status: campaign.status,
            action_types: campaign.action_types.clone(),
            priority: campaign.priority,
            multiplier: decimal_of_ten_thousandths(campaign.multiplier_ten_thousandths),
            tiers: campaign
                .tiers
                .iter()
                .map(|tier| TierView {
                    min_amount: decimal_of_ten_thousandths(tier.min_amount_ten_thousandths),
                    multiplier: decimal_of_ten_thousandths(tier.multiplier_ten_thousandths),
                })
                .collect(),
            fixed_tokens: campaign.fixed_tokens,
            max_tokens_per_action: campaign.max_tokens_per_action,
            splits: campaign
                .splits
                .iter()
                .map(|split| SplitView { stakeholder_type_code: split.stakeholder_type_code.clone(), percent: split.percent })
                .collect(),
            schedule: ScheduleView { starts_at: campaign.starts_at_ms.map(format_timestamp), ends_at: campaign.ends_at_ms.map(format_timestamp) },
            budget_tokens: campaign.budget_tokens,
            budget_remaining: campaign.budget_remaining,
            token_pool_id: campaign.token_pool_id.map(Id::to_hex),
            currencies: campaign.currencies.clone(),
            metadata: campaign.metadata_json.as_deref().map(raw_json),
            created_at: format_timestamp(campaign.created_at_ms),
            updated_at: format_timestamp(campaign.updated_at_ms),
        }
    }
}

/// A nonprofit as the widget sees it: `{id, name, slug, logoUrl, ein, status}`.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "Organization"))]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationView {
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::HexId"))]
    pub id: String,
    pub name: String,
    pub slug: String,
    pub logo_url: Option<String>,
    pub ein: Option<String>,
    pub status: crate::services::donations::OrganizationStatus,
}

impl From<&crate::services::donations::OrganizationRecord> for OrganizationView {
    fn from(organization: &crate::services::donations::OrganizationRecord) -> OrganizationView {
        OrganizationView {
            id: organization.id.to_hex(),
            name: organization.name.clone(),
            slug: organization.slug.clone(),
            logo_url: organization.logo_url.clone(),
            ein: organization.ein.clone(),
            status: organization.status,
        }
    }
}

/// `GET /v1/partner/donations/status/:id`: no donor details (widget routes are public, and
/// the link and referral code may carry the donor's email and name).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "DonationStatus"))]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DonationStatusView {
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::HexId"))]
    pub partner_donation_id: String,
    pub status: crate::services::donations::DonationStatus,
    pub nonprofit_slug: String,
    pub amount: u64,
    pub currency: String,
    pub frequency: crate::services::donations::Frequency,
    #[cfg_attr(feature = "schema", schemars(extend("enum" = ["every.org", "stripe"])))]
    pub provider: &'static str,
    pub tip_amount: u64,
    pub provider_reference: Option<String>,
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::Timestamp"))]
    pub created_at: String,
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::Timestamp>"))]
    pub completed_at: Option<String>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::Timestamp>"))]
    pub failed_at: Option<String>,
}

impl From<&crate::services::donations::DonationRecord> for DonationStatusView {
    fn from(donation: &crate::services::donations::DonationRecord) -> DonationStatusView {
        use crate::services::donations::DonationStatus;
        let settled = |status: DonationStatus| donation.settled_at_ms.filter(|_| donation.status == status).map(format_timestamp);
        DonationStatusView {
            partner_donation_id: donation.id.to_hex(),
            status: donation.status,
            nonprofit_slug: donation.organization_slug.clone(),
            amount: donation.amount_minor,
            currency: donation.currency.clone(),
            frequency: donation.frequency,
            provider: donation.provider.as_str(),
            tip_amount: donation.tip_minor,
            provider_reference: donation.provider_reference.clone(),
            created_at: format_timestamp(donation.created_at_ms),
            completed_at: settled(DonationStatus::Completed),
            failed_at: settled(DonationStatus::Failed),
        }
    }
}
