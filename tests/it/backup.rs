//! Backup and restore as an operator does them: `reward-engine backup` against a server under
//! signed load, the data directory lost, `reward-engine restore` onto a new one, and the
//! restored engine answering every reward acknowledged before the backup with the same ids
//! (a replay) and balanced books; a damaged backup refused by the command, writing nothing;
//! scheduled backups with retention and their metrics.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper::Method;
use parking_lot::Mutex;
use reward_actors::store::StoreBackend;
use serde_json::Value;
use tokio::process::Command;

use crate::support::{ADMIN_TOKEN, AppOptions, Partner, action_body, credited_to_users, eventually, expect, metric, spawn_app_in, spawn_app_with};

const POOL_TOKENS: u64 = 10_000_000;
const USERS: usize = 20;
/// Concurrent signed submitters, and the most rewards each sends.
const SUBMITTERS: usize = 4;
const SUBMITS_PER_SUBMITTER_MAX: usize = 400;

fn options_with_backups(backend: StoreBackend, directory: &Path) -> AppOptions {
    let directory = directory.to_owned();
    AppOptions { backend, tweak: Some(Arc::new(move |config| config.backup.directory = directory.clone())), ..AppOptions::default() }
}

/// An acknowledged reward: its body and the answer it got.
struct Acknowledged {
    body: String,
    response: Value,
}

/// Submits rewards until told to stop (or its bound), recording each acknowledged one.
async fn submit_until_stopped(partner: Partner, submitter: usize, stop: Arc<AtomicBool>, acknowledged: Arc<Mutex<Vec<Acknowledged>>>) {
    for n in 0..SUBMITS_PER_SUBMITTER_MAX {
        if stop.load(Ordering::Acquire) {
            return;
        }
        let body = action_body(&format!("backup_{submitter}_{n}"), "10", &format!("user_{}", n % USERS));
        let response = partner.submit(&body).await;
        assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
        acknowledged.lock().push(Acknowledged { body, response: response.json() });
    }
}

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_reward-engine"));
    command.env("REWARD_LOG", "warn").kill_on_drop(true);
    command
}

/// `reward-engine backup --json` against the server: the backup's path and manifest.
async fn backup_with_the_command(address: std::net::SocketAddr) -> (PathBuf, Value) {
    let output = binary()
        .args(["backup", "--json", "--url", &format!("http://{address}")])
        .env("REWARD_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .await
        .expect("the backup command runs");
    assert!(output.status.success(), "backup failed: {}", String::from_utf8_lossy(&output.stderr));
    let answer: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    (PathBuf::from(answer["path"].as_str().expect("path")), answer["manifest"].clone())
}

/// `reward-engine verify --data-dir DIR` (a data directory or a backup): its exit code and
/// what it printed (stdout, then stderr).
async fn verify_with_the_command(dir: &Path) -> (i32, String) {
    let output = binary().arg("verify").arg("--data-dir").arg(dir).output().await.expect("the verify command runs");
    let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), printed)
}

/// `reward-engine restore`: its exit status and what it printed on stderr.
async fn restore_with_the_command(from: &Path, data_dir: &Path, backend: StoreBackend) -> (bool, String) {
    let output = binary()
        .args(["restore", "--store", backend.as_str(), "--from"])
        .arg(from)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .await
        .expect("the restore command runs");
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

async fn a_backup_under_load_restores_every_acknowledged_reward(backend: StoreBackend) {
    let scratch = tempfile::tempdir().expect("temp dir");
    let backups = scratch.path().join("backups");
    let app = spawn_app_with(options_with_backups(backend, &backups)).await;
    let partner = app.onboard_partner(POOL_TOKENS).await;
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let submitters: Vec<_> = (0..SUBMITTERS)
        .map(|submitter| tokio::spawn(submit_until_stopped(partner.clone(), submitter, Arc::clone(&stop), Arc::clone(&acknowledged))))
        .collect();
    eventually(Duration::from_secs(60), || {
        let acknowledged = Arc::clone(&acknowledged);
        async move { (acknowledged.lock().len() >= 200).then_some(()) }
    })
    .await;
    // Everything acknowledged before the backup is asked for must be in it.
    let before_backup = acknowledged.lock().len();
    let (path, manifest) = backup_with_the_command(app.operator.address).await;
    let during_backup = acknowledged.lock().len() - before_backup;
    stop.store(true, Ordering::Release);
    for submitter in submitters {
        submitter.await.expect("submitter");
    }
    assert!(during_backup > 0 || acknowledged.lock().len() >= SUBMITTERS * SUBMITS_PER_SUBMITTER_MAX, "the load went on during the backup");
    assert_eq!(manifest["schemaVersion"], reward_actors::store::SCHEMA_VERSION);
    assert!(manifest["sequence"].as_u64().expect("sequence") > 0, "{manifest}");

    // The server lists it and its metrics say when it was taken.
    let listed = expect(&app.admin(Method::GET, "/api/v1/admin/backups", Value::Null).await, 200);
    assert_eq!(listed["data"][0]["path"].as_str(), path.to_str());
    let scrape = String::from_utf8_lossy(&app.raw(Method::GET, "/metrics", &[], "").await.body).into_owned();
    assert!(metric(&scrape, "reward_backup_last_success_timestamp_seconds") > 0.0);
    assert_eq!(metric(&scrape, "reward_backup_last_sequence"), manifest["sequence"].as_u64().expect("sequence") as f64);

    // The disk dies: the data directory is gone. Restore onto a new one and start there.
    let lost = app.data_dir.clone();
    app.shutdown().await;
    // (Dropping the app already removed its temporary directory.)
    let _ = std::fs::remove_dir_all(&lost);
    assert!(!lost.exists(), "the data directory is lost");
    let restored_dir = scratch.path().join("restored");
    let (restored, stderr) = restore_with_the_command(&path, &restored_dir, backend).await;
    assert!(restored, "restore failed: {stderr}");
    // The books of the backup, and of the restored directory, audit clean.
    for audited in [&path, &restored_dir] {
        let (code, printed) = verify_with_the_command(audited).await;
        assert_eq!(code, 0, "verify {}: {printed}", audited.display());
    }
    let app = spawn_app_in(options_with_backups(backend, &backups), restored_dir).await;
    let partner = Partner { address: app.operator.address, ..partner };

    // Every reward acknowledged before the backup: a replay with the original answer (ids included).
    let acknowledged = std::mem::take(&mut *acknowledged.lock());
    for reward in &acknowledged[..before_backup] {
        let replay = partner.submit(&reward.body).await;
        let replay_body = expect(&replay, 409);
        assert_eq!(replay_body["details"]["originalResponse"], reward.response, "a reward acknowledged before the backup is in it");
    }
    // The books balance: what the pool gave is what the users hold.
    let pool_balance = partner.pool().await["balance"].as_u64().expect("balance");
    assert_eq!(pool_balance + credited_to_users(&partner, USERS).await, POOL_TOKENS);
    // And the restored engine takes new rewards.
    assert_eq!(partner.submit(&action_body("after_restore", "10", "user_0")).await.status, 200);
    app.shutdown().await;
}

async fn a_damaged_backup_is_refused_and_nothing_is_written(backend: StoreBackend) {
    let scratch = tempfile::tempdir().expect("temp dir");
    let backups = scratch.path().join("backups");
    let app = spawn_app_with(options_with_backups(backend, &backups)).await;
    let partner = app.onboard_partner(1_000).await;
    assert_eq!(partner.submit(&action_body("damaged_1", "10", "user_1")).await.status, 200);
    let (path, manifest) = backup_with_the_command(app.operator.address).await;
    app.shutdown().await;
    let target = scratch.path().join("target");
    // One flipped byte in a data file.
    let data = path.join(manifest["files"][0]["name"].as_str().expect("a data file"));
    let mut bytes = std::fs::read(&data).expect("reads");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&data, &bytes).expect("writes");
    let (restored, stderr) = restore_with_the_command(&path, &target, backend).await;
    assert!(!restored, "a damaged backup must be refused");
    assert!(stderr.contains("does not match its SHA-256"), "{stderr}");
    assert!(!target.exists(), "a refused restore writes nothing");
    let (code, printed) = verify_with_the_command(&path).await;
    assert_eq!(code, 2, "a damaged backup cannot be audited: {printed}");
    assert!(printed.contains("does not match its SHA-256"), "{printed}");
    // Put it back: the same backup restores, and not over a directory that holds data.
    bytes[middle] ^= 0x40;
    std::fs::write(&data, &bytes).expect("writes");
    let (restored, stderr) = restore_with_the_command(&path, &target, backend).await;
    assert!(restored, "{stderr}");
    let (restored, stderr) = restore_with_the_command(&path, &target, backend).await;
    assert!(!restored && stderr.contains("not empty"), "{stderr}");
}

async fn scheduled_backups_keep_the_newest(backend: StoreBackend) {
    let scratch = tempfile::tempdir().expect("temp dir");
    let backups = scratch.path().join("backups");
    let directory = backups.clone();
    let options = AppOptions {
        backend,
        tweak: Some(Arc::new(move |config| {
            config.backup.directory = directory.clone();
            config.backup.interval_secs = 1;
            config.backup.retention = 2;
        })),
        ..AppOptions::default()
    };
    let app = spawn_app_with(options).await;
    let scrape = String::from_utf8_lossy(&app.raw(Method::GET, "/metrics", &[], "").await.body).into_owned();
    assert_eq!(metric(&scrape, "reward_backup_interval_seconds"), 1.0);
    let operator = app.operator.clone();
    eventually(Duration::from_secs(60), || {
        let operator = operator.clone();
        async move {
            let scrape = String::from_utf8_lossy(&operator.raw(Method::GET, "/metrics", &[], "").await.body).into_owned();
            (metric(&scrape, "reward_backups_total") >= 3.0).then_some(())
        }
    })
    .await;
    app.shutdown().await;
    let kept: Vec<_> = std::fs::read_dir(&backups).expect("lists").flatten().map(|entry| entry.file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(kept.len(), 2, "retention keeps the newest two: {kept:?}");
    assert!(kept.iter().all(|name| name.starts_with("backup-")), "{kept:?}");
}

crate::backend_tests!(
    a_backup_under_load_restores_every_acknowledged_reward,
    a_damaged_backup_is_refused_and_nothing_is_written,
    scheduled_backups_keep_the_newest
);
