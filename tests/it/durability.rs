//! Durability: over a store that logs when each commit returned (became durable) and can
//! hold commits at a gate, no client hears 200 before its write set is durable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reward_actors::store::StoreBackend;

use crate::support::{action_body, eventually, instrumented_app};

async fn an_answer_waits_for_its_commit(backend: StoreBackend) {
    let (app, store) = instrumented_app(backend, None).await;
    let partner = app.onboard_partner(10_000).await;
    let gate = store.hold_commits();
    let commits_before = store.commits_started.load(std::sync::atomic::Ordering::SeqCst);
    let waiting_partner = partner.clone();
    let submit = tokio::spawn(async move {
        let response = waiting_partner.submit(&action_body("gated", "49.99", "user_1")).await;
        (response, Instant::now())
    });
    // The committer has the write set and is held at the gate …
    eventually(Duration::from_secs(5), || async { (store.commits_started.load(std::sync::atomic::Ordering::SeqCst) > commits_before).then_some(()) })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!submit.is_finished(), "the client was answered before its commit was durable");
    assert!(store.durable_at("gated").is_none());
    // … and the answer comes only once the commit has returned.
    drop(gate);
    let (response, received_at) = submit.await.expect("task");
    assert_eq!(response.status, 200);
    let durable_at = store.durable_at("gated").expect("the submit's write set was committed");
    assert!(durable_at <= received_at);
    app.shutdown().await;
}

async fn every_acknowledgement_follows_its_durable_commit(backend: StoreBackend) {
    let (app, store) = instrumented_app(backend, None).await;
    let partner = Arc::new(app.onboard_partner(1_000_000).await);
    let tasks: Vec<_> = (0..200)
        .map(|index| {
            let partner = Arc::clone(&partner);
            tokio::spawn(async move {
                let key = format!("durable-{index}");
                let response = partner.submit(&action_body(&key, "3", &format!("user_{}", index % 13))).await;
                (key, response.status, Instant::now())
            })
        })
        .collect();
    let mut acknowledged = 0;
    for task in tasks {
        let (key, status, received_at) = task.await.expect("task");
        assert_eq!(status, 200);
        let durable_at = store.durable_at(&key).unwrap_or_else(|| panic!("{key} was acknowledged but never committed"));
        assert!(durable_at <= received_at, "{key} was acknowledged before its commit returned");
        acknowledged += 1;
    }
    assert_eq!(acknowledged, 200);
    let commits = store.log();
    let batched = commits.iter().filter(|entry| entry.idempotency_keys.len() > 1).count();
    eprintln!("{} commits for 200 submissions; {batched} carried more than one (group commit)", commits.len());
    app.shutdown().await;
}

crate::backend_tests!(an_answer_waits_for_its_commit, every_acknowledgement_follows_its_durable_commit);
