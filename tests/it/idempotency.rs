//! Idempotency: a completed key replays forever (409 IDEMPOTENT with the original body),
//! a reused key with another request is refused, and concurrent duplicates issue once.

use reward_actors::store::StoreBackend;
use std::sync::Arc;

use serde_json::Value;

use crate::support::{action_body, spawn_app};

async fn a_replay_answers_409_idempotent_with_the_original_body(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(1_000).await;
    let body = action_body("order_1", "49.99", "user_42");
    let original = partner.submit(&body).await;
    assert_eq!(original.status, 200);

    let replay = partner.submit(&body).await;
    assert_eq!(replay.status, 409);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    let replay_body = replay.json();
    assert_eq!(replay_body["code"], "IDEMPOTENT");
    assert_eq!(replay_body["statusCode"], 409);
    assert_eq!(replay_body["details"]["originalResponse"], original.json());
    assert_eq!(replay_body["details"]["originalRequestId"].as_str(), original.header("x-request-id"));
    assert_ne!(replay_body["requestId"].as_str(), original.header("x-request-id"), "a replay has its own request id");

    // 49.990 is the same amount as 49.99.
    let same_amount = partner.submit(&action_body("order_1", "49.990", "user_42")).await;
    assert_eq!(same_amount.json()["code"], "IDEMPOTENT");
    assert_eq!(partner.balance("user_42").await.json()["available"], 50);
    app.shutdown().await;
}

async fn the_same_key_with_another_request_is_refused(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(1_000).await;
    assert_eq!(partner.submit(&action_body("order_2", "10", "user_1")).await.status, 200);
    for other in [action_body("order_2", "11", "user_1"), action_body("order_2", "10", "user_2")] {
        let response = partner.submit(&other).await;
        assert_eq!((response.status, response.json()["code"].as_str()), (409, Some("IDEMPOTENCY_KEY_REUSED")));
    }
    assert_eq!(partner.pool().await["balance"], 990);
    app.shutdown().await;
}

async fn fifty_concurrent_duplicates_issue_exactly_once_even_after_a_restart(backend: StoreBackend) {
    let mut app = spawn_app(backend).await;
    let partner = Arc::new(app.onboard_partner(10_000).await);
    let body = Arc::new(action_body("hot-key", "49.99", "user_7"));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let partner = Arc::clone(&partner);
            let body = Arc::clone(&body);
            tokio::spawn(async move { partner.submit(&body).await })
        })
        .collect();
    let mut completed = Vec::new();
    let mut replays = Vec::new();
    for task in tasks {
        let response = task.await.expect("task");
        match response.status {
            200 => completed.push(response.json()),
            409 => replays.push(response.json()),
            other => panic!("unexpected {other}: {}", String::from_utf8_lossy(&response.body)),
        }
    }
    assert_eq!((completed.len(), replays.len()), (1, 49));
    let action_id = completed[0]["actionId"].clone();
    assert!(replays.iter().all(|replay| replay["code"] == "IDEMPOTENT" && replay["details"]["originalResponse"]["actionId"] == action_id));
    assert_eq!(partner.pool().await["issuedTotal"], 50);
    assert_eq!(partner.balance("user_7").await.json()["available"], 50);

    app.restart().await;
    let partner = crate::support::Partner { address: app.address, ..(*partner).clone() };
    let after_restart = partner.submit(&body).await;
    assert_eq!(after_restart.status, 409);
    assert_eq!(after_restart.json()["details"]["originalResponse"]["actionId"], action_id);
    let reused = partner.submit(&action_body("hot-key", "1", "user_7")).await;
    assert_eq!(reused.json()["code"], Value::from("IDEMPOTENCY_KEY_REUSED"));
    assert_eq!(partner.pool().await["issuedTotal"], 50);
    app.shutdown().await;
}

crate::backend_tests!(
    a_replay_answers_409_idempotent_with_the_original_body,
    the_same_key_with_another_request_is_refused,
    fifty_concurrent_duplicates_issue_exactly_once_even_after_a_restart
);
