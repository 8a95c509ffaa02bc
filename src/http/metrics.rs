//! HTTP metrics: requests by route template, method and status, and their latency. The
//! route label is the matched template (`/v1/partner/actions/{action_id}`), never the raw
//! path, so its cardinality is the number of routes.
//!
//! Per-partner series are bounded: requests are counted per (partner, environment) in
//! memory (at most `PARTNERS_TRACKED_MAX`; past it the quietest half is forgotten), and
//! each scrape publishes only the `TOP_PARTNERS` busiest as
//! `reward_partner_requests{partner,environment}`, replacing the previous set.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::HashMap;

use parking_lot::Mutex;
use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use reward_actors::api::common::PartnerEnv;

use super::AppState;

pub struct HttpMetrics {
    /// `reward_http_requests_total{route,method,status}`.
    pub requests: IntCounterVec,
    /// `reward_http_request_seconds{route}`: from the first byte read to the answer.
    pub latency: HistogramVec,
    /// `reward_partner_requests{partner,environment}`: the busiest partners' request counts.
    pub top_partners: IntGaugeVec,
    partner_volume: Mutex<HashMap<PartnerEnv, u64>>,
    /// Held from publishing the top partners to gathering, so concurrent scrapes (the
    /// dashboard and Prometheus) never see a half-published set.
    pub scrape: Mutex<()>,
    /// Cluster mode only: `reward_cluster_forwarded_requests_total{outcome}` and
    /// `reward_cluster_forward_seconds` (the hop to the owner and its whole answer).
    forwarding: Option<(IntCounterVec, Histogram)>,
}

/// Partners whose volume is tracked in memory, and how many are published.
const PARTNERS_TRACKED_MAX: usize = 10_000;
pub const TOP_PARTNERS: usize = 20;

impl HttpMetrics {
    /// [`HttpMetrics::register`] plus the forwarding series of a cluster node.
    pub fn register_cluster(registry: &Registry) -> HttpMetrics {
        let forwarded = IntCounterVec::new(
            Opts::new("reward_cluster_forwarded_requests_total", "Requests forwarded to their shard's owner, by outcome."),
            &["outcome"],
        )
        .expect("valid metric");
        let buckets = prometheus::exponential_buckets(0.000_1, 2.0, 16).expect("valid buckets");
        let seconds =
            Histogram::with_opts(HistogramOpts::new("reward_cluster_forward_seconds", "A forwarded request's hop and answer.").buckets(buckets))
                .expect("valid metric");
        registry.register(Box::new(forwarded.clone())).expect("metric names are unique");
        registry.register(Box::new(seconds.clone())).expect("metric names are unique");
        HttpMetrics { forwarding: Some((forwarded, seconds)), ..HttpMetrics::register(registry) }
    }

    /// Counts a forward (`forwarded`, `retried` after reading the owner again, `unreachable`,
    /// `no_owner`) and times it.
    pub fn forwarded(&self, outcome: &str, elapsed: std::time::Duration) {
        if let Some((count, seconds)) = &self.forwarding {
            count.with_label_values(&[outcome]).inc();
            seconds.observe(elapsed.as_secs_f64());
        }
    }

    pub fn register(registry: &Registry) -> HttpMetrics {
        let requests =
            IntCounterVec::new(Opts::new("reward_http_requests_total", "HTTP requests by route, method and status."), &["route", "method", "status"])
                .expect("valid metric");
        let buckets = prometheus::exponential_buckets(0.000_1, 2.0, 16).expect("valid buckets");
        let latency =
            HistogramVec::new(HistogramOpts::new("reward_http_request_seconds", "HTTP request latency by route.").buckets(buckets), &["route"])
                .expect("valid metric");
        let top_partners = IntGaugeVec::new(
            Opts::new("reward_partner_requests", "Requests since start of the busiest partners (only the top 20 are published)."),
            &["partner", "environment"],
        )
        .expect("valid metric");
        registry.register(Box::new(requests.clone())).expect("metric names are unique");
        registry.register(Box::new(latency.clone())).expect("metric names are unique");
        registry.register(Box::new(top_partners.clone())).expect("metric names are unique");
        HttpMetrics { requests, latency, top_partners, partner_volume: Mutex::new(HashMap::new()), scrape: Mutex::new(()), forwarding: None }
    }

    fn count_partner(&self, partner_env: PartnerEnv) {
        let mut volume = self.partner_volume.lock();
        *volume.entry(partner_env).or_insert(0) += 1;
        if volume.len() > PARTNERS_TRACKED_MAX {
            // Forget the quieter half exactly (ties broken arbitrarily), keeping the rest.
            let mut ranked: Vec<(PartnerEnv, u64)> = volume.drain().collect();
            ranked.sort_unstable_by_key(|entry| std::cmp::Reverse(entry.1));
            ranked.truncate(PARTNERS_TRACKED_MAX / 2);
            volume.extend(ranked);
        }
    }

    /// Publishes the busiest partners (called before each scrape).
    pub fn publish_top_partners(&self) {
        let volume = self.partner_volume.lock();
        let mut ranked: Vec<(&PartnerEnv, &u64)> = volume.iter().collect();
        ranked.sort_unstable_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        self.top_partners.reset();
        for (partner_env, count) in ranked.into_iter().take(TOP_PARTNERS) {
            let partner = partner_env.partner_id.to_hex();
            self.top_partners.with_label_values(&[partner.as_str(), partner_env.environment.as_str()]).set(i64::try_from(*count).unwrap_or(i64::MAX));
        }
    }
}

pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |path| path.as_str()).to_owned();
    // A fixed set: any other token a client sends is "other", so labels stay bounded.
    let method = match request.method().as_str() {
        known @ ("GET" | "POST" | "PATCH" | "PUT" | "DELETE" | "HEAD" | "OPTIONS") => known,
        _ => "other",
    }
    .to_owned();
    let response = next.run(request).await;
    let metrics = &state.metrics;
    metrics.requests.with_label_values(&[route.as_str(), method.as_str(), response.status().as_str()]).inc();
    metrics.latency.with_label_values(&[route.as_str()]).observe(started.elapsed().as_secs_f64());
    if let Some(partner_env) = super::request_id::current_caller() {
        metrics.count_partner(partner_env);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_busiest_partners_are_published() {
        let registry = Registry::new();
        let metrics = HttpMetrics::register(&registry);
        let partner =
            |index: usize| PartnerEnv::new(reward_actors::api::common::Id([index as u8; 12]), reward_actors::api::common::Environment::Sandbox);
        for index in 0..(TOP_PARTNERS + 10) {
            for _ in 0..=index {
                metrics.count_partner(partner(index));
            }
        }
        metrics.publish_top_partners();
        let families = registry.gather();
        let top = families.iter().find(|family| family.name() == "reward_partner_requests").expect("published");
        assert_eq!(top.get_metric().len(), TOP_PARTNERS);
        let busiest = partner(TOP_PARTNERS + 9).partner_id.to_hex();
        assert!(top.get_metric().iter().any(|metric| metric.get_label().iter().any(|label| label.value() == busiest)));
        let quietest = partner(0).partner_id.to_hex();
        assert!(!top.get_metric().iter().any(|metric| metric.get_label().iter().any(|label| label.value() == quietest)), "the quietest is not");
    }

    #[test]
    fn tracking_is_bounded() {
        let metrics = HttpMetrics::register(&Registry::new());
        for index in 0..(PARTNERS_TRACKED_MAX + 5) {
            let mut bytes = [0u8; 12];
            bytes[..8].copy_from_slice(&(index as u64).to_be_bytes());
            metrics.count_partner(PartnerEnv::new(reward_actors::api::common::Id(bytes), reward_actors::api::common::Environment::Production));
        }
        assert!(metrics.partner_volume.lock().len() <= PARTNERS_TRACKED_MAX);
    }
}
