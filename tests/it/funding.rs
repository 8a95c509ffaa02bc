//! Funding: concurrent submissions that together exceed the pool. The pool never goes
//! below zero, every 200 is funded, the rest are 402, and the pool balances.

use reward_actors::store::StoreBackend;
use std::sync::Arc;

use crate::support::{action_body, spawn_app};

async fn concurrent_submissions_never_overdraw_the_pool(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = Arc::new(app.onboard_partner(1_000).await);
    let tasks: Vec<_> = (0..40)
        .map(|index| {
            let partner = Arc::clone(&partner);
            tokio::spawn(async move { partner.submit(&action_body(&format!("order-{index}"), "49.99", &format!("user_{}", index % 7))).await })
        })
        .collect();
    let (mut paid, mut refused) = (0u64, 0u64);
    for task in tasks {
        let response = task.await.expect("task");
        match response.status {
            200 => {
                assert_eq!(response.json()["tokensDistributed"], 50);
                paid += 1;
            }
            402 => {
                let body = response.json();
                assert_eq!(body["code"], "INSUFFICIENT_POOL");
                assert_eq!(body["details"]["required"], 50);
                assert!(body["details"]["available"].as_u64().expect("available") < 50);
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", String::from_utf8_lossy(&response.body)),
        }
    }
    assert_eq!((paid, refused), (20, 20));
    let pool = partner.pool().await;
    let (balance, issued, allocated) = (
        pool["balance"].as_u64().expect("balance"),
        pool["issuedTotal"].as_u64().expect("issued"),
        pool["allocatedTotal"].as_u64().expect("allocated"),
    );
    assert_eq!(balance, 0);
    assert_eq!(allocated, balance + issued);
    assert_eq!(issued, 50 * paid);
    let mut credited = 0;
    for user in 0..7 {
        let response = partner.balance(&format!("user_{user}")).await;
        if response.status == 200 {
            credited += response.json()["available"].as_u64().expect("available");
        }
    }
    assert_eq!(credited, issued, "users hold exactly what the pool issued");
    app.shutdown().await;
}

crate::backend_tests!(concurrent_submissions_never_overdraw_the_pool);
