//! Token-pool top-up requests: a partner asks for tokens, an operator approves (which
//! allocates them to the partner's default pool, exactly once) or rejects. A request is
//! decided once; a second decision is a conflict.

use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::engine::error::EngineError;
use crate::api::facades::Pools;
use crate::domain::ids::Id;
use crate::domain::model::{IdempotencyScope, PartnerEnv};
use crate::actor::WriteOutcome;
use crate::domain::request::{AllocationRequest, IdempotencyKey};
use crate::store::reads::{Page, PageRequest, Verdict};
use crate::store::records;

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PoolRequestStatus {
    Pending,
    Approved,
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolRequestRecord {
    pub id: Id,
    pub partner_env: PartnerEnv,
    pub tokens: u64,
    pub reason: String,
    pub status: PoolRequestStatus,
    pub decision_note: Option<String>,
    pub created_at_ms: u64,
    pub decided_at_ms: Option<u64>,
}

/// The idempotency key of a request's allocation: approving twice allocates once.
fn allocation_key(request_id: Id) -> String {
    format!("pool-request-{request_id}")
}

impl Pools<'_> {
    pub async fn request_pool_tokens(&self, partner_env: PartnerEnv, tokens: u64, reason: String) -> Result<PoolRequestRecord, EngineError> {
        let now_ms = self.engine.clock().now_ms();
        let record = PoolRequestRecord {
            id: self.engine.ids().next(now_ms),
            partner_env,
            tokens,
            reason,
            status: PoolRequestStatus::Pending,
            decision_note: None,
            created_at_ms: now_ms,
            decided_at_ms: None,
        };
        self.engine.commit_admin(vec![records::pool_request(record.id).put(&record)]).await?;
        Ok(record)
    }

    pub fn get_pool_request(&self, request_id: Id) -> Result<PoolRequestRecord, EngineError> {
        let record = self.engine.read_record(&records::pool_request(request_id), "reading a pool request")?;
        record.ok_or(EngineError::NotFound { resource: "token pool request" })
    }

    /// Requests newest first, optionally only those in `status`, paged like every list.
    pub fn list_pool_requests(&self, status: Option<PoolRequestStatus>, page: PageRequest) -> Result<Page<PoolRequestRecord>, EngineError> {
        let filter = |record: &PoolRequestRecord| if status.is_none_or(|status| record.status == status) { Verdict::Keep } else { Verdict::Skip };
        self.engine.read_filtered_page(&records::pool_requests(), page, |record: &PoolRequestRecord| record.id, &filter, "listing pool requests")
    }

    /// Approves a pending request: its tokens go to the partner's default pool (idempotent
    /// under the request's id), then the request is marked approved.
    pub async fn approve_pool_request(&self, request_id: Id, note: Option<String>) -> Result<(PoolRequestRecord, WriteOutcome), EngineError> {
        let _admin = self.engine.inner.admin_lock.lock().await;
        let mut record = self.engine.pending_pool_request(request_id)?;
        let allocation = AllocationRequest {
            new_pool: false,
            idempotency_key: IdempotencyKey::parse(&allocation_key(record.id)).expect("a fixed ASCII key"),
            tokens: record.tokens,
            pool_id: None,
            name: None,
            expires_at_ms: None,
            vesting_days: None,
            low_balance_threshold: None,
            auto_refill: None,
        };
        let request_id_text = self.engine.ids().request_id(self.engine.clock().now_ms());
        let outcome = self.allocate_tokens(record.partner_env, allocation, request_id_text).await?;
        record.status = PoolRequestStatus::Approved;
        self.engine.decide(&mut record, note).await?;
        Ok((record, outcome))
    }

    pub async fn reject_pool_request(&self, request_id: Id, note: Option<String>) -> Result<PoolRequestRecord, EngineError> {
        let _admin = self.engine.inner.admin_lock.lock().await;
        let mut record = self.engine.pending_pool_request(request_id)?;
        // An approval whose allocation landed but whose status write did not: it was
        // approved, and the tokens are the partner's. Finish recording that instead.
        let allocation = records::idempotency(&record.partner_env, IdempotencyScope::PoolAllocation, &allocation_key(record.id));
        if allocation.exists(self.engine.shared().store.as_ref()).map_err(|error| EngineError::internal("reading an allocation", error))? {
            record.status = PoolRequestStatus::Approved;
            self.engine.decide(&mut record, None).await?;
            return Err(EngineError::Conflict { message: "this request was already approved".into() });
        }
        record.status = PoolRequestStatus::Rejected;
        self.engine.decide(&mut record, note).await?;
        Ok(record)
    }
}

impl Engine {
    fn pending_pool_request(&self, request_id: Id) -> Result<PoolRequestRecord, EngineError> {
        let record = self.pools().get_pool_request(request_id)?;
        if record.status != PoolRequestStatus::Pending {
            return Err(EngineError::Conflict { message: format!("this request was already {:?}", record.status).to_lowercase() });
        }
        Ok(record)
    }

    async fn decide(&self, record: &mut PoolRequestRecord, note: Option<String>) -> Result<(), EngineError> {
        record.decision_note = note;
        record.decided_at_ms = Some(self.clock().now_ms());
        self.commit_admin(vec![records::pool_request(record.id).put(&*record)]).await
    }
}
