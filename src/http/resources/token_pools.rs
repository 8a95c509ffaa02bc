//! `/v1/partner/token-pools`: the partner's pools, read-only (admins allocate), their
//! reconciliation against the ledger, and requests for more tokens.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use reward_actors::api::common::Id;
use reward_actors::api::common::Scope;
use reward_actors::api::common::format_timestamp;
use reward_actors::api::pools::PoolRequestView;
use reward_actors::api::pools::PoolView;

use crate::http::auth::Authorized;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::PathSegment;
use crate::http::fields::Fields;
use crate::http::list::{ListQuery, list_response};
use crate::http::parse::positive_tokens;
use crate::http::routes::{Route, read, write};
use crate::http::{AppState, json_response};
use serde::Serialize;

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/v1/partner/token-pools", read(Scope::PoolsRead), list_pools),
        Route::post("/v1/partner/token-pools/request", write(Scope::PoolsWrite), request_tokens),
        Route::get("/v1/partner/token-pools/{pool_id}", read(Scope::PoolsRead), get_pool),
        Route::get("/v1/partner/token-pools/{pool_id}/reconciliation", read(Scope::PoolsRead), reconcile),
    ]
}

/// `POST /v1/partner/token-pools/request {tokens, reason}`: asks SIR Giving for tokens.
async fn request_tokens(State(state): State<AppState>, Authorized { caller, request }: Authorized) -> ApiResult<Response> {
    request.require_json()?;
    let mut fields = Fields::parse(&request.body)?;
    let tokens = positive_tokens(&mut fields, "tokens", true);
    let reason = fields.string("reason", true, 500);
    fields.finish()?;
    let (Some(tokens), Some(reason)) = (tokens, reason) else {
        return Err(ApiError::field("body", "is invalid"));
    };
    let record = state.engine.pools().request_pool_tokens(caller.partner_env(), tokens, reason).await?;
    Ok(json_response(StatusCode::CREATED, &PoolRequestView::from(&record)))
}

async fn list_pools(State(state): State<AppState>, Authorized { caller, request }: Authorized) -> ApiResult<Response> {
    let page = ListQuery::from_path(&request.path_and_query)?;
    let pools = state.engine.pools().list_pools(caller.partner_env(), page)?;
    Ok(list_response(pools, |pool| PoolView::from(pool)))
}

fn pool_id(text: &str) -> ApiResult<Id> {
    Id::parse_hex(text).ok_or_else(|| ApiError::not_found("token pool not found"))
}

async fn get_pool(
    State(state): State<AppState>,
    PathSegment(pool_id_text): PathSegment,
    Authorized { caller, .. }: Authorized,
) -> ApiResult<Response> {
    let pool = state.engine.pools().get_pool(caller.partner_env(), pool_id(&pool_id_text)?)?;
    Ok(json_response(StatusCode::OK, &PoolView::from(&pool)))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
#[derive(schemars::JsonSchema)]
#[schemars(rename = "Ledger")]
pub(crate) struct LedgerView {
    transactions: u64,
    allocated_total: u64,
    refilled_total: u64,
    issued_total: u64,
    reversed_total: u64,
    /// `allocatedTotal + refilledTotal − issuedTotal + reversedTotal`, from the ledger.
    balance: i128,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
#[derive(schemars::JsonSchema)]
#[schemars(rename = "Reconciliation")]
pub(crate) struct ReconciliationView {
    #[schemars(with = "reward_actors::api::schema::HexId")]
    token_pool_id: String,
    /// The totals the pool holds.
    pool: PoolView,
    /// The same totals recomputed from every transaction of the pool.
    ledger: LedgerView,
    /// Whether every total matches, and `allocatedTotal + refilledTotal = balance +
    /// issuedTotal − reversedTotal` holds on both sides.
    balanced: bool,
    #[schemars(with = "reward_actors::api::schema::Timestamp")]
    checked_at: String,
}

/// `GET /v1/partner/token-pools/:id/reconciliation`: the pool's totals against its ledger.
async fn reconcile(
    State(state): State<AppState>,
    PathSegment(pool_id_text): PathSegment,
    Authorized { caller, .. }: Authorized,
) -> ApiResult<Response> {
    let (engine, partner_env, pool_id) = (state.engine.clone(), caller.partner_env(), pool_id(&pool_id_text)?);
    // A ledger scan is long, synchronous store work: keep it off the async workers.
    let reconciliation = tokio::task::spawn_blocking(move || engine.pools().reconcile_pool(partner_env, pool_id))
        .await
        .map_err(|error| reward_actors::EngineError::Internal(format!("reconciliation task failed: {error}")))??;
    let (pool, ledger) = (&reconciliation.pool, &reconciliation.ledger);
    let balanced = ledger.matches(pool) && pool.is_conserved();
    if !balanced {
        tracing::error!(pool = %pool.id, ?ledger, "a token pool does not reconcile with its ledger");
    }
    let view = ReconciliationView {
        token_pool_id: pool.id.to_hex(),
        pool: PoolView::from(pool),
        ledger: LedgerView {
            transactions: ledger.transactions,
            allocated_total: ledger.allocated,
            refilled_total: ledger.refilled,
            issued_total: ledger.issued,
            reversed_total: ledger.reversed,
            balance: ledger.balance(),
        },
        balanced,
        checked_at: format_timestamp(state.engine.clock().now_ms()),
    };
    Ok(json_response(StatusCode::OK, &view))
}
