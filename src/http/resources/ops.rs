//! Operations: `/healthz` (alive, with the server clock for signing), `/readyz` (store
//! open and accepting writes, engine answering; when not, 503 with the reason) and
//! `/metrics` (Prometheus text).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus::{Encoder, TextEncoder};
use reward_actors::api::operations::StoreBackend;
use serde::Serialize;
use serde_json::json;

use crate::http::error::ApiError;
use crate::http::routes::{Guard, Route};
use crate::http::{AppState, sorted_json_response};

pub fn routes() -> Vec<Route> {
    vec![Route::get("/healthz", Guard::Public, healthz), Route::get("/readyz", Guard::Public, readyz), Route::get("/metrics", Guard::Public, metrics)]
}

/// `/healthz`: alive, and the server's clock in Unix seconds (requests are signed against it).
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Health {
    status: &'static str,
    server_time: u64,
}

/// `/readyz` when ready: the store it runs on.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct Readiness {
    status: &'static str,
    store: StoreBackend,
}

async fn healthz(State(state): State<AppState>) -> Response {
    sorted_json_response(StatusCode::OK, &Health { status: "ok", server_time: state.engine.clock().now_secs() })
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.engine.not_ready_reason() {
        None => sorted_json_response(StatusCode::OK, &Readiness { status: "ready", store: state.engine.store_backend() }),
        // The reason is for the operator (e.g. "… No space left on device (os error 28) …");
        // it names the failure, never a key, a value or a secret.
        Some(reason) => {
            let retry_after_secs = state.engine.not_ready_retry_after_secs();
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "OVERLOADED", format!("the engine is not ready: {reason}"))
                .with_details(json!({ "reason": reason, "retryAfterSeconds": retry_after_secs }))
                .with_header(header::RETRY_AFTER, retry_after_secs.into())
                .into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    state.engine.refresh_gauges();
    let _scrape = state.metrics.scrape.lock();
    state.metrics.publish_top_partners();
    let mut text = Vec::new();
    if let Err(error) = TextEncoder::new().encode(&state.engine.metrics_registry().gather(), &mut text) {
        tracing::error!(%error, "encoding metrics failed");
        return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", "internal error").into_response();
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
