//! `reward-bench loadgen`: provisions its own partners through the admin API, then signs
//! unique actions for many partners (or one hot partner) over N keep-alive connections,
//! showing progress each second and ending with throughput, latency percentiles and the
//! count of each status. `--target hello` sends the same signed requests to a bare axum
//! server (`reward-bench hello-server`): the HTTP ceiling of the machine.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use hyper::Method;
use reward_actors::api::common::Secret;
use serde::{Deserialize, Serialize};
use serde_json::json;

use reward_engine::sign_cli::{SigningCredentials, sign_request};

use crate::client::Connection;

/// Bounds on a run: a load test is always finite.
const CONNECTIONS_MAX: usize = 4_096;
const PARTNERS_MAX: usize = 100_000;
const DURATION_SECS_MAX: u64 = 3_600;
const REQUESTS_MAX: u64 = 1_000_000_000;
/// Tokens one action at 49.99 USD earns: pools are sized from it.
const TOKENS_PER_ACTION: u64 = 50;
/// Latency histogram range: 1 µs to 60 s, three significant digits.
const LATENCY_MAX_MICROS: u64 = 60_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The reward engine: partners are provisioned through the admin API first.
    Engine,
    /// A `reward-bench hello-server`: no provisioning, the same requests.
    Hello,
}

#[derive(Debug, Clone, clap::Args)]
pub struct LoadgenArgs {
    /// Base URL of the server under test (plain HTTP).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// More nodes of the same cluster: connections are spread over `--url` and these, round
    /// robin (partners are provisioned through `--url`).
    #[arg(long)]
    pub also_url: Vec<String>,
    /// Partners to spread the load over.
    #[arg(long, default_value_t = 100)]
    pub partners: usize,
    /// Load one hot partner (the same as --partners 1).
    #[arg(long)]
    pub hot: bool,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Stop after this many requests (before the duration if it comes first).
    #[arg(long)]
    pub requests: Option<u64>,
    /// What is under test.
    #[arg(long, value_enum, default_value = "engine")]
    pub target: Target,
    /// Stakeholders per action.
    #[arg(long, default_value_t = 1)]
    pub stakeholders: usize,
    /// Distinct users per partner that actions reward.
    #[arg(long, default_value_t = 10_000)]
    pub users: u64,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// No progress lines (the summary is still printed).
    #[arg(long)]
    pub quiet: bool,
    /// Pace the load to this many requests per second in all (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Register a webhook endpoint (all events) at this URL for every partner.
    #[arg(long)]
    pub webhook_url: Option<String>,
    /// More endpoints for the first partner only (a slow or dead one, for isolation runs).
    #[arg(long)]
    pub extra_webhook_url: Vec<String>,
    /// Also write a self-contained HTML report (throughput over time, latency
    /// distribution, statuses) to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub target: Target,
    pub connections: usize,
    pub partners: usize,
    pub duration_secs: f64,
    pub requests: u64,
    pub requests_per_sec: f64,
    pub succeeded: u64,
    pub succeeded_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub statuses: BTreeMap<String, u64>,
}

struct Plan {
    /// Worker `i` connects to `addresses[i % len]`.
    addresses: Vec<SocketAddr>,
    partners: Vec<SigningCredentials>,
    run_id: String,
    stakeholders: usize,
    users: u64,
    connections: usize,
    deadline: Instant,
    requests: Option<u64>,
    /// Each worker's pause between requests when the load is paced.
    pace: Option<Duration>,
}

#[derive(Default)]
struct Progress {
    issued: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    done: AtomicBool,
}

struct WorkerReport {
    latency: Histogram<u64>,
    statuses: BTreeMap<String, u64>,
}

pub async fn run(args: LoadgenArgs) -> anyhow::Result<Summary> {
    let partner_count = if args.hot { 1 } else { args.partners };
    check_bounds(&args, partner_count)?;
    let address = resolve(&args.url)?;
    let run_id = format!("{:x}", SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis()));
    let partners = match args.target {
        Target::Engine => {
            // From the environment only: a secret on the command line shows in `ps`.
            let token = std::env::var("REWARD_ADMIN_TOKEN")
                .ok()
                .filter(|token| !token.is_empty())
                .context("provisioning needs the admin token in REWARD_ADMIN_TOKEN")?;
            let pool_tokens = pool_size(&args, partner_count);
            eprintln!("provisioning {partner_count} partner(s) with {pool_tokens} tokens each …");
            let partners = provision(address, &Secret::new(token), partner_count, pool_tokens, &format!("loadgen {run_id}")).await?;
            if let Some(url) = &args.webhook_url {
                register_webhooks(address, &partners, url, &args.extra_webhook_url).await?;
            }
            partners
        }
        Target::Hello => {
            vec![SigningCredentials { secret_key: Secret::new(format!("sk_test_{}", "0".repeat(64))), hmac_secret: Secret::new("0".repeat(64)) }]
        }
    };
    let mut addresses = vec![address];
    for url in &args.also_url {
        addresses.push(resolve(url)?);
    }
    let plan = Arc::new(Plan {
        addresses,
        partners,
        run_id,
        stakeholders: args.stakeholders,
        users: args.users,
        connections: args.connections,
        deadline: Instant::now() + Duration::from_secs(args.duration_secs),
        requests: args.requests,
        pace: (args.rate > 0).then(|| Duration::from_secs_f64(args.connections as f64 / args.rate as f64)),
    });
    let progress = Arc::new(Progress::default());
    let started = Instant::now();
    let reporter = tokio::spawn(report_progress(Arc::clone(&progress), started, !args.quiet));
    let workers: Vec<_> = (0..args.connections).map(|worker| tokio::spawn(run_worker(worker, Arc::clone(&plan), Arc::clone(&progress)))).collect();
    let mut latency = Histogram::<u64>::new_with_bounds(1, LATENCY_MAX_MICROS, 3).expect("valid histogram bounds");
    let mut statuses = BTreeMap::new();
    for worker in workers {
        let report = worker.await.context("a load worker panicked")?;
        latency.add(&report.latency).expect("histograms share their bounds");
        for (status, count) in report.statuses {
            *statuses.entry(status).or_insert(0) += count;
        }
    }
    progress.done.store(true, Ordering::Relaxed);
    let samples = reporter.await.unwrap_or_default();
    let elapsed = started.elapsed().as_secs_f64();
    let succeeded: u64 = statuses.iter().filter(|(status, _)| status.starts_with('2')).map(|(_, count)| count).sum();
    let quantile_ms = |quantile: f64| latency.value_at_quantile(quantile) as f64 / 1000.0;
    let summary = Summary {
        target: args.target,
        connections: args.connections,
        partners: partner_count,
        duration_secs: elapsed,
        requests: latency.len(),
        requests_per_sec: latency.len() as f64 / elapsed,
        succeeded,
        succeeded_per_sec: succeeded as f64 / elapsed,
        p50_ms: quantile_ms(0.5),
        p99_ms: quantile_ms(0.99),
        p999_ms: quantile_ms(0.999),
        max_ms: latency.max() as f64 / 1000.0,
        statuses,
    };
    print_summary(&summary);
    if let Some(path) = &args.report {
        let title = format!("reward-bench loadgen → {}", args.url);
        std::fs::write(path, crate::report::render(&summary, &samples, &latency, &title)).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    if let Some(path) = &args.json_out {
        std::fs::write(path, serde_json::to_vec_pretty(&summary)?).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(summary)
}

fn check_bounds(args: &LoadgenArgs, partner_count: usize) -> anyhow::Result<()> {
    if !(1..=CONNECTIONS_MAX).contains(&args.connections) {
        bail!("--connections must be 1 to {CONNECTIONS_MAX}");
    }
    if !(1..=PARTNERS_MAX).contains(&partner_count) {
        bail!("--partners must be 1 to {PARTNERS_MAX}");
    }
    if !(1..=DURATION_SECS_MAX).contains(&args.duration_secs) {
        bail!("--duration-secs must be 1 to {DURATION_SECS_MAX}");
    }
    if args.requests.is_some_and(|requests| !(1..=REQUESTS_MAX).contains(&requests)) {
        bail!("--requests must be 1 to {REQUESTS_MAX}");
    }
    if !(1..=20).contains(&args.stakeholders) || args.users < args.stakeholders as u64 {
        bail!("--stakeholders must be 1 to 20, and --users at least that many");
    }
    Ok(())
}

/// Tokens per partner pool: enough for the whole run at up to 200,000 actions/s.
fn pool_size(args: &LoadgenArgs, partner_count: usize) -> u64 {
    let actions = args.requests.unwrap_or(args.duration_secs * 200_000);
    let per_partner = actions.div_ceil(partner_count as u64) + 1_000;
    (per_partner * TOKENS_PER_ACTION).min(reward_actors::api::common::TOKENS_MAX)
}

fn resolve(url: &str) -> anyhow::Result<SocketAddr> {
    let authority = url.strip_prefix("http://").context("--url must start with http:// (the load generator speaks plain HTTP)")?;
    let authority = authority.trim_end_matches('/');
    authority.to_socket_addrs().with_context(|| format!("resolving {authority}"))?.next().with_context(|| format!("{authority} has no address"))
}

async fn admin_call(
    connection: &mut Connection,
    token: &Secret,
    method: Method,
    path: &str,
    body: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let authorization = format!("Bearer {}", token.expose());
    let headers = [("authorization", authorization.as_str()), ("content-type", "application/json")];
    let response = connection.request(method.clone(), path, &headers, Bytes::from(serde_json::to_vec(&body)?)).await?;
    if !(200..300).contains(&response.status) {
        bail!("{method} {path} answered {}: {}", response.status, String::from_utf8_lossy(&response.body));
    }
    Ok(response.json())
}

/// Creates `count` ACTIVE partners with CUSTOM limits, a sandbox key pair and a pool each,
/// named `"{label} {index}"` (also the crash loop's partners).
pub(crate) async fn provision(
    address: SocketAddr,
    token: &Secret,
    count: usize,
    pool_tokens: u64,
    label: &str,
) -> anyhow::Result<Vec<SigningCredentials>> {
    let mut connection = Connection::connect(address).await.with_context(|| format!("connecting to {address}"))?;
    let mut partners = Vec::with_capacity(count);
    for index in 0..count {
        let partner = admin_call(
            &mut connection,
            token,
            Method::POST,
            "/api/v1/admin/partners",
            json!({ "name": format!("{label} {index}"), "contactEmail": "loadgen@example.com", "tier": "CUSTOM", "rateLimit": { "hourly": 1_000_000_000, "perMinute": 1_000_000_000 } }),
        )
        .await?;
        let partner_id = partner["id"].as_str().context("partner without id")?.to_owned();
        admin_call(&mut connection, token, Method::PATCH, &format!("/api/v1/admin/partners/{partner_id}"), json!({ "status": "ACTIVE" })).await?;
        let key = admin_call(
            &mut connection,
            token,
            Method::POST,
            &format!("/api/v1/admin/partners/{partner_id}/keys"),
            json!({ "environment": "sandbox", "name": "loadgen" }),
        )
        .await?;
        let pool_body = json!({ "environment": "sandbox", "tokens": pool_tokens, "idempotencyKey": format!("{}-{index}", label.replace(' ', "-")) });
        admin_call(&mut connection, token, Method::POST, &format!("/api/v1/admin/partners/{partner_id}/token-pools"), pool_body).await?;
        let text = |field: &str| key[field].as_str().map(|value| Secret::new(value.to_owned())).with_context(|| format!("key without {field}"));
        partners.push(SigningCredentials { secret_key: text("secretKey")?, hmac_secret: text("hmacSecret")? });
    }
    Ok(partners)
}

/// One endpoint (all events) per partner at `url`, and the `extra` ones on the first.
pub(crate) async fn register_webhooks(address: SocketAddr, partners: &[SigningCredentials], url: &str, extra: &[String]) -> anyhow::Result<()> {
    const PATH: &str = "/v1/partner/webhooks";
    let mut connection = Connection::connect(address).await.with_context(|| format!("connecting to {address}"))?;
    for (index, partner) in partners.iter().enumerate() {
        let urls = std::iter::once(url).chain(extra.iter().map(String::as_str).filter(|_| index == 0));
        for endpoint_url in urls {
            let body = serde_json::to_vec(&json!({ "url": endpoint_url, "receiveAllEvents": true }))?;
            let now_secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs());
            let signed = sign_request(partner, "POST", PATH, &body, now_secs);
            let headers = [
                ("x-partner-key", signed.partner_key.as_str()),
                ("x-timestamp", signed.timestamp.as_str()),
                ("x-signature", signed.signature.as_str()),
                ("content-type", "application/json"),
            ];
            let response = connection.request(Method::POST, PATH, &headers, Bytes::from(body)).await?;
            if response.status != 201 {
                bail!("registering webhook {endpoint_url} answered {}: {}", response.status, String::from_utf8_lossy(&response.body));
            }
        }
    }
    eprintln!("registered webhook endpoints at {url} for {} partner(s) (+{} on the first)", partners.len(), extra.len());
    Ok(())
}

fn action_body(plan: &Plan, worker: usize, sequence: u64) -> String {
    let first_user = (worker as u64).wrapping_mul(7_919).wrapping_add(sequence.wrapping_mul(104_729)) % plan.users;
    let stakeholders: Vec<String> = (0..plan.stakeholders as u64)
        .map(|offset| format!(r#"{{"stakeholderTypeCode":"CUSTOMER","partnerUserId":"user_{}"}}"#, (first_user + offset) % plan.users))
        .collect();
    format!(
        r#"{{"idempotencyKey":"lg-{}-{worker}-{sequence}","actionType":"PURCHASE","amount":49.99,"currency":"USD","stakeholders":[{}]}}"#,
        plan.run_id,
        stakeholders.join(",")
    )
}

async fn run_worker(worker: usize, plan: Arc<Plan>, progress: Arc<Progress>) -> WorkerReport {
    const PATH: &str = "/v1/partner/actions/submit";
    let mut latency = Histogram::<u64>::new_with_bounds(1, LATENCY_MAX_MICROS, 3).expect("valid histogram bounds");
    let mut statuses = BTreeMap::new();
    let mut connection = None;
    let mut sequence = 0u64;
    let mut pacer = plan.pace.map(|pace| {
        // Workers start spread over one period, so the paced load is smooth.
        let offset = pace.mul_f64(worker as f64 / plan.connections as f64);
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + offset, pace);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    while Instant::now() < plan.deadline {
        if let Some(pacer) = pacer.as_mut() {
            pacer.tick().await;
            if Instant::now() >= plan.deadline {
                break;
            }
        }
        if plan.requests.is_some_and(|requests| progress.issued.fetch_add(1, Ordering::Relaxed) >= requests) {
            break;
        }
        if connection.as_ref().is_none_or(Connection::is_closed) {
            match Connection::connect(plan.addresses[worker % plan.addresses.len()]).await {
                Ok(fresh) => connection = Some(fresh),
                Err(_) => {
                    *statuses.entry("connect_error".to_owned()).or_insert(0) += 1;
                    progress.failed.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let partner = &plan.partners[(worker + sequence as usize * plan.connections) % plan.partners.len()];
        let body = action_body(&plan, worker, sequence);
        sequence += 1;
        let now_secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs());
        let signed = sign_request(partner, "POST", PATH, body.as_bytes(), now_secs);
        let headers = [
            ("x-partner-key", signed.partner_key.as_str()),
            ("x-timestamp", signed.timestamp.as_str()),
            ("x-signature", signed.signature.as_str()),
            ("content-type", "application/json"),
        ];
        let started = Instant::now();
        let answer = connection.as_mut().expect("connected above").request(Method::POST, PATH, &headers, Bytes::from(body)).await;
        let micros = (started.elapsed().as_micros() as u64).clamp(1, LATENCY_MAX_MICROS);
        let status = match answer {
            Ok(response) if response.status == 200 => "200".to_owned(),
            Ok(response) => format!("{} {}", response.status, response.json()["code"].as_str().unwrap_or("")).trim_end().to_owned(),
            Err(_) => {
                connection = None;
                "transport_error".to_owned()
            }
        };
        if !status.starts_with('2') {
            progress.failed.fetch_add(1, Ordering::Relaxed);
        }
        latency.record(micros).expect("clamped into the histogram's range");
        *statuses.entry(status).or_insert(0) += 1;
        progress.completed.fetch_add(1, Ordering::Relaxed);
    }
    WorkerReport { latency, statuses }
}

/// Samples progress once a second (printing it unless quiet) for the report; at most one
/// sample per second of the run, which is bounded by `DURATION_SECS_MAX`.
async fn report_progress(progress: Arc<Progress>, started: Instant, print: bool) -> Vec<crate::report::Sample> {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    let (mut previous, mut previous_failed) = (0, 0);
    let mut samples = Vec::new();
    while !progress.done.load(Ordering::Relaxed) && samples.len() < DURATION_SECS_MAX as usize + 60 {
        ticker.tick().await;
        let completed = progress.completed.load(Ordering::Relaxed);
        let failed = progress.failed.load(Ordering::Relaxed);
        if print {
            eprintln!("[{:>4.0}s] {completed:>10} requests  {:>8} req/s  {failed} not 2xx", started.elapsed().as_secs_f64(), completed - previous);
        }
        samples.push(crate::report::Sample {
            second: started.elapsed().as_secs(),
            completed: completed - previous,
            failed: failed - previous_failed,
        });
        (previous, previous_failed) = (completed, failed);
    }
    samples
}

fn print_summary(summary: &Summary) {
    println!(
        "\nloadgen → {:?}: {} connections, {} partner(s), {:.1} s\n  requests    {} ({:.0} req/s)\n  succeeded   {} ({:.0} /s)\n  latency ms  p50 {:.2}  p99 {:.2}  p999 {:.2}  max {:.2}",
        summary.target,
        summary.connections,
        summary.partners,
        summary.duration_secs,
        summary.requests,
        summary.requests_per_sec,
        summary.succeeded,
        summary.succeeded_per_sec,
        summary.p50_ms,
        summary.p99_ms,
        summary.p999_ms,
        summary.max_ms
    );
    let statuses: Vec<String> = summary.statuses.iter().map(|(status, count)| format!("{status}: {count}")).collect();
    println!("  statuses    {}", statuses.join("  "));
}
