//! The operator API under `/api/v1/admin`, behind the admin token. One file per resource.

mod accounts;
mod backups;
mod clock;
mod keys;
mod operator;
pub mod organizations;
mod partners;
mod pool_requests;
mod token_pools;

use axum::Router;
use reward_actors::api::common::Id;

use super::AppState;
use super::error::ApiError;
pub use keys::key_id;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(partners::router())
        .merge(accounts::router())
        .merge(backups::router())
        .merge(pool_requests::router())
        .merge(keys::router())
        .merge(token_pools::router())
        .merge(organizations::router())
        .merge(clock::router())
        .merge(operator::router())
}

/// A partner id from a path segment; anything that is not one names no partner.
fn partner_id(text: &str) -> Result<Id, ApiError> {
    Id::parse_hex(text).ok_or_else(|| ApiError::not_found("partner not found"))
}
