//! Edges the other tests did not pin down: a master key that does not match the data, the
//! signature window's exact ends, a body that never finishes (408), the password-hashing
//! cap (503), and graceful shutdown draining a request that is still in flight.

use std::sync::Arc;
use std::time::Duration;

use hyper::Method;
use reward_actors::engine::crypto::Secret;
use reward_actors::store::StoreBackend;
use reward_engine::config::Config;
use reward_engine::server::{ServeOptions, ServerSecrets, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::stores::{GateGuard, InstrumentedStore};
use crate::support::{
    ADMIN_TOKEN, AppOptions, MASTER_KEY, Partner, TweakConfig, action_body, code, eventually, instrumented_app, spawn_app, spawn_app_with,
};

fn config_in(data_dir: &std::path::Path, backend: StoreBackend) -> Config {
    let mut config = Config::default();
    config.server.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    config.server.data_dir = data_dir.to_owned();
    config.server.store = backend;
    config
}

fn secrets(master_key: &str) -> ServerSecrets {
    ServerSecrets {
        admin_token: Some(Secret::new(ADMIN_TOKEN.into())),
        master_key: Some(Secret::new(master_key.into())),
        provider_secrets: Vec::new(),
    }
}

async fn a_master_key_other_than_the_datas_is_refused(backend: StoreBackend) {
    let temp = tempfile::tempdir().expect("temp dir");
    let data_dir = temp.path().join("data");
    let first = start(ServeOptions { config: config_in(&data_dir, backend), demo: false, secrets: secrets(MASTER_KEY), store: None })
        .await
        .expect("the first start seals the data under its key");
    first.shutdown().await.expect("clean shutdown");
    let other_key = "f".repeat(64);
    assert_ne!(other_key, MASTER_KEY);
    let refused = start(ServeOptions { config: config_in(&data_dir, backend), demo: false, secrets: secrets(&other_key), store: None }).await;
    let error = refused.err().expect("another master key is refused");
    assert!(format!("{error:#}").contains("not the one the data directory was created with"), "{error:#}");
    let again = start(ServeOptions { config: config_in(&data_dir, backend), demo: false, secrets: secrets(MASTER_KEY), store: None })
        .await
        .expect("the right key still opens it");
    again.shutdown().await.expect("clean shutdown");
}

/// A signed read at `timestamp`: its status, and the server's time when it refused.
async fn read_at(partner: &Partner, timestamp: u64) -> (u16, Option<u64>) {
    let path = "/v1/partner/me";
    let headers = partner.sign_with(&partner.secret_key, "GET", path, b"", timestamp);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    let response = crate::support::request(partner.address, Method::GET, path, &headers, bytes::Bytes::new()).await;
    let body = response.json();
    if response.status != 200 {
        assert_eq!(body["code"], "TIMESTAMP_OUT_OF_RANGE", "{body}");
    }
    (response.status, body["details"]["serverTime"].as_u64())
}

/// 300 s either side is accepted and 301 refused. The wall clock ticks between signing and
/// checking, so each case reads the server's time from its refusal and retries (bounded)
/// when a second boundary moved the true distance; a case passes only on the exact edge.
async fn the_signature_window_ends_at_exactly_300_seconds(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(0).await;
    let window = 300u64;
    let (mut accepted_past, mut accepted_future, mut refused_past, mut refused_future) = (false, false, false, false);
    for _ in 0..10 {
        let now = crate::support::now_secs();
        match read_at(&partner, now - window).await {
            (200, _) => accepted_past = true,
            (_, Some(server)) => assert!(server - (now - window) > window, "refused inside the window (server {server}, sent {})", now - window),
            (_, None) => panic!("a refusal carries serverTime"),
        }
        // The server's clock is never behind ours: +300 is at most 300 away.
        assert_eq!(read_at(&partner, now + window).await.0, 200, "300 s ahead is accepted");
        accepted_future = true;
        // -301 is at least 301 away.
        assert_eq!(read_at(&partner, now - window - 1).await.0, 401, "301 s behind is refused");
        refused_past = true;
        let now = crate::support::now_secs();
        match read_at(&partner, now + window + 1).await {
            (401, Some(server)) if now + window + 1 - server == window + 1 => refused_future = true,
            (401, Some(server)) => assert!(now + window + 1 - server > window, "refused inside the window"),
            (200, _) => {} // a second passed: the distance was 300
            other => panic!("unexpected {other:?}"),
        }
        if accepted_past && accepted_future && refused_past && refused_future {
            break;
        }
    }
    assert!(accepted_past && accepted_future && refused_past && refused_future, "every edge was seen exactly");
    app.shutdown().await;
}

/// A body that stops arriving is answered 408 `REQUEST_TIMEOUT` once the body read times out.
async fn a_body_that_never_finishes_is_a_408(backend: StoreBackend) {
    let quick: TweakConfig = Arc::new(|config| config.limits.body_read_timeout_secs = 1);
    let app = spawn_app_with(AppOptions { backend, tweak: Some(quick), ..AppOptions::default() }).await;
    let mut stream = tokio::net::TcpStream::connect(app.address).await.expect("connect");
    let head = "POST /v1/partner/actions/submit HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"idem";
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the server answered and closed within the bound");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"code\":\"REQUEST_TIMEOUT\""), "{text}");
    app.shutdown().await;
}

/// Argon2 runs in at most a few slots; a sign-in beyond them is 503 `OVERLOADED` with
/// `Retry-After`, never a queue. Rounds of concurrent sign-ins until one finds them full
/// (bounded), and every answer is either that 503 or the ordinary 401.
async fn sign_ins_beyond_the_hashing_slots_are_503(backend: StoreBackend) {
    let generous: TweakConfig = Arc::new(|config| config.engine.portal_attempts_per_minute = 100_000);
    let app = spawn_app_with(AppOptions { backend, tweak: Some(generous), ..AppOptions::default() }).await;
    let mut overloaded = None;
    for round in 0..10 {
        let attempts: Vec<_> = (0..24)
            .map(|index| {
                let operator = (*app).clone();
                tokio::spawn(async move {
                    let body = serde_json::json!({ "email": format!("nobody{round}-{index}@example.com"), "password": "not the password" });
                    operator.raw(Method::POST, "/v1/partner/auth/login", &[("content-type", "application/json")], body.to_string()).await
                })
            })
            .collect();
        for attempt in attempts {
            let response = attempt.await.expect("task");
            match code(&response) {
                (503, code) if code == "OVERLOADED" => overloaded = Some(response),
                (401, _) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        if overloaded.is_some() {
            break;
        }
    }
    let overloaded = overloaded.expect("24 concurrent sign-ins found the hashing slots full at least once in 10 rounds");
    assert!(overloaded.header("retry-after").is_some_and(|seconds| seconds.parse::<u64>().is_ok_and(|seconds| seconds >= 1)));
    app.shutdown().await;
}

/// Starts a submit of `key` and waits until its write set is held at the store's gate: the
/// request is in flight until the gate is dropped.
async fn submit_held_at_the_commit(
    store: &Arc<InstrumentedStore>,
    partner: &Partner,
    key: &'static str,
) -> (GateGuard, tokio::task::JoinHandle<reward_bench::client::ClientResponse>) {
    let gate = store.hold_commits();
    let commits_before = store.commits_started.load(std::sync::atomic::Ordering::SeqCst);
    let in_flight = tokio::spawn({
        let partner = partner.clone();
        async move { partner.submit(&action_body(key, "5", "user_1")).await }
    });
    eventually(Duration::from_secs(5), || async { (store.commits_started.load(std::sync::atomic::Ordering::SeqCst) > commits_before).then_some(()) })
        .await;
    (gate, in_flight)
}

/// Shutdown stops accepting but lets a request already in flight finish with its answer.
async fn shutdown_drains_a_request_in_flight(backend: StoreBackend) {
    let (app, store) = instrumented_app(backend, None).await;
    let partner = app.onboard_partner(1_000).await;
    let address = app.address;
    let (gate, in_flight) = submit_held_at_the_commit(&store, &partner, "drained").await;
    let stopping = tokio::spawn(app.shutdown());
    // Stopped accepting: a new connection is refused (or closed unanswered) once shutdown began.
    eventually(Duration::from_secs(5), || async move {
        match tokio::net::TcpStream::connect(address).await {
            Err(_) => Some(()),
            Ok(mut stream) => {
                let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n").await;
                let mut buffer = [0u8; 16];
                matches!(tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buffer)).await, Ok(Ok(0)) | Ok(Err(_))).then_some(())
            }
        }
    })
    .await;
    assert!(!in_flight.is_finished() && !stopping.is_finished(), "shutdown waits for the request in flight");
    drop(gate);
    let response = in_flight.await.expect("task");
    assert_eq!(response.status, 200, "the in-flight request got its answer: {}", String::from_utf8_lossy(&response.body));
    tokio::time::timeout(Duration::from_secs(10), stopping).await.expect("shutdown finishes").expect("task");
    assert!(store.durable_at("drained").is_some(), "and its write set is durable");
}

/// A request still held after the grace is cut, and shutdown says so (it is not clean).
async fn a_shutdown_that_cuts_requests_reports_it(backend: StoreBackend) {
    let short_grace: TweakConfig = Arc::new(|config| config.server.shutdown_grace_secs = 1);
    let (mut app, store) = instrumented_app(backend, Some(short_grace)).await;
    let partner = app.onboard_partner(1_000).await;
    let (gate, in_flight) = submit_held_at_the_commit(&store, &partner, "cut").await;
    let server = app.server.take().expect("running");
    let stopping = tokio::spawn(server.shutdown());
    // After the grace the connection is cut: the client sees no answer.
    let cut = tokio::time::timeout(Duration::from_secs(10), in_flight).await.expect("the request was cut within the bound");
    assert!(cut.is_err() || cut.as_ref().is_ok_and(|response| response.status != 200), "a cut request got no 200");
    // The engine still stops in order (the held commit finishes once the gate opens).
    drop(gate);
    let outcome = tokio::time::timeout(Duration::from_secs(10), stopping).await.expect("shutdown finishes").expect("task");
    let error = outcome.expect_err("a shutdown that cut a request is not clean");
    assert!(error.to_string().contains("grace"), "{error}");
}

crate::backend_tests!(
    a_shutdown_that_cuts_requests_reports_it,
    a_master_key_other_than_the_datas_is_refused,
    the_signature_window_ends_at_exactly_300_seconds,
    a_body_that_never_finishes_is_a_408,
    sign_ins_beyond_the_hashing_slots_are_503,
    shutdown_drains_a_request_in_flight
);
