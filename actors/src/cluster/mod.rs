//! Cluster mode (issue 13): N engine nodes share one PostgreSQL database, and each
//! (partner, environment) is owned by exactly one node at a time.
//!
//! - **Shards**: a partner maps to `stable_hash(partner, environment) % shards`
//!   ([`ShardMap::shard_of`]: SipHash-2-4 (zero key) of the 13-byte key prefix, fixed forever,
//!   since the shard count and the hash together decide where every partner lives). One more
//!   shard, the **admin shard** (number `shards`), owns every record no partner owns:
//!   partners, keys, accounts, organizations, announcements, pool requests.
//! - **Ownership** lives in the database (`store::pg_cluster`): a node table with heartbeats on
//!   the database's clock and a shard table with an **epoch**. A node takes a shard only by
//!   raising its epoch ([`membership`]): when the shard is free, or its owner's heartbeat is
//!   older than the takeover timeout; it gives one back (graceful handoff) by stopping
//!   admission, draining its commits, then releasing it, which raises the epoch again.
//! - **Fencing**: every write transaction locks the rows of the shards it writes (`FOR SHARE`)
//!   and checks their epochs against the ones its writer holds: a partner actor's write set
//!   carries the epoch its actor loaded its state under, any other write the node's current
//!   epoch. A raise of the epoch waits for those locks, so a paused or partitioned former owner
//!   cannot land a single write after a takeover; its refused write set fails like any failed
//!   commit (the actor retires, the caller hears "outcome unknown, retry with the same key").
//!
//! This module holds the policy and the node's view ([`Ownership`]); the SQL is in
//! `store::pg_cluster`, the loop that keeps the view in [`membership`].

pub mod membership;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::engine::error::InvalidSetting;
use crate::store::{PgStore, PostgresUrl, Store, StoreError};
pub use crate::store::ownership::{NodeView, Ownership, SHARDS_MAX, ShardMap, stable_hash};

/// How long a starting node waits for a record that only the admin shard's holder creates
/// (the portal's signing secret, a generated admin token's digest): the first node creates
/// it within its first round; 60 s covers a takeover of the admin shard.
pub const START_WAIT: std::time::Duration = std::time::Duration::from_secs(60);
/// How often a starting node looks for such a record meanwhile.
pub const START_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// The longest node id: it is stored in every shard row and shown in logs and metrics.
pub const NODE_ID_BYTES_MAX: usize = 64;

/// A node's settings in cluster mode (`[cluster]`). Timings are named bounds, shown at start.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Whether this node is one of several over the PostgreSQL store (`server.store = "postgres"`).
    pub enabled: bool,
    /// This node's name, unique in the cluster: letters, digits, `-`, `_` and `.`, at most 64.
    pub node_id: String,
    /// Where the other nodes reach this node's HTTP listener (`host:port`) to forward requests.
    pub advertise: String,
    /// Shards the partners map to. Fixed for the life of the database (checked at start):
    /// the hash and this count decide where every partner lives. 64 spreads partners over up
    /// to dozens of nodes while a node's view stays a few kilobytes.
    pub shards: u32,
    /// How often the node writes its heartbeat and reads the shard table.
    pub heartbeat_interval_ms: u64,
    /// A node whose heartbeat is older than this (on the database's clock) loses its shards
    /// to the others. Five heartbeats: one slow database round trip is not a death.
    pub takeover_after_ms: u64,
    /// How long a graceful handoff waits for the shard's admitted messages to be decided
    /// before it drains the commits and releases the shard anyway (what comes later is fenced).
    pub handoff_drain_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            enabled: false,
            node_id: String::new(),
            advertise: String::new(),
            shards: 64,
            heartbeat_interval_ms: 1_000,
            takeover_after_ms: 5_000,
            handoff_drain_ms: 5_000,
        }
    }
}

impl ClusterConfig {
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if !self.enabled {
            return Ok(());
        }
        let id_ok = !self.node_id.is_empty()
            && self.node_id.len() <= NODE_ID_BYTES_MAX
            && self.node_id.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'));
        if !id_ok {
            return Err(InvalidSetting::new(
                "cluster.node_id",
                format!("cluster.node_id must be 1-{NODE_ID_BYTES_MAX} letters, digits, '-', '_' or '.' (it names this node in the shard table)"),
            ));
        }
        if self.advertise.is_empty() || self.advertise.parse::<std::net::SocketAddr>().is_err() {
            return Err(InvalidSetting::new("cluster.advertise", "cluster.advertise must be this node's HTTP address as the others reach it, e.g. 10.0.0.5:8080"));
        }
        if self.shards == 0 || self.shards > SHARDS_MAX {
            return Err(InvalidSetting::new("cluster.shards", format!("cluster.shards must be between 1 and {SHARDS_MAX}")));
        }
        if self.heartbeat_interval_ms == 0 || self.handoff_drain_ms == 0 {
            return Err(InvalidSetting::new("cluster.heartbeat_interval_ms", "cluster.heartbeat_interval_ms and cluster.handoff_drain_ms must be greater than 0"));
        }
        if self.takeover_after_ms < 2 * self.heartbeat_interval_ms {
            return Err(InvalidSetting::new(
                "cluster.takeover_after_ms",
                "cluster.takeover_after_ms must be at least two heartbeat intervals (one late heartbeat must not cost a node its shards)",
            ));
        }
        Ok(())
    }
}

/// What a node runs with in a cluster: its settings, its view of ownership, and the store
/// that fences its commits by that view.
pub struct ClusterParts {
    pub config: ClusterConfig,
    pub ownership: Arc<Ownership>,
    pub store: Arc<PgStore>,
}

impl std::fmt::Debug for ClusterParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterParts").field("config", &self.config).field("ownership", &self.ownership).finish_non_exhaustive()
    }
}

/// Opens the PostgreSQL store of a cluster node (creating the cluster's tables, or checking
/// their shard count): the store to give the engine, and the parts of its cluster mode.
pub fn open_cluster_store(url: &PostgresUrl, config: &ClusterConfig) -> Result<(Arc<dyn Store>, ClusterParts), StoreError> {
    config.validate().map_err(|error| StoreError::new(error.to_string()))?;
    let ownership = Ownership::new(&config.node_id, ShardMap::new(config.shards));
    let store = crate::store::open_postgres_cluster_store(url, Arc::clone(&ownership))?;
    let parts = ClusterParts { config: config.clone(), ownership, store: Arc::clone(&store) };
    Ok((store, parts))
}

/// The node that should own `shard` among `nodes` (ids): highest random weight (rendezvous)
/// hashing, so every node computes the same answer from the same list, and a node joining or
/// leaving moves only the shards it wins or held. `None` when there is no node.
pub fn preferred_owner<'a>(shard: u32, nodes: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    nodes.into_iter().max_by_key(|node| {
        let mut bytes = Vec::with_capacity(node.len() + 5);
        bytes.extend_from_slice(node.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(&shard.to_be_bytes());
        (stable_hash(&bytes), *node)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendezvous_moves_only_the_shards_a_new_node_wins() {
        let before: Vec<&str> = (0..64).map(|shard| preferred_owner(shard, ["a", "b"]).expect("a node")).collect();
        let after: Vec<&str> = (0..64).map(|shard| preferred_owner(shard, ["a", "b", "c"]).expect("a node")).collect();
        for (old, new) in before.iter().zip(&after) {
            assert!(old == new || *new == "c", "a shard moved between the old nodes: {old} → {new}");
        }
        let won = after.iter().filter(|node| **node == "c").count();
        assert!((10..=35).contains(&won), "the new node wins about a third: {won}");
        assert_eq!(preferred_owner(3, ["b", "a"]), preferred_owner(3, ["a", "b"]), "the order of the list does not matter");
        assert_eq!(preferred_owner(3, []), None);
    }

    #[test]
    fn settings_are_checked_only_when_the_cluster_is_on() {
        assert!(ClusterConfig::default().validate().is_ok());
        let on = ClusterConfig { enabled: true, node_id: "node-1".into(), advertise: "127.0.0.1:8080".into(), ..ClusterConfig::default() };
        assert!(on.validate().is_ok());
        let refused = |config: ClusterConfig| config.validate().expect_err("refused").setting().to_owned();
        assert_eq!(refused(ClusterConfig { node_id: "node 1".into(), ..on.clone() }), "cluster.node_id");
        assert_eq!(refused(ClusterConfig { advertise: "nowhere".into(), ..on.clone() }), "cluster.advertise");
        assert_eq!(refused(ClusterConfig { shards: 0, ..on.clone() }), "cluster.shards");
        assert_eq!(refused(ClusterConfig { takeover_after_ms: 1_500, ..on.clone() }), "cluster.takeover_after_ms");
    }
}
