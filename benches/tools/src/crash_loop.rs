//! `reward-bench crash-loop`: the crash test as an operator's tool. It starts the
//! real server as a child process on a fresh data directory, drives concurrent signed submits
//! while keeping its own ledger of every key (attempted; acknowledged with the exact body;
//! unanswered), SIGKILLs the child after a random delay, restarts it on the same directory,
//! and repeats. After the last kill it audits through the public API only:
//!
//! - every unanswered key is resubmitted and settles exactly once: `200` if its action had
//!   not committed before the kill, `409 IDEMPOTENT` if it had;
//! - every key then replays `409 IDEMPOTENT` with its answer, byte for byte (the original
//!   `200` body for acknowledged keys);
//! - each partner's action list holds exactly one action per key, with the answered id and
//!   tokens, and nothing else;
//! - each pool's balance is its allocation minus the tokens of those actions, the
//!   reconciliation route agrees, and the users hold exactly those tokens.
//!
//! Kill delays come from a seeded SplitMix64, so `--seed` repeats a run's kill schedule (not
//! its thread interleavings). A SIGKILL leaves the page cache intact: this proves crash
//! consistency; `tests/it/durability.rs` proves acknowledgements follow fsync.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bytes::Bytes;
use hyper::Method;
use parking_lot::Mutex;
use reward_actors::api::common::{MasterKey, Secret};
use reward_actors::api::operations::StoreBackend;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::process::{Child, Command};

use reward_engine::sign_cli::{SigningCredentials, sign_request};

use crate::client::{ClientResponse, Connection};

/// Bounds on a run: a crash loop is always finite.
const KILLS_MAX: u32 = 10_000;
const WORKERS_MAX: usize = 256;
const PARTNERS_MAX: usize = 64;
/// Keys one run keeps in its ledger (each well under 1 KiB with its answer): the load stops
/// growing the ledger there, so memory stays under about 1 GiB.
const KEYS_MAX: usize = 1_000_000;
/// A kill lands at most this long after a cycle's load starts.
const KILL_AFTER_MS_MAX: u64 = 60_000;
/// The longest a run may keep killing (the audit still runs after it).
const DURATION_SECS_MAX: u64 = 24 * 3_600;
/// A restarted server must answer `/healthz` within this (log replay included).
pub(crate) const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
pub(crate) const HEALTH_POLL: Duration = Duration::from_millis(20);
/// One request's bound: a hung server is a failure, not a hang.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Answers of unknown outcome (`503 OVERLOADED`, `504 ENGINE_TIMEOUT`) during the audit are
/// retried this often, this far apart, before they count as a discrepancy.
pub(crate) const SETTLE_ATTEMPTS_MAX: u32 = 50;
pub(crate) const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Discrepancies printed in full (all are counted).
const DISCREPANCIES_SHOWN: usize = 20;
/// Users per partner that actions reward: few, so each balance adds up many actions.
const USERS_PER_PARTNER: u64 = 16;
/// Tokens allocated to each partner's pool: far more than any run issues (at most 100 a key).
const POOL_TOKENS: u64 = 1_000_000_000_000;
/// The partner API's largest page.
pub(crate) const PAGE_LIMIT: usize = 100;
pub(crate) const SUBMIT_PATH: &str = "/v1/partner/actions/submit";
/// The server's binary name, looked for beside this one when `--server-binary` is not given.
const SERVER_BINARY: &str = "reward-engine";

#[derive(Debug, Clone, clap::Args)]
pub struct CrashLoopArgs {
    /// Embedded store of the server under test: redb or sled.
    #[arg(long, default_value = "redb")]
    pub backend: StoreBackend,
    /// SIGKILLs to deliver, each followed by a restart on the same data directory.
    #[arg(long, default_value_t = 5)]
    pub kills: u32,
    /// Seed of the kill schedule [default: from the clock; printed, so a schedule can be repeated].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Concurrent connections submitting signed actions.
    #[arg(long, default_value_t = 16)]
    pub workers: usize,
    /// Partners (each its own actor and pool) the load is spread over.
    #[arg(long, default_value_t = 4)]
    pub partners: usize,
    /// Each kill lands a uniformly random time between this and --kill-after-ms-max after
    /// the cycle's load starts.
    #[arg(long, default_value_t = 20)]
    pub kill_after_ms_min: u64,
    #[arg(long, default_value_t = 1_000)]
    pub kill_after_ms_max: u64,
    /// Run the server without the write-ahead log (REWARD_WAL_ENABLED=false).
    #[arg(long)]
    pub no_wal: bool,
    /// How often the server applies its log into the backend (often: more kills land mid-apply).
    #[arg(long, default_value_t = 20)]
    pub wal_apply_interval_ms: u64,
    /// Stop killing after this many seconds (the audit still runs), to bound a CI run.
    #[arg(long, default_value_t = 3_600)]
    pub duration_secs_max: u64,
    /// Directory for the data and the server's log [default: a fresh temporary one, removed
    /// after a clean run]. Must not hold data already.
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
pub struct Summary {
    pub backend: String,
    pub write_ahead_log: bool,
    pub seed: u64,
    pub kills: u32,
    pub kills_requested: u32,
    pub partners: usize,
    pub workers: usize,
    /// Keys submitted at least once.
    pub attempted: u64,
    /// Keys answered 200 before a kill.
    pub acknowledged: u64,
    /// Keys with no answer (in flight at a kill, or 503/504), resubmitted in the audit.
    pub resubmitted: u64,
    /// Of those, keys whose action had committed before the kill (409 on resubmission).
    pub resubmitted_already_committed: u64,
    /// Keys whose replay was compared byte for byte with their answer.
    pub replays_checked: u64,
    /// Actions the partners' lists hold, and the tokens they issued.
    pub actions: u64,
    pub tokens_issued: u64,
    pub restart_secs_mean: f64,
    pub restart_secs_max: f64,
    pub duration_secs: f64,
    pub discrepancies: u64,
}

pub async fn run(args: CrashLoopArgs) -> anyhow::Result<Summary> {
    check_bounds(&args)?;
    let seed = args.seed.unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos() as u64));
    let work_dir = prepare_work_dir(&args, seed)?;
    let spec = ServerSpec::new(&args, &work_dir)?;
    let wal = if args.no_wal { "off" } else { "on" };
    eprintln!("crash loop: {} with the log {wal}, {} kills, seed {seed}, work dir {}", args.backend, args.kills, work_dir.display());
    let started = Instant::now();
    let server = spec.start().await?;
    let label = format!("crash-loop {seed}");
    let partners = crate::loadgen::provision(server.address, &spec.admin_token, args.partners, POOL_TOKENS, &label).await?;
    let shared = Arc::new(Shared { partners, run_id: format!("cl{seed:x}"), ledger: Mutex::default(), discrepancies: Discrepancies::default() });
    let mut summary =
        Summary { backend: args.backend.to_string(), write_ahead_log: !args.no_wal, seed, kills_requested: args.kills, ..Summary::default() };
    let server = kill_and_restart(&args, &spec, &shared, server, seed, started, &mut summary).await?;
    audit(&shared, server.address, args.workers, &mut summary).await?;
    server.kill().await?;
    finish(&args, &shared, &work_dir, started, summary)
}

fn check_bounds(args: &CrashLoopArgs) -> anyhow::Result<()> {
    if !(1..=KILLS_MAX).contains(&args.kills) {
        bail!("--kills must be 1 to {KILLS_MAX}");
    }
    if !(1..=WORKERS_MAX).contains(&args.workers) {
        bail!("--workers must be 1 to {WORKERS_MAX}");
    }
    if !(1..=PARTNERS_MAX).contains(&args.partners) {
        bail!("--partners must be 1 to {PARTNERS_MAX}");
    }
    if args.kill_after_ms_min > args.kill_after_ms_max || args.kill_after_ms_max > KILL_AFTER_MS_MAX {
        bail!("--kill-after-ms-min must not exceed --kill-after-ms-max, which is at most {KILL_AFTER_MS_MAX}");
    }
    if !(1..=DURATION_SECS_MAX).contains(&args.duration_secs_max) {
        bail!("--duration-secs-max must be 1 to {DURATION_SECS_MAX}");
    }
    Ok(())
}

/// The given directory (which must hold no data yet) or a fresh temporary one.
fn prepare_work_dir(args: &CrashLoopArgs, seed: u64) -> anyhow::Result<PathBuf> {
    let dir = match &args.work_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("reward-crash-loop-{}-{seed:x}-{}", args.backend, std::process::id())),
    };
    let data_dir = dir.join("data");
    if data_dir.read_dir().is_ok_and(|mut entries| entries.next().is_some()) {
        bail!("{} already holds data; the crash loop needs a fresh directory", data_dir.display());
    }
    std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    Ok(dir)
}

/// The kill schedule: each cycle loads the server, kills it after a random delay, restarts it.
async fn kill_and_restart(
    args: &CrashLoopArgs,
    spec: &ServerSpec,
    shared: &Arc<Shared>,
    mut server: Server,
    seed: u64,
    started: Instant,
    summary: &mut Summary,
) -> anyhow::Result<Server> {
    let mut delays = SplitMix64(seed);
    let mut restart_secs_total = 0.0;
    while summary.kills < args.kills {
        if started.elapsed().as_secs() >= args.duration_secs_max {
            eprintln!("time limit ({} s) reached after {} of {} kills; auditing", args.duration_secs_max, summary.kills, args.kills);
            break;
        }
        let delay = Duration::from_millis(delays.between(args.kill_after_ms_min, args.kill_after_ms_max));
        let before = shared.ledger.lock().counts();
        load_then_kill(shared, server, summary.kills, delay, args.workers).await?;
        summary.kills += 1;
        let restarting = Instant::now();
        server = spec.start().await?;
        let restart_secs = restarting.elapsed().as_secs_f64();
        restart_secs_total += restart_secs;
        summary.restart_secs_max = summary.restart_secs_max.max(restart_secs);
        let after = shared.ledger.lock().counts();
        eprintln!(
            "kill {:>4}/{}: after {:>5} ms, {:>6} acknowledged, {:>3} unanswered, restarted in {restart_secs:.2} s (total {} acknowledged, {} unanswered)",
            summary.kills,
            args.kills,
            delay.as_millis(),
            after.acknowledged - before.acknowledged,
            after.unanswered() - before.unanswered(),
            after.acknowledged,
            after.unanswered()
        );
    }
    summary.restart_secs_mean = restart_secs_total / f64::from(summary.kills.max(1));
    Ok(server)
}

/// One cycle: `workers` connections submit new keys until the server is killed after `delay`.
async fn load_then_kill(shared: &Arc<Shared>, server: Server, cycle: u32, delay: Duration, workers: usize) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> =
        (0..workers).map(|worker| tokio::spawn(submit_until_stopped(Arc::clone(shared), server.address, cycle, worker, Arc::clone(&stop)))).collect();
    // The delay is the experiment (when the kill lands), not a wait for a condition.
    tokio::time::sleep(delay).await;
    server.kill().await?;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        tokio::time::timeout(REQUEST_TIMEOUT, task).await.context("a load worker outlived the server")?.context("a load worker panicked")?;
    }
    Ok(())
}

/// Submits new keys on one connection until told to stop, the server goes away, or the
/// ledger is full; records every key before sending it and every 200 with its body.
async fn submit_until_stopped(shared: Arc<Shared>, address: SocketAddr, cycle: u32, worker: usize, stop: Arc<AtomicBool>) {
    let Ok(mut connection) = Connection::connect(address).await else { return };
    // Bounded by the kill (the stop flag, or the connection failing) and by `KEYS_MAX`.
    for sequence in 0usize.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let key = format!("{}-{cycle}-{worker}-{sequence}", shared.run_id);
        let partner = (worker + sequence) % shared.partners.len();
        let Some(index) = shared.ledger.lock().attempt(&key, partner) else { break };
        let body = action_body(&key).0;
        match signed(&mut connection, &shared.partners[partner], Method::POST, SUBMIT_PATH, body.as_bytes()).await {
            Ok(response) if response.status == 200 => shared.ledger.lock().answer(index, response.body),
            // Back-pressure or a late commit: the outcome is unknown; the audit settles it.
            Ok(response) if matches!(response.status, 503 | 504) => tokio::time::sleep(RETRY_PAUSE).await,
            Ok(response) => shared.discrepancies.report(format!("{key}: the first submission answered {}", describe(&response))),
            // The server died with this request in flight: the key stays unanswered.
            Err(_) => break,
        }
    }
}

/// The audit after the last restart; it adds what it finds to `summary`.
async fn audit(shared: &Arc<Shared>, address: SocketAddr, workers: usize, summary: &mut Summary) -> anyhow::Result<()> {
    let counts = shared.ledger.lock().counts();
    (summary.attempted, summary.acknowledged, summary.resubmitted) = (counts.attempted, counts.acknowledged, counts.unanswered());
    eprintln!("audit: resubmitting {} unanswered keys, then replaying all {} keys", counts.unanswered(), counts.attempted);
    let unanswered: Vec<usize> =
        shared.ledger.lock().entries.iter().enumerate().filter(|(_, entry)| entry.answer.is_none()).map(|(index, _)| index).collect();
    summary.resubmitted_already_committed = for_each_key(shared, address, workers, unanswered, settle).await?;
    let every_key: Vec<usize> = (0..counts.attempted as usize).collect();
    summary.replays_checked = for_each_key(shared, address, workers, every_key, check_replay).await?;
    for partner in 0..shared.partners.len() {
        let (actions, tokens) = audit_partner(shared, address, partner).await?;
        summary.actions += actions;
        summary.tokens_issued += tokens;
    }
    Ok(())
}

type KeyCheck = fn(Arc<Shared>, usize, ClientResponse) -> Option<bool>;

/// Submits each key's body again, `workers` connections at once, and hands each answer to
/// `check` (`None`: outcome unknown, try again). Answers how many keys `check` counted.
async fn for_each_key(shared: &Arc<Shared>, address: SocketAddr, workers: usize, keys: Vec<usize>, check: KeyCheck) -> anyhow::Result<u64> {
    let keys = Arc::new(keys);
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let (shared, keys) = (Arc::clone(shared), Arc::clone(&keys));
            tokio::spawn(async move {
                let mut connection = Connection::connect(address).await.with_context(|| format!("connecting to {address}"))?;
                let mut counted = 0;
                for &index in keys.iter().skip(worker).step_by(workers) {
                    counted += u64::from(resubmit(&shared, &mut connection, index, check).await?);
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

/// One key, resubmitted until its outcome is known (bounded by `SETTLE_ATTEMPTS_MAX`).
async fn resubmit(shared: &Arc<Shared>, connection: &mut Connection, index: usize, check: KeyCheck) -> anyhow::Result<bool> {
    let (key, partner) = shared.ledger.lock().key(index);
    let body = action_body(&key).0;
    for _ in 0..SETTLE_ATTEMPTS_MAX {
        let response = signed(connection, &shared.partners[partner], Method::POST, SUBMIT_PATH, body.as_bytes())
            .await
            .with_context(|| format!("resubmitting {key}"))?;
        if let Some(counted) = check(Arc::clone(shared), index, response) {
            return Ok(counted);
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    shared.discrepancies.report(format!("{key}: still 503/504 after {SETTLE_ATTEMPTS_MAX} resubmissions"));
    Ok(false)
}

/// An unanswered key's resubmission: 200 (it had not committed) or 409 IDEMPOTENT (it had).
/// Either way its answer is recorded for the replay check. Counts the already committed.
fn settle(shared: Arc<Shared>, index: usize, response: ClientResponse) -> Option<bool> {
    let key = shared.ledger.lock().key(index).0;
    match response.status {
        200 => shared.ledger.lock().answer(index, response.body),
        409 => match original_response(&response) {
            Some(original) => {
                shared.ledger.lock().answer(index, original);
                return Some(true);
            }
            None => shared.discrepancies.report(format!("{key}: resubmission answered {}", describe(&response))),
        },
        503 | 504 => return None,
        _ => shared.discrepancies.report(format!("{key}: resubmission answered {}", describe(&response))),
    }
    Some(false)
}

/// Every key replays `409 IDEMPOTENT` with exactly its recorded answer, which is a completed
/// action for this key with the tokens its amount earns.
fn check_replay(shared: Arc<Shared>, index: usize, response: ClientResponse) -> Option<bool> {
    if matches!(response.status, 503 | 504) {
        return None;
    }
    let (key, answer) = {
        let ledger = shared.ledger.lock();
        (ledger.entries[index].key.clone(), ledger.entries[index].answer.clone())
    };
    let Some(answer) = answer else {
        shared.discrepancies.report(format!("{key}: never settled"));
        return Some(false);
    };
    if response.header("idempotent-replayed") != Some("true") || original_response(&response).as_deref() != Some(&answer[..]) {
        shared.discrepancies.report(format!(
            "{key}: the replay {} differs from the answer {}",
            describe(&response),
            String::from_utf8_lossy(&answer)
        ));
        return Some(false);
    }
    if let Err(problem) = check_answer(&key, &answer) {
        shared.discrepancies.report(format!("{key}: {problem}"));
        return Some(false);
    }
    Some(true)
}

/// The fields of an answer the audit relies on.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Answer {
    pub action_id: String,
    pub idempotency_key: String,
    pub status: String,
    pub tokens_distributed: u64,
}

fn check_answer(key: &str, answer: &[u8]) -> Result<Answer, String> {
    let parsed: Answer = serde_json::from_slice(answer).map_err(|error| format!("the answer is not a submit response ({error})"))?;
    let tokens = action_body(key).1;
    if parsed.idempotency_key != key || parsed.status != "COMPLETED" || parsed.tokens_distributed != tokens {
        return Err(format!("the answer is not a completed action of {tokens} tokens for this key: {}", String::from_utf8_lossy(answer)));
    }
    Ok(parsed)
}

/// One partner's books: one action per key with the answered id, and the pool, its
/// reconciliation and the users' balances all equal to the allocation minus those tokens.
async fn audit_partner(shared: &Arc<Shared>, address: SocketAddr, partner: usize) -> anyhow::Result<(u64, u64)> {
    let credentials = &shared.partners[partner];
    let mut connection = Connection::connect(address).await.with_context(|| format!("connecting to {address}"))?;
    let expected = shared.ledger.lock().answers_of(partner);
    let listed = list_actions(&mut connection, credentials, expected.len()).await?;
    let report = |message: String| shared.discrepancies.report(format!("partner {partner}: {message}"));
    let mut tokens = 0;
    for (key, answer) in &expected {
        match (check_answer(key, answer), listed.get(key)) {
            (Ok(answer), Some((action_id, listed_tokens))) if *action_id == answer.action_id && *listed_tokens == answer.tokens_distributed => {
                tokens += listed_tokens
            }
            (_, listed) => report(format!("{key}: listed as {listed:?}, answered {}", String::from_utf8_lossy(answer))),
        }
    }
    if listed.len() != expected.len() {
        report(format!("{} actions listed for {} keys", listed.len(), expected.len()));
    }
    check_pool(&mut connection, credentials, POOL_TOKENS, tokens, &report).await?;
    check_users(&mut connection, credentials, "crash_user_", USERS_PER_PARTNER, tokens, &report).await?;
    Ok((listed.len() as u64, tokens))
}

/// Every action of the partner by idempotency key (a key listed twice is reported by
/// keeping the count apart from the map's size). Pages are bounded by the keys expected.
pub(crate) async fn list_actions(
    connection: &mut Connection,
    partner: &SigningCredentials,
    expected: usize,
) -> anyhow::Result<HashMap<String, (String, u64)>> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Page {
        data: Vec<Answer>,
        has_more: bool,
        next_cursor: Option<String>,
    }
    let mut actions = HashMap::new();
    let mut path = format!("/v1/partner/actions?limit={PAGE_LIMIT}");
    for _ in 0..expected / PAGE_LIMIT + 2 {
        let response = signed(connection, partner, Method::GET, &path, b"").await?;
        let page: Page = serde_json::from_slice(&response.body).with_context(|| format!("listing actions: {}", describe(&response)))?;
        for action in page.data {
            if actions.insert(action.idempotency_key.clone(), (action.action_id, action.tokens_distributed)).is_some() {
                bail!("the key {} has two actions", action.idempotency_key);
            }
        }
        match (page.has_more, page.next_cursor) {
            (true, Some(cursor)) => path = format!("/v1/partner/actions?limit={PAGE_LIMIT}&cursor={cursor}"),
            _ => return Ok(actions),
        }
    }
    bail!("more than {expected} actions listed")
}

/// The partner's pool holds `allocated − tokens` (never below zero), and its reconciliation agrees.
pub(crate) async fn check_pool(
    connection: &mut Connection,
    partner: &SigningCredentials,
    allocated: u64,
    tokens: u64,
    report: &dyn Fn(String),
) -> anyhow::Result<()> {
    let pools = signed(connection, partner, Method::GET, "/v1/partner/token-pools", b"").await?.json();
    let pool = &pools["data"][0];
    let pool_id = pool["id"].as_str().context("the partner has no pool")?;
    let Some(expected_balance) = allocated.checked_sub(tokens) else {
        report(format!("{tokens} tokens issued from a pool of {allocated}: below zero"));
        return Ok(());
    };
    if pool["balance"] != expected_balance || pool["issuedTotal"] != tokens || pool["allocatedTotal"] != allocated {
        report(format!("the pool {pool} is not {allocated} allocated − {tokens} issued"));
    }
    let path = format!("/v1/partner/token-pools/{pool_id}/reconciliation");
    let reconciliation = signed(connection, partner, Method::GET, &path, b"").await?.json();
    let ledger = &reconciliation["ledger"];
    if reconciliation["balanced"] != true || ledger["balance"] != expected_balance || ledger["issuedTotal"] != tokens {
        report(format!("the reconciliation {reconciliation} disagrees with {tokens} issued"));
    }
    Ok(())
}

/// The users `{prefix}0` … `{prefix}{users-1}` hold `tokens` in all.
pub(crate) async fn check_users(
    connection: &mut Connection,
    partner: &SigningCredentials,
    prefix: &str,
    users: u64,
    tokens: u64,
    report: &dyn Fn(String),
) -> anyhow::Result<()> {
    let mut held = 0;
    for user in 0..users {
        let response = signed(connection, partner, Method::GET, &format!("/v1/partner/users/{prefix}{user}/balance"), b"").await?;
        match response.status {
            200 => held += response.json()["available"].as_u64().unwrap_or(0),
            404 => {}
            _ => report(format!("{prefix}{user}'s balance answered {}", describe(&response))),
        }
    }
    if held != tokens {
        report(format!("the users hold {held} tokens, the actions issued {tokens}"));
    }
    Ok(())
}

fn finish(args: &CrashLoopArgs, shared: &Shared, work_dir: &Path, started: Instant, mut summary: Summary) -> anyhow::Result<Summary> {
    summary.partners = args.partners;
    summary.workers = args.workers;
    summary.duration_secs = started.elapsed().as_secs_f64();
    summary.discrepancies = shared.discrepancies.count.load(Ordering::Relaxed);
    print_summary(&summary);
    if let Some(path) = &args.json_out {
        std::fs::write(path, serde_json::to_vec_pretty(&summary)?).with_context(|| format!("writing {}", path.display()))?;
    }
    if summary.discrepancies > 0 {
        bail!("{} discrepancies; the data and the server's log are kept in {}", summary.discrepancies, work_dir.display());
    }
    if args.work_dir.is_none() {
        std::fs::remove_dir_all(work_dir).with_context(|| format!("removing {}", work_dir.display()))?;
    }
    Ok(summary)
}

fn print_summary(summary: &Summary) {
    println!(
        "\ncrash loop → {} (log {}), seed {}: {} of {} kills in {:.1} s\n  keys        {} attempted, {} acknowledged, {} resubmitted ({} had committed before the kill)\n  audit       {} replays byte-equal, {} actions, {} tokens issued\n  restarts    mean {:.2} s, max {:.2} s\n  discrepancies {}",
        summary.backend,
        if summary.write_ahead_log { "on" } else { "off" },
        summary.seed,
        summary.kills,
        summary.kills_requested,
        summary.duration_secs,
        summary.attempted,
        summary.acknowledged,
        summary.resubmitted,
        summary.resubmitted_already_committed,
        summary.replays_checked,
        summary.actions,
        summary.tokens_issued,
        summary.restart_secs_mean,
        summary.restart_secs_max,
        summary.discrepancies
    );
}

/// The `details.originalResponse` of a `409 IDEMPOTENT`, as the exact bytes the server sent.
pub(crate) fn original_response(response: &ClientResponse) -> Option<Bytes> {
    #[derive(Deserialize)]
    struct Replay<'a> {
        code: &'a str,
        #[serde(borrow)]
        details: Details<'a>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Details<'a> {
        #[serde(borrow)]
        original_response: &'a RawValue,
    }
    let replay: Replay = serde_json::from_slice(&response.body).ok()?;
    (response.status == 409 && replay.code == "IDEMPOTENT").then(|| Bytes::copy_from_slice(replay.details.original_response.get().as_bytes()))
}

pub(crate) fn describe(response: &ClientResponse) -> String {
    format!("{} {}", response.status, String::from_utf8_lossy(&response.body))
}

/// The body for `key` and the tokens it earns: the amount (1–100 whole USD, one token per
/// dollar) and the user follow from the key, so a resubmission is the identical request.
fn action_body(key: &str) -> (String, u64) {
    // FNV-1a: a stable hash (std's `DefaultHasher` may change between releases).
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3));
    let tokens = 1 + hash % 100;
    let user = (hash >> 32) % USERS_PER_PARTNER;
    let body = format!(
        r#"{{"idempotencyKey":"{key}","actionType":"PURCHASE","amount":{tokens},"currency":"USD","stakeholders":[{{"stakeholderTypeCode":"CUSTOMER","partnerUserId":"crash_user_{user}"}}]}}"#
    );
    (body, tokens)
}

/// A signed partner request, bounded by `REQUEST_TIMEOUT`.
pub(crate) async fn signed(
    connection: &mut Connection,
    partner: &SigningCredentials,
    method: Method,
    path: &str,
    body: &[u8],
) -> anyhow::Result<ClientResponse> {
    let now_secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs());
    let signed = sign_request(partner, method.as_str(), path, body, now_secs);
    let mut headers =
        vec![("x-partner-key", signed.partner_key.as_str()), ("x-timestamp", signed.timestamp.as_str()), ("x-signature", signed.signature.as_str())];
    if !body.is_empty() {
        headers.push(("content-type", "application/json"));
    }
    let request = connection.request(method, path, &headers, Bytes::copy_from_slice(body));
    Ok(tokio::time::timeout(REQUEST_TIMEOUT, request).await.with_context(|| format!("{path}: no answer in {REQUEST_TIMEOUT:?}"))??)
}

/// What the workers share: the partners, the ledger and what went wrong.
struct Shared {
    partners: Vec<SigningCredentials>,
    /// Prefix of every idempotency key of this run.
    run_id: String,
    ledger: Mutex<Ledger>,
    discrepancies: Discrepancies,
}

/// Every key the run submitted, in order: its partner and, once known, the answer it must
/// replay (the 200 body, or for a key unanswered at a kill, what its resubmission settled).
#[derive(Default)]
struct Ledger {
    entries: Vec<KeyEntry>,
    acknowledged: u64,
}

struct KeyEntry {
    key: String,
    partner: usize,
    answer: Option<Bytes>,
}

#[derive(Clone, Copy)]
struct Counts {
    attempted: u64,
    acknowledged: u64,
}

impl Counts {
    fn unanswered(self) -> u64 {
        self.attempted - self.acknowledged
    }
}

impl Ledger {
    /// Records a key before it is sent; `None` once the ledger holds `KEYS_MAX` keys.
    fn attempt(&mut self, key: &str, partner: usize) -> Option<usize> {
        (self.entries.len() < KEYS_MAX).then(|| {
            self.entries.push(KeyEntry { key: key.to_owned(), partner, answer: None });
            self.entries.len() - 1
        })
    }

    fn answer(&mut self, index: usize, body: Bytes) {
        if self.entries[index].answer.replace(body).is_none() {
            self.acknowledged += 1;
        }
    }

    fn key(&self, index: usize) -> (String, usize) {
        (self.entries[index].key.clone(), self.entries[index].partner)
    }

    fn counts(&self) -> Counts {
        Counts { attempted: self.entries.len() as u64, acknowledged: self.acknowledged }
    }

    fn answers_of(&self, partner: usize) -> Vec<(String, Bytes)> {
        self.entries
            .iter()
            .filter(|entry| entry.partner == partner)
            .map(|entry| (entry.key.clone(), entry.answer.clone().unwrap_or_default()))
            .collect()
    }
}

#[derive(Default)]
pub(crate) struct Discrepancies {
    pub count: AtomicU64,
    shown: Mutex<usize>,
}

impl Discrepancies {
    pub(crate) fn report(&self, message: String) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut shown = self.shown.lock();
        if *shown < DISCREPANCIES_SHOWN {
            *shown += 1;
            eprintln!("DISCREPANCY: {message}");
        }
    }
}

/// How to start the server under test; the secrets are fresh for each run and reach the
/// child through its environment only (never argv, never the log).
struct ServerSpec {
    binary: PathBuf,
    backend: StoreBackend,
    data_dir: PathBuf,
    log: PathBuf,
    wal: bool,
    wal_apply_interval_ms: u64,
    admin_token: Secret,
    master_key: Secret,
}

struct Server {
    child: Child,
    address: SocketAddr,
}

impl ServerSpec {
    fn new(args: &CrashLoopArgs, work_dir: &Path) -> anyhow::Result<ServerSpec> {
        let binary = match &args.server_binary {
            Some(binary) => binary.clone(),
            None => server_beside(&std::env::current_exe().context("locating this binary")?)?,
        };
        Ok(ServerSpec {
            binary,
            backend: args.backend,
            data_dir: work_dir.join("data"),
            log: work_dir.join("server.log"),
            wal: !args.no_wal,
            wal_apply_interval_ms: args.wal_apply_interval_ms,
            admin_token: MasterKey::generate_hex(),
            master_key: MasterKey::generate_hex(),
        })
    }

    /// Starts the server on a free loopback port and waits until it answers `/healthz`.
    async fn start(&self) -> anyhow::Result<Server> {
        let address = TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).context("finding a free port")?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).with_context(|| format!("opening {}", self.log.display()))?;
        let mut child = Command::new(&self.binary)
            .args(["serve", "--store", self.backend.as_str(), "--listen", &address.to_string(), "--data-dir"])
            .arg(&self.data_dir)
            .env("REWARD_ADMIN_TOKEN", self.admin_token.expose())
            .env("REWARD_MASTER_KEY", self.master_key.expose())
            .env("REWARD_LOG", "warn")
            .env("REWARD_WAL_ENABLED", self.wal.to_string())
            .env("REWARD_WAL_APPLY_INTERVAL_MS", self.wal_apply_interval_ms.to_string())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        wait_healthy(&mut child, address, "the server", &self.log).await?;
        Ok(Server { child, address })
    }
}

impl Server {
    /// SIGKILL (what `Child::start_kill` sends on Unix), then reap the process.
    async fn kill(mut self) -> anyhow::Result<()> {
        self.child.start_kill().context("killing the server")?;
        self.child.wait().await.context("waiting for the killed server")?;
        Ok(())
    }
}

/// Until the child `name` answers `/healthz` at `address` (bounded by `STARTUP_TIMEOUT`); its
/// exit while starting fails, pointing at its `log`.
pub(crate) async fn wait_healthy(child: &mut Child, address: SocketAddr, name: &str, log: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    while !healthy(address).await {
        if let Some(status) = child.try_wait()? {
            bail!("{name} exited ({status}) while starting; see {}", log.display());
        }
        if started.elapsed() > STARTUP_TIMEOUT {
            bail!("{name} did not answer /healthz within {STARTUP_TIMEOUT:?}; see {}", log.display());
        }
        tokio::time::sleep(HEALTH_POLL).await;
    }
    Ok(())
}

/// The `reward-engine` binary in the same directory as `this_binary`: cargo builds both
/// packages' binaries into one `target/<profile>/`, and the scripts build both at once.
pub(crate) fn server_beside(this_binary: &Path) -> anyhow::Result<PathBuf> {
    let server = this_binary.with_file_name(SERVER_BINARY);
    if !server.is_file() {
        bail!(
            "no {SERVER_BINARY} binary beside this one ({}): build it in the same profile (`cargo build -p reward-engine -p reward-bench`) or pass --server-binary",
            server.display()
        );
    }
    Ok(server)
}

async fn healthy(address: SocketAddr) -> bool {
    let Ok(mut connection) = Connection::connect(address).await else { return false };
    let request = connection.request(Method::GET, "/healthz", &[], Bytes::new());
    matches!(tokio::time::timeout(REQUEST_TIMEOUT, request).await, Ok(Ok(response)) if response.status == 200)
}

/// SplitMix64 (Steele, Lea, Flood 2014): a seeded generator whose sequence is fixed by its
/// definition, so a seed names the same kill schedule on every build and platform.
pub(crate) struct SplitMix64(pub u64);

impl SplitMix64 {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut mixed = self.0;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^ (mixed >> 31)
    }

    /// Uniform in `low..=high` (the modulo bias is below 2⁻⁴⁰ for these ranges).
    pub(crate) fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // The first outputs for seed 0 from the reference implementation (Vigna's splitmix64.c).
        let mut generator = SplitMix64(0);
        assert_eq!([generator.next(), generator.next(), generator.next()], [0xe220_a839_7b1d_cdaf, 0x6e78_9e6a_a1b9_65f4, 0x06c4_5d18_8009_454f]);
    }

    #[test]
    fn a_key_always_asks_for_the_same_action() {
        let (body, tokens) = action_body("cl1-0-3-7");
        assert_eq!(action_body("cl1-0-3-7"), (body.clone(), tokens));
        assert!((1..=100).contains(&tokens));
        let parsed: serde_json::Value = serde_json::from_str(&body).expect("the body is JSON");
        assert_eq!(parsed["amount"], tokens);
        assert_eq!(parsed["idempotencyKey"], "cl1-0-3-7");
    }

    #[test]
    fn the_ledger_stops_at_its_bound_and_counts_each_answer_once() {
        let mut ledger = Ledger::default();
        let index = ledger.attempt("a", 0).expect("room");
        ledger.answer(index, Bytes::from_static(b"{}"));
        ledger.answer(index, Bytes::from_static(b"{}"));
        assert_eq!((ledger.counts().attempted, ledger.counts().acknowledged), (1, 1));
        ledger.entries.resize_with(KEYS_MAX, || KeyEntry { key: String::new(), partner: 0, answer: None });
        assert_eq!(ledger.attempt("b", 0), None);
    }

    #[test]
    fn the_default_server_is_the_reward_engine_beside_this_binary() {
        let profile = tempfile::tempdir().expect("temp dir");
        let this_binary = profile.path().join("reward-bench");
        let missing = server_beside(&this_binary).expect_err("no server built yet");
        assert!(missing.to_string().contains("--server-binary"), "{missing}");
        std::fs::write(profile.path().join("reward-engine"), b"").expect("a stand-in server");
        assert_eq!(server_beside(&this_binary).expect("found"), profile.path().join("reward-engine"));
    }
}
