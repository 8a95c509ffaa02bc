//! The HTTP front: `resources/` holds one file per resource, each listing its `routes()` (see
//! `routes`); this module builds the router from them and applies the layer stack once (request id
//! outermost, then metrics).
//!
//! Invariant: handlers authenticate on the raw bytes (`extract::RawRequest`) before they
//! parse anything, and reach the engine only through `reward_actors::Engine`. A handler
//! gets its caller only from an extractor that enforces its route's table guard
//! (`auth::Authorized`, `auth::RouteAccess`, `auth::AdminRequest`, `resources::portal::PortalCaller`,
//! `resources::donations::ProviderCallback`).

pub mod auth;
mod cors;
pub mod error;
mod extract;
mod fields;
pub mod forward;
mod list;
mod metrics;
pub mod openapi;
mod parse;
pub mod request_id;
pub mod resources;
pub mod routes;
mod unique_members;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use reward_actors::api::common::Effect;
use reward_actors::{Engine, WriteOutcome};
use serde::Serialize;

use crate::config::HttpLimits;
use error::ApiError;
pub use metrics::HttpMetrics;
pub use routes::{Guard, Route};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub settings: Arc<HttpLimits>,
    pub metrics: Arc<HttpMetrics>,
    pub admin_token_digest: [u8; 32],
    pub portal: resources::portal::Portal,
    /// The trusted proxy header naming the client, if configured (see `ServerConfig`).
    pub client_ip_header: Option<axum::http::HeaderName>,
    pub donations: Arc<resources::donations::DonationSettings>,
    /// Cluster mode: forwards a request to its partner's owner node (`forward.rs`).
    pub forwarder: Option<forward::Forwarder>,
}

/// Every route the server answers, resource by resource (`routes::Route`: method, path,
/// guard, handler), OPTIONS preflights included.
pub fn routes() -> Vec<Route> {
    let mut routes = resources::routes();
    routes.extend(openapi::routes());
    routes
}

/// The router, built from [`routes()`]: methods on one path merge into one entry.
pub fn router(state: AppState) -> Router {
    let router = routes()
        .into_iter()
        .fold(Router::new(), |router, route| router.route(route.path, route.into_method_router()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    // A single node has no owner to forward to: the layer costs it nothing.
    let router = if state.forwarder.is_some() { router.layer(from_fn_with_state(state.clone(), forward::to_owner)) } else { router };
    router
        .layer(from_fn_with_state(state.clone(), metrics::record))
        .layer(from_fn_with_state(state.clone(), request_id::assign_request_id))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", "this route does not take that method")
}

/// A JSON response from bytes that are already JSON.
pub fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response {
    json_bytes(status, serde_json::to_vec(value).expect("serializing a response struct cannot fail"))
}

/// A JSON response written through a `serde_json::Value`, so its object keys come out sorted
/// at every depth: the answers once built with `json!` have always been written so, and
/// their typed structs keep those bytes.
pub fn sorted_json_response<T: Serialize>(status: StatusCode, value: &T) -> Response {
    json_response(status, &serde_json::to_value(value).expect("serializing a response struct cannot fail"))
}

/// The answer to an idempotent write: the original status and body, or (for a replay) the
/// contract's 409 `IDEMPOTENT` carrying the original body, with `Idempotent-Replayed: true`.
pub fn write_outcome_response(outcome: WriteOutcome) -> Response {
    match outcome {
        WriteOutcome::Done(recorded) => json_bytes(effect_status(recorded.effect), recorded.body.to_vec()),
        WriteOutcome::Replayed { original, original_request_id } => replay_error(&original.body, &original_request_id).into_response(),
    }
}

/// A write's answer as a status and JSON body (a batch item's result).
pub fn write_outcome_parts(outcome: WriteOutcome) -> (u16, Vec<u8>) {
    match outcome {
        WriteOutcome::Done(recorded) => (effect_status(recorded.effect).as_u16(), recorded.body.to_vec()),
        WriteOutcome::Replayed { original, original_request_id } => {
            let error = replay_error(&original.body, &original_request_id);
            (error.status.as_u16(), error.body())
        }
    }
}

/// A write's status: `201 Created` for a new resource, else `200 OK`.
pub fn effect_status(effect: Effect) -> StatusCode {
    match effect {
        Effect::Created => StatusCode::CREATED,
        Effect::Applied => StatusCode::OK,
    }
}

/// The contract's 409 `IDEMPOTENT`: the original body in `details.originalResponse`.
fn replay_error(original_body: &[u8], original_request_id: &str) -> ApiError {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct ReplayDetails<'a> {
        original_response: &'a serde_json::value::RawValue,
        original_request_id: &'a str,
    }
    let original_response = reward_actors::api::common::raw_json(original_body);
    let details = ReplayDetails { original_response: &original_response, original_request_id };
    let details = serde_json::value::to_raw_value(&details).expect("replay details serialize");
    ApiError::new(
        StatusCode::CONFLICT,
        "IDEMPOTENT",
        "this idempotency key was already used for an identical request; details.originalResponse is its answer",
    )
    .with_raw_details(details)
    .with_header(header::HeaderName::from_static("idempotent-replayed"), HeaderValue::from_static("true"))
}
