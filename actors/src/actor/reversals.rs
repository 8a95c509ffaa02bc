//! Reversals: all or part of an action's tokens back into its pool, pro rata per
//! allocation; users may go below zero. Idempotent, and never more than remains.

use super::{ActorReply, PartnerActor, WriteOutcome};
use crate::domain::model::{Effect, IdempotencyScope, UserRecord};
use crate::domain::posting::{ReversalDraft, post_reversal};
use crate::domain::request::ReversalRequest;
use crate::engine::error::EngineError;

impl PartnerActor {
    pub(super) fn reverse(&mut self, request: &ReversalRequest, request_id: &str, now_ms: u64) -> ActorReply<WriteOutcome> {
        let request_hash = request.fingerprint();
        let key = request.idempotency_key.as_str();
        if let Some(answer) = self.replay(IdempotencyScope::Reversal, key, &request_hash) {
            return answer;
        }
        let action = match self.load_action(request.action_id) {
            Ok(Some(action)) => action,
            Ok(None) => return ActorReply::failed(EngineError::NotFound { resource: "action" }),
            Err(error) => return ActorReply::failed(error),
        };
        let remaining = action.tokens_distributed - action.reversed_tokens;
        let tokens = request.tokens.unwrap_or(remaining);
        if tokens == 0 || tokens > remaining {
            return ActorReply::failed(EngineError::ReversalExceedsRemaining { remaining });
        }
        let mut users: Vec<UserRecord> = Vec::with_capacity(action.allocations.len());
        for allocation in &action.allocations {
            match self.load_user(&allocation.partner_user_id) {
                Ok(Some(user)) => users.push(user),
                Ok(None) => {
                    return ActorReply::failed(EngineError::internal(
                        "reversing an action",
                        format!("user {} of action {} is missing", allocation.partner_user_id, action.id),
                    ));
                }
                Err(error) => return ActorReply::failed(error),
            }
        }
        let state = self.loaded();
        let pool = action.pool_id.and_then(|pool_id| state.pools.get(&pool_id));
        if pool.is_none() {
            return ActorReply::failed(EngineError::internal("reversing an action", format!("the pool of action {} is missing", action.id)));
        }
        let draft = ReversalDraft {
            partner_env: self.partner_env,
            action: &action,
            tokens,
            reason: &request.reason,
            pool,
            users,
            next_event_sequence: state.env_state.next_event_sequence,
            now_ms,
        };
        let posting = post_reversal(draft, &self.shared.ids);
        self.finish(posting, Some((IdempotencyScope::Reversal, key, request_hash)), request_id, Effect::Applied, (0, 0, tokens), now_ms)
    }
}
