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
use reward_actors::api::common::RateDecision;

use reward_actors::api::common::PartnerEnv;
use tracing::Instrument;

use super::AppState;

struct RequestContext {
    id: String,
    rate: RefCell<Option<RateDecision>>,
    caller: RefCell<Option<PartnerEnv>>,
}

tokio::task_local! {
    static REQUEST: RequestContext;
}

/// The id of the request being handled (a fresh one outside any request).
pub fn current_request_id() -> String {
    REQUEST.try_with(|context| context.id.clone()).unwrap_or_else(|_| reward_actors::api::common::IdGenerator::new().request_id(0))
}

/// Remembers who the caller is (partner id, environment), for the request's log line and
/// its span (so every event logged while handling it names the partner).
pub fn record_caller(partner_env: PartnerEnv) {
    let span = tracing::Span::current();
    // Formatting the id costs an allocation: only when the span is recorded at all.
    if !span.is_disabled() {
        span.record("partner", partner_env.partner_id.to_hex().as_str());
        span.record("environment", partner_env.environment.as_str());
    }
    let _ = REQUEST.try_with(|context| *context.caller.borrow_mut() = Some(partner_env));
}

/// The caller recorded for the request being handled, if it authenticated as a partner.
pub fn current_caller() -> Option<PartnerEnv> {
    REQUEST.try_with(|context| *context.caller.borrow()).ok().flatten()
}

/// Remembers the rate-limit decision, so the response carries its headers.
pub fn record_rate_decision(decision: RateDecision) {
    let _ = REQUEST.try_with(|context| *context.rate.borrow_mut() = Some(decision));
}

pub async fn assign_request_id(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let request_id = state.engine.ids().request_id(state.engine.clock().now_ms());
    let header = HeaderValue::from_str(&request_id).expect("request ids are ASCII");
    let method = request.method().clone();
    // The route template, never the raw path: paths carry ids, never secrets, but templates
    // keep the log's cardinality down too.
    let route = request.extensions().get::<axum::extract::MatchedPath>().map_or("unmatched", |path| path.as_str()).to_owned();
    let context = RequestContext { id: request_id.clone(), rate: RefCell::new(None), caller: RefCell::new(None) };
    // One span per request: whatever is logged while handling it carries these fields.
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        %method,
        route = %route,
        partner = tracing::field::Empty,
        environment = tracing::field::Empty
    );
    let (mut response, rate, caller) = REQUEST
        .scope(
            context,
            async move {
                let response = next.run(request).await;
                let rate = REQUEST.with(|context| context.rate.take());
                let caller = REQUEST.with(|context| context.caller.take());
                (response, rate, caller)
            }
            .instrument(span),
        )
        .await;
    log_request(&request_id, &method, &route, response.status(), started.elapsed(), caller);
    let headers = response.headers_mut();
    headers.insert("x-request-id", header);
    if let Some(decision) = rate {
        for (name, value) in rate_limit_headers(&decision, state.engine.clock().now_secs()) {
            headers.insert(name, value);
        }
    }
    response
}

/// One line per request: id, partner and environment, route, status, latency. Never a
/// header or a body, so never a secret.
fn log_request(
    request_id: &str,
    method: &axum::http::Method,
    route: &str,
    status: axum::http::StatusCode,
    elapsed: std::time::Duration,
    caller: Option<PartnerEnv>,
) {
    let latency_us = elapsed.as_micros() as u64;
    // Only at the levels that log: the id's hex form is an allocation.
    if !(status.is_server_error() || tracing::enabled!(tracing::Level::DEBUG)) {
        return;
    }
    let partner = caller.map(|caller| caller.partner_id.to_hex()).unwrap_or_default();
    let environment = caller.map_or("", |caller| caller.environment.as_str());
    if status.is_server_error() {
        tracing::error!(request_id, %method, route, status = status.as_u16(), latency_us, partner, environment, "request failed");
    } else {
        tracing::debug!(request_id, %method, route, status = status.as_u16(), latency_us, partner, environment, "request");
    }
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
