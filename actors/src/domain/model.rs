//! The engine's records: what is stored, and the enums the contract names.
//!
//! Stored records are encoded with bincode behind a version byte (see `codec`). bincode
//! cannot encode `serde_json::Value`, so free-form JSON (metadata, stored responses) is
//! kept as JSON bytes inside a record. Enum text forms are the contract's (`sandbox`,
//! `PENDING_APPROVAL`, `actions:write`, …).

use serde::{Deserialize, Serialize};

use crate::domain::ids::Id;

/// Which dataset a key addresses: `pk_test_`/`sk_test_` → sandbox, `_live_` → production.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Sandbox,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Sandbox => "sandbox",
            Environment::Production => "production",
        }
    }

    pub fn parse(text: &str) -> Option<Environment> {
        match text {
            "sandbox" => Some(Environment::Sandbox),
            "production" => Some(Environment::Production),
            _ => None,
        }
    }

    /// The key-prefix word: `test` or `live`.
    pub fn key_word(self) -> &'static str {
        match self {
            Environment::Sandbox => "test",
            Environment::Production => "live",
        }
    }

    pub fn tag(self) -> u8 {
        match self {
            Environment::Sandbox => 0,
            Environment::Production => 1,
        }
    }

    pub const ALL: [Environment; 2] = [Environment::Sandbox, Environment::Production];
}

/// A partner's dataset: every partner-owned record is keyed by this pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PartnerEnv {
    pub partner_id: Id,
    pub environment: Environment,
}

impl PartnerEnv {
    pub fn new(partner_id: Id, environment: Environment) -> PartnerEnv {
        PartnerEnv { partner_id, environment }
    }

    /// 13 bytes: the partner id, then the environment tag. The prefix of every key the
    /// partner owns in this environment.
    pub fn key_prefix(&self) -> [u8; 13] {
        let mut prefix = [0u8; 13];
        prefix[..12].copy_from_slice(self.partner_id.as_bytes());
        prefix[12] = self.environment.tag();
        prefix
    }

    /// The inverse of [`PartnerEnv::key_prefix`].
    pub fn from_key_prefix(bytes: &[u8]) -> Option<PartnerEnv> {
        let (partner, tag) = (bytes.get(..12)?, *bytes.get(12)?);
        let environment = Environment::ALL.into_iter().find(|environment| environment.tag() == tag)?;
        Some(PartnerEnv { partner_id: Id::from_slice(partner)?, environment })
    }
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PartnerStatus {
    PendingApproval,
    Active,
    Suspended,
    Closed,
}

impl PartnerStatus {
    /// The lifecycle PENDING_APPROVAL → ACTIVE ⇄ SUSPENDED → CLOSED (any open status may
    /// close; nothing returns to PENDING_APPROVAL or leaves CLOSED). Staying is a no-op.
    pub fn may_become(self, next: PartnerStatus) -> bool {
        use PartnerStatus::{Active, Closed, PendingApproval, Suspended};
        self == next
            || matches!((self, next), (PendingApproval, Active | Suspended | Closed) | (Active, Suspended | Closed) | (Suspended, Active | Closed))
    }
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Tier {
    Standard,
    Professional,
    Enterprise,
    Custom,
}

impl Tier {
    /// The seeds' tier table; CUSTOM has no default and keeps what the admin set.
    pub fn default_rate_limit(self) -> Option<RateLimit> {
        match self {
            Tier::Standard => Some(RateLimit { hourly: 1_000, per_minute: 100 }),
            Tier::Professional => Some(RateLimit { hourly: 5_000, per_minute: 500 }),
            Tier::Enterprise => Some(RateLimit { hourly: 20_000, per_minute: 2_000 }),
            Tier::Custom => None,
        }
    }
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    pub hourly: u32,
    pub per_minute: u32,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Feature {
    Donations,
    Actions,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TipConfig {
    pub enabled: bool,
    pub default_percent: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerRecord {
    pub id: Id,
    pub name: String,
    pub slug: String,
    pub legal_entity: Option<String>,
    pub contact_email: String,
    pub status: PartnerStatus,
    pub tier: Tier,
    pub rate_limit: RateLimit,
    pub enabled_features: Vec<Feature>,
    pub stakeholder_types: Vec<String>,
    /// Parsed when saved; stored as the blocks' text (the bytes of a list of strings).
    pub ip_allowlist: Vec<crate::domain::cidr::Cidr>,
    pub allowed_origins: Vec<String>,
    pub allow_basic_auth: bool,
    pub production_approved: bool,
    pub tip_config: TipConfig,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

impl PartnerRecord {
    pub fn has_feature(&self, feature: Feature) -> bool {
        self.enabled_features.contains(&feature)
    }
}

/// What a key may do (from the loyalty-platform seed).
// Stored as a bit set (`ScopeSet`).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "actions:read")]
    ActionsRead,
    #[serde(rename = "actions:write")]
    ActionsWrite,
    #[serde(rename = "users:read")]
    UsersRead,
    #[serde(rename = "users:write")]
    UsersWrite,
    #[serde(rename = "transactions:read")]
    TransactionsRead,
    #[serde(rename = "campaigns:read")]
    CampaignsRead,
    #[serde(rename = "campaigns:write")]
    CampaignsWrite,
    #[serde(rename = "pools:read")]
    PoolsRead,
    #[serde(rename = "pools:write")]
    PoolsWrite,
    #[serde(rename = "webhooks:read")]
    WebhooksRead,
    #[serde(rename = "webhooks:write")]
    WebhooksWrite,
    #[serde(rename = "dashboard:read")]
    DashboardRead,
}

impl Scope {
    pub const ALL: [Scope; 12] = [
        Scope::ActionsRead,
        Scope::ActionsWrite,
        Scope::UsersRead,
        Scope::UsersWrite,
        Scope::TransactionsRead,
        Scope::CampaignsRead,
        Scope::CampaignsWrite,
        Scope::PoolsRead,
        Scope::PoolsWrite,
        Scope::WebhooksRead,
        Scope::WebhooksWrite,
        Scope::DashboardRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ActionsRead => "actions:read",
            Scope::ActionsWrite => "actions:write",
            Scope::UsersRead => "users:read",
            Scope::UsersWrite => "users:write",
            Scope::TransactionsRead => "transactions:read",
            Scope::CampaignsRead => "campaigns:read",
            Scope::CampaignsWrite => "campaigns:write",
            Scope::PoolsRead => "pools:read",
            Scope::PoolsWrite => "pools:write",
            Scope::WebhooksRead => "webhooks:read",
            Scope::WebhooksWrite => "webhooks:write",
            Scope::DashboardRead => "dashboard:read",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == text)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// A publishable key may use the `*:read` scopes except `webhooks:read` (signed).
    pub fn allowed_for_publishable_key(self) -> bool {
        self.as_str().ends_with(":read") && self != Scope::WebhooksRead
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeSet(u16);

impl ScopeSet {
    pub fn all() -> ScopeSet {
        ScopeSet::from_scopes(&Scope::ALL)
    }

    pub fn from_scopes(scopes: &[Scope]) -> ScopeSet {
        ScopeSet(scopes.iter().fold(0, |bits, scope| bits | scope.bit()))
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn to_vec(self) -> Vec<Scope> {
        Scope::ALL.into_iter().filter(|scope| self.contains(*scope)).collect()
    }
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KeyStatus {
    Active,
    Inactive,
    Revoked,
}

/// One key pair. The `pk_`/`sk_` texts are stored only as SHA-256 digests; the display
/// hints (prefix and last four) are enough to recognise a key in a list. The HMAC secret is
/// sealed under the master key with the key id as associated data.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub id: Id,
    pub partner_id: Id,
    pub environment: Environment,
    pub name: String,
    pub public_key_digest: [u8; 32],
    pub secret_key_digest: [u8; 32],
    pub public_key_last4: String,
    pub secret_key_last4: String,
    pub hmac_secret_sealed: Vec<u8>,
    /// The publishable key, sealed like the HMAC secret: public by design (it ships in
    /// browsers), but not kept in clear; the portal's login shows it.
    pub public_key_sealed: Vec<u8>,
    pub scopes: ScopeSet,
    pub status: KeyStatus,
    pub expires_at_ms: Option<u64>,
    pub created_at_ms: u64,
    pub rotated_from: Option<Id>,
    /// Persisted from memory periodically; see `Engine::flush_key_usage`.
    pub last_used_at_ms: Option<u64>,
    /// `api_key.expiring` was emitted for this key.
    pub expiring_notified: bool,
}

impl std::fmt::Debug for ApiKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyRecord")
            .field("id", &self.id)
            .field("partner_id", &self.partner_id)
            .field("environment", &self.environment)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// Where a key digest points: the key record, and which half of the pair it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyDigestEntry {
    pub key_id: Id,
    pub kind: KeyKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    Publishable,
    Secret,
}

/// A token pool. Conservation, asserted on every write and read:
/// `allocated_total + refilled_total = balance + issued_total − reversed_total`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolRecord {
    pub id: Id,
    pub environment: Environment,
    pub name: Option<String>,
    pub balance: u64,
    pub allocated_total: u64,
    pub refilled_total: u64,
    pub issued_total: u64,
    pub reversed_total: u64,
    pub expires_at_ms: Option<u64>,
    pub vesting_days: Option<u32>,
    pub low_balance_threshold: Option<u64>,
    /// Set when `token_pool.low_balance` was emitted; cleared when the balance rises again.
    pub low_balance_notified: bool,
    /// Admin-approved automatic top-ups.
    pub auto_refill: Option<AutoRefill>,
    /// Refills done in `refill_month` (months since 1970-01).
    pub refills_in_month: u32,
    pub refill_month: u32,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

impl PoolRecord {
    /// An empty pool: nothing allocated, nothing issued.
    pub fn new(id: Id, environment: Environment, now_ms: u64) -> PoolRecord {
        PoolRecord {
            id,
            environment,
            name: None,
            balance: 0,
            allocated_total: 0,
            refilled_total: 0,
            issued_total: 0,
            reversed_total: 0,
            expires_at_ms: None,
            vesting_days: None,
            low_balance_threshold: None,
            low_balance_notified: false,
            auto_refill: None,
            refills_in_month: 0,
            refill_month: 0,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        }
    }

    /// `allocated + refilled = balance + issued − reversed`, and nothing reversed that was
    /// not issued.
    pub fn is_conserved(&self) -> bool {
        let funded = i128::from(self.allocated_total) + i128::from(self.refilled_total);
        let accounted = i128::from(self.balance) + i128::from(self.issued_total) - i128::from(self.reversed_total);
        self.reversed_total <= self.issued_total && funded == accounted
    }

    /// Panics when the pool's totals do not balance: issuing from a pool that cannot prove
    /// its balance would make money up.
    pub fn assert_conserved(&self) {
        assert!(
            self.is_conserved(),
            "pool {} does not balance: allocated {} + refilled {} != balance {} + issued {} - reversed {}",
            self.id,
            self.allocated_total,
            self.refilled_total,
            self.balance,
            self.issued_total,
            self.reversed_total
        );
    }

    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|expires_at_ms| expires_at_ms <= now_ms)
    }
}

/// An admin-approved allowance: when the balance falls below `threshold_tokens`, add
/// `refill_tokens`, at most `max_refills_per_month` times in a calendar month (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoRefill {
    pub threshold_tokens: u64,
    pub refill_tokens: u64,
    pub max_refills_per_month: u32,
}

/// One UTC day's totals, for the dashboard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyTotals {
    pub day: u32,
    pub actions: u64,
    pub issued: u64,
    pub reversed: u64,
}

/// Days of totals kept: the dashboard shows today and the last 30 days.
pub const DAILY_TOTALS_DAYS: usize = 31;

/// Per (partner, environment) bookkeeping owned by the partner actor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerEnvState {
    /// The sequence the next event gets; the first event is 1.
    pub next_event_sequence: u64,
    pub default_pool_id: Option<Id>,
    /// The last `DAILY_TOTALS_DAYS` days with activity, oldest first.
    pub daily: Vec<DailyTotals>,
}

impl PartnerEnvState {
    /// Adds to today's totals, forgetting days older than the window.
    pub fn count(&mut self, now_ms: u64, actions: u64, issued: u64, reversed: u64) {
        let today = (now_ms / DAY_MS) as u32;
        match self.daily.last_mut() {
            // A clock that stepped back counts into the newest day rather than reordering days.
            Some(last) if last.day >= today => {
                last.actions += actions;
                last.issued += issued;
                last.reversed += reversed;
            }
            _ => self.daily.push(DailyTotals { day: today, actions, issued, reversed }),
        }
        self.daily.retain(|totals| today.saturating_sub(totals.day) < DAILY_TOTALS_DAYS as u32);
    }
}

/// A partner's end user, keyed by the partner's own id for them (`externalId`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: Id,
    pub external_id: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub metadata_json: Option<Vec<u8>>,
    /// Everything credited minus everything reversed and redeemed, vested or not. Signed: a
    /// reversal after a redemption can leave it below zero. `available = balance − pending`.
    pub balance: i64,
    /// Unvested credit by the UTC day it vests on (days since 1970), oldest first.
    pub vesting: Vec<VestingBucket>,
    pub lifetime_earned: u64,
    pub lifetime_reversed: u64,
    pub lifetime_redeemed: u64,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

/// Tokens that vest at 00:00 UTC of `day` (days since 1970).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VestingBucket {
    pub day: u32,
    pub tokens: u64,
}

pub const DAY_MS: u64 = 86_400_000;

/// When tokens issued at `now_ms` from a pool with `vesting_days` vest: 00:00 UTC of the day
/// after `vesting_days` have passed (so a user's unvested credit needs one bucket per day).
pub fn vesting_day(now_ms: u64, vesting_days: u32) -> u32 {
    let vests_ms = now_ms + u64::from(vesting_days) * DAY_MS;
    u32::try_from(vests_ms.div_ceil(DAY_MS)).unwrap_or(u32::MAX)
}

impl UserRecord {
    /// Unvested tokens at `now_ms`.
    pub fn pending(&self, now_ms: u64) -> u64 {
        self.vesting.iter().filter(|bucket| u64::from(bucket.day) * DAY_MS > now_ms).map(|bucket| bucket.tokens).sum()
    }

    /// What the user may spend at `now_ms` (may be negative after a reversal).
    pub fn available(&self, now_ms: u64) -> i64 {
        self.balance - i64::try_from(self.pending(now_ms)).unwrap_or(i64::MAX)
    }

    /// Forgets buckets that have vested (their tokens are simply part of `balance` now).
    pub fn prune_vested(&mut self, now_ms: u64) {
        self.vesting.retain(|bucket| u64::from(bucket.day) * DAY_MS > now_ms);
    }

    pub fn add_vesting(&mut self, day: u32, tokens: u64) {
        match self.vesting.binary_search_by_key(&day, |bucket| bucket.day) {
            Ok(index) => self.vesting[index].tokens += tokens,
            Err(index) => self.vesting.insert(index, VestingBucket { day, tokens }),
        }
    }

    /// Takes up to `tokens` out of the bucket of `day` (a reversal of unvested credit);
    /// answers how many were taken.
    pub fn take_vesting(&mut self, day: u32, tokens: u64) -> u64 {
        let Ok(index) = self.vesting.binary_search_by_key(&day, |bucket| bucket.day) else {
            return 0;
        };
        let taken = self.vesting[index].tokens.min(tokens);
        self.vesting[index].tokens -= taken;
        if self.vesting[index].tokens == 0 {
            self.vesting.remove(index);
        }
        taken
    }

    /// A user with no profile and no tokens.
    pub fn new(id: Id, external_id: &str, now_ms: u64) -> UserRecord {
        UserRecord {
            id,
            external_id: external_id.to_owned(),
            email: None,
            first_name: None,
            last_name: None,
            metadata_json: None,
            balance: 0,
            vesting: Vec::new(),
            lifetime_earned: 0,
            lifetime_reversed: 0,
            lifetime_redeemed: 0,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        }
    }
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActionStatus {
    Completed,
    PartiallyReversed,
    Reversed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationRecord {
    pub partner_user_id: String,
    pub stakeholder_type_code: String,
    pub tokens: u64,
    pub transaction_id: Option<Id>,
    /// Tokens of this allocation reversed so far.
    pub reversed_tokens: u64,
    /// The UTC day the tokens vest on, when the pool vests.
    pub vesting_day: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRecord {
    pub id: Id,
    pub idempotency_key: String,
    pub action_type: String,
    /// Minor units and currency code.
    pub amount: Option<(u64, String)>,
    pub campaign_id: Option<Id>,
    /// The pool the tokens came from; `None` for a 0-token action with no pool to name.
    pub pool_id: Option<Id>,
    pub status: ActionStatus,
    pub tokens_distributed: u64,
    pub reversed_tokens: u64,
    pub allocations: Vec<AllocationRecord>,
    pub breakdown_json: Vec<u8>,
    pub metadata_json: Option<Vec<u8>>,
    pub request_id: String,
    pub created_at_ms: u64,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TransactionType {
    Reward,
    Reversal,
    Redemption,
    Allocation,
    Refill,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionRecord {
    pub id: Id,
    pub transaction_type: TransactionType,
    pub tokens: i64,
    pub action_id: Option<Id>,
    /// The pool tokens came from or went back to; `None` for a redemption.
    pub pool_id: Option<Id>,
    pub partner_user_id: Option<String>,
    pub stakeholder_type_code: Option<String>,
    pub campaign_id: Option<Id>,
    pub vests_at_ms: Option<u64>,
    pub created_at_ms: u64,
}

/// What an idempotency key was used for, so a replay answers the original response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub request_hash: [u8; 32],
    pub resource_id: Id,
    pub response_json: Vec<u8>,
    pub request_id: String,
    /// What the original write did (a new pool, or a refill; a submit applies). Stored as
    /// the number it was stored as before it had a type, so older records read the same.
    pub effect: Effect,
    pub created_at_ms: u64,
}

/// What a write did: made a new resource, or applied to what exists (a submit, a refill, an
/// update, a deletion). The front answers `201 Created` or `200 OK` for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "u16", try_from = "u16")]
pub enum Effect {
    Created,
    Applied,
}

impl From<Effect> for u16 {
    fn from(effect: Effect) -> u16 {
        match effect {
            Effect::Created => 201,
            Effect::Applied => 200,
        }
    }
}

impl TryFrom<u16> for Effect {
    type Error = String;

    fn try_from(stored: u16) -> Result<Effect, String> {
        match stored {
            201 => Ok(Effect::Created),
            200 => Ok(Effect::Applied),
            other => Err(format!("{other} is not a stored write effect")),
        }
    }
}

/// Namespaces of idempotency keys within one (partner, environment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdempotencyScope {
    ActionSubmit = 1,
    PoolAllocation = 2,
    Reversal = 3,
    Redemption = 4,
    /// An announcement (`services/announcements.rs`) recorded in this feed, by its id: the
    /// mark that records it at most once, whichever node delivers it (cluster mode).
    AnnouncementRecorded = 5,
}

impl IdempotencyScope {
    pub const ALL: [IdempotencyScope; 5] = [
        IdempotencyScope::ActionSubmit,
        IdempotencyScope::PoolAllocation,
        IdempotencyScope::Reversal,
        IdempotencyScope::Redemption,
        IdempotencyScope::AnnouncementRecorded,
    ];
}

/// An event as stored in the outbox and feed: the envelope is rendered once, at commit,
/// so every delivery and every feed read shows the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    pub id: Id,
    pub sequence: u64,
    pub event_type: crate::webhooks::EventType,
    pub created_at_ms: u64,
    pub envelope_json: Vec<u8>,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CampaignStatus {
    Draft,
    Active,
    Paused,
    Ended,
}

impl CampaignStatus {
    /// DRAFT → ACTIVE ⇄ PAUSED → ENDED (any open status may end; nothing leaves ENDED).
    pub fn may_become(self, next: CampaignStatus) -> bool {
        use CampaignStatus::{Active, Draft, Ended, Paused};
        self == next || matches!((self, next), (Draft, Active | Ended) | (Active, Paused | Ended) | (Paused, Active | Ended))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignTier {
    /// The minimum amount in ten-thousandths of a major unit.
    pub min_amount_ten_thousandths: u64,
    pub multiplier_ten_thousandths: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignSplit {
    pub stakeholder_type_code: String,
    pub percent: u8,
}

/// A partner's reward rule: which actions it applies to, and how it turns them into tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignRecord {
    pub id: Id,
    pub name: String,
    pub status: CampaignStatus,
    /// Empty: every action type.
    pub action_types: Vec<String>,
    pub priority: i32,
    pub multiplier_ten_thousandths: u64,
    pub tiers: Vec<CampaignTier>,
    pub fixed_tokens: Option<u64>,
    pub max_tokens_per_action: Option<u64>,
    /// Empty: equal split among the action's stakeholders.
    pub splits: Vec<CampaignSplit>,
    pub starts_at_ms: Option<u64>,
    pub ends_at_ms: Option<u64>,
    pub budget_tokens: Option<u64>,
    pub budget_remaining: Option<u64>,
    pub token_pool_id: Option<Id>,
    /// Empty: every currency.
    pub currencies: Vec<String>,
    pub metadata_json: Option<Vec<u8>>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

#[cfg(test)]
mod tests {
    use serde::Serialize;

    use super::*;
    use crate::store::codec::{decode, encode};

    /// `IdempotencyRecord` as stored before its effect had a type.
    #[derive(Serialize)]
    struct StoredBefore {
        request_hash: [u8; 32],
        resource_id: Id,
        response_json: Vec<u8>,
        request_id: String,
        status_code: u16,
        created_at_ms: u64,
    }

    #[test]
    fn a_typed_effect_is_stored_as_the_status_it_replaced() {
        let id = crate::domain::ids::IdGenerator::new().next(1);
        for (effect, status_code) in [(Effect::Created, 201), (Effect::Applied, 200)] {
            let record = IdempotencyRecord {
                request_hash: [3; 32],
                resource_id: id,
                response_json: b"{}".to_vec(),
                request_id: "req_1".into(),
                effect,
                created_at_ms: 9,
            };
            let before = StoredBefore {
                request_hash: [3; 32],
                resource_id: id,
                response_json: b"{}".to_vec(),
                request_id: "req_1".into(),
                status_code,
                created_at_ms: 9,
            };
            assert_eq!(encode(&record), encode(&before));
            assert_eq!(decode::<IdempotencyRecord>(&encode(&before)).expect("reads"), record);
        }
        let unknown = StoredBefore {
            request_hash: [0; 32],
            resource_id: id,
            response_json: Vec::new(),
            request_id: String::new(),
            status_code: 404,
            created_at_ms: 0,
        };
        assert!(decode::<IdempotencyRecord>(&encode(&unknown)).is_err(), "a number no write stored does not read");
    }
}
