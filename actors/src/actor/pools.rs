//! Allocations: an operator's tokens into a pool (created on first use), idempotently.

use super::{ActorReply, PartnerActor, WriteOutcome};
use crate::api::views::PoolView;
use crate::domain::model::{Effect, IdempotencyScope, PoolRecord, TransactionRecord, TransactionType};
use crate::domain::money::TOKENS_MAX;
use crate::domain::posting::{Changes, RewardPosting};
use crate::domain::request::AllocationRequest;
use crate::engine::error::EngineError;

impl PartnerActor {
    pub(super) fn allocate(&mut self, request: &AllocationRequest, request_id: &str, now_ms: u64) -> ActorReply<WriteOutcome> {
        let request_hash = request.fingerprint();
        let key = request.idempotency_key.as_str();
        if let Some(answer) = self.replay(IdempotencyScope::PoolAllocation, key, &request_hash) {
            return answer;
        }
        let pools_max = self.shared.config.pools_per_partner_max;
        let partner_env = self.partner_env;
        let pool_id = self.shared.ids.next(now_ms);
        let state = self.loaded_mut();
        let target = if request.new_pool { None } else { request.pool_id.or(state.env_state.default_pool_id) };
        let (mut pool, created) = match target.map(|pool_id| state.pools.get(&pool_id)) {
            Some(Some(pool)) => (pool.clone(), false),
            Some(None) if request.pool_id.is_some() => return ActorReply::failed(EngineError::NotFound { resource: "token pool" }),
            _ if state.pools.len() >= pools_max => {
                return ActorReply::failed(EngineError::Invalid {
                    field: "poolId".into(),
                    message: format!("at most {pools_max} token pools per partner and environment"),
                });
            }
            _ => (PoolRecord::new(pool_id, partner_env.environment, now_ms), true),
        };
        let Some(balance) = pool.balance.checked_add(request.tokens).filter(|balance| *balance <= TOKENS_MAX) else {
            return ActorReply::failed(EngineError::Invalid {
                field: "tokens".into(),
                message: format!("the pool balance would exceed {TOKENS_MAX}"),
            });
        };
        let Some(allocated_total) = pool.allocated_total.checked_add(request.tokens) else {
            return ActorReply::failed(EngineError::Invalid {
                field: "tokens".into(),
                message: "the pool's allocated total would pass its maximum".into(),
            });
        };
        pool.balance = balance;
        pool.allocated_total = allocated_total;
        pool.updated_at_ms = now_ms;
        apply_pool_settings(&mut pool, request);
        pool.assert_conserved();
        if created && state.env_state.default_pool_id.is_none() {
            state.env_state.default_pool_id = Some(pool.id);
        }
        let transaction = TransactionRecord {
            id: self.shared.ids.next(now_ms),
            transaction_type: TransactionType::Allocation,
            tokens: i64::try_from(request.tokens).expect("tokens are at most TOKENS_MAX"),
            action_id: None,
            pool_id: Some(pool.id),
            partner_user_id: None,
            stakeholder_type_code: None,
            campaign_id: None,
            vests_at_ms: None,
            created_at_ms: now_ms,
        };
        let response_json = serde_json::to_vec(&PoolView::from(&pool)).expect("serializing a pool view cannot fail");
        let next_event_sequence = self.loaded().env_state.next_event_sequence;
        let changes = Changes { pools: vec![pool], transactions: vec![transaction], ..Changes::default() };
        let posting = RewardPosting { changes, response_json, next_event_sequence };
        let effect = if created { Effect::Created } else { Effect::Applied };
        self.finish(posting, Some((IdempotencyScope::PoolAllocation, key, request_hash)), request_id, effect, (0, 0, 0), now_ms)
    }
}

/// Settings sent with an allocation replace the pool's; absent ones leave it as it is.
fn apply_pool_settings(pool: &mut PoolRecord, request: &AllocationRequest) {
    if let Some(name) = &request.name {
        pool.name = Some(name.clone());
    }
    if let Some(expires_at_ms) = request.expires_at_ms {
        pool.expires_at_ms = Some(expires_at_ms);
    }
    if let Some(vesting_days) = request.vesting_days {
        pool.vesting_days = Some(vesting_days);
    }
    if let Some(threshold) = request.low_balance_threshold {
        pool.low_balance_threshold = Some(threshold);
    }
    if let Some(auto_refill) = request.auto_refill {
        pool.auto_refill = Some(auto_refill);
    }
    if pool.low_balance_threshold.is_none_or(|threshold| pool.balance >= threshold) {
        pool.low_balance_notified = false;
    }
}
