//! Operations endpoints and metrics that move with traffic.

use bytes::Bytes;
use hyper::Method;
use reward_actors::store::StoreBackend;

use crate::support::{action_body, spawn_app};

fn metric(text: &str, series: &str) -> f64 {
    text.lines().find_map(|line| line.strip_prefix(series).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0.0)
}

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
    assert_eq!(metric(&after, submitted) - metric(&before, submitted), 3.0);
    let handled = r#"reward_actor_messages_total{message="submit_action"}"#;
    assert_eq!(metric(&after, handled) - metric(&before, handled), 3.0);
    for series in [
        "reward_actors_live",
        "reward_actor_mailbox_depth",
        "reward_commit_batch_write_sets_bucket",
        "reward_commit_seconds_bucket",
        "reward_http_request_seconds_bucket",
    ] {
        assert!(after.contains(series), "missing {series}");
    }
    app.shutdown().await;
}

crate::backend_tests!(health_readiness_and_metrics);
