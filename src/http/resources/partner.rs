//! The partner as its keys see it: `GET /v1/partner/me` (any key: who am I) and the widget
//! route `GET /v1/partner/config` (publishable key, from browsers, with CORS).

use axum::http::StatusCode;
use axum::response::Response;
use reward_actors::api::keys::KeyKind;
use reward_actors::api::partners::PartnerStatus;
use serde_json::json;

use crate::http::auth::{Access, Authorized, Caller};
use crate::http::cors::{allow_origin, widget_answer};
use crate::http::error::ApiResult;
use crate::http::extract::RawRequest;
use crate::http::json_response;
use crate::http::routes::{Guard, Route};

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
