//! Typed records: the one way code outside `store/` names what it stores. A caller asks
//! for a record by what identifies it (`records::user(&partner_env, "alice")`) and gets a
//! [`RecordKey`] typed by the record it holds, which it reads through the store
//! ([`RecordKey::get`]) or turns into a write-set entry ([`RecordKey::put`],
//! [`RecordKey::delete`]); a list is a [`Records`] range scanned in pages of [`Row`]s.
//!
//! Invariant: nothing outside `store/` sees a key layout. The key bytes come from
//! `store::layout`, private to the store, and the value bytes from `store::codec`, which
//! only the store calls (besides stored-format unit tests), so a caller cannot build a key of
//! one partner from another's prefix, put a pool under a user's key, or encode a value at
//! the wrong version: tenancy and the stored format are decided here and in `layout.rs`. `tests/it/boundaries.rs` fails on a file outside `store/`
//! that names the layout. This module adds types, not bytes: every key and value is
//! byte for byte what `layout` and `codec` produce.

use std::marker::PhantomData;

use crate::domain::ids::Id;
use crate::domain::model::{
    ActionRecord, ApiKeyRecord, CampaignRecord, EventRecord, IdempotencyRecord, IdempotencyScope, KeyDigestEntry, PartnerEnv, PartnerEnvState,
    PartnerRecord, PoolRecord, TransactionRecord, UserRecord,
};
use crate::services::announcements::Announcement;
use crate::services::donations::{DonationRecord, OrganizationRecord};
use crate::services::pool_requests::PoolRequestRecord;
use crate::services::portal::{AccountRecord, RefreshTokenRecord};
use crate::store::codec::{self, CodecError};
use crate::store::layout;
use crate::store::{Scan, ScanOrder, Store, StoreError, WriteOp};
use crate::webhooks::{DeliveryRecord, EndpointRecord, HealthRecord};

/// How a value is stored. Records are versioned bincode (`store::codec`); a few index and
/// meta entries hold raw bytes (an id, an external id, a digest or a sealed secret), as they
/// always have.
pub trait StoredValue: Sized {
    fn to_bytes(&self) -> Vec<u8>;
    fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError>;
}

/// Records stored through the codec, one version byte then bincode.
macro_rules! encoded_records {
    ($($record:ty),* $(,)?) => {
        $(
            impl StoredValue for $record {
                fn to_bytes(&self) -> Vec<u8> {
                    codec::encode(self)
                }

                fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
                    codec::decode(bytes)
                }
            }
        )*
    };
}

encoded_records!(
    AccountRecord,
    ActionRecord,
    Announcement,
    ApiKeyRecord,
    CampaignRecord,
    DeliveryRecord,
    DonationRecord,
    EndpointRecord,
    EventRecord,
    HealthRecord,
    IdempotencyRecord,
    KeyDigestEntry,
    OrganizationRecord,
    PartnerEnvState,
    PartnerRecord,
    PoolRecord,
    PoolRequestRecord,
    RefreshTokenRecord,
    TransactionRecord,
    UserRecord,
);

/// An id index entry (a slug's or an email's record): the id's 12 raw bytes.
impl StoredValue for Id {
    fn to_bytes(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        Id::from_slice(bytes).ok_or_else(|| CodecError::Decode(format!("an id index entry of {} bytes, not {}", bytes.len(), Id::LEN)))
    }
}

/// The users-by-creation index: a user's external id, as raw UTF-8.
impl StoredValue for String {
    fn to_bytes(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        String::from_utf8(bytes.to_vec()).map_err(|error| CodecError::Decode(error.to_string()))
    }
}

/// A meta entry: raw bytes (a digest, or a value sealed under the master key).
impl StoredValue for Vec<u8> {
    fn to_bytes(&self) -> Vec<u8> {
        self.clone()
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        Ok(bytes.to_vec())
    }
}

/// Index entries whose key says everything: the value is empty.
macro_rules! key_only_entries {
    ($($(#[$doc:meta])* $entry:ident),* $(,)?) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy, PartialEq, Eq)]
            pub struct $entry;

            impl StoredValue for $entry {
                fn to_bytes(&self) -> Vec<u8> {
                    Vec::new()
                }

                fn from_bytes(_: &[u8]) -> Result<Self, CodecError> {
                    Ok($entry)
                }
            }
        )*
    };
}

key_only_entries!(
    /// A user's transaction, in the per-user ledger index.
    UserTransactionEntry,
    /// A partner's key, in the partner's key index.
    PartnerKeyEntry,
    /// A delivery waiting in an endpoint's outbox queue, by due time.
    QueueEntry,
);

/// Why a record could not be read: the store failed, or its value does not decode.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Decode(#[from] CodecError),
}

/// The key of one record holding a `T`. Its bytes never leave the store.
pub struct RecordKey<T> {
    key: Vec<u8>,
    record: PhantomData<fn() -> T>,
}

impl<T> Clone for RecordKey<T> {
    fn clone(&self) -> RecordKey<T> {
        RecordKey { key: self.key.clone(), record: PhantomData }
    }
}

impl<T: StoredValue> RecordKey<T> {
    fn new(key: Vec<u8>) -> RecordKey<T> {
        RecordKey { key, record: PhantomData }
    }

    /// The stored record, `None` when there is none.
    pub fn get(&self, store: &dyn Store) -> Result<Option<T>, RecordError> {
        let bytes = store.get(&self.key)?;
        Ok(bytes.map(|bytes| T::from_bytes(&bytes)).transpose()?)
    }

    /// Whether a record is stored, without decoding it.
    pub fn exists(&self, store: &dyn Store) -> Result<bool, StoreError> {
        Ok(store.get(&self.key)?.is_some())
    }

    /// The write that stores `record` under this key.
    pub fn put(self, record: &T) -> WriteOp {
        WriteOp::Put { key: self.key, value: record.to_bytes() }
    }

    /// The write that removes this record.
    pub fn delete(self) -> WriteOp {
        WriteOp::Delete { key: self.key }
    }

    pub(in crate::store) fn bytes(&self) -> &[u8] {
        &self.key
    }
}

/// The records of one kind under one owner (a partner, an endpoint, or everyone), in key
/// order: ids are time-ordered, so ascending is creation order.
pub struct Records<T> {
    prefix: Vec<u8>,
    record: PhantomData<fn() -> T>,
}

/// One scanned record, decoded when asked, so a scan that only counts or deletes rows
/// decodes nothing and one bad value does not hide the others.
pub struct Row<T> {
    pub key: RecordKey<T>,
    value: Vec<u8>,
}

impl<T: StoredValue> Row<T> {
    pub fn record(&self) -> Result<T, CodecError> {
        T::from_bytes(&self.value)
    }
}

impl<T: StoredValue> Records<T> {
    fn new(prefix: Vec<u8>) -> Records<T> {
        Records { prefix, record: PhantomData }
    }

    /// The first `limit` rows in `order`.
    pub fn scan(&self, store: &dyn Store, order: ScanOrder, limit: usize) -> Result<Vec<Row<T>>, StoreError> {
        self.scan_after(store, None, order, limit)
    }

    /// The next `limit` rows in `order` past `after` (a row an earlier page ended with).
    pub fn scan_after(&self, store: &dyn Store, after: Option<&RecordKey<T>>, order: ScanOrder, limit: usize) -> Result<Vec<Row<T>>, StoreError> {
        let pairs = store.scan(Scan { prefix: &self.prefix, after: after.map(RecordKey::bytes), order, limit })?;
        Ok(pairs.into_iter().map(|(key, value)| Row { key: RecordKey::new(key), value }).collect())
    }

    /// The first `limit` records in `order`, decoded; the first value that does not decode
    /// fails the whole read.
    pub fn read(&self, store: &dyn Store, order: ScanOrder, limit: usize) -> Result<Vec<T>, RecordError> {
        let rows = self.scan(store, order, limit)?;
        Ok(rows.iter().map(Row::record).collect::<Result<Vec<T>, CodecError>>()?)
    }

    /// The key in this range of the entry keyed by `id` (a page's cursor).
    pub fn key_of(&self, id: Id) -> RecordKey<T> {
        RecordKey::new([self.prefix.as_slice(), id.as_bytes()].concat())
    }
}

impl RecordKey<Vec<u8>> {
    /// A raw meta entry: it always decodes, so only the store can fail.
    pub fn get_bytes(&self, store: &dyn Store) -> Result<Option<Vec<u8>>, StoreError> {
        store.get(&self.key)
    }
}

impl RecordKey<PartnerKeyEntry> {
    /// The key (pair) this index entry names.
    pub fn key_id(&self) -> Option<Id> {
        Id::from_slice(&self.key[self.key.len().checked_sub(Id::LEN)?..])
    }
}

impl RecordKey<UserTransactionEntry> {
    /// The transaction this per-user ledger entry names.
    pub fn transaction_id(&self) -> Option<Id> {
        Id::from_slice(&self.key[self.key.len().checked_sub(Id::LEN)?..])
    }
}

impl RecordKey<QueueEntry> {
    /// The due time and the delivery of this queue row.
    pub fn due_ms_and_delivery(&self) -> Option<(u64, Id)> {
        layout::parse_webhook_queue(&self.key)
    }
}

impl RecordKey<EndpointRecord> {
    /// The (partner, environment) that owns this endpoint.
    pub fn partner_env(&self) -> Option<PartnerEnv> {
        layout::parse_webhook_endpoint(&self.key).map(|(partner_env, _)| partner_env)
    }
}

// Operator-side records, keyed by their own id (or name) alone.

pub fn partner(partner_id: Id) -> RecordKey<PartnerRecord> {
    RecordKey::new(layout::partner(partner_id))
}

pub fn partners() -> Records<PartnerRecord> {
    Records::new(layout::partners_prefix())
}

/// A slug's partner id (slugs are unique).
pub fn partner_slug(slug: &str) -> RecordKey<Id> {
    RecordKey::new(layout::partner_slug(slug))
}

pub fn api_key(key_id: Id) -> RecordKey<ApiKeyRecord> {
    RecordKey::new(layout::api_key(key_id))
}

pub fn api_keys() -> Records<ApiKeyRecord> {
    Records::new(layout::api_keys_prefix())
}

/// A key's digest (of its publishable or its secret key) → the key it belongs to.
pub fn key_digest(digest: &[u8; 32]) -> RecordKey<KeyDigestEntry> {
    RecordKey::new(layout::key_digest(digest))
}

pub fn partner_key(partner_id: Id, key_id: Id) -> RecordKey<PartnerKeyEntry> {
    RecordKey::new(layout::partner_key(partner_id, key_id))
}

/// A partner's keys (both environments), in key id order.
pub fn partner_keys(partner_id: Id) -> Records<PartnerKeyEntry> {
    Records::new(layout::partner_keys_prefix(partner_id))
}

pub fn account(account_id: Id) -> RecordKey<AccountRecord> {
    RecordKey::new(layout::account(account_id))
}

/// An email's account id (emails are unique, lower case).
pub fn account_email(email: &str) -> RecordKey<Id> {
    RecordKey::new(layout::account_email(email))
}

/// A refresh token, by the SHA-256 of the token.
pub(crate) fn refresh_token(digest: &[u8; 32]) -> RecordKey<RefreshTokenRecord> {
    RecordKey::new(layout::refresh_token(digest))
}

pub fn pool_request(request_id: Id) -> RecordKey<PoolRequestRecord> {
    RecordKey::new(layout::pool_request(request_id))
}

pub fn pool_requests() -> Records<PoolRequestRecord> {
    Records::new(layout::pool_requests_prefix())
}

pub(crate) fn announcement(announcement_id: Id) -> RecordKey<Announcement> {
    RecordKey::new(layout::announcement(announcement_id))
}

impl RecordKey<Announcement> {
    /// The announcement's id (its key is the table byte and the id).
    pub(crate) fn id(&self) -> Option<Id> {
        Id::from_slice(self.key.get(1..)?)
    }
}

pub(crate) fn announcements() -> Records<Announcement> {
    Records::new(layout::announcements_prefix())
}

pub fn organization(slug: &str) -> RecordKey<OrganizationRecord> {
    RecordKey::new(layout::organization(slug))
}

pub fn donation(donation_id: Id) -> RecordKey<DonationRecord> {
    RecordKey::new(layout::donation(donation_id))
}

/// The SHA-256 of the admin token (32 raw bytes), stored at a first start.
pub fn admin_token_digest() -> RecordKey<Vec<u8>> {
    RecordKey::new(layout::admin_token_digest())
}

/// The portal's token-signing secret, sealed under the master key.
pub fn portal_secret() -> RecordKey<Vec<u8>> {
    RecordKey::new(layout::portal_secret())
}

/// A known value sealed under the master key, to refuse another key at start.
pub fn master_key_check() -> RecordKey<Vec<u8>> {
    RecordKey::new(layout::master_key_check())
}

/// Cluster mode: a fresh id written with every change to keys or partners; nodes empty their
/// auth caches when they see it change (`cluster::membership`).
pub fn auth_epoch() -> RecordKey<Vec<u8>> {
    RecordKey::new(layout::auth_epoch())
}

/// Whether a write set changes what a presented key authenticates as (keys, digests, partners).
pub fn changes_auth(write_set: &[WriteOp]) -> bool {
    write_set.iter().any(|op| layout::changes_auth(op.key()))
}

// A partner's records in one environment: every key starts with its (partner, environment)
// prefix.

pub fn partner_env_state(partner_env: &PartnerEnv) -> RecordKey<PartnerEnvState> {
    RecordKey::new(layout::partner_env_state(partner_env))
}

pub fn pool(partner_env: &PartnerEnv, pool_id: Id) -> RecordKey<PoolRecord> {
    RecordKey::new(layout::pool(partner_env, pool_id))
}

pub fn pools(partner_env: &PartnerEnv) -> Records<PoolRecord> {
    Records::new(layout::pools_prefix(partner_env))
}

pub fn campaign(partner_env: &PartnerEnv, campaign_id: Id) -> RecordKey<CampaignRecord> {
    RecordKey::new(layout::campaign(partner_env, campaign_id))
}

pub fn campaigns(partner_env: &PartnerEnv) -> Records<CampaignRecord> {
    Records::new(layout::campaigns_prefix(partner_env))
}

/// A user, by the partner's external id.
pub fn user(partner_env: &PartnerEnv, external_id: &str) -> RecordKey<UserRecord> {
    RecordKey::new(layout::user(partner_env, external_id))
}

/// The users-by-creation index entry of a new user: its external id.
pub fn user_by_creation(partner_env: &PartnerEnv, user_id: Id) -> RecordKey<String> {
    RecordKey::new(layout::user_by_creation(partner_env, user_id))
}

/// The users-by-creation index of a (partner, environment): entries hold external ids.
pub fn users_by_creation(partner_env: &PartnerEnv) -> Records<String> {
    Records::new(layout::users_by_creation_prefix(partner_env))
}

pub fn actions(partner_env: &PartnerEnv) -> Records<ActionRecord> {
    Records::new(layout::actions_prefix(partner_env))
}

pub fn transactions(partner_env: &PartnerEnv) -> Records<TransactionRecord> {
    Records::new(layout::transactions_prefix(partner_env))
}

/// One user's ledger index: entries name transactions by the key's last id.
pub fn user_transactions(partner_env: &PartnerEnv, external_id: &str) -> Records<UserTransactionEntry> {
    Records::new(layout::user_transactions_prefix(partner_env, external_id))
}

/// The event feed of a (partner, environment), in sequence order.
pub fn events(partner_env: &PartnerEnv) -> Records<EventRecord> {
    Records::new(layout::events_prefix(partner_env))
}

pub fn action(partner_env: &PartnerEnv, action_id: Id) -> RecordKey<ActionRecord> {
    RecordKey::new(layout::action(partner_env, action_id))
}

pub fn transaction(partner_env: &PartnerEnv, transaction_id: Id) -> RecordKey<TransactionRecord> {
    RecordKey::new(layout::transaction(partner_env, transaction_id))
}

/// The per-user ledger index entry of a transaction.
pub fn user_transaction(partner_env: &PartnerEnv, external_id: &str, transaction_id: Id) -> RecordKey<UserTransactionEntry> {
    RecordKey::new(layout::user_transaction(partner_env, external_id, transaction_id))
}

/// The stored answer of an idempotent write.
pub fn idempotency(partner_env: &PartnerEnv, scope: IdempotencyScope, idempotency_key: &str) -> RecordKey<IdempotencyRecord> {
    RecordKey::new(layout::idempotency(partner_env, scope, idempotency_key))
}

/// An event of the feed, by its sequence.
pub fn event(partner_env: &PartnerEnv, sequence: u64) -> RecordKey<EventRecord> {
    RecordKey::new(layout::event(partner_env, sequence))
}

pub fn webhook_endpoint(partner_env: &PartnerEnv, endpoint_id: Id) -> RecordKey<EndpointRecord> {
    RecordKey::new(layout::webhook_endpoint(partner_env, endpoint_id))
}

pub fn webhook_endpoints(partner_env: &PartnerEnv) -> Records<EndpointRecord> {
    Records::new(layout::webhook_endpoints_prefix(partner_env))
}

/// Every partner's endpoints (the dispatcher's sweep).
pub fn all_webhook_endpoints() -> Records<EndpointRecord> {
    Records::new(layout::all_webhook_endpoints_prefix())
}

pub fn webhook_delivery(partner_env: &PartnerEnv, endpoint_id: Id, delivery_id: Id) -> RecordKey<DeliveryRecord> {
    RecordKey::new(layout::webhook_delivery(partner_env, endpoint_id, delivery_id))
}

/// An endpoint's deliveries, in id (time) order.
pub fn webhook_deliveries(partner_env: &PartnerEnv, endpoint_id: Id) -> Records<DeliveryRecord> {
    Records::new(layout::webhook_deliveries_prefix(partner_env, endpoint_id))
}

/// A delivery's row in its endpoint's outbox queue, due at `due_ms`.
pub fn webhook_queue_row(partner_env: &PartnerEnv, endpoint_id: Id, due_ms: u64, delivery_id: Id) -> RecordKey<QueueEntry> {
    RecordKey::new(layout::webhook_queue(partner_env, endpoint_id, due_ms, delivery_id))
}

/// An endpoint's outbox queue, soonest due first.
pub fn webhook_queue(partner_env: &PartnerEnv, endpoint_id: Id) -> Records<QueueEntry> {
    Records::new(layout::webhook_queue_prefix(partner_env, endpoint_id))
}

/// The dispatcher's health record of an endpoint.
pub fn webhook_health(partner_env: &PartnerEnv, endpoint_id: Id) -> RecordKey<HealthRecord> {
    RecordKey::new(layout::webhook_health(partner_env, endpoint_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::IdGenerator;
    use crate::domain::model::Environment;

    /// Typed keys and values are the layout's and the codec's bytes, unchanged.
    #[test]
    fn typed_records_store_the_layouts_bytes() {
        let ids = IdGenerator::new();
        let (partner_id, user_id, transaction_id) = (ids.next(1), ids.next(2), ids.next(3));
        let partner_env = PartnerEnv::new(partner_id, Environment::Sandbox);
        let put = |op: WriteOp| match op {
            WriteOp::Put { key, value } => (key, value),
            WriteOp::Delete { .. } => panic!("a put"),
        };
        assert_eq!(
            put(user_by_creation(&partner_env, user_id).put(&"alice".to_owned())),
            (layout::user_by_creation(&partner_env, user_id), b"alice".to_vec())
        );
        assert_eq!(put(partner_slug("acme").put(&partner_id)), (layout::partner_slug("acme"), partner_id.as_bytes().to_vec()));
        assert_eq!(
            put(user_transaction(&partner_env, "alice", transaction_id).put(&UserTransactionEntry)),
            (layout::user_transaction(&partner_env, "alice", transaction_id), Vec::new())
        );
        let state = PartnerEnvState { next_event_sequence: 7, ..PartnerEnvState::default() };
        assert_eq!(put(partner_env_state(&partner_env).put(&state)), (layout::partner_env_state(&partner_env), codec::encode(&state)));
        assert_eq!(partner_key(partner_id, transaction_id).key_id(), Some(transaction_id));
        assert_eq!(webhook_queue_row(&partner_env, user_id, 42, transaction_id).due_ms_and_delivery(), Some((42, transaction_id)));
        assert!(matches!(partner_env_state(&partner_env).delete(), WriteOp::Delete { key } if key == layout::partner_env_state(&partner_env)));
    }
}
