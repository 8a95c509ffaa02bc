//! The engine's bounds seen from outside: a full commit queue is refused with 503 and
//! Retry-After, an acknowledgement that does not arrive in time is 504 (and a retry with the
//! same key tells the outcome), and an idle actor stops and its successor reloads its state.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use reward_actors::store::StoreBackend;

use crate::support::{action_body, eventually, instrumented_app};

async fn gated_app(
    backend: StoreBackend,
    tweak: fn(&mut reward_engine::config::Config),
) -> (crate::support::TestApp, Arc<crate::support::stores::InstrumentedStore>) {
    instrumented_app(backend, Some(Arc::new(tweak))).await
}

async fn a_full_commit_queue_answers_503_with_retry_after(backend: StoreBackend) {
    let (app, store) = gated_app(backend, |config| config.engine.commit_queue_max = 1).await;
    let partner = app.onboard_partner(1_000).await;
    let gate = store.hold_commits();
    let commits_before = store.commits_started.load(std::sync::atomic::Ordering::SeqCst);
    let first_partner = partner.clone();
    let first = tokio::spawn(async move { first_partner.submit(&action_body("queued", "1", "u")).await });
    // The first write set is in the committer, held at the gate: the queue is full.
    eventually(Duration::from_secs(5), || async { (store.commits_started.load(std::sync::atomic::Ordering::SeqCst) > commits_before).then_some(()) })
        .await;

    let overloaded = || async {
        let metrics = String::from_utf8_lossy(&app.raw(Method::GET, "/metrics", &[], Bytes::new()).await.body).into_owned();
        let series = r#"reward_engine_overloaded_total{reason="commit_queue"}"#;
        metrics.lines().find_map(|line| line.strip_prefix(series).and_then(|rest| rest.trim().parse::<u64>().ok())).unwrap_or(0)
    };
    let overloaded_before = overloaded().await;
    let refused = partner.submit(&action_body("refused", "1", "u")).await;
    assert_eq!(refused.status, 503, "{}", String::from_utf8_lossy(&refused.body));
    assert_eq!(refused.json()["code"], "OVERLOADED");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.json()["details"]["retryAfterSeconds"], 1);

    drop(gate);
    assert_eq!(first.await.expect("task").status, 200);
    // Refused means not done: the same key succeeds now.
    assert_eq!(partner.submit(&action_body("refused", "1", "u")).await.status, 200);
    assert_eq!(overloaded().await, overloaded_before + 1);
    app.shutdown().await;
}

async fn a_late_acknowledgement_is_504_and_a_retry_tells_the_outcome(backend: StoreBackend) {
    let (app, store) = gated_app(backend, |config| config.engine.commit_timeout_ms = 300).await;
    let partner = app.onboard_partner(1_000).await;
    let body = action_body("slow", "5", "u");
    let gate = store.hold_commits();
    let timed_out = partner.submit(&body).await;
    assert_eq!(timed_out.status, 504);
    assert_eq!(timed_out.json()["code"], "ENGINE_TIMEOUT");
    drop(gate);
    // The write was admitted and becomes durable; the retry replays it instead of paying again.
    let retried = eventually(Duration::from_secs(5), || async {
        let response = partner.submit(&body).await;
        (response.status != 504).then_some(response)
    })
    .await;
    assert_eq!(retried.status, 409);
    assert_eq!(retried.json()["code"], "IDEMPOTENT");
    assert_eq!(partner.pool().await["issuedTotal"], 5);
    app.shutdown().await;
}

async fn an_idle_actor_stops_and_its_successor_reloads(backend: StoreBackend) {
    let (app, _store) = gated_app(backend, |config| {
        config.engine.passivate_after_secs = 1;
        config.engine.idle_check_interval_ms = 100;
    })
    .await;
    let partner = app.onboard_partner(1_000).await;
    let body = action_body("before-idle", "10", "u");
    assert_eq!(partner.submit(&body).await.status, 200);
    let gauge = |text: &str, series: &str| {
        text.lines().find_map(|line| line.strip_prefix(series).and_then(|rest| rest.trim().parse::<f64>().ok())).unwrap_or(0.0)
    };
    eventually(Duration::from_secs(10), || async {
        let metrics = String::from_utf8_lossy(&app.raw(Method::GET, "/metrics", &[], Bytes::new()).await.body).into_owned();
        (gauge(&metrics, "reward_actors_stopped_total") >= 1.0).then_some(())
    })
    .await;
    // The successor loads the pool from the store and still knows the key.
    let replay = partner.submit(&body).await;
    assert_eq!(replay.json()["code"], "IDEMPOTENT");
    assert_eq!(partner.submit(&action_body("after-idle", "10", "u")).await.status, 200);
    assert_eq!(partner.pool().await["balance"], 980);
    assert_eq!(partner.balance("u").await.json()["available"], 20);
    app.shutdown().await;
}

crate::backend_tests!(
    a_full_commit_queue_answers_503_with_retry_after,
    a_late_acknowledgement_is_504_and_a_retry_tells_the_outcome,
    an_idle_actor_stops_and_its_successor_reloads
);
