//! A node's view of shard ownership in a cluster (issue 13; the policy and the loop that keep
//! it are in `cluster/`): which shard a partner lives in ([`ShardMap`]), and which shards this
//! node holds at which epoch ([`Ownership`]). It lives in the store because the store's
//! PostgreSQL commit fences by it (`pg_cluster.rs`), and the store names nothing above it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::RwLock;

use crate::domain::model::PartnerEnv;

/// The most shards a cluster may have: each is a row locked by the writes under it and a
/// line in the owner's view; 4,096 is far more than nodes a cluster would run.
pub const SHARDS_MAX: u32 = 4_096;

/// Which shard a partner lives in. Copy: a shard count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardMap {
    shards: u32,
}

/// SipHash-2-4 under the all-zero key, 64 bits: specified, seedless, the same on every
/// platform and release (the standard library's hashers promise none of that), and evenly
/// spread even over ids that differ in a few bits (FNV-1a was tried first: modulo a power
/// of two it put 4,000 time-ordered ids on half the shards).
pub fn stable_hash(bytes: &[u8]) -> u64 {
    siphasher::sip::SipHasher24::new_with_keys(0, 0).hash(bytes)
}

impl ShardMap {
    pub fn new(shards: u32) -> ShardMap {
        assert!(shards > 0 && shards <= SHARDS_MAX, "validated by ClusterConfig");
        ShardMap { shards }
    }

    /// The partner shards (the admin shard is one more).
    pub fn shards(self) -> u32 {
        self.shards
    }

    /// `stable_hash(partner id ‖ environment tag) % shards`: the 13-byte key prefix.
    pub fn shard_of(self, partner_env: &PartnerEnv) -> u32 {
        (stable_hash(&partner_env.key_prefix()) % u64::from(self.shards)) as u32
    }

    /// The shard of every record that no partner owns.
    pub fn admin_shard(self) -> u32 {
        self.shards
    }

    /// Every shard, the admin shard last.
    pub fn all(self) -> std::ops::RangeInclusive<u32> {
        0..=self.shards
    }
}

/// A node as the shard table last showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub node_id: String,
    pub address: String,
    /// Its heartbeat is younger than the takeover timeout (on the database's clock).
    pub live: bool,
    /// It is shutting down and gives its shards away.
    pub draining: bool,
}

/// This node's view of ownership, shared by the membership loop (which writes it), the
/// registry (which starts a partner's actor only under a held shard), the committer's store
/// (which fences by it) and the front (which forwards to the owner it names).
pub struct Ownership {
    node_id: String,
    map: ShardMap,
    /// The epoch this node holds each shard at (index = shard, the admin shard last); 0: not held.
    held: Vec<AtomicU64>,
    /// The owner's node id and advertised address of every shard, as last read.
    owners: RwLock<Vec<Option<(String, String)>>>,
    /// Every shard this node should own is held, and its heartbeat is current.
    ready: AtomicBool,
}

impl std::fmt::Debug for Ownership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ownership").field("node_id", &self.node_id).field("shards", &self.map.shards).field("held", &self.held_count()).finish()
    }
}

impl Ownership {
    pub fn new(node_id: &str, map: ShardMap) -> Arc<Ownership> {
        let slots = map.shards as usize + 1;
        Arc::new(Ownership {
            node_id: node_id.to_owned(),
            map,
            held: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            owners: RwLock::new(vec![None; slots]),
            ready: AtomicBool::new(false),
        })
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub fn map(&self) -> ShardMap {
        self.map
    }

    /// The epoch this node holds `shard` at, if it holds it.
    pub fn held(&self, shard: u32) -> Option<u64> {
        match self.held.get(shard as usize).map(|epoch| epoch.load(Ordering::Acquire)) {
            Some(0) | None => None,
            Some(epoch) => Some(epoch),
        }
    }

    pub(crate) fn set_held(&self, shard: u32, epoch: Option<u64>) {
        if let Some(slot) = self.held.get(shard as usize) {
            slot.store(epoch.unwrap_or(0), Ordering::Release);
        }
    }

    /// Forgets `shard` if it is still held at `epoch` (a fenced write proved it moved on).
    pub(crate) fn lost(&self, shard: u32, epoch: u64) {
        if let Some(slot) = self.held.get(shard as usize) {
            let _ = slot.compare_exchange(epoch, 0, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    /// The epoch of the partner's shard, if this node holds it.
    pub fn epoch_for(&self, partner_env: &PartnerEnv) -> Option<u64> {
        self.held(self.map.shard_of(partner_env))
    }

    pub fn held_count(&self) -> usize {
        self.held.iter().filter(|epoch| epoch.load(Ordering::Relaxed) != 0).count()
    }

    /// The shards held now, with their epochs.
    pub fn held_shards(&self) -> Vec<(u32, u64)> {
        self.map.all().filter_map(|shard| self.held(shard).map(|epoch| (shard, epoch))).collect()
    }

    /// The node id and advertised address of the owner of `shard`, as last read.
    pub fn owner_of(&self, shard: u32) -> Option<(String, String)> {
        self.owners.read().get(shard as usize).cloned().flatten()
    }

    pub(crate) fn set_owners(&self, owners: Vec<Option<(String, String)>>) {
        *self.owners.write() = owners;
    }

    pub(crate) fn set_owner(&self, shard: u32, owner: Option<(String, String)>) {
        if let Some(slot) = self.owners.write().get_mut(shard as usize) {
            *slot = owner;
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::IdGenerator;
    use crate::domain::model::Environment;

    #[test]
    fn the_stable_hash_never_changes() {
        // Pinned values: the shard of every stored partner depends on them. A change here
        // moves partners between shards of a running cluster; never change them.
        assert_eq!(stable_hash(b""), PINNED[0]);
        assert_eq!(stable_hash(b"a"), PINNED[1]);
        assert_eq!(stable_hash(&[0u8; 13]), PINNED[2]);
    }

    const PINNED: [u64; 3] = [0x1e92_4b9d_7377_00d7, 0x96c2_0860_cd93_a249, 0xdd6e_6567_77f8_243c];

    #[test]
    fn partners_spread_over_every_shard_and_environments_may_differ() {
        let map = ShardMap::new(16);
        let ids = IdGenerator::new();
        let mut counts = [0usize; 16];
        for now in 0..4_000 {
            let partner = PartnerEnv::new(ids.next(now), Environment::Sandbox);
            counts[map.shard_of(&partner) as usize] += 1;
            assert_eq!(map.shard_of(&partner), map.shard_of(&partner), "stable");
        }
        assert!(counts.iter().all(|count| (150..=350).contains(count)), "{counts:?}");
        assert_eq!(map.admin_shard(), 16);
        assert_eq!(map.all().count(), 17);
    }

    #[test]
    fn a_lost_shard_is_forgotten_only_at_the_epoch_it_was_lost() {
        let ownership = Ownership::new("a", ShardMap::new(4));
        ownership.set_held(2, Some(7));
        ownership.lost(2, 6);
        assert_eq!(ownership.held(2), Some(7), "an older epoch's fencing does not drop the newer hold");
        ownership.lost(2, 7);
        assert_eq!(ownership.held(2), None);
        assert_eq!(ownership.held(99), None);
    }
}
