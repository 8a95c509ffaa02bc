//! `reward-bench webhook-sink`: a webhook receiver for benchmarks. It answers every
//! delivery (after `--delay-ms`, with `--status`), counts them, measures each event's lag
//! from its `createdAt` to its arrival, and prints a line a second and a summary.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;

/// Distinct event ids remembered (past it, `distinctEvents` is a lower bound).
const EVENT_IDS_MAX: usize = 10_000_000;
/// Lags above this (ms) are recorded as this.
const LAG_MAX_MS: u64 = 3_600_000;

#[derive(Debug, Clone, clap::Args)]
pub struct SinkArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: String,
    /// Answer each delivery after this long (a slow endpoint).
    #[arg(long, default_value_t = 0)]
    pub delay_ms: u64,
    /// The status to answer (200; 503 for a failing endpoint).
    #[arg(long, default_value_t = 200)]
    pub status: u16,
    /// Stop after this many seconds (at most a day).
    #[arg(long, default_value_t = 60)]
    pub duration_secs: u64,
    /// Write the summary as JSON here.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SinkSummary {
    pub received: u64,
    pub distinct_events: u64,
    /// Deliveries per second over the busiest second.
    pub peak_per_sec: u64,
    /// Seconds from the first delivery to the last.
    pub active_secs: f64,
    pub lag_p50_ms: u64,
    pub lag_p99_ms: u64,
    pub lag_max_ms: u64,
    /// Deliveries per whole second since start (the throughput over time).
    pub per_second: BTreeMap<u64, u64>,
}

struct Sink {
    delay: Duration,
    status: StatusCode,
    started: Instant,
    received: AtomicU64,
    state: Mutex<SinkState>,
}

struct SinkState {
    lag_ms: Histogram<u64>,
    event_ids: std::collections::HashSet<String>,
    per_second: BTreeMap<u64, u64>,
    first: Option<Instant>,
    last: Option<Instant>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
}

async fn receive(State(sink): State<Arc<Sink>>, body: Bytes) -> StatusCode {
    let arrived = Instant::now();
    let envelope: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let created_ms = envelope["createdAt"].as_str().and_then(reward_actors::api::common::parse_timestamp);
    sink.received.fetch_add(1, Ordering::Relaxed);
    {
        let mut state = sink.state.lock();
        if let Some(created_ms) = created_ms {
            let _ = state.lag_ms.record(now_ms().saturating_sub(created_ms).min(LAG_MAX_MS));
        }
        if let Some(id) = envelope["id"].as_str().filter(|_| state.event_ids.len() < EVENT_IDS_MAX) {
            state.event_ids.insert(id.to_owned());
        }
        *state.per_second.entry(arrived.duration_since(sink.started).as_secs()).or_insert(0) += 1;
        state.first.get_or_insert(arrived);
        state.last = Some(arrived);
    }
    if !sink.delay.is_zero() {
        tokio::time::sleep(sink.delay).await;
    }
    sink.status
}

pub async fn run(args: SinkArgs) -> anyhow::Result<SinkSummary> {
    anyhow::ensure!((1..=86_400).contains(&args.duration_secs), "--duration-secs must be 1 to 86400");
    let status = StatusCode::from_u16(args.status).context("--status must be an HTTP status")?;
    let address: SocketAddr = args.listen.parse().with_context(|| format!("--listen {} is not an address", args.listen))?;
    let sink = Arc::new(Sink {
        delay: Duration::from_millis(args.delay_ms),
        status,
        started: Instant::now(),
        received: AtomicU64::new(0),
        state: Mutex::new(SinkState {
            lag_ms: Histogram::new_with_bounds(1, LAG_MAX_MS, 3).expect("valid bounds"),
            event_ids: std::collections::HashSet::new(),
            per_second: BTreeMap::new(),
            first: None,
            last: None,
        }),
    });
    let app = axum::Router::new().fallback(receive).with_state(Arc::clone(&sink));
    let listener = tokio::net::TcpListener::bind(address).await.with_context(|| format!("listening on {address}"))?;
    eprintln!("webhook sink on {address}: answering {status} after {} ms, for {} s", args.delay_ms, args.duration_secs);
    let serving = tokio::spawn(async move { axum::serve(listener, app).await });
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    let mut previous = 0;
    let deadline = Instant::now() + Duration::from_secs(args.duration_secs);
    while Instant::now() < deadline {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        let received = sink.received.load(Ordering::Relaxed);
        let (p50, p99) = {
            let state = sink.state.lock();
            (state.lag_ms.value_at_quantile(0.5), state.lag_ms.value_at_quantile(0.99))
        };
        eprintln!(
            "[{:>4}s] {received:>10} deliveries  {:>7}/s  lag p50 {p50} ms  p99 {p99} ms",
            sink.started.elapsed().as_secs(),
            received - previous
        );
        previous = received;
    }
    serving.abort();
    let state = sink.state.lock();
    let summary = SinkSummary {
        received: sink.received.load(Ordering::Relaxed),
        distinct_events: state.event_ids.len() as u64,
        peak_per_sec: state.per_second.values().copied().max().unwrap_or(0),
        active_secs: state.first.zip(state.last).map_or(0.0, |(first, last)| last.duration_since(first).as_secs_f64()),
        lag_p50_ms: state.lag_ms.value_at_quantile(0.5),
        lag_p99_ms: state.lag_ms.value_at_quantile(0.99),
        lag_max_ms: state.lag_ms.max(),
        per_second: state.per_second.clone(),
    };
    println!(
        "webhook sink: {} deliveries ({} distinct events), peak {}/s, lag p50 {} ms p99 {} ms max {} ms",
        summary.received, summary.distinct_events, summary.peak_per_sec, summary.lag_p50_ms, summary.lag_p99_ms, summary.lag_max_ms
    );
    if let Some(path) = &args.json_out {
        std::fs::write(path, serde_json::to_vec_pretty(&summary)?).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(summary)
}
