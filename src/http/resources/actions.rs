//! `/v1/partner/actions` (contract §6): submit (the reward path), batch, quote, reverse,
//! read and list.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use reward_actors::api::actions::ActionFilter;
use reward_actors::api::actions::ActionStatus;
use reward_actors::api::actions::ActionView;
use reward_actors::api::actions::{ActionRequest, ReversalRequest, Stakeholder};
use reward_actors::api::common::Id;
use reward_actors::api::common::TimeRange;
use reward_actors::api::common::raw_json;
use reward_actors::api::common::{AmountError, Currency, Money, parse_amount};
use reward_actors::api::common::{Feature, Scope};
use reward_actors::api::common::{IdempotencyKey, PartnerUserId};
use reward_actors::api::partners::PartnerRecord;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::config::HttpLimits;
use crate::http::auth::{Access, Authorized, RouteAccess, authorize_units};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{PathSegment, RawRequest};
use crate::http::fields::{Fields, array_elements};
use crate::http::list::{ListQuery, list_response};
use crate::http::parse::{hex_id, idempotency_key, is_action_type, is_email, parse_metadata, positive_tokens};
use crate::http::request_id::current_request_id;
use crate::http::routes::{BATCH_PATH, Guard, Route, read};
use crate::http::{AppState, json_response, sorted_json_response, write_outcome_parts, write_outcome_response};

/// The longest `reason` a reversal may carry.
const REASON_CHARS_MAX: usize = 500;

const STATUSES: [(&str, ActionStatus); 3] =
    [("COMPLETED", ActionStatus::Completed), ("PARTIALLY_REVERSED", ActionStatus::PartiallyReversed), ("REVERSED", ActionStatus::Reversed)];

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/v1/partner/actions", read(Scope::ActionsRead), list_actions),
        Route::post("/v1/partner/actions/submit", Guard::Key(SUBMIT_ACCESS), submit),
        Route::post(BATCH_PATH, Guard::Key(SUBMIT_ACCESS), batch),
        Route::post("/v1/partner/actions/quote", Guard::Key(Access::read(Scope::ActionsRead).with_feature(Feature::Actions)), quote),
        Route::get("/v1/partner/actions/{action_id}", read(Scope::ActionsRead), get_action),
        Route::post("/v1/partner/actions/{action_id}/reverse", Guard::Key(SUBMIT_ACCESS), reverse),
    ]
}

/// Write access to actions; the partner needs the actions feature.
const SUBMIT_ACCESS: Access = Access::write(Scope::ActionsWrite).with_feature(Feature::Actions);

async fn submit(State(state): State<AppState>, Authorized { caller, request }: Authorized) -> ApiResult<Response> {
    request.require_json()?;
    let action = parse_action_request(&request.body, caller.partner(), &state.settings, true)?;
    let outcome = state.engine.actions().submit_action(caller.partner_env(), action, current_request_id()).await?;
    Ok(write_outcome_response(outcome))
}

/// `POST /v1/partner/actions/quote`: the breakdown a submit would get now, no effects. The
/// idempotency key is optional (nothing is stored under it).
async fn quote(State(state): State<AppState>, Authorized { caller, request }: Authorized) -> ApiResult<Response> {
    request.require_json()?;
    let action = parse_action_request(&request.body, caller.partner(), &state.settings, false)?;
    let outcome = state.engine.actions().quote_action(caller.partner_env(), action, current_request_id()).await?;
    Ok(write_outcome_response(outcome))
}

/// One batch item's answer: what `submit` would have answered for it alone.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BatchResult {
    index: usize,
    status_code: u16,
    /// an Action, or an Error
    #[schemars(with = "reward_actors::api::schema::JsonObject")]
    body: Box<RawValue>,
}

/// The answer to a batch: one result per item, in order.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct BatchResults {
    results: Vec<BatchResult>,
}

/// `POST /v1/partner/actions/batch {"actions": [...]}`: up to `batch_items_max` submits,
/// each independent (its own status and body, exactly what `submit` would answer), in
/// order. The batch takes one rate-limit unit per item; more items than the burst is 400
/// `BATCH_EXCEEDS_BURST`. The batch itself answers 200 once every item has its answer.
/// The batch keeps its own path to `authorize_units`: its cost is counted from the body.
async fn batch(State(state): State<AppState>, access: RouteAccess, request: RawRequest) -> ApiResult<Response> {
    // The batch costs one unit per item, counted only after the key and signature passed
    // (an unauthenticated body is never parsed); a body that does not parse costs one unit
    // and is refused below with its own error.
    let items_max = state.settings.batch_items_max;
    let count_items = || {
        let items = Fields::parse(&request.body).ok().and_then(|mut fields| array_elements(&mut fields, "actions", true)).map(|items| items.len());
        u32::try_from(items.unwrap_or(1).clamp(1, items_max)).unwrap_or(u32::MAX)
    };
    let caller = authorize_units(&state, &request, access, count_items)?;
    request.require_json()?;
    let mut fields = Fields::parse(&request.body)?;
    let elements = array_elements(&mut fields, "actions", true);
    if let Some(elements) = &elements
        && !(1..=state.settings.batch_items_max).contains(&elements.len())
    {
        fields.error("actions", format!("must hold 1 to {} actions", state.settings.batch_items_max));
    }
    fields.finish()?;
    let elements = elements.ok_or_else(|| ApiError::field("actions", "is required"))?;
    // Items that fail validation answer their 400 in place; the rest go to the engine together.
    let mut results: Vec<Option<(u16, Vec<u8>)>> = Vec::with_capacity(elements.len());
    let mut valid = Vec::with_capacity(elements.len());
    for raw in &elements {
        match parse_action_request(raw.get().as_bytes(), caller.partner(), &state.settings, true) {
            Ok(action) => {
                valid.push(action);
                results.push(None);
            }
            Err(error) => results.push(Some((error.status.as_u16(), error.body()))),
        }
    }
    let mut outcomes = state.engine.actions().submit_batch(caller.partner_env(), valid, current_request_id()).await.into_iter();
    let results: Vec<BatchResult> = results
        .into_iter()
        .enumerate()
        .map(|(index, result)| {
            let (status_code, body) = result.unwrap_or_else(|| match outcomes.next().expect("one outcome per valid item") {
                Ok(outcome) => write_outcome_parts(outcome),
                Err(error) => {
                    let error = ApiError::from(error);
                    (error.status.as_u16(), error.body())
                }
            });
            BatchResult { index, status_code, body: raw_json(&body) }
        })
        .collect();
    Ok(sorted_json_response(StatusCode::OK, &BatchResults { results }))
}

/// `POST /v1/partner/actions/:id/reverse {idempotencyKey, reason, tokens?}`: all that
/// remains, or `tokens` of it, back to the pool pro rata per allocation.
async fn reverse(
    State(state): State<AppState>,
    PathSegment(action_id): PathSegment,
    Authorized { caller, request }: Authorized,
) -> ApiResult<Response> {
    let action_id = Id::parse_hex(&action_id).ok_or_else(|| ApiError::not_found("action not found"))?;
    request.require_json()?;
    let mut fields = Fields::parse(&request.body)?;
    let idempotency_key = idempotency_key(&mut fields, true);
    let reason = fields.string("reason", true, REASON_CHARS_MAX);
    let tokens = positive_tokens(&mut fields, "tokens", false);
    fields.finish()?;
    let (Some(idempotency_key), Some(reason)) = (idempotency_key, reason) else {
        return Err(ApiError::field("body", "is invalid"));
    };
    let reversal = ReversalRequest { idempotency_key, action_id, tokens, reason };
    let outcome = state.engine.actions().reverse_action(caller.partner_env(), reversal, current_request_id()).await?;
    Ok(write_outcome_response(outcome))
}

/// `GET /v1/partner/actions?status=&actionType=&from=&to=`, newest first.
async fn list_actions(State(state): State<AppState>, Authorized { caller, request }: Authorized) -> ApiResult<Response> {
    let mut query = ListQuery::parse(&request.path_and_query);
    let status = query.one_of("status", &STATUSES);
    let action_type = query.parsed("actionType", |text| is_action_type(text).then(|| text.to_owned()), "may use letters, digits and _ . : -".into());
    let created = TimeRange { from_ms: query.timestamp("from"), to_ms: query.timestamp("to") };
    let page = query.finish()?;
    let actions = state.engine.actions().list_actions(caller.partner_env(), page, &ActionFilter { status, action_type, created })?;
    Ok(list_response(actions, ActionView::from_record))
}

async fn get_action(
    State(state): State<AppState>,
    PathSegment(action_id): PathSegment,
    Authorized { caller, .. }: Authorized,
) -> ApiResult<Response> {
    let action_id = Id::parse_hex(&action_id).ok_or_else(|| ApiError::not_found("action not found"))?;
    let action = state.engine.actions().get_action(caller.partner_env(), action_id)?;
    Ok(json_response(StatusCode::OK, &ActionView::from_record(&action)))
}

/// Validates a submit (or quote) body into the engine's typed request.
/// A quote needs no idempotency key; one is stood in for it (a quote stores nothing).
pub fn parse_action_request(body: &[u8], partner: &PartnerRecord, limits: &HttpLimits, key_required: bool) -> ApiResult<ActionRequest> {
    let mut fields = Fields::parse(body)?;
    let idempotency_key =
        idempotency_key(&mut fields, key_required).or_else(|| (!key_required).then(|| IdempotencyKey::parse("quote").expect("a valid key")));
    let action_type = fields.string("actionType", true, 64).filter(|action_type| {
        let valid = is_action_type(action_type);
        if !valid {
            fields.error("actionType", "may use letters, digits and _ . : -");
        }
        valid
    });
    let amount = parse_money(&mut fields);
    let campaign_id = hex_id(&mut fields, "campaignId", false);
    let stakeholders = parse_stakeholders(&mut fields, partner, limits);
    let auto_create_users = fields.boolean("autoCreateUsers").unwrap_or(true);
    let metadata_json = parse_metadata(&mut fields, "metadata", limits);
    fields.finish()?;
    let (Some(idempotency_key), Some(action_type), Some(amount), Some(stakeholders)) = (idempotency_key, action_type, amount, stakeholders) else {
        // Every missing or invalid field recorded an error above, so finish() returned it.
        return Err(ApiError::field("body", "is invalid"));
    };
    Ok(ActionRequest { idempotency_key, action_type, amount, campaign_id, stakeholders, auto_create_users, metadata_json })
}

/// `amount` and `currency` come together or not at all. `Some(None)`: neither was sent.
fn parse_money(fields: &mut Fields<'_>) -> Option<Option<Money>> {
    let amount_raw = fields.raw("amount");
    let currency = fields.string("currency", false, 3);
    let currency = match currency {
        None => None,
        Some(code) => match Currency::from_code(&code) {
            Some(currency) => Some(currency),
            None => {
                fields.error("currency", format!("'{code}' is not an ISO 4217 currency code we accept"));
                return None;
            }
        },
    };
    match (amount_raw, currency) {
        (None, None) => Some(None),
        (Some(_), None) => {
            fields.error("currency", "is required with amount");
            None
        }
        (None, Some(_)) => {
            fields.error("amount", "is required with currency");
            None
        }
        (Some(raw), Some(currency)) => match parse_amount(raw.get(), currency) {
            Ok(minor) => Some(Some(Money { minor, currency })),
            Err(error) => {
                let message = match error {
                    AmountError::TooManyDecimals(places) => format!("has more decimal places than {} allows ({places})", currency.code()),
                    other => other.to_string(),
                };
                fields.error("amount", message);
                None
            }
        },
    }
}

fn parse_stakeholders(fields: &mut Fields<'_>, partner: &PartnerRecord, limits: &HttpLimits) -> Option<Vec<Stakeholder>> {
    let elements = array_elements(fields, "stakeholders", true)?;
    if elements.is_empty() || elements.len() > limits.stakeholders_max {
        fields.error("stakeholders", format!("must hold 1 to {} stakeholders", limits.stakeholders_max));
        return None;
    }
    let mut stakeholders = Vec::with_capacity(elements.len());
    let mut valid = true;
    for (index, raw) in elements.into_iter().enumerate() {
        let Some(mut item) = fields.object(&format!("stakeholders[{index}]"), raw) else {
            valid = false;
            continue;
        };
        let stakeholder = parse_stakeholder(&mut item, partner, limits);
        if let Some(stakeholder) = &stakeholder
            && stakeholders.iter().any(|seen: &Stakeholder| seen.partner_user_id == stakeholder.partner_user_id)
        {
            item.error("partnerUserId", "appears twice in this action");
        }
        valid &= item.errors.is_empty();
        stakeholders.extend(stakeholder);
        fields.absorb(item);
    }
    valid.then_some(stakeholders)
}

fn parse_stakeholder(item: &mut Fields<'_>, partner: &PartnerRecord, limits: &HttpLimits) -> Option<Stakeholder> {
    let type_code = item.string("stakeholderTypeCode", true, 64).filter(|code| {
        let registered = partner.stakeholder_types.iter().any(|known| known == code);
        if !registered {
            item.error(
                "stakeholderTypeCode",
                format!("'{code}' is not registered for this partner (registered: {})", partner.stakeholder_types.join(", ")),
            );
        }
        registered
    });
    let partner_user_id = item.string("partnerUserId", true, PartnerUserId::CHARS_MAX).and_then(|text| {
        let parsed = PartnerUserId::parse(&text);
        if parsed.is_none() {
            item.error("partnerUserId", "must be 1 to 128 characters of A-Z a-z 0-9 . _ : @ -");
        }
        parsed
    });
    let user_email = item.string("userEmail", false, 254).filter(|email| {
        let valid = is_email(email);
        if !valid {
            item.error("userEmail", "must be an email address");
        }
        valid
    });
    let user_first_name = item.string("userFirstName", false, limits.name_chars_max);
    let user_last_name = item.string("userLastName", false, limits.name_chars_max);
    Some(Stakeholder { stakeholder_type_code: type_code?, partner_user_id: partner_user_id?, user_email, user_first_name, user_last_name })
}
