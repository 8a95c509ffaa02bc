//! The operator's live view: `GET /admin/dashboard` (a self-contained page: inline script
//! and styles, no external asset, nothing stored beyond the browser session) and the data it
//! polls, `GET /api/v1/admin/metrics` (every metric family as JSON, behind the admin token).
//!
//! The page asks for the admin token, keeps it in `sessionStorage` only (never a URL, a
//! cookie or local storage), and sends it as `Authorization: Bearer` on each poll. Rates,
//! percentiles and charts are computed in the page from consecutive snapshots.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus::proto::MetricType;
use serde_json::{Map, Value, json};

use crate::http::auth::AdminRequest;
use crate::http::error::ApiResult;
use crate::http::routes::{Guard, Route};
use crate::http::{AppState, json_response};

const PAGE: &str = include_str!("operator_dashboard.html");

pub fn routes() -> Vec<Route> {
    vec![Route::get("/admin/dashboard", Guard::Public, page), Route::get("/api/v1/admin/metrics", Guard::Admin, metrics_json)]
}

async fn page() -> Response {
    let mut response = (StatusCode::OK, PAGE).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    // Nothing may load from elsewhere; the page talks to this server only.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// `{"at": <unix ms>, "metrics": {name: {"type", "help", "series": [{labels, value} |
/// {labels, count, sum, buckets: [[le, cumulative], …]}]}}}`.
async fn metrics_json(State(state): State<AppState>, AdminRequest(_): AdminRequest) -> ApiResult<Response> {
    state.engine.refresh_gauges();
    let _scrape = state.metrics.scrape.lock();
    state.metrics.publish_top_partners();
    let mut metrics = Map::new();
    for family in state.engine.metrics_registry().gather() {
        let kind = family.get_field_type();
        let series: Vec<Value> = family
            .get_metric()
            .iter()
            .map(|metric| {
                let labels: Map<String, Value> = metric.get_label().iter().map(|label| (label.name().to_owned(), json!(label.value()))).collect();
                match kind {
                    MetricType::HISTOGRAM => {
                        let histogram = metric.get_histogram();
                        let buckets: Vec<Value> =
                            histogram.get_bucket().iter().map(|bucket| json!([bucket.upper_bound(), bucket.cumulative_count()])).collect();
                        json!({ "labels": labels, "count": histogram.get_sample_count(), "sum": histogram.get_sample_sum(), "buckets": buckets })
                    }
                    MetricType::COUNTER => json!({ "labels": labels, "value": metric.get_counter().get_value() }),
                    _ => json!({ "labels": labels, "value": metric.get_gauge().get_value() }),
                }
            })
            .collect();
        let kind = match kind {
            MetricType::HISTOGRAM => "histogram",
            MetricType::COUNTER => "counter",
            _ => "gauge",
        };
        metrics.insert(family.name().to_owned(), json!({ "type": kind, "help": family.help(), "series": series }));
    }
    Ok(json_response(StatusCode::OK, &json!({ "at": state.engine.clock().now_ms(), "metrics": metrics })))
}
