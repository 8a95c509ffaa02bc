//! Self-service keys (contract §4): a portal account manages its partner's key pairs. The
//! account's first key creates its partner (ACTIVE, for sandbox work); production keys
//! need the partner's `productionApproved`. Lists never show a secret.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use reward_actors::api::common::Id;
use reward_actors::api::common::parse_timestamp;
use reward_actors::api::common::{Environment, ScopeSet};
use reward_actors::api::keys::KeyStatus;
use reward_actors::api::keys::KeyView;
use reward_actors::api::keys::{KeyPatch, NewKey};
use reward_actors::api::partners::NewPartner;
use reward_actors::api::partners::PartnerView;
use reward_actors::api::partners::{PartnerRecord, PartnerStatus, Tier};
use reward_actors::api::portal::AccountRecord;

use super::PortalCaller;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::PathSegment;
use crate::http::fields::Fields;
use crate::http::list::{ListQuery, sorted_list_response};
use crate::http::parse::{environment, future_timestamp, key_id, scopes};
use crate::http::routes::{Guard, Route};
use crate::http::{AppState, json_response};

pub fn routes() -> Vec<Route> {
    vec![
        Route::post("/v1/partner/keys", Guard::Portal, create_key),
        Route::get("/v1/partner/keys", Guard::Portal, list_keys),
        Route::get("/v1/partner/keys/partner-info", Guard::Portal, partner_info),
        Route::get("/v1/partner/keys/{key_id}", Guard::Portal, get_key),
        Route::patch("/v1/partner/keys/{key_id}", Guard::Portal, update_key),
        Route::delete("/v1/partner/keys/{key_id}", Guard::Portal, revoke_key),
    ]
}

fn no_partner() -> ApiError {
    ApiError::not_found("this account has no partner yet: create its first key with POST /v1/partner/keys")
}

fn account_partner(state: &AppState, account: &AccountRecord) -> ApiResult<PartnerRecord> {
    let partner_id = account.partner_id.ok_or_else(no_partner)?;
    Ok(state.engine.partners().get_partner(partner_id)?)
}

async fn create_key(State(state): State<AppState>, PortalCaller { account, request }: PortalCaller) -> ApiResult<Response> {
    request.require_json()?;
    let mut fields = Fields::parse(&request.body)?;
    let name = fields.string("name", true, 200);
    let environment = environment(&mut fields);
    let key_type = fields.string("keyType", false, 16);
    if key_type.as_deref().is_some_and(|key_type| !matches!(key_type, "secret" | "publishable")) {
        fields.error("keyType", "must be secret or publishable (either way a full pair is issued)");
    }
    let scopes = scopes(&mut fields);
    let expires_at_ms = future_timestamp(&mut fields, "expiresAt", state.engine.clock().now_ms());
    fields.finish()?;
    let (Some(name), Some(environment)) = (name, environment) else {
        return Err(ApiError::field("body", "is invalid"));
    };
    let partner = match account.partner_id {
        Some(partner_id) => state.engine.partners().get_partner(partner_id)?,
        None if environment == Environment::Production => return Err(production_not_approved()),
        None => first_partner(&state, &account).await?,
    };
    if matches!(partner.status, PartnerStatus::Suspended | PartnerStatus::Closed) {
        return Err(ApiError::forbidden("FORBIDDEN", "this partner is suspended or closed; keys cannot be created"));
    }
    if environment == Environment::Production && !partner.production_approved {
        return Err(production_not_approved());
    }
    let new_key = NewKey { environment, name, scopes: scopes.unwrap_or_else(ScopeSet::all), expires_at_ms };
    let created = state.engine.keys().create_api_key(partner.id, new_key).await?;
    Ok(json_response(StatusCode::CREATED, &created))
}

fn production_not_approved() -> ApiError {
    ApiError::forbidden("PRODUCTION_NOT_APPROVED", "production keys need SIR Giving's approval of this partner (productionApproved)")
}

/// The account's first key creates its partner: named after the account, ACTIVE for
/// sandbox work, linked to the account (once, even when two first keys race).
async fn first_partner(state: &AppState, account: &AccountRecord) -> ApiResult<PartnerRecord> {
    let new_partner = NewPartner {
        name: account.name.clone(),
        contact_email: account.email.clone(),
        legal_entity: None,
        slug: None,
        tier: Tier::Standard,
        rate_limit: None,
        stakeholder_types: None,
    };
    Ok(state.engine.portal().ensure_account_partner(account.id, new_partner).await?)
}

async fn list_keys(State(state): State<AppState>, PortalCaller { account, request }: PortalCaller) -> ApiResult<Response> {
    ListQuery::none(&request.path_and_query)?;
    let keys = match account.partner_id {
        Some(partner_id) => state.engine.keys().list_api_keys(partner_id)?,
        None => Vec::new(),
    };
    Ok(sorted_list_response(keys.iter().map(KeyView::from).collect(), false))
}

async fn partner_info(State(state): State<AppState>, PortalCaller { account, .. }: PortalCaller) -> ApiResult<Response> {
    let partner = account_partner(&state, &account)?;
    Ok(json_response(StatusCode::OK, &PartnerView::from(&partner)))
}

async fn get_key(State(state): State<AppState>, PathSegment(key): PathSegment, PortalCaller { account, .. }: PortalCaller) -> ApiResult<Response> {
    let partner_id: Id = account.partner_id.ok_or_else(no_partner)?;
    let key = state.engine.keys().get_api_key(partner_id, key_id(&key)?)?;
    Ok(json_response(StatusCode::OK, &KeyView::from(&key)))
}

async fn update_key(
    State(state): State<AppState>,
    PathSegment(key): PathSegment,
    PortalCaller { account, request }: PortalCaller,
) -> ApiResult<Response> {
    let partner_id = account.partner_id.ok_or_else(no_partner)?;
    let key_id = key_id(&key)?;
    request.require_json()?;
    let mut fields = Fields::parse(&request.body)?;
    let name = fields.string("name", false, 200);
    let status = fields.string("status", false, 16).and_then(|status| match status.as_str() {
        "ACTIVE" => Some(KeyStatus::Active),
        "INACTIVE" => Some(KeyStatus::Inactive),
        _ => {
            fields.error("status", "must be ACTIVE or INACTIVE (revoke with DELETE)");
            None
        }
    });
    // `expiresAt: null` removes the expiry; a timestamp must lie in the future.
    let expires_at_ms = match fields.nullable("expiresAt") {
        None => None,
        Some(None) => Some(None),
        Some(Some(raw)) => match serde_json::from_str::<String>(raw.get()).ok().and_then(|text| parse_timestamp(&text)) {
            Some(at_ms) if at_ms > state.engine.clock().now_ms() => Some(Some(at_ms)),
            _ => {
                fields.error("expiresAt", "must be a future ISO 8601 timestamp, or null");
                None
            }
        },
    };
    fields.finish()?;
    let key = state.engine.keys().update_api_key(partner_id, key_id, KeyPatch { name, status, expires_at_ms }).await?;
    Ok(json_response(StatusCode::OK, &KeyView::from(&key)))
}

async fn revoke_key(State(state): State<AppState>, PathSegment(key): PathSegment, PortalCaller { account, .. }: PortalCaller) -> ApiResult<Response> {
    let partner_id = account.partner_id.ok_or_else(no_partner)?;
    let key = state.engine.keys().revoke_api_key(partner_id, key_id(&key)?).await?;
    Ok(json_response(StatusCode::OK, &KeyView::from(&key)))
}
