//! The cluster's tables and statements in the PostgreSQL store (issue 13): who is alive, who
//! owns which shard at which epoch, and the fence every write transaction checks.
//!
//! ```sql
//! reward_cluster (id = 1, shards)                       -- the shard count, fixed at the first start
//! reward_nodes   (node_id, address, heartbeat_at, draining)
//! reward_shards  (shard, owner, epoch)                  -- shards 0..shards, the admin shard last
//! reward_rate_budgets (partner, budget, shard, …)       -- rate-limit budgets a handoff carries
//! reward_key_usage (key_id, node_id, last_used_ms)      -- keys' last use, for the admin holder
//! ```
//!
//! Times are the database's (`now()`), so nodes' clocks never decide a takeover. Every
//! change of owner raises the epoch (a claim, a release), so an epoch names one tenure. A
//! write transaction reads its shards' rows `FOR SHARE` and commits only the write sets whose
//! epochs still match ([`check_fences`]); a claim's `UPDATE` waits for those share locks, so
//! a write either lands before a takeover or is refused after it. The SQL stays within what
//! CockroachDB and YugabyteDB accept (no advisory locks, LISTEN/NOTIFY or procedures).

use std::collections::BTreeMap;

use tokio_postgres::Client;
use tokio_postgres::types::Type;

use super::pg_store::{PostgresUrl, connect, store_error};
use super::{StoreError, WriteOp, layout};
use super::ownership::{NodeView, Ownership};
use crate::domain::model::PartnerEnv;

const CREATE_TABLES: &str = "
CREATE TABLE IF NOT EXISTS reward_cluster (id int PRIMARY KEY, shards int NOT NULL);
CREATE TABLE IF NOT EXISTS reward_nodes (node_id text PRIMARY KEY, address text NOT NULL, heartbeat_at timestamptz NOT NULL, draining boolean NOT NULL);
CREATE TABLE IF NOT EXISTS reward_shards (shard int PRIMARY KEY, owner text, epoch bigint NOT NULL);
CREATE TABLE IF NOT EXISTS reward_rate_budgets (partner bytea NOT NULL, budget smallint NOT NULL, shard int NOT NULL,
    hourly_limit bigint NOT NULL, hourly_remaining bigint NOT NULL, burst_limit bigint NOT NULL, burst_remaining bigint NOT NULL,
    saved_at timestamptz NOT NULL, PRIMARY KEY (partner, budget));
CREATE TABLE IF NOT EXISTS reward_key_usage (key_id bytea NOT NULL, node_id text NOT NULL, last_used_ms bigint NOT NULL, PRIMARY KEY (key_id, node_id));
";

/// Whether a node's heartbeat is current: younger than `$n` milliseconds on the database's clock.
fn live_condition(heartbeat: &str, parameter: usize) -> String {
    format!("{heartbeat} > now() - ${parameter}::bigint * interval '1 millisecond'")
}

/// A partner's rate-limit budget as a graceful handoff carries it to the shard's next owner
/// (the engine's last decision, flattened; `budget` is its code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetRow {
    pub partner_env: PartnerEnv,
    pub budget: u8,
    pub hourly_limit: u32,
    pub hourly_remaining: u32,
    pub burst_limit: u32,
    pub burst_remaining: u32,
}

/// A shard's row as last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardRow {
    pub shard: u32,
    pub owner: Option<String>,
    pub epoch: u64,
}

/// A connection for the membership loop, apart from the committer's writer (a heartbeat must
/// not queue behind a large commit, nor a commit behind a heartbeat).
pub struct ClusterDb {
    client: Client,
    node_id: String,
    address: String,
    takeover_after_ms: i64,
}

/// Creates the cluster's tables and shard rows if missing; refuses a shard count other than
/// the one the database was first started with (the count decides where partners live).
/// An error says whether it was a lost race on the catalog (worth another try).
pub(crate) async fn prepare(client: &Client, shards: u32) -> Result<(), (bool, StoreError)> {
    let failed = |error: tokio_postgres::Error| (super::pg_store::lost_create_race(&error), store_error(error));
    client.batch_execute(CREATE_TABLES).await.map_err(failed)?;
    let wanted = i32::try_from(shards).map_err(|_| (false, StoreError::new("cluster.shards is out of range")))?;
    client.execute("INSERT INTO reward_cluster (id, shards) VALUES (1, $1) ON CONFLICT (id) DO NOTHING", &[&wanted]).await.map_err(failed)?;
    let stored: i32 = client.query_one("SELECT shards FROM reward_cluster WHERE id = 1", &[]).await.map_err(failed)?.get(0);
    if stored != wanted {
        return Err((
            false,
            StoreError::new(format!(
                "this database's cluster has {stored} shards and this node is configured with {wanted}: the count is fixed once a cluster has started (set cluster.shards = {stored})"
            )),
        ));
    }
    // Shards 0..shards-1 for partners, and `shards` itself, the admin shard.
    client
        .execute("INSERT INTO reward_shards (shard, owner, epoch) SELECT s, NULL, 0 FROM generate_series(0, $1::int) AS s ON CONFLICT (shard) DO NOTHING", &[&wanted])
        .await
        .map_err(failed)?;
    Ok(())
}

impl ClusterDb {
    pub(crate) async fn connect(url: &PostgresUrl, node_id: &str, address: &str, takeover_after_ms: u64) -> Result<ClusterDb, StoreError> {
        Ok(ClusterDb {
            client: connect(url, None).await?,
            node_id: node_id.to_owned(),
            address: address.to_owned(),
            takeover_after_ms: i64::try_from(takeover_after_ms).unwrap_or(i64::MAX),
        })
    }

    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Writes this node's heartbeat (and whether it is draining).
    pub async fn heartbeat(&self, draining: bool) -> Result<(), StoreError> {
        let sql = "INSERT INTO reward_nodes (node_id, address, heartbeat_at, draining) VALUES ($1, $2, now(), $3)
                   ON CONFLICT (node_id) DO UPDATE SET address = excluded.address, heartbeat_at = now(), draining = excluded.draining";
        self.client.execute(sql, &[&self.node_id, &self.address, &draining]).await.map_err(store_error)?;
        Ok(())
    }

    /// Every node (live or not) and every shard row, as of now.
    pub async fn view(&self) -> Result<(Vec<NodeView>, Vec<ShardRow>), StoreError> {
        let sql = format!("SELECT node_id, address, draining, {} FROM reward_nodes ORDER BY node_id", live_condition("heartbeat_at", 1));
        let nodes = self.client.query(&sql, &[&self.takeover_after_ms]).await.map_err(store_error)?;
        let nodes = nodes.iter().map(|row| NodeView { node_id: row.get(0), address: row.get(1), draining: row.get(2), live: row.get(3) }).collect();
        let shards = self.client.query("SELECT shard, owner, epoch FROM reward_shards ORDER BY shard", &[]).await.map_err(store_error)?;
        let shards = shards
            .iter()
            .map(|row| ShardRow { shard: row.get::<_, i32>(0) as u32, owner: row.get(1), epoch: row.get::<_, i64>(2) as u64 })
            .collect();
        Ok((nodes, shards))
    }

    /// Takes `shard` if its epoch is still `seen_epoch` and it is free, this node's, or held
    /// by a node whose heartbeat is stale (checked on the database's clock, in the statement).
    /// Answers the new epoch. Waits for the share locks of writes in flight under the shard.
    pub async fn claim(&self, shard: u32, seen_epoch: u64) -> Result<Option<u64>, StoreError> {
        let sql = format!(
            "UPDATE reward_shards SET owner = $1, epoch = epoch + 1
             WHERE shard = $2 AND epoch = $3 AND (owner IS NULL OR owner = $1
               OR NOT EXISTS (SELECT 1 FROM reward_nodes WHERE node_id = reward_shards.owner AND {}))
             RETURNING epoch",
            live_condition("heartbeat_at", 4)
        );
        let row = self
            .client
            .query_opt(&sql, &[&self.node_id, &(shard as i32), &(seen_epoch as i64), &self.takeover_after_ms])
            .await
            .map_err(store_error)?;
        Ok(row.map(|row| row.get::<_, i64>(0) as u64))
    }

    /// Takes `shard` whoever holds it (tests: a takeover without waiting for a heartbeat to go
    /// stale). Answers the new epoch.
    #[cfg(any(test, feature = "internals"))]
    pub async fn force_claim(&self, shard: u32) -> Result<u64, StoreError> {
        let row = self
            .client
            .query_one("UPDATE reward_shards SET owner = $1, epoch = epoch + 1 WHERE shard = $2 RETURNING epoch", &[&self.node_id, &(shard as i32)])
            .await
            .map_err(store_error)?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// Gives `shard` back if this node still holds it at `epoch` (raising the epoch, so a
    /// write of this tenure that arrives later is refused). Answers whether it did.
    pub async fn release(&self, shard: u32, epoch: u64) -> Result<bool, StoreError> {
        let sql = "UPDATE reward_shards SET owner = NULL, epoch = epoch + 1 WHERE shard = $1 AND owner = $2 AND epoch = $3";
        let updated = self.client.execute(sql, &[&(shard as i32), &self.node_id, &(epoch as i64)]).await.map_err(store_error)?;
        Ok(updated == 1)
    }

    /// The auth epoch's stored value (`records::auth_epoch`), if any admin write set one.
    pub async fn auth_epoch(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let row = self.client.query_opt("SELECT value FROM kv WHERE key = $1", &[&layout::auth_epoch()]).await.map_err(store_error)?;
        Ok(row.map(|row| row.get(0)))
    }

    /// Saves the rate-limit budgets of a shard being handed off (one statement).
    pub async fn save_budgets(&self, shard: u32, rows: &[BudgetRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let partners: Vec<Vec<u8>> = rows.iter().map(|row| row.partner_env.key_prefix().to_vec()).collect();
        let budgets: Vec<i16> = rows.iter().map(|row| i16::from(row.budget)).collect();
        let shards: Vec<i32> = rows.iter().map(|_| shard as i32).collect();
        let column = |field: fn(&BudgetRow) -> u32| rows.iter().map(|row| i64::from(field(row))).collect::<Vec<i64>>();
        let (hourly_limit, hourly_remaining) = (column(|row| row.hourly_limit), column(|row| row.hourly_remaining));
        let (burst_limit, burst_remaining) = (column(|row| row.burst_limit), column(|row| row.burst_remaining));
        let sql = "INSERT INTO reward_rate_budgets (partner, budget, shard, hourly_limit, hourly_remaining, burst_limit, burst_remaining, saved_at)
                   SELECT p, b, s, hl, hr, bl, br, now() FROM unnest($1::bytea[], $2::int2[], $3::int4[], $4::int8[], $5::int8[], $6::int8[], $7::int8[]) AS u(p, b, s, hl, hr, bl, br)
                   ON CONFLICT (partner, budget) DO UPDATE SET shard = excluded.shard, hourly_limit = excluded.hourly_limit,
                   hourly_remaining = excluded.hourly_remaining, burst_limit = excluded.burst_limit, burst_remaining = excluded.burst_remaining, saved_at = excluded.saved_at";
        self.client
            .execute(sql, &[&partners, &budgets, &shards, &hourly_limit, &hourly_remaining, &burst_limit, &burst_remaining])
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// Takes (reads and deletes) the budgets saved for `shard`, each with how long ago it was
    /// saved in milliseconds (the database's clock).
    pub async fn take_budgets(&self, shard: u32) -> Result<Vec<(BudgetRow, u64)>, StoreError> {
        let sql = "DELETE FROM reward_rate_budgets WHERE shard = $1 RETURNING partner, budget, hourly_limit, hourly_remaining, burst_limit, burst_remaining,
                   (extract(epoch from (now() - saved_at)) * 1000)::bigint";
        let rows = self.client.query(sql, &[&(shard as i32)]).await.map_err(store_error)?;
        let quota = |value: i64| u32::try_from(value).unwrap_or(u32::MAX);
        Ok(rows
            .iter()
            .filter_map(|row| {
                let partner_env = PartnerEnv::from_key_prefix(&row.get::<_, Vec<u8>>(0))?;
                let budget = u8::try_from(row.get::<_, i16>(1)).ok()?;
                let budget_row = BudgetRow {
                    partner_env,
                    budget,
                    hourly_limit: quota(row.get(2)),
                    hourly_remaining: quota(row.get(3)),
                    burst_limit: quota(row.get(4)),
                    burst_remaining: quota(row.get(5)),
                };
                Some((budget_row, u64::try_from(row.get::<_, i64>(6)).unwrap_or(0)))
            })
            .collect())
    }

    /// Removes this node's row (a clean stop, after it released its shards).
    pub async fn leave(&self) -> Result<(), StoreError> {
        self.client.execute("DELETE FROM reward_nodes WHERE node_id = $1", &[&self.node_id]).await.map_err(store_error)?;
        Ok(())
    }
}

/// A write set as the committer hands it over in cluster mode: its ops and, from a partner
/// actor, the epoch the actor loaded its state under.
#[derive(Debug, Clone, Copy)]
pub struct FencedWrite<'a> {
    pub ops: &'a [WriteOp],
    pub actor_epoch: Option<u64>,
}

/// The shard of a key: its partner's, or the admin shard for records no partner owns.
fn shard_of_key(ownership: &Ownership, key: &[u8]) -> u32 {
    match layout::partner_env_of_key(key) {
        Some(partner_env) => ownership.map().shard_of(&partner_env),
        None => ownership.map().admin_shard(),
    }
}

/// Each write set's (shard → epoch it needs), or `None` for one refused before the database
/// (it writes under a shard this node does not hold).
pub(crate) fn expected_epochs(ownership: &Ownership, writes: &[FencedWrite<'_>]) -> Vec<Option<BTreeMap<u32, u64>>> {
    let admin = ownership.map().admin_shard();
    writes
        .iter()
        .map(|write| {
            let mut needs = BTreeMap::new();
            for op in write.ops {
                let shard = shard_of_key(ownership, op.key());
                if needs.contains_key(&shard) {
                    continue;
                }
                let epoch = match write.actor_epoch {
                    Some(epoch) if shard != admin => epoch,
                    _ => ownership.held(shard)?,
                };
                needs.insert(shard, epoch);
            }
            Some(needs)
        })
        .collect()
}

/// Inside the write transaction: locks the rows of every shard the write sets need
/// (`FOR SHARE`, so a claim waits for this commit) and answers the indexes of the write sets
/// whose epochs no longer match, forgetting those shards in `ownership`.
pub(crate) async fn check_fences(client: &Client, ownership: &Ownership, expected: &[Option<BTreeMap<u32, u64>>]) -> Result<Vec<usize>, tokio_postgres::Error> {
    let mut shards: Vec<i32> = expected.iter().flatten().flat_map(|needs| needs.keys().map(|shard| *shard as i32)).collect();
    shards.sort_unstable();
    shards.dedup();
    let mut current: BTreeMap<u32, (Option<String>, u64)> = BTreeMap::new();
    if !shards.is_empty() {
        let rows = client
            .query_typed("SELECT shard, owner, epoch FROM reward_shards WHERE shard = ANY($1) ORDER BY shard FOR SHARE", &[(&shards, Type::INT4_ARRAY)])
            .await?;
        for row in rows {
            current.insert(row.get::<_, i32>(0) as u32, (row.get(1), row.get::<_, i64>(2) as u64));
        }
    }
    let mut refused = Vec::new();
    for (index, needs) in expected.iter().enumerate() {
        let Some(needs) = needs else {
            refused.push(index);
            continue;
        };
        let mut fenced = false;
        for (shard, epoch) in needs {
            let holds = current.get(shard).is_some_and(|(owner, current_epoch)| owner.as_deref() == Some(ownership.node_id()) && current_epoch == epoch);
            if !holds {
                ownership.lost(*shard, *epoch);
                fenced = true;
            }
        }
        if fenced {
            refused.push(index);
        }
    }
    Ok(refused)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::ids::IdGenerator;
    use crate::domain::model::{Environment, PartnerEnv};
    use crate::store::ownership::ShardMap;
    use crate::store::pg_store::{PgStore, test_url};
    use crate::store::{Store, records};

    fn new_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime")
    }

    #[test]
    fn a_write_under_a_shard_taken_over_is_refused_and_the_rest_of_its_batch_lands() {
        let Some(url) = test_url("fence_refusal") else { return };
        let map = ShardMap::new(4);
        let ownership = Ownership::new("a", map);
        let store = PgStore::open_cluster(&url, Arc::clone(&ownership)).expect("opens");
        let runtime = new_runtime();
        let a = runtime.block_on(store.cluster_db("a", "127.0.0.1:1", 60_000)).expect("connects");
        let b = runtime.block_on(store.cluster_db("b", "127.0.0.1:2", 60_000)).expect("connects");
        runtime.block_on(a.heartbeat(false)).expect("a heartbeat");
        // Two partners on different shards, both claimed by a.
        let ids = IdGenerator::new();
        let first = PartnerEnv::new(ids.next(1), Environment::Sandbox);
        let second = (2..).map(|now| PartnerEnv::new(ids.next(now), Environment::Sandbox)).find(|other| map.shard_of(other) != map.shard_of(&first)).expect("another shard");
        for shard in [map.shard_of(&first), map.shard_of(&second)] {
            let epoch = runtime.block_on(a.claim(shard, 0)).expect("claims").expect("a free shard is claimed");
            ownership.set_held(shard, Some(epoch));
        }
        let state = |partner_env: &PartnerEnv| vec![records::partner_env_state(partner_env).put(&crate::domain::model::PartnerEnvState::default())];
        let (first_ops, second_ops) = (state(&first), state(&second));
        let epoch_of = |partner_env: &PartnerEnv| ownership.epoch_for(partner_env);
        let writes = |first_epoch, second_epoch| {
            vec![FencedWrite { ops: &first_ops, actor_epoch: first_epoch }, FencedWrite { ops: &second_ops, actor_epoch: second_epoch }]
        };
        assert_eq!(store.commit_fenced(&writes(epoch_of(&first), epoch_of(&second))).expect("commits"), Vec::<usize>::new());

        // b takes the first partner's shard; a's next write set there is refused, the other lands.
        let (old_epoch, taken) = (epoch_of(&first).expect("held"), runtime.block_on(b.force_claim(map.shard_of(&first))).expect("takes over"));
        assert!(taken > old_epoch);
        let delete_both = [vec![records::partner_env_state(&first).delete()], vec![records::partner_env_state(&second).delete()]];
        let refused = store
            .commit_fenced(&[FencedWrite { ops: &delete_both[0], actor_epoch: Some(old_epoch) }, FencedWrite { ops: &delete_both[1], actor_epoch: epoch_of(&second) }])
            .expect("commits");
        assert_eq!(refused, vec![0]);
        assert_eq!(ownership.held(map.shard_of(&first)), None, "the fence told the node it lost the shard");
        assert!(records::partner_env_state(&first).get(&store).expect("reads").is_some(), "the refused delete did not land");
        assert!(records::partner_env_state(&second).get(&store).expect("reads").is_none(), "the other write set did");

        // Records no partner owns are the admin shard's: refused until a holds it.
        let admin = vec![WriteOp::Put { key: crate::store::layout::partner(ids.next(9)), value: vec![1] }];
        assert_eq!(store.commit_fenced(&[FencedWrite { ops: &admin, actor_epoch: None }]).expect("commits"), vec![0]);
        let epoch = runtime.block_on(a.claim(map.admin_shard(), 0)).expect("claims").expect("free");
        ownership.set_held(map.admin_shard(), Some(epoch));
        assert_eq!(store.commit_fenced(&[FencedWrite { ops: &admin, actor_epoch: None }]).expect("commits"), Vec::<usize>::new());

        // A release raises the epoch: a straggler of the released tenure is refused too.
        assert!(runtime.block_on(a.release(map.admin_shard(), epoch)).expect("releases"));
        assert_eq!(store.commit_fenced(&[FencedWrite { ops: &admin, actor_epoch: None }]).expect("commits"), vec![0]);
    }

    #[test]
    fn a_claim_waits_for_a_commit_past_its_fence_check_and_sees_it() {
        let Some(url) = test_url("fence_wait") else { return };
        let map = ShardMap::new(2);
        let ownership = Ownership::new("a", map);
        let store = Arc::new(PgStore::open_cluster(&url, Arc::clone(&ownership)).expect("opens"));
        let runtime = new_runtime();
        let a = runtime.block_on(store.cluster_db("a", "127.0.0.1:1", 60_000)).expect("connects");
        let partner_env = PartnerEnv::new(IdGenerator::new().next(1), Environment::Sandbox);
        let shard = map.shard_of(&partner_env);
        let epoch = runtime.block_on(a.claim(shard, 0)).expect("claims").expect("free");
        ownership.set_held(shard, Some(epoch));

        let pause = store.pause_next_commit_after_fence_check();
        let committing = {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let ops = vec![records::partner_env_state(&partner_env).put(&crate::domain::model::PartnerEnvState::default())];
                store.commit_fenced(&[FencedWrite { ops: &ops, actor_epoch: Some(epoch) }])
            })
        };
        runtime.block_on(pause.reached.notified());
        let claiming = {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let own_runtime = new_runtime();
                let b = own_runtime.block_on(store.cluster_db("b", "127.0.0.1:2", 60_000)).expect("connects");
                own_runtime.block_on(b.force_claim(shard))
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(!claiming.is_finished(), "the takeover waits for the commit that passed its fence check");
        pause.release.notify_one();
        assert_eq!(committing.join().expect("joins").expect("commits"), Vec::<usize>::new(), "the paused commit lands");
        let taken = claiming.join().expect("joins").expect("takes over");
        assert_eq!(taken, epoch + 1);
        assert!(records::partner_env_state(&partner_env).get(store.as_ref()).expect("reads").is_some(), "the new owner sees the last acknowledged write");
    }
}
