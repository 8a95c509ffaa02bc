//! The reward engine's HTTP front, command line and tools. The engine itself is the
//! `reward-actors` crate; this crate never names actix or a storage crate.
//!
//! Code map, in reading order:
//! - `main.rs`: the `reward-engine` binary (serve, sign, keygen, loadgen, hello-server).
//! - [`config`]: defaults → TOML file → `REWARD_*` variables → flags, with every bound.
//! - [`server`]: start and ordered shutdown; master key, admin token, demo partner.
//! - [`listener`]: the accept loop with connection bounds (cap, header and idle timeouts).
//! - [`http`]: the partner and admin API, one file per resource, each listing its routes
//!   (`http::routes`: method, path, guard, handler; the router, authorization and the OpenAPI
//!   document are built from them); [`signing`] is the contract's request signature, shared by
//!   the server, `sign`, the load generator and tests; [`jwt`] the portal's access tokens.
//! - [`sign_cli`]: `reward-engine sign` (headers or a curl command for a signed request);
//!   [`demo`]: the demo partner of `serve --demo`.
//! - [`client`]: one keep-alive HTTP/1.1 connection, for the load generator and tests.
//! - [`loadgen`], [`hello`]: the load generator and the bare-axum ceiling it is compared with;
//!   [`report`] its HTML report, [`sink`] the webhook receiver the benchmarks deliver to.
//! - [`crash_loop`]: SIGKILLs the real server under load, restarts it, and audits every key.
//! - [`backup_cli`]: `reward-engine backup` (asks the server for an online backup, which the
//!   engine's `operations` take) and `restore`.
//! - [`verify`]: `reward-engine verify`, the offline read-only audit of a data directory.

pub mod backup_cli;
pub mod client;
pub mod config;
pub mod crash_loop;
pub mod demo;
pub mod hello;
pub mod http;
pub mod jwt;
pub mod listener;
pub mod loadgen;
pub mod report;
pub mod server;
pub mod sign_cli;
pub mod signing;
pub mod sink;
pub mod verify;
