//! HTTP metrics: requests by route template, method and status, and their latency. The
//! route label is the matched template (`/v1/partner/actions/{action_id}`), never the raw
//! path, so its cardinality is the number of routes.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use super::AppState;

pub struct HttpMetrics {
    /// `reward_http_requests_total{route,method,status}`.
    pub requests: IntCounterVec,
    /// `reward_http_request_seconds{route}`: from the first byte read to the answer.
    pub latency: HistogramVec,
}

impl HttpMetrics {
    pub fn register(registry: &Registry) -> HttpMetrics {
        let requests =
            IntCounterVec::new(Opts::new("reward_http_requests_total", "HTTP requests by route, method and status."), &["route", "method", "status"])
                .expect("valid metric");
        let buckets = prometheus::exponential_buckets(0.000_1, 2.0, 16).expect("valid buckets");
        let latency =
            HistogramVec::new(HistogramOpts::new("reward_http_request_seconds", "HTTP request latency by route.").buckets(buckets), &["route"])
                .expect("valid metric");
        registry.register(Box::new(requests.clone())).expect("metric names are unique");
        registry.register(Box::new(latency.clone())).expect("metric names are unique");
        HttpMetrics { requests, latency }
    }
}

pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |path| path.as_str()).to_owned();
    let method = request.method().clone();
    let response = next.run(request).await;
    let metrics = &state.metrics;
    metrics.requests.with_label_values(&[route.as_str(), method.as_str(), response.status().as_str()]).inc();
    metrics.latency.with_label_values(&[route.as_str()]).observe(started.elapsed().as_secs_f64());
    response
}
