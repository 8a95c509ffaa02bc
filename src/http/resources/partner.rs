//! The partner as its keys see it: `GET /v1/partner/me` (any key: who am I) and the widget
//! route `GET /v1/partner/config` (publishable key, from browsers, with CORS).

use axum::http::StatusCode;
use axum::response::Response;
use reward_actors::api::common::{Environment, Feature, Scope};
use reward_actors::api::keys::KeyKind;
use reward_actors::api::partners::{PartnerStatus, RateLimit, TipConfig};
use serde::Serialize;

use crate::http::auth::{Access, Authorized, Caller};
use crate::http::cors::{allow_origin, widget_answer};
use crate::http::error::ApiResult;
use crate::http::extract::RawRequest;
use crate::http::routes::{Guard, Route};
use crate::http::sorted_json_response;

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/v1/partner/me", Guard::Key(Access::any_key()), me),
        Route::get("/v1/partner/config", Guard::Key(Access::widget()), config),
        Route::preflight("/v1/partner/config"),
    ]
}

/// `GET /v1/partner/me`: the calling key, its partner and environment.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Me<'a> {
    #[schemars(with = "reward_actors::api::schema::HexId")]
    partner_id: String,
    partner_name: &'a str,
    environment: Environment,
    #[schemars(with = "reward_actors::api::schema::KeyId")]
    key_id: String,
    #[schemars(extend("enum" = ["secret", "publishable"]))]
    key_type: &'static str,
    scopes: Vec<Scope>,
}

/// `GET /v1/partner/config`: what a widget may know of its partner.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WidgetConfig<'a> {
    #[schemars(with = "reward_actors::api::schema::HexId")]
    id: String,
    name: &'a str,
    slug: &'a str,
    enabled_features: &'a [Feature],
    rate_limit: RateLimit,
    is_active: bool,
    webhook_url: Option<String>,
    tip_config: TipConfig,
}

async fn me(Authorized { caller, .. }: Authorized) -> ApiResult<Response> {
    let key = &caller.key;
    let body = Me {
        partner_id: key.partner_env.partner_id.to_hex(),
        partner_name: &key.partner.name,
        environment: key.partner_env.environment,
        key_id: key.key_id.prefixed("key_"),
        key_type: match key.kind {
            KeyKind::Publishable => "publishable",
            KeyKind::Secret => "secret",
        },
        scopes: if key.kind == KeyKind::Publishable { Vec::new() } else { key.scopes.to_vec() },
    };
    Ok(sorted_json_response(StatusCode::OK, &body))
}

/// Browsers must be able to read a widget route's errors too (the code, Retry-After): an
/// error names the requesting origin, whatever the partner allows, since it carries nothing
/// but the error itself.
async fn config(Authorized { caller, request }: Authorized) -> Response {
    widget_answer(&request, partner_config(&caller, &request))
}

fn partner_config(caller: &Caller, request: &RawRequest) -> ApiResult<Response> {
    let partner = caller.partner();
    let body = WidgetConfig {
        id: partner.id.to_hex(),
        name: &partner.name,
        slug: &partner.slug,
        enabled_features: &partner.enabled_features,
        rate_limit: partner.rate_limit,
        is_active: partner.status == PartnerStatus::Active,
        webhook_url: None,
        tip_config: partner.tip_config,
    };
    let mut response = sorted_json_response(StatusCode::OK, &body);
    allow_origin(partner, &request.headers, response.headers_mut());
    Ok(response)
}
