//! `reward-engine verify` (the built binary) on a real engine's data directory: rewards
//! (vesting, several stakeholders, a batch), reversals, a redemption, a refill and pending
//! webhook deliveries. Clean books exit 0 and leave every file byte for byte as it was; a
//! user balance off by one token and an orphan idempotency record, written through the
//! store layer, exit 1 naming both; a running engine is refused at once (exit 2). After a
//! SIGKILL, sled is audited through the write-ahead log and redb asks for one engine start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::Method;
use reward_actors::domain::ids::IdGenerator;
use reward_actors::domain::model::{Environment, IdempotencyRecord, IdempotencyScope, PartnerEnv, UserRecord};
use reward_actors::store::records;
use reward_actors::store::{ENGINE_RUNNING, StoreBackend, open_store};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::binary::{free_address, start_binary};
use crate::support::{AppOptions, Operator, Partner, TestApp, action_body, call, expect, spawn_app_in};

fn options(backend: StoreBackend) -> AppOptions {
    AppOptions {
        backend,
        test_clock: true,
        tweak: Some(Arc::new(|config| {
            // Deliveries to a closed loopback port fail and wait for a retry: queue rows stay.
            config.webhook.allowed_cidrs = vec!["127.0.0.0/8".into()];
            config.webhook.poll_interval = "20ms".into();
        })),
        ..AppOptions::default()
    }
}

fn submit_body(key: &str, amount: &str, users: &[&str]) -> Value {
    let stakeholders: Vec<Value> = users.iter().map(|user| json!({ "stakeholderTypeCode": "CUSTOMER", "partnerUserId": user })).collect();
    json!({ "idempotencyKey": key, "actionType": "PURCHASE", "amount": amount.parse::<f64>().expect("number"), "currency": "USD", "stakeholders": stakeholders })
}

/// Books with every kind of ledger row, and webhook deliveries still queued.
async fn do_business(app: &TestApp, partner: &Partner) {
    let allocate = json!({
        "environment": "sandbox", "tokens": 1_000, "idempotencyKey": "pool", "vestingDays": 7, "lowBalanceThreshold": 500,
        "autoRefill": { "thresholdTokens": 300, "refillTokens": 1_000, "maxRefillsPerMonth": 1 },
    });
    expect(&app.admin(Method::POST, &format!("/api/v1/admin/partners/{}/token-pools", partner.id), allocate).await, 201);
    let closed_port = free_address();
    let endpoint = json!({ "url": format!("http://{closed_port}/hooks"), "description": "nobody listens" });
    expect(&call(app, partner, Method::POST, "/v1/partner/webhooks", endpoint).await, 201);

    let submit = |body: Value| call(app, partner, Method::POST, "/v1/partner/actions/submit", body);
    let first = expect(&submit(submit_body("buy-1", "300", &["alice", "bob", "carol"])).await, 200);
    expect(&submit(submit_body("buy-2", "150", &["alice"])).await, 200);
    let batch = json!({ "actions": [submit_body("batch-1", "10", &["dave"]), submit_body("batch-2", "20", &["erin", "alice"])] });
    expect(&call(app, partner, Method::POST, "/v1/partner/actions/batch", batch).await, 200);
    // 1,000 − 480 − 250 falls below the refill threshold of 300.
    expect(&submit(submit_body("buy-3", "250", &["bob"])).await, 200);
    let action_id = first["actionId"].as_str().expect("action id");
    let reverse_path = format!("/v1/partner/actions/{action_id}/reverse");
    expect(&call(app, partner, Method::POST, &reverse_path, json!({ "idempotencyKey": "rv-1", "reason": "partial", "tokens": 10 })).await, 200);
    // Vested after a week: a redemption, then a full reversal that takes alice below what she spent.
    expect(&app.admin(Method::POST, "/api/v1/admin/clock", json!({ "advanceSeconds": 8 * 86_400 })).await, 200);
    let redeem = json!({ "tokens": 50, "reason": "mug", "idempotencyKey": "spend-1" });
    expect(&call(app, partner, Method::POST, "/v1/partner/users/alice/redeem", redeem).await, 200);
    expect(&call(app, partner, Method::POST, &reverse_path, json!({ "idempotencyKey": "rv-2", "reason": "chargeback" })).await, 200);
    let pools = expect(&call(app, partner, Method::GET, "/v1/partner/token-pools", Value::Null).await, 200);
    assert!(pools["data"][0]["refilledTotal"].as_u64() > Some(0), "a refill happened: {pools}");
}

/// Every file under `dir` with the SHA-256 of its bytes.
fn hashes(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("lists") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.insert(path.clone(), hex::encode(Sha256::digest(std::fs::read(&path).expect("reads"))));
            }
        }
    }
    found
}

struct Verified {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the built binary's `verify`, bounded so a hang fails the test instead of stalling it.
async fn verify(data_dir: &Path, extra: &[&str]) -> Verified {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_reward-engine")).arg("verify").arg("--data-dir").arg(data_dir).args(extra).output();
    let output = tokio::time::timeout(Duration::from_secs(120), run).await.expect("verify ends").expect("verify runs");
    Verified {
        code: output.status.code().expect("an exit code"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Breaks the books through the store layer: alice's balance one token high, and an
/// idempotency record whose action does not exist.
fn break_the_books(backend: StoreBackend, data_dir: &Path, partner: &Partner) {
    let store = open_store(backend, data_dir).expect("store opens");
    let partner_env = PartnerEnv::new(reward_actors::domain::ids::Id::parse_hex(&partner.id).expect("partner id"), Environment::Sandbox);
    let user_key = records::user(&partner_env, "alice");
    let mut alice: UserRecord = user_key.get(store.as_ref()).expect("reads").expect("alice exists");
    alice.balance += 1;
    let orphan = IdempotencyRecord {
        request_hash: [7; 32],
        resource_id: IdGenerator::new().next(1),
        response_json: b"{}".to_vec(),
        request_id: "req_orphan".into(),
        effect: reward_actors::domain::model::Effect::Applied,
        created_at_ms: 1,
    };
    let ops = vec![user_key.put(&alice), records::idempotency(&partner_env, IdempotencyScope::ActionSubmit, "orphan-key").put(&orphan)];
    store.commit(&[&ops]).expect("commits");
}

async fn verify_audits_a_stopped_engine_read_only(backend: StoreBackend) {
    let temp = tempfile::tempdir().expect("temp dir");
    let data_dir = temp.path().join("data");
    let app = spawn_app_in(options(backend), data_dir.clone()).await;
    let partner = app.onboard_partner(0).await;
    do_business(&app, &partner).await;
    app.shutdown().await;

    let before = hashes(&data_dir);
    let clean = verify(&data_dir, &["--json"]).await;
    assert_eq!(clean.code, 0, "{}\n{}", clean.stdout, clean.stderr);
    assert_eq!(hashes(&data_dir), before, "verify changed nothing in the data directory");
    let report: Value = serde_json::from_str(&clean.stdout).expect("JSON report");
    assert_eq!((report["clean"].as_bool(), report["store"].as_str()), (Some(true), Some(backend.as_str())), "{report}");
    let totals = &report["totals"];
    assert_eq!((totals["pools"].as_u64(), totals["users"].as_u64(), totals["actions"].as_u64()), (Some(1), Some(5), Some(5)), "{report}");
    assert!(totals["webhook_queue_rows"].as_u64() > Some(0) && totals["webhook_deliveries"].as_u64() > Some(0), "{report}");
    assert!(totals["idempotency_records"].as_u64() >= Some(9), "5 submits, 2 reversals, 1 redemption, 1 allocation: {report}");
    let text = verify(&data_dir, &[]).await;
    assert!(text.code == 0 && text.stdout.contains("audit of the books: CLEAN"), "{}", text.stdout);

    break_the_books(backend, &data_dir, &partner);
    let broken = verify(&data_dir, &[]).await;
    assert_eq!(broken.code, 1, "{}\n{}", broken.stdout, broken.stderr);
    assert!(broken.stdout.contains("2 DISCREPANCIES"), "{}", broken.stdout);
    let alice = format!("[users] partner {} sandbox, user alice: balance differs from the sum of the user's transactions", partner.id);
    assert!(broken.stdout.contains(&alice), "{}", broken.stdout);
    let orphan =
        format!("[idempotency] partner {} sandbox, idempotency key 'orphan-key' (ActionSubmit): points at an action that does not exist", partner.id);
    assert!(broken.stdout.contains(&orphan), "{}", broken.stdout);

    let running = spawn_app_in(options(backend), data_dir.clone()).await;
    let refused = verify(&data_dir, &[]).await;
    assert_eq!(refused.code, 2, "{}\n{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains(ENGINE_RUNNING), "{}", refused.stderr);
    running.shutdown().await;
}

/// Killed with nothing applied to the backend: everything is in the write-ahead log. sled
/// (audited on a copy) is read through the log and is clean, with every action; redb's file
/// needs the repair a read-only open cannot do, and verify says so until the engine has run
/// once more.
async fn verify_after_a_kill_reads_the_log_or_asks_for_a_start(backend: StoreBackend) {
    let temp = tempfile::tempdir().expect("temp dir");
    let data_dir = temp.path().join("data");
    let log = temp.path().join("server.log");
    // Nothing is applied into the backend before the kill: the log holds it all.
    let environment = [("REWARD_WAL_APPLY_INTERVAL_MS", "3600000")];
    let (mut child, address) = start_binary(&data_dir, backend, &log, &environment).await;
    let partner = Operator { address }.onboard_partner(1_000).await;
    for index in 0..5 {
        expect(&partner.submit(&action_body(&format!("kill-{index}"), "1", &format!("user_{index}"))).await, 200);
    }
    child.start_kill().expect("SIGKILL");
    child.wait().await.expect("the child exits");

    let before = hashes(&data_dir);
    let killed = verify(&data_dir, &["--json"]).await;
    assert_eq!(hashes(&data_dir), before, "verify changed nothing in the data directory");
    match backend {
        StoreBackend::Sled => {
            assert_eq!(killed.code, 0, "{}\n{}", killed.stdout, killed.stderr);
            let report: Value = serde_json::from_str(&killed.stdout).expect("JSON report");
            assert_eq!((report["totals"]["actions"].as_u64(), report["totals"]["users"].as_u64()), (Some(5), Some(5)), "{report}");
        }
        StoreBackend::Redb => {
            assert_eq!(killed.code, 2, "{}\n{}", killed.stdout, killed.stderr);
            assert!(killed.stderr.contains("was not shut down cleanly") && killed.stderr.contains("start the engine"), "{}", killed.stderr);
            let (mut child, _) = start_binary(&data_dir, backend, &log, &[]).await;
            // SIGTERM: a clean stop, after which redb opens read-only.
            let pid = rustix::process::Pid::from_raw(i32::try_from(child.id().expect("running")).expect("a pid")).expect("a pid");
            rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
            child.wait().await.expect("the child exits");
            let recovered = verify(&data_dir, &["--json"]).await;
            assert_eq!(recovered.code, 0, "{}\n{}", recovered.stdout, recovered.stderr);
            let report: Value = serde_json::from_str(&recovered.stdout).expect("JSON report");
            assert_eq!(report["totals"]["actions"].as_u64(), Some(5), "{report}");
        }
        StoreBackend::Postgres => panic!("verify opens a data directory; the backend tests run it on redb and sled"),
    }
}

crate::backend_tests!(verify_audits_a_stopped_engine_read_only, verify_after_a_kill_reads_the_log_or_asks_for_a_start);
