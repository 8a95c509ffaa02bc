//! `reward-bench cluster-chaos`: issue 13's chaos run. It starts `--nodes` real
//! `reward-engine` servers as one cluster over a fresh schema of a PostgreSQL database, drives
//! concurrent signed submits over many partners through every node (each pool sized for
//! exactly `--rewards-per-partner` rewards of 10 tokens), and meanwhile:
//!
//! 1. SIGKILLs one node (its shards are taken over once its heartbeat is stale), restarts it;
//! 2. SIGSTOPs another past the takeover timeout and resumes it (the zombie: its writes after
//!    the takeover must be refused by the fence);
//! 3. terminates a third node's database connections (commits of unknown outcome).
//!
//! Then, through the public API only, it audits: every unanswered key is resubmitted until
//! it settles (`200`, `409 IDEMPOTENT`, or `402` once the pool is empty); every acknowledged
//! key replays its original answer byte for byte; no key paid twice (each partner lists one
//! action per completed key); no pool went below zero and each equals its allocation minus
//! what its actions took (exactly zero once any key was refused for want of tokens); the
//! users hold exactly those tokens; and every completed action's `action.completed` webhook
//! reached the run's own receiver at least once.
//!
//! Choices (which node is killed, stopped, cut off) come from a seeded SplitMix64 (`--seed`).

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bytes::Bytes;
use hyper::Method;
use parking_lot::Mutex;
use reward_actors::api::common::{MasterKey, Secret};
use serde::Serialize;
use tokio::process::{Child, Command};

use reward_engine::sign_cli::SigningCredentials;

use crate::client::{ClientResponse, Connection};
use crate::crash_loop::{
    Discrepancies, HEALTH_POLL, PAGE_LIMIT, REQUEST_TIMEOUT, RETRY_PAUSE, SETTLE_ATTEMPTS_MAX, STARTUP_TIMEOUT, SUBMIT_PATH, SplitMix64, check_pool,
    check_users, describe, list_actions, original_response, server_beside, signed, wait_healthy,
};

/// Bounds on a run.
const NODES_MAX: usize = 8;
const WORKERS_MAX: usize = 256;
const PARTNERS_MAX: usize = 256;
const REWARDS_PER_PARTNER_MAX: u64 = 1_000_000;
const PHASE_MS_MAX: u64 = 600_000;
/// Keys one run submits at most: each ledger entry holds its answer (under 1 KiB).
const KEYS_MAX: usize = 1_000_000;
/// Every reward is 10 USD, 10 tokens: pools hold an exact number of them.
const TOKENS_PER_REWARD: u64 = 10;
const USERS_PER_PARTNER: u64 = 8;
const USER_PREFIX: &str = "chaos_user_";
/// How long the audit waits for every completed action's webhook.
const WEBHOOK_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, clap::Args)]
pub struct ClusterChaosArgs {
    /// The PostgreSQL database the nodes share; the run makes a fresh schema in it.
    #[arg(long, env = "REWARD_CHAOS_POSTGRES_URL")]
    pub postgres_url: String,
    /// Nodes in the cluster (at least 3: one is killed, one stopped, one cut off).
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Partners the load is spread over (each its own actor, pool and shard).
    #[arg(long, default_value_t = 12)]
    pub partners: usize,
    /// Concurrent connections submitting signed actions, spread over the nodes.
    #[arg(long, default_value_t = 12)]
    pub workers: usize,
    /// Each partner's pool holds exactly this many rewards (of 10 tokens).
    #[arg(long, default_value_t = 150)]
    pub rewards_per_partner: u64,
    /// Load time before, between and after the faults.
    #[arg(long, default_value_t = 2_000)]
    pub phase_ms: u64,
    /// The nodes' heartbeat interval; the takeover timeout is five of them.
    #[arg(long, default_value_t = 200)]
    pub heartbeat_ms: u64,
    /// Seed of the fault choices [default: from the clock; printed].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Directory for the nodes' logs [default: a fresh temporary one, removed after a clean run].
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// The server binary [default: the `reward-engine` next to this one].
    #[arg(long)]
    pub server_binary: Option<PathBuf>,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
}

/// What a run did and found; `discrepancies` is 0 on a clean run.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChaosSummary {
    pub seed: u64,
    pub nodes: usize,
    pub partners: usize,
    pub workers: usize,
    pub rewards_per_partner: u64,
    /// What was done to which node, in order.
    pub faults: Vec<String>,
    pub attempted: u64,
    /// Keys answered 200 under load.
    pub acknowledged: u64,
    /// Keys answered 402 under load (their pool was empty).
    pub refused_empty_pool: u64,
    /// Keys unanswered under load (in flight at a fault, 503, 504), resubmitted by the audit.
    pub resubmitted: u64,
    /// Of those, keys whose action had committed before (409 on resubmission).
    pub resubmitted_already_committed: u64,
    pub replays_checked: u64,
    pub actions: u64,
    pub tokens_issued: u64,
    pub pools_emptied: u64,
    pub webhooks_received: u64,
    pub duration_secs: f64,
    pub discrepancies: u64,
}

pub async fn run(args: ClusterChaosArgs) -> anyhow::Result<ChaosSummary> {
    check_bounds(&args)?;
    let seed = args.seed.unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos() as u64));
    let work_dir = match &args.work_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("reward-cluster-chaos-{seed:x}-{}", std::process::id())),
    };
    std::fs::create_dir_all(&work_dir).with_context(|| format!("creating {}", work_dir.display()))?;
    let schema = format!("chaos_{seed:x}");
    fresh_schema(&args.postgres_url, &schema).await?;
    eprintln!(
        "cluster chaos: {} nodes, {} partners × {} rewards, seed {seed}, schema {schema}, logs in {}",
        args.nodes,
        args.partners,
        args.rewards_per_partner,
        work_dir.display()
    );
    let started = Instant::now();
    let cluster = ClusterSpec::new(&args, &work_dir, &schema)?;
    let mut nodes = Vec::with_capacity(args.nodes);
    for index in 0..args.nodes {
        nodes.push(cluster.start(index).await?);
    }
    for node in &nodes {
        wait_ready(node.address).await?;
    }
    let receiver = Receiver::start().await?;
    let allocation = TOKENS_PER_REWARD * args.rewards_per_partner;
    let partners = crate::loadgen::provision(nodes[0].address, &cluster.admin_token, args.partners, allocation, &format!("chaos {seed:x}")).await?;
    crate::loadgen::register_webhooks(nodes[0].address, &partners, &receiver.url, &[]).await?;
    let shared = Arc::new(Shared {
        partners,
        addresses: nodes.iter().map(|node| node.address).collect(),
        run_id: format!("ch{seed:x}"),
        ledger: Mutex::default(),
        discrepancies: Discrepancies::default(),
        allocation,
    });
    let mut summary = ChaosSummary {
        seed,
        nodes: args.nodes,
        partners: args.partners,
        workers: args.workers,
        rewards_per_partner: args.rewards_per_partner,
        ..ChaosSummary::default()
    };

    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..args.workers).map(|worker| tokio::spawn(submit_until_stopped(Arc::clone(&shared), worker, Arc::clone(&stop)))).collect();
    let faults = inflict_faults(&args, &cluster, &mut nodes, seed).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        tokio::time::timeout(REQUEST_TIMEOUT * 2, task).await.context("a load worker did not stop")?.context("a load worker panicked")?;
    }
    summary.faults = faults?;
    for node in &nodes {
        wait_ready(node.address).await?;
    }
    audit(&shared, args.workers, &receiver, &mut summary).await?;
    for node in nodes {
        node.kill().await?;
    }
    summary.duration_secs = started.elapsed().as_secs_f64();
    summary.discrepancies = shared.discrepancies.count.load(Ordering::Relaxed);
    print_summary(&summary);
    if let Some(path) = &args.json_out {
        std::fs::write(path, serde_json::to_vec_pretty(&summary)?).with_context(|| format!("writing {}", path.display()))?;
    }
    if summary.discrepancies > 0 {
        bail!("{} discrepancies; the nodes' logs are kept in {} and the data in schema {schema}", summary.discrepancies, work_dir.display());
    }
    if args.work_dir.is_none() {
        std::fs::remove_dir_all(&work_dir).with_context(|| format!("removing {}", work_dir.display()))?;
        run_sql(&args.postgres_url, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await?;
    }
    Ok(summary)
}

fn check_bounds(args: &ClusterChaosArgs) -> anyhow::Result<()> {
    if !(3..=NODES_MAX).contains(&args.nodes) {
        bail!("--nodes must be 3 to {NODES_MAX} (one is killed, one stopped, one cut off)");
    }
    if !(1..=WORKERS_MAX).contains(&args.workers) || !(1..=PARTNERS_MAX).contains(&args.partners) {
        bail!("--workers must be 1 to {WORKERS_MAX} and --partners 1 to {PARTNERS_MAX}");
    }
    if !(1..=REWARDS_PER_PARTNER_MAX).contains(&args.rewards_per_partner) || !(1..=PHASE_MS_MAX).contains(&args.phase_ms) {
        bail!("--rewards-per-partner must be 1 to {REWARDS_PER_PARTNER_MAX} and --phase-ms 1 to {PHASE_MS_MAX}");
    }
    if !(10..=10_000).contains(&args.heartbeat_ms) {
        bail!("--heartbeat-ms must be 10 to 10000");
    }
    Ok(())
}

/// `DROP SCHEMA … CASCADE; CREATE SCHEMA …` in the database.
async fn fresh_schema(url: &str, schema: &str) -> anyhow::Result<()> {
    run_sql(url, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")).await
}

async fn run_sql(url: &str, sql: &str) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.context("connecting to the chaos database")?;
    let driver = tokio::spawn(connection);
    client.batch_execute(sql).await.with_context(|| format!("running {sql}"))?;
    drop(client);
    let _ = driver.await;
    Ok(())
}

/// Ends every database connection of one node (they carry its `application_name`).
async fn cut_off(url: &str, application_name: &str) -> anyhow::Result<i64> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.context("connecting to the chaos database")?;
    let driver = tokio::spawn(connection);
    let sql = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1";
    let ended: i64 = client.query_one(sql, &[&application_name]).await.context("terminating a node's connections")?.get(0);
    drop(client);
    let _ = driver.await;
    Ok(ended)
}

/// The three faults, with load running all along; answers what was done.
async fn inflict_faults(args: &ClusterChaosArgs, cluster: &ClusterSpec, nodes: &mut [Node], seed: u64) -> anyhow::Result<Vec<String>> {
    let phase = Duration::from_millis(args.phase_ms);
    let takeover = Duration::from_millis(args.heartbeat_ms * 5);
    let mut choices = SplitMix64(seed);
    // Three distinct nodes: killed, stopped, cut off.
    let killed = choices.between(0, args.nodes as u64 - 1) as usize;
    let stopped = (killed + 1 + choices.between(0, args.nodes as u64 - 2) as usize) % args.nodes;
    let cut = (0..args.nodes).find(|node| *node != killed && *node != stopped).expect("three nodes at least");
    let mut faults = Vec::new();
    let mut log = |fault: String| {
        eprintln!("  {fault}");
        faults.push(fault);
    };
    tokio::time::sleep(phase).await;

    nodes[killed].kill_in_place().await?;
    log(format!("SIGKILL n{killed}"));
    tokio::time::sleep(takeover + phase).await;
    nodes[killed] = cluster.start(killed).await?;
    log(format!("restarted n{killed}"));
    tokio::time::sleep(phase).await;

    nodes[stopped].signal("-STOP")?;
    log(format!("SIGSTOP n{stopped} for {} ms (the takeover timeout is {} ms)", (takeover * 2 + phase).as_millis(), takeover.as_millis()));
    tokio::time::sleep(takeover * 2 + phase).await;
    nodes[stopped].signal("-CONT")?;
    log(format!("SIGCONT n{stopped}"));
    tokio::time::sleep(phase).await;

    let ended = cut_off(&args.postgres_url, &cluster.application_name(cut)).await?;
    log(format!("terminated n{cut}'s {ended} database connections"));
    tokio::time::sleep(phase).await;
    Ok(faults)
}

/// Submits new keys round robin over the partners through one node, moving to the next
/// node when it stops answering, until told to stop or the ledger is full.
async fn submit_until_stopped(shared: Arc<Shared>, worker: usize, stop: Arc<AtomicBool>) {
    let mut node = worker % shared.addresses.len();
    let mut connection: Option<Connection> = None;
    for sequence in 0usize.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let live = match connection.as_mut() {
            Some(live) => live,
            None => match Connection::connect(shared.addresses[node]).await {
                Ok(fresh) => connection.insert(fresh),
                Err(_) => {
                    node = (node + 1) % shared.addresses.len();
                    tokio::time::sleep(RETRY_PAUSE).await;
                    continue;
                }
            },
        };
        let key = format!("{}-{worker}-{sequence}", shared.run_id);
        let partner = (worker + sequence) % shared.partners.len();
        let Some(index) = shared.ledger.lock().attempt(&key, partner) else { break };
        match signed(live, &shared.partners[partner], Method::POST, SUBMIT_PATH, action_body(&key).as_bytes()).await {
            Ok(response) if response.status == 200 => shared.ledger.lock().settle(index, Settled::Paid(response.body)),
            Ok(response) if response.status == 402 => shared.ledger.lock().settle(index, Settled::PoolEmpty),
            // Back-pressure, a moving shard, a fenced or late commit: unknown; the audit settles it.
            Ok(response) if matches!(response.status, 503 | 504) => tokio::time::sleep(RETRY_PAUSE).await,
            Ok(response) => shared.discrepancies.report(format!("{key}: the first submission answered {}", describe(&response))),
            // The node died or stopped answering with this request in flight: unknown.
            Err(_) => {
                connection = None;
                node = (node + 1) % shared.addresses.len();
            }
        }
    }
}

/// The audit: settle, replay, then each partner's books and webhooks.
async fn audit(shared: &Arc<Shared>, workers: usize, receiver: &Receiver, summary: &mut ChaosSummary) -> anyhow::Result<()> {
    let unanswered: Vec<usize> = {
        let ledger = shared.ledger.lock();
        summary.attempted = ledger.entries.len() as u64;
        summary.acknowledged = ledger.entries.iter().filter(|entry| matches!(entry.settled, Some(Settled::Paid(_)))).count() as u64;
        summary.refused_empty_pool = ledger.entries.iter().filter(|entry| matches!(entry.settled, Some(Settled::PoolEmpty))).count() as u64;
        ledger.entries.iter().enumerate().filter(|(_, entry)| entry.settled.is_none()).map(|(index, _)| index).collect()
    };
    summary.resubmitted = unanswered.len() as u64;
    eprintln!(
        "audit: {} keys ({} acknowledged, {} refused for an empty pool), resubmitting {} unanswered",
        summary.attempted,
        summary.acknowledged,
        summary.refused_empty_pool,
        unanswered.len()
    );
    summary.resubmitted_already_committed = for_each_key(shared, workers, unanswered, settle).await?;
    let paid: Vec<usize> = {
        let ledger = shared.ledger.lock();
        ledger.entries.iter().enumerate().filter(|(_, entry)| matches!(entry.settled, Some(Settled::Paid(_)))).map(|(index, _)| index).collect()
    };
    summary.replays_checked = for_each_key(shared, workers, paid, check_replay).await?;
    let mut completed = HashSet::new();
    for partner in 0..shared.partners.len() {
        let (keys, tokens, emptied) = audit_partner(shared, partner).await?;
        summary.actions += keys.len() as u64;
        summary.tokens_issued += tokens;
        summary.pools_emptied += u64::from(emptied);
        completed.extend(keys);
    }
    let deadline = Instant::now() + WEBHOOK_WAIT;
    loop {
        let missing = completed.iter().filter(|key| !receiver.completed.lock().contains(*key)).count();
        if missing == 0 {
            break;
        }
        if Instant::now() >= deadline {
            shared.discrepancies.report(format!("{missing} completed actions had no action.completed webhook within {WEBHOOK_WAIT:?}"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    summary.webhooks_received = receiver.completed.lock().len() as u64;
    Ok(())
}

type KeyCheck = fn(&Shared, usize, ClientResponse) -> Option<bool>;

/// Submits each key's body again, `workers` at once over the nodes, until `check` knows
/// its outcome (bounded). Answers how many keys `check` counted.
async fn for_each_key(shared: &Arc<Shared>, workers: usize, keys: Vec<usize>, check: KeyCheck) -> anyhow::Result<u64> {
    let keys = Arc::new(keys);
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let (shared, keys) = (Arc::clone(shared), Arc::clone(&keys));
            tokio::spawn(async move {
                let address = shared.addresses[worker % shared.addresses.len()];
                let mut connection = Connection::connect(address).await.with_context(|| format!("connecting to {address}"))?;
                let mut counted = 0;
                for &index in keys.iter().skip(worker).step_by(workers) {
                    let (key, partner) = shared.ledger.lock().key(index);
                    let mut known = None;
                    for _ in 0..SETTLE_ATTEMPTS_MAX {
                        let response = signed(&mut connection, &shared.partners[partner], Method::POST, SUBMIT_PATH, action_body(&key).as_bytes())
                            .await
                            .with_context(|| format!("resubmitting {key}"))?;
                        known = check(&shared, index, response);
                        if known.is_some() {
                            break;
                        }
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                    match known {
                        Some(count) => counted += u64::from(count),
                        None => shared.discrepancies.report(format!("{key}: still 503/504 after {SETTLE_ATTEMPTS_MAX} resubmissions")),
                    }
                }
                anyhow::Ok(counted)
            })
        })
        .collect();
    let mut counted = 0;
    for task in tasks {
        counted += task.await.context("an audit worker panicked")??;
    }
    Ok(counted)
}

/// An unanswered key's resubmission: 200 (it had not committed), 409 (it had: counted), or
/// 402 (not committed, and the pool is empty now).
fn settle(shared: &Shared, index: usize, response: ClientResponse) -> Option<bool> {
    let key = shared.ledger.lock().key(index).0;
    match response.status {
        200 => shared.ledger.lock().settle(index, Settled::Paid(response.body)),
        402 => shared.ledger.lock().settle(index, Settled::PoolEmpty),
        409 => match original_response(&response) {
            Some(original) => {
                shared.ledger.lock().settle(index, Settled::Paid(original));
                return Some(true);
            }
            None => shared.discrepancies.report(format!("{key}: resubmission answered {}", describe(&response))),
        },
        503 | 504 => return None,
        _ => shared.discrepancies.report(format!("{key}: resubmission answered {}", describe(&response))),
    }
    Some(false)
}

/// A paid key replays `409 IDEMPOTENT` with exactly its answer, a completed 10-token action.
fn check_replay(shared: &Shared, index: usize, response: ClientResponse) -> Option<bool> {
    if matches!(response.status, 503 | 504) {
        return None;
    }
    let (key, answer) = {
        let ledger = shared.ledger.lock();
        let entry = &ledger.entries[index];
        (
            entry.key.clone(),
            match &entry.settled {
                Some(Settled::Paid(answer)) => answer.clone(),
                _ => Bytes::new(),
            },
        )
    };
    if original_response(&response).as_deref() != Some(&answer[..]) {
        shared.discrepancies.report(format!(
            "{key}: the replay {} differs from the answer {}",
            describe(&response),
            String::from_utf8_lossy(&answer)
        ));
        return Some(false);
    }
    Some(true)
}

/// One partner's books: one action per paid key and nothing else, the pool at its
/// allocation minus those tokens (zero if any key found it empty), the users holding them.
/// Answers the completed keys, their tokens, and whether the pool was emptied.
async fn audit_partner(shared: &Arc<Shared>, partner: usize) -> anyhow::Result<(Vec<String>, u64, bool)> {
    let credentials = &shared.partners[partner];
    let address = shared.addresses[partner % shared.addresses.len()];
    let mut connection = Connection::connect(address).await.with_context(|| format!("connecting to {address}"))?;
    let (paid, emptied) = {
        let ledger = shared.ledger.lock();
        let mine: Vec<&KeyEntry> = ledger.entries.iter().filter(|entry| entry.partner == partner).collect();
        let paid: HashMap<String, Bytes> = mine
            .iter()
            .filter_map(|entry| match &entry.settled {
                Some(Settled::Paid(answer)) => Some((entry.key.clone(), answer.clone())),
                _ => None,
            })
            .collect();
        (paid, mine.iter().any(|entry| matches!(entry.settled, Some(Settled::PoolEmpty))))
    };
    let report = |message: String| shared.discrepancies.report(format!("partner {partner}: {message}"));
    let listed = list_actions(&mut connection, credentials, paid.len() + PAGE_LIMIT).await?;
    let mut tokens = 0;
    for (key, answer) in &paid {
        let answered: Option<crate::crash_loop::Answer> = serde_json::from_slice(answer).ok();
        match (answered, listed.get(key)) {
            (Some(answered), Some((action_id, listed_tokens)))
                if *action_id == answered.action_id && *listed_tokens == TOKENS_PER_REWARD && answered.tokens_distributed == TOKENS_PER_REWARD =>
            {
                tokens += listed_tokens;
            }
            (_, listed) => report(format!("{key}: listed as {listed:?}, answered {}", String::from_utf8_lossy(answer))),
        }
    }
    if listed.len() != paid.len() {
        report(format!("{} actions listed for {} paid keys (a key paid twice, or an action without an answer)", listed.len(), paid.len()));
    }
    check_pool(&mut connection, credentials, shared.allocation, tokens, &report).await?;
    if emptied && tokens != shared.allocation {
        report(format!("a key was refused for an empty pool, yet the actions took {tokens} of {}", shared.allocation));
    }
    check_users(&mut connection, credentials, USER_PREFIX, USERS_PER_PARTNER, tokens, &report).await?;
    Ok((paid.into_keys().collect(), tokens, emptied))
}

fn print_summary(summary: &ChaosSummary) {
    println!(
        "\ncluster chaos, seed {}: {} nodes, {} partners × {} rewards, {:.1} s\n  faults      {}\n  keys        {} attempted, {} acknowledged, {} refused (pool empty), {} resubmitted ({} had committed)\n  audit       {} replays byte-equal, {} actions, {} tokens issued, {} pools emptied exactly, {} action.completed webhooks\n  discrepancies {}",
        summary.seed,
        summary.nodes,
        summary.partners,
        summary.rewards_per_partner,
        summary.duration_secs,
        summary.faults.join("; "),
        summary.attempted,
        summary.acknowledged,
        summary.refused_empty_pool,
        summary.resubmitted,
        summary.resubmitted_already_committed,
        summary.replays_checked,
        summary.actions,
        summary.tokens_issued,
        summary.pools_emptied,
        summary.webhooks_received,
        summary.discrepancies
    );
}

/// A 10-token reward for one of the partner's users, the same body every time for a key.
fn action_body(key: &str) -> String {
    let user = key.bytes().fold(0u64, |hash, byte| hash.wrapping_mul(31).wrapping_add(u64::from(byte))) % USERS_PER_PARTNER;
    format!(
        r#"{{"idempotencyKey":"{key}","actionType":"PURCHASE","amount":{TOKENS_PER_REWARD},"currency":"USD","stakeholders":[{{"stakeholderTypeCode":"CUSTOMER","partnerUserId":"{USER_PREFIX}{user}"}}]}}"#
    )
}

struct Shared {
    partners: Vec<SigningCredentials>,
    addresses: Vec<SocketAddr>,
    run_id: String,
    ledger: Mutex<Ledger>,
    discrepancies: Discrepancies,
    allocation: u64,
}

enum Settled {
    /// Its action completed: the answer every replay must repeat.
    Paid(Bytes),
    /// Refused with 402: the pool had no 10 tokens left.
    PoolEmpty,
}

struct KeyEntry {
    key: String,
    partner: usize,
    settled: Option<Settled>,
}

#[derive(Default)]
struct Ledger {
    entries: Vec<KeyEntry>,
}

impl Ledger {
    fn attempt(&mut self, key: &str, partner: usize) -> Option<usize> {
        (self.entries.len() < KEYS_MAX).then(|| {
            self.entries.push(KeyEntry { key: key.to_owned(), partner, settled: None });
            self.entries.len() - 1
        })
    }

    fn settle(&mut self, index: usize, settled: Settled) {
        self.entries[index].settled = Some(settled);
    }

    fn key(&self, index: usize) -> (String, usize) {
        (self.entries[index].key.clone(), self.entries[index].partner)
    }
}

/// The run's webhook endpoint: remembers the idempotency key of every `action.completed`.
struct Receiver {
    url: String,
    completed: Arc<Mutex<HashSet<String>>>,
}

impl Receiver {
    async fn start() -> anyhow::Result<Receiver> {
        let completed: Arc<Mutex<HashSet<String>>> = Arc::default();
        let seen = Arc::clone(&completed);
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: Bytes| {
                let seen = Arc::clone(&seen);
                async move {
                    let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    if event["type"] == "action.completed"
                        && let Some(key) = event["data"]["idempotencyKey"].as_str()
                    {
                        seen.lock().insert(key.to_owned());
                    }
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the webhook receiver")?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("the webhook receiver stopped: {error}");
            }
        });
        Ok(Receiver { url, completed })
    }
}

/// The nodes' common settings; each node differs by its id, port and connection name.
struct ClusterSpec {
    binary: PathBuf,
    work_dir: PathBuf,
    postgres_url: String,
    schema: String,
    addresses: Vec<SocketAddr>,
    heartbeat_ms: u64,
    admin_token: Secret,
    master_key: Secret,
}

struct Node {
    child: Child,
    address: SocketAddr,
}

impl ClusterSpec {
    fn new(args: &ClusterChaosArgs, work_dir: &Path, schema: &str) -> anyhow::Result<ClusterSpec> {
        let binary = match &args.server_binary {
            Some(binary) => binary.clone(),
            None => server_beside(&std::env::current_exe().context("locating this binary")?)?,
        };
        let addresses = (0..args.nodes)
            .map(|_| TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).context("finding a free port"))
            .collect::<anyhow::Result<_>>()?;
        Ok(ClusterSpec {
            binary,
            work_dir: work_dir.to_owned(),
            postgres_url: args.postgres_url.clone(),
            schema: schema.to_owned(),
            addresses,
            heartbeat_ms: args.heartbeat_ms,
            admin_token: MasterKey::generate_hex(),
            master_key: MasterKey::generate_hex(),
        })
    }

    fn application_name(&self, index: usize) -> String {
        format!("{}_n{index}", self.schema)
    }

    /// Starts node `index` and waits until it answers `/healthz` (its readiness comes once
    /// it holds its shards: [`wait_ready`]).
    async fn start(&self, index: usize) -> anyhow::Result<Node> {
        let address = self.addresses[index];
        let separator = if self.postgres_url.contains('?') { '&' } else { '?' };
        let url =
            format!("{}{separator}options=-csearch_path%3D{}&application_name={}", self.postgres_url, self.schema, self.application_name(index));
        let log_path = self.work_dir.join(format!("n{index}.log"));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).with_context(|| format!("opening {}", log_path.display()))?;
        let mut child = Command::new(&self.binary)
            .args(["serve", "--listen", &address.to_string()])
            // The tool's own variable is not the server's (it refuses unknown REWARD_ ones).
            .env_remove("REWARD_CHAOS_POSTGRES_URL")
            .env("REWARD_SERVER_STORE", "postgres")
            .env("REWARD_STORE_POSTGRES_URL", &url)
            .env("REWARD_CLUSTER_ENABLED", "true")
            .env("REWARD_CLUSTER_NODE_ID", format!("n{index}"))
            .env("REWARD_CLUSTER_ADVERTISE", address.to_string())
            .env("REWARD_CLUSTER_HEARTBEAT_INTERVAL_MS", self.heartbeat_ms.to_string())
            .env("REWARD_CLUSTER_TAKEOVER_AFTER_MS", (self.heartbeat_ms * 5).to_string())
            .env("REWARD_WEBHOOK_ALLOWED_CIDRS", "127.0.0.1/32")
            .env("REWARD_WEBHOOK_SWEEP_INTERVAL", "1s")
            .env("REWARD_ADMIN_TOKEN", self.admin_token.expose())
            .env("REWARD_MASTER_KEY", self.master_key.expose())
            .env("REWARD_LOG", "warn")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        wait_healthy(&mut child, address, &format!("node n{index}"), &log_path).await?;
        Ok(Node { child, address })
    }
}

impl Node {
    /// SIGKILL, then reap.
    async fn kill(mut self) -> anyhow::Result<()> {
        self.kill_in_place().await
    }

    async fn kill_in_place(&mut self) -> anyhow::Result<()> {
        self.child.start_kill().context("killing a node")?;
        self.child.wait().await.context("waiting for a killed node")?;
        Ok(())
    }

    /// `kill -STOP` / `kill -CONT`.
    fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let pid = self.child.id().context("the node has exited")?;
        let status = std::process::Command::new("kill").args([signal, &pid.to_string()]).status().context("running kill")?;
        if !status.success() {
            bail!("kill {signal} {pid} failed: {status}");
        }
        Ok(())
    }
}

/// Until the node answers `/readyz` 200 (it holds every shard it should).
async fn wait_ready(address: SocketAddr) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if let Ok(mut connection) = Connection::connect(address).await
            && let Ok(Ok(response)) = tokio::time::timeout(REQUEST_TIMEOUT, connection.request(Method::GET, "/readyz", &[], Bytes::new())).await
            && response.status == 200
        {
            return Ok(());
        }
        if started.elapsed() > STARTUP_TIMEOUT {
            bail!("the node at {address} was not ready within {STARTUP_TIMEOUT:?}");
        }
        tokio::time::sleep(HEALTH_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_always_asks_for_the_same_ten_token_reward() {
        assert_eq!(action_body("ch1-0-7"), action_body("ch1-0-7"));
        assert!(action_body("ch1-0-7").contains(r#""amount":10,"#));
    }

    #[test]
    fn the_bounds_refuse_a_cluster_too_small_to_fault() {
        let args = |nodes| ClusterChaosArgs {
            postgres_url: "postgresql://127.0.0.1/none".into(),
            nodes,
            partners: 4,
            workers: 4,
            rewards_per_partner: 10,
            phase_ms: 100,
            heartbeat_ms: 100,
            seed: Some(1),
            work_dir: None,
            server_binary: None,
            json_out: None,
        };
        assert!(check_bounds(&args(2)).is_err());
        assert!(check_bounds(&args(3)).is_ok());
    }
}
