//! Cluster mode (issue 13): two engines in this test process share one PostgreSQL database,
//! each a node with its own HTTP listener. Deterministic: the membership loops run one round
//! at start (their heartbeat interval is a minute), and takeovers are made by hand with
//! `take_over_shard_now` (what a loop does once the holder's heartbeat is stale).
//! Needs `REWARD_TEST_POSTGRES_URL` (`scripts/pg/test_server.sh start`); unset, it skips,
//! except under CI, where it fails.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use reward_actors::api::operations::ClusterConfig;
use reward_actors::domain::ids::Id;
use reward_actors::domain::model::{Environment, PartnerEnv};
use reward_actors::store::ownership::ShardMap;
use reward_actors::store::{PostgresUrl, StoreBackend, postgres_test_url};
use reward_engine::config::Config;

use crate::support::{AppOptions, Partner, TestApp, TweakConfig, action_body, eventually, metric, metric_or_zero, spawn_app_with};

const SHARDS: u32 = 16;

/// A port free now on 127.0.0.1: the node listens there and advertises it to the other.
fn free_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").expect("binds").local_addr().expect("an address")
}

async fn node(url: &PostgresUrl, node_id: &str, heartbeat_interval_ms: u64) -> TestApp {
    let (url, node_id, address) = (url.clone(), node_id.to_owned(), free_address());
    let tweak: TweakConfig = Arc::new(move |config: &mut Config| {
        config.server.store = StoreBackend::Postgres;
        config.store.postgres_url = Some(url.clone());
        config.server.listen = address;
        // Announcements for partners on another node are recorded at its housekeeping tick.
        config.server.maintenance_interval_ms = heartbeat_interval_ms * 2;
        config.cluster = ClusterConfig {
            enabled: true,
            node_id: node_id.clone(),
            advertise: address.to_string(),
            shards: SHARDS,
            heartbeat_interval_ms,
            takeover_after_ms: heartbeat_interval_ms * 5,
            handoff_drain_ms: 2_000,
        };
    });
    spawn_app_with(AppOptions { tweak: Some(tweak), ..AppOptions::default() }).await
}

/// Until `app`'s first round is done: its node row (the address others forward to) is written.
async fn joined(app: &TestApp) {
    eventually(Duration::from_secs(10), || async { (metric_or_zero(&scrape(app).await, "reward_cluster_nodes_live") >= 1.0).then_some(()) }).await;
}

async fn ready(app: &TestApp) {
    eventually(Duration::from_secs(10), || async { (app.raw(Method::GET, "/readyz", &[], "").await.status == 200).then_some(()) }).await;
}

async fn scrape(app: &TestApp) -> String {
    String::from_utf8(app.raw(Method::GET, "/metrics", &[], "").await.body.to_vec()).expect("text")
}

fn shard_of(partner: &Partner) -> u32 {
    let partner_env = PartnerEnv::new(Id::parse_hex(&partner.id).expect("an id"), Environment::Sandbox);
    ShardMap::new(SHARDS).shard_of(&partner_env)
}

/// An ACTIVE partner with a sandbox key, a pool, and a per-minute burst of `per_minute`.
async fn limited_partner(app: &TestApp, per_minute: u32) -> Partner {
    let body = serde_json::json!({
        "name": "Limited Giving",
        "contactEmail": "ops@limited.example",
        "stakeholderTypes": ["CUSTOMER"],
        "tier": "CUSTOM",
        "rateLimit": { "hourly": 1_000, "perMinute": per_minute },
    });
    let created = app.admin(Method::POST, "/api/v1/admin/partners", body).await;
    assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
    let partner_id = created.json()["id"].as_str().expect("an id").to_owned();
    let activated = app.admin(Method::PATCH, &format!("/api/v1/admin/partners/{partner_id}"), serde_json::json!({ "status": "ACTIVE" })).await;
    assert_eq!(activated.status, 200);
    let partner = app.issue_key(&partner_id, "sandbox").await;
    assert!(partner.allocate(app, 1_000, "limited-pool").await.status < 300);
    partner
}

/// The same partner, its requests sent to `app`.
fn through(partner: &Partner, app: &TestApp) -> Partner {
    Partner { address: app.operator.address, ..partner.clone() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_fences_the_old_owner_and_the_new_owner_sees_its_last_acknowledged_write() {
    let Some(url) = postgres_test_url("it_cluster_takeover") else { return };
    let a = node(&url, "a", 60_000).await;
    ready(&a).await;
    let partner = a.onboard_partner(1_000).await;
    let first = partner.submit(&action_body("order_1", "49.99", "user_1")).await;
    assert_eq!(first.status, 200, "{}", String::from_utf8_lossy(&first.body));

    // b starts while a is alive and holds every shard: b holds none of them.
    let b = node(&url, "b", 60_000).await;
    joined(&b).await;
    // b should own some shards, but a (alive) holds them all: b is not ready yet.
    assert_eq!(b.raw(Method::GET, "/readyz", &[], "").await.status, 503, "not ready before it holds what it should");
    let shard = shard_of(&partner);
    let epoch = b.engine().take_over_shard_now(shard).await.expect("b takes the partner's shard");
    assert!(epoch >= 2, "a held it at an epoch before: {epoch}");

    // a's actor still runs on the old epoch: its decision is refused at commit, and the
    // client hears "outcome unknown, retry with the same key".
    let fenced = partner.submit(&action_body("order_2", "49.99", "user_1")).await;
    assert_eq!((fenced.status, fenced.json()["code"].as_str()), (504, Some("ENGINE_TIMEOUT")), "{}", String::from_utf8_lossy(&fenced.body));
    assert_eq!(metric(&scrape(&a).await, "reward_commit_fenced_write_sets_total"), 1.0);

    // The retry through a reaches b (a no longer holds the shard, reads its owner, forwards).
    let retried = partner.submit(&action_body("order_2", "49.99", "user_1")).await;
    assert_eq!(retried.status, 200, "the refused write never landed: {}", String::from_utf8_lossy(&retried.body));
    let scraped = scrape(&a).await;
    let forwarded = ["forwarded", "retried"]
        .map(|outcome| metric_or_zero(&scraped, &format!("reward_cluster_forwarded_requests_total{{outcome=\"{outcome}\"}}")));
    assert_eq!(forwarded.iter().sum::<f64>(), 1.0, "a forwarded it: {forwarded:?}");

    // b sees a's last acknowledged write: the first key replays its original answer.
    let replay = through(&partner, &b).submit(&action_body("order_1", "49.99", "user_1")).await;
    assert_eq!(replay.status, 409, "{}", String::from_utf8_lossy(&replay.body));
    assert_eq!(replay.json()["details"]["originalResponse"], first.json());
    let pool = through(&partner, &b).pool().await;
    assert_eq!(pool["balance"], 900, "two rewards of 50, none paid twice: {pool}");
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_waits_for_a_commit_that_passed_its_fence_check() {
    let Some(url) = postgres_test_url("it_cluster_fence_wait") else { return };
    let a = node(&url, "a", 60_000).await;
    ready(&a).await;
    let partner = a.onboard_partner(1_000).await;
    let b = node(&url, "b", 60_000).await;
    joined(&b).await;
    let shard = shard_of(&partner);

    let pause = a.engine().cluster_store().expect("a cluster node").pause_next_commit_after_fence_check();
    let submitting = {
        let partner = partner.clone();
        tokio::spawn(async move { partner.submit(&action_body("order_paused", "49.99", "user_1")).await })
    };
    tokio::time::timeout(Duration::from_secs(10), pause.reached.notified()).await.expect("a's commit reaches its pause");
    let taking_over = {
        let engine = b.engine().clone();
        tokio::spawn(async move { engine.take_over_shard_now(shard).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!taking_over.is_finished(), "b's takeover waits for a's commit, which holds the shard's row");
    pause.release.notify_one();
    let acknowledged = submitting.await.expect("the submit task");
    assert_eq!(acknowledged.status, 200, "a's commit passed its fence before the takeover: {}", String::from_utf8_lossy(&acknowledged.body));
    taking_over.await.expect("the takeover task").expect("b takes over once a's commit is done");

    let replay = through(&partner, &b).submit(&action_body("order_paused", "49.99", "user_1")).await;
    assert_eq!(replay.status, 409, "b sees a's acknowledged write: {}", String::from_utf8_lossy(&replay.body));
    assert_eq!(replay.json()["details"]["originalResponse"], acknowledged.json());
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_share_the_shards_hand_them_off_on_a_clean_stop_and_serve_any_partner() {
    let Some(url) = postgres_test_url("it_cluster_membership") else { return };
    // Live loops: a heartbeat every 100 ms, a takeover after 500 ms.
    let a = node(&url, "a", 100).await;
    ready(&a).await;
    let partners = [a.onboard_partner(1_000).await, a.onboard_partner(1_000).await, a.onboard_partner(1_000).await];
    let b = node(&url, "b", 100).await;
    // Both become ready: a hands b its share (rendezvous hashing over a and b), b claims it.
    ready(&b).await;
    ready(&a).await;
    let owned = |text: &str| metric(text, "reward_cluster_shards_owned");
    let (owned_a, owned_b) = (owned(&scrape(&a).await), owned(&scrape(&b).await));
    assert_eq!(owned_a + owned_b, f64::from(SHARDS + 1), "every shard and the admin shard held once: a {owned_a}, b {owned_b}");
    assert!(owned_b >= 1.0, "b holds its share");
    // Any partner through any node: the owner answers, the other forwards.
    for (index, partner) in partners.iter().enumerate() {
        for (node_index, app) in [&a, &b].into_iter().enumerate() {
            let key = format!("order_{index}_{node_index}");
            let answer = through(partner, app).submit(&action_body(&key, "10.00", "user_1")).await;
            assert_eq!(answer.status, 200, "partner {index} through node {node_index}: {}", String::from_utf8_lossy(&answer.body));
        }
    }
    // Admin writes work through either node (the admin shard's holder writes them).
    let through_b = b.onboard_partner(100).await;
    assert_eq!(through_b.submit(&action_body("order_b", "10.00", "user_1")).await.status, 200);

    // An announcement decided by the admin shard's holder for a partner the other node owns
    // (onboarding activates the partner: `partner.status_changed`) is recorded once, by the
    // owner, and then deleted by the holder.
    let holds_admin = |text: &str| metric_or_zero(text, &format!("reward_cluster_shard_epoch{{shard=\"{SHARDS}\"}}")) > 0.0;
    let (admin, other) = if holds_admin(&scrape(&a).await) { (&a, &b) } else { (&b, &a) };
    let mut elsewhere = None;
    for _ in 0..20 {
        let partner = admin.onboard_partner(0).await;
        let owner = metric_or_zero(&scrape(other).await, &format!("reward_cluster_shard_epoch{{shard=\"{}\"}}", shard_of(&partner)));
        if owner > 0.0 {
            elsewhere = Some(partner);
            break;
        }
    }
    let elsewhere = elsewhere.expect("a partner on the other node within 20 tries");
    let partner_env = PartnerEnv::new(Id::parse_hex(&elsewhere.id).expect("an id"), Environment::Sandbox);
    let changes = || {
        let events = other.engine().webhooks().list_events(partner_env, 0, 100).expect("events").items;
        events.iter().filter(|event| event.event_type.as_str() == "partner.status_changed").count()
    };
    eventually(Duration::from_secs(10), || async { (changes() == 1).then_some(()) }).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(changes(), 1, "recorded once");

    // A key used only through the node that does not hold the admin shard: its last use is
    // handed to the holder through the database and shows in the key's record.
    let seen = admin.onboard_partner(0).await;
    assert_eq!(through(&seen, other).signed(Method::GET, "/v1/partner/token-pools", "").await.status, 200);
    eventually(Duration::from_secs(5), || async {
        let keys = admin.admin(Method::GET, &format!("/api/v1/admin/partners/{}/keys", seen.id), serde_json::Value::Null).await.json();
        keys["data"][0]["lastUsedAt"].as_str().map(|_| ())
    })
    .await;

    // A key revoked through one node is refused by the other within about a heartbeat, even
    // on a route the other answers by itself from its own auth cache.
    let revoking = a.onboard_partner(0).await;
    for app in [&a, &b] {
        assert_eq!(through(&revoking, app).signed(Method::GET, "/v1/partner/token-pools", "").await.status, 200, "cached on both nodes");
    }
    let keys = a.admin(Method::GET, &format!("/api/v1/admin/partners/{}/keys", revoking.id), serde_json::Value::Null).await.json();
    let key_id = keys["data"][0]["id"].as_str().expect("a key id").to_owned();
    let revoked = a.admin(Method::DELETE, &format!("/api/v1/admin/partners/{}/keys/{key_id}", revoking.id), serde_json::Value::Null).await;
    assert_eq!(revoked.status, 200, "{}", String::from_utf8_lossy(&revoked.body));
    eventually(Duration::from_secs(2), || async {
        let answer = through(&revoking, &b).signed(Method::GET, "/v1/partner/token-pools", "").await;
        (answer.status == 401).then_some(())
    })
    .await;

    // A partner that spent its per-minute burst through its owner a.
    let mut limited = None;
    for _ in 0..20 {
        let partner = limited_partner(&a, 3).await;
        if metric_or_zero(&scrape(&a).await, &format!("reward_cluster_shard_epoch{{shard=\"{}\"}}", shard_of(&partner))) > 0.0 {
            limited = Some(partner);
            break;
        }
    }
    let limited = limited.expect("a partner on a within 20 tries");
    for index in 0..3 {
        assert_eq!(through(&limited, &a).submit(&action_body(&format!("limited_{index}"), "1.00", "user_1")).await.status, 200);
    }
    assert_eq!(through(&limited, &a).submit(&action_body("limited_3", "1.00", "user_1")).await.status, 429, "the burst is spent");

    // A clean stop hands every shard off: b holds them all and stays ready.
    a.shutdown().await;
    eventually(Duration::from_secs(10), || async { (owned(&scrape(&b).await) == f64::from(SHARDS + 1)).then_some(()) }).await;
    ready(&b).await;
    for (index, partner) in partners.iter().enumerate() {
        let replay = through(partner, &b).submit(&action_body(&format!("order_{index}_0"), "10.00", "user_1")).await;
        assert_eq!(replay.status, 409, "b answers for every partner: {}", String::from_utf8_lossy(&replay.body));
        assert_eq!(through(partner, &b).pool().await["balance"], 980, "two rewards of 10, once each");
    }
    // The spent burst moved with the handoff: b refuses the partner too.
    let refused = through(&limited, &b).submit(&action_body("limited_3", "1.00", "user_1")).await;
    assert_eq!(refused.status, 429, "the budget moved with the shard: {}", String::from_utf8_lossy(&refused.body));
    let changes = scrape(&b).await;
    assert!(metric(&changes, "reward_cluster_shard_changes_total{change=\"claimed\"}") >= 1.0);
    b.shutdown().await;
}
