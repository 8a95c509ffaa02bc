//! The operator API under `/api/v1/admin`, behind the admin token. One file per resource.

mod accounts;
pub(crate) mod backups;
pub(crate) mod clock;
mod keys;
mod operator;
pub mod organizations;
mod partners;
pub(crate) mod pool_requests;
mod token_pools;

use reward_actors::api::common::Id;

use crate::http::error::ApiError;
use crate::http::routes::Route;

pub fn routes() -> Vec<Route> {
    [
        partners::routes(),
        accounts::routes(),
        backups::routes(),
        pool_requests::routes(),
        keys::routes(),
        token_pools::routes(),
        organizations::routes(),
        clock::routes(),
        operator::routes(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// A partner id from a path segment; anything that is not one names no partner.
fn partner_id(text: &str) -> Result<Id, ApiError> {
    Id::parse_hex(text).ok_or_else(|| ApiError::not_found("partner not found"))
}
