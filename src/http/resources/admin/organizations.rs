//! `/api/v1/admin/organizations`: the nonprofit registry the widget routes look up
//! (contract §4: `POST /organizations`, `PATCH /organizations/:slug`; `GET` is ours).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use reward_actors::api::donations::OrganizationView;
use reward_actors::api::donations::{OrganizationFields, OrganizationStatus};

use crate::http::auth::AdminRequest;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::PathSegment;
use crate::http::fields::Fields;
use crate::http::parse::{enum_field, organization_slug, slug};
use crate::http::routes::{Guard, Route};
use crate::http::{AppState, json_response};

/// Bounds of an organization's fields.
const NAME_CHARS_MAX: usize = 200;
const URL_CHARS_MAX: usize = 2_048;
/// An EIN is `12-3456789`; other registries' numbers fit in 32 characters.
const EIN_CHARS_MAX: usize = 32;

pub fn routes() -> Vec<Route> {
    vec![
        Route::post("/api/v1/admin/organizations", Guard::Admin, create_organization),
        Route::get("/api/v1/admin/organizations/{slug}", Guard::Admin, get_organization),
        Route::patch("/api/v1/admin/organizations/{slug}", Guard::Admin, update_organization),
    ]
}

async fn create_organization(State(state): State<AppState>, AdminRequest(request): AdminRequest) -> ApiResult<Response> {
    request.require_json()?;
    let mut fields = Fields::parse(&request.body)?;
    let slug = slug(&mut fields, true);
    let organization = organization_fields(&mut fields, true);
    fields.finish()?;
    let slug = slug.ok_or_else(|| ApiError::field("slug", "is required"))?;
    let organization = state.engine.donations().create_organization(slug, organization).await?;
    Ok(json_response(StatusCode::CREATED, &OrganizationView::from(&organization)))
}

async fn get_organization(State(state): State<AppState>, PathSegment(slug): PathSegment, AdminRequest(_): AdminRequest) -> ApiResult<Response> {
    let organization = state.engine.donations().get_organization(organization_slug(&slug)?)?;
    Ok(json_response(StatusCode::OK, &OrganizationView::from(&organization)))
}

async fn update_organization(
    State(state): State<AppState>,
    PathSegment(slug): PathSegment,
    AdminRequest(request): AdminRequest,
) -> ApiResult<Response> {
    let slug = organization_slug(&slug)?;
    request.require_json()?;
    let mut fields = Fields::parse(&request.body)?;
    let organization = organization_fields(&mut fields, false);
    fields.finish()?;
    let organization = state.engine.donations().update_organization(slug, organization).await?;
    Ok(json_response(StatusCode::OK, &OrganizationView::from(&organization)))
}

/// `{name, logoUrl?, ein?, status?}`; `null` clears `logoUrl` and `ein`.
fn organization_fields(fields: &mut Fields<'_>, creating: bool) -> OrganizationFields {
    let name = fields.string("name", creating, NAME_CHARS_MAX);
    let logo_url = match fields.is_null("logoUrl") {
        Some(true) => Some(None),
        Some(false) => fields
            .string("logoUrl", true, URL_CHARS_MAX)
            .filter(|url| {
                let valid = url.starts_with("https://") || url.starts_with("http://");
                if !valid {
                    fields.error("logoUrl", "must be an http(s) URL");
                }
                valid
            })
            .map(Some),
        None => None,
    };
    let ein = match fields.is_null("ein") {
        Some(true) => Some(None),
        Some(false) => fields.string("ein", true, EIN_CHARS_MAX).map(Some),
        None => None,
    };
    let status = enum_field::<OrganizationStatus>(fields, "status", "ACTIVE or INACTIVE");
    OrganizationFields { name, logo_url, ein, status }
}
