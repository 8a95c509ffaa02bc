//! `/api/v1/admin/partners`: create, list, read and update partners.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use reward_actors::api::common::Cidr;
use reward_actors::api::common::Feature;
use reward_actors::api::partners::PartnerView;
use reward_actors::api::partners::{NewPartner, PartnerPatch};
use reward_actors::api::partners::{PartnerStatus, RateLimit, Tier, TipConfig};

use super::partner_id;
use crate::http::auth::AdminRequest;
use crate::http::error::ApiResult;
use crate::http::extract::PathSegment;
use crate::http::fields::{Fields, array_elements};
use crate::http::list::{ListQuery, list_response};
use crate::http::parse::{email, enum_field, slug};
use crate::http::routes::{Guard, Route};
use crate::http::{AppState, json_response};

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/api/v1/admin/partners", Guard::Admin, list_partners),
        Route::post("/api/v1/admin/partners", Guard::Admin, create_partner),
        Route::get("/api/v1/admin/partners/{partner_id}", Guard::Admin, get_partner),
        Route::patch("/api/v1/admin/partners/{partner_id}", Guard::Admin, update_partner),
    ]
}

/// Names, slugs and list fields have bounds so one partner record stays small.
const NAME_CHARS_MAX: usize = 200;
const STAKEHOLDER_TYPES_MAX: usize = 20;
const LIST_ENTRIES_MAX: usize = 50;
/// A rate limit beyond this is a typo, not a contract.
const HOURLY_LIMIT_MAX: u64 = 1_000_000_000;

async fn create_partner(State(state): State<AppState>, AdminRequest(request): AdminRequest) -> ApiResult<Response> {
    request.require_json()?;
    let mut fields = Fields::parse(&request.body)?;
    let name = fields.string("name", true, NAME_CHARS_MAX);
    let contact_email = email(&mut fields, "contactEmail", true);
    let legal_entity = fields.string("legalEntity", false, NAME_CHARS_MAX);
    let slug = slug(&mut fields, false);
    let tier = enum_field::<Tier>(&mut fields, "tier", "STANDARD, PROFESSIONAL, ENTERPRISE or CUSTOM").unwrap_or(Tier::Standard);
    let rate_limit = rate_limit(&mut fields);
    check_tier_and_limit(&mut fields, tier, rate_limit, true);
    let stakeholder_types = stakeholder_types(&mut fields);
    fields.finish()?;
    let (Some(name), Some(contact_email)) = (name, contact_email) else {
        return Err(crate::http::error::ApiError::field("body", "is invalid"));
    };
    let new_partner = NewPartner { name, contact_email, legal_entity, slug, tier, rate_limit, stakeholder_types };
    let partner = state.engine.partners().create_partner(new_partner).await?;
    Ok(json_response(StatusCode::CREATED, &PartnerView::from(&partner)))
}

async fn list_partners(State(state): State<AppState>, AdminRequest(request): AdminRequest) -> ApiResult<Response> {
    let page = ListQuery::from_path(&request.path_and_query)?;
    let partners = state.engine.partners().list_partners(page)?;
    Ok(list_response(partners, |partner| PartnerView::from(partner)))
}

async fn get_partner(State(state): State<AppState>, PathSegment(partner): PathSegment, AdminRequest(_): AdminRequest) -> ApiResult<Response> {
    let partner = state.engine.partners().get_partner(partner_id(&partner)?)?;
    Ok(json_response(StatusCode::OK, &PartnerView::from(&partner)))
}

async fn update_partner(
    State(state): State<AppState>,
    PathSegment(partner): PathSegment,
    AdminRequest(request): AdminRequest,
) -> ApiResult<Response> {
    let partner_id = partner_id(&partner)?;
    request.require_json()?;
    let current = state.engine.partners().get_partner(partner_id)?;
    let mut fields = Fields::parse(&request.body)?;
    let patch = PartnerPatch {
        name: fields.string("name", false, NAME_CHARS_MAX),
        contact_email: email(&mut fields, "contactEmail", false),
        legal_entity: fields.string("legalEntity", false, NAME_CHARS_MAX).map(Some),
        status: enum_field::<PartnerStatus>(&mut fields, "status", "PENDING_APPROVAL, ACTIVE, SUSPENDED or CLOSED"),
        tier: enum_field::<Tier>(&mut fields, "tier", "STANDARD, PROFESSIONAL, ENTERPRISE or CUSTOM"),
        rate_limit: rate_limit(&mut fields),
        enabled_features: features(&mut fields),
        stakeholder_types: stakeholder_types(&mut fields),
        ip_allowlist: distinct_list(&mut fields, "ipAllowlist", |text| Cidr::parse_block(text).map_err(|error| error.to_string())),
        allowed_origins: string_list(&mut fields, "allowedOrigins", is_origin, "must be origins like https://shop.example.com, or *"),
        production_approved: fields.boolean("productionApproved"),
        allow_basic_auth: fields.boolean("allowBasicAuth"),
        tip_config: tip_config(&mut fields),
    };
    check_tier_and_limit(
        &mut fields,
        patch.tier.unwrap_or(current.tier),
        patch.rate_limit,
        patch.tier == Some(Tier::Custom) && current.tier != Tier::Custom,
    );
    fields.finish()?;
    let partner = state.engine.partners().update_partner(partner_id, patch).await?;
    Ok(json_response(StatusCode::OK, &PartnerView::from(&partner)))
}

fn rate_limit(fields: &mut Fields<'_>) -> Option<RateLimit> {
    let raw = fields.raw("rateLimit")?;
    let mut nested = fields.object("rateLimit", raw)?;
    let hourly = nested.unsigned("hourly", true, HOURLY_LIMIT_MAX);
    let per_minute = nested.unsigned("perMinute", true, HOURLY_LIMIT_MAX);
    let limit = match (hourly, per_minute) {
        (Some(hourly), Some(per_minute)) if per_minute >= 1 && per_minute <= hourly => {
            Some(RateLimit { hourly: hourly as u32, per_minute: per_minute as u32 })
        }
        (Some(_), Some(_)) => {
            nested.error("perMinute", "must be at least 1 and at most hourly");
            None
        }
        _ => None,
    };
    fields.absorb(nested);
    limit
}

/// A custom rate limit goes with tier CUSTOM and only with it.
fn check_tier_and_limit(fields: &mut Fields<'_>, tier: Tier, rate_limit: Option<RateLimit>, limit_required: bool) {
    match (tier, rate_limit) {
        (Tier::Custom, None) if limit_required => fields.error("rateLimit", "is required with tier CUSTOM"),
        (tier, Some(_)) if tier != Tier::Custom => {
            fields.error("rateLimit", "can only be set with tier CUSTOM (other tiers use the standard limits)")
        }
        _ => {}
    }
}

fn stakeholder_types(fields: &mut Fields<'_>) -> Option<Vec<String>> {
    string_list(fields, "stakeholderTypes", is_type_code, "must be codes like CUSTOMER: an upper-case letter, then A-Z 0-9 _ (at most 64)").filter(
        |codes| {
            let valid = !codes.is_empty() && codes.len() <= STAKEHOLDER_TYPES_MAX;
            if !valid {
                fields.error("stakeholderTypes", format!("must hold 1 to {STAKEHOLDER_TYPES_MAX} codes"));
            }
            valid
        },
    )
}

fn is_type_code(code: &str) -> bool {
    code.len() <= 64
        && code.starts_with(|first: char| first.is_ascii_uppercase())
        && code.bytes().all(|byte| byte.is_ascii_uppercase() || byte.is_ascii_digit() || byte == b'_')
}

fn features(fields: &mut Fields<'_>) -> Option<Vec<Feature>> {
    let raw = fields.raw("enabledFeatures")?;
    let parsed = serde_json::from_str::<Vec<Feature>>(raw.get()).ok();
    if parsed.is_none() {
        fields.error("enabledFeatures", "must be an array of ACTIONS and DONATIONS");
    }
    parsed.map(|mut features| {
        features.dedup();
        features
    })
}

/// An array of strings, each parsed by `parse` (its error is the field's message), kept
/// once each, at most `LIST_ENTRIES_MAX`.
fn distinct_list<T: PartialEq>(fields: &mut Fields<'_>, name: &str, parse: impl Fn(&str) -> Result<T, String>) -> Option<Vec<T>> {
    let elements = array_elements(fields, name, false)?;
    let mut values: Vec<T> = Vec::with_capacity(elements.len());
    for element in elements {
        let parsed =
            serde_json::from_str::<String>(element.get()).map_err(|_| "must be an array of strings".to_owned()).and_then(|text| parse(&text));
        match parsed {
            Ok(value) => {
                if !values.contains(&value) {
                    values.push(value);
                }
            }
            Err(message) => {
                fields.error(name, message);
                return None;
            }
        }
    }
    if values.len() > LIST_ENTRIES_MAX {
        fields.error(name, format!("may hold at most {LIST_ENTRIES_MAX} entries"));
        return None;
    }
    Some(values)
}

/// An array of distinct strings, each passing `valid`.
fn string_list(fields: &mut Fields<'_>, name: &str, valid: fn(&str) -> bool, message: &str) -> Option<Vec<String>> {
    distinct_list(fields, name, |text| if valid(text) { Ok(text.to_owned()) } else { Err(message.to_owned()) })
}

fn is_origin(text: &str) -> bool {
    text == "*"
        || ((text.starts_with("https://") || text.starts_with("http://"))
            && text.len() <= 200
            && !text.ends_with('/')
            && !text.contains(char::is_whitespace))
}

fn tip_config(fields: &mut Fields<'_>) -> Option<TipConfig> {
    let raw = fields.raw("tipConfig")?;
    let mut nested = fields.object("tipConfig", raw)?;
    let enabled = nested.boolean("enabled");
    let default_percent = nested.unsigned("defaultPercent", false, 100);
    if enabled.is_none() {
        nested.error("enabled", "is required");
    }
    fields.absorb(nested);
    Some(TipConfig { enabled: enabled?, default_percent: default_percent.unwrap_or(0) as u8 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_type_codes() {
        assert!(is_origin("https://shop.example.com") && is_origin("*"));
        assert!(!is_origin("shop.example.com") && !is_origin("https://x.com/"));
        assert!(is_type_code("CUSTOMER") && is_type_code("NON_PROFIT2"));
        assert!(!is_type_code("customer") && !is_type_code("1ST") && !is_type_code(""));
    }
}
