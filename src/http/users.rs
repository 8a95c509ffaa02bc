//! `/v1/partner/users`: balances (the rest of the user API builds on this file).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use reward_actors::EngineError;
use reward_actors::model::Scope;
use reward_actors::request::PartnerUserId;
use reward_actors::views::BalanceView;

use super::auth::{Access, authorize};
use super::error::ApiResult;
use super::extract::{PathSegment, RawRequest};
use super::{AppState, json_response};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/partner/users/{external_id}/balance", get(balance))
}

async fn balance(State(state): State<AppState>, PathSegment(external_id): PathSegment, request: RawRequest) -> ApiResult<Response> {
    let caller = authorize(&state, &request, Access::read(Scope::UsersRead))?;
    // An id that cannot exist names no user.
    let external_id = PartnerUserId::parse(&external_id).ok_or_else(|| EngineError::UserNotFound { partner_user_id: external_id.clone() })?;
    let user = state.engine.get_user(caller.partner_env(), external_id.as_str())?;
    Ok(json_response(StatusCode::OK, &BalanceView::from(&user)))
}
