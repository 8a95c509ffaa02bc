//! The engine end to end on the PostgreSQL store (issue 13, first step): a signed submit pays
//! from the pool, its replay answers 409 with the original, and both survive a restart on
//! the same database. Needs `REWARD_TEST_POSTGRES_URL` (`scripts/pg/test_server.sh start`);
//! unset, it says so and skips, except under CI (`CI` set), where it fails.

use std::sync::Arc;

use axum::http::Method;
use reward_actors::store::{PostgresUrl, StoreBackend, postgres_test_url};
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

/// The way from one embedded node to a cluster: a backup of a redb node restores into an
/// empty PostgreSQL schema (`reward-engine restore --postgres`), a second restore into it is
/// refused, and an engine on that database answers the old rewards' replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_an_embedded_node_restores_into_postgres() {
    let Some(url) = postgres_test_url("it_restore_into_postgres") else { return };
    let backups = tempfile::tempdir().expect("a temporary directory");
    let directory = backups.path().to_owned();
    let tweak: TweakConfig = Arc::new(move |config: &mut Config| config.backup.directory = directory.clone());
    let app = spawn_app_with(AppOptions { tweak: Some(tweak), ..AppOptions::default() }).await;
    let partner = app.onboard_partner(1_000).await;
    let first = partner.submit(&action_body("order_moved", "49.99", "user_42")).await;
    assert_eq!(first.status, 200, "{}", String::from_utf8_lossy(&first.body));
    let backup = app.admin(Method::POST, "/api/v1/admin/backups", serde_json::Value::Null).await;
    assert_eq!(backup.status, 201, "{}", String::from_utf8_lossy(&backup.body));
    let path = backup.json()["path"].as_str().expect("the backup's path").to_owned();
    app.shutdown().await;

    let restore = || {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_reward-engine"));
        command.args(["restore", "--postgres", "--from", &path]);
        command.env("REWARD_STORE_POSTGRES_URL", url_text(&url)).env("REWARD_LOG", "warn").kill_on_drop(true);
        command
    };
    let output = restore().output().await.expect("restore runs");
    assert!(output.status.success(), "restore failed: {}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("into PostgreSQL"), "{}", String::from_utf8_lossy(&output.stdout));
    let again = restore().output().await.expect("restore runs");
    assert!(!again.status.success(), "a second restore into the same schema is refused");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds data"), "{}", String::from_utf8_lossy(&again.stderr));

    let on_postgres: TweakConfig = Arc::new(move |config: &mut Config| {
        config.server.store = StoreBackend::Postgres;
        config.store.postgres_url = Some(url.clone());
    });
    let app = spawn_app_with(AppOptions { tweak: Some(on_postgres), ..AppOptions::default() }).await;
    let partner = Partner { address: app.operator.address, ..partner };
    let replay = partner.submit(&action_body("order_moved", "49.99", "user_42")).await;
    assert_eq!(replay.status, 409, "{}", String::from_utf8_lossy(&replay.body));
    assert_eq!(replay.json()["details"]["originalResponse"], first.json());
    assert_eq!(partner.pool().await["balance"], 950);
    assert_eq!(partner.submit(&action_body("order_after_move", "10.00", "user_42")).await.status, 200);
    app.shutdown().await;
}

/// The URL as text (its `Debug` hides the password; the child process needs it whole).
fn url_text(url: &PostgresUrl) -> String {
    serde_json::to_value(url).expect("a URL serializes").as_str().expect("as a string").to_owned()
}
