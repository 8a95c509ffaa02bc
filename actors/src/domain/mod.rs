//! The domain: what a reward is, with no actor, store or clock in it. Pure functions and
//! plain data, so every rule is testable with a value in and a value out.
//!
//! - `money`: exact amounts and currencies (never through a float), multipliers, `TOKENS_MAX`.
//! - `rules`: the rounding rule, campaign arithmetic and largest-remainder splits.
//! - `campaigns`: which campaign applies to an action.
//! - `model`: the stored records (partners, users, actions, transactions, pools, …).
//! - `request`: validated requests and their idempotency fingerprints.
//! - `posting`: a decided reward → the records it changes → one write set.
//! - `ids`: identifiers; `cidr`: address blocks (the partner IP allowlist, the SSRF guard).

pub mod campaigns;
pub mod cidr;
pub mod ids;
pub mod model;
pub mod money;
pub mod posting;
pub mod request;
pub mod rules;
