//! `/v1/partner/token-pools`: the partner's pools, read-only (admins allocate).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use reward_actors::ids::Id;
use reward_actors::model::Scope;
use reward_actors::views::PoolView;

use super::auth::{Access, authorize};
use super::error::{ApiError, ApiResult};
use super::extract::{PathSegment, RawRequest};
use super::list::{ListQuery, list_response};
use super::{AppState, json_response};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/partner/token-pools", get(list_pools)).route("/v1/partner/token-pools/{pool_id}", get(get_pool))
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
