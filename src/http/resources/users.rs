//! `/v1/partner/users` and `/v1/partner/transactions` (contract §7): users, balances, the
//! ledger, and redemption.
//!
//! Users are written through the partner's actor (it holds their balances); reads come
//! from the store. A balance is computed at read time from the injected clock: credit from
//! a vesting pool is `pending` until it vests, then `available`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use reward_actors::EngineError;
use reward_actors::api::common::PartnerUserId;
use reward_actors::api::common::Scope;
use reward_actors::api::common::TimeRange;
use reward_actors::api::users::TransactionFilter;
use reward_actors::api::users::TransactionType;
use reward_actors::api::users::{BalanceView, TransactionView, UserView};
use reward_actors::api::users::{RedemptionRequest, UserProfile};

use crate::http::auth::Authorized;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::PathSegment;
use crate::http::fields::Fields;
use crate::http::list::{ListQuery, list_response};
use crate::http::parse::{email, idempotency_key, nullable, parse_metadata, patch_metadata, positive_tokens};
use crate::http::request_id::current_request_id;
use crate::http::routes::{Route, read, write};
use crate::http::{AppState, json_response, write_outcome_response};

/// The longest `reason` a redemption may carry.
const REASON_CHARS_MAX: usize = 500;

pub fn routes() -> Vec<Route> {
    vec![
        Route::post("/v1/partner/users", write(Scope::UsersWrite), create_user),
        Route::get("/v1/partner/users", read(Scope::UsersRead), list_users),
        Route::get("/v1/partner/users/{external_id}", read(Scope::UsersRead), get_user),
        Route::patch("/v1/partner/users/{external_id}", write(Scope::UsersWrite), update_user),
        Route::get("/v1/partner/users/{external_id}/balance", read(Scope::UsersRead), balance),
        Route::get("/v1/partner/users/{external_id}/transactions", read(Scope::UsersRead), user_transactions),
        Route::post("/v1/partner/users/{external_id}/redeem", write(Scope::UsersWrite), redeem),
        Route::get("/v1/partner/transactions", read(Scope::TransactionsRead), list_transactions),
    ]
}

/// A path's `externalId`; one that cannot exist names no user (404, like any unknown user).
fn external_id(text: &str) -> ApiResult<PartnerUserId> {
    PartnerUserId::parse(text).ok_or_else(|| EngineError::UserNotFound { partner_user_id: text.to_owned() }.into())
}

async fn create_user(State(state): State<AppState>, Authorized { caller, request }: Authorized) -> ApiResult<Response> {
    request.require_json()?;
    let mut fields = Fields::parse(&request.body)?;
    let external_id = fields.string("externalId", true, PartnerUserId::CHARS_MAX).and_then(|text| {
        let parsed = PartnerUserId::parse(&text);
        if parsed.is_none() {
            fields.error("externalId", "must be 1 to 128 characters of A-Z a-z 0-9 . _ : @ -");
        }
        parsed
    });
    let limits = &state.settings;
    let profile = UserProfile {
        email: email(&mut fields, "email", false).map(Some),
        first_name: fields.string("firstName", false, limits.name_chars_max).map(Some),
        last_name: fields.string("lastName", false, limits.name_chars_max).map(Some),
        metadata_json: parse_metadata(&mut fields, "metadata", limits).map(Some),
    };
    fields.finish()?;
    let external_id = external_id.ok_or_else(|| ApiError::field("externalId", "is invalid"))?;
    let outcome = state.engine.users().create_user(caller.partner_env(), external_id, profile, current_request_id()).await?;
    Ok(write_outcome_response(outcome))
}

/// `PATCH`: a field sent replaces, `null` clears, absent leaves it.
async fn update_user(
    State(state): State<AppState>,
    PathSegment(external): PathSegment,
    Authorized { caller, request }: Authorized,
) -> ApiResult<Response> {
    let external_id = external_id(&external)?;
    request.require_json()?;
    let mut fields = Fields::parse(&request.body)?;
    let limits = &state.settings;
    let profile = UserProfile {
        email: nullable(&mut fields, "email", |fields| email(fields, "email", true)),
        first_name: nullable(&mut fields, "firstName", |fields| fields.string("firstName", true, limits.name_chars_max)),
        last_name: nullable(&mut fields, "lastName", |fields| fields.string("lastName", true, limits.name_chars_max)),
        metadata_json: patch_metadata(&mut fields, "metadata", limits),
    };
    fields.finish()?;
    let outcome = state.engine.users().update_user(caller.partner_env(), external_id, profile, current_request_id()).await?;
    Ok(write_outcome_response(outcome))
}

async fn list_users(State(state): State<AppState>, Authorized { caller, request }: Authorized) -> ApiResult<Response> {
    let page = ListQuery::from_path(&request.path_and_query)?;
    let users = state.engine.users().list_users(caller.partner_env(), page)?;
    let now_ms = state.engine.clock().now_ms();
    Ok(list_response(users, |user| UserView::of(user, now_ms)))
}

async fn get_user(State(state): State<AppState>, PathSegment(external): PathSegment, Authorized { caller, .. }: Authorized) -> ApiResult<Response> {
    let user = state.engine.users().get_user(caller.partner_env(), external_id(&external)?.as_str())?;
    Ok(json_response(StatusCode::OK, &UserView::of(&user, state.engine.clock().now_ms())))
}

async fn balance(State(state): State<AppState>, PathSegment(external): PathSegment, Authorized { caller, .. }: Authorized) -> ApiResult<Response> {
    let user = state.engine.users().get_user(caller.partner_env(), external_id(&external)?.as_str())?;
    Ok(json_response(StatusCode::OK, &BalanceView::of(&user, state.engine.clock().now_ms())))
}

/// `?type=REWARD|REVERSAL|REDEMPTION|ALLOCATION|REFILL&actionId=&from=&to=`.
fn transaction_filter(query: &mut ListQuery) -> TransactionFilter {
    let transaction_type = query.one_of(
        "type",
        &[
            ("REWARD", TransactionType::Reward),
            ("REVERSAL", TransactionType::Reversal),
            ("REDEMPTION", TransactionType::Redemption),
            ("ALLOCATION", TransactionType::Allocation),
            ("REFILL", TransactionType::Refill),
        ],
    );
    let action_id = query.parsed("actionId", reward_actors::api::common::Id::parse_hex, "must be a 24-character lowercase hex id".into());
    let created = TimeRange { from_ms: query.timestamp("from"), to_ms: query.timestamp("to") };
    TransactionFilter { transaction_type, action_id, created }
}

async fn user_transactions(
    State(state): State<AppState>,
    PathSegment(external): PathSegment,
    Authorized { caller, request }: Authorized,
) -> ApiResult<Response> {
    // §3's scope table: a user's transactions are a user read.
    let external_id = external_id(&external)?;
    let mut query = ListQuery::parse(&request.path_and_query);
    let filter = transaction_filter(&mut query);
    let page = query.finish()?;
    // An unknown user is a 404, not an empty list.
    state.engine.users().get_user(caller.partner_env(), external_id.as_str())?;
    let transactions = state.engine.users().list_transactions(caller.partner_env(), Some(external_id.as_str()), page, &filter)?;
    Ok(list_response(transactions, |transaction| TransactionView::from(transaction)))
}

async fn list_transactions(State(state): State<AppState>, Authorized { caller, request }: Authorized) -> ApiResult<Response> {
    let mut query = ListQuery::parse(&request.path_and_query);
    let filter = transaction_filter(&mut query);
    let page = query.finish()?;
    let transactions = state.engine.users().list_transactions(caller.partner_env(), None, page, &filter)?;
    Ok(list_response(transactions, |transaction| TransactionView::from(transaction)))
}

/// `POST /v1/partner/users/:externalId/redeem {tokens, idempotencyKey, reason}`: debits the
/// user's available balance; short → 402 `INSUFFICIENT_BALANCE`.
async fn redeem(
    State(state): State<AppState>,
    PathSegment(external): PathSegment,
    Authorized { caller, request }: Authorized,
) -> ApiResult<Response> {
    let partner_user_id = external_id(&external)?;
    request.require_json()?;
    let redemption = parse_redemption(&request.body, partner_user_id)?;
    let outcome = state.engine.users().redeem_tokens(caller.partner_env(), redemption, current_request_id()).await?;
    Ok(write_outcome_response(outcome))
}

fn parse_redemption(body: &[u8], partner_user_id: PartnerUserId) -> ApiResult<RedemptionRequest> {
    let mut fields = Fields::parse(body)?;
    let tokens = positive_tokens(&mut fields, "tokens", true);
    let idempotency_key = idempotency_key(&mut fields, true);
    let reason = fields.string("reason", true, REASON_CHARS_MAX);
    fields.finish()?;
    let (Some(tokens), Some(idempotency_key), Some(reason)) = (tokens, idempotency_key, reason) else {
        return Err(ApiError::field("body", "is invalid"));
    };
    Ok(RedemptionRequest { idempotency_key, partner_user_id, tokens, reason })
}
