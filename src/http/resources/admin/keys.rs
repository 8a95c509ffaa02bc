//! `/api/v1/admin/partners/:id/keys`: issue a key pair (secrets shown once).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use reward_actors::api::common::ScopeSet;
use reward_actors::api::keys::KeyView;
use reward_actors::api::keys::NewKey;

use super::partner_id;
use crate::http::auth::AdminRequest;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::PathSegment;
use crate::http::fields::Fields;
use crate::http::list::{ListQuery, sorted_list_response};
use crate::http::parse::key_id;
use crate::http::parse::{environment, future_timestamp, scopes};
use crate::http::routes::{Guard, Route};
use crate::http::{AppState, json_response};

pub fn routes() -> Vec<Route> {
    vec![
        Route::post("/api/v1/admin/partners/{partner_id}/keys", Guard::Admin, create_key),
        Route::get("/api/v1/admin/partners/{partner_id}/keys", Guard::Admin, list_keys),
        Route::delete("/api/v1/admin/partners/{partner_id}/keys/{key_id}", Guard::Admin, revoke_key),
        Route::post("/api/v1/admin/partners/{partner_id}/keys/{key_id}/rotate", Guard::Admin, rotate_key),
    ]
}

async fn list_keys(State(state): State<AppState>, PathSegment(partner): PathSegment, AdminRequest(request): AdminRequest) -> ApiResult<Response> {
    ListQuery::none(&request.path_and_query)?;
    let partner_id = partner_id(&partner)?;
    state.engine.partners().get_partner(partner_id)?;
    let keys = state.engine.keys().list_api_keys(partner_id)?;
    Ok(sorted_list_response(keys.iter().map(KeyView::from).collect(), false))
}

async fn rotate_key(
    State(state): State<AppState>,
    PathSegment((partner, key)): PathSegment<(String, String)>,
    AdminRequest(_): AdminRequest,
) -> ApiResult<Response> {
    let rotated = state.engine.keys().rotate_api_key(partner_id(&partner)?, key_id(&key)?).await?;
    Ok(json_response(StatusCode::CREATED, &rotated))
}

async fn revoke_key(
    State(state): State<AppState>,
    PathSegment((partner, key)): PathSegment<(String, String)>,
    AdminRequest(_): AdminRequest,
) -> ApiResult<Response> {
    let revoked = state.engine.keys().revoke_api_key(partner_id(&partner)?, key_id(&key)?).await?;
    Ok(json_response(StatusCode::OK, &KeyView::from(&revoked)))
}

async fn create_key(State(state): State<AppState>, PathSegment(partner): PathSegment, AdminRequest(request): AdminRequest) -> ApiResult<Response> {
    let partner_id = partner_id(&partner)?;
    request.require_json()?;
    let mut fields = Fields::parse(&request.body)?;
    let environment = environment(&mut fields);
    let name = fields.string("name", true, 200);
    let scopes = scopes(&mut fields);
    let expires_at_ms = future_timestamp(&mut fields, "expiresAt", state.engine.clock().now_ms());
    fields.finish()?;
    let (Some(environment), Some(name)) = (environment, name) else {
        return Err(ApiError::field("body", "is invalid"));
    };
    let created = state
        .engine
        .keys()
        .create_api_key(partner_id, NewKey { environment, name, scopes: scopes.unwrap_or_else(ScopeSet::all), expires_at_ms })
        .await?;
    Ok(json_response(StatusCode::CREATED, &created))
}
