//! The reward engine's benchmark and test tools, kept out of the product: the `reward-engine`
//! library and binary carry no load generator, sink or crash loop (issue 12, "one boundary").
//! The tools reach the engine only over HTTP; they name `reward_engine::sign_cli` (the
//! contract's request signature), the front's log filter and `reward_actors::api`, nothing
//! else (`tests/it/boundaries.rs` keeps it so).
//!
//! Code map, in reading order:
//! - `main.rs`: the `reward-bench` binary (`loadgen`, `webhook-sink`, `hello-server`,
//!   `crash-loop`, `cluster-chaos`).
//! - [`client`]: one keep-alive HTTP/1.1 connection, for the load generator, the crash loop
//!   and the integration tests.
//! - [`loadgen`]: provisions partners through the admin API and drives signed load;
//!   [`report`] its self-contained HTML page.
//! - [`hello`]: the bare-axum server the load generator measures as the machine's HTTP ceiling.
//! - [`sink`]: the webhook receiver the benchmarks deliver to (counts, lag).
//! - [`crash_loop`]: SIGKILLs the real `reward-engine` server under load, restarts it, and
//!   audits every key and pool through the public API.
//! - [`cluster_chaos`]: the same audit over a cluster of real servers on PostgreSQL while one
//!   node is killed, one paused past its takeover, and one cut off from the database.

pub mod client;
pub mod cluster_chaos;
pub mod crash_loop;
pub mod hello;
pub mod loadgen;
pub mod report;
pub mod sink;
