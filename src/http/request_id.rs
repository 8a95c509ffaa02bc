//! The request context: every request gets `req_<24hex>`, echoed in `X-Request-Id`, in
//! error bodies and in the logs; an authenticated request also carries its rate-limit
//! decision, turned into the contract's headers on whatever response it gets. The context
//! lives in a task-local for the request's duration, so neither has to be threaded through
//! every function.

use std::cell::RefCell;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use reward_actors::rate_limit::RateDecision;

use super::AppState;

struct RequestContext {
    id: String,
    rate: RefCell<Option<RateDecision>>,
}

tokio::task_local! {
    static REQUEST: RequestContext;
}

/// The id of the request being handled (a fresh one outside any request).
pub fn current_request_id() -> String {
    REQUEST.try_with(|context| context.id.clone()).unwrap_or_else(|_| reward_actors::ids::IdGenerator::new().request_id(0))
}

/// Remembers the rate-limit decision, so the response carries its headers.
pub fn record_rate_decision(decision: RateDecision) {
    let _ = REQUEST.try_with(|context| *context.rate.borrow_mut() = Some(decision));
}

pub async fn assign_request_id(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let request_id = state.engine.ids().request_id(state.engine.clock().now_ms());
    let header = HeaderValue::from_str(&request_id).expect("request ids are ASCII");
    let context = RequestContext { id: request_id, rate: RefCell::new(None) };
    let (mut response, rate) = REQUEST
        .scope(context, async move {
            let response = next.run(request).await;
            let rate = REQUEST.with(|context| context.rate.take());
            (response, rate)
        })
        .await;
    let headers = response.headers_mut();
    headers.insert("x-request-id", header);
    if let Some(decision) = rate {
        for (name, value) in rate_limit_headers(&decision, state.engine.clock().now_secs()) {
            headers.insert(name, value);
        }
    }
    response
}

/// `X-RateLimit-*` (the hourly quota) and the IETF draft's `RateLimit-Policy`/`RateLimit`
/// (both quotas), as contract §5 lists them.
pub fn rate_limit_headers(decision: &RateDecision, now_secs: u64) -> Vec<(HeaderName, HeaderValue)> {
    let (hourly, burst) = (decision.hourly, decision.burst);
    let number = |value: u64| HeaderValue::from(value);
    let text = |value: String| HeaderValue::from_str(&value).expect("rate-limit headers are ASCII");
    vec![
        (HeaderName::from_static("x-ratelimit-limit"), number(u64::from(hourly.limit))),
        (HeaderName::from_static("x-ratelimit-remaining"), number(u64::from(hourly.remaining))),
        (HeaderName::from_static("x-ratelimit-reset"), number(now_secs + hourly.reset_secs)),
        (HeaderName::from_static("ratelimit-policy"), text(format!("\"hourly\";q={};w=3600, \"burst\";q={};w=60", hourly.limit, burst.limit))),
        (
            HeaderName::from_static("ratelimit"),
            text(format!("\"hourly\";r={};t={}, \"burst\";r={};t={}", hourly.remaining, hourly.reset_secs, burst.remaining, burst.reset_secs)),
        ),
    ]
}
