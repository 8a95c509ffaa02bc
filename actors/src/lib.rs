//! The reward engine: partner actors, pure reward rules, ledger posting, group commit and
//! storage. The HTTP front (`src/` of the workspace root) reaches it through [`Engine`] and
//! [`api`] (the surface by domain) and nothing else; it never names actix or a storage crate
//! (`tests/it/boundaries.rs`).
//!
//! Code map, every folder and module, in reading order:
//! - [`api`]: what the front may name, by domain; `api::facades` the handle's methods by domain
//!   (`engine.actions()`, `engine.webhooks()`, …); `api::views` the typed answers;
//!   with the `schema` feature every answer type derives `schemars::JsonSchema`, from which
//!   the front builds its OpenAPI document.
//! - `domain/`: what a reward is, pure — `money`, `rules`, `campaigns`, `model` (stored records),
//!   `request` (validated requests), `posting` (a decided reward → one write set), `ids`, `cidr`.
//! - `actor/`: one actix actor per (partner, environment), the only writer of its money
//!   (rewards, reversals, pools, users, campaigns, webhook endpoints).
//! - `commit/`: group commit on one thread; receipts resolve when durable, and a write set
//!   may carry what to tell another task once it is.
//! - `store/`: the storage trait (redb, sled, the write-ahead log in front; PostgreSQL in
//!   `store::pg_store`, never behind the log) and the store's
//!   reading side: `store::records` the typed records every other module names,
//!   `store::codec` value encoding, `store::layout` (private) the key layout that makes
//!   tenancy a property of every key, `store::reads` the one paging loop over typed ranges,
//!   `store::audit` the offline audit of the books (every invariant, one streaming pass);
//!   `store::backup` writes, checks and restores backups, `store::read_only` opens for an audit.
//! - `engine/`: the handle — actix runtime, partner registry, admission, bounded waits, the
//!   periodic jobs' start and stop — and its runtime: `clock`, `crypto`, `error`, `metrics`,
//!   `rate_limit`.
//! - `services/`: what the façades do outside a partner actor — `partners`, `keys` and
//!   `key_lookup`, `portal`, `pool_requests`, `donations`, `announcements`, `operations`
//!   (housekeeping and backups), `reads` (the façades' reads of committed state).
//! - `schema` (feature `schema`): the JSON Schemas of what answers write as plain text or raw
//!   JSON (timestamps, ids, exact decimals, metadata), named by answer types in every layer
//!   (a backup's manifest is the store's), re-exported as `api::schema`.
//! - `cluster/`: cluster mode over PostgreSQL — the settings, the shard assignment
//!   (rendezvous hashing) and the membership loop (heartbeats, claims, handoffs); the node's
//!   view (`store::ownership`) and its SQL and write fence (`store::pg_cluster`) are the store's.
//! - `webhooks/`: endpoints, the outbox, the dispatcher, one attempt, the health policy
//!   (which the partner actor, the only writer of an endpoint's status, applies to the
//!   dispatcher's delivery facts), signatures, the SSRF guard, the read APIs.
//!
//! Invariants: the front names only [`Engine`], its façades and [`api`]; data flows
//! front → façade → actor or service → committer → store, never back up a layer. Nothing
//! outside `store/` sees a key layout: other modules name records through `store::records`
//! (`tests/it/boundaries.rs`).

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

internal_modules!(cluster, domain, engine, services, store);
mod actor;
pub(crate) mod commit;
#[cfg(feature = "schema")]
pub(crate) mod schema;
pub(crate) mod webhooks;

pub use actor::{Recorded, WriteOutcome};
pub use api::facades::{Actions, Campaigns, Donations, Keys, Partners, Pools, Portal, Users, Webhooks};
pub use engine::error::{EngineError, InvalidSetting};
pub use engine::{Engine, EngineConfig, EngineParts, EngineStartError};
