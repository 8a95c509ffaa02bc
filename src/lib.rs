//! The reward engine's HTTP front and command line. The engine itself is the
//! `reward-actors` crate; this crate never names actix or a storage crate. The benchmark and
//! test tools (load generator, its report, webhook sink, HTTP ceiling, crash loop and the
//! tests' client) are the `reward-bench` crate in `benches/tools/`, not here.
//!
//! Code map, in reading order:
//! - `main.rs`: the `reward-engine` binary (serve, sign, keygen, backup, restore, verify).
//! - [`config`]: defaults → TOML file → `REWARD_*` variables → flags, with every bound.
//! - [`server`]: start and ordered shutdown; master key, admin token, demo partner.
//! - [`listener`]: the accept loop with connection bounds (cap, header and idle timeouts).
//! - [`http`]: the partner and admin API. `http::resources` holds one file per resource (named
//!   like the engine's façade it calls), each listing its routes (`http::routes`: method, path,
//!   guard, handler; the router, authorization and the OpenAPI document are built from them,
//!   its response schemas from the answer types);
//!   the rest of `http` is what resources share (authorization extractors, parsing, errors,
//!   lists, CORS, request ids, metrics, the OpenAPI document); [`signing`] is the contract's request signature, shared by
//!   the server, `sign`, `reward-bench` and tests; [`jwt`] the portal's access tokens.
//! - [`sign_cli`]: `reward-engine sign` (headers or a curl command for a signed request; its
//!   credentials and `sign_request` also sign `reward-bench`'s load); [`demo`]: the demo
//!   partner of `serve --demo`.
//! - [`backup_cli`]: `reward-engine backup` (asks the server for an online backup, which the
//!   engine's `operations` take) and `restore`.
//! - [`verify`]: `reward-engine verify`, the offline read-only audit of a data directory.

pub mod backup_cli;
pub mod config;
pub mod demo;
pub mod http;
pub mod jwt;
pub mod listener;
pub mod server;
pub mod sign_cli;
pub mod signing;
pub mod verify;
