//! The membership loop: every heartbeat interval, a node writes its heartbeat, reads the node
//! and shard tables, and moves its [`Ownership`] toward the assignment every node computes
//! alike (rendezvous hashing over the live, non-draining nodes, [`super::preferred_owner`]):
//!
//! - a shard it should own that is free, its own from a previous run, or held by a node whose
//!   heartbeat is stale, it **claims** (raising the epoch; the claim waits for writes in
//!   flight under the old epoch, and every later one is refused);
//! - a shard it holds that another live node should own, it **hands off**: it stops admitting
//!   to the shard's actors, waits (bounded) for their admitted messages, drains the committer,
//!   saves the shard's partners' rate-limit budgets, then releases the shard (raising the
//!   epoch again) for the other node to claim, which starts those budgets where they were;
//! - a shard it held whose row shows another owner or epoch is **lost** (it was paused or cut
//!   off past the takeover timeout): it forgets it and evicts its actors;
//! - a node that cannot write its heartbeat for the takeover timeout forgets every shard
//!   (the others are taking them; its writes would be refused anyway).
//!
//! Each round also reads the auth epoch, which every admin write changing keys or partners
//! sets: a node empties its auth cache when it changes, so a revocation made through one node
//! holds on every node within one heartbeat interval (1 s by default).
//!
//! `/readyz` is true once every shard the node should own is held. On a clean stop the node
//! marks itself draining, hands off every shard, and removes its row.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use tokio::sync::watch;

use super::{ClusterConfig, NodeView, Ownership, preferred_owner};
use crate::commit::CommitReceipt;
use crate::store::{BudgetRow, ClusterDb, PgStore, ShardRow};

/// What the loop asks of the engine it runs in.
pub(crate) trait ClusterHost: Send + Sync + 'static {
    /// Stops admitting to the shard's partner actors (they leave the registry); answers the
    /// mailbox depths of those evicted, so a handoff can wait for them to empty.
    fn evict_shard(&self, shard: u32) -> Vec<Arc<AtomicUsize>>;
    /// Resolves once every write set queued before it is committed or refused.
    fn commit_fence(&self) -> CommitReceipt;
    /// Another node changed keys or partners: forget every authenticated key.
    fn auth_changed(&self);
    /// The rate-limit budgets of the shard's partners, for a handoff to carry.
    fn rate_budgets(&self, shard: u32) -> Vec<BudgetRow>;
    /// Starts budgets where the previous owner left them, each saved that many ms ago.
    fn seed_rate_budgets(&self, rows: Vec<(BudgetRow, u64)>);
}

/// The cluster's Prometheus series (registered only in cluster mode).
pub struct ClusterMetrics {
    /// `reward_cluster_shards_owned`: shards this node holds (the admin shard counts).
    pub shards_owned: IntGauge,
    /// `reward_cluster_shard_epoch{shard}`: the epoch of each shard this node holds (0: not held).
    pub shard_epoch: IntGaugeVec,
    /// `reward_cluster_shard_changes_total{change}`: claimed (free or its own), taken_over
    /// (from a stale node), handed_off, lost (found moved on).
    pub shard_changes: IntCounterVec,
    /// `reward_cluster_nodes_live`: nodes whose heartbeat is current.
    pub nodes_live: IntGauge,
    /// `reward_cluster_heartbeat_failures_total`.
    pub heartbeat_failures: prometheus::IntCounter,
}

impl ClusterMetrics {
    pub fn register(registry: &Registry) -> ClusterMetrics {
        let add = |collector: Box<dyn prometheus::core::Collector>| registry.register(collector).expect("cluster metric names are unique");
        let shards_owned = IntGauge::new("reward_cluster_shards_owned", "Shards this node holds (the admin shard counts).").expect("valid");
        let shard_epoch = IntGaugeVec::new(Opts::new("reward_cluster_shard_epoch", "The epoch of each shard this node holds (0: not held)."), &["shard"]).expect("valid");
        let shard_changes = IntCounterVec::new(
            Opts::new("reward_cluster_shard_changes_total", "Shard ownership changes at this node: claimed, taken_over, handed_off, lost."),
            &["change"],
        )
        .expect("valid");
        let nodes_live = IntGauge::new("reward_cluster_nodes_live", "Nodes whose heartbeat is current, as this node last read.").expect("valid");
        let heartbeat_failures = prometheus::IntCounter::new("reward_cluster_heartbeat_failures_total", "Heartbeats this node could not write.").expect("valid");
        add(Box::new(shards_owned.clone()));
        add(Box::new(shard_epoch.clone()));
        add(Box::new(shard_changes.clone()));
        add(Box::new(nodes_live.clone()));
        add(Box::new(heartbeat_failures.clone()));
        ClusterMetrics { shards_owned, shard_epoch, shard_changes, nodes_live, heartbeat_failures }
    }
}

/// The running loop; [`Membership::stop`] hands every shard off and leaves.
pub struct Membership {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Membership {
    /// Starts the loop on the store's runtime. The first round runs at once.
    pub(crate) fn start(config: ClusterConfig, store: Arc<PgStore>, ownership: Arc<Ownership>, host: Arc<dyn ClusterHost>, metrics: Arc<ClusterMetrics>) -> Membership {
        let (stop, stopped) = watch::channel(false);
        let node = Node { config, store: Arc::clone(&store), ownership, host, metrics, db: None, last_heartbeat: None, auth_epoch: None };
        let task = store.spawn(node.run(stopped));
        Membership { stop, task }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the cluster membership loop ended badly");
        }
    }
}

struct Node {
    config: ClusterConfig,
    store: Arc<PgStore>,
    ownership: Arc<Ownership>,
    host: Arc<dyn ClusterHost>,
    metrics: Arc<ClusterMetrics>,
    db: Option<ClusterDb>,
    /// When the last heartbeat was written (this node's clock: only to decide it lost touch).
    last_heartbeat: Option<Instant>,
    /// The auth epoch last seen (`None` before the first round).
    auth_epoch: Option<Option<Vec<u8>>>,
}

impl Node {
    async fn run(mut self, mut stopped: watch::Receiver<bool>) {
        let interval = Duration::from_millis(self.config.heartbeat_interval_ms);
        tracing::info!(
            node = %self.config.node_id,
            advertise = %self.config.advertise,
            shards = self.config.shards,
            heartbeat_interval_ms = self.config.heartbeat_interval_ms,
            takeover_after_ms = self.config.takeover_after_ms,
            handoff_drain_ms = self.config.handoff_drain_ms,
            "cluster node starting"
        );
        // A round's database calls have no timeout of their own: a database that stops
        // answering must not stall the loop past the point where this node should let go.
        let round_max = Duration::from_millis(self.config.takeover_after_ms + self.config.handoff_drain_ms);
        loop {
            let outcome = tokio::time::timeout(round_max, self.round(false))
                .await
                .unwrap_or_else(|_| Err(crate::store::StoreError::new("cluster: a round had no answer from the database in time")));
            if let Err(error) = outcome {
                self.metrics.heartbeat_failures.inc();
                tracing::warn!(%error, "cluster round failed; retrying at the next heartbeat");
                self.db = None;
                self.lose_touch_if_stale();
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stopped.wait_for(|stop| *stop) => break,
            }
        }
        self.leave().await;
    }

    async fn db(&mut self) -> Result<&ClusterDb, crate::store::StoreError> {
        if self.db.as_ref().is_none_or(ClusterDb::is_closed) {
            let connecting = self.store.cluster_db(&self.config.node_id, &self.config.advertise, self.config.takeover_after_ms);
            self.db = Some(connecting.await?);
        }
        Ok(self.db.as_ref().expect("connected above"))
    }

    /// One heartbeat and one pass over the shard table.
    async fn round(&mut self, draining: bool) -> Result<(), crate::store::StoreError> {
        let db = self.db().await?;
        db.heartbeat(draining).await?;
        let (nodes, shards) = db.view().await?;
        let auth_epoch = db.auth_epoch().await?;
        self.last_heartbeat = Some(Instant::now());
        // Keys or partners changed through another node: this node's cache may be stale.
        if self.auth_epoch.as_ref().is_some_and(|seen| *seen != auth_epoch) {
            self.host.auth_changed();
        }
        self.auth_epoch = Some(auth_epoch);
        self.metrics.nodes_live.set(nodes.iter().filter(|node| node.live).count() as i64);
        let candidates: Vec<&str> = nodes.iter().filter(|node| node.live && !node.draining).map(|node| node.node_id.as_str()).collect();
        self.ownership.set_owners(owners(&nodes, &shards));
        let mut ready = true;
        for row in &shards {
            let preferred = if draining { None } else { preferred_owner(row.shard, candidates.iter().copied()) };
            let mine = preferred == Some(self.config.node_id.as_str());
            let held = self.ownership.held(row.shard);
            let holding = held == Some(row.epoch) && row.owner.as_deref() == Some(self.config.node_id.as_str());
            if holding {
                if !mine && (draining || preferred.is_some()) {
                    self.hand_off(row.shard, row.epoch).await?;
                }
                continue;
            }
            if let Some(epoch) = held {
                self.lose(row.shard, epoch, "its row shows another owner or epoch");
            }
            if mine {
                ready &= self.claim(row, &nodes).await?;
            } else if row.owner.as_deref() == Some(self.config.node_id.as_str()) {
                // This node's name on a shard it does not serve (a previous run's, or one
                // taken by hand): give it back so the preferred node can claim it.
                self.db().await?.release(row.shard, row.epoch).await?;
            }
        }
        self.ownership.set_ready(ready && !draining);
        self.publish();
        Ok(())
    }

    /// Claims a shard this node should own, unless a live node still holds it (that node
    /// hands it off first). Answers whether this node holds it now.
    async fn claim(&mut self, row: &ShardRow, nodes: &[NodeView]) -> Result<bool, crate::store::StoreError> {
        let node_id = self.config.node_id.clone();
        let owner_live = row.owner.as_ref().is_some_and(|owner| *owner != node_id && nodes.iter().any(|node| node.node_id == *owner && node.live));
        if owner_live {
            return Ok(false);
        }
        let db = self.db().await?;
        let Some(epoch) = db.claim(row.shard, row.epoch).await? else {
            return Ok(false);
        };
        self.ownership.set_held(row.shard, Some(epoch));
        // Budgets a graceful handoff left for this shard (none after a crash: they restart full).
        match self.db().await?.take_budgets(row.shard).await {
            Ok(budgets) => self.host.seed_rate_budgets(budgets),
            Err(error) => tracing::warn!(%error, shard = row.shard, "the shard's rate-limit budgets could not be read; they start full"),
        }
        let change = match &row.owner {
            Some(owner) if *owner != node_id => "taken_over",
            _ => "claimed",
        };
        self.metrics.shard_changes.with_label_values(&[change]).inc();
        tracing::info!(shard = row.shard, epoch, from = row.owner.as_deref().unwrap_or("(none)"), change, "shard claimed");
        Ok(true)
    }

    /// Stops admitting to the shard, waits (bounded) for its admitted messages and the
    /// committer, then releases it.
    async fn hand_off(&mut self, shard: u32, epoch: u64) -> Result<(), crate::store::StoreError> {
        self.ownership.set_held(shard, None);
        let mailboxes = self.host.evict_shard(shard);
        let deadline = Instant::now() + Duration::from_millis(self.config.handoff_drain_ms);
        while mailboxes.iter().any(|depth| depth.load(Ordering::Acquire) > 0) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let remaining = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
        if tokio::time::timeout(remaining, self.host.commit_fence().durable()).await.is_err() {
            tracing::warn!(shard, "handoff: commits still in flight at the drain bound; any that lands later is refused by the fence");
        }
        let budgets = self.host.rate_budgets(shard);
        if let Err(error) = self.db().await?.save_budgets(shard, &budgets).await {
            tracing::warn!(%error, shard, "the shard's rate-limit budgets could not be saved; they start full on the next owner");
        }
        let released = self.db().await?.release(shard, epoch).await?;
        self.metrics.shard_changes.with_label_values(&["handed_off"]).inc();
        tracing::info!(shard, epoch, released, "shard handed off");
        Ok(())
    }

    fn lose(&self, shard: u32, epoch: u64, why: &str) {
        self.ownership.lost(shard, epoch);
        self.host.evict_shard(shard);
        self.metrics.shard_changes.with_label_values(&["lost"]).inc();
        tracing::warn!(shard, epoch, why, "shard lost; its actors are evicted");
    }

    /// Without a heartbeat for the takeover timeout, the others take this node's shards.
    fn lose_touch_if_stale(&mut self) {
        let stale = self.last_heartbeat.is_none_or(|last| last.elapsed() >= Duration::from_millis(self.config.takeover_after_ms));
        if stale {
            for (shard, epoch) in self.ownership.held_shards() {
                self.lose(shard, epoch, "no heartbeat for the takeover timeout");
            }
            self.ownership.set_ready(false);
            self.publish();
        }
    }

    fn publish(&self) {
        self.metrics.shards_owned.set(self.ownership.held_count() as i64);
        for shard in self.ownership.map().all() {
            let epoch = self.ownership.held(shard).unwrap_or(0);
            self.metrics.shard_epoch.with_label_values(&[&shard.to_string()]).set(epoch as i64);
        }
    }

    /// A clean stop: draining (no shard is preferred here any more), every shard handed off,
    /// the node's row removed.
    async fn leave(&mut self) {
        self.ownership.set_ready(false);
        if let Err(error) = self.round(true).await {
            tracing::warn!(%error, "cluster: handing shards off at shutdown failed; the others take them after the takeover timeout");
            return;
        }
        match self.db().await {
            Ok(db) => {
                if let Err(error) = db.leave().await {
                    tracing::warn!(%error, "cluster: removing this node's row failed");
                }
            }
            Err(error) => tracing::warn!(%error, "cluster: removing this node's row failed"),
        }
        tracing::info!(node = %self.config.node_id, "cluster node left");
    }
}

/// Each shard's owner and the owner's advertised address, for forwarding.
fn owners(nodes: &[NodeView], shards: &[ShardRow]) -> Vec<Option<(String, String)>> {
    shards
        .iter()
        .map(|row| {
            let owner = row.owner.as_ref()?;
            let node = nodes.iter().find(|node| node.node_id == *owner && node.live)?;
            Some((owner.clone(), node.address.clone()))
        })
        .collect()
}
