//! `/api/v1/admin/token-pool-requests`: partners' top-up requests, approved (tokens go to
//! the partner's default pool, once) or rejected, each exactly once.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use reward_actors::api::common::Id;
use reward_actors::api::pools::PoolRequestStatus;
use reward_actors::api::pools::PoolRequestView;
use serde::Serialize;

use crate::http::auth::AdminRequest;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{PathSegment, RawRequest};
use crate::http::fields::Fields;
use crate::http::list::{ListQuery, list_response};
use crate::http::routes::{Guard, Route};
use crate::http::{AppState, json_response, sorted_json_response};

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/api/v1/admin/token-pool-requests", Guard::Admin, list_requests),
        Route::post("/api/v1/admin/token-pool-requests/{request_id}/approve", Guard::Admin, approve),
        Route::post("/api/v1/admin/token-pool-requests/{request_id}/reject", Guard::Admin, reject),
    ]
}

fn request_id(text: &str) -> Result<Id, ApiError> {
    Id::parse_hex(text).ok_or_else(|| ApiError::not_found("token pool request not found"))
}

async fn list_requests(State(state): State<AppState>, AdminRequest(request): AdminRequest) -> ApiResult<Response> {
    let mut query = ListQuery::parse(&request.path_and_query);
    let status = query.one_of(
        "status",
        &[("PENDING", PoolRequestStatus::Pending), ("APPROVED", PoolRequestStatus::Approved), ("REJECTED", PoolRequestStatus::Rejected)],
    );
    let page = query.finish()?;
    let requests = state.engine.pools().list_pool_requests(status, page)?;
    Ok(list_response(requests, |record| PoolRequestView::from(record)))
}

/// An optional `{"note": "…"}` body (an empty body is fine).
fn note(request: &RawRequest) -> ApiResult<Option<String>> {
    if request.body.is_empty() {
        return Ok(None);
    }
    request.require_json()?;
    let mut fields = Fields::parse(&request.body)?;
    let note = fields.string("note", false, 500);
    fields.finish()?;
    Ok(note)
}

/// An approval: the request, and the pool its tokens landed in.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PoolRequestDecision {
    request: PoolRequestView,
    #[schemars(with = "reward_actors::api::pools::PoolView")]
    token_pool: Box<serde_json::value::RawValue>,
}

async fn approve(State(state): State<AppState>, PathSegment(id): PathSegment, AdminRequest(request): AdminRequest) -> ApiResult<Response> {
    let request_id = request_id(&id)?;
    let note = note(&request)?;
    let (record, outcome) = state.engine.pools().approve_pool_request(request_id, note).await?;
    let pool = match outcome {
        reward_actors::WriteOutcome::Done(recorded) | reward_actors::WriteOutcome::Replayed { original: recorded, .. } => {
            reward_actors::api::common::raw_json(&recorded.body)
        }
    };
    Ok(sorted_json_response(StatusCode::OK, &PoolRequestDecision { request: PoolRequestView::from(&record), token_pool: pool }))
}

async fn reject(State(state): State<AppState>, PathSegment(id): PathSegment, AdminRequest(request): AdminRequest) -> ApiResult<Response> {
    let request_id = request_id(&id)?;
    let note = note(&request)?;
    let record = state.engine.pools().reject_pool_request(request_id, note).await?;
    Ok(json_response(StatusCode::OK, &PoolRequestView::from(&record)))
}
