//! The API's resources, one file per resource (named like the engine's façade it calls), each
//! listing its routes: method, path, guard, handler. The helpers they share (parsing,
//! authorization, errors, lists) live one level up, in `http`; a resource file never imports
//! another's.

pub mod actions;
pub mod admin;
pub mod campaigns;
pub mod dashboard;
pub mod donations;
pub mod ops;
pub mod partner;
pub mod portal;
pub mod token_pools;
pub mod users;
pub mod webhooks;

use super::Route;

/// Every resource's routes, OPTIONS preflights included.
pub fn routes() -> Vec<Route> {
    [
        actions::routes(),
        users::routes(),
        campaigns::routes(),
        dashboard::routes(),
        donations::routes(),
        partner::routes(),
        portal::routes(),
        portal::keys::routes(),
        token_pools::routes(),
        webhooks::routes(),
        admin::routes(),
        ops::routes(),
    ]
    .into_iter()
    .flatten()
    .collect()
}
