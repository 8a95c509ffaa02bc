//! What the façades do outside a partner actor: each module serves one façade of `api`
//! (named like it and like the front's resource file), reading the store and writing through
//! the committer; the partner actor stays the only writer of a partner's money.
//!
//! - `partners`: the operator's partners (create, settings, status).
//! - `keys`: API keys (issue, rotate, revoke, usage); `key_lookup`: the key → caller cache
//!   every authenticated request goes through.
//! - `portal`: portal accounts (the partner dashboard's users).
//! - `pool_requests`: top-up requests a partner files and the operator decides.
//! - `donations`: organizations, donations and their provider links.
//! - `announcements`: events born outside a partner actor's write (e.g. a key expiring).
//! - `reads`: the façades' reads of committed state (gets, filtered lists, the dashboard,
//!   a pool's reconciliation), paging through `store::reads`.
//! - `operations`: the periodic jobs (housekeeping, backups), started and stopped by the engine.

pub mod announcements;
pub mod donations;
pub mod key_lookup;
pub mod keys;
pub mod operations;
pub mod partners;
pub mod pool_requests;
pub mod portal;
pub mod reads;
