//! Request ids: every request gets `req_<24hex>`, echoed in `X-Request-Id`, in error bodies
//! and in the logs. The id lives in a task-local for the request's duration, so an error
//! can name it without threading it through every function.

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled (a fresh one outside any request).
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_else(|_| reward_actors::ids::IdGenerator::new().request_id(0))
}

pub async fn assign_request_id(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let request_id = state.engine.ids().request_id(state.engine.clock().now_ms());
    let header = HeaderValue::from_str(&request_id).expect("request ids are ASCII");
    let mut response = REQUEST_ID.scope(request_id, next.run(request)).await;
    response.headers_mut().insert("x-request-id", header);
    response
}
