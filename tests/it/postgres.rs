//! The engine end to end on the PostgreSQL store (issue 13, first step): a signed submit pays
//! from the pool, its replay answers 409 with the original, and both survive a restart on
//! the same database. Needs `REWARD_TEST_POSTGRES_URL` (`scripts/pg/test_server.sh start`);
//! unset, it says so and skips, except under CI (`CI` set), where it fails.

use std::sync::Arc;

use reward_actors::store::{StoreBackend, postgres_test_url};
use reward_engine::config::Config;

use crate::support::{AppOptions, Partner, TweakConfig, action_body, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reward_on_postgres_pays_once_and_survives_a_restart() {
    let Some(url) = postgres_test_url("it_reward_on_postgres") else { return };
    let tweak: TweakConfig = Arc::new(move |config: &mut Config| {
        config.server.store = StoreBackend::Postgres;
        config.store.postgres_url = Some(url.clone());
    });
    let mut app = spawn_app_with(AppOptions { tweak: Some(tweak), ..AppOptions::default() }).await;
    assert_eq!(app.engine().store_backend(), StoreBackend::Postgres);
    let partner = app.onboard_partner(1_000).await;

    let first = partner.submit(&action_body("order_pg_1", "49.99", "user_42")).await;
    assert_eq!(first.status, 200, "{}", String::from_utf8_lossy(&first.body));
    assert_eq!(first.json()["tokensDistributed"], 50);

    app.restart().await;
    let partner = Partner { address: app.operator.address, ..partner };
    let replay = partner.submit(&action_body("order_pg_1", "49.99", "user_42")).await;
    assert_eq!(replay.status, 409, "{}", String::from_utf8_lossy(&replay.body));
    assert_eq!(replay.json()["details"]["originalResponse"], first.json());
    app.shutdown().await;
}
