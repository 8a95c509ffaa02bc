//! `/api/v1/admin/partners/:id/token-pools`: allocate tokens to a partner's pool,
//! idempotently. Without `poolId` the partner's default pool for the environment is
//! topped up (created on first use: 201); with `poolId`, that pool (200).

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use reward_actors::ids::Id;
use reward_actors::model::PartnerEnv;
use reward_actors::money::TOKENS_MAX;
use reward_actors::request::{AllocationRequest, IdempotencyKey};

use super::partner_id;
use crate::http::auth::authorize_admin;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{PathSegment, RawRequest};
use crate::http::fields::Fields;
use crate::http::parse::{environment, future_timestamp};
use crate::http::request_id::current_request_id;
use crate::http::{AppState, write_outcome_response};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/admin/partners/{partner_id}/token-pools", post(allocate))
}

async fn allocate(State(state): State<AppState>, PathSegment(partner): PathSegment, request: RawRequest) -> ApiResult<Response> {
    authorize_admin(&state, &request)?;
    let partner_id = partner_id(&partner)?;
    request.require_json()?;
    state.engine.get_partner(partner_id)?;
    let mut fields = Fields::parse(&request.body)?;
    let environment = environment(&mut fields);
    let tokens = fields.unsigned("tokens", true, TOKENS_MAX).filter(|tokens| {
        if *tokens == 0 {
            fields.error("tokens", "must be at least 1");
        }
        *tokens > 0
    });
    let idempotency_key = fields.string("idempotencyKey", true, IdempotencyKey::BYTES_MAX).and_then(|key| {
        let parsed = IdempotencyKey::parse(&key);
        if parsed.is_none() {
            fields.error("idempotencyKey", "must be 1 to 255 printable ASCII characters");
        }
        parsed
    });
    let pool_id = fields.string("poolId", false, 24).and_then(|text| {
        let id = Id::parse_hex(&text);
        if id.is_none() {
            fields.error("poolId", "must be a 24-character lowercase hex id");
        }
        id
    });
    let name = fields.string("name", false, 200);
    let expires_at_ms = future_timestamp(&mut fields, "expiresAt", state.engine.clock().now_ms());
    let vesting_days = fields.unsigned("vestingDays", false, 3650);
    if vesting_days.is_some_and(|days| days > 0) {
        fields.error("vestingDays", "vesting is not supported by this version yet; omit it or send 0");
    }
    let low_balance_threshold = fields.unsigned("lowBalanceThreshold", false, TOKENS_MAX);
    if fields.raw("autoRefill").is_some() {
        fields.error("autoRefill", "auto-refill is not supported by this version yet; omit it");
    }
    fields.finish()?;
    let (Some(environment), Some(tokens), Some(idempotency_key)) = (environment, tokens, idempotency_key) else {
        return Err(ApiError::field("body", "is invalid"));
    };
    let allocation = AllocationRequest {
        idempotency_key,
        tokens,
        pool_id,
        name,
        expires_at_ms,
        vesting_days: vesting_days.map(|days| days as u32),
        low_balance_threshold,
    };
    let outcome = state.engine.allocate_tokens(PartnerEnv::new(partner_id, environment), allocation, current_request_id()).await?;
    Ok(write_outcome_response(outcome))
}
