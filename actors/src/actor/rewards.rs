//! Submit and quote: campaign selection, arithmetic, funding, posting.

use serde::Serialize;

use super::{ActorReply, PartnerActor, WriteOutcome};
use crate::api::views::{QuoteFunding, QuoteView, QuotedCampaign, raw_json};
use crate::domain::campaigns;
use crate::domain::ids::Id;
use crate::domain::model::{CampaignRecord, Effect, IdempotencyScope};
use crate::domain::posting::{RewardDraft, breakdown_json, post_refill, post_reward, refill_due, reward_fits};
use crate::domain::request::ActionRequest;
use crate::domain::rules::{Evaluation, RewardRule, evaluate};
use crate::engine::error::EngineError;

/// How an action would be rewarded: by which campaign, for how much, from which pool.
pub(super) struct Decision {
    pub campaign: Option<CampaignRecord>,
    pub evaluation: Evaluation,
    pub pool_id: Option<Id>,
}

impl PartnerActor {
    /// Selects the campaign and evaluates the action (no funding checks, no effects).
    pub(super) fn decide(&self, request: &ActionRequest, now_ms: u64) -> Result<Decision, EngineError> {
        let state = self.loaded();
        let campaign = campaigns::select(state.campaigns.values(), request.campaign_id, &request.action_type, request.amount, now_ms)
            .map_err(|reason| EngineError::CampaignNotApplicable { reason })?
            .cloned();
        let rule = campaign.as_ref().map_or_else(RewardRule::default_rule, campaigns::rule);
        let evaluation = evaluate(&rule, request.amount, &request.stakeholder_types())
            .map_err(|error| EngineError::CampaignNotApplicable { reason: error.to_string() })?;
        let pool_id = campaign.as_ref().and_then(|campaign| campaign.token_pool_id).or(state.env_state.default_pool_id);
        Ok(Decision { campaign, evaluation, pool_id })
    }

    /// Funding (contract §6 item 4): the pool holds the tokens and has not expired, and the
    /// campaign's budget covers them. Nothing is needed when nothing is issued.
    fn check_funding(&self, decision: &Decision, with_refill: bool, now_ms: u64) -> Result<(), EngineError> {
        let required = decision.evaluation.tokens_distributed;
        if required == 0 {
            return Ok(());
        }
        let pool = decision.pool_id.and_then(|pool_id| self.loaded().pools.get(&pool_id));
        match pool {
            None => return Err(EngineError::InsufficientPool { required, available: 0 }),
            Some(pool) if pool.is_expired(now_ms) => return Err(EngineError::PoolExpired { pool_id: pool.id }),
            Some(pool) if pool.balance < required => {
                // A quote counts the auto-refill a submit would make first.
                let refill = if with_refill { refill_due(pool, required, now_ms).unwrap_or(0) } else { 0 };
                if pool.balance + refill < required {
                    return Err(EngineError::InsufficientPool { required, available: pool.balance });
                }
            }
            Some(_) => {}
        }
        match &decision.campaign {
            Some(campaign) => campaigns::budget_covers(campaign, required),
            None => Ok(()),
        }
    }

    /// Contract §8: a pool with auto-refill tops itself up when its balance is too low for
    /// this reward, before the funding check — only when the refill makes the reward
    /// fundable, so a refused action still moves nothing. The refill is its own write set,
    /// queued ahead of the reward's, so it is durable no later than the reward.
    fn refill_before(&mut self, decision: &Decision, now_ms: u64) {
        let required = decision.evaluation.tokens_distributed;
        let Some(pool) = decision.pool_id.and_then(|pool_id| self.loaded().pools.get(&pool_id)) else {
            return;
        };
        if required == 0 || pool.balance >= required || self.check_funding(decision, true, now_ms).is_err() {
            return;
        }
        let next_event_sequence = self.loaded().env_state.next_event_sequence;
        if let Some(posting) = post_refill(self.partner_env, pool, required, &self.shared.ids, next_event_sequence, now_ms) {
            let _ = self.finish(posting, None, "", Effect::Applied, (0, 0, 0), now_ms);
        }
    }

    pub(super) fn submit(&mut self, request: &ActionRequest, request_id: &str, now_ms: u64) -> ActorReply<WriteOutcome> {
        let request_hash = request.fingerprint();
        let key = request.idempotency_key.as_str();
        if let Some(answer) = self.replay(IdempotencyScope::ActionSubmit, key, &request_hash) {
            return answer;
        }
        let users = match self.stakeholder_users(request, now_ms) {
            Ok(users) => users,
            Err(error) => return ActorReply::failed(error),
        };
        let decision = match self.decide(request, now_ms) {
            Ok(decision) => decision,
            Err(error) => return self.reject(error, request, now_ms),
        };
        self.refill_before(&decision, now_ms);
        if let Err(error) = self.check_funding(&decision, false, now_ms) {
            return self.reject(error, request, now_ms);
        }
        let state = self.loaded();
        let pool = decision.pool_id.and_then(|pool_id| state.pools.get(&pool_id));
        if !reward_fits(&decision.evaluation, pool, &users) {
            return ActorReply::failed(EngineError::Invalid {
                field: "amount".into(),
                message: "this reward would take a balance or total past its maximum".into(),
            });
        }
        let draft = RewardDraft {
            partner_env: self.partner_env,
            request,
            request_id,
            evaluation: &decision.evaluation,
            pool,
            campaign: decision.campaign.as_ref(),
            users,
            next_event_sequence: state.env_state.next_event_sequence,
            now_ms,
        };
        let posting = post_reward(draft, &self.shared.ids);
        let issued = decision.evaluation.tokens_distributed;
        self.finish(posting, Some((IdempotencyScope::ActionSubmit, key, request_hash)), request_id, Effect::Applied, (1, issued, 0), now_ms)
    }

    /// The full breakdown a submit would get now, and whether it would be funded; no effects.
    pub(super) fn quote(&mut self, request: &ActionRequest, now_ms: u64) -> ActorReply<WriteOutcome> {
        let decision = match self.decide(request, now_ms) {
            Ok(decision) => decision,
            Err(error) => return ActorReply::failed(error),
        };
        let pool = decision.pool_id.and_then(|pool_id| self.loaded().pools.get(&pool_id));
        let funding = self.check_funding(&decision, true, now_ms);
        let quote = QuoteView {
            campaign: decision.campaign.as_ref().map(|campaign| QuotedCampaign {
                id: campaign.id.to_hex(),
                name: campaign.name.clone(),
                priority: campaign.priority,
            }),
            tokens_distributed: decision.evaluation.tokens_distributed,
            breakdown: raw_json(&breakdown_json(request, &decision.evaluation, decision.pool_id)),
            funding: QuoteFunding {
                token_pool_id: decision.pool_id.map(Id::to_hex),
                pool_balance: pool.map(|pool| pool.balance),
                campaign_budget_remaining: decision.campaign.as_ref().and_then(|campaign| campaign.budget_remaining),
                sufficient: funding.is_ok(),
                code: funding.err().map(|error| error.code()),
            },
        };
        // Through a `Value`: the quote has always been written with its keys sorted.
        let body = serde_json::to_value(&quote).expect("a quote serializes");
        let recorded = super::Recorded { effect: Effect::Applied, body: std::sync::Arc::from(serde_json::to_vec(&body).expect("JSON serializes")) };
        ActorReply { outcome: Ok(WriteOutcome::Done(recorded)), receipt: None }
    }

    /// An engine rejection (402/422): nothing is stored under the key, so the request may be
    /// retried; `action.failed` is recorded in the feed. Other errors record nothing.
    fn reject(&mut self, error: EngineError, request: &ActionRequest, now_ms: u64) -> ActorReply<WriteOutcome> {
        if !error.emits_action_failed() {
            return ActorReply::failed(error);
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct ActionFailed<'a> {
            idempotency_key: &'a str,
            code: &'a str,
        }
        let failed = ActionFailed { idempotency_key: request.idempotency_key.as_str(), code: error.code() };
        let receipt = self.commit_event(crate::webhooks::EventType::ActionFailed, &failed, now_ms);
        ActorReply { outcome: Err(error), receipt: Some(receipt) }
    }
}
