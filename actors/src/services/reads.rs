//! The façades' reads: straight from the store's committed state, never through an actor.
//! Lists are newest first (ids are time-ordered, so a reverse scan is creation order) and
//! bounded; they page through `store::reads`, the one paging loop.

use crate::api::facades::{Actions, Campaigns, Partners, Pools, Users, Webhooks};
use crate::domain::ids::Id;
use crate::domain::model::{
    ActionRecord, ActionStatus, CampaignRecord, CampaignStatus, DailyTotals, EventRecord, PartnerEnv, PartnerEnvState, PartnerRecord, PoolRecord,
    TransactionRecord, TransactionType, UserRecord,
};
use crate::engine::Engine;
use crate::engine::error::EngineError;
use crate::store::ScanOrder;
use crate::store::reads::{self, ListScan, Page, PageRequest, Verdict};
use crate::store::records::{self, RecordKey, Records, Row, StoredValue, UserTransactionEntry};

/// A read never shows a pool that does not balance; it reports it (a write would stop).
fn check_conserved(pool: &PoolRecord) -> Result<(), EngineError> {
    if pool.is_conserved() { Ok(()) } else { Err(EngineError::internal("reading a pool", format!("pool {} does not balance", pool.id))) }
}

impl Engine {
    /// One record, `None` when there is none; a failure is logged once with `what`.
    pub(crate) fn read_record<T: StoredValue>(&self, key: &RecordKey<T>, what: &str) -> Result<Option<T>, EngineError> {
        reads::record(self.shared().store.as_ref(), key, what)
    }

    /// Pages id-keyed `records`, newest first.
    pub(crate) fn read_page<T: StoredValue>(
        &self,
        records: &Records<T>,
        page: PageRequest,
        id_of: impl Fn(&T) -> Id,
        what: &str,
    ) -> Result<Page<T>, EngineError> {
        self.read_filtered_page(records, page, id_of, &|_: &T| Verdict::Keep, what)
    }

    /// Pages id-keyed `records`, newest first, keeping what `filter` keeps.
    pub(crate) fn read_filtered_page<T: StoredValue>(
        &self,
        records: &Records<T>,
        page: PageRequest,
        id_of: impl Fn(&T) -> Id,
        filter: &dyn Fn(&T) -> Verdict,
        what: &str,
    ) -> Result<Page<T>, EngineError> {
        reads::page(self.shared().store.as_ref(), records, page, &id_of, filter, what)
    }
}

impl Actions<'_> {
    pub fn get_action(&self, partner_env: PartnerEnv, action_id: Id) -> Result<ActionRecord, EngineError> {
        self.engine.read_record(&records::action(&partner_env, action_id), "reading an action")?.ok_or(EngineError::NotFound { resource: "action" })
    }
}

impl Users<'_> {
    pub fn get_user(&self, partner_env: PartnerEnv, external_id: &str) -> Result<UserRecord, EngineError> {
        self.engine.read_record(&records::user(&partner_env, external_id), "reading a user")?
            .ok_or_else(|| EngineError::UserNotFound { partner_user_id: external_id.to_owned() })
    }
}

impl Pools<'_> {
    pub fn get_pool(&self, partner_env: PartnerEnv, pool_id: Id) -> Result<PoolRecord, EngineError> {
        let pool: PoolRecord =
            self.engine.read_record(&records::pool(&partner_env, pool_id), "reading a pool")?.ok_or(EngineError::NotFound { resource: "token pool" })?;
        pool.assert_conserved();
        Ok(pool)
    }

    pub fn list_pools(&self, partner_env: PartnerEnv, page: PageRequest) -> Result<Page<PoolRecord>, EngineError> {
        let page = self.engine.read_page(&records::pools(&partner_env), page, |pool: &PoolRecord| pool.id, "listing pools")?;
        page.items.iter().try_for_each(check_conserved)?;
        Ok(page)
    }
}

impl Partners<'_> {
    pub fn get_partner(&self, partner_id: Id) -> Result<PartnerRecord, EngineError> {
        self.engine.read_record(&records::partner(partner_id), "reading a partner")?.ok_or(EngineError::NotFound { resource: "partner" })
    }

    pub fn list_partners(&self, page: PageRequest) -> Result<Page<PartnerRecord>, EngineError> {
        self.engine.read_page(&records::partners(), page, |partner: &PartnerRecord| partner.id, "listing partners")
    }
}

impl Webhooks<'_> {
    /// The durable event feed of one (partner, environment), ascending by sequence, after
    /// `after_sequence` (0 for the beginning), at most `limit` events; the cursor is the
    /// last event's sequence.
    pub fn list_events(&self, partner_env: PartnerEnv, after_sequence: u64, limit: usize) -> Result<Page<EventRecord, u64>, EngineError> {
        let events = records::events(&partner_env);
        let after = Some(records::event(&partner_env, after_sequence));
        let scan = ListScan { records: &events, after, order: ScanOrder::Ascending, skip: 0, limit };
        let resolve = |row: &Row<EventRecord>| row.record().map(Some).map_err(|error| EngineError::internal("decoding an event", error));
        let store = self.engine.shared().store.as_ref();
        reads::scan_list(store, scan, &resolve, &|event: &EventRecord| event.sequence, &|_: &EventRecord| Verdict::Keep, "listing events")
    }
}

/// A time window over `createdAt`, both ends inclusive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub from_ms: Option<u64>,
    pub to_ms: Option<u64>,
}

impl TimeRange {
    /// Newest first: past `to` is skipped, before `from` ends the list.
    fn verdict(&self, created_at_ms: u64) -> Verdict {
        if self.from_ms.is_some_and(|from| created_at_ms < from) {
            Verdict::Stop
        } else if self.to_ms.is_some_and(|to| created_at_ms > to) {
            Verdict::Skip
        } else {
            Verdict::Keep
        }
    }
}

/// `GET /v1/partner/actions?status=&actionType=&from=&to=`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionFilter {
    pub status: Option<ActionStatus>,
    pub action_type: Option<String>,
    pub created: TimeRange,
}

/// `GET /v1/partner/transactions?type=&actionId=&from=&to=`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransactionFilter {
    pub transaction_type: Option<TransactionType>,
    pub action_id: Option<Id>,
    pub created: TimeRange,
}

impl TransactionFilter {
    fn verdict(&self, transaction: &TransactionRecord) -> Verdict {
        let matches = self.transaction_type.is_none_or(|wanted| transaction.transaction_type == wanted)
            && self.action_id.is_none_or(|wanted| transaction.action_id == Some(wanted));
        match self.created.verdict(transaction.created_at_ms) {
            Verdict::Keep if !matches => Verdict::Skip,
            verdict => verdict,
        }
    }
}

/// A pool's totals recomputed from its ledger, beside the totals the pool holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciliation {
    pub pool: PoolRecord,
    pub ledger: LedgerTotals,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerTotals {
    pub transactions: u64,
    pub allocated: u64,
    pub refilled: u64,
    pub issued: u64,
    pub reversed: u64,
}

impl LedgerTotals {
    fn add(&mut self, transaction: &TransactionRecord) {
        let tokens = transaction.tokens.unsigned_abs();
        self.transactions += 1;
        match transaction.transaction_type {
            TransactionType::Allocation => self.allocated += tokens,
            TransactionType::Refill => self.refilled += tokens,
            TransactionType::Reward => self.issued += tokens,
            TransactionType::Reversal => self.reversed += tokens,
            TransactionType::Redemption => {}
        }
    }

    /// What the pool should hold by its ledger: `allocated + refilled − issued + reversed`.
    pub fn balance(&self) -> i128 {
        i128::from(self.allocated) + i128::from(self.refilled) - i128::from(self.issued) + i128::from(self.reversed)
    }

    pub fn matches(&self, pool: &PoolRecord) -> bool {
        self.allocated == pool.allocated_total
            && self.refilled == pool.refilled_total
            && self.issued == pool.issued_total
            && self.reversed == pool.reversed_total
            && self.balance() == i128::from(pool.balance)
    }
}

/// The most ledger entries one reconciliation reads; a larger ledger answers 422.
pub const RECONCILIATION_TRANSACTIONS_MAX: u64 = 5_000_000;
/// Attempts to read a pool and its ledger with no write in between.
const RECONCILIATION_ATTEMPTS_MAX: usize = 5;

/// `GET /v1/partner/dashboard`, before rendering.
#[derive(Debug, Clone)]
pub struct Dashboard {
    pub daily: Vec<DailyTotals>,
    pub pools: Vec<PoolRecord>,
    pub campaigns_active: u64,
    pub campaigns_total: u64,
}

/// How many pools and campaigns the dashboard reads (the engine's per-partner maxima are lower).
const DASHBOARD_RECORDS_MAX: usize = 1_000;

impl Campaigns<'_> {
    pub fn get_campaign(&self, partner_env: PartnerEnv, campaign_id: Id) -> Result<CampaignRecord, EngineError> {
        self.engine.read_record(&records::campaign(&partner_env, campaign_id), "reading a campaign")?.ok_or(EngineError::NotFound { resource: "campaign" })
    }

    pub fn list_campaigns(
        &self,
        partner_env: PartnerEnv,
        page: PageRequest,
        status: Option<CampaignStatus>,
    ) -> Result<Page<CampaignRecord>, EngineError> {
        let filter = |campaign: &CampaignRecord| if status.is_none_or(|wanted| campaign.status == wanted) { Verdict::Keep } else { Verdict::Skip };
        self.engine.read_filtered_page(&records::campaigns(&partner_env), page, |campaign: &CampaignRecord| campaign.id, &filter, "listing campaigns")
    }
}

impl Users<'_> {
    /// Users newest first, through the by-creation index.
    pub fn list_users(&self, partner_env: PartnerEnv, page: PageRequest) -> Result<Page<UserRecord>, EngineError> {
        let resolve = |row: &Row<String>| {
            let external_id = row.record().map_err(|error| EngineError::internal("decoding a user index entry", error))?;
            self.engine.read_record::<UserRecord>(&records::user(&partner_env, &external_id), "reading a user")
        };
        let store = self.engine.shared().store.as_ref();
        reads::index_page(store, &records::users_by_creation(&partner_env), page, &resolve, &|user: &UserRecord| user.id, &|_| Verdict::Keep, "listing users")
    }
}

impl Actions<'_> {
    pub fn list_actions(&self, partner_env: PartnerEnv, page: PageRequest, filter: &ActionFilter) -> Result<Page<ActionRecord>, EngineError> {
        let verdict = |action: &ActionRecord| {
            let matches = filter.status.is_none_or(|wanted| action.status == wanted)
                && filter.action_type.as_ref().is_none_or(|wanted| action.action_type == *wanted);
            match filter.created.verdict(action.created_at_ms) {
                Verdict::Keep if !matches => Verdict::Skip,
                verdict => verdict,
            }
        };
        self.engine.read_filtered_page(&records::actions(&partner_env), page, |action: &ActionRecord| action.id, &verdict, "listing actions")
    }
}

impl Users<'_> {
    /// The partner's whole ledger (or one user's, through the per-user index), newest first.
    pub fn list_transactions(
        &self,
        partner_env: PartnerEnv,
        user: Option<&str>,
        page: PageRequest,
        filter: &TransactionFilter,
    ) -> Result<Page<TransactionRecord>, EngineError> {
        let id_of = |transaction: &TransactionRecord| transaction.id;
        let verdict = |transaction: &TransactionRecord| filter.verdict(transaction);
        match user {
            None => self.engine.read_filtered_page(&records::transactions(&partner_env), page, id_of, &verdict, "listing transactions"),
            Some(external_id) => {
                let resolve = |row: &Row<UserTransactionEntry>| {
                    let id = row.key.transaction_id();
                    let id = id.ok_or_else(|| EngineError::internal("decoding a user transaction index entry", "short key"))?;
                    self.engine.read_record::<TransactionRecord>(&records::transaction(&partner_env, id), "reading a transaction")
                };
                let store = self.engine.shared().store.as_ref();
                let index = records::user_transactions(&partner_env, external_id);
                reads::index_page(store, &index, page, &resolve, &id_of, &verdict, "listing transactions")
            }
        }
    }
}

impl Pools<'_> {
    /// Recomputes a pool's totals from its ledger. The pool is read before and after the
    /// ledger; a write between them (commits are atomic) means another try.
    pub fn reconcile_pool(&self, partner_env: PartnerEnv, pool_id: Id) -> Result<Reconciliation, EngineError> {
        for _ in 0..RECONCILIATION_ATTEMPTS_MAX {
            let before = self.get_pool(partner_env, pool_id)?;
            let ledger = self.engine.pool_ledger(partner_env, pool_id)?;
            let after = self.get_pool(partner_env, pool_id)?;
            if before == after {
                return Ok(Reconciliation { pool: after, ledger });
            }
        }
        Err(EngineError::Overloaded { reason: "pool_busy", retry_after_secs: 1 })
    }
}

impl Engine {
    fn pool_ledger(&self, partner_env: PartnerEnv, pool_id: Id) -> Result<LedgerTotals, EngineError> {
        let ledger = records::transactions(&partner_env);
        let store = self.shared().store.as_ref();
        let mut totals = LedgerTotals::default();
        let mut after: Option<RecordKey<TransactionRecord>> = None;
        let mut read = 0u64;
        loop {
            let rows = ledger
                .scan_after(store, after.as_ref(), ScanOrder::Ascending, reads::SCAN_CHUNK)
                .map_err(|error| EngineError::internal("reading a ledger", error))?;
            let exhausted = rows.len() < reads::SCAN_CHUNK;
            for row in rows {
                read += 1;
                if read > RECONCILIATION_TRANSACTIONS_MAX {
                    return Err(EngineError::Invalid {
                        field: "tokenPoolId".into(),
                        message: format!("the ledger holds more than {RECONCILIATION_TRANSACTIONS_MAX} transactions; reconcile offline"),
                    });
                }
                let transaction = row.record().map_err(|error| EngineError::internal("decoding a transaction", error))?;
                if transaction.pool_id == Some(pool_id) {
                    totals.add(&transaction);
                }
                after = Some(row.key);
            }
            if exhausted {
                return Ok(totals);
            }
        }
    }
}

impl Partners<'_> {
    pub fn dashboard(&self, partner_env: PartnerEnv) -> Result<Dashboard, EngineError> {
        let state: Option<PartnerEnvState> = self.engine.read_record(&records::partner_env_state(&partner_env), "reading partner state")?;
        let store = self.engine.shared().store.as_ref();
        let pools = records::pools(&partner_env)
            .read(store, ScanOrder::Descending, DASHBOARD_RECORDS_MAX)
            .map_err(|error| EngineError::internal("reading pools", error))?;
        pools.iter().try_for_each(check_conserved)?;
        let campaigns = records::campaigns(&partner_env)
            .read(store, ScanOrder::Descending, DASHBOARD_RECORDS_MAX)
            .map_err(|error| EngineError::internal("reading campaigns", error))?;
        let mut campaigns_active = 0;
        let mut campaigns_total = 0;
        for campaign in campaigns {
            campaigns_total += 1;
            campaigns_active += u64::from(campaign.status == CampaignStatus::Active);
        }
        Ok(Dashboard { daily: state.map(|state| state.daily).unwrap_or_default(), pools, campaigns_active, campaigns_total })
    }
}
