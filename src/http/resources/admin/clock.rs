//! `POST /api/v1/admin/clock {advanceSeconds}`: moves the test clock (only when the server
//! runs with `REWARD_TEST_CLOCK=on`; otherwise the route answers 404).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use reward_actors::api::common::format_timestamp;
use serde::Serialize;

use crate::http::auth::AdminRequest;
use crate::http::error::{ApiError, ApiResult};
use crate::http::fields::Fields;
use crate::http::routes::{Guard, Route};
use crate::http::{AppState, sorted_json_response};

/// One call moves the clock at most ten years: enough for any expiry test.
const ADVANCE_SECONDS_MAX: u64 = 10 * 366 * 86_400;

pub fn routes() -> Vec<Route> {
    vec![Route::post("/api/v1/admin/clock", Guard::Admin, advance)]
}

/// The test clock after a move: the time, and the same in Unix seconds.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ClockMoved {
    #[schemars(with = "reward_actors::api::schema::Timestamp")]
    now: String,
    server_time: u64,
}

async fn advance(State(state): State<AppState>, AdminRequest(request): AdminRequest) -> ApiResult<Response> {
    if !state.engine.clock().is_test() {
        return Err(ApiError::not_found("the test clock is off (start the server with REWARD_TEST_CLOCK=on)"));
    }
    request.require_json()?;
    let mut fields = Fields::parse(&request.body)?;
    let seconds = fields.unsigned("advanceSeconds", true, ADVANCE_SECONDS_MAX);
    fields.finish()?;
    let seconds = seconds.ok_or_else(|| ApiError::field("advanceSeconds", "is required"))?;
    let now_ms = state.engine.clock().advance(seconds as i64).map_err(|error| ApiError::field("advanceSeconds", error.to_string()))?;
    Ok(sorted_json_response(StatusCode::OK, &ClockMoved { server_time: now_ms / 1000, now: format_timestamp(now_ms) }))
}
