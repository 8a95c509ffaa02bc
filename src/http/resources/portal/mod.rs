//! The partner portal's accounts (contract §4): register (closed unless configured open),
//! login, refresh, me. Access tokens are short-lived HS256 JWTs; refresh tokens are
//! single-use and rotate on every refresh.

pub mod keys;

use std::sync::Arc;

use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use reward_actors::api::common::Environment;
use reward_actors::api::common::Id;
use reward_actors::api::common::Secret;
use reward_actors::api::common::format_timestamp;
use reward_actors::api::keys::KeyStatus;
use reward_actors::api::partners::PartnerView;
use reward_actors::api::portal::{AccountRecord, NewAccount};
use serde::Serialize;
use serde_json::json;

use crate::http::auth::unguarded;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::RawRequest;
use crate::http::fields::Fields;
use crate::http::parse::email;
use crate::http::routes::{Guard, Route};
use crate::http::{AppState, sorted_json_response};
use crate::jwt::{self, AccessClaims};

/// What the portal needs to sign and check its tokens.
pub struct PortalSettings {
    pub signing_secret: Secret,
    pub access_token_ttl_secs: u64,
    pub registration_open: bool,
}

/// Passwords: long enough to resist guessing, short enough that hashing is bounded.
const PASSWORD_CHARS_MIN: usize = 10;
const PASSWORD_CHARS_MAX: usize = 128;

pub fn routes() -> Vec<Route> {
    vec![
        Route::post("/v1/partner/auth/register", Guard::Public, register),
        Route::post("/v1/partner/auth/login", Guard::Public, login),
        Route::post("/v1/partner/auth/refresh", Guard::Public, refresh),
        Route::get("/v1/partner/auth/me", Guard::Portal, me),
    ]
}

/// A portal account as its answers show it.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "Account")]
pub struct AccountView {
    #[schemars(with = "reward_actors::api::schema::HexId")]
    id: String,
    email: String,
    name: String,
    #[schemars(with = "Option<reward_actors::api::schema::HexId>")]
    partner_id: Option<String>,
    #[schemars(with = "reward_actors::api::schema::Timestamp")]
    created_at: String,
}

pub fn account_view(account: &AccountRecord) -> AccountView {
    AccountView {
        id: account.id.to_hex(),
        email: account.email.clone(),
        name: account.name.clone(),
        partner_id: account.partner_id.map(Id::to_hex),
        created_at: format_timestamp(account.created_at_ms),
    }
}

/// A signed-in session.
// No `Debug`: it holds the access and refresh tokens.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Session {
    access_token: String,
    refresh_token: String,
    #[schemars(extend("enum" = ["Bearer"]))]
    token_type: &'static str,
    expires_in: u64,
    account: AccountView,
    partner: Option<PartnerView>,
    publishable_key: Option<String>,
}

/// `GET /v1/partner/auth/me`: the signed-in account and its partner.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "PortalMe")]
pub(crate) struct PortalMe {
    account: AccountView,
    partner: Option<PartnerView>,
}

fn invalid_token(message: &str) -> ApiError {
    ApiError::unauthorized("INVALID_TOKEN", message)
}

/// The account behind `Authorization: Bearer <access token>`.
fn authorize_portal(state: &AppState, request: &RawRequest) -> ApiResult<AccountRecord> {
    let token = request.header("authorization").and_then(|value| value.strip_prefix("Bearer ")).map(str::trim).filter(|token| !token.is_empty());
    let token = token.ok_or_else(|| invalid_token("send the portal access token as Authorization: Bearer <token>"))?;
    let claims = jwt::verify(state.portal.signing_secret.expose(), token, state.engine.clock().now_secs())
        .map_err(|error| invalid_token(&error.to_string()))?;
    let account_id = Id::parse_hex(&claims.sub).ok_or_else(|| invalid_token("the token names no account"))?;
    state.engine.portal().get_account(account_id).map_err(|_| invalid_token("the token's account no longer exists"))
}

/// A request a portal account's access token authorized, on a route whose table entry says
/// `Guard::Portal`.
pub struct PortalCaller {
    pub account: AccountRecord,
    pub request: RawRequest,
}

impl FromRequest<AppState> for PortalCaller {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<PortalCaller, ApiError> {
        let guard = request.extensions().get::<Guard>().copied();
        let request = RawRequest::from_request(request, state).await?;
        if !matches!(guard, Some(Guard::Portal)) {
            return Err(unguarded(&request));
        }
        let account = authorize_portal(state, &request)?;
        Ok(PortalCaller { account, request })
    }
}

/// Access and refresh tokens, the account, its partner and a publishable key to start with.
async fn session(state: &AppState, account: &AccountRecord) -> ApiResult<Session> {
    let now_secs = state.engine.clock().now_secs();
    let ttl = state.portal.access_token_ttl_secs;
    let claims = AccessClaims { sub: account.id.to_hex(), iat: now_secs, exp: now_secs + ttl, typ: "access".into() };
    let access_token = jwt::sign(state.portal.signing_secret.expose(), &claims);
    let refresh_token = state.engine.portal().issue_refresh_token(account.id).await?;
    let (partner, publishable_key) = match account.partner_id {
        Some(partner_id) => {
            let partner = state.engine.partners().get_partner(partner_id)?;
            let keys = state.engine.keys().list_api_keys(partner_id)?;
            let usable = keys
                .iter()
                .find(|key| key.status == KeyStatus::Active && key.environment == Environment::Sandbox)
                .or_else(|| keys.iter().find(|key| key.status == KeyStatus::Active));
            let publishable_key = usable.map(|key| state.engine.keys().publishable_key(key)).transpose()?;
            (Some(PartnerView::from(&partner)), publishable_key)
        }
        None => (None, None),
    };
    Ok(Session {
        access_token,
        refresh_token: refresh_token.expose().to_owned(),
        token_type: "Bearer",
        expires_in: ttl,
        account: account_view(account),
        partner,
        publishable_key,
    })
}

/// Each sign-in attempt costs an Argon2 hash: a client address gets a bounded number per
/// minute (`engine.portal_attempts_per_minute`), then 429 with Retry-After.
fn count_attempt(state: &AppState, request: &RawRequest) -> ApiResult<()> {
    let Some(address) = request.peer else {
        return Ok(());
    };
    state.engine.check_portal_attempt(address).map_err(|retry_after| {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED", format!("too many sign-in attempts from this address; retry in {retry_after} s"))
            .with_details(json!({ "retryAfterSeconds": retry_after }))
            .with_header(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(retry_after))
            .with_header(axum::http::HeaderName::from_static("x-ratelimit-retryafter"), axum::http::HeaderValue::from(retry_after))
    })
}

pub fn password(fields: &mut Fields<'_>, required: bool) -> Option<Secret> {
    let text = fields.string("password", required, PASSWORD_CHARS_MAX)?;
    if text.chars().count() < PASSWORD_CHARS_MIN {
        fields.error("password", format!("must be at least {PASSWORD_CHARS_MIN} characters"));
        return None;
    }
    Some(Secret::new(text))
}

async fn register(State(state): State<AppState>, request: RawRequest) -> ApiResult<Response> {
    if !state.portal.registration_open {
        return Err(ApiError::forbidden("FORBIDDEN", "self-registration is closed: SIR Giving creates partner accounts after a partnership review"));
    }
    count_attempt(&state, &request)?;
    request.require_json()?;
    let mut fields = Fields::parse(&request.body)?;
    let email = email(&mut fields, "email", true);
    let password = password(&mut fields, true);
    let name = fields.string("name", true, 200);
    fields.finish()?;
    let (Some(email), Some(password), Some(name)) = (email, password, name) else {
        return Err(ApiError::field("body", "is invalid"));
    };
    let account = state.engine.portal().create_account(NewAccount { email, name, password, partner_id: None }).await?;
    Ok(sorted_json_response(StatusCode::CREATED, &session(&state, &account).await?))
}

async fn login(State(state): State<AppState>, request: RawRequest) -> ApiResult<Response> {
    count_attempt(&state, &request)?;
    request.require_json()?;
    let mut fields = Fields::parse(&request.body)?;
    let email = fields.string("email", true, 254);
    let password = fields.string("password", true, PASSWORD_CHARS_MAX).map(Secret::new);
    fields.finish()?;
    let (Some(email), Some(password)) = (email, password) else {
        return Err(ApiError::field("body", "is invalid"));
    };
    let account =
        state.engine.portal().authenticate_account(&email, password).await?.ok_or_else(|| invalid_token("the email or the password is wrong"))?;
    Ok(sorted_json_response(StatusCode::OK, &session(&state, &account).await?))
}

async fn refresh(State(state): State<AppState>, request: RawRequest) -> ApiResult<Response> {
    count_attempt(&state, &request)?;
    request.require_json()?;
    let mut fields = Fields::parse(&request.body)?;
    let token = fields.string("refreshToken", true, 256).map(Secret::new);
    fields.finish()?;
    let token = token.ok_or_else(|| ApiError::field("refreshToken", "is required"))?;
    let account =
        state.engine.portal().redeem_refresh_token(&token).await?.ok_or_else(|| invalid_token("the refresh token is unknown, used or expired"))?;
    Ok(sorted_json_response(StatusCode::OK, &session(&state, &account).await?))
}

async fn me(State(state): State<AppState>, PortalCaller { account, .. }: PortalCaller) -> ApiResult<Response> {
    let partner = account.partner_id.map(|partner_id| state.engine.partners().get_partner(partner_id)).transpose()?;
    Ok(sorted_json_response(StatusCode::OK, &PortalMe { account: account_view(&account), partner: partner.as_ref().map(PartnerView::from) }))
}

pub type Portal = Arc<PortalSettings>;
