//! Ledger posting: turns a decided change (a reward, a reversal, a redemption) into the
//! records it changes, and those records into one write set. No IO and no clock: `now_ms`
//! and the id generator come in.
//!
//! Invariants asserted here, before anything is encoded:
//! - a pool moves by exactly the sum of the transactions against it, and still balances;
//! - every user moves by exactly their transactions, each share has one transaction;
//! - a reversal never takes back more than an allocation still holds.

use serde::Serialize;
use serde_json::json;

use crate::domain::ids::{Id, IdGenerator};
use crate::domain::model::{
    ActionRecord, ActionStatus, AllocationRecord, CampaignRecord, EventRecord, IdempotencyRecord, IdempotencyScope, PartnerEnv, PartnerEnvState,
    PoolRecord, TransactionRecord, TransactionType, UserRecord, vesting_day,
};
use crate::domain::money::TOKENS_MAX;
use crate::domain::request::ActionRequest;
use crate::domain::rules::{Evaluation, largest_remainder};
use crate::store::WriteOp;
use crate::store::records::{self, UserTransactionEntry};
use crate::api::views::{ActionResponse, BalanceView, BreakdownView, EventEnvelope, PoolView, ShareView, TransactionView, json_number};
use crate::webhooks::EventType;

/// A stakeholder's user as a posting reads it.
#[derive(Debug, Clone)]
pub struct PostingUser {
    pub record: UserRecord,
    /// Created by this posting (it also gets its place in the creation-order index).
    pub is_new: bool,
}

/// Everything a change writes, gathered so one function turns it into a write set.
#[derive(Debug, Default)]
pub struct Changes {
    pub idempotency: Option<(IdempotencyScope, String, IdempotencyRecord)>,
    pub action: Option<ActionRecord>,
    pub pools: Vec<PoolRecord>,
    pub users: Vec<PostingUser>,
    pub campaigns: Vec<CampaignRecord>,
    pub transactions: Vec<TransactionRecord>,
    pub events: Vec<EventRecord>,
}

impl Changes {
    /// The write set: every changed record, the indexes, the events and the bookkeeping.
    pub fn write_set(&self, partner_env: &PartnerEnv, env_state: &PartnerEnvState) -> Vec<WriteOp> {
        let mut ops = Vec::with_capacity(8 + self.users.len() * 2 + self.transactions.len() * 2 + self.events.len());
        if let Some((scope, key, record)) = &self.idempotency {
            ops.push(records::idempotency(partner_env, *scope, key).put(record));
        }
        if let Some(action) = &self.action {
            ops.push(records::action(partner_env, action.id).put(action));
        }
        for pool in &self.pools {
            ops.push(records::pool(partner_env, pool.id).put(pool));
        }
        for campaign in &self.campaigns {
            ops.push(records::campaign(partner_env, campaign.id).put(campaign));
        }
        for user in &self.users {
            ops.push(records::user(partner_env, &user.record.external_id).put(&user.record));
            if user.is_new {
                ops.push(records::user_by_creation(partner_env, user.record.id).put(&user.record.external_id));
            }
        }
        for transaction in &self.transactions {
            ops.push(records::transaction(partner_env, transaction.id).put(transaction));
            if let Some(owner) = transaction.partner_user_id.as_deref() {
                ops.push(records::user_transaction(partner_env, owner, transaction.id).put(&UserTransactionEntry));
            }
        }
        push_events(&mut ops, partner_env, &self.events, env_state);
        ops
    }
}

/// Everything a reward posting reads.
pub struct RewardDraft<'a> {
    pub partner_env: PartnerEnv,
    pub request: &'a ActionRequest,
    pub request_id: &'a str,
    pub evaluation: &'a Evaluation,
    /// The pool the shares come from; `None` only when nothing is issued (0 tokens).
    pub pool: Option<&'a PoolRecord>,
    /// The campaign that decided the reward, if one did.
    pub campaign: Option<&'a CampaignRecord>,
    /// The current record of each stakeholder, in the request's order (new users included).
    pub users: Vec<PostingUser>,
    pub next_event_sequence: u64,
    pub now_ms: u64,
}

/// What a reward posting produced.
#[derive(Debug)]
pub struct RewardPosting {
    pub changes: Changes,
    pub response_json: Vec<u8>,
    pub next_event_sequence: u64,
}

/// Whether a reward fits: the pool holds the tokens, the campaign's budget covers them, and
/// no balance or total would pass its maximum. The actor checks this; posting asserts it.
pub fn reward_fits(evaluation: &Evaluation, pool: Option<&PoolRecord>, users: &[PostingUser]) -> bool {
    let tokens = evaluation.tokens_distributed;
    let pool_fits = match pool {
        Some(pool) => pool.balance >= tokens && pool.issued_total.checked_add(tokens).is_some(),
        None => tokens == 0,
    };
    let users_fit = users.iter().zip(&evaluation.shares).all(|(user, share)| {
        i64::try_from(*share).ok().and_then(|share| user.record.balance.checked_add(share)).is_some()
            && user.record.lifetime_earned.checked_add(*share).is_some()
    });
    pool_fits && users_fit
}

/// After a pool's balance moved: an admin-approved auto-refill when it fell below the
/// threshold (within the month's allowance), and `token_pool.low_balance` once per crossing.
fn settle_pool(pool: &mut PoolRecord, ids: &IdGenerator, events: &mut EventBuilder<'_>, transactions: &mut Vec<TransactionRecord>, now_ms: u64) {
    refill(pool, 0, ids, events, transactions, now_ms);
    notice_low_balance(pool, events, now_ms);
}

/// Whether an auto-refill is due: the balance is below the threshold, or below `needed`
/// (a reward about to be refused for want of tokens), and the month's allowance has room.
pub fn refill_due(pool: &PoolRecord, needed: u64, now_ms: u64) -> Option<u64> {
    let refill = pool.auto_refill?;
    let refills_in_month = if pool.refill_month == month_of(now_ms) { pool.refills_in_month } else { 0 };
    let room = TOKENS_MAX - pool.balance.min(TOKENS_MAX);
    let below = pool.balance < refill.threshold_tokens || pool.balance < needed;
    (below && refills_in_month < refill.max_refills_per_month && room > 0).then(|| refill.refill_tokens.min(room))
}

/// Refills `pool` once when [`refill_due`], with its REFILL transaction and events.
fn refill(
    pool: &mut PoolRecord,
    needed: u64,
    ids: &IdGenerator,
    events: &mut EventBuilder<'_>,
    transactions: &mut Vec<TransactionRecord>,
    now_ms: u64,
) {
    let Some(tokens) = refill_due(pool, needed, now_ms) else {
        return;
    };
    let month = month_of(now_ms);
    if pool.refill_month != month {
        pool.refill_month = month;
        pool.refills_in_month = 0;
    }
    pool.balance += tokens;
    pool.refilled_total += tokens;
    pool.refills_in_month += 1;
    let transaction = TransactionRecord {
        id: ids.next(now_ms),
        transaction_type: TransactionType::Refill,
        tokens: i64::try_from(tokens).expect("at most TOKENS_MAX"),
        action_id: None,
        pool_id: Some(pool.id),
        partner_user_id: None,
        stakeholder_type_code: None,
        campaign_id: None,
        vests_at_ms: None,
        created_at_ms: now_ms,
    };
    events.push(
        EventType::TokenPoolRefilled,
        &json!({ "tokenPoolId": pool.id.to_hex(), "refillTokens": tokens, "balance": pool.balance, "refillsThisMonth": pool.refills_in_month }),
    );
    events.push(EventType::TransactionCompleted, &TransactionView::from(&transaction));
    transactions.push(transaction);
}

/// A refill on its own, before a reward that the balance alone would not cover: `None`
/// when no refill is due.
pub fn post_refill(
    partner_env: PartnerEnv,
    pool: &PoolRecord,
    needed: u64,
    ids: &IdGenerator,
    next_event_sequence: u64,
    now_ms: u64,
) -> Option<RewardPosting> {
    refill_due(pool, needed, now_ms)?;
    let mut refilled = pool.clone();
    let mut events = EventBuilder { partner_env, ids, now_ms, next_sequence: next_event_sequence, events: Vec::new() };
    let mut transactions = Vec::new();
    refill(&mut refilled, needed, ids, &mut events, &mut transactions, now_ms);
    notice_low_balance(&mut refilled, &mut events, now_ms);
    let response_json = serde_json::to_vec(&PoolView::from(&refilled)).expect("serializing a pool view cannot fail");
    let EventBuilder { next_sequence, events, .. } = events;
    Some(RewardPosting {
        changes: Changes { pools: vec![refilled], transactions, events, ..Changes::default() },
        response_json,
        next_event_sequence: next_sequence,
    })
}

fn notice_low_balance(pool: &mut PoolRecord, events: &mut EventBuilder<'_>, now_ms: u64) {
    match pool.low_balance_threshold {
        Some(threshold) if pool.balance < threshold => {
            if !pool.low_balance_notified {
                pool.low_balance_notified = true;
                events.push(
                    EventType::TokenPoolLowBalance,
                    &json!({ "tokenPoolId": pool.id.to_hex(), "balance": pool.balance, "lowBalanceThreshold": threshold }),
                );
            }
        }
        _ => pool.low_balance_notified = false,
    }
    pool.updated_at_ms = now_ms;
    pool.assert_conserved();
}

/// Months since 1970-01 (UTC), for the monthly refill allowance.
fn month_of(now_ms: u64) -> u32 {
    let Ok(moment) = time::OffsetDateTime::from_unix_timestamp((now_ms / 1000) as i64) else {
        return 0;
    };
    u32::try_from(i64::from(moment.year() - 1970) * 12 + i64::from(u8::from(moment.month()) - 1)).unwrap_or(0)
}

/// Posts a reward. Panics unless [`reward_fits`] (the caller checked).
pub fn post_reward(draft: RewardDraft<'_>, ids: &IdGenerator) -> RewardPosting {
    let RewardDraft { partner_env, request, request_id, evaluation, pool, campaign, mut users, next_event_sequence, now_ms } = draft;
    assert_eq!(users.len(), request.stakeholders.len(), "one user record per stakeholder");
    assert_eq!(evaluation.shares.len(), request.stakeholders.len(), "one share per stakeholder");
    assert!(reward_fits(evaluation, pool, &users), "the caller checks funding and capacity before posting");

    let action_id = ids.next(now_ms);
    let vesting = pool.and_then(|pool| pool.vesting_days).filter(|days| *days > 0).map(|days| vesting_day(now_ms, days));
    let vests_at_ms = vesting.map(|day| u64::from(day) * crate::domain::model::DAY_MS);
    let mut transactions = Vec::new();
    let mut allocations = Vec::with_capacity(users.len());
    for ((stakeholder, user), share) in request.stakeholders.iter().zip(users.iter_mut()).zip(&evaluation.shares) {
        let transaction_id = (*share > 0).then(|| {
            let transaction = TransactionRecord {
                id: ids.next(now_ms),
                transaction_type: TransactionType::Reward,
                tokens: i64::try_from(*share).expect("shares are at most TOKENS_MAX < i64::MAX"),
                action_id: Some(action_id),
                pool_id: pool.map(|pool| pool.id),
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
        let record = &mut user.record;
        record.prune_vested(now_ms);
        record.balance = record.balance.checked_add(i64::try_from(*share).expect("at most TOKENS_MAX")).expect("reward_fits checked the balance");
        record.lifetime_earned = record.lifetime_earned.checked_add(*share).expect("reward_fits checked the total");
        if let Some(day) = vesting.filter(|_| *share > 0) {
            record.add_vesting(day, *share);
        }
        record.updated_at_ms = now_ms;
        allocations.push(AllocationRecord {
            partner_user_id: stakeholder.partner_user_id.as_str().to_owned(),
            stakeholder_type_code: stakeholder.stakeholder_type_code.clone(),
            tokens: *share,
            transaction_id,
            reversed_tokens: 0,
            vesting_day: vesting.filter(|_| *share > 0),
        });
    }
    let credited: u64 = transactions.iter().map(|transaction| transaction.tokens as u64).sum();
    assert_eq!(credited, evaluation.tokens_distributed, "every share has its transaction");

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
    events.push(EventType::ActionCompleted, &response);
    for transaction in &transactions {
        events.push(EventType::TransactionCompleted, &TransactionView::from(transaction));
    }
    let mut pools = Vec::new();
    if let Some(pool) = pool.filter(|_| evaluation.tokens_distributed > 0) {
        let mut debited = pool.clone();
        debited.balance -= evaluation.tokens_distributed;
        debited.issued_total += evaluation.tokens_distributed;
        assert_eq!(pool.balance - debited.balance, credited, "pool debit equals the sum of credits");
        settle_pool(&mut debited, ids, &mut events, &mut transactions, now_ms);
        pools.push(debited);
    }
    let mut campaigns = Vec::new();
    if let Some(campaign) = campaign {
        let mut charged = campaign.clone();
        if let Some(remaining) = charged.budget_remaining {
            assert!(remaining >= evaluation.tokens_distributed, "the caller checks the campaign budget");
            let left = remaining - evaluation.tokens_distributed;
            charged.budget_remaining = Some(left);
            charged.updated_at_ms = now_ms;
            if left == 0 && evaluation.tokens_distributed > 0 {
                events.push(EventType::CampaignBudgetExhausted, &json!({ "campaignId": charged.id.to_hex(), "budgetTokens": charged.budget_tokens }));
            }
            campaigns.push(charged);
        }
    }
    let EventBuilder { next_sequence, events, .. } = events;
    let changes = Changes { idempotency: None, action: Some(action), pools, users, campaigns, transactions, events };
    RewardPosting { changes, response_json, next_event_sequence: next_sequence }
}

/// Everything a reversal posting reads.
pub struct ReversalDraft<'a> {
    pub partner_env: PartnerEnv,
    pub action: &'a ActionRecord,
    /// The tokens to take back; at most what the action still holds.
    pub tokens: u64,
    pub reason: &'a str,
    pub pool: Option<&'a PoolRecord>,
    /// The user record of each allocation, in the action's order.
    pub users: Vec<UserRecord>,
    pub next_event_sequence: u64,
    pub now_ms: u64,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "ReversalShare"))]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReversalShareView {
    pub partner_user_id: String,
    pub stakeholder_type_code: String,
    pub tokens: u64,
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::HexId>"))]
    pub transaction_id: Option<String>,
}

/// The answer to a reversal.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "Reversal"))]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReversalResponse {
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::HexId"))]
    pub action_id: String,
    pub status: ActionStatus,
    pub reversed_tokens: u64,
    pub total_reversed_tokens: u64,
    pub remaining_tokens: u64,
    pub reason: String,
    #[cfg_attr(feature = "schema", schemars(with = "Vec<crate::schema::HexId>"))]
    pub transaction_ids: Vec<String>,
    pub allocations: Vec<ReversalShareView>,
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::Timestamp"))]
    pub created_at: String,
}

/// Takes `tokens` of an action back, pro rata over what each allocation still holds
/// (largest remainder), into the pool it came from. Users may go below zero.
pub fn post_reversal(draft: ReversalDraft<'_>, ids: &IdGenerator) -> RewardPosting {
    let ReversalDraft { partner_env, action, tokens, reason, pool, mut users, next_event_sequence, now_ms } = draft;
    let holding: Vec<u64> = action.allocations.iter().map(|allocation| allocation.tokens - allocation.reversed_tokens).collect();
    assert!(tokens > 0 && tokens <= holding.iter().sum::<u64>(), "the caller checks the reversal against what remains");
    assert_eq!(users.len(), action.allocations.len(), "one user per allocation");
    let shares = largest_remainder(tokens, &holding);
    let mut reversed_action = action.clone();
    let mut transactions = Vec::new();
    let mut views = Vec::new();
    for (((allocation, user), share), held) in reversed_action.allocations.iter_mut().zip(users.iter_mut()).zip(&shares).zip(&holding) {
        assert!(share <= held, "a reversal never takes more than an allocation holds");
        let transaction_id = (*share > 0).then(|| {
            let transaction = TransactionRecord {
                id: ids.next(now_ms),
                transaction_type: TransactionType::Reversal,
                tokens: -i64::try_from(*share).expect("at most TOKENS_MAX"),
                action_id: Some(action.id),
                pool_id: action.pool_id,
                partner_user_id: Some(allocation.partner_user_id.clone()),
                stakeholder_type_code: Some(allocation.stakeholder_type_code.clone()),
                campaign_id: action.campaign_id,
                vests_at_ms: None,
                created_at_ms: now_ms,
            };
            let id = transaction.id;
            transactions.push(transaction);
            id
        });
        allocation.reversed_tokens += share;
        user.prune_vested(now_ms);
        if let Some(day) = allocation.vesting_day {
            user.take_vesting(day, *share);
        }
        user.balance -= i64::try_from(*share).expect("at most TOKENS_MAX");
        user.lifetime_reversed += share;
        user.updated_at_ms = now_ms;
        views.push(ReversalShareView {
            partner_user_id: allocation.partner_user_id.clone(),
            stakeholder_type_code: allocation.stakeholder_type_code.clone(),
            tokens: *share,
            transaction_id: transaction_id.map(Id::to_hex),
        });
    }
    reversed_action.reversed_tokens += tokens;
    reversed_action.status =
        if reversed_action.reversed_tokens == reversed_action.tokens_distributed { ActionStatus::Reversed } else { ActionStatus::PartiallyReversed };
    let response = ReversalResponse {
        action_id: action.id.to_hex(),
        status: reversed_action.status,
        reversed_tokens: tokens,
        total_reversed_tokens: reversed_action.reversed_tokens,
        remaining_tokens: reversed_action.tokens_distributed - reversed_action.reversed_tokens,
        reason: reason.to_owned(),
        transaction_ids: transactions.iter().map(|transaction| transaction.id.to_hex()).collect(),
        allocations: views,
        created_at: crate::engine::clock::format_timestamp(now_ms),
    };
    let response_json = serde_json::to_vec(&response).expect("serializing a response struct cannot fail");
    let mut events = EventBuilder { partner_env, ids, now_ms, next_sequence: next_event_sequence, events: Vec::new() };
    events.push(EventType::ActionReversed, &response);
    for transaction in &transactions {
        events.push(EventType::TransactionCompleted, &TransactionView::from(transaction));
    }
    let mut pools = Vec::new();
    if let Some(pool) = pool {
        let mut credited = pool.clone();
        credited.balance += tokens;
        credited.reversed_total += tokens;
        settle_pool(&mut credited, ids, &mut events, &mut transactions, now_ms);
        pools.push(credited);
    }
    let EventBuilder { next_sequence, events, .. } = events;
    let users = users.into_iter().map(|record| PostingUser { record, is_new: false }).collect();
    let changes = Changes { idempotency: None, action: Some(reversed_action), pools, users, campaigns: Vec::new(), transactions, events };
    RewardPosting { changes, response_json, next_event_sequence: next_sequence }
}

/// The answer to a redemption.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "Redemption"))]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RedemptionResponse {
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::HexId"))]
    pub transaction_id: String,
    pub partner_user_id: String,
    pub tokens: u64,
    pub reason: String,
    pub balance: BalanceView,
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::Timestamp"))]
    pub created_at: String,
}

/// Debits a user's vested tokens (they leave the system; no pool takes them back). Panics
/// unless the user has `tokens` available (the caller checked).
pub fn post_redemption(
    partner_env: PartnerEnv,
    user: &UserRecord,
    tokens: u64,
    reason: &str,
    next_event_sequence: u64,
    now_ms: u64,
    ids: &IdGenerator,
) -> RewardPosting {
    assert!(user.available(now_ms) >= i64::try_from(tokens).expect("at most TOKENS_MAX"), "the caller checks the balance");
    let mut user = user.clone();
    user.prune_vested(now_ms);
    user.balance -= i64::try_from(tokens).expect("at most TOKENS_MAX");
    user.lifetime_redeemed += tokens;
    user.updated_at_ms = now_ms;
    let transaction = TransactionRecord {
        id: ids.next(now_ms),
        transaction_type: TransactionType::Redemption,
        tokens: -i64::try_from(tokens).expect("at most TOKENS_MAX"),
        action_id: None,
        pool_id: None,
        partner_user_id: Some(user.external_id.clone()),
        stakeholder_type_code: None,
        campaign_id: None,
        vests_at_ms: None,
        created_at_ms: now_ms,
    };
    let response = RedemptionResponse {
        transaction_id: transaction.id.to_hex(),
        partner_user_id: user.external_id.clone(),
        tokens,
        reason: reason.to_owned(),
        balance: BalanceView::of(&user, now_ms),
        created_at: crate::engine::clock::format_timestamp(now_ms),
    };
    let response_json = serde_json::to_vec(&response).expect("serializing a response struct cannot fail");
    let mut events = EventBuilder { partner_env, ids, now_ms, next_sequence: next_event_sequence, events: Vec::new() };
    events.push(EventType::TransactionCompleted, &TransactionView::from(&transaction));
    let EventBuilder { next_sequence, events, .. } = events;
    let changes = Changes {
        idempotency: None,
        action: None,
        pools: Vec::new(),
        users: vec![PostingUser { record: user, is_new: false }],
        campaigns: Vec::new(),
        transactions: vec![transaction],
        events,
    };
    RewardPosting { changes, response_json, next_event_sequence: next_sequence }
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
    pub fn push<T: Serialize>(&mut self, event_type: EventType, data: &T) {
        let id = self.ids.next(self.now_ms);
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let envelope = EventEnvelope {
            id: id.prefixed("evt_"),
            event_type,
            created_at: crate::engine::clock::format_timestamp(self.now_ms),
            environment: self.partner_env.environment,
            partner_id: self.partner_env.partner_id.to_hex(),
            sequence: Some(sequence),
            data,
        };
        let envelope_json = serde_json::to_vec(&envelope).expect("serializing an event envelope cannot fail");
        self.events.push(EventRecord { id, sequence, event_type, created_at_ms: self.now_ms, envelope_json });
    }
}

/// Appends events and the bookkeeping that holds their next sequence.
pub fn push_events(ops: &mut Vec<WriteOp>, partner_env: &PartnerEnv, events: &[EventRecord], env_state: &PartnerEnvState) {
    for event in events {
        ops.push(records::event(partner_env, event.sequence).put(event));
    }
    ops.push(records::partner_env_state(partner_env).put(env_state));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::{AutoRefill, Environment};
    use crate::domain::money::{Currency, Money};
    use crate::domain::request::{IdempotencyKey, PartnerUserId, Stakeholder};
    use crate::domain::rules::{RewardRule, evaluate};

    fn user(ids: &IdGenerator, external_id: &str) -> PostingUser {
        PostingUser { record: UserRecord::new(ids.next(1), external_id, 1), is_new: true }
    }

    fn request(users: &[&str], minor: u64) -> ActionRequest {
        let stakeholder = |id: &&str| Stakeholder {
            stakeholder_type_code: "CUSTOMER".into(),
            partner_user_id: PartnerUserId::parse(id).expect("valid"),
            user_email: None,
            user_first_name: None,
            user_last_name: None,
        };
        ActionRequest {
            idempotency_key: IdempotencyKey::parse("k").expect("valid"),
            action_type: "PURCHASE".into(),
            amount: Some(Money { minor, currency: Currency::from_code("USD").expect("USD") }),
            campaign_id: None,
            stakeholders: users.iter().map(stakeholder).collect(),
            auto_create_users: true,
            metadata_json: None,
        }
    }

    fn reward(ids: &IdGenerator, pool: &PoolRecord, request: &ActionRequest, now_ms: u64) -> RewardPosting {
        let evaluation = evaluate(&RewardRule::default_rule(), request.amount, &request.stakeholder_types()).expect("applies");
        let users = request.stakeholders.iter().map(|stakeholder| user(ids, stakeholder.partner_user_id.as_str())).collect();
        let partner_env = PartnerEnv::new(ids.next(1), Environment::Sandbox);
        let draft = RewardDraft {
            partner_env,
            request,
            request_id: "req_1",
            evaluation: &evaluation,
            pool: Some(pool),
            campaign: None,
            users,
            next_event_sequence: 7,
            now_ms,
        };
        post_reward(draft, ids)
    }

    #[test]
    fn a_posting_moves_exactly_the_shares_from_pool_to_users() {
        let ids = IdGenerator::new();
        let pool = PoolRecord { balance: 1_000, allocated_total: 1_000, ..PoolRecord::new(ids.next(1), Environment::Sandbox, 1) };
        let posting = reward(&ids, &pool, &request(&["a", "b", "c"], 10_000), 2);
        let changes = &posting.changes;
        assert_eq!(changes.pools.iter().map(|pool| pool.balance).collect::<Vec<_>>(), vec![900]);
        assert_eq!(changes.users.iter().map(|user| user.record.balance).collect::<Vec<_>>(), vec![34, 33, 33]);
        assert_eq!(changes.transactions.len(), 3);
        assert_eq!(changes.events.iter().map(|event| event.sequence).collect::<Vec<_>>(), vec![7, 8, 9, 10]);
        assert_eq!(posting.next_event_sequence, 11);
        let response: serde_json::Value = serde_json::from_slice(&posting.response_json).expect("json");
        assert_eq!(response["tokensDistributed"], 100);
        assert_eq!(response["status"], "COMPLETED");
    }

    #[test]
    fn a_crossing_emits_low_balance_once_and_an_allowance_refills() {
        let ids = IdGenerator::new();
        let pool = PoolRecord {
            balance: 120,
            allocated_total: 120,
            low_balance_threshold: Some(100),
            ..PoolRecord::new(ids.next(1), Environment::Sandbox, 1)
        };
        let first = reward(&ids, &pool, &request(&["a"], 5_000), 2);
        let kinds: Vec<&str> = first.changes.events.iter().map(|event| event.event_type.as_str()).collect();
        assert_eq!(kinds, vec!["action.completed", "transaction.completed", "token_pool.low_balance"]);
        let after_first = first.changes.pools[0].clone();
        let second = reward(&ids, &after_first, &request(&["a"], 1_000), 3);
        assert!(second.changes.events.iter().all(|event| event.event_type != "token_pool.low_balance"), "once per crossing");

        let refilling =
            PoolRecord { auto_refill: Some(AutoRefill { threshold_tokens: 100, refill_tokens: 500, max_refills_per_month: 1 }), ..pool.clone() };
        let refilled = reward(&ids, &refilling, &request(&["a"], 5_000), 2);
        let pool_after = &refilled.changes.pools[0];
        assert_eq!((pool_after.balance, pool_after.refilled_total, pool_after.refills_in_month), (570, 500, 1));
        assert!(refilled.changes.transactions.iter().any(|transaction| transaction.transaction_type == TransactionType::Refill));
        let no_more = reward(&ids, pool_after, &request(&["a"], 50_000), 4);
        assert_eq!(no_more.changes.pools[0].refills_in_month, 1, "at most the month's allowance");
        assert_eq!(no_more.changes.pools[0].balance, 70);
    }

    #[test]
    fn a_reversal_takes_back_pro_rata_and_returns_tokens_to_the_pool() {
        let ids = IdGenerator::new();
        let pool = PoolRecord { balance: 1_000, allocated_total: 1_000, ..PoolRecord::new(ids.next(1), Environment::Sandbox, 1) };
        let posting = reward(&ids, &pool, &request(&["a", "b", "c"], 10_000), 2);
        let action = posting.changes.action.clone().expect("action");
        let users: Vec<UserRecord> = posting.changes.users.iter().map(|user| user.record.clone()).collect();
        let pool_after = posting.changes.pools[0].clone();
        let draft = ReversalDraft {
            partner_env: PartnerEnv::new(ids.next(1), Environment::Sandbox),
            action: &action,
            tokens: 10,
            reason: "refund",
            pool: Some(&pool_after),
            users,
            next_event_sequence: 20,
            now_ms: 3,
        };
        let reversal = post_reversal(draft, &ids);
        let changes = &reversal.changes;
        assert_eq!(changes.users.iter().map(|user| user.record.balance).collect::<Vec<_>>(), vec![30, 30, 30], "34/33/33 minus 4/3/3");
        assert_eq!(changes.pools[0].balance, 910);
        assert_eq!(changes.pools[0].reversed_total, 10);
        let reversed = changes.action.as_ref().expect("action");
        assert_eq!((reversed.reversed_tokens, reversed.status), (10, ActionStatus::PartiallyReversed));
        assert_eq!(reversed.allocations.iter().map(|allocation| allocation.reversed_tokens).collect::<Vec<_>>(), vec![4, 3, 3]);
    }
}
