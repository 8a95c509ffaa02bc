//! `/v1/partner/webhooks` and `/v1/partner/events` (contract §9).
//!
//! Endpoints are written through the partner's actor (events fan out to them in the same
//! write set), deliveries are the dispatcher's, and the event feed is read from the store.
//! A target URL is checked here against the SSRF guard (resolved addresses, HTTPS for
//! production) before anything is stored, and again by the dispatcher at every attempt.

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use reward_actors::api::common::Id;
use reward_actors::api::common::{Environment, Scope};
use reward_actors::api::webhooks::{DeliveryView, EndpointStatus, EndpointView, EventType, RESERVED_HEADERS, WebhookFields};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::http::auth::Authorized;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::PathSegment;
use crate::http::fields::{Fields, array_elements};
use crate::http::list::{ListQuery, list_response};
use crate::http::parse::nullable;
use crate::http::routes::{Route, read, write};
use crate::http::{AppState, json_response, write_outcome_response};

/// A target URL's length.
const URL_CHARS_MAX: usize = 2_048;
/// Custom headers per endpoint, and their sizes.
const HEADERS_MAX: usize = 20;
const HEADER_NAME_CHARS_MAX: usize = 64;
const HEADER_VALUE_CHARS_MAX: usize = 1_024;

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/v1/partner/webhooks", read(Scope::WebhooksRead), list_webhooks),
        Route::post("/v1/partner/webhooks", write(Scope::WebhooksWrite), create_webhook),
        Route::post("/v1/partner/webhooks/deliveries/{delivery_id}/redeliver", write(Scope::WebhooksWrite), redeliver),
        Route::get("/v1/partner/webhooks/{endpoint_id}", read(Scope::WebhooksRead), get_webhook),
        Route::patch("/v1/partner/webhooks/{endpoint_id}", write(Scope::WebhooksWrite), update_webhook),
        Route::delete("/v1/partner/webhooks/{endpoint_id}", write(Scope::WebhooksWrite), delete_webhook),
        Route::post("/v1/partner/webhooks/{endpoint_id}/test", write(Scope::WebhooksWrite), test_webhook),
        Route::post("/v1/partner/webhooks/{endpoint_id}/rotate-secret", write(Scope::WebhooksWrite), rotate_secret),
        Route::get("/v1/partner/webhooks/{endpoint_id}/deliveries", read(Scope::WebhooksRead), list_deliveries),
        Route::get("/v1/partner/events", read(Scope::WebhooksRead), event_feed),
    ]
}

fn endpoint_id(text: &str) -> ApiResult<Id> {
    Id::parse_hex(text).ok_or_else(|| ApiError::not_found("webhook endpoint not found"))
}

async fn create_webhook(State(state): State<AppState>, Authorized { caller, request }: Authorized) -> ApiResult<Response> {
    request.require_json()?;
    let fields = parse_webhook(&state, &request.body, caller.partner_env().environment, true).await?;
    Ok(write_outcome_response(state.engine.webhooks().create_webhook(caller.partner_env(), fields).await?))
}

async fn update_webhook(
    State(state): State<AppState>,
    PathSegment(id): PathSegment,
    Authorized { caller, request }: Authorized,
) -> ApiResult<Response> {
    let endpoint_id = endpoint_id(&id)?;
    request.require_json()?;
    let fields = parse_webhook(&state, &request.body, caller.partner_env().environment, false).await?;
    Ok(write_outcome_response(state.engine.webhooks().update_webhook(caller.partner_env(), endpoint_id, fields).await?))
}

async fn delete_webhook(State(state): State<AppState>, PathSegment(id): PathSegment, Authorized { caller, .. }: Authorized) -> ApiResult<Response> {
    let endpoint_id = endpoint_id(&id)?;
    Ok(write_outcome_response(state.engine.webhooks().delete_webhook(caller.partner_env(), endpoint_id).await?))
}

async fn test_webhook(State(state): State<AppState>, PathSegment(id): PathSegment, Authorized { caller, .. }: Authorized) -> ApiResult<Response> {
    let endpoint_id = endpoint_id(&id)?;
    Ok(write_outcome_response(state.engine.webhooks().test_webhook(caller.partner_env(), endpoint_id).await?))
}

async fn rotate_secret(State(state): State<AppState>, PathSegment(id): PathSegment, Authorized { caller, .. }: Authorized) -> ApiResult<Response> {
    let endpoint_id = endpoint_id(&id)?;
    Ok(write_outcome_response(state.engine.webhooks().rotate_webhook_secret(caller.partner_env(), endpoint_id).await?))
}

async fn redeliver(State(state): State<AppState>, PathSegment(id): PathSegment, Authorized { caller, .. }: Authorized) -> ApiResult<Response> {
    let delivery_id =
        Id::parse_prefixed("dlv_", &id).or_else(|| Id::parse_hex(&id)).ok_or_else(|| ApiError::not_found("webhook delivery not found"))?;
    let delivery = state.engine.webhooks().redeliver(caller.partner_env(), delivery_id).await?;
    Ok(json_response(StatusCode::OK, &DeliveryView::from(&delivery)))
}

async fn list_webhooks(State(state): State<AppState>, Authorized { caller, request }: Authorized) -> ApiResult<Response> {
    let page = ListQuery::from_path(&request.path_and_query)?;
    let now_ms = state.engine.clock().now_ms();
    // At most `webhooks_per_partner_max` (16): one page, newest first, like every list.
    let mut endpoints = state.engine.webhooks().list_webhooks(caller.partner_env())?;
    endpoints.reverse();
    let page = reward_actors::api::common::Page::of_all(endpoints, page, |endpoint| endpoint.id);
    Ok(list_response(page, |endpoint| EndpointView::new(endpoint, None, now_ms)))
}

async fn get_webhook(State(state): State<AppState>, PathSegment(id): PathSegment, Authorized { caller, .. }: Authorized) -> ApiResult<Response> {
    let endpoint = state.engine.webhooks().get_webhook(caller.partner_env(), endpoint_id(&id)?)?;
    Ok(json_response(StatusCode::OK, &EndpointView::new(&endpoint, None, state.engine.clock().now_ms())))
}

async fn list_deliveries(
    State(state): State<AppState>,
    PathSegment(id): PathSegment,
    Authorized { caller, request }: Authorized,
) -> ApiResult<Response> {
    let endpoint_id = endpoint_id(&id)?;
    let page = ListQuery::from_path(&request.path_and_query)?;
    let deliveries = state.engine.webhooks().list_deliveries(caller.partner_env(), endpoint_id, page)?;
    Ok(list_response(deliveries, |delivery| DeliveryView::from(delivery)))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
#[derive(schemars::JsonSchema)]
#[schemars(rename = "EventList")]
pub(crate) struct FeedPage<'a> {
    #[schemars(with = "Vec<reward_actors::api::webhooks::EventEnvelope<serde_json::Value>>")]
    data: Vec<&'a RawValue>,
    has_more: bool,
    /// The last sequence on this page, to pass back as `after` (a string, like every cursor).
    next_cursor: Option<String>,
}

/// `GET /v1/partner/events?after=<sequence>&limit=`: the feed in ascending sequence.
/// `cursor` is accepted as another name for `after` (the `nextCursor` of the last page).
async fn event_feed(State(state): State<AppState>, Authorized { caller, request }: Authorized) -> ApiResult<Response> {
    let (after, limit) = ListQuery::feed(&request.path_and_query)?;
    let page = state.engine.webhooks().list_events(caller.partner_env(), after, limit)?;
    let events = page.items;
    let raw: Vec<Box<RawValue>> = events
        .iter()
        .map(|event| RawValue::from_string(String::from_utf8_lossy(&event.envelope_json).into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|error| reward_actors::EngineError::Internal(format!("a stored event is not JSON: {error}")))?;
    let body = FeedPage {
        data: raw.iter().map(AsRef::as_ref).collect(),
        has_more: page.has_more,
        next_cursor: page.next_cursor.map(|sequence| sequence.to_string()),
    };
    Ok(json_response(StatusCode::OK, &body))
}

/// Reads and checks an endpoint's fields; on create, `url` is required, and with neither
/// `eventTypes` nor `receiveAllEvents` the endpoint receives every event.
async fn parse_webhook(state: &AppState, body: &[u8], environment: Environment, creating: bool) -> ApiResult<WebhookFields> {
    let mut fields = Fields::parse(body)?;
    let url = fields.string("url", creating, URL_CHARS_MAX);
    let description = nullable(&mut fields, "description", |fields| fields.string("description", true, state.settings.name_chars_max));
    let event_types = event_types(&mut fields);
    let mut receive_all_events = fields.boolean("receiveAllEvents");
    let headers = custom_headers(&mut fields);
    let status = if creating {
        None
    } else {
        fields.string("status", false, 16).and_then(|text| match text.as_str() {
            "ENABLED" => Some(EndpointStatus::Enabled),
            "DISABLED" => Some(EndpointStatus::Disabled),
            _ => {
                fields.error("status", "must be ENABLED or DISABLED");
                None
            }
        })
    };
    if creating && receive_all_events.is_none() && event_types.as_ref().is_none_or(Vec::is_empty) {
        receive_all_events = Some(true);
    }
    if creating && receive_all_events == Some(false) && event_types.as_ref().is_none_or(Vec::is_empty) {
        fields.error("eventTypes", "name at least one event type, or set receiveAllEvents");
    }
    fields.finish()?;
    if let Some(url) = &url {
        state
            .engine
            .webhooks()
            .webhook_settings()
            .policy
            .check_url(url, environment)
            .await
            .map_err(|refusal| ApiError::field("url", refusal.to_string()))?;
    }
    Ok(WebhookFields { url, description, event_types, receive_all_events, headers, status })
}

fn event_types(fields: &mut Fields<'_>) -> Option<Vec<EventType>> {
    let elements = array_elements(fields, "eventTypes", false)?;
    let mut types: Vec<EventType> = Vec::with_capacity(elements.len());
    for (index, raw) in elements.into_iter().enumerate().take(EventType::ALL.len() + 1) {
        match serde_json::from_str::<String>(raw.get()).map(|name| name.parse::<EventType>()) {
            Ok(Ok(event_type)) if !types.contains(&event_type) => types.push(event_type),
            Ok(Ok(_)) => fields.error(&format!("eventTypes[{index}]"), "appears twice"),
            _ => fields.error(&format!("eventTypes[{index}]"), format!("must be one of {}", EventType::names().collect::<Vec<_>>().join(", "))),
        }
    }
    Some(types)
}

fn custom_headers(fields: &mut Fields<'_>) -> Option<Vec<(String, String)>> {
    let raw = fields.raw("headers")?;
    let Ok(map) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(raw.get()) else {
        fields.error("headers", "must be an object of header names to string values");
        return None;
    };
    if map.len() > HEADERS_MAX {
        fields.error("headers", format!("may hold at most {HEADERS_MAX} headers"));
        return None;
    }
    let mut headers = Vec::with_capacity(map.len());
    for (name, value) in map {
        let path = format!("headers.{name}");
        let lower = name.to_ascii_lowercase();
        let value = value.as_str().map(str::to_owned);
        if name.is_empty() || name.len() > HEADER_NAME_CHARS_MAX || HeaderName::from_bytes(name.as_bytes()).is_err() {
            fields.error(&path, format!("must be a header name of 1 to {HEADER_NAME_CHARS_MAX} characters"));
        } else if RESERVED_HEADERS.contains(&lower.as_str()) {
            fields.error(&path, "is set by the engine and cannot be overridden");
        } else if let Some(value) = value.filter(|value| value.len() <= HEADER_VALUE_CHARS_MAX && HeaderValue::from_str(value).is_ok()) {
            headers.push((name, value));
        } else {
            fields.error(&path, format!("must be a string of at most {HEADER_VALUE_CHARS_MAX} visible ASCII characters"));
        }
    }
    Some(headers)
}
