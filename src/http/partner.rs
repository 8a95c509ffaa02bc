//! The partner as its keys see it: `GET /v1/partner/me` (any key: who am I) and the widget
//! route `GET /v1/partner/config` (publishable key, from browsers, with CORS).

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use reward_actors::api::keys::KeyKind;
use reward_actors::api::partners::{PartnerRecord, PartnerStatus};
use serde_json::json;

use super::auth::{Access, Authorized, Caller};
use super::error::ApiResult;
use super::extract::RawRequest;
use super::json_response;
use super::routes::{Guard, Route};

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/v1/partner/me", Guard::Key(Access::any_key()), me),
        Route::get("/v1/partner/config", Guard::Key(Access::widget()), config),
        Route::preflight("/v1/partner/config"),
    ]
}

async fn me(Authorized { caller, .. }: Authorized) -> ApiResult<Response> {
    let key = &caller.key;
    let body = json!({
        "partnerId": key.partner_env.partner_id.to_hex(),
        "partnerName": key.partner.name,
        "environment": key.partner_env.environment,
        "keyId": key.key_id.prefixed("key_"),
        "keyType": match key.kind { KeyKind::Publishable => "publishable", KeyKind::Secret => "secret" },
        "scopes": if key.kind == KeyKind::Publishable { Vec::new() } else { key.scopes.to_vec() },
    });
    Ok(json_response(StatusCode::OK, &body))
}

/// Browsers must be able to read a widget route's errors too (the code, Retry-After): an
/// error names the requesting origin, whatever the partner allows, since it carries nothing
/// but the error itself.
async fn config(Authorized { caller, request }: Authorized) -> Response {
    widget_answer(&request, partner_config(&caller, &request))
}

/// A widget route's answer: its response, or its error readable by the calling page.
pub fn widget_answer(request: &RawRequest, answer: ApiResult<Response>) -> Response {
    match answer {
        Ok(response) => response,
        Err(error) => {
            let mut response = error.into_response();
            if let Some(origin) = request.headers.get(header::ORIGIN).cloned() {
                expose(response.headers_mut(), origin);
            }
            response
        }
    }
}

fn expose(response: &mut HeaderMap, origin: HeaderValue) {
    response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    response.insert(header::VARY, HeaderValue::from_static("Origin"));
    response.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("X-Request-Id, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, X-RateLimit-RetryAfter, Retry-After, RateLimit, RateLimit-Policy"),
    );
}

fn partner_config(caller: &Caller, request: &RawRequest) -> ApiResult<Response> {
    let partner = caller.partner();
    let body = json!({
        "id": partner.id.to_hex(),
        "name": partner.name,
        "slug": partner.slug,
        "enabledFeatures": partner.enabled_features,
        "rateLimit": partner.rate_limit,
        "isActive": partner.status == PartnerStatus::Active,
        "webhookUrl": null,
        "tipConfig": partner.tip_config,
    });
    let mut response = json_response(StatusCode::OK, &body);
    allow_origin(partner, &request.headers, response.headers_mut());
    Ok(response)
}

/// Widget routes are called from browsers: answer the preflight for any origin (it carries
/// no key, so no partner to ask); the real response then names the origin only if the
/// partner allows it.
pub async fn preflight() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"),
            (header::ACCESS_CONTROL_ALLOW_HEADERS, "X-Partner-Key, Content-Type"),
            (header::ACCESS_CONTROL_MAX_AGE, "600"),
        ],
    )
        .into_response()
}

/// `Access-Control-Allow-Origin` for the request's origin when the partner allows it
/// (`allowedOrigins` empty or `*` allows every origin).
pub fn allow_origin(partner: &PartnerRecord, request: &HeaderMap, response: &mut HeaderMap) {
    response.insert(header::VARY, HeaderValue::from_static("Origin"));
    let Some(origin) = request.get(header::ORIGIN).and_then(|value| value.to_str().ok()) else {
        return;
    };
    let allowed = partner.allowed_origins.is_empty() || partner.allowed_origins.iter().any(|allowed| allowed == "*" || allowed == origin);
    if allowed && let Ok(value) = HeaderValue::from_str(origin) {
        response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        response.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("X-Request-Id, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After"),
        );
    }
}
