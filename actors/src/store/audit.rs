//! The offline audit of the books (`reward-engine verify`; a restore runs it too): one
//! streaming pass over every key of a store, checking every invariant the engine relies on.
//!
//! - Every value decodes at the stored format version; an unknown table byte, a key of the
//!   wrong shape, or an index row whose record is missing is a discrepancy.
//! - Each pool balances (`PoolRecord::is_conserved`) and its totals equal its ledger: the
//!   allocations, refills, rewards and reversals against it, and what its actions record as
//!   distributed and reversed.
//! - Each user's balance and lifetime totals equal the sum of their transactions (through
//!   the per-user index), and no vesting bucket holds more than was rewarded to vest that day.
//! - Every action's allocations add up, each points at its reward transaction, and its
//!   idempotency record points back at it; every idempotency record of a submit or a
//!   reversal points at an action that exists (allocations and redemptions answer with an id
//!   that names no record).
//! - Every webhook queue row points at its delivery and every delivery at its event.
//! - The Meta table holds this build's schema version and a readable log sequence.
//!
//! Memory is bounded: the store is read in pages of [`AUDIT_PAGE_RECORDS`], a user's ledger
//! is read in pages too, and what is kept across the pass is one accumulator per pool (at
//! most [`POOLS_TRACKED_MAX`]) and the first [`DISCREPANCIES_SHOWN_MAX`] discrepancies.
//! Reports name records by ids and numbers only: values may hold sealed secrets.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::store::codec::{VALUE_VERSION, decode};
use crate::domain::ids::Id;
use crate::domain::model::{
    ActionRecord, ActionStatus, ApiKeyRecord, CampaignRecord, DAY_MS, EventRecord, IdempotencyRecord, IdempotencyScope, KeyDigestEntry, KeyKind,
    PartnerEnv, PartnerEnvState, PartnerRecord, PoolRecord, TransactionRecord, TransactionType, UserRecord,
};
use crate::services::announcements::Announcement;
use crate::services::donations::{DonationRecord, OrganizationRecord};
use crate::services::pool_requests::PoolRequestRecord;
use crate::services::portal::{AccountRecord, RefreshTokenRecord};
use crate::store::layout;
use crate::store::{SCHEMA_KEY, SCHEMA_VERSION, Scan, ScanOrder, Store, StoreError, Table, applied_sequence_key};
use crate::webhooks::{DeliveryRecord, EndpointRecord, HealthRecord};

/// Records read per scan: large enough that paging costs little, small enough that a page
/// of the largest records (actions with their stored answers) stays a few MiB.
pub const AUDIT_PAGE_RECORDS: usize = 1_000;
/// Discrepancies kept for the report (all are counted): enough to see a pattern, bounded
/// so a badly damaged store cannot fill memory with them.
pub const DISCREPANCIES_SHOWN_MAX: usize = 1_000;
/// How often progress is reported within a table.
pub const PROGRESS_EVERY_RECORDS: u64 = 100_000;
/// Pools reconciled at once. The engine allows a few per partner and environment; a store
/// holding more is reported, not allowed to grow the audit's memory without bound.
pub const POOLS_TRACKED_MAX: usize = 1_000_000;

/// Every table, by its byte (the index is the byte), with the name the report uses.
const TABLES: [(Table, &str); 27] = [
    (Table::Meta, "meta"),
    (Table::Partners, "partners"),
    (Table::PartnerSlugs, "partner_slugs"),
    (Table::ApiKeys, "api_keys"),
    (Table::KeyDigests, "key_digests"),
    (Table::PartnerEnvState, "partner_env_state"),
    (Table::Pools, "pools"),
    (Table::Users, "users"),
    (Table::Actions, "actions"),
    (Table::Transactions, "transactions"),
    (Table::UserTransactions, "user_transactions"),
    (Table::Idempotency, "idempotency"),
    (Table::Events, "events"),
    (Table::PartnerKeys, "partner_keys"),
    (Table::Accounts, "accounts"),
    (Table::AccountEmails, "account_emails"),
    (Table::RefreshTokens, "refresh_tokens"),
    (Table::PoolRequests, "pool_requests"),
    (Table::Announcements, "announcements"),
    (Table::Campaigns, "campaigns"),
    (Table::UsersByCreation, "users_by_creation"),
    (Table::Organizations, "organizations"),
    (Table::Donations, "donations"),
    (Table::WebhookEndpoints, "webhook_endpoints"),
    (Table::WebhookDeliveries, "webhook_deliveries"),
    (Table::WebhookQueue, "webhook_queue"),
    (Table::WebhookHealth, "webhook_health"),
];

// Meta keys and what their values must look like: the admin token's SHA-256 digest
// (services/partners.rs); the portal secret (services/portal.rs) and the master key check (engine/mod.rs), sealed.
use crate::store::layout::{ADMIN_TOKEN_KEY, MASTER_KEY_CHECK, PORTAL_SECRET_KEY};

/// Bytes of the (partner, environment) prefix, after the table byte.
const PARTNER_ENV_BYTES: usize = 13;
const ID_BYTES: usize = Id::LEN;
const DIGEST_BYTES: usize = 32;

/// Where the audit is, for a progress line.
#[derive(Debug, Clone, Serialize)]
pub struct AuditProgress {
    /// The table being read (`done` once the pass ended).
    pub table: &'static str,
    /// Records read in that table so far.
    pub table_records: u64,
    /// Records read in all.
    pub records_read: u64,
}

/// One broken invariant, naming its record by ids and numbers only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Discrepancy {
    pub table: &'static str,
    /// The record: partner id and environment, then pool id, user external id, action id,
    /// idempotency key… as the table keys it.
    pub record: String,
    pub problem: String,
    pub expected: String,
    pub found: String,
}

/// What the audit checked, in records and tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuditTotals {
    pub pools: u64,
    pub users: u64,
    pub actions: u64,
    pub transactions: u64,
    pub idempotency_records: u64,
    pub events: u64,
    pub webhook_deliveries: u64,
    pub webhook_queue_rows: u64,
    /// Tokens the pools hold, have issued, and have had back from reversals.
    pub pool_balance_tokens: u128,
    pub tokens_issued: u128,
    pub tokens_reversed: u128,
    /// Tokens the users hold (signed: a reversal after a redemption can go below zero).
    pub user_balance_tokens: i128,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditReport {
    pub schema_version: Option<u32>,
    pub wal_applied_sequence: Option<u64>,
    /// Records read, in all and per table (an unknown table byte as `unknown_0x..`).
    pub records: u64,
    pub tables: BTreeMap<String, u64>,
    /// Meta keys this build does not know (counted, not judged: a later feature may add one).
    pub meta_keys_unchecked: u64,
    pub totals: AuditTotals,
    pub discrepancies_total: u64,
    /// The first `DISCREPANCIES_SHOWN_MAX`.
    pub discrepancies: Vec<Discrepancy>,
}

impl AuditReport {
    pub fn is_clean(&self) -> bool {
        self.discrepancies_total == 0
    }
}

impl fmt::Display for AuditReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.is_clean() { "CLEAN".to_owned() } else { format!("{} DISCREPANCIES", self.discrepancies_total) };
        writeln!(f, "audit of the books: {verdict}")?;
        let schema = self.schema_version.map_or_else(|| "missing".into(), |version| version.to_string());
        // No applied sequence yet: everything the engine wrote is still in the log.
        let applied = self.wal_applied_sequence.map_or_else(|| "none yet".into(), |sequence| sequence.to_string());
        writeln!(f, "schema version {schema}, write-ahead log applied through sequence {applied}")?;
        writeln!(f, "records read: {} ({} unrecognised meta keys left unchecked)", self.records, self.meta_keys_unchecked)?;
        for (table, count) in &self.tables {
            writeln!(f, "  {table:<20} {count:>12}")?;
        }
        let totals = &self.totals;
        writeln!(
            f,
            "checked: {} pools (holding {} tokens, {} issued, {} reversed), {} users (holding {} tokens), {} actions, {} transactions, {} idempotency records, {} events, {} webhook deliveries, {} webhook queue rows",
            totals.pools,
            totals.pool_balance_tokens,
            totals.tokens_issued,
            totals.tokens_reversed,
            totals.users,
            totals.user_balance_tokens,
            totals.actions,
            totals.transactions,
            totals.idempotency_records,
            totals.events,
            totals.webhook_deliveries,
            totals.webhook_queue_rows
        )?;
        if !self.is_clean() {
            writeln!(f, "discrepancies (the first {} of {}):", self.discrepancies.len(), self.discrepancies_total)?;
            for item in &self.discrepancies {
                writeln!(f, "  [{}] {}: {}: expected {}, found {}", item.table, item.record, item.problem, item.expected, item.found)?;
            }
        }
        Ok(())
    }
}

/// Audits every record of `store`, calling `progress` when a table starts, every
/// `PROGRESS_EVERY_RECORDS` within one, and once at the end (table `done`). A store that
/// cannot be read is an error; everything the store holds that is wrong is in the report.
pub fn audit(store: &dyn Store, progress: &mut dyn FnMut(&AuditProgress)) -> Result<AuditReport, StoreError> {
    let mut auditor = Auditor::new(store);
    let mut after: Option<Vec<u8>> = None;
    let mut table: Option<u8> = None;
    let mut table_records = 0u64;
    loop {
        let page = store.scan(Scan { prefix: &[], after: after.as_deref(), order: ScanOrder::Ascending, limit: AUDIT_PAGE_RECORDS })?;
        let exhausted = page.len() < AUDIT_PAGE_RECORDS;
        for (key, value) in page {
            let byte = key.first().copied();
            if byte != table {
                table = byte;
                table_records = 0;
                progress(&AuditProgress { table: byte.map_or("empty_key", table_name), table_records, records_read: auditor.report.records });
            }
            auditor.record(&key, &value)?;
            table_records += 1;
            if table_records.is_multiple_of(PROGRESS_EVERY_RECORDS) {
                progress(&AuditProgress { table: byte.map_or("empty_key", table_name), table_records, records_read: auditor.report.records });
            }
            after = Some(key);
        }
        if exhausted {
            break;
        }
    }
    auditor.finish();
    progress(&AuditProgress { table: "done", table_records: 0, records_read: auditor.report.records });
    Ok(auditor.report)
}

fn table_of(byte: u8) -> Option<Table> {
    TABLES.get(usize::from(byte)).map(|(table, _)| *table)
}

fn table_name(byte: u8) -> &'static str {
    TABLES.get(usize::from(byte)).map_or("unknown", |(_, name)| name)
}

fn name_of(table: Table) -> &'static str {
    table_name(table as u8)
}

fn env_name(partner_env: &PartnerEnv) -> String {
    format!("partner {} {}", partner_env.partner_id, partner_env.environment.as_str())
}

/// Text a key holds (an external id, a slug, an idempotency key), shown lossily.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn partner_env_of(key: &[u8]) -> Option<PartnerEnv> {
    PartnerEnv::from_key_prefix(key.get(1..1 + PARTNER_ENV_BYTES)?)
}

/// The id at `key[at..at + 12]`.
fn id_at(key: &[u8], at: usize) -> Option<Id> {
    Id::from_slice(key.get(at..at + ID_BYTES)?)
}

/// A key of `partner env ‖ id`: the partner env and the id, when the key has that shape.
fn env_and_id(key: &[u8]) -> Option<(PartnerEnv, Id)> {
    (key.len() == 1 + PARTNER_ENV_BYTES + ID_BYTES).then_some(())?;
    Some((partner_env_of(key)?, id_at(key, 1 + PARTNER_ENV_BYTES)?))
}

/// A key of `id` alone.
fn id_key(key: &[u8]) -> Option<Id> {
    (key.len() == 1 + ID_BYTES).then(|| id_at(key, 1)).flatten()
}

/// What a pool's ledger and actions add up to, beside what the pool records.
#[derive(Debug, Default)]
struct PoolTally {
    pool: Option<PoolRecord>,
    allocated: u128,
    refilled: u128,
    issued: u128,
    reversed: u128,
    actions_distributed: u128,
    actions_reversed: u128,
}

/// What a user's transactions add up to.
#[derive(Debug, Default)]
struct UserLedger {
    balance: i128,
    earned: u128,
    reversed: u128,
    redeemed: u128,
    /// Rewarded to vest on each of the user's bucket days.
    vesting: BTreeMap<u32, u128>,
    /// A transaction could not be read: the sums are not comparable.
    incomplete: bool,
}

struct Auditor<'a> {
    store: &'a dyn Store,
    report: AuditReport,
    pools: BTreeMap<(PartnerEnv, Id), PoolTally>,
    /// The last partner state read (events come in partner order).
    env_state: Option<(PartnerEnv, Option<PartnerEnvState>)>,
    /// The last user looked up for an index row (rows come grouped by user), and whether it exists.
    indexed_user: Option<(Vec<u8>, bool)>,
    /// The last action looked up for a transaction (an action's rewards are adjacent).
    referenced_action: Option<(Vec<u8>, bool)>,
}

impl<'a> Auditor<'a> {
    fn new(store: &'a dyn Store) -> Auditor<'a> {
        Auditor { store, report: AuditReport::default(), pools: BTreeMap::new(), env_state: None, indexed_user: None, referenced_action: None }
    }

    fn flag(&mut self, table: Table, record: &str, problem: &str, expected: impl fmt::Display, found: impl fmt::Display) {
        self.report.discrepancies_total += 1;
        if self.report.discrepancies.len() < DISCREPANCIES_SHOWN_MAX {
            self.report.discrepancies.push(Discrepancy {
                table: name_of(table),
                record: record.to_owned(),
                problem: problem.to_owned(),
                expected: expected.to_string(),
                found: found.to_string(),
            });
        }
    }

    fn bad_key(&mut self, table: Table, key: &[u8], expected: &str) {
        let record = format!("a key of {} bytes", key.len());
        self.flag(table, &record, "key has the wrong shape", expected, format!("{} bytes", key.len()));
    }

    /// Decodes a value, flagging one that does not decode.
    fn decoded<T: DeserializeOwned>(&mut self, table: Table, record: &str, value: &[u8], type_name: &str) -> Option<T> {
        match decode::<T>(value) {
            Ok(decoded) => Some(decoded),
            Err(error) => {
                self.flag(table, record, "value does not decode", format!("{type_name} at value version {VALUE_VERSION}"), error);
                None
            }
        }
    }

    /// Decodes the record at `key`: `None` when it is absent or does not decode (that
    /// record's own check reports the latter).
    fn read<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        Ok(self.store.get(key)?.and_then(|bytes| decode(&bytes).ok()))
    }

    fn exists(&self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.store.get(key)?.is_some())
    }

    /// Flags `problem` when what the record holds (`found`) is not what its sources say.
    fn equal<T: PartialEq + fmt::Display>(&mut self, table: Table, record: &str, problem: &str, expected: T, found: T) {
        if expected != found {
            self.flag(table, record, problem, expected, found);
        }
    }

    fn record(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.report.records += 1;
        let Some(&byte) = key.first() else {
            self.flag(Table::Meta, "an empty key", "a key without a table byte", "a table byte", "nothing");
            return Ok(());
        };
        let Some(table) = table_of(byte) else {
            *self.report.tables.entry(format!("unknown_0x{byte:02x}")).or_default() += 1;
            self.flag(Table::Meta, &format!("a key in table byte {byte}"), "unknown table", "a table this build knows (0-26)", byte);
            return Ok(());
        };
        *self.report.tables.entry(name_of(table).to_owned()).or_default() += 1;
        match table {
            Table::Meta => self.check_meta(key, value),
            Table::Partners | Table::ApiKeys | Table::Accounts | Table::PoolRequests | Table::Announcements | Table::Donations => {
                self.check_by_id(table, key, value);
                Ok(())
            }
            Table::PartnerSlugs => self.check_partner_slug(key, value),
            Table::KeyDigests => self.check_key_digest(key, value),
            Table::PartnerEnvState => self.check_env_state(key, value),
            Table::Pools => self.check_pool(key, value),
            Table::Users => self.check_user(key, value),
            Table::Actions => self.check_action(key, value),
            Table::Transactions => self.check_transaction(key, value),
            Table::UserTransactions => self.check_user_transaction(key, value),
            Table::Idempotency => self.check_idempotency(key, value),
            Table::Events => self.check_event(key, value),
            Table::PartnerKeys => self.check_partner_key(key, value),
            Table::AccountEmails => self.check_account_email(key, value),
            Table::RefreshTokens => {
                self.check_digest_keyed::<RefreshTokenRecord>(table, key, value, "refresh token", "RefreshTokenRecord");
                Ok(())
            }
            Table::Campaigns | Table::WebhookEndpoints | Table::WebhookHealth => {
                self.check_partner_owned(table, key, value);
                Ok(())
            }
            Table::UsersByCreation => self.check_user_by_creation(key, value),
            Table::Organizations => {
                let record = format!("organization '{}'", text(&key[1..]));
                if let Some(organization) = self.decoded::<OrganizationRecord>(table, &record, value, "OrganizationRecord") {
                    self.equal(table, &record, "slug differs from its key", text(&key[1..]), organization.slug);
                }
                Ok(())
            }
            Table::WebhookDeliveries => self.check_delivery(key, value),
            Table::WebhookQueue => self.check_queue_row(key, value),
        }
    }

    fn finish(&mut self) {
        if self.report.schema_version.is_none() {
            self.flag(Table::Meta, "schema_version", "the schema version is missing", SCHEMA_VERSION, "nothing");
        }
        let pools = std::mem::take(&mut self.pools);
        for ((partner_env, pool_id), tally) in pools {
            self.reconcile_pool(&partner_env, pool_id, &tally);
        }
    }
}

/// Meta, and the records keyed by their id alone.
impl Auditor<'_> {
    fn check_meta(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let name = &key[1..];
        let record = text(name);
        if name == SCHEMA_KEY {
            match <[u8; 4]>::try_from(value).map(u32::from_be_bytes) {
                Ok(version) => {
                    self.report.schema_version = Some(version);
                    self.equal(Table::Meta, &record, "schema version differs from this build's", SCHEMA_VERSION, version);
                }
                Err(_) => self.flag(Table::Meta, &record, "schema version is unreadable", "4 bytes", format!("{} bytes", value.len())),
            }
        } else if key == applied_sequence_key().as_slice() {
            match <[u8; 8]>::try_from(value).map(u64::from_be_bytes) {
                Ok(sequence) => self.report.wal_applied_sequence = Some(sequence),
                Err(_) => self.flag(Table::Meta, &record, "applied log sequence is unreadable", "8 bytes", format!("{} bytes", value.len())),
            }
        } else if name == ADMIN_TOKEN_KEY {
            self.equal(Table::Meta, &record, "the admin token digest has the wrong length", DIGEST_BYTES, value.len());
        } else if name == PORTAL_SECRET_KEY || name == MASTER_KEY_CHECK {
            if value.is_empty() {
                self.flag(Table::Meta, &record, "sealed value is empty", "sealed bytes", "nothing");
            }
        } else {
            self.report.meta_keys_unchecked += 1;
        }
        Ok(())
    }

    fn check_by_id(&mut self, table: Table, key: &[u8], value: &[u8]) {
        let Some(id) = id_key(key) else {
            return self.bad_key(table, key, "the table byte and a 12-byte id");
        };
        let record = format!("{} {id}", name_of(table));
        let stored_id = match table {
            Table::Partners => self.decoded::<PartnerRecord>(table, &record, value, "PartnerRecord").map(|partner| partner.id),
            Table::ApiKeys => self.decoded::<ApiKeyRecord>(table, &record, value, "ApiKeyRecord").map(|api_key| api_key.id),
            Table::Accounts => self.decoded::<AccountRecord>(table, &record, value, "AccountRecord").map(|account| account.id),
            Table::PoolRequests => self.decoded::<PoolRequestRecord>(table, &record, value, "PoolRequestRecord").map(|request| request.id),
            Table::Donations => self.decoded::<DonationRecord>(table, &record, value, "DonationRecord").map(|donation| donation.id),
            // Keyed by a fresh id that the record does not repeat.
            _ => self.decoded::<Announcement>(table, &record, value, "Announcement").map(|_| id),
        };
        if let Some(stored_id) = stored_id {
            self.equal(table, &record, "id differs from its key", id, stored_id);
        }
    }

    fn check_digest_keyed<T: DeserializeOwned>(&mut self, table: Table, key: &[u8], value: &[u8], what: &str, type_name: &str) -> Option<T> {
        if key.len() != 1 + DIGEST_BYTES {
            self.bad_key(table, key, "the table byte and a 32-byte digest");
            return None;
        }
        // A digest of a secret: shown by its first bytes only.
        let record = format!("{what} with digest {}…", hex::encode(&key[1..5]));
        self.decoded::<T>(table, &record, value, type_name)
    }

    fn check_partner_slug(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let slug = text(&key[1..]);
        let record = format!("partner slug '{slug}'");
        let Some(partner_id) = Id::from_slice(value) else {
            self.flag(Table::PartnerSlugs, &record, "value is not a partner id", "12 bytes", format!("{} bytes", value.len()));
            return Ok(());
        };
        match self.read::<PartnerRecord>(&layout::partner(partner_id))? {
            Some(partner) => self.equal(Table::PartnerSlugs, &record, "the partner it names has another slug", slug, partner.slug),
            None => self.flag(Table::PartnerSlugs, &record, "names a partner that does not exist", format!("partner {partner_id}"), "nothing"),
        }
        Ok(())
    }

    fn check_key_digest(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let Some(entry) = self.check_digest_keyed::<KeyDigestEntry>(Table::KeyDigests, key, value, "key digest", "KeyDigestEntry") else {
            return Ok(());
        };
        let record = format!("key digest of API key {}", entry.key_id);
        let Some(api_key) = self.read::<ApiKeyRecord>(&layout::api_key(entry.key_id))? else {
            self.flag(Table::KeyDigests, &record, "names an API key that does not exist", format!("API key {}", entry.key_id), "nothing");
            return Ok(());
        };
        let digest = match entry.kind {
            KeyKind::Publishable => api_key.public_key_digest,
            KeyKind::Secret => api_key.secret_key_digest,
        };
        if digest[..] != key[1..] {
            self.flag(Table::KeyDigests, &record, "the API key holds another digest for this kind", "the same digest", "another digest");
        }
        Ok(())
    }

    fn check_partner_key(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let (Some(partner_id), Some(key_id), true) = (id_at(key, 1), id_at(key, 1 + ID_BYTES), key.len() == 1 + 2 * ID_BYTES) else {
            self.bad_key(Table::PartnerKeys, key, "the table byte, a partner id and a key id");
            return Ok(());
        };
        let record = format!("partner {partner_id}, API key {key_id}");
        if !value.is_empty() {
            self.flag(Table::PartnerKeys, &record, "index row holds a value", "empty", format!("{} bytes", value.len()));
        }
        match self.read::<ApiKeyRecord>(&layout::api_key(key_id))? {
            Some(api_key) => self.equal(Table::PartnerKeys, &record, "the API key belongs to another partner", partner_id, api_key.partner_id),
            None => self.flag(Table::PartnerKeys, &record, "names an API key that does not exist", format!("API key {key_id}"), "nothing"),
        }
        Ok(())
    }

    fn check_account_email(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let email = text(&key[1..]);
        let record = format!("account email '{email}'");
        let Some(account_id) = Id::from_slice(value) else {
            self.flag(Table::AccountEmails, &record, "value is not an account id", "12 bytes", format!("{} bytes", value.len()));
            return Ok(());
        };
        match self.read::<AccountRecord>(&layout::account(account_id))? {
            Some(account) => self.equal(Table::AccountEmails, &record, "the account it names has another email", email, account.email),
            None => self.flag(Table::AccountEmails, &record, "names an account that does not exist", format!("account {account_id}"), "nothing"),
        }
        Ok(())
    }
}

/// A partner's records: state, pools, users, actions, the ledger, idempotency, events.
impl Auditor<'_> {
    /// Records keyed by `partner env ‖ id` that repeat the id (campaigns, endpoints) or do
    /// not hold one (health).
    fn check_partner_owned(&mut self, table: Table, key: &[u8], value: &[u8]) {
        let Some((partner_env, id)) = env_and_id(key) else {
            return self.bad_key(table, key, "the table byte, a partner prefix and a 12-byte id");
        };
        let record = format!("{}, {} {id}", env_name(&partner_env), name_of(table));
        let stored_id = match table {
            Table::Campaigns => self.decoded::<CampaignRecord>(table, &record, value, "CampaignRecord").map(|campaign| campaign.id),
            Table::WebhookEndpoints => self.decoded::<EndpointRecord>(table, &record, value, "EndpointRecord").map(|endpoint| endpoint.id),
            _ => self.decoded::<HealthRecord>(table, &record, value, "HealthRecord").map(|_| id),
        };
        if let Some(stored_id) = stored_id {
            self.equal(table, &record, "id differs from its key", id, stored_id);
        }
    }

    fn check_env_state(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let Some(partner_env) = partner_env_of(key).filter(|_| key.len() == 1 + PARTNER_ENV_BYTES) else {
            self.bad_key(Table::PartnerEnvState, key, "the table byte and a partner prefix");
            return Ok(());
        };
        let record = format!("{}, state", env_name(&partner_env));
        let Some(state) = self.decoded::<PartnerEnvState>(Table::PartnerEnvState, &record, value, "PartnerEnvState") else {
            return Ok(());
        };
        if let Some(pool_id) = state.default_pool_id
            && !self.exists(&layout::pool(&partner_env, pool_id))?
        {
            self.flag(Table::PartnerEnvState, &record, "the default pool does not exist", format!("pool {pool_id}"), "nothing");
        }
        Ok(())
    }

    /// A record keyed by a partner prefix and its id (`noun`, e.g. "pool"; `key_shape` for the
    /// report): the key's parts, the record's name in the report, and the decoded value, its
    /// id checked against the key. `None` (flagged) when the key or the value is not one.
    fn keyed_record<T: DeserializeOwned>(
        &mut self,
        (table, noun, key_shape): (Table, &str, &str),
        key: &[u8],
        value: &[u8],
        type_name: &str,
        id_of: fn(&T) -> Id,
    ) -> Option<(PartnerEnv, Id, String, T)> {
        let Some((partner_env, id)) = env_and_id(key) else {
            self.bad_key(table, key, key_shape);
            return None;
        };
        let record = format!("{}, {noun} {id}", env_name(&partner_env));
        let decoded = self.decoded::<T>(table, &record, value, type_name)?;
        self.equal(table, &record, "id differs from its key", id, id_of(&decoded));
        Some((partner_env, id, record, decoded))
    }

    fn check_pool(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let kind = (Table::Pools, "pool", "the table byte, a partner prefix and a pool id");
        let Some((partner_env, pool_id, record, pool)) = self.keyed_record::<PoolRecord>(kind, key, value, "PoolRecord", |pool| pool.id) else {
            return Ok(());
        };
        self.report.totals.pools += 1;
        self.equal(Table::Pools, &record, "environment differs from its key", partner_env.environment.as_str(), pool.environment.as_str());
        if self.pools.len() >= POOLS_TRACKED_MAX {
            self.flag(Table::Pools, &record, "too many pools to reconcile in one pass", POOLS_TRACKED_MAX, "more");
            return Ok(());
        }
        self.pools.insert((partner_env, pool_id), PoolTally { pool: Some(pool), ..PoolTally::default() });
        Ok(())
    }

    /// The accumulator of a pool the pass has seen (pools sort before actions and the ledger).
    fn tally(&mut self, partner_env: &PartnerEnv, pool_id: Id, table: Table, record: &str) -> Option<&mut PoolTally> {
        if !self.pools.contains_key(&(*partner_env, pool_id)) {
            self.flag(table, record, "names a pool that does not exist", format!("pool {pool_id}"), "nothing");
        }
        self.pools.get_mut(&(*partner_env, pool_id))
    }

    fn reconcile_pool(&mut self, partner_env: &PartnerEnv, pool_id: Id, tally: &PoolTally) {
        let Some(pool) = &tally.pool else { return };
        let record = format!("{}, pool {pool_id}", env_name(partner_env));
        let totals = &mut self.report.totals;
        totals.pool_balance_tokens += u128::from(pool.balance);
        totals.tokens_issued += u128::from(pool.issued_total);
        totals.tokens_reversed += u128::from(pool.reversed_total);
        if !pool.is_conserved() {
            let expected = format!("allocated {} + refilled {}", pool.allocated_total, pool.refilled_total);
            let found = format!("balance {} + issued {} - reversed {}", pool.balance, pool.issued_total, pool.reversed_total);
            self.flag(Table::Pools, &record, "the pool does not balance", expected, found);
        }
        let signed = |tokens: u128| i128::try_from(tokens).unwrap_or(i128::MAX);
        let ledger_balance = signed(tally.allocated + tally.refilled + tally.reversed) - signed(tally.issued);
        let pool_table = Table::Pools;
        self.equal(
            pool_table,
            &record,
            "balance differs from its ledger (allocations + refills - rewards + reversals)",
            ledger_balance,
            i128::from(pool.balance),
        );
        self.equal(
            pool_table,
            &record,
            "allocated total differs from its allocation transactions",
            tally.allocated,
            u128::from(pool.allocated_total),
        );
        self.equal(pool_table, &record, "refilled total differs from its refill transactions", tally.refilled, u128::from(pool.refilled_total));
        self.equal(pool_table, &record, "issued total differs from its reward transactions", tally.issued, u128::from(pool.issued_total));
        self.equal(pool_table, &record, "reversed total differs from its reversal transactions", tally.reversed, u128::from(pool.reversed_total));
        self.equal(
            pool_table,
            &record,
            "issued total differs from what its actions distributed",
            tally.actions_distributed,
            u128::from(pool.issued_total),
        );
        self.equal(
            pool_table,
            &record,
            "reversed total differs from what its actions had reversed",
            tally.actions_reversed,
            u128::from(pool.reversed_total),
        );
    }

    fn check_user(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let Some(partner_env) = partner_env_of(key).filter(|_| key.len() > 1 + PARTNER_ENV_BYTES) else {
            self.bad_key(Table::Users, key, "the table byte, a partner prefix and an external id");
            return Ok(());
        };
        let external_id = &key[1 + PARTNER_ENV_BYTES..];
        let record = format!("{}, user {}", env_name(&partner_env), text(external_id));
        let Some(user) = self.decoded::<UserRecord>(Table::Users, &record, value, "UserRecord") else {
            return Ok(());
        };
        self.report.totals.users += 1;
        self.report.totals.user_balance_tokens += i128::from(user.balance);
        self.equal(Table::Users, &record, "external id differs from its key", text(external_id).as_str(), user.external_id.as_str());
        match self.store.get(&layout::user_by_creation(&partner_env, user.id))? {
            Some(indexed) if indexed == user.external_id.as_bytes() => {}
            Some(indexed) => self.flag(Table::Users, &record, "the creation-order index names another user", &user.external_id, text(&indexed)),
            None => self.flag(Table::Users, &record, "missing from the creation-order index", format!("a row for user id {}", user.id), "nothing"),
        }
        let ledger = self.user_ledger(&partner_env, &user, &record)?;
        if !ledger.incomplete {
            self.compare_user(&user, &ledger, &record);
        }
        Ok(())
    }

    /// Sums the user's transactions, read through the per-user index a page at a time.
    fn user_ledger(&mut self, partner_env: &PartnerEnv, user: &UserRecord, record: &str) -> Result<UserLedger, StoreError> {
        let mut ledger = UserLedger { vesting: user.vesting.iter().map(|bucket| (bucket.day, 0)).collect(), ..UserLedger::default() };
        let prefix = layout::user_transactions_prefix(partner_env, &user.external_id);
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self.store.scan(Scan { prefix: &prefix, after: after.as_deref(), order: ScanOrder::Ascending, limit: AUDIT_PAGE_RECORDS })?;
            let exhausted = page.len() < AUDIT_PAGE_RECORDS;
            for (key, _) in page {
                let Some(transaction_id) = id_at(&key, prefix.len()).filter(|_| key.len() == prefix.len() + ID_BYTES) else {
                    ledger.incomplete = true; // The index row's own check reports its shape.
                    after = Some(key);
                    continue;
                };
                match self.store.get(&layout::transaction(partner_env, transaction_id))? {
                    None => {
                        self.flag(
                            Table::UserTransactions,
                            record,
                            "index names a transaction that does not exist",
                            format!("transaction {transaction_id}"),
                            "nothing",
                        );
                        ledger.incomplete = true;
                    }
                    Some(bytes) => match decode::<TransactionRecord>(&bytes) {
                        Ok(transaction) => self.add_to_user_ledger(&mut ledger, &transaction, &user.external_id, record),
                        Err(_) => ledger.incomplete = true, // Reported with the transaction.
                    },
                }
                after = Some(key);
            }
            if exhausted {
                return Ok(ledger);
            }
        }
    }

    fn add_to_user_ledger(&mut self, ledger: &mut UserLedger, transaction: &TransactionRecord, external_id: &str, record: &str) {
        if transaction.partner_user_id.as_deref() != Some(external_id) {
            let found = transaction.partner_user_id.clone().unwrap_or_else(|| "no user".into());
            self.flag(Table::UserTransactions, record, &format!("index names transaction {} of another user", transaction.id), external_id, found);
            ledger.incomplete = true;
            return;
        }
        let tokens = i128::from(transaction.tokens);
        ledger.balance += tokens;
        match transaction.transaction_type {
            TransactionType::Reward => {
                ledger.earned += tokens.unsigned_abs();
                let day = transaction.vests_at_ms.filter(|ms| ms % DAY_MS == 0).map(|ms| u32::try_from(ms / DAY_MS).unwrap_or(u32::MAX));
                if let Some(rewarded) = day.and_then(|day| ledger.vesting.get_mut(&day)) {
                    *rewarded += tokens.unsigned_abs();
                }
            }
            TransactionType::Reversal => ledger.reversed += tokens.unsigned_abs(),
            TransactionType::Redemption => ledger.redeemed += tokens.unsigned_abs(),
            TransactionType::Allocation | TransactionType::Refill => {
                self.flag(
                    Table::UserTransactions,
                    record,
                    &format!("index names pool transaction {}", transaction.id),
                    "a reward, reversal or redemption",
                    "a pool transaction",
                );
                ledger.incomplete = true;
            }
        }
    }

    fn compare_user(&mut self, user: &UserRecord, ledger: &UserLedger, record: &str) {
        let table = Table::Users;
        self.equal(table, record, "balance differs from the sum of the user's transactions", ledger.balance, i128::from(user.balance));
        self.equal(table, record, "lifetime earned differs from the user's rewards", ledger.earned, u128::from(user.lifetime_earned));
        self.equal(table, record, "lifetime reversed differs from the user's reversals", ledger.reversed, u128::from(user.lifetime_reversed));
        self.equal(table, record, "lifetime redeemed differs from the user's redemptions", ledger.redeemed, u128::from(user.lifetime_redeemed));
        let ordered = user.vesting.windows(2).all(|pair| pair[0].day < pair[1].day);
        if !ordered || user.vesting.iter().any(|bucket| bucket.tokens == 0) {
            self.flag(
                table,
                record,
                "vesting buckets are out of order or empty",
                "ascending days, tokens > 0",
                format!("{} buckets", user.vesting.len()),
            );
        }
        for bucket in &user.vesting {
            let rewarded = ledger.vesting.get(&bucket.day).copied().unwrap_or(0);
            if u128::from(bucket.tokens) > rewarded {
                let problem = format!("vesting bucket of day {} holds more than was rewarded to vest that day", bucket.day);
                self.flag(table, record, &problem, format!("at most {rewarded}"), bucket.tokens);
            }
        }
    }

    fn check_user_by_creation(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let Some((partner_env, user_id)) = env_and_id(key) else {
            self.bad_key(Table::UsersByCreation, key, "the table byte, a partner prefix and a user id");
            return Ok(());
        };
        let record = format!("{}, user id {user_id}", env_name(&partner_env));
        let Ok(external_id) = std::str::from_utf8(value) else {
            self.flag(Table::UsersByCreation, &record, "value is not an external id", "UTF-8 text", format!("{} bytes", value.len()));
            return Ok(());
        };
        match self.read::<UserRecord>(&layout::user(&partner_env, external_id))? {
            Some(user) => self.equal(Table::UsersByCreation, &record, &format!("user '{external_id}' has another id"), user_id, user.id),
            None => self.flag(Table::UsersByCreation, &record, "names a user that does not exist", format!("user {external_id}"), "nothing"),
        }
        Ok(())
    }

    fn check_user_transaction(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let tail = key.len().checked_sub(ID_BYTES + 1).filter(|tail| *tail > 1 + PARTNER_ENV_BYTES);
        let (Some(partner_env), Some(tail)) = (partner_env_of(key), tail.filter(|tail| key[*tail] == 0)) else {
            self.bad_key(Table::UserTransactions, key, "a partner prefix, an external id, a 0 byte and a transaction id");
            return Ok(());
        };
        let external_id = &key[1 + PARTNER_ENV_BYTES..tail];
        let record = format!("{}, user {}, transaction {}", env_name(&partner_env), text(external_id), hex::encode(&key[tail + 1..]));
        if !value.is_empty() {
            self.flag(Table::UserTransactions, &record, "index row holds a value", "empty", format!("{} bytes", value.len()));
        }
        let user_key = layout::user(&partner_env, &text(external_id));
        let exists = match &self.indexed_user {
            Some((cached, exists)) if *cached == user_key => *exists,
            _ => {
                let exists = self.exists(&user_key)?;
                self.indexed_user = Some((user_key, exists));
                exists
            }
        };
        if !exists {
            self.flag(Table::UserTransactions, &record, "index row of a user that does not exist", format!("user {}", text(external_id)), "nothing");
        }
        Ok(())
    }
}

/// Actions, the ledger, idempotency records and the event feed.
impl Auditor<'_> {
    fn check_action(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let kind = (Table::Actions, "action", "the table byte, a partner prefix and an action id");
        let Some((partner_env, _, record, action)) = self.keyed_record::<ActionRecord>(kind, key, value, "ActionRecord", |action| action.id) else {
            return Ok(());
        };
        self.report.totals.actions += 1;
        self.check_action_sums(&action, &record);
        if let Some(pool_id) = action.pool_id {
            if let Some(tally) = self.tally(&partner_env, pool_id, Table::Actions, &record) {
                tally.actions_distributed += u128::from(action.tokens_distributed);
                tally.actions_reversed += u128::from(action.reversed_tokens);
            }
        } else if action.tokens_distributed > 0 {
            self.flag(Table::Actions, &record, "distributed tokens from no pool", "a pool id", "none");
        }
        for allocation in &action.allocations {
            self.check_allocation(&partner_env, &action, allocation, &record)?;
        }
        let idempotency_key = layout::idempotency(&partner_env, IdempotencyScope::ActionSubmit, &action.idempotency_key);
        match self.read::<IdempotencyRecord>(&idempotency_key)? {
            Some(idempotency) => {
                self.equal(Table::Actions, &record, "its idempotency record names another action", action.id, idempotency.resource_id)
            }
            None if self.exists(&idempotency_key)? => {} // Reported with the idempotency record.
            None => {
                self.flag(Table::Actions, &record, "has no idempotency record", format!("idempotency key '{}'", action.idempotency_key), "nothing")
            }
        }
        Ok(())
    }

    fn check_action_sums(&mut self, action: &ActionRecord, record: &str) {
        let distributed: u128 = action.allocations.iter().map(|allocation| u128::from(allocation.tokens)).sum();
        let reversed: u128 = action.allocations.iter().map(|allocation| u128::from(allocation.reversed_tokens)).sum();
        self.equal(
            Table::Actions,
            record,
            "tokens distributed differ from the sum of its allocations",
            distributed,
            u128::from(action.tokens_distributed),
        );
        self.equal(Table::Actions, record, "reversed tokens differ from the sum of its allocations'", reversed, u128::from(action.reversed_tokens));
        if action.allocations.iter().any(|allocation| allocation.reversed_tokens > allocation.tokens)
            || action.reversed_tokens > action.tokens_distributed
        {
            self.flag(Table::Actions, record, "more reversed than distributed", "reversed <= distributed", action.reversed_tokens);
        }
        let status = match action.reversed_tokens {
            0 => ActionStatus::Completed,
            reversed if reversed == action.tokens_distributed => ActionStatus::Reversed,
            _ => ActionStatus::PartiallyReversed,
        };
        self.equal(Table::Actions, record, "status does not fit its reversed tokens", format!("{status:?}"), format!("{:?}", action.status));
    }

    fn check_allocation(
        &mut self,
        partner_env: &PartnerEnv,
        action: &ActionRecord,
        allocation: &crate::domain::model::AllocationRecord,
        record: &str,
    ) -> Result<(), StoreError> {
        let record = format!("{record}, allocation to user {}", allocation.partner_user_id);
        let transaction_id = match (allocation.tokens, allocation.transaction_id) {
            (0, _) => return Ok(()),
            (_, Some(transaction_id)) => transaction_id,
            (tokens, None) => {
                self.flag(Table::Actions, &record, "allocation has no reward transaction", format!("a transaction of {tokens} tokens"), "none");
                return Ok(());
            }
        };
        let Some(transaction) = self.read::<TransactionRecord>(&layout::transaction(partner_env, transaction_id))? else {
            if !self.exists(&layout::transaction(partner_env, transaction_id))? {
                self.flag(Table::Actions, &record, "its reward transaction does not exist", format!("transaction {transaction_id}"), "nothing");
            }
            return Ok(());
        };
        let expected = format!(
            "a reward of {} tokens to {} for action {} from pool {:?}",
            allocation.tokens,
            allocation.partner_user_id,
            action.id,
            action.pool_id.map(Id::to_hex)
        );
        let found = format!(
            "a {:?} of {} tokens to {} for action {:?} from pool {:?}",
            transaction.transaction_type,
            transaction.tokens,
            transaction.partner_user_id.as_deref().unwrap_or("nobody"),
            transaction.action_id.map(Id::to_hex),
            transaction.pool_id.map(Id::to_hex)
        );
        let fits = transaction.transaction_type == TransactionType::Reward
            && transaction.tokens == i64::try_from(allocation.tokens).unwrap_or(i64::MAX)
            && transaction.partner_user_id.as_deref() == Some(allocation.partner_user_id.as_str())
            && transaction.action_id == Some(action.id)
            && transaction.pool_id == action.pool_id;
        if !fits {
            self.flag(Table::Actions, &record, &format!("reward transaction {transaction_id} does not match the allocation"), expected, found);
        }
        Ok(())
    }

    fn check_transaction(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let kind = (Table::Transactions, "transaction", "the table byte, a partner prefix and a transaction id");
        let Some((partner_env, _, record, transaction)) =
            self.keyed_record::<TransactionRecord>(kind, key, value, "TransactionRecord", |transaction| transaction.id)
        else {
            return Ok(());
        };
        self.report.totals.transactions += 1;
        self.check_transaction_shape(&transaction, &record);
        if let Some(pool_id) = transaction.pool_id
            && let Some(tally) = self.tally(&partner_env, pool_id, Table::Transactions, &record)
        {
            let tokens = u128::from(transaction.tokens.unsigned_abs());
            match transaction.transaction_type {
                TransactionType::Allocation => tally.allocated += tokens,
                TransactionType::Refill => tally.refilled += tokens,
                TransactionType::Reward => tally.issued += tokens,
                TransactionType::Reversal => tally.reversed += tokens,
                TransactionType::Redemption => {}
            }
        }
        if let Some(action_id) = transaction.action_id
            && !self.action_exists(&partner_env, action_id)?
        {
            self.flag(Table::Transactions, &record, "names an action that does not exist", format!("action {action_id}"), "nothing");
        }
        if let Some(owner) = transaction.partner_user_id.as_deref()
            && !self.exists(&layout::user_transaction(&partner_env, owner, transaction.id))?
        {
            self.flag(Table::Transactions, &record, "missing from its user's index", format!("a row under user {owner}"), "nothing");
        }
        Ok(())
    }

    /// Which fields each kind of transaction carries, and the sign of its tokens.
    fn check_transaction_shape(&mut self, transaction: &TransactionRecord, record: &str) {
        let (has_action, has_pool, has_user, positive) = match transaction.transaction_type {
            TransactionType::Reward => (true, true, true, true),
            TransactionType::Reversal => (true, true, true, false),
            TransactionType::Redemption => (false, false, true, false),
            TransactionType::Allocation | TransactionType::Refill => (false, true, false, true),
        };
        let shape =
            |action: bool, pool: bool, user: bool, positive: bool| format!("action {action}, pool {pool}, user {user}, tokens positive {positive}");
        let expected = shape(has_action, has_pool, has_user, positive);
        let found =
            shape(transaction.action_id.is_some(), transaction.pool_id.is_some(), transaction.partner_user_id.is_some(), transaction.tokens > 0);
        if transaction.tokens == 0 || expected != found {
            self.flag(Table::Transactions, record, &format!("fields do not fit a {:?} transaction", transaction.transaction_type), expected, found);
        }
    }

    fn action_exists(&mut self, partner_env: &PartnerEnv, action_id: Id) -> Result<bool, StoreError> {
        let key = layout::action(partner_env, action_id);
        if let Some((cached, exists)) = &self.referenced_action
            && *cached == key
        {
            return Ok(*exists);
        }
        let exists = self.exists(&key)?;
        self.referenced_action = Some((key, exists));
        Ok(exists)
    }

    fn check_idempotency(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let scope_at = 1 + PARTNER_ENV_BYTES;
        let scope = key.get(scope_at).and_then(|byte| IdempotencyScope::ALL.into_iter().find(|scope| *scope as u8 == *byte));
        let (Some(partner_env), Some(scope), true) = (partner_env_of(key), scope, key.len() > scope_at + 1) else {
            self.bad_key(Table::Idempotency, key, "a partner prefix, a known scope byte (1-5) and a key");
            return Ok(());
        };
        let idempotency_key = text(&key[scope_at + 1..]);
        let record = format!("{}, idempotency key '{idempotency_key}' ({scope:?})", env_name(&partner_env));
        let Some(idempotency) = self.decoded::<IdempotencyRecord>(Table::Idempotency, &record, value, "IdempotencyRecord") else {
            return Ok(());
        };
        self.report.totals.idempotency_records += 1;
        // Allocations and redemptions answer with a fresh id that names no record.
        if !matches!(scope, IdempotencyScope::ActionSubmit | IdempotencyScope::Reversal) {
            return Ok(());
        }
        let action_id = idempotency.resource_id;
        match self.read::<ActionRecord>(&layout::action(&partner_env, action_id))? {
            Some(action) if scope == IdempotencyScope::ActionSubmit => {
                self.equal(
                    Table::Idempotency,
                    &record,
                    &format!("action {action_id} was submitted under another key"),
                    idempotency_key.as_str(),
                    action.idempotency_key.as_str(),
                );
            }
            Some(_) => {}
            None if self.exists(&layout::action(&partner_env, action_id))? => {}
            None => self.flag(Table::Idempotency, &record, "points at an action that does not exist", format!("action {action_id}"), "nothing"),
        }
        Ok(())
    }

    fn check_event(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let sequence = key.get(1 + PARTNER_ENV_BYTES..).and_then(|tail| <[u8; 8]>::try_from(tail).ok()).map(u64::from_be_bytes);
        let (Some(partner_env), Some(sequence)) = (partner_env_of(key), sequence) else {
            self.bad_key(Table::Events, key, "the table byte, a partner prefix and an 8-byte sequence");
            return Ok(());
        };
        let record = format!("{}, event {sequence}", env_name(&partner_env));
        let Some(event) = self.decoded::<EventRecord>(Table::Events, &record, value, "EventRecord") else {
            return Ok(());
        };
        self.report.totals.events += 1;
        self.equal(Table::Events, &record, "sequence differs from its key", sequence, event.sequence);
        if self.env_state.as_ref().is_none_or(|(cached, _)| *cached != partner_env) {
            let state = self.read::<PartnerEnvState>(&layout::partner_env_state(&partner_env))?;
            self.env_state = Some((partner_env, state));
        }
        let next = self.env_state.as_ref().and_then(|(_, state)| state.as_ref()).map(|state| state.next_event_sequence);
        match next {
            Some(next) if sequence < next && sequence > 0 => {}
            Some(next) => self.flag(Table::Events, &record, "sequence is outside the feed", format!("1..{next}"), sequence),
            None => self.flag(Table::Events, &record, "its partner has no state record", "a state with the next sequence", "nothing"),
        }
        Ok(())
    }
}

/// The webhook outbox: deliveries and their queue rows.
impl Auditor<'_> {
    fn check_delivery(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let at = 1 + PARTNER_ENV_BYTES;
        let ids = (key.len() == at + 2 * ID_BYTES).then(|| (id_at(key, at), id_at(key, at + ID_BYTES)));
        let (Some(partner_env), Some((Some(endpoint_id), Some(delivery_id)))) = (partner_env_of(key), ids) else {
            self.bad_key(Table::WebhookDeliveries, key, "a partner prefix, an endpoint id and a delivery id");
            return Ok(());
        };
        let record = format!("{}, endpoint {endpoint_id}, delivery {delivery_id}", env_name(&partner_env));
        let Some(delivery) = self.decoded::<DeliveryRecord>(Table::WebhookDeliveries, &record, value, "DeliveryRecord") else {
            return Ok(());
        };
        self.report.totals.webhook_deliveries += 1;
        self.equal(Table::WebhookDeliveries, &record, "id differs from its key", delivery_id, delivery.id);
        self.equal(Table::WebhookDeliveries, &record, "endpoint differs from its key", endpoint_id, delivery.endpoint_id);
        match (delivery.event_sequence, &delivery.inline_envelope) {
            (Some(sequence), _) => match self.read::<EventRecord>(&layout::event(&partner_env, sequence))? {
                Some(event) => self.equal(
                    Table::WebhookDeliveries,
                    &record,
                    &format!("event {sequence} of the feed is another event"),
                    delivery.event_id,
                    event.id,
                ),
                None if self.exists(&layout::event(&partner_env, sequence))? => {}
                None => self.flag(Table::WebhookDeliveries, &record, "its event is not in the feed", format!("event {sequence}"), "nothing"),
            },
            (None, Some(_)) => {}
            (None, None) => self.flag(Table::WebhookDeliveries, &record, "has no event", "a feed sequence or an inline envelope", "neither"),
        }
        Ok(())
    }

    fn check_queue_row(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let at = 1 + PARTNER_ENV_BYTES;
        let endpoint_id = (key.len() == at + ID_BYTES + 8 + ID_BYTES).then(|| id_at(key, at)).flatten();
        let (Some(partner_env), Some(endpoint_id), Some((due_ms, delivery_id))) =
            (partner_env_of(key), endpoint_id, layout::parse_webhook_queue(key))
        else {
            self.bad_key(Table::WebhookQueue, key, "a partner prefix, an endpoint id, a due time and a delivery id");
            return Ok(());
        };
        self.report.totals.webhook_queue_rows += 1;
        let record = format!("{}, endpoint {endpoint_id}, queue row due {due_ms} for delivery {delivery_id}", env_name(&partner_env));
        if !value.is_empty() {
            self.flag(Table::WebhookQueue, &record, "queue row holds a value", "empty", format!("{} bytes", value.len()));
        }
        if !self.exists(&layout::webhook_delivery(&partner_env, endpoint_id, delivery_id))? {
            self.flag(Table::WebhookQueue, &record, "points at a delivery that does not exist", format!("delivery {delivery_id}"), "nothing");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! Books written through the engine's own posting code (an allocation, a vesting reward
    //! to three users, a partial reversal, a redemption, a webhook delivery with its queue
    //! row) into a real store; each case breaks one thing and expects exactly the
    //! discrepancies that names.

    use super::*;
    use crate::store::codec::encode;
    use crate::domain::model::Environment;
    use crate::domain::money::{Currency, Money};
    use crate::domain::posting::{Changes, PostingUser, ReversalDraft, RewardDraft, post_redemption, post_reversal, post_reward};
    use crate::domain::request::{ActionRequest, IdempotencyKey, PartnerUserId, Stakeholder};
    use crate::domain::rules::{RewardRule, evaluate};
    use crate::store::{StoreBackend, WriteOp, open_store};

    const NOW_MS: u64 = 1_800_000_000_000;

    /// A raw put: the cases plant damage no typed record could hold.
    fn put(key: Vec<u8>, value: Vec<u8>) -> WriteOp {
        WriteOp::Put { key, value }
    }

    /// What the clean books hold, for the cases to break.
    struct Books {
        partner_env: PartnerEnv,
        pool: PoolRecord,
        action: ActionRecord,
        users: Vec<UserRecord>,
        event: EventRecord,
        delivery: DeliveryRecord,
    }

    fn idempotency(resource_id: Id, now_ms: u64) -> IdempotencyRecord {
        IdempotencyRecord {
            request_hash: [1; 32],
            resource_id,
            response_json: b"{}".to_vec(),
            request_id: "req_1".into(),
            effect: crate::domain::model::Effect::Applied,
            created_at_ms: now_ms,
        }
    }

    fn reward_request(users: &[&str]) -> ActionRequest {
        let stakeholder = |id: &&str| Stakeholder {
            stakeholder_type_code: "CUSTOMER".into(),
            partner_user_id: PartnerUserId::parse(id).expect("valid"),
            user_email: None,
            user_first_name: None,
            user_last_name: None,
        };
        ActionRequest {
            idempotency_key: IdempotencyKey::parse("buy-1").expect("valid"),
            action_type: "PURCHASE".into(),
            amount: Some(Money { minor: 10_000, currency: Currency::from_code("USD").expect("USD") }),
            campaign_id: None,
            stakeholders: users.iter().map(stakeholder).collect(),
            auto_create_users: true,
            metadata_json: None,
        }
    }

    fn commit(store: &dyn Store, changes: &Changes, partner_env: &PartnerEnv, state: &mut PartnerEnvState, next_event_sequence: u64) {
        state.next_event_sequence = next_event_sequence;
        store.commit(&[&changes.write_set(partner_env, state)]).expect("commits");
    }

    /// Writes the clean books through the posting functions the partner actor uses.
    fn write_books(store: &dyn Store) -> Books {
        let ids = crate::domain::ids::IdGenerator::new();
        let partner_env = PartnerEnv::new(ids.next(NOW_MS), Environment::Sandbox);
        let pool = PoolRecord { vesting_days: Some(7), ..PoolRecord::new(ids.next(NOW_MS), Environment::Sandbox, NOW_MS) };
        let pool = PoolRecord { balance: 1_000, allocated_total: 1_000, ..pool };
        let mut state = PartnerEnvState { next_event_sequence: 1, default_pool_id: Some(pool.id), daily: Vec::new() };
        let allocation = TransactionRecord {
            id: ids.next(NOW_MS),
            transaction_type: TransactionType::Allocation,
            tokens: 1_000,
            action_id: None,
            pool_id: Some(pool.id),
            partner_user_id: None,
            stakeholder_type_code: None,
            campaign_id: None,
            vests_at_ms: None,
            created_at_ms: NOW_MS,
        };
        let allocated = Changes {
            idempotency: Some((IdempotencyScope::PoolAllocation, "pool".into(), idempotency(ids.next(NOW_MS), NOW_MS))),
            pools: vec![pool.clone()],
            transactions: vec![allocation],
            ..Changes::default()
        };
        commit(store, &allocated, &partner_env, &mut state, 1);

        let request = reward_request(&["alice", "bob", "carol"]);
        let evaluation = evaluate(&RewardRule::default_rule(), request.amount, &request.stakeholder_types()).expect("applies");
        let users =
            ["alice", "bob", "carol"].iter().map(|id| PostingUser { record: UserRecord::new(ids.next(NOW_MS), id, NOW_MS), is_new: true }).collect();
        let draft = RewardDraft {
            partner_env,
            request: &request,
            request_id: "req_1",
            evaluation: &evaluation,
            pool: Some(&pool),
            campaign: None,
            users,
            next_event_sequence: 1,
            now_ms: NOW_MS,
        };
        let mut rewarded = post_reward(draft, &ids);
        let action = rewarded.changes.action.clone().expect("an action");
        rewarded.changes.idempotency = Some((IdempotencyScope::ActionSubmit, "buy-1".into(), idempotency(action.id, NOW_MS)));
        commit(store, &rewarded.changes, &partner_env, &mut state, rewarded.next_event_sequence);

        let later_ms = NOW_MS + 1_000;
        let users: Vec<UserRecord> = rewarded.changes.users.iter().map(|user| user.record.clone()).collect();
        let draft = ReversalDraft {
            partner_env,
            action: &action,
            tokens: 10,
            reason: "refund",
            pool: rewarded.changes.pools.first(),
            users,
            next_event_sequence: rewarded.next_event_sequence,
            now_ms: later_ms,
        };
        let mut reversed = post_reversal(draft, &ids);
        reversed.changes.idempotency = Some((IdempotencyScope::Reversal, "rv-1".into(), idempotency(action.id, later_ms)));
        commit(store, &reversed.changes, &partner_env, &mut state, reversed.next_event_sequence);

        // Vested after eight days: alice spends 5.
        let vested_ms = NOW_MS + 8 * DAY_MS;
        let alice = reversed.changes.users[0].record.clone();
        let mut redeemed = post_redemption(partner_env, &alice, 5, "mug", reversed.next_event_sequence, vested_ms, &ids);
        redeemed.changes.idempotency = Some((IdempotencyScope::Redemption, "spend-1".into(), idempotency(ids.next(vested_ms), vested_ms)));
        commit(store, &redeemed.changes, &partner_env, &mut state, redeemed.next_event_sequence);

        let event = rewarded.changes.events[0].clone();
        let delivery = DeliveryRecord::new(ids.next(NOW_MS), ids.next(NOW_MS), &event, NOW_MS);
        store
            .commit(&[&[
                put(layout::webhook_delivery(&partner_env, delivery.endpoint_id, delivery.id), encode(&delivery)),
                put(layout::webhook_queue(&partner_env, delivery.endpoint_id, NOW_MS, delivery.id), Vec::new()),
            ]])
            .expect("commits");
        let mut users: Vec<UserRecord> = reversed.changes.users.iter().map(|user| user.record.clone()).collect();
        users[0] = redeemed.changes.users[0].record.clone();
        Books {
            partner_env,
            pool: reversed.changes.pools[0].clone(),
            action: reversed.changes.action.clone().expect("action"),
            users,
            event,
            delivery,
        }
    }

    fn run(store: &dyn Store) -> AuditReport {
        let mut calls = 0;
        let report = audit(store, &mut |_| calls += 1).expect("audits");
        assert!(calls > 0, "progress is reported");
        report
    }

    /// Breaks the clean books with `damage` and expects exactly the `(table, problem)` pairs.
    fn check(backend: StoreBackend, damage: impl Fn(&Books) -> Vec<WriteOp>, expected: &[(&str, &str)]) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open_store(backend, dir.path()).expect("opens");
        let books = write_books(store.as_ref());
        let clean = run(store.as_ref());
        assert!(clean.is_clean(), "the engine's own books are clean: {clean}");
        assert_eq!((clean.totals.pools, clean.totals.users, clean.totals.actions, clean.totals.transactions), (1, 3, 1, 8), "{clean}");
        store.commit(&[&damage(&books)]).expect("commits the damage");
        let report = run(store.as_ref());
        let found: Vec<(&str, &str)> = report.discrepancies.iter().map(|item| (item.table, item.problem.as_str())).collect();
        assert_eq!(found, expected, "{report}");
        assert_eq!(report.discrepancies_total, expected.len() as u64);
        assert!(!report.is_clean());
    }

    fn user_key(books: &Books, index: usize) -> Vec<u8> {
        layout::user(&books.partner_env, &books.users[index].external_id)
    }

    fn both(case: impl Fn(StoreBackend)) {
        case(StoreBackend::Redb);
        case(StoreBackend::Sled);
    }

    #[test]
    fn a_user_balance_off_by_one_token() {
        both(|backend| {
            let damage = |books: &Books| {
                let alice = UserRecord { balance: books.users[0].balance + 1, ..books.users[0].clone() };
                vec![put(user_key(books, 0), encode(&alice))]
            };
            check(backend, damage, &[("users", "balance differs from the sum of the user's transactions")]);
        });
    }

    #[test]
    fn lifetime_totals_and_vesting_buckets_follow_the_ledger() {
        both(|backend| {
            let damage = |books: &Books| {
                let mut bob = books.users[1].clone();
                bob.lifetime_redeemed += 1;
                // Rewarded 33 to vest that day, 3 of them reversed: 30 held, at most 33 allowed.
                bob.vesting[0].tokens += 4;
                vec![put(user_key(books, 1), encode(&bob))]
            };
            let expected = [
                ("users", "lifetime redeemed differs from the user's redemptions"),
                ("users", &*format!("vesting bucket of day {} holds more than was rewarded to vest that day", books_vesting_day())),
            ];
            check(backend, damage, &expected);
        });
    }

    fn books_vesting_day() -> u32 {
        crate::domain::model::vesting_day(NOW_MS, 7)
    }

    #[test]
    fn an_orphan_idempotency_record() {
        both(|backend| {
            let damage = |books: &Books| {
                let key = layout::idempotency(&books.partner_env, IdempotencyScope::ActionSubmit, "orphan");
                vec![put(key, encode(&idempotency(Id([9; 12]), NOW_MS)))]
            };
            check(backend, damage, &[("idempotency", "points at an action that does not exist")]);
        });
    }

    #[test]
    fn a_pool_that_does_not_balance_or_match_its_ledger() {
        both(|backend| {
            let damage = |books: &Books| {
                let pool = PoolRecord { balance: books.pool.balance + 1, ..books.pool.clone() };
                vec![put(layout::pool(&books.partner_env, pool.id), encode(&pool))]
            };
            let expected =
                [("pools", "the pool does not balance"), ("pools", "balance differs from its ledger (allocations + refills - rewards + reversals)")];
            check(backend, damage, &expected);
        });
    }

    #[test]
    fn an_action_whose_allocations_do_not_add_up() {
        both(|backend| {
            let damage = |books: &Books| {
                let action = ActionRecord { tokens_distributed: books.action.tokens_distributed + 1, ..books.action.clone() };
                vec![put(layout::action(&books.partner_env, action.id), encode(&action))]
            };
            let expected = [
                ("actions", "tokens distributed differ from the sum of its allocations"),
                ("pools", "issued total differs from what its actions distributed"),
            ];
            check(backend, damage, &expected);
        });
    }

    #[test]
    fn a_missing_reward_transaction() {
        both(|backend| {
            let damage = |books: &Books| {
                let transaction_id = books.action.allocations[2].transaction_id.expect("a reward");
                vec![WriteOp::Delete { key: layout::transaction(&books.partner_env, transaction_id) }]
            };
            // In pass order: carol's ledger (users), the action, then the pools at the end.
            let expected = [
                ("user_transactions", "index names a transaction that does not exist"),
                ("actions", "its reward transaction does not exist"),
                ("pools", "balance differs from its ledger (allocations + refills - rewards + reversals)"),
                ("pools", "issued total differs from its reward transactions"),
            ];
            check(backend, damage, &expected);
        });
    }

    #[test]
    fn values_that_do_not_decode_and_unknown_tables() {
        both(|backend| {
            let damage = |books: &Books| {
                let mut garbled = encode(&books.action);
                garbled.truncate(garbled.len() / 2);
                vec![put(layout::action(&books.partner_env, books.action.id), garbled), put(vec![200, 1, 2], b"?".to_vec())]
            };
            // The pool then misses what the unreadable action distributed and reversed.
            let expected = [
                ("actions", "value does not decode"),
                ("meta", "unknown table"),
                ("pools", "issued total differs from what its actions distributed"),
                ("pools", "reversed total differs from what its actions had reversed"),
            ];
            check(backend, damage, &expected);
        });
    }

    #[test]
    fn the_outbox_points_at_deliveries_and_deliveries_at_events() {
        both(|backend| {
            let damage = |books: &Books| {
                vec![
                    WriteOp::Delete { key: layout::event(&books.partner_env, books.event.sequence) },
                    put(layout::webhook_queue(&books.partner_env, books.delivery.endpoint_id, NOW_MS, Id([8; 12])), Vec::new()),
                ]
            };
            let expected = [("webhook_deliveries", "its event is not in the feed"), ("webhook_queue", "points at a delivery that does not exist")];
            check(backend, damage, &expected);
        });
    }

    #[test]
    fn index_rows_point_at_their_records() {
        both(|backend| {
            let damage = |books: &Books| {
                let ghost = layout::user_transaction(&books.partner_env, "ghost", Id([3; 12]));
                vec![WriteOp::Delete { key: layout::user_by_creation(&books.partner_env, books.users[2].id) }, put(ghost, Vec::new())]
            };
            let expected = [("users", "missing from the creation-order index"), ("user_transactions", "index row of a user that does not exist")];
            check(backend, damage, &expected);
        });
    }

    #[test]
    fn another_schema_version_is_a_discrepancy() {
        both(|backend| {
            let damage = |_: &Books| vec![put(Table::Meta.key(&[SCHEMA_KEY]), 9u32.to_be_bytes().to_vec())];
            check(backend, damage, &[("meta", "schema version differs from this build's")]);
        });
    }

    /// More records than a page, and one user with more transactions than a page: the
    /// paged pass and the paged user ledger still see every row exactly once.
    #[test]
    fn paging_sees_every_record_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open_store(StoreBackend::Sled, dir.path()).expect("opens");
        let ids = crate::domain::ids::IdGenerator::new();
        let partner_env = PartnerEnv::new(ids.next(NOW_MS), Environment::Sandbox);
        let rewards = AUDIT_PAGE_RECORDS + 7;
        let mut pool =
            PoolRecord { balance: 1_000_000, allocated_total: 1_000_000, ..PoolRecord::new(ids.next(NOW_MS), Environment::Sandbox, NOW_MS) };
        let mut user = PostingUser { record: UserRecord::new(ids.next(NOW_MS), "alice", NOW_MS), is_new: true };
        let allocation = TransactionRecord {
            id: ids.next(NOW_MS),
            transaction_type: TransactionType::Allocation,
            tokens: 1_000_000,
            action_id: None,
            pool_id: Some(pool.id),
            partner_user_id: None,
            stakeholder_type_code: None,
            campaign_id: None,
            vests_at_ms: None,
            created_at_ms: NOW_MS,
        };
        let mut state = PartnerEnvState { next_event_sequence: 1, default_pool_id: Some(pool.id), daily: Vec::new() };
        let mut ops = Changes { pools: vec![pool.clone()], transactions: vec![allocation], ..Changes::default() }.write_set(&partner_env, &state);
        for index in 0..rewards {
            let request =
                ActionRequest { idempotency_key: IdempotencyKey::parse(&format!("buy-{index}")).expect("valid"), ..reward_request(&["alice"]) };
            let evaluation = evaluate(&RewardRule::default_rule(), request.amount, &request.stakeholder_types()).expect("applies");
            let draft = RewardDraft {
                partner_env,
                request: &request,
                request_id: "req_1",
                evaluation: &evaluation,
                pool: Some(&pool),
                campaign: None,
                users: vec![user.clone()],
                next_event_sequence: state.next_event_sequence,
                now_ms: NOW_MS,
            };
            let mut posted = post_reward(draft, &ids);
            let action_id = posted.changes.action.as_ref().expect("action").id;
            posted.changes.idempotency = Some((IdempotencyScope::ActionSubmit, format!("buy-{index}"), idempotency(action_id, NOW_MS)));
            state.next_event_sequence = posted.next_event_sequence;
            ops.extend(posted.changes.write_set(&partner_env, &state));
            pool = posted.changes.pools[0].clone();
            user = PostingUser { record: posted.changes.users[0].record.clone(), is_new: false };
        }
        store.commit(&[&ops]).expect("commits");
        let report = run(store.as_ref());
        assert!(report.is_clean(), "{report}");
        assert_eq!((report.totals.actions, report.totals.transactions, report.totals.users), (rewards as u64, rewards as u64 + 1, 1));
        assert_eq!(report.tables.get("user_transactions"), Some(&(rewards as u64)));
    }

    #[test]
    fn every_table_byte_has_its_name() {
        for (byte, (table, _)) in TABLES.iter().enumerate() {
            assert_eq!(*table as usize, byte);
        }
        assert!(table_of(TABLES.len() as u8).is_none());
    }

    #[test]
    fn the_report_shows_at_most_the_bound_and_counts_the_rest() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open_store(StoreBackend::Redb, dir.path()).expect("opens");
        let garbage: Vec<WriteOp> =
            (0..DISCREPANCIES_SHOWN_MAX as u32 + 5).map(|index| put([&[201u8][..], &index.to_be_bytes()].concat(), vec![1])).collect();
        store.commit(&[&garbage]).expect("commits");
        let report = run(store.as_ref());
        assert_eq!((report.discrepancies.len(), report.discrepancies_total), (DISCREPANCIES_SHOWN_MAX, DISCREPANCIES_SHOWN_MAX as u64 + 5));
        let text = report.to_string();
        assert!(text.contains(&format!("the first {DISCREPANCIES_SHOWN_MAX} of {}", DISCREPANCIES_SHOWN_MAX + 5)), "{text}");
    }
}
