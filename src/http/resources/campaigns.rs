//! `/v1/partner/campaigns` (contract §8): the partner's reward rules.
//!
//! Campaigns are written through the partner's actor, which owns their budgets and checks
//! them against its pools; reads come from the store. `DELETE` ends a campaign rather than
//! erasing it: actions keep naming the campaign that paid them, so the record stays (answered
//! with status `ENDED`, like Stripe's archived prices).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use reward_actors::api::campaigns::CampaignFields;
use reward_actors::api::campaigns::CampaignView;
use reward_actors::api::campaigns::{CampaignSplit, CampaignStatus, CampaignTier};
use reward_actors::api::common::Id;
use reward_actors::api::common::Scope;
use reward_actors::api::common::{Currency, Multiplier, TOKENS_MAX};
use reward_actors::api::partners::PartnerRecord;
use serde_json::value::RawValue;

use crate::config::HttpLimits;
use crate::http::auth::Authorized;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::PathSegment;
use crate::http::fields::{Fields, array_elements};
use crate::http::list::{ListQuery, list_response};
use crate::http::parse::{hex_id, is_action_type, patch_metadata, timestamp};
use crate::http::request_id::current_request_id;
use crate::http::routes::{Route, read, write};
use crate::http::{AppState, json_response, write_outcome_response};

/// Bounds of a campaign's lists.
const ACTION_TYPES_MAX: usize = 50;
const TIERS_MAX: usize = 20;
const SPLITS_MAX: usize = 20;
const CURRENCIES_MAX: usize = 50;
/// Priorities run from −1,000,000 to 1,000,000 (higher wins).
const PRIORITY_BOUND: i64 = 1_000_000;

const STATUSES: [(&str, CampaignStatus); 4] =
    [("DRAFT", CampaignStatus::Draft), ("ACTIVE", CampaignStatus::Active), ("PAUSED", CampaignStatus::Paused), ("ENDED", CampaignStatus::Ended)];

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/v1/partner/campaigns", read(Scope::CampaignsRead), list_campaigns),
        Route::post("/v1/partner/campaigns", write(Scope::CampaignsWrite), create_campaign),
        Route::get("/v1/partner/campaigns/{campaign_id}", read(Scope::CampaignsRead), get_campaign),
        Route::patch("/v1/partner/campaigns/{campaign_id}", write(Scope::CampaignsWrite), update_campaign),
        Route::delete("/v1/partner/campaigns/{campaign_id}", write(Scope::CampaignsWrite), end_campaign),
    ]
}

fn campaign_id(text: &str) -> ApiResult<Id> {
    Id::parse_hex(text).ok_or_else(|| ApiError::not_found("campaign not found"))
}

async fn create_campaign(State(state): State<AppState>, Authorized { caller, request }: Authorized) -> ApiResult<Response> {
    request.require_json()?;
    let fields = parse_campaign(&request.body, caller.partner(), &state.settings, true)?;
    let outcome = state.engine.campaigns().create_campaign(caller.partner_env(), fields, current_request_id()).await?;
    Ok(write_outcome_response(outcome))
}

async fn update_campaign(
    State(state): State<AppState>,
    PathSegment(id): PathSegment,
    Authorized { caller, request }: Authorized,
) -> ApiResult<Response> {
    let campaign_id = campaign_id(&id)?;
    request.require_json()?;
    let fields = parse_campaign(&request.body, caller.partner(), &state.settings, false)?;
    let outcome = state.engine.campaigns().update_campaign(caller.partner_env(), campaign_id, fields, current_request_id()).await?;
    Ok(write_outcome_response(outcome))
}

async fn end_campaign(State(state): State<AppState>, PathSegment(id): PathSegment, Authorized { caller, .. }: Authorized) -> ApiResult<Response> {
    let campaign_id = campaign_id(&id)?;
    let fields = CampaignFields { status: Some(CampaignStatus::Ended), ..CampaignFields::default() };
    let outcome = state.engine.campaigns().update_campaign(caller.partner_env(), campaign_id, fields, current_request_id()).await?;
    Ok(write_outcome_response(outcome))
}

async fn list_campaigns(State(state): State<AppState>, Authorized { caller, request }: Authorized) -> ApiResult<Response> {
    let mut query = ListQuery::parse(&request.path_and_query);
    let status = query.one_of("status", &STATUSES);
    let page = query.finish()?;
    let campaigns = state.engine.campaigns().list_campaigns(caller.partner_env(), page, status)?;
    Ok(list_response(campaigns, |campaign| CampaignView::from(campaign)))
}

async fn get_campaign(State(state): State<AppState>, PathSegment(id): PathSegment, Authorized { caller, .. }: Authorized) -> ApiResult<Response> {
    let campaign = state.engine.campaigns().get_campaign(caller.partner_env(), campaign_id(&id)?)?;
    Ok(json_response(StatusCode::OK, &CampaignView::from(&campaign)))
}

/// Validates a campaign body. On create `name` is required; on a patch every field is
/// optional, and nullable ones (`fixedTokens`, `maxTokensPerAction`, `budgetTokens`,
/// `tokenPoolId`, `schedule`, `metadata`) are cleared by `null`.
fn parse_campaign(body: &[u8], partner: &PartnerRecord, limits: &HttpLimits, creating: bool) -> ApiResult<CampaignFields> {
    let mut fields = Fields::parse(body)?;
    let name = fields.string("name", creating, limits.name_chars_max);
    let status = fields.string("status", false, 16).and_then(|text| {
        let status = STATUSES.iter().find(|(name, _)| *name == text).map(|(_, status)| *status);
        if status.is_none() {
            fields.error("status", "must be DRAFT, ACTIVE, PAUSED or ENDED");
        }
        status
    });
    let action_types = string_list(&mut fields, "actionTypes", ACTION_TYPES_MAX, 64, |text| is_action_type(text).then(|| text.to_owned()));
    let priority = fields.integer("priority", -PRIORITY_BOUND, PRIORITY_BOUND).map(|value| i32::try_from(value).expect("within PRIORITY_BOUND"));
    let multiplier = multiplier(&mut fields, "multiplier");
    let tiers = tiers(&mut fields);
    let fixed_tokens = nullable_tokens(&mut fields, "fixedTokens");
    let max_tokens_per_action = nullable_tokens(&mut fields, "maxTokensPerAction");
    let splits = splits(&mut fields, partner);
    let schedule = schedule(&mut fields);
    let budget_tokens = nullable_tokens(&mut fields, "budgetTokens");
    let token_pool_id = match fields.is_null("tokenPoolId") {
        Some(true) => Some(None),
        Some(false) => hex_id(&mut fields, "tokenPoolId", true).map(Some),
        None => None,
    };
    let currencies =
        string_list(&mut fields, "currencies", CURRENCIES_MAX, 3, |text| Currency::from_code(text).map(|currency| currency.code().to_owned()));
    let metadata_json = patch_metadata(&mut fields, "metadata", limits);
    fields.finish()?;
    Ok(CampaignFields {
        name,
        status,
        action_types,
        priority,
        multiplier_ten_thousandths: multiplier,
        tiers,
        fixed_tokens,
        max_tokens_per_action,
        splits,
        starts_at_ms: schedule.map(|(starts, _)| starts),
        ends_at_ms: schedule.map(|(_, ends)| ends),
        budget_tokens,
        token_pool_id,
        currencies,
        metadata_json,
    })
}

/// An array of distinct strings, each checked (and normalized) by `check`.
fn string_list(
    fields: &mut Fields<'_>,
    name: &str,
    items_max: usize,
    chars_max: usize,
    check: impl Fn(&str) -> Option<String>,
) -> Option<Vec<String>> {
    let elements = array_elements(fields, name, false)?;
    if elements.len() > items_max {
        fields.error(name, format!("may hold at most {items_max} items"));
        return None;
    }
    let mut items: Vec<String> = Vec::with_capacity(elements.len());
    for (index, raw) in elements.into_iter().enumerate() {
        let item = serde_json::from_str::<String>(raw.get())
            .ok()
            .filter(|text| (1..=chars_max).contains(&text.chars().count()))
            .and_then(|text| check(&text));
        match item {
            Some(item) if !items.contains(&item) => items.push(item),
            Some(_) => fields.error(&format!("{name}[{index}]"), "appears twice"),
            None => fields.error(&format!("{name}[{index}]"), "is not a valid value"),
        }
    }
    Some(items)
}

/// A decimal multiplier with up to four places, from its exact JSON text.
fn multiplier(fields: &mut Fields<'_>, name: &str) -> Option<u64> {
    let raw = fields.raw(name)?;
    multiplier_value(fields, name, raw)
}

fn multiplier_value(fields: &mut Fields<'_>, name: &str, raw: &RawValue) -> Option<u64> {
    match Multiplier::parse(raw.get()) {
        Some(multiplier) => Some(multiplier.ten_thousandths()),
        None => {
            fields.error(name, "must be a non-negative decimal number with at most 4 decimal places, at most 1000000");
            None
        }
    }
}

fn nullable_tokens(fields: &mut Fields<'_>, name: &str) -> Option<Option<u64>> {
    match fields.is_null(name)? {
        true => Some(None),
        false => fields.unsigned(name, true, TOKENS_MAX).map(Some),
    }
}

/// `tiers [{minAmount, multiplier}]`: distinct minimum amounts (in the action's currency units).
fn tiers(fields: &mut Fields<'_>) -> Option<Vec<CampaignTier>> {
    let elements = array_elements(fields, "tiers", false)?;
    if elements.len() > TIERS_MAX {
        fields.error("tiers", format!("may hold at most {TIERS_MAX} tiers"));
        return None;
    }
    let mut tiers: Vec<CampaignTier> = Vec::with_capacity(elements.len());
    for (index, raw) in elements.into_iter().enumerate() {
        let Some(mut item) = fields.object(&format!("tiers[{index}]"), raw) else { continue };
        let min_amount = match item.raw("minAmount") {
            Some(raw) => multiplier_value(&mut item, "minAmount", raw),
            None => {
                item.error("minAmount", "is required");
                None
            }
        };
        let multiplier = match item.raw("multiplier") {
            Some(raw) => multiplier_value(&mut item, "multiplier", raw),
            None => {
                item.error("multiplier", "is required");
                None
            }
        };
        if let (Some(min_amount_ten_thousandths), Some(multiplier_ten_thousandths)) = (min_amount, multiplier) {
            if tiers.iter().any(|tier| tier.min_amount_ten_thousandths == min_amount_ten_thousandths) {
                item.error("minAmount", "repeats another tier's minAmount");
            }
            tiers.push(CampaignTier { min_amount_ten_thousandths, multiplier_ten_thousandths });
        }
        fields.absorb(item);
    }
    Some(tiers)
}

/// `splits [{stakeholderTypeCode, percent}]`: registered types, each once, percents summing
/// to 100. An empty list means an equal split among the action's stakeholders.
fn splits(fields: &mut Fields<'_>, partner: &PartnerRecord) -> Option<Vec<CampaignSplit>> {
    let elements = array_elements(fields, "splits", false)?;
    if elements.len() > SPLITS_MAX {
        fields.error("splits", format!("may hold at most {SPLITS_MAX} splits"));
        return None;
    }
    let mut splits: Vec<CampaignSplit> = Vec::with_capacity(elements.len());
    for (index, raw) in elements.into_iter().enumerate() {
        let Some(mut item) = fields.object(&format!("splits[{index}]"), raw) else { continue };
        let type_code = item.string("stakeholderTypeCode", true, 64).filter(|code| {
            let registered = partner.stakeholder_types.iter().any(|known| known == code);
            if !registered {
                item.error("stakeholderTypeCode", format!("'{code}' is not registered for this partner"));
            } else if splits.iter().any(|split| split.stakeholder_type_code == *code) {
                item.error("stakeholderTypeCode", "appears twice");
            }
            registered
        });
        let percent = item.unsigned("percent", true, 100).filter(|percent| {
            if *percent == 0 {
                item.error("percent", "must be 1 to 100");
            }
            *percent > 0
        });
        if let (Some(stakeholder_type_code), Some(percent)) = (type_code, percent) {
            splits.push(CampaignSplit { stakeholder_type_code, percent: u8::try_from(percent).expect("at most 100") });
        }
        fields.absorb(item);
    }
    let total: u64 = splits.iter().map(|split| u64::from(split.percent)).sum();
    if !splits.is_empty() && total != 100 {
        fields.error("splits", format!("percents must sum to 100 (they sum to {total})"));
    }
    Some(splits)
}

/// `schedule {startsAt, endsAt}` (either may be null); `null` clears both.
fn schedule(fields: &mut Fields<'_>) -> Option<(Option<u64>, Option<u64>)> {
    let raw = match fields.nullable("schedule")? {
        None => return Some((None, None)),
        Some(raw) => raw,
    };
    let mut item = fields.object("schedule", raw)?;
    let starts = timestamp(&mut item, "startsAt");
    let ends = timestamp(&mut item, "endsAt");
    if let (Some(starts), Some(ends)) = (starts, ends)
        && starts >= ends
    {
        item.error("endsAt", "must be after startsAt");
    }
    fields.absorb(item);
    Some((starts, ends))
}
