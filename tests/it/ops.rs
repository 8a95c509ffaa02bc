//! Operations endpoints and metrics that move with traffic.

use bytes::Bytes;
use hyper::Method;
use reward_actors::store::StoreBackend;

use crate::support::{action_body, metric, metric_or_zero, spawn_app};

async fn health_readiness_and_metrics(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let health = app.raw(Method::GET, "/healthz", &[], Bytes::new()).await;
    assert_eq!(health.status, 200);
    assert!(health.json()["serverTime"].as_u64().is_some_and(|time| time.abs_diff(crate::support::now_secs()) < 5));
    assert_eq!(app.raw(Method::GET, "/readyz", &[], Bytes::new()).await.json()["status"], "ready");

    let partner = app.onboard_partner(1_000).await;
    let before = String::from_utf8_lossy(&app.raw(Method::GET, "/metrics", &[], Bytes::new()).await.body).into_owned();
    for index in 0..3 {
        assert_eq!(partner.submit(&action_body(&format!("m-{index}"), "1", "u")).await.status, 200);
    }
    let after = String::from_utf8_lossy(&app.raw(Method::GET, "/metrics", &[], Bytes::new()).await.body).into_owned();
    let submitted = r#"reward_http_requests_total{method="POST",route="/v1/partner/actions/submit",status="200"}"#;
    assert_eq!(metric(&after, submitted) - metric_or_zero(&before, submitted), 3.0);
    let handled = r#"reward_actor_messages_total{message="submit_action"}"#;
    assert_eq!(metric(&after, handled) - metric_or_zero(&before, handled), 3.0);
    let timed = r#"reward_http_request_seconds_count{route="/v1/partner/actions/submit"}"#;
    assert_eq!(metric(&after, timed) - metric_or_zero(&before, timed), 3.0, "the latency histogram saw each request once");
    let handling = r#"reward_actor_message_seconds_count{message="submit_action"}"#;
    assert_eq!(metric(&after, handling) - metric_or_zero(&before, handling), 3.0);
    // Three write sets at least (each submit's); other writes may share the counter.
    assert!(metric(&after, "reward_commit_write_sets_total") - metric_or_zero(&before, "reward_commit_write_sets_total") >= 3.0);
    let per_partner = format!(r#"reward_partner_requests{{environment="sandbox",partner="{}"}}"#, partner.id);
    assert_eq!(metric(&after, &per_partner), 3.0, "the partner's own series counts its requests");
    // A refused request counts as its status, and in the 503/429 counters only when it is one.
    let refused = partner.signed(Method::POST, "/v1/partner/actions/submit", "{}").await;
    assert_eq!(refused.status, 400);
    let last = String::from_utf8_lossy(&app.raw(Method::GET, "/metrics", &[], Bytes::new()).await.body).into_owned();
    let invalid = r#"reward_http_requests_total{method="POST",route="/v1/partner/actions/submit",status="400"}"#;
    assert_eq!(metric(&last, invalid) - metric_or_zero(&after, invalid), 1.0);
    assert_eq!(metric(&last, "reward_rate_limited_total"), metric(&after, "reward_rate_limited_total"));
    // Made-up methods cannot grow the label set.
    for made_up in ["FOOBAR1", "FOOBAR2"] {
        let method = Method::from_bytes(made_up.as_bytes()).expect("a method token");
        assert_eq!(app.raw(method, "/healthz", &[], Bytes::new()).await.status, 405);
    }
    let labelled = String::from_utf8_lossy(&app.raw(Method::GET, "/metrics", &[], Bytes::new()).await.body).into_owned();
    assert!(!labelled.contains("FOOBAR"), "a client's method token became a label");
    assert_eq!(metric(&labelled, r#"reward_http_requests_total{method="other",route="/healthz",status="405"}"#), 2.0);
    for series in [
        "reward_actors_live",
        "reward_actor_mailbox_depth",
        "reward_commit_batch_write_sets_bucket",
        "reward_commit_seconds_bucket",
        "reward_http_request_seconds_bucket",
        "reward_webhook_deliveries_created_total",
        "reward_webhook_queued",
        "reward_webhook_in_flight",
        "reward_commit_queue_depth",
        "reward_idempotent_replays_total",
    ] {
        assert!(after.contains(series), "missing {series}");
    }
    app.shutdown().await;
}

crate::backend_tests!(health_readiness_and_metrics, the_operator_dashboard_is_self_contained_and_its_data_matches_metrics);

/// Every `reward_*` name in a text, without the histogram suffixes.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("reward_") {
        let tail = &rest[start..];
        let end = tail.find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')).unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_count", "_sum"].iter().find_map(|suffix| name.strip_suffix(suffix)).unwrap_or(name);
        // Crate and module paths (`reward_actors::…`, `reward_engine::…`) are not metrics.
        if !tail[end..].starts_with("::") && base.len() > "reward_".len() {
            names.insert(base.to_owned());
        }
        rest = &tail[end..];
    }
    names
}

/// The names the code registers: string literals `"reward_…"` in the sources.
fn registered_metrics() -> std::collections::BTreeSet<String> {
    fn visit(dir: &std::path::Path, names: &mut std::collections::BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).expect("source dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                visit(&path, names);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                let text = std::fs::read_to_string(&path).expect("source");
                for literal in text.split('"').skip(1).step_by(2) {
                    if literal.starts_with("reward_") && literal.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                        names.insert(literal.to_owned());
                    }
                }
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut names = std::collections::BTreeSet::new();
    visit(&root.join("src"), &mut names);
    visit(&root.join("actors/src"), &mut names);
    names
}

#[test]
fn dashboards_alerts_and_the_catalog_name_only_real_metrics() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let registered = registered_metrics();
    assert!(registered.len() >= 20, "found the registrations: {registered:?}");
    let catalog = metric_names(&std::fs::read_to_string(root.join("METRICS.md")).expect("METRICS.md"));
    let undocumented: Vec<_> = registered.difference(&catalog).collect();
    assert!(undocumented.is_empty(), "registered but not in METRICS.md: {undocumented:?}");
    for file in ["METRICS.md", "ops/grafana/reward-engine.json", "ops/prometheus/alerts.yml"] {
        let named = metric_names(&std::fs::read_to_string(root.join(file)).expect("file"));
        let unknown: Vec<_> = named.difference(&registered).collect();
        assert!(unknown.is_empty(), "{file} names metrics the engine does not export: {unknown:?}");
    }
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("ops/grafana/reward-engine.json")).expect("json")).expect("valid JSON");
    assert!(dashboard["panels"].as_array().is_some_and(|panels| panels.len() >= 10));
}

async fn the_operator_dashboard_is_self_contained_and_its_data_matches_metrics(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let page = app.raw(Method::GET, "/admin/dashboard", &[], Bytes::new()).await;
    assert_eq!(page.status, 200);
    let html = String::from_utf8_lossy(&page.body).into_owned();
    assert!(html.contains("<canvas") && html.contains("sessionStorage"), "charts, and the token kept for the session only");
    assert!(!html.contains("localStorage") && !html.contains("document.cookie"), "the token is stored nowhere else");
    for external in ["http://", "https://", "src=\"//", "<link"] {
        assert!(!html.contains(external), "no external asset ({external})");
    }
    let policy = page.headers.get("content-security-policy").and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned();
    assert!(policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"), "{policy}");

    assert_eq!(app.raw(Method::GET, "/api/v1/admin/metrics", &[], Bytes::new()).await.status, 401, "the data needs the admin token");
    let partner = app.onboard_partner(1_000).await;
    for index in 0..4 {
        assert_eq!(partner.submit(&action_body(&format!("d-{index}"), "1", "u")).await.status, 200);
    }
    let data = app.admin(Method::GET, "/api/v1/admin/metrics", serde_json::Value::Null).await.json();
    let text = String::from_utf8_lossy(&app.raw(Method::GET, "/metrics", &[], Bytes::new()).await.body).into_owned();
    let submitted = r#"reward_http_requests_total{method="POST",route="/v1/partner/actions/submit",status="200"}"#;
    let from_json = data["metrics"]["reward_http_requests_total"]["series"]
        .as_array()
        .expect("series")
        .iter()
        .filter(|series| series["labels"]["route"] == "/v1/partner/actions/submit" && series["labels"]["status"] == "200")
        .map(|series| series["value"].as_f64().unwrap_or(0.0))
        .sum::<f64>();
    assert_eq!(from_json, 4.0);
    assert_eq!(metric(&text, submitted), from_json);
    let latency = &data["metrics"]["reward_http_request_seconds"];
    assert_eq!(latency["type"], "histogram");
    assert!(latency["series"][0]["buckets"].as_array().is_some_and(|buckets| !buckets.is_empty()));
    app.shutdown().await;
}
