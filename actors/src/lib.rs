//! The reward engine: partner actors, pure reward rules, ledger posting, group commit and
//! storage. The HTTP front (`src/` of the workspace root) reaches it through [`Engine`] and
//! [`api`] (the surface by domain) and nothing else; it never names actix or a storage crate
//! (`tests/it/boundaries.rs`).
//!
//! Code map, every module, in reading order:
//! - [`api`]: what the front may name, by domain; `facades`: the handle's methods by domain
//!   (`engine.actions()`, `engine.webhooks()`, …).
//! - `money`, `rules`, `campaigns`: exact amounts, the rounding rule, campaign
//!   arithmetic, largest-remainder splits, campaign selection. Pure.
//! - `model`, `views`, `request`: stored records, the contract's JSON shapes, and
//!   validated requests with their idempotency fingerprints.
//! - `posting`: a decided reward → the records it changes → one write set. Pure.
//! - `store`, `codec`: the storage trait (redb, sled, the write-ahead log in
//!   front), value encoding, and `store::layout`, the key layout that makes tenancy a property
//!   of every key;
//!   `store::backup` writes, checks and restores backups, `store::read_only` opens for an audit.
//! - `audit`: the offline audit of the books (every invariant, one streaming pass).
//! - `committer`: group commit on one thread; receipts resolve when durable, and a write set
//!   may carry what to tell another task once it is.
//! - `partner_actor`: one actix actor per (partner, environment), the only writer of its money.
//! - `engine`: the handle — actix runtime, partner registry, admission, bounded waits, the
//!   periodic jobs' start and stop; `error` the engine's errors.
//! - The handle's domains: `admin` (partners), `api_keys` and `key_lookup` (keys and their
//!   lookup cache), `accounts` (portal accounts), `pool_requests` (top-up requests),
//!   `donations` (organizations, donations, links), `announcements` (events outside a
//!   partner actor's write, e.g. key expiry), `reads` (store reads and the one paging loop).
//! - `webhooks`: endpoints, the outbox, the dispatcher, signatures, the SSRF guard.
//! - `operations`: housekeeping and backups, the operator's façade.
//! - `rate_limit`: per-partner GCRA budgets, checked before a request takes a mailbox slot.
//! - `crypto`, `ids`, `clock`, `metrics`: secrets, identifiers, time, Prometheus.
//! - `cidr`: address blocks for the partner IP allowlist and the webhook SSRF guard.

pub(crate) mod accounts;
pub(crate) mod announcements;
pub mod api;

/// Modules the front reaches only through [`api`]: `pub(crate)`, and `pub` with the
/// `internals` feature, which only this workspace's tests and benchmarks turn on (they break
/// the books through the store, or time the pure path).
macro_rules! internal_modules {
    ($($module:ident),* $(,)?) => {
        $(
            #[cfg(feature = "internals")]
            pub mod $module;
            #[cfg(not(feature = "internals"))]
            pub(crate) mod $module;
        )*
    };
}

internal_modules!(admin, api_keys, clock, codec, crypto, donations, ids, model, money, operations, posting, reads, request, rules, store);
pub(crate) mod audit;
pub(crate) mod campaigns;
pub(crate) mod cidr;
pub(crate) mod committer;
pub(crate) mod engine;
pub(crate) mod error;
mod facades;
pub(crate) mod key_lookup;
pub(crate) mod metrics;
mod partner_actor;
pub(crate) mod pool_requests;
pub(crate) mod rate_limit;
pub(crate) mod views;
pub(crate) mod webhooks;

pub use engine::{Engine, EngineConfig, EngineParts, EngineStartError};
pub use error::{EngineError, InvalidSetting};
pub use facades::{Actions, Campaigns, Donations, Keys, Partners, Pools, Portal, Users, Webhooks};
pub use partner_actor::{Recorded, WriteOutcome};
