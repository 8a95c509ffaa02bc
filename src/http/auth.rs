//! Who is calling, and may they call this route. Checks run in the contract's order (§3):
//! key present and known → timestamp → signature → key state → partner status → IP
//! allowlist → secret-key requirement → scope → feature → rate limit. The signature is
//! checked on the raw bytes, before any JSON parsing, against the path exactly as sent; a
//! public key cannot get past it to spend anything, nor burn the partner's budget.
//!
//! Three ways in for partners: a signed request (`X-Partner-Key` + `X-Timestamp` +
//! `X-Signature`), Basic `pk:sk` (PartnerStack style; sandbox by default, production only
//! where an admin allowed it), and an unsigned publishable key on widget routes.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use reward_actors::api::common::Budget;
use reward_actors::api::common::{Environment, Feature, PartnerEnv, Scope};
use reward_actors::api::common::{constant_time_eq, sha256};
use reward_actors::api::keys::KeyContext;
use reward_actors::api::keys::{KeyKind, KeyStatus};
use reward_actors::api::partners::{PartnerRecord, PartnerStatus};
use serde_json::json;

use super::AppState;
use super::cors::widget_answer;
use super::error::ApiError;
use super::extract::RawRequest;
use super::request_id::{record_caller, record_rate_decision};
use super::routes::Guard;
use crate::signing;

/// What a route requires of its caller.
#[derive(Debug, Clone, Copy)]
pub struct Access {
    pub scope: Option<Scope>,
    pub secret_key_required: bool,
    pub feature: Option<Feature>,
    /// A widget route: publishable key, unsigned, no IP allowlist, the widget budget.
    pub widget: bool,
    /// Rate-limit units the request takes (a batch takes one per item).
    pub units: u32,
}

impl Access {
    /// A mutation: secret key, this scope.
    pub const fn write(scope: Scope) -> Access {
        Access { scope: Some(scope), secret_key_required: true, feature: None, widget: false, units: 1 }
    }

    /// A read: a secret key, or a signed publishable key for the `*:read` scopes it may use.
    pub const fn read(scope: Scope) -> Access {
        Access { scope: Some(scope), secret_key_required: false, feature: None, widget: false, units: 1 }
    }

    /// Any valid key of the partner, no scope (`/v1/partner/me`).
    pub const fn any_key() -> Access {
        Access { scope: None, secret_key_required: false, feature: None, widget: false, units: 1 }
    }

    /// A widget route, called from end users' browsers with the publishable key alone.
    pub const fn widget() -> Access {
        Access { scope: None, secret_key_required: false, feature: None, widget: true, units: 1 }
    }

    pub const fn with_feature(self, feature: Feature) -> Access {
        Access { feature: Some(feature), ..self }
    }
}

/// An authenticated, authorized caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key: Arc<KeyContext>,
}

impl Caller {
    pub fn partner_env(&self) -> PartnerEnv {
        self.key.partner_env
    }

    pub fn partner(&self) -> &PartnerRecord {
        &self.key.partner
    }
}

/// A caller authorized by its route's own rule. The router attaches each route's `Guard`
/// to the request (`routes::Route::into_method_router`); this extractor reads the request
/// and runs `authorize` with a key route's `Access`, so a handler cannot hold a `Caller`
/// its route's table entry did not check. A widget route's refusal is readable by the
/// calling page (`partner::widget_answer`), as when its handler answered it.
pub struct Authorized {
    pub caller: Caller,
    pub request: RawRequest,
}

impl FromRequest<AppState> for Authorized {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Authorized, Response> {
        let guard = request.extensions().get::<Guard>().copied();
        let request = RawRequest::from_request(request, state).await.map_err(IntoResponse::into_response)?;
        let Some(Guard::Key(access)) = guard else {
            return Err(unguarded(&request).into_response());
        };
        match authorize(state, &request, access) {
            Ok(caller) => Ok(Authorized { caller, request }),
            Err(error) if access.widget => Err(widget_answer(&request, Err(error))),
            Err(error) => Err(error.into_response()),
        }
    }
}

/// The `Access` of a key route's table entry, for a handler that authorizes on its own
/// terms (the batch: [`authorize_units`], its cost counted from the body). Only the table
/// makes one, so `authorize_units` runs with the route's own rule.
pub struct RouteAccess(Access);

impl FromRequestParts<AppState> for RouteAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<RouteAccess, ApiError> {
        match parts.extensions.get::<Guard>() {
            Some(Guard::Key(access)) => Ok(RouteAccess(*access)),
            _ => Err(unguarded_path(parts.uri.path())),
        }
    }
}

/// A request the operator's admin token authorized, on a route whose table entry says
/// `Guard::Admin`.
pub struct AdminRequest(pub RawRequest);

impl FromRequest<AppState> for AdminRequest {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<AdminRequest, ApiError> {
        let guard = request.extensions().get::<Guard>().copied();
        let request = RawRequest::from_request(request, state).await?;
        if !matches!(guard, Some(Guard::Admin)) {
            return Err(unguarded(&request));
        }
        authorize_admin(state, &request)?;
        Ok(AdminRequest(request))
    }
}

/// A handler asked for a guard its route's table entry does not carry: a bug in the table,
/// never the caller's fault, so an opaque 500 and a log line.
pub fn unguarded(request: &RawRequest) -> ApiError {
    unguarded_path(&request.path_and_query)
}

fn unguarded_path(path: &str) -> ApiError {
    tracing::error!(path, "a handler's guard differs from its route's table entry");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", "internal error")
}

fn authorize(state: &AppState, request: &RawRequest, access: Access) -> Result<Caller, ApiError> {
    authorize_units(state, request, RouteAccess(access), || access.units)
}

/// `authorize` for a request whose rate-limit cost depends on its body (a batch): `units`
/// runs only once the key, signature, state, allowlist and scope have passed (§3's order
/// puts the body after the key), right before the rate limit takes them.
pub fn authorize_units(
    state: &AppState,
    request: &RawRequest,
    RouteAccess(access): RouteAccess,
    units: impl FnOnce() -> u32,
) -> Result<Caller, ApiError> {
    let key = if access.widget { authenticate_widget(state, request)? } else { authenticate_server(state, request)? };
    record_caller(key.partner_env);
    let budget = budget_for(&key, access);
    let checked = check_key_state(state, &key)
        .and_then(|()| check_partner_status(&key.partner))
        .and_then(|()| if access.widget { Ok(()) } else { check_ip_allowlist(&key.partner, request) })
        .and_then(|()| check_access(&key, access));
    if let Err(error) = checked {
        // Authenticated but refused before the rate-limit step: the answer still carries
        // the budget's headers, as the last decision left it (nothing is spent).
        if let Some(decision) = state.engine.peek_rate_limit(key.partner_env, budget) {
            record_rate_decision(decision);
        }
        return Err(error);
    }
    let access = Access { units: units(), ..access };
    check_rate_limit(state, &key, access, budget)?;
    state.engine.keys().touch_key(key.key_id);
    Ok(Caller { key })
}

fn budget_for(key: &KeyContext, access: Access) -> Budget {
    if access.widget && key.kind == KeyKind::Publishable { Budget::Widget } else { Budget::Server }
}

fn unknown_key() -> ApiError {
    ApiError::unauthorized("INVALID_API_KEY", "the key presented is not known")
}

/// A signed request, or Basic `pk:sk`.
fn authenticate_server(state: &AppState, request: &RawRequest) -> Result<Arc<KeyContext>, ApiError> {
    if let Some(presented) = request.header("x-partner-key").filter(|key| !key.is_empty()) {
        let key = state.engine.keys().lookup_key(presented)?.ok_or_else(unknown_key)?;
        verify_signature(state, request, &key)?;
        return Ok(key);
    }
    let Some((public_key, secret_key)) = request.header("authorization").and_then(basic_credentials) else {
        return Err(ApiError::unauthorized("MISSING_API_KEY", "send your key in X-Partner-Key (signed), or pk:sk as Basic authorization"));
    };
    let key = state.engine.keys().lookup_key(&secret_key)?.filter(|key| key.kind == KeyKind::Secret).ok_or_else(unknown_key)?;
    if !constant_time_eq(&sha256(public_key.as_bytes()), &key.public_key_digest) {
        return Err(unknown_key());
    }
    if key.partner_env.environment == Environment::Production && !key.partner.allow_basic_auth {
        return Err(ApiError::unauthorized(
            "BASIC_AUTH_NOT_ALLOWED",
            "Basic authorization is not enabled for this partner's production keys; sign the request",
        ));
    }
    Ok(key)
}

/// `Basic base64(pk:sk)` → (pk, sk).
fn basic_credentials(header: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let encoded = header.strip_prefix("Basic ").or_else(|| header.strip_prefix("basic "))?.trim();
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (public_key, secret_key) = text.split_once(':')?;
    Some((public_key.to_owned(), secret_key.to_owned()))
}

/// Widget routes: the publishable key alone, unsigned; a secret key only when signed (a
/// partner's server may call them too, but a secret key never works unsigned).
fn authenticate_widget(state: &AppState, request: &RawRequest) -> Result<Arc<KeyContext>, ApiError> {
    let presented = request
        .header("x-partner-key")
        .filter(|key| !key.is_empty())
        .ok_or_else(|| ApiError::unauthorized("MISSING_API_KEY", "send your publishable key in X-Partner-Key"))?;
    let key = state.engine.keys().lookup_key(presented)?.ok_or_else(unknown_key)?;
    if key.kind == KeyKind::Secret {
        verify_signature(state, request, &key)?;
    }
    Ok(key)
}

fn check_rate_limit(state: &AppState, key: &KeyContext, access: Access, budget: Budget) -> Result<(), ApiError> {
    let decision = match state.engine.check_rate_limit(key.partner_env, budget, key.partner.rate_limit, access.units) {
        Ok(decision) => decision,
        Err(exceeds) => {
            return Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "BATCH_EXCEEDS_BURST",
                format!("a batch may hold at most {} items (the per-minute burst)", exceeds.burst),
            )
            .with_details(json!({ "burst": exceeds.burst })));
        }
    };
    record_rate_decision(decision);
    if decision.allowed {
        return Ok(());
    }
    let retry_after = decision.retry_after_secs;
    Err(ApiError::new(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        "RATE_LIMITED",
        format!("the partner's rate limit is reached; retry in {retry_after} s"),
    )
    .with_details(json!({ "retryAfterSeconds": retry_after }))
    .with_header(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(retry_after))
    .with_header(axum::http::HeaderName::from_static("x-ratelimit-retryafter"), axum::http::HeaderValue::from(retry_after)))
}

fn verify_signature(state: &AppState, request: &RawRequest, key: &KeyContext) -> Result<(), ApiError> {
    let present = |name: &str| request.header(name).filter(|value| !value.is_empty());
    let (Some(timestamp), Some(signature)) = (present("x-timestamp"), present("x-signature")) else {
        return Err(ApiError::unauthorized("MISSING_SIGNATURE", "signed requests need X-Timestamp and X-Signature"));
    };
    let now_secs = state.engine.clock().now_secs();
    let window_secs = state.settings.signature_window_secs;
    let in_window = timestamp.parse::<u64>().is_ok_and(|sent| sent.abs_diff(now_secs) <= window_secs);
    if !in_window {
        return Err(ApiError::unauthorized(
            "TIMESTAMP_OUT_OF_RANGE",
            format!("X-Timestamp must be Unix seconds within ±{window_secs} s of the server clock"),
        )
        .with_details(json!({ "serverTime": now_secs })));
    }
    let method = request.method.as_str();
    if !signing::verify(key.hmac_secret.expose(), timestamp, method, &request.path_and_query, &request.body, signature) {
        return Err(ApiError::unauthorized("INVALID_SIGNATURE", "X-Signature does not match the request"));
    }
    Ok(())
}

fn check_key_state(state: &AppState, key: &KeyContext) -> Result<(), ApiError> {
    match key.status {
        KeyStatus::Revoked => return Err(ApiError::unauthorized("KEY_REVOKED", "this key was revoked")),
        KeyStatus::Inactive => return Err(ApiError::unauthorized("KEY_INACTIVE", "this key is deactivated")),
        KeyStatus::Active => {}
    }
    if key.expires_at_ms.is_some_and(|expires_at_ms| expires_at_ms <= state.engine.clock().now_ms()) {
        return Err(ApiError::unauthorized("KEY_EXPIRED", "this key has expired"));
    }
    Ok(())
}

fn check_partner_status(partner: &PartnerRecord) -> Result<(), ApiError> {
    match partner.status {
        PartnerStatus::Active => Ok(()),
        PartnerStatus::Suspended => Err(ApiError::unauthorized("PARTNER_SUSPENDED", "this partner is suspended; contact support")),
        PartnerStatus::PendingApproval | PartnerStatus::Closed => Err(ApiError::unauthorized("PARTNER_NOT_ACTIVE", "this partner is not active")),
    }
}

/// A partner's allowlist (CIDRs) applies to server routes; empty allows every address.
/// The address is the socket's peer unless a trusted proxy header is configured.
fn check_ip_allowlist(partner: &PartnerRecord, request: &RawRequest) -> Result<(), ApiError> {
    if partner.ip_allowlist.is_empty() {
        return Ok(());
    }
    let allowed = request.peer.is_some_and(|peer| partner.ip_allowlist.iter().any(|block| block.contains(peer)));
    if allowed { Ok(()) } else { Err(ApiError::forbidden("IP_NOT_ALLOWED", "this address is not on the partner's IP allowlist")) }
}

fn check_access(key: &KeyContext, access: Access) -> Result<(), ApiError> {
    let publishable = key.kind == KeyKind::Publishable;
    if access.secret_key_required && publishable {
        return Err(ApiError::forbidden("SECRET_KEY_REQUIRED", "this route needs a secret (sk_) key"));
    }
    if let Some(scope) = access.scope {
        // A publishable key has its pair's scopes, narrowed to the reads it may ever make.
        let granted = key.scopes.contains(scope) && (!publishable || scope.allowed_for_publishable_key());
        if !granted {
            return Err(ApiError::forbidden("INSUFFICIENT_SCOPE", format!("this key lacks the scope {}", scope.as_str()))
                .with_details(json!({ "requiredScope": scope.as_str() })));
        }
    }
    if let Some(feature) = access.feature
        && !key.partner.has_feature(feature)
    {
        let name = serde_json::to_value(feature).ok().and_then(|value| value.as_str().map(str::to_owned)).unwrap_or_default();
        return Err(ApiError::forbidden("FEATURE_DISABLED", format!("the {name} feature is not enabled for this partner"))
            .with_details(json!({ "feature": name })));
    }
    Ok(())
}

/// The operator's bearer token, compared by digest in constant time.
fn authorize_admin(state: &AppState, request: &RawRequest) -> Result<(), ApiError> {
    let token = request.header("authorization").and_then(|value| value.strip_prefix("Bearer ")).map(str::trim).filter(|token| !token.is_empty());
    let Some(token) = token else {
        return Err(ApiError::unauthorized("INVALID_TOKEN", "send the admin token as Authorization: Bearer <token>"));
    };
    if !constant_time_eq(&sha256(token.as_bytes()), &state.admin_token_digest) {
        return Err(ApiError::unauthorized("INVALID_TOKEN", "the admin token is not valid"));
    }
    Ok(())
}
