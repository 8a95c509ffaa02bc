//! A failing disk never loses or invents money. A real full filesystem (a size-limited
//! tmpfs, as root) and injected failures of the log's fsync and of the backend's apply: the
//! engine answers 503 `OVERLOADED` with `Retry-After`, `/readyz` says why, nothing
//! unacknowledged is reported done, and after recovery (a restart for a failed log, in
//! place for a failed apply) every acknowledged reward is there with its original answer and
//! the books balance. A full backup disk fails the backup (503 `BACKUP_FAILED`), never the engine.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;
use parking_lot::Mutex;
use reward_actors::store::{LogFaults, LogOperation, StoreBackend, WalOptions, open_store_with_faults};
use reward_bench::client::ClientResponse;
use serde_json::Value;

use crate::support::{AppOptions, Partner, TestApp, action_body, eventually, expect, instrumented_app, metric, spawn_app_in};

/// Concurrent submitters while the disk fails.
const WORKERS: usize = 8;
/// Submits one worker makes at most before it must have been refused: bounds the load.
const SUBMITS_PER_WORKER_MAX: usize = 2_000;
/// How long the load may run before the disk must have refused it.
const LOAD_DEADLINE: Duration = Duration::from_secs(120);
const USERS: usize = 7;
const POOL_TOKENS: u64 = 10_000_000;

/// One token per action (amount 1 at 1×), to a user derived from the key.
fn body_for(key: &str) -> String {
    let user = key.bytes().map(usize::from).sum::<usize>() % USERS;
    action_body(key, "1", &format!("user_{user}"))
}

/// What the clients heard: every key tried, and the acknowledged ones with their answers.
#[derive(Default)]
struct Heard {
    attempted: Vec<String>,
    acknowledged: Vec<(String, Value)>,
    unknown: usize,
    refused: usize,
}

/// A refusal is 503 `OVERLOADED` with `Retry-After` equal to `details.retryAfterSeconds`.
fn assert_refusal(response: &ClientResponse) {
    let body = response.json();
    assert_eq!((response.status, body["code"].as_str()), (503, Some("OVERLOADED")), "{body}");
    let retry_after: u64 = response.header("retry-after").and_then(|value| value.parse().ok()).expect("Retry-After");
    assert!(retry_after >= 1);
    assert_eq!(body["details"]["retryAfterSeconds"].as_u64(), Some(retry_after), "{body}");
}

/// Submits from `WORKERS` tasks until each is refused (503), bounded in count and time.
/// 200 is an acknowledgement, 504 an unknown outcome; anything else fails the test.
async fn submit_until_refused(partner: &Partner, prefix: &str) -> Heard {
    let heard = Arc::new(Mutex::new(Heard::default()));
    let started = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let (partner, heard, prefix) = (partner.clone(), Arc::clone(&heard), prefix.to_owned());
            tokio::spawn(async move {
                for sequence in 0..SUBMITS_PER_WORKER_MAX {
                    assert!(started.elapsed() < LOAD_DEADLINE, "the disk never refused the load");
                    let key = format!("{prefix}-{worker}-{sequence}");
                    heard.lock().attempted.push(key.clone());
                    let response = partner.submit(&body_for(&key)).await;
                    match response.status {
                        200 => heard.lock().acknowledged.push((key, response.json())),
                        504 => {
                            assert_eq!(response.json()["code"], "ENGINE_TIMEOUT");
                            heard.lock().unknown += 1;
                        }
                        _ => {
                            assert_refusal(&response);
                            heard.lock().refused += 1;
                            return;
                        }
                    }
                }
                panic!("worker {worker} was never refused");
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    Arc::try_unwrap(heard).ok().expect("workers done").into_inner()
}

/// `/readyz` is 503 with `Retry-After` and a reason containing `expected`.
async fn assert_unready(app: &TestApp, expected: &str) -> String {
    let ready = app.raw(Method::GET, "/readyz", &[], Bytes::new()).await;
    assert_refusal(&ready);
    let reason = ready.json()["details"]["reason"].as_str().expect("a reason").to_owned();
    assert!(reason.contains(expected), "{reason}");
    reason
}

async fn assert_ready(app: &TestApp) {
    let ready = app.raw(Method::GET, "/readyz", &[], Bytes::new()).await;
    assert_eq!(expect(&ready, 200)["status"], "ready");
}

/// Every acknowledged submit replays its original answer; every other key tried either
/// replays (it did commit) or is issued now (it did not); then one token per key left the
/// pool, the pool balances, and the users hold exactly what it issued.
async fn audit(partner: &Partner, heard: &[Heard]) {
    for (key, original) in heard.iter().flat_map(|heard| heard.acknowledged.iter()) {
        let replay = partner.submit(&body_for(key)).await;
        let body = expect(&replay, 409);
        assert_eq!(body["code"], "IDEMPOTENT", "{key}");
        assert_eq!(&body["details"]["originalResponse"], original, "{key}: the acknowledged answer survived");
    }
    let attempted: Vec<&String> = heard.iter().flat_map(|heard| heard.attempted.iter()).collect();
    for key in &attempted {
        let settled = partner.submit(&body_for(key)).await;
        assert!(settled.status == 200 || settled.status == 409, "{key}: {} {}", settled.status, String::from_utf8_lossy(&settled.body));
    }
    let pool = partner.pool().await;
    let number = |field: &str| pool[field].as_u64().unwrap_or_else(|| panic!("{field} in {pool}"));
    let (balance, issued, allocated) = (number("balance"), number("issuedTotal"), number("allocatedTotal"));
    assert_eq!(allocated, POOL_TOKENS);
    assert_eq!(issued, attempted.len() as u64, "one token per key: nothing lost, nothing twice, nothing invented");
    assert_eq!(balance + issued, allocated, "the pool balances");
    assert_eq!(crate::support::credited_to_users(partner, USERS).await, issued, "users hold exactly what the pool issued");
}

/// Acknowledged submits before anything fails.
async fn submit_some(partner: &Partner, prefix: &str, count: usize) -> Heard {
    let mut heard = Heard::default();
    for index in 0..count {
        let key = format!("{prefix}-{index}");
        let response = partner.submit(&body_for(&key)).await;
        heard.attempted.push(key.clone());
        heard.acknowledged.push((key, expect(&response, 200)));
    }
    heard
}

/// An app over `data_dir` whose log and applier take `faults`: the store the app opened
/// is closed and the same directory reopened with the fault layer (so a restart gets it too).
async fn app_with_faults(backend: StoreBackend, data_dir: PathBuf, faults: &Arc<LogFaults>) -> TestApp {
    let (faults, dir) = (Arc::clone(faults), data_dir.clone());
    let options = AppOptions {
        backend,
        wrap_store: Some(Arc::new(move |opened| {
            drop(opened);
            open_store_with_faults(backend, &dir, WalOptions::default(), Some(Arc::clone(&faults))).expect("reopens with faults")
        })),
        ..AppOptions::default()
    };
    spawn_app_in(options, data_dir).await
}

/// fsync of the log fails (EIO): the batch in flight is 504 (its record may have reached the
/// disk), later writes 503 until a restart, reads go on, and the restart loses nothing.
async fn a_failed_log_fsync_stops_writes_until_a_restart(backend: StoreBackend) {
    let temp = tempfile::tempdir().expect("temp dir");
    let faults = Arc::new(LogFaults::default());
    let mut app = app_with_faults(backend, temp.path().join("data"), &faults).await;
    let partner = app.onboard_partner(POOL_TOKENS).await;
    let before = submit_some(&partner, "before", 20).await;

    faults.arm(LogOperation::Sync, 0, 1, 5);
    let during = submit_until_refused(&partner, "eio").await;
    let reason = assert_unready(&app, "os error 5").await;
    assert!(reason.contains("restart"), "{reason}");
    assert_refusal(&partner.submit(&body_for("refused")).await);
    // Reads keep working from the log's memtables and the backend.
    assert_eq!(partner.pool().await["allocatedTotal"], POOL_TOKENS);
    assert_eq!(expect(&partner.balance("user_1").await, 200)["partnerUserId"], "user_1");
    // Clearing the fault does not revive a poisoned log: that takes a restart.
    faults.clear();
    assert_unready(&app, "os error 5").await;
    eprintln!("{backend}: {} acknowledged, {} unknown (504), {} refused (503)", during.acknowledged.len(), during.unknown, during.refused);

    app.restart().await;
    assert_ready(&app).await;
    let partner = Partner { address: app.address, ..partner };
    audit(&partner, &[before, during]).await;
    app.shutdown().await;
}

/// The backend refuses the applier's commits: the log keeps every acknowledged write, the
/// engine refuses new writes with the reason, and recovers in place once applies succeed.
async fn a_failing_apply_refuses_writes_until_it_recovers(backend: StoreBackend) {
    let temp = tempfile::tempdir().expect("temp dir");
    let faults = Arc::new(LogFaults::default());
    let mut app = app_with_faults(backend, temp.path().join("data"), &faults).await;
    let partner = app.onboard_partner(POOL_TOKENS).await;
    let before = submit_some(&partner, "before", 20).await;

    faults.arm(LogOperation::Apply, 0, u64::MAX, 28);
    let during = submit_until_refused(&partner, "apply").await;
    let reason = assert_unready(&app, "os error 28").await;
    assert!(reason.contains("retrying"), "{reason}");
    assert_eq!(partner.pool().await["allocatedTotal"], POOL_TOKENS, "reads go on");

    faults.clear();
    eventually(Duration::from_secs(10), || async { (app.raw(Method::GET, "/readyz", &[], Bytes::new()).await.status == 200).then_some(()) }).await;
    let after = submit_some(&partner, "after", 5).await;
    audit(&partner, &[before, during, after]).await;
    // And the same books after a restart.
    let issued = partner.pool().await["issuedTotal"].as_u64().expect("issued");
    app.restart().await;
    let partner = Partner { address: app.address, ..partner };
    let pool = partner.pool().await;
    assert_eq!((pool["issuedTotal"].as_u64(), pool["balance"].as_u64()), (Some(issued), Some(POOL_TOKENS - issued)));
    app.shutdown().await;
}

/// A commit that fails once (the store stays writable): the request is 504, the partner's
/// actor retires and its successor reloads from the store, so the failed action's tokens are
/// not spent in memory, and the same key then issues once.
async fn a_failed_commit_is_504_and_the_actor_reloads(backend: StoreBackend) {
    let (app, store) = instrumented_app(backend, None).await;
    let partner = app.onboard_partner(1_000).await;
    expect(&partner.submit(&body_for("first")).await, 200);
    let metrics = || async { String::from_utf8_lossy(&app.raw(Method::GET, "/metrics", &[], Bytes::new()).await.body).into_owned() };
    let stopped_before = metric(&metrics().await, "reward_actors_stopped_total");

    store.fail_submits.store(1, Ordering::SeqCst);
    let failed = partner.submit(&body_for("failed")).await;
    assert_eq!((failed.status, failed.json()["code"].as_str()), (504, Some("ENGINE_TIMEOUT")));
    assert_eq!(metric(&metrics().await, "reward_commit_failures_total"), 1.0);
    // The actor that wrote the lost batch retires once it sees the failure.
    eventually(Duration::from_secs(10), || async { (metric(&metrics().await, "reward_actors_stopped_total") > stopped_before).then_some(()) }).await;
    assert_ready(&app).await;

    // The successor loaded what is durable: the lost action is not a known key (a replay of
    // an action that does not exist), it issues now, once.
    assert_eq!(partner.pool().await["balance"], 999);
    expect(&partner.submit(&body_for("failed")).await, 200);
    expect(&partner.submit(&body_for("after")).await, 200);
    let pool = partner.pool().await;
    assert_eq!((pool["balance"].as_u64(), pool["issuedTotal"].as_u64()), (Some(997), Some(3)));
    app.shutdown().await;
}

crate::backend_tests!(
    a_failed_log_fsync_stops_writes_until_a_restart,
    a_failing_apply_refuses_writes_until_it_recovers,
    a_failed_commit_is_504_and_the_actor_reloads,
    a_full_filesystem_stops_writes_and_loses_nothing,
    a_full_filesystem_under_the_store_recovers,
    a_full_backup_disk_fails_the_backup_not_the_engine,
);

/// `backup.directory` on a full filesystem: the backup fails with 503 `BACKUP_FAILED` naming
/// the cause, leaves no partial directory, counts the failure; the engine goes on serving,
/// and once there is room the next backup succeeds.
async fn a_full_backup_disk_fails_the_backup_not_the_engine(backend: StoreBackend) {
    let Some(tmpfs) = mount_or_skip("a_full_backup_disk_fails_the_backup_not_the_engine", backend) else { return };
    let backups = tmpfs.mount_point.join("backups");
    let directory = backups.clone();
    let options = AppOptions { backend, tweak: Some(Arc::new(move |config| config.backup.directory = directory.clone())), ..AppOptions::default() };
    let app = crate::support::spawn_app_with(options).await;
    let partner = app.onboard_partner(POOL_TOKENS).await;
    // More than the headroom in backup bytes (a reward is a dozen records of a few hundred bytes).
    submit_some(&partner, "backup-full", 400).await;
    let filler = fill(&tmpfs.mount_point);
    let response = app.admin(Method::POST, "/api/v1/admin/backups", Value::Null).await;
    assert_eq!(response.status, 503, "{}", String::from_utf8_lossy(&response.body));
    assert_eq!(response.json()["code"], "BACKUP_FAILED");
    assert!(response.json()["message"].as_str().unwrap_or_default().contains("No space left"), "{}", response.json());
    let left: Vec<_> = std::fs::read_dir(&backups).expect("lists").flatten().map(|entry| entry.file_name()).collect();
    assert!(left.is_empty(), "a failed backup leaves nothing behind: {left:?}");
    let scrape = String::from_utf8_lossy(&app.raw(Method::GET, "/metrics", &[], Bytes::new()).await.body).into_owned();
    assert_eq!(metric(&scrape, "reward_backup_failures_total"), 1.0);
    assert_eq!(metric(&scrape, "reward_backup_last_success_timestamp_seconds"), 0.0);
    expect(&partner.submit(&body_for("after-the-failed-backup")).await, 200);
    std::fs::remove_file(&filler).expect("frees the disk");
    expect(&app.admin(Method::POST, "/api/v1/admin/backups", Value::Null).await, 201);
    app.shutdown().await;
}

/// A size-limited tmpfs mounted for one test; unmounted (lazily, so a straggling handle
/// cannot keep it) when dropped, also when the test fails.
struct Tmpfs {
    mount_point: PathBuf,
    _parent: tempfile::TempDir,
}

/// The tmpfs's size: room for the engine's files with the filler taken out.
const TMPFS_SIZE: &str = "32m";
/// Space left free for the load once the filler has taken the rest.
const HEADROOM_BYTES: usize = 768 * 1024;

impl Tmpfs {
    fn mount() -> Result<Tmpfs, String> {
        let uid = std::process::Command::new("id").arg("-u").output().map_err(|error| format!("running id: {error}"))?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Err("not running as root (mounting a tmpfs needs it)".into());
        }
        let parent = tempfile::tempdir().map_err(|error| error.to_string())?;
        let mount_point = parent.path().join("disk");
        std::fs::create_dir(&mount_point).map_err(|error| error.to_string())?;
        let output = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={TMPFS_SIZE}"), "tmpfs"])
            .arg(&mount_point)
            .output()
            .map_err(|error| format!("running mount: {error}"))?;
        if !output.status.success() {
            return Err(format!("mount failed: {}", String::from_utf8_lossy(&output.stderr).trim()));
        }
        Ok(Tmpfs { mount_point, _parent: parent })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.mount_point).status();
    }
}

/// Fills the filesystem at `dir` but `HEADROOM_BYTES`: a reserve file, then a filler written
/// until the disk is full, then the reserve deleted. Answers the filler's path.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let reserve = dir.join("reserve");
    std::fs::write(&reserve, vec![1u8; HEADROOM_BYTES]).expect("the reserve fits");
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).expect("creates the filler");
    let chunk = vec![1u8; 64 * 1024];
    // Bounded by the filesystem's size: it ends at ENOSPC.
    while file.write_all(&chunk).is_ok() {}
    drop(file);
    std::fs::remove_file(&reserve).expect("frees the headroom");
    filler
}

/// After the disk has room again: ready in place (a failed apply recovered) or still
/// naming the restart it needs (a failed log), never stuck in between. Answers whether it
/// recovered in place.
async fn recovered_in_place(app: &TestApp) -> bool {
    eventually(Duration::from_secs(15), || async {
        let ready = app.raw(Method::GET, "/readyz", &[], Bytes::new()).await;
        match ready.status {
            200 => Some(true),
            _ => ready.json()["details"]["reason"].as_str().is_some_and(|reason| reason.contains("restart")).then_some(false),
        }
    })
    .await
}

/// The real thing: concurrent signed submits into a filesystem that fills up. Writes are
/// refused (503 with Retry-After), `/readyz` names the full disk, and after the filler is
/// deleted the engine is ready again in place (a failed apply) or after a restart (a failed
/// log); either way every acknowledged reward keeps its original answer and the books balance.
async fn a_full_filesystem_stops_writes_and_loses_nothing(backend: StoreBackend) {
    let Some(tmpfs) = mount_or_skip("a_full_filesystem_stops_writes_and_loses_nothing", backend) else { return };
    let data_dir = tmpfs.mount_point.join("data");
    let mut app = spawn_app_in(AppOptions { backend, ..AppOptions::default() }, data_dir).await;
    let partner = app.onboard_partner(POOL_TOKENS).await;
    let before = submit_some(&partner, "before", 20).await;

    let filler = fill(&tmpfs.mount_point);
    let during = submit_until_refused(&partner, "full").await;
    let reason = assert_unready(&app, "No space left on device").await;
    eprintln!(
        "{backend}: {} acknowledged on a filling disk, {} unknown (504), {} refused (503); /readyz: {reason}",
        during.acknowledged.len(),
        during.unknown,
        during.refused
    );

    std::fs::remove_file(&filler).expect("frees the disk");
    let in_place = recovered_in_place(&app).await;
    eprintln!("{backend}: with room again, recovered {}", if in_place { "in place" } else { "after a restart" });
    app.restart().await;
    assert_ready(&app).await;
    let partner = Partner { address: app.address, ..partner };
    audit(&partner, &[before, during]).await;
    app.shutdown().await;
    drop(tmpfs);
}

/// Only the B-tree on the full filesystem (the log's directory is elsewhere): the apply
/// fails with ENOSPC while the log works, writes are refused with the reason, and once the
/// filler is deleted redb recovers in place (it is reopened); sled, which latches the error,
/// says so and recovers at the restart.
async fn a_full_filesystem_under_the_store_recovers(backend: StoreBackend) {
    let Some(tmpfs) = mount_or_skip("a_full_filesystem_under_the_store_recovers", backend) else { return };
    let data_dir = tmpfs.mount_point.join("data");
    let log_dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(&data_dir).expect("creates the data directory");
    std::os::unix::fs::symlink(log_dir.path(), data_dir.join("wal")).expect("the log lives off the small disk");
    let mut app = spawn_app_in(AppOptions { backend, ..AppOptions::default() }, data_dir).await;
    let partner = app.onboard_partner(POOL_TOKENS).await;
    let before = submit_some(&partner, "before", 20).await;

    let filler = fill(&tmpfs.mount_point);
    let during = submit_until_refused(&partner, "full").await;
    let reason = assert_unready(&app, "retrying").await;
    eprintln!("{backend}: {} acknowledged before the B-tree filled; /readyz: {reason}", during.acknowledged.len());

    std::fs::remove_file(&filler).expect("frees the disk");
    let in_place = recovered_in_place(&app).await;
    assert_eq!(in_place, backend == StoreBackend::Redb, "redb recovers in place, sled at a restart: {reason}");
    if !in_place {
        app.restart().await;
    }
    let partner = Partner { address: app.address, ..partner };
    let after = submit_some(&partner, "after", 5).await;
    let heard = [before, during, after];
    audit(&partner, &heard).await;
    app.restart().await;
    let partner = Partner { address: app.address, ..partner };
    audit(&partner, &heard).await;
    app.shutdown().await;
    drop(tmpfs);
}

/// Outside CI a machine without the right to mount skips (with the reason); under CI (`CI`
/// set, root on this kind of machine) the real full disk is required, never skipped.
fn mount_or_skip(test: &str, backend: StoreBackend) -> Option<Tmpfs> {
    match Tmpfs::mount() {
        Ok(tmpfs) => Some(tmpfs),
        Err(reason) => {
            assert!(std::env::var_os("CI").is_none(), "CI needs the full-filesystem test {test} ({backend}): {reason}");
            eprintln!("SKIPPED {test} ({backend}): {reason}");
            None
        }
    }
}
