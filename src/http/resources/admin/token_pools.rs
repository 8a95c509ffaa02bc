//! `/api/v1/admin/partners/:id/token-pools`: allocate tokens to a partner's pool,
//! idempotently. Without `poolId` the partner's default pool for the environment is
//! topped up (created on first use: 201); with `poolId`, that pool (200); with
//! `newPool: true` (ours), another pool is created (201), e.g. for a campaign's
//! `tokenPoolId`. The first pool of an environment is its default.

use axum::extract::State;
use axum::response::Response;
use reward_actors::api::common::PartnerEnv;
use reward_actors::api::common::TOKENS_MAX;
use reward_actors::api::pools::AllocationRequest;
use reward_actors::api::pools::AutoRefill;

use super::partner_id;
use crate::http::auth::AdminRequest;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::PathSegment;
use crate::http::fields::Fields;
use crate::http::parse::{environment, future_timestamp, hex_id, idempotency_key, positive_tokens};
use crate::http::request_id::current_request_id;
use crate::http::routes::{Guard, Route};
use crate::http::{AppState, write_outcome_response};

/// The longest vesting period a pool may have (ten years).
const VESTING_DAYS_MAX: u64 = 3650;
/// The most automatic refills a month an allowance may grant.
const REFILLS_PER_MONTH_MAX: u64 = 1000;

pub fn routes() -> Vec<Route> {
    vec![Route::post("/api/v1/admin/partners/{partner_id}/token-pools", Guard::Admin, allocate)]
}

async fn allocate(State(state): State<AppState>, PathSegment(partner): PathSegment, AdminRequest(request): AdminRequest) -> ApiResult<Response> {
    let partner_id = partner_id(&partner)?;
    request.require_json()?;
    state.engine.partners().get_partner(partner_id)?;
    let mut fields = Fields::parse(&request.body)?;
    let environment = environment(&mut fields);
    let tokens = positive_tokens(&mut fields, "tokens", true);
    let idempotency_key = idempotency_key(&mut fields, true);
    let pool_id = hex_id(&mut fields, "poolId", false);
    let new_pool = fields.boolean("newPool").unwrap_or(false);
    if new_pool && pool_id.is_some() {
        fields.error("newPool", "cannot be combined with poolId");
    }
    let name = fields.string("name", false, 200);
    let expires_at_ms = future_timestamp(&mut fields, "expiresAt", state.engine.clock().now_ms());
    let vesting_days = fields.unsigned("vestingDays", false, VESTING_DAYS_MAX);
    let low_balance_threshold = fields.unsigned("lowBalanceThreshold", false, TOKENS_MAX);
    let auto_refill = auto_refill(&mut fields);
    fields.finish()?;
    let (Some(environment), Some(tokens), Some(idempotency_key)) = (environment, tokens, idempotency_key) else {
        return Err(ApiError::field("body", "is invalid"));
    };
    let allocation = AllocationRequest {
        idempotency_key,
        tokens,
        pool_id,
        new_pool,
        name,
        expires_at_ms,
        vesting_days: vesting_days.map(|days| u32::try_from(days).expect("at most VESTING_DAYS_MAX")),
        low_balance_threshold,
        auto_refill,
    };
    let outcome = state.engine.pools().allocate_tokens(PartnerEnv::new(partner_id, environment), allocation, current_request_id()).await?;
    Ok(write_outcome_response(outcome))
}

/// `autoRefill {thresholdTokens, refillTokens, maxRefillsPerMonth}`: the allowance an
/// operator approves; the pool tops itself up from it when it falls below the threshold.
fn auto_refill(fields: &mut Fields<'_>) -> Option<AutoRefill> {
    let raw = fields.raw("autoRefill")?;
    let mut item = fields.object("autoRefill", raw)?;
    let threshold_tokens = positive_tokens(&mut item, "thresholdTokens", true);
    let refill_tokens = positive_tokens(&mut item, "refillTokens", true);
    let max_refills_per_month = item.unsigned("maxRefillsPerMonth", true, REFILLS_PER_MONTH_MAX);
    fields.absorb(item);
    Some(AutoRefill {
        threshold_tokens: threshold_tokens?,
        refill_tokens: refill_tokens?,
        max_refills_per_month: u32::try_from(max_refills_per_month?).expect("at most REFILLS_PER_MONTH_MAX"),
    })
}
