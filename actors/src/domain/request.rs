//! Validated requests: what the front hands the engine after parsing JSON. Every field is
//! already within its bound; the types here can only be built valid.
//!
//! [`ActionRequest::fingerprint`] is the SHA-256 that decides whether a reused idempotency
//! key carries the same request: fields in a fixed order, each length-prefixed, absent and
//! null alike, `amount` as exact minor units plus currency (so `49.99` equals `49.990`).

use sha2::{Digest, Sha256};

use crate::domain::ids::Id;
use crate::domain::money::Money;

/// 1–255 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const BYTES_MAX: usize = 255;

    pub fn parse(text: &str) -> Option<IdempotencyKey> {
        let valid = (1..=Self::BYTES_MAX).contains(&text.len()) && text.bytes().all(|byte| (0x20..=0x7e).contains(&byte));
        valid.then(|| IdempotencyKey(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A partner's id for its user: 1–128 characters of `A-Z a-z 0-9 . _ : @ -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartnerUserId(String);

impl PartnerUserId {
    pub const CHARS_MAX: usize = 128;

    pub fn parse(text: &str) -> Option<PartnerUserId> {
        let valid = (1..=Self::CHARS_MAX).contains(&text.len())
            && text.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b':' | b'@' | b'-'));
        valid.then(|| PartnerUserId(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stakeholder {
    pub stakeholder_type_code: String,
    pub partner_user_id: PartnerUserId,
    pub user_email: Option<String>,
    pub user_first_name: Option<String>,
    pub user_last_name: Option<String>,
}

/// `POST /v1/partner/actions/submit`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRequest {
    pub idempotency_key: IdempotencyKey,
    pub action_type: String,
    pub amount: Option<Money>,
    pub campaign_id: Option<Id>,
    /// 1–20 stakeholders, no `partnerUserId` twice.
    pub stakeholders: Vec<Stakeholder>,
    pub auto_create_users: bool,
    /// Canonical JSON (object keys sorted), at most 4 KiB.
    pub metadata_json: Option<Vec<u8>>,
}

/// Builds a request fingerprint from tagged, length-prefixed fields.
struct Fingerprint(Sha256);

impl Fingerprint {
    fn new(kind: &str) -> Fingerprint {
        let mut fingerprint = Fingerprint(Sha256::new());
        fingerprint.field("kind", Some(kind.as_bytes()));
        fingerprint
    }

    fn field(&mut self, name: &str, value: Option<&[u8]>) {
        self.0.update((name.len() as u32).to_be_bytes());
        self.0.update(name.as_bytes());
        match value {
            None => self.0.update([0]),
            Some(bytes) => {
                self.0.update([1]);
                self.0.update((bytes.len() as u64).to_be_bytes());
                self.0.update(bytes);
            }
        }
    }

    fn number(&mut self, name: &str, value: Option<u64>) {
        self.field(name, value.map(u64::to_be_bytes).as_ref().map(|bytes| bytes.as_slice()));
    }

    fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

impl ActionRequest {
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut fingerprint = Fingerprint::new("action");
        fingerprint.field("idempotencyKey", Some(self.idempotency_key.as_str().as_bytes()));
        fingerprint.field("actionType", Some(self.action_type.as_bytes()));
        fingerprint.number("amountMinor", self.amount.map(|money| money.minor));
        fingerprint.field("currency", self.amount.as_ref().map(|money| money.currency.code().as_bytes()));
        fingerprint.field("campaignId", self.campaign_id.as_ref().map(|id| id.as_bytes().as_slice()));
        fingerprint.number("stakeholders", Some(self.stakeholders.len() as u64));
        for stakeholder in &self.stakeholders {
            fingerprint.field("stakeholderTypeCode", Some(stakeholder.stakeholder_type_code.as_bytes()));
            fingerprint.field("partnerUserId", Some(stakeholder.partner_user_id.as_str().as_bytes()));
            fingerprint.field("userEmail", stakeholder.user_email.as_deref().map(str::as_bytes));
            fingerprint.field("userFirstName", stakeholder.user_first_name.as_deref().map(str::as_bytes));
            fingerprint.field("userLastName", stakeholder.user_last_name.as_deref().map(str::as_bytes));
        }
        fingerprint.field("autoCreateUsers", Some(&[u8::from(self.auto_create_users)]));
        fingerprint.field("metadata", self.metadata_json.as_deref());
        fingerprint.finish()
    }

    pub fn stakeholder_types(&self) -> Vec<&str> {
        self.stakeholders.iter().map(|stakeholder| stakeholder.stakeholder_type_code.as_str()).collect()
    }
}

/// `POST /api/v1/admin/partners/:id/token-pools`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocationRequest {
    pub idempotency_key: IdempotencyKey,
    pub tokens: u64,
    pub pool_id: Option<Id>,
    /// Creates another pool instead of topping up the default one (ours; excludes `pool_id`).
    pub new_pool: bool,
    pub name: Option<String>,
    pub expires_at_ms: Option<u64>,
    pub vesting_days: Option<u32>,
    pub low_balance_threshold: Option<u64>,
    pub auto_refill: Option<crate::domain::model::AutoRefill>,
}

impl AllocationRequest {
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut fingerprint = Fingerprint::new("allocation");
        fingerprint.field("idempotencyKey", Some(self.idempotency_key.as_str().as_bytes()));
        fingerprint.number("tokens", Some(self.tokens));
        fingerprint.field("poolId", self.pool_id.as_ref().map(|id| id.as_bytes().as_slice()));
        fingerprint.field("newPool", Some(&[u8::from(self.new_pool)]));
        fingerprint.field("name", self.name.as_deref().map(str::as_bytes));
        fingerprint.number("expiresAt", self.expires_at_ms);
        fingerprint.number("vestingDays", self.vesting_days.map(u64::from));
        fingerprint.number("lowBalanceThreshold", self.low_balance_threshold);
        fingerprint.number("autoRefillThreshold", self.auto_refill.map(|refill| refill.threshold_tokens));
        fingerprint.number("autoRefillTokens", self.auto_refill.map(|refill| refill.refill_tokens));
        fingerprint.number("autoRefillMax", self.auto_refill.map(|refill| u64::from(refill.max_refills_per_month)));
        fingerprint.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::Currency;

    fn request(minor: u64) -> ActionRequest {
        ActionRequest {
            idempotency_key: IdempotencyKey::parse("order_1").expect("valid"),
            action_type: "PURCHASE".into(),
            amount: Some(Money { minor, currency: Currency::from_code("USD").expect("USD") }),
            campaign_id: None,
            stakeholders: vec![Stakeholder {
                stakeholder_type_code: "CUSTOMER".into(),
                partner_user_id: PartnerUserId::parse("user_42").expect("valid"),
                user_email: None,
                user_first_name: None,
                user_last_name: None,
            }],
            auto_create_users: true,
            metadata_json: None,
        }
    }

    #[test]
    fn fingerprints_differ_when_any_field_differs() {
        let base = request(4999);
        assert_eq!(base.fingerprint(), request(4999).fingerprint());
        assert_ne!(base.fingerprint(), request(5000).fingerprint());
        let mut with_metadata = request(4999);
        with_metadata.metadata_json = Some(b"{}".to_vec());
        assert_ne!(base.fingerprint(), with_metadata.fingerprint());
        let mut with_email = request(4999);
        with_email.stakeholders[0].user_email = Some(String::new());
        assert_ne!(base.fingerprint(), with_email.fingerprint(), "an empty string is not null");
    }

    #[test]
    fn keys_and_user_ids_have_their_bounds() {
        assert!(IdempotencyKey::parse("").is_none());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_some());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_none());
        assert!(IdempotencyKey::parse("tab\there").is_none());
        assert!(PartnerUserId::parse("jane.doe@example.com").is_some());
        assert!(PartnerUserId::parse("user 42").is_none());
        assert!(PartnerUserId::parse(&"u".repeat(129)).is_none());
    }
}

/// `POST /v1/partner/actions/:id/reverse`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReversalRequest {
    pub idempotency_key: IdempotencyKey,
    pub action_id: Id,
    /// `None`: everything that remains.
    pub tokens: Option<u64>,
    pub reason: String,
}

impl ReversalRequest {
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut fingerprint = Fingerprint::new("reversal");
        fingerprint.field("idempotencyKey", Some(self.idempotency_key.as_str().as_bytes()));
        fingerprint.field("actionId", Some(self.action_id.as_bytes().as_slice()));
        fingerprint.number("tokens", self.tokens);
        fingerprint.field("reason", Some(self.reason.as_bytes()));
        fingerprint.finish()
    }
}

/// `POST /v1/partner/users/:externalId/redeem`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedemptionRequest {
    pub idempotency_key: IdempotencyKey,
    pub partner_user_id: PartnerUserId,
    pub tokens: u64,
    pub reason: String,
}

impl RedemptionRequest {
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut fingerprint = Fingerprint::new("redemption");
        fingerprint.field("idempotencyKey", Some(self.idempotency_key.as_str().as_bytes()));
        fingerprint.field("partnerUserId", Some(self.partner_user_id.as_str().as_bytes()));
        fingerprint.number("tokens", Some(self.tokens));
        fingerprint.field("reason", Some(self.reason.as_bytes()));
        fingerprint.finish()
    }
}

/// A user's profile fields; on a patch, `None` leaves a field and `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserProfile {
    pub email: Option<Option<String>>,
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub metadata_json: Option<Option<Vec<u8>>>,
}

/// A campaign's fields, validated; on a patch, `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CampaignFields {
    pub name: Option<String>,
    pub status: Option<crate::domain::model::CampaignStatus>,
    pub action_types: Option<Vec<String>>,
    pub priority: Option<i32>,
    pub multiplier_ten_thousandths: Option<u64>,
    pub tiers: Option<Vec<crate::domain::model::CampaignTier>>,
    pub fixed_tokens: Option<Option<u64>>,
    pub max_tokens_per_action: Option<Option<u64>>,
    pub splits: Option<Vec<crate::domain::model::CampaignSplit>>,
    pub starts_at_ms: Option<Option<u64>>,
    pub ends_at_ms: Option<Option<u64>>,
    pub budget_tokens: Option<Option<u64>>,
    pub token_pool_id: Option<Option<Id>>,
    pub currencies: Option<Vec<String>>,
    pub metadata_json: Option<Option<Vec<u8>>>,
}
