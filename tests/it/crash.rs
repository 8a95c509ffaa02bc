//! Crash safety: the real binary under concurrent load, killed with SIGKILL, restarted on
//! the same data directory. Every acknowledged action is there exactly once, nothing was
//! issued twice, and the pool still balances. (SIGKILL leaves the page cache intact, so
//! this proves crash consistency; `durability.rs` proves acknowledgements follow fsync.)
//! It runs for each backend with the write-ahead log on (the default) and off, where every
//! batch is a durable backend transaction: the README promises both survive.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use parking_lot::Mutex;
use reward_actors::store::StoreBackend;
use reward_bench::client::Connection;

use crate::support::binary::start_binary;
use crate::support::{Operator, Partner, action_body, eventually, now_secs};

/// A submit that reports a dead server instead of panicking.
async fn try_submit(partner: &Partner, body: &str) -> Option<(u16, serde_json::Value)> {
    let path = "/v1/partner/actions/submit";
    let headers = partner.sign_with(&partner.secret_key, "POST", path, body.as_bytes(), now_secs());
    let headers: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    let mut connection = Connection::connect(partner.address).await.ok()?;
    let response = connection.request(Method::POST, path, &headers, Bytes::from(body.to_owned())).await.ok()?;
    Some((response.status, response.json()))
}

const WORKERS: usize = 16;
const USERS: usize = 10;

fn body_for(key: &str) -> String {
    let user = key.bytes().map(usize::from).sum::<usize>() % USERS;
    action_body(key, "1", &format!("user_{user}"))
}

/// The server's variables: the log on or off, and (when on) applied into the backend every
/// 20 ms so the kill also lands while the applier writes. The start-up bounds are logged as
/// JSON so the test can see which setting the server really ran with.
fn environment(wal: bool) -> [(&'static str, &'static str); 4] {
    [
        ("REWARD_WAL_ENABLED", if wal { "true" } else { "false" }),
        ("REWARD_WAL_APPLY_INTERVAL_MS", "20"),
        ("REWARD_LOG", "warn,reward_engine::server=info"),
        ("REWARD_SERVER_LOG_FORMAT", "json"),
    ]
}

async fn killed_mid_load_loses_and_duplicates_nothing(backend: StoreBackend, wal: bool) {
    let temp = tempfile::tempdir().expect("temp dir");
    let data_dir = temp.path().join("data");
    let log = temp.path().join("server.log");
    let (mut child, address) = start_binary(&data_dir, backend, &log, &environment(wal)).await;
    let logged = std::fs::read_to_string(&log).expect("server log");
    assert!(logged.contains(&format!(r#""write_ahead_log":{wal}"#)), "the server ran with the log {}: {logged}", if wal { "on" } else { "off" });
    let partner = Operator { address }.onboard_partner(1_000_000).await;

    let attempted = Arc::new(Mutex::new(Vec::<String>::new()));
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let (partner, attempted, acknowledged, stop) = (partner.clone(), Arc::clone(&attempted), Arc::clone(&acknowledged), Arc::clone(&stop));
            tokio::spawn(async move {
                for sequence in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let key = format!("crash-{worker}-{sequence}");
                    attempted.lock().push(key.clone());
                    match try_submit(&partner, &body_for(&key)).await {
                        Some((200, body)) => acknowledged.lock().push((key, body["actionId"].as_str().expect("action id").to_owned())),
                        Some((status, body)) => panic!("unexpected {status}: {body}"),
                        None => break,
                    }
                }
            })
        })
        .collect();
    eventually(Duration::from_secs(60), || async { (acknowledged.lock().len() >= 100).then_some(()) }).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    child.start_kill().expect("SIGKILL");
    child.wait().await.expect("the child exits");
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("worker");
    }

    let (mut child, address) = start_binary(&data_dir, backend, &log, &environment(wal)).await;
    let partner = Partner { address, ..partner };
    let acknowledged = acknowledged.lock().clone();
    let attempted = attempted.lock().clone();
    // Every acknowledged action survived, exactly once: its key replays the same action.
    for (key, action_id) in &acknowledged {
        let (status, body) = try_submit(&partner, &body_for(key)).await.expect("server up");
        assert_eq!(status, 409, "{key}: {body}");
        assert_eq!(body["details"]["originalResponse"]["actionId"].as_str(), Some(action_id.as_str()), "{key}");
        let read = partner.signed(Method::GET, &format!("/v1/partner/actions/{action_id}"), "").await;
        assert_eq!(read.status, 200, "{key}");
    }
    // Keys in flight at the kill either committed (replay) or not (issue now): afterwards
    // every attempted key has exactly one action.
    for key in &attempted {
        let (status, body) = try_submit(&partner, &body_for(key)).await.expect("server up");
        assert!(status == 200 || status == 409, "{key}: {status} {body}");
    }
    let pool = partner.pool().await;
    let (balance, issued, allocated) = (
        pool["balance"].as_u64().expect("balance"),
        pool["issuedTotal"].as_u64().expect("issued"),
        pool["allocatedTotal"].as_u64().expect("allocated"),
    );
    assert_eq!(issued, attempted.len() as u64, "one token per attempted key: nothing lost, nothing twice");
    assert_eq!(allocated, balance + issued);
    assert_eq!(crate::support::credited_to_users(&partner, USERS).await, issued, "users hold exactly what the pool issued");
    eprintln!(
        "{backend} (log {}): {} acknowledged before the kill, {} attempted",
        if wal { "on" } else { "off" },
        acknowledged.len(),
        attempted.len()
    );
    child.start_kill().expect("stop");
    let _ = child.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_survives_sigkill_mid_load() {
    killed_mid_load_loses_and_duplicates_nothing(StoreBackend::Redb, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_survives_sigkill_mid_load() {
    killed_mid_load_loses_and_duplicates_nothing(StoreBackend::Sled, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_without_the_log_survives_sigkill_mid_load() {
    killed_mid_load_loses_and_duplicates_nothing(StoreBackend::Redb, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_without_the_log_survives_sigkill_mid_load() {
    killed_mid_load_loses_and_duplicates_nothing(StoreBackend::Sled, false).await;
}
