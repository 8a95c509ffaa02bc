//! `/v1/partner/token-pools`: the partner's pools, read-only (admins allocate).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use reward_actors::ids::Id;
use reward_actors::model::Scope;
use reward_actors::money::TOKENS_MAX;
use reward_actors::views::PoolRequestView;
use reward_actors::views::PoolView;

use super::auth::{Access, authorize};
use super::error::{ApiError, ApiResult};
use super::extract::{PathSegment, RawRequest};
use super::fields::Fields;
use super::list::{ListQuery, list_response};
use super::{AppState, json_response};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/partner/token-pools", get(list_pools))
        .route("/v1/partner/token-pools/request", post(request_tokens))
        .route("/v1/partner/token-pools/{pool_id}", get(get_pool))
}

/// `POST /v1/partner/token-pools/request {tokens, reason}`: asks SIR Giving for tokens.
async fn request_tokens(State(state): State<AppState>, request: RawRequest) -> ApiResult<Response> {
    let caller = authorize(&state, &request, Access::write(Scope::PoolsWrite))?;
    request.require_json()?;
    let mut fields = Fields::parse(&request.body)?;
    let tokens = fields.unsigned("tokens", true, TOKENS_MAX).filter(|tokens| {
        if *tokens == 0 {
            fields.error("tokens", "must be at least 1");
        }
        *tokens > 0
    });
    let reason = fields.string("reason", true, 500);
    fields.finish()?;
    let (Some(tokens), Some(reason)) = (tokens, reason) else {
        return Err(ApiError::field("body", "is invalid"));
    };
    let record = state.engine.request_pool_tokens(caller.partner_env(), tokens, reason).await?;
    Ok(json_response(StatusCode::CREATED, &PoolRequestView::from(&record)))
}

async fn list_pools(State(state): State<AppState>, request: RawRequest) -> ApiResult<Response> {
    let caller = authorize(&state, &request, Access::read(Scope::PoolsRead))?;
    let page = ListQuery::from_path(&request.path_and_query)?;
    let pools = state.engine.list_pools(caller.partner_env(), page)?;
    Ok(list_response(pools, |pool| PoolView::from(pool)))
}

async fn get_pool(State(state): State<AppState>, PathSegment(pool_id): PathSegment, request: RawRequest) -> ApiResult<Response> {
    let caller = authorize(&state, &request, Access::read(Scope::PoolsRead))?;
    let pool_id = Id::parse_hex(&pool_id).ok_or_else(|| ApiError::not_found("token pool not found"))?;
    let pool = state.engine.get_pool(caller.partner_env(), pool_id)?;
    Ok(json_response(StatusCode::OK, &PoolView::from(&pool)))
}
