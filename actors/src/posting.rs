//! Ledger posting: turns a decided reward into the records it changes, and those records
//! into one write set. No IO and no clock: `now_ms` and the id generator come in.
//!
//! Invariants asserted here, before anything is encoded:
//! - the pool is debited by exactly the sum of the credited shares;
//! - every user is credited exactly their share, and each share has one REWARD transaction;
//! - the pool's totals still balance after the debit.

use serde::Serialize;

use crate::codec::encode;
use crate::ids::{Id, IdGenerator};
use crate::keys;
use crate::model::{
    ActionRecord, ActionStatus, AllocationRecord, EventRecord, IdempotencyRecord, IdempotencyScope, PartnerEnv, PartnerEnvState, PoolRecord,
    TransactionRecord, TransactionType, UserRecord,
};
use crate::request::ActionRequest;
use crate::rules::Evaluation;
use crate::store::WriteOp;
use crate::views::{ActionResponse, BreakdownView, EventEnvelope, ShareView, TransactionView, json_number};

/// Everything a reward posting reads.
pub struct RewardDraft<'a> {
    pub partner_env: PartnerEnv,
    pub request: &'a ActionRequest,
    pub request_id: &'a str,
    pub evaluation: &'a Evaluation,
    /// The pool the shares come from; `None` only when nothing is issued (0 tokens).
    pub pool: Option<&'a PoolRecord>,
    /// The current record of each stakeholder, in the request's order (new users included).
    pub users: Vec<UserRecord>,
    pub next_event_sequence: u64,
    pub now_ms: u64,
}

/// Everything a reward posting writes.
#[derive(Debug)]
pub struct RewardPosting {
    pub action: ActionRecord,
    pub transactions: Vec<TransactionRecord>,
    /// The debited pool; `None` when nothing was issued and the pool is unchanged.
    pub pool: Option<PoolRecord>,
    pub users: Vec<UserRecord>,
    pub events: Vec<EventRecord>,
    pub response_json: Vec<u8>,
    pub next_event_sequence: u64,
}

/// Whether a reward fits: the pool holds the tokens, and no balance or total would pass its
/// maximum. The actor checks this before posting; posting asserts it.
pub fn reward_fits(evaluation: &Evaluation, pool: Option<&PoolRecord>, users: &[UserRecord]) -> bool {
    let tokens = evaluation.tokens_distributed;
    let pool_fits = match pool {
        Some(pool) => pool.balance >= tokens && pool.issued_total.checked_add(tokens).is_some(),
        None => tokens == 0,
    };
    let users_fit = users.iter().zip(&evaluation.shares).all(|(user, share)| {
        i64::try_from(*share).ok().and_then(|share| user.available.checked_add(share)).is_some() && user.lifetime_earned.checked_add(*share).is_some()
    });
    pool_fits && users_fit
}

/// Posts a reward. Panics unless [`reward_fits`] (the caller checked).
pub fn post_reward(draft: RewardDraft<'_>, ids: &IdGenerator) -> RewardPosting {
    let RewardDraft { partner_env, request, request_id, evaluation, pool, mut users, next_event_sequence, now_ms } = draft;
    assert_eq!(users.len(), request.stakeholders.len(), "one user record per stakeholder");
    assert_eq!(evaluation.shares.len(), request.stakeholders.len(), "one share per stakeholder");
    assert!(reward_fits(evaluation, pool, &users), "the caller checks funding and capacity before posting");

    let action_id = ids.next(now_ms);
    let vests_at_ms = pool.and_then(|pool| pool.vesting_days).filter(|days| *days > 0).map(|days| now_ms + u64::from(days) * 86_400_000);
    let mut transactions = Vec::new();
    let mut allocations = Vec::with_capacity(users.len());
    for ((stakeholder, user), share) in request.stakeholders.iter().zip(users.iter_mut()).zip(&evaluation.shares) {
        let transaction_id = (*share > 0).then(|| {
            let transaction = TransactionRecord {
                id: ids.next(now_ms),
                transaction_type: TransactionType::Reward,
                tokens: i64::try_from(*share).expect("shares are at most TOKENS_MAX < i64::MAX"),
                action_id: Some(action_id),
                pool_id: pool.expect("a positive share has a pool (reward_fits)").id,
                partner_user_id: Some(stakeholder.partner_user_id.as_str().to_owned()),
                stakeholder_type_code: Some(stakeholder.stakeholder_type_code.clone()),
                campaign_id: evaluation.campaign_id,
                vests_at_ms,
                created_at_ms: now_ms,
            };
            let id = transaction.id;
            transactions.push(transaction);
            id
        });
        let credit = i64::try_from(*share).expect("shares are at most TOKENS_MAX < i64::MAX");
        user.available = user.available.checked_add(credit).expect("a balance stays within i64: at most 2^63 / 2^53 rewards");
        user.lifetime_earned = user.lifetime_earned.checked_add(*share).expect("lifetime totals stay within u64");
        user.updated_at_ms = now_ms;
        allocations.push(AllocationRecord {
            partner_user_id: stakeholder.partner_user_id.as_str().to_owned(),
            stakeholder_type_code: stakeholder.stakeholder_type_code.clone(),
            tokens: *share,
            transaction_id,
        });
    }

    let credited: u64 = transactions.iter().map(|transaction| transaction.tokens as u64).sum();
    assert_eq!(credited, evaluation.tokens_distributed, "every share has its transaction");
    let pool_after = pool.filter(|_| evaluation.tokens_distributed > 0).map(|pool| {
        let mut debited = pool.clone();
        debited.balance -= evaluation.tokens_distributed;
        debited.issued_total += evaluation.tokens_distributed;
        debited.updated_at_ms = now_ms;
        assert_eq!(pool.balance - debited.balance, credited, "pool debit equals the sum of credits");
        debited.assert_conserved();
        debited
    });

    let action = ActionRecord {
        id: action_id,
        idempotency_key: request.idempotency_key.as_str().to_owned(),
        action_type: request.action_type.clone(),
        amount: request.amount.map(|money| (money.minor, money.currency.code().to_owned())),
        campaign_id: evaluation.campaign_id,
        pool_id: pool.map(|pool| pool.id),
        status: ActionStatus::Completed,
        tokens_distributed: evaluation.tokens_distributed,
        reversed_tokens: 0,
        allocations,
        breakdown_json: breakdown_json(request, evaluation, pool.map(|pool| pool.id)),
        metadata_json: request.metadata_json.clone(),
        request_id: request_id.to_owned(),
        created_at_ms: now_ms,
    };
    let response = ActionResponse::from_record(&action);
    let response_json = serde_json::to_vec(&response).expect("serializing a response struct cannot fail");

    let mut events = EventBuilder { partner_env, ids, now_ms, next_sequence: next_event_sequence, events: Vec::new() };
    events.push("action.completed", &response);
    for transaction in &transactions {
        events.push("transaction.completed", &TransactionView::from(transaction));
    }
    let EventBuilder { next_sequence, events, .. } = events;
    RewardPosting { action, transactions, pool: pool_after, users, events, response_json, next_event_sequence: next_sequence }
}

/// The breakdown of an evaluation, as stored with the action and shown by quote.
pub fn breakdown_json(request: &ActionRequest, evaluation: &Evaluation, pool_id: Option<Id>) -> Vec<u8> {
    let breakdown = BreakdownView {
        rule: if evaluation.campaign_id.is_some() { "CAMPAIGN" } else { "DEFAULT" },
        campaign_id: evaluation.campaign_id.map(Id::to_hex),
        tier_index: evaluation.tier_index,
        multiplier: evaluation.multiplier.map(|multiplier| json_number(&multiplier.to_string())),
        fixed_tokens: evaluation.multiplier.is_none().then_some(evaluation.base_tokens),
        max_tokens_per_action: evaluation.capped.then_some(evaluation.total_tokens),
        base_tokens: evaluation.base_tokens,
        total_tokens: evaluation.total_tokens,
        capped: evaluation.capped,
        tokens_distributed: evaluation.tokens_distributed,
        token_pool_id: pool_id.map(Id::to_hex),
        shares: request
            .stakeholders
            .iter()
            .zip(&evaluation.shares)
            .map(|(stakeholder, tokens)| ShareView {
                partner_user_id: stakeholder.partner_user_id.as_str().to_owned(),
                stakeholder_type_code: stakeholder.stakeholder_type_code.clone(),
                tokens: *tokens,
            })
            .collect(),
    };
    serde_json::to_vec(&breakdown).expect("serializing a breakdown struct cannot fail")
}

/// Assigns sequences and renders envelopes for the events of one write set.
pub struct EventBuilder<'a> {
    pub partner_env: PartnerEnv,
    pub ids: &'a IdGenerator,
    pub now_ms: u64,
    pub next_sequence: u64,
    pub events: Vec<EventRecord>,
}

impl EventBuilder<'_> {
    pub fn push<T: Serialize>(&mut self, event_type: &str, data: &T) {
        let id = self.ids.next(self.now_ms);
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let envelope = EventEnvelope {
            id: id.prefixed("evt_"),
            event_type,
            created_at: crate::clock::format_timestamp(self.now_ms),
            environment: self.partner_env.environment,
            partner_id: self.partner_env.partner_id.to_hex(),
            sequence,
            data,
        };
        let envelope_json = serde_json::to_vec(&envelope).expect("serializing an event envelope cannot fail");
        self.events.push(EventRecord { id, sequence, event_type: event_type.to_owned(), created_at_ms: self.now_ms, envelope_json });
    }
}

/// The write set of a reward: every record it changed, in one commit.
pub fn reward_write_set(
    partner_env: &PartnerEnv,
    posting: &RewardPosting,
    env_state: &PartnerEnvState,
    idempotency: &IdempotencyRecord,
) -> Vec<WriteOp> {
    let mut ops = Vec::with_capacity(6 + posting.users.len() + 2 * posting.transactions.len() + posting.events.len());
    ops.push(put(keys::idempotency(partner_env, IdempotencyScope::ActionSubmit, &posting.action.idempotency_key), encode(idempotency)));
    ops.push(put(keys::action(partner_env, posting.action.id), encode(&posting.action)));
    if let Some(pool) = &posting.pool {
        ops.push(put(keys::pool(partner_env, pool.id), encode(pool)));
    }
    for user in &posting.users {
        ops.push(put(keys::user(partner_env, &user.external_id), encode(user)));
    }
    for transaction in &posting.transactions {
        ops.push(put(keys::transaction(partner_env, transaction.id), encode(transaction)));
        let owner = transaction.partner_user_id.as_deref().expect("reward transactions name their user");
        ops.push(put(keys::user_transaction(partner_env, owner, transaction.id), Vec::new()));
    }
    push_events(&mut ops, partner_env, &posting.events, env_state);
    ops
}

/// Appends events and the bookkeeping that holds their next sequence.
pub fn push_events(ops: &mut Vec<WriteOp>, partner_env: &PartnerEnv, events: &[EventRecord], env_state: &PartnerEnvState) {
    for event in events {
        ops.push(put(keys::event(partner_env, event.sequence), encode(event)));
    }
    ops.push(put(keys::partner_env_state(partner_env), encode(env_state)));
}

pub fn put(key: Vec<u8>, value: Vec<u8>) -> WriteOp {
    WriteOp::Put { key, value }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Environment;
    use crate::money::{Currency, Money};
    use crate::request::{IdempotencyKey, PartnerUserId, Stakeholder};
    use crate::rules::{RewardRule, evaluate};

    fn user(ids: &IdGenerator, external_id: &str) -> UserRecord {
        UserRecord::new(ids.next(1), external_id, 1)
    }

    #[test]
    fn a_posting_moves_exactly_the_shares_from_pool_to_users() {
        let ids = IdGenerator::new();
        let partner_env = PartnerEnv::new(ids.next(1), Environment::Sandbox);
        let stakeholder = |id: &str| Stakeholder {
            stakeholder_type_code: "CUSTOMER".into(),
            partner_user_id: PartnerUserId::parse(id).expect("valid"),
            user_email: None,
            user_first_name: None,
            user_last_name: None,
        };
        let request = ActionRequest {
            idempotency_key: IdempotencyKey::parse("k").expect("valid"),
            action_type: "PURCHASE".into(),
            amount: Some(Money { minor: 10_000, currency: Currency::from_code("USD").expect("USD") }),
            campaign_id: None,
            stakeholders: vec![stakeholder("a"), stakeholder("b"), stakeholder("c")],
            auto_create_users: true,
            metadata_json: None,
        };
        let evaluation = evaluate(&RewardRule::default_rule(), request.amount, &request.stakeholder_types()).expect("applies");
        let pool = PoolRecord { balance: 1_000, allocated_total: 1_000, ..PoolRecord::new(ids.next(1), Environment::Sandbox, 1) };
        let users = vec![user(&ids, "a"), user(&ids, "b"), user(&ids, "c")];
        let posting = post_reward(
            RewardDraft {
                partner_env,
                request: &request,
                request_id: "req_1",
                evaluation: &evaluation,
                pool: Some(&pool),
                users,
                next_event_sequence: 7,
                now_ms: 2,
            },
            &ids,
        );
        assert_eq!(posting.pool.as_ref().map(|pool| pool.balance), Some(900));
        assert_eq!(posting.users.iter().map(|user| user.available).collect::<Vec<_>>(), vec![34, 33, 33]);
        assert_eq!(posting.transactions.len(), 3);
        assert_eq!(posting.events.iter().map(|event| event.sequence).collect::<Vec<_>>(), vec![7, 8, 9, 10]);
        assert_eq!(posting.next_event_sequence, 11);
        let response: serde_json::Value = serde_json::from_slice(&posting.response_json).expect("json");
        assert_eq!(response["tokensDistributed"], 100);
        assert_eq!(response["status"], "COMPLETED");
    }
}
