//! Reads: straight from the store's committed state, never through an actor. Lists are
//! newest first (ids are time-ordered, so a reverse scan is creation order) and bounded.

use serde::de::DeserializeOwned;

use crate::codec::decode;
use crate::engine::Engine;
use crate::error::EngineError;
use crate::ids::Id;
use crate::keys;
use crate::model::{ActionRecord, PartnerEnv, PartnerRecord, PoolRecord, UserRecord};
use crate::store::{Scan, ScanOrder};

/// The most items a list answers at once (the contract's `limit` range is 1–100).
pub const PAGE_LIMIT_MAX: usize = 100;
/// How far `?page=` may reach (page × limit). Deeper lists use the cursor, which is O(1).
pub const PAGE_OFFSET_MAX: usize = 10_000;

/// One page of a list: resume after `after` (a cursor), or skip `skip` items (`?page=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub after: Option<Id>,
    pub skip: usize,
    pub limit: usize,
}

#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_more: bool,
    /// The id to pass back as the cursor for the next page, when there is one.
    pub next_cursor: Option<Id>,
}

/// A read never shows a pool that does not balance; it reports it (a write would stop).
fn check_conserved(pool: &PoolRecord) -> Result<(), EngineError> {
    if pool.is_conserved() { Ok(()) } else { Err(EngineError::internal("reading a pool", format!("pool {} does not balance", pool.id))) }
}

impl Engine {
    fn read_record<T: DeserializeOwned>(&self, key: &[u8], what: &str) -> Result<Option<T>, EngineError> {
        let bytes = self.shared().store.get(key).map_err(|error| EngineError::internal(what, error))?;
        bytes.map(|bytes| decode(&bytes).map_err(|error| EngineError::internal(what, error))).transpose()
    }

    /// Scans an id-keyed table under `prefix`, newest first.
    fn read_page<T: DeserializeOwned>(&self, prefix: &[u8], page: PageRequest, id_of: impl Fn(&T) -> Id, what: &str) -> Result<Page<T>, EngineError> {
        let limit = page.limit.clamp(1, PAGE_LIMIT_MAX);
        let skip = page.skip.min(PAGE_OFFSET_MAX);
        let after_key = page.after.map(|id| [prefix, id.as_bytes()].concat());
        let scan = Scan { prefix, after: after_key.as_deref(), order: ScanOrder::Descending, limit: skip + limit + 1 };
        let pairs = self.shared().store.scan(scan).map_err(|error| EngineError::internal(what, error))?;
        let mut items = Vec::with_capacity(limit);
        let mut has_more = false;
        for (_, bytes) in pairs.into_iter().skip(skip) {
            if items.len() == limit {
                has_more = true;
                break;
            }
            items.push(decode::<T>(&bytes).map_err(|error| EngineError::internal(what, error))?);
        }
        let next_cursor = if has_more { items.last().map(&id_of) } else { None };
        Ok(Page { items, has_more, next_cursor })
    }

    pub fn get_action(&self, partner_env: PartnerEnv, action_id: Id) -> Result<ActionRecord, EngineError> {
        self.read_record(&keys::action(&partner_env, action_id), "reading an action")?.ok_or(EngineError::NotFound { resource: "action" })
    }

    pub fn get_user(&self, partner_env: PartnerEnv, external_id: &str) -> Result<UserRecord, EngineError> {
        self.read_record(&keys::user(&partner_env, external_id), "reading a user")?
            .ok_or_else(|| EngineError::UserNotFound { partner_user_id: external_id.to_owned() })
    }

    pub fn get_pool(&self, partner_env: PartnerEnv, pool_id: Id) -> Result<PoolRecord, EngineError> {
        let pool: PoolRecord =
            self.read_record(&keys::pool(&partner_env, pool_id), "reading a pool")?.ok_or(EngineError::NotFound { resource: "token pool" })?;
        pool.assert_conserved();
        Ok(pool)
    }

    pub fn list_pools(&self, partner_env: PartnerEnv, page: PageRequest) -> Result<Page<PoolRecord>, EngineError> {
        let page = self.read_page(&keys::pools_prefix(&partner_env), page, |pool: &PoolRecord| pool.id, "listing pools")?;
        page.items.iter().try_for_each(check_conserved)?;
        Ok(page)
    }

    pub fn get_partner(&self, partner_id: Id) -> Result<PartnerRecord, EngineError> {
        self.read_record(&keys::partner(partner_id), "reading a partner")?.ok_or(EngineError::NotFound { resource: "partner" })
    }

    pub fn list_partners(&self, page: PageRequest) -> Result<Page<PartnerRecord>, EngineError> {
        self.read_page(&keys::partners_prefix(), page, |partner: &PartnerRecord| partner.id, "listing partners")
    }
}

impl Engine {
    /// The durable event feed of one (partner, environment), ascending by sequence, after
    /// `after_sequence` (0 for the beginning), at most `limit` events.
    pub fn list_events(&self, partner_env: PartnerEnv, after_sequence: u64, limit: usize) -> Result<Vec<crate::model::EventRecord>, EngineError> {
        let prefix = keys::events_prefix(&partner_env);
        let after = keys::event(&partner_env, after_sequence);
        let scan = Scan { prefix: &prefix, after: Some(&after), order: ScanOrder::Ascending, limit: limit.clamp(1, PAGE_LIMIT_MAX) };
        let pairs = self.shared().store.scan(scan).map_err(|error| EngineError::internal("listing events", error))?;
        pairs.into_iter().map(|(_, bytes)| decode(&bytes).map_err(|error| EngineError::internal("decoding an event", error))).collect()
    }
}
