//! Integration tests: one binary driving the real server over real HTTP on 127.0.0.1 with
//! temporary data directories (and, for crash safety, the real binary as a child process).

mod support;

mod admin;
mod ambiguous_json;
mod auth;
mod auth_matrix;
mod backup;
mod bad_input;
mod boundaries;
mod browser;
mod cluster;
mod connections;
mod crash;
mod donations;
mod durability;
mod edges;
mod engine_limits;
mod failing_disk;
mod front_door;
mod funding;
mod idempotency;
mod ledger_property;
mod moved_tools;
mod openapi;
mod ops;
mod paging;
mod partner_api;
mod portal;
mod postgres;
mod reward_path;
mod secrets_in_logs;
mod verify;
mod webhooks;
