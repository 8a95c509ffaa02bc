//! Webhooks (contract §9): endpoints, signatures checked by an independent receiver,
//! retries on the schedule, health (410, the disable window), secret rotation, the SSRF
//! guard, the event feed, and deliveries that survive a SIGKILL.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, KeyInit, Mac};
use hyper::Method;
use parking_lot::Mutex;
use reward_actors::store::StoreBackend;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::binary::{free_address, start_binary};
use crate::support::{AppOptions, Operator, Partner, TestApp, action_body, call, eventually, expect, spawn_app_with};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or_default()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("deliveries are JSON")
    }
}

/// A local webhook receiver: records every request, and fails the first `fail_first` with
/// `fail_status` (or all of them while `always_status` is set), after `delay_ms`.
#[derive(Default)]
struct Receiver {
    received: Mutex<Vec<Received>>,
    fail_first: AtomicUsize,
    fail_status: AtomicU16,
    always_status: AtomicU16,
    delay_ms: AtomicUsize,
    /// `Retry-After` seconds sent with the failures of `fail_first` (0: none).
    retry_after_secs: AtomicUsize,
}

async fn receive(State(receiver): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> (StatusCode, HeaderMap, &'static str) {
    receiver.received.lock().push(Received { headers, body, at: Instant::now() });
    let delay = receiver.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay as u64)).await;
    }
    let always = receiver.always_status.load(Ordering::Relaxed);
    if always != 0 {
        return (StatusCode::from_u16(always).expect("status"), HeaderMap::new(), "not today");
    }
    if receiver.fail_first.fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| left.checked_sub(1)).is_ok() {
        let mut answer = HeaderMap::new();
        let retry_after = receiver.retry_after_secs.load(Ordering::Relaxed);
        if retry_after > 0 {
            answer.insert("retry-after", retry_after.into());
        }
        return (StatusCode::from_u16(receiver.fail_status.load(Ordering::Relaxed)).expect("status"), answer, "try again");
    }
    (StatusCode::OK, HeaderMap::new(), "ok")
}

impl Receiver {
    async fn start_at(address: SocketAddr) -> Arc<Receiver> {
        let receiver = Arc::new(Receiver { fail_status: AtomicU16::new(500), ..Receiver::default() });
        let app = axum::Router::new().fallback(receive).with_state(Arc::clone(&receiver));
        let listener = tokio::net::TcpListener::bind(address).await.expect("receiver binds");
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    async fn start() -> (Arc<Receiver>, String) {
        let address = free_address();
        (Receiver::start_at(address).await, format!("http://{address}/hooks"))
    }

    fn all(&self) -> Vec<Received> {
        self.received.lock().clone()
    }

    async fn wait_for(&self, count: usize) -> Vec<Received> {
        eventually(Duration::from_secs(20), || async move {
            let received = self.all();
            (received.len() >= count).then_some(received)
        })
        .await
    }
}

/// The receiver's own check of `X-SIR-Signature` (not the engine's code): HMAC-SHA256 keyed
/// by the whole `whsec_` text over `timestamp.body`. Empty secrets and signatures fail.
fn verify_sir(secret: &str, received: &Received) -> bool {
    let Some(signature) = received.header("x-sir-signature").strip_prefix("sha256=").filter(|signature| !signature.is_empty()) else {
        return false;
    };
    if secret.is_empty() {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(received.header("x-sir-timestamp").as_bytes());
    mac.update(b".");
    mac.update(&received.body);
    hex::decode(signature).is_ok_and(|bytes| mac.verify_slice(&bytes).is_ok())
}

/// The official Standard Webhooks library, unmodified; empty secrets refused first.
fn verify_standard(secret: &str, received: &Received) -> bool {
    if secret.strip_prefix("whsec_").is_none_or(str::is_empty) {
        return false;
    }
    standardwebhooks::Webhook::new(secret).is_ok_and(|webhook| webhook.verify(&received.body, &received.headers).is_ok())
}

fn allow_loopback(backend: StoreBackend, schedule: &'static str) -> AppOptions {
    AppOptions {
        backend,
        tweak: Some(Arc::new(move |config| {
            config.webhook.allowed_cidrs = vec!["127.0.0.0/8".into()];
            config.webhook.retry_schedule = schedule.split(',').map(String::from).collect();
            config.webhook.poll_interval = "20ms".into();
        })),
        ..AppOptions::default()
    }
}

async fn create_endpoint(app: &TestApp, partner: &Partner, body: Value) -> (String, String) {
    let created = expect(&call(app, partner, Method::POST, "/v1/partner/webhooks", body).await, 201);
    (created["id"].as_str().expect("id").to_owned(), created["secret"].as_str().expect("secret once").to_owned())
}

async fn feed(app: &TestApp, partner: &Partner) -> Vec<Value> {
    let page = expect(&call(app, partner, Method::GET, "/v1/partner/events?after=0&limit=100", Value::Null).await, 200);
    page["data"].as_array().expect("data").clone()
}

async fn deliveries(app: &TestApp, partner: &Partner, endpoint: &str) -> Vec<Value> {
    let page = expect(&call(app, partner, Method::GET, &format!("/v1/partner/webhooks/{endpoint}/deliveries?limit=100"), Value::Null).await, 200);
    page["data"].as_array().expect("data").clone()
}

async fn every_delivery_verifies_under_both_schemes(backend: StoreBackend) {
    let app = spawn_app_with(allow_loopback(backend, "0s,1s")).await;
    let partner = app.onboard_partner(10_000).await;
    // Onboarding's own events come before any endpoint: only later ones are delivered.
    let earlier = feed(&app, &partner).await.len();
    let (receiver, url) = Receiver::start().await;
    let body = json!({ "url": url, "description": "all events", "headers": { "X-Team": "rewards", "Authorization": "Bearer partner-side" } });
    let (endpoint, secret) = create_endpoint(&app, &partner, body).await;
    assert!(secret.starts_with("whsec_"));
    let (narrow_receiver, narrow_url) = Receiver::start().await;
    let (narrow_endpoint, _) =
        create_endpoint(&app, &partner, json!({ "url": narrow_url, "eventTypes": ["action.completed"], "receiveAllEvents": false })).await;

    let shown = expect(&call(&app, &partner, Method::GET, &format!("/v1/partner/webhooks/{endpoint}"), Value::Null).await, 200);
    assert_eq!((shown["status"].as_str(), shown["secret"].is_null()), (Some("ENABLED"), true), "the secret is shown once");
    assert_eq!(shown["headers"]["Authorization"], "********", "credential-like header values are masked");
    let listed = expect(&call(&app, &partner, Method::GET, "/v1/partner/webhooks", Value::Null).await, 200);
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(2));
    assert!(!listed.to_string().contains(&secret));

    for key in ["w-1", "w-2", "w-3"] {
        expect(&partner.submit(&action_body(key, "10", "jane")).await, 200);
    }
    // Each action: action.completed and one transaction.completed.
    let received = receiver.wait_for(6).await;
    let events = feed(&app, &partner).await.split_off(earlier);
    assert_eq!(events.len(), 6);
    let sequences: Vec<u64> = events.iter().map(|event| event["sequence"].as_u64().expect("sequence")).collect();
    assert!(sequences.windows(2).all(|pair| pair[1] == pair[0] + 1), "ascending by one: {sequences:?}");
    for delivery in &received {
        assert!(verify_sir(&secret, delivery), "X-SIR-Signature verifies");
        assert!(verify_standard(&secret, delivery), "webhook-signature verifies with the Standard Webhooks library");
        let envelope = delivery.json();
        assert_eq!(delivery.header("webhook-id"), envelope["id"].as_str().expect("id"));
        assert_eq!(delivery.header("webhook-timestamp"), delivery.header("x-sir-timestamp"));
        assert_eq!(delivery.header("user-agent"), "SIRGiving-Webhooks/1.0");
        assert_eq!(delivery.header("content-type"), "application/json");
        assert_eq!((delivery.header("x-team"), delivery.header("authorization")), ("rewards", "Bearer partner-side"));
        assert!(events.contains(&envelope), "every delivery is an event of the feed, byte for byte");
    }
    // An independent verifier refuses what it must.
    let sample = &received[0];
    assert!(
        !verify_sir("whsec_d3JvbmcgeWVzIHdyb25nIHNlY3JldCBoZXJl", sample) && !verify_standard("whsec_d3JvbmcgeWVzIHdyb25nIHNlY3JldCBoZXJl", sample)
    );
    assert!(!verify_sir("", sample) && !verify_standard("whsec_", sample) && !verify_standard("", sample));
    let mut emptied = sample.clone();
    emptied.headers.insert("webhook-signature", "v1,".parse().expect("header"));
    emptied.headers.insert("x-sir-signature", "sha256=".parse().expect("header"));
    assert!(!verify_standard(&secret, &emptied) && !verify_sir(&secret, &emptied));

    let narrow = narrow_receiver.wait_for(3).await;
    // Fan-out is decided in the events' own commit, so the endpoint's delivery records are
    // final once the submits were answered: no wait needed to see that nothing else came.
    assert_eq!(deliveries(&app, &partner, &narrow_endpoint).await.len(), 3, "subscribed to action.completed only");
    assert_eq!(narrow_receiver.all().len(), 3);
    assert!(narrow.iter().all(|delivery| delivery.json()["type"] == "action.completed"));

    // The feed pages with after / nextCursor.
    let first = expect(&call(&app, &partner, Method::GET, &format!("/v1/partner/events?after={earlier}&limit=4"), Value::Null).await, 200);
    assert_eq!((first["data"].as_array().map(Vec::len), first["hasMore"].as_bool()), (Some(4), Some(true)));
    assert_eq!(first["data"][0], events[0]);
    let next = first["nextCursor"].as_str().expect("cursor").to_owned();
    let rest = expect(&call(&app, &partner, Method::GET, &format!("/v1/partner/events?after={next}"), Value::Null).await, 200);
    assert_eq!((rest["data"].as_array().map(Vec::len), rest["hasMore"].as_bool()), (Some(2), Some(false)));

    // A test event: to this endpoint only, verified, not in the feed.
    let test = expect(&call(&app, &partner, Method::POST, &format!("/v1/partner/webhooks/{endpoint}/test"), Value::Null).await, 200);
    assert!(test["id"].as_str().is_some_and(|id| id.starts_with("dlv_")));
    let received = receiver.wait_for(7).await;
    let last = received.last().expect("the test event");
    assert_eq!(last.json()["type"], "webhook.test");
    assert!(verify_sir(&secret, last) && verify_standard(&secret, last));
    assert_eq!(feed(&app, &partner).await.len(), earlier + 6, "test events are not in the feed");
    let log = eventually(Duration::from_secs(5), || {
        let (app, partner, endpoint) = (&app, &partner, &endpoint);
        async move {
            let log = deliveries(app, partner, endpoint).await;
            log.iter().all(|delivery| delivery["status"] == "DELIVERED").then_some(log)
        }
    })
    .await;
    assert_eq!(log.len(), 7);
    assert_eq!(log[0]["attempts"][0]["statusCode"], 200);
    assert_eq!(log[0]["attempts"][0]["responseBody"], "ok");
    app.shutdown().await;
}

async fn retries_follow_the_schedule_with_one_event_id_then_exhaust(backend: StoreBackend) {
    let app = spawn_app_with(allow_loopback(backend, "0s,1s,2s")).await;
    let partner = app.onboard_partner(10_000).await;
    let (flaky, flaky_url) = Receiver::start().await;
    let (endpoint, secret) = create_endpoint(&app, &partner, json!({ "url": flaky_url, "eventTypes": ["action.completed"] })).await;
    flaky.fail_first.store(2, Ordering::SeqCst);
    expect(&partner.submit(&action_body("r-1", "10", "jane")).await, 200);
    let attempts = flaky.wait_for(3).await;
    let ids: Vec<&str> = attempts.iter().map(|attempt| attempt.header("webhook-id")).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "one event id across retries: {ids:?}");
    assert!(attempts.iter().all(|attempt| verify_sir(&secret, attempt) && verify_standard(&secret, attempt)));
    for (gap, scheduled) in attempts.windows(2).map(|pair| pair[1].at - pair[0].at).zip([1.0f64, 2.0]) {
        let seconds = gap.as_secs_f64();
        // Never early; late only by scheduling on a busy machine.
        assert!(seconds >= scheduled * 0.8 - 0.05 && seconds <= scheduled * 1.2 + 1.5, "gap {seconds:.2}s for a {scheduled}s step ±20 %");
    }
    let log = eventually(Duration::from_secs(5), || {
        let (app, partner, endpoint) = (&app, &partner, &endpoint);
        async move {
            let log = deliveries(app, partner, endpoint).await;
            (log.first().is_some_and(|delivery| delivery["status"] == "DELIVERED")).then_some(log)
        }
    })
    .await;
    let statuses: Vec<Value> = log[0]["attempts"].as_array().expect("attempts").iter().map(|attempt| attempt["statusCode"].clone()).collect();
    assert_eq!(statuses, vec![json!(500), json!(500), json!(200)]);
    assert_eq!(log[0]["attemptCount"], 3);

    // An endpoint that never answers 2xx: three attempts, then FAILED, and the partner's
    // other endpoint hears webhook.delivery_exhausted.
    let (dead, dead_url) = Receiver::start().await;
    dead.always_status.store(503, Ordering::SeqCst);
    let (dead_endpoint, _) = create_endpoint(&app, &partner, json!({ "url": dead_url, "eventTypes": ["action.completed"] })).await;
    let (watcher, watcher_url) = Receiver::start().await;
    create_endpoint(&app, &partner, json!({ "url": watcher_url, "eventTypes": ["webhook.delivery_exhausted"] })).await;
    expect(&partner.submit(&action_body("r-2", "10", "jane")).await, 200);
    let notice = watcher.wait_for(1).await[0].json();
    assert_eq!(notice["type"], "webhook.delivery_exhausted");
    assert_eq!(notice["data"]["endpointId"], dead_endpoint.as_str());
    assert_eq!(notice["data"]["attempts"], 3);
    assert_eq!(dead.all().len(), 3);
    let failed = deliveries(&app, &partner, &dead_endpoint).await;
    assert_eq!((failed[0]["status"].as_str(), failed[0]["nextAttemptAt"].is_null()), (Some("FAILED"), true));
    assert!(feed(&app, &partner).await.iter().any(|event| event["type"] == "webhook.delivery_exhausted"));

    // Redelivery: one more attempt now.
    dead.always_status.store(0, Ordering::SeqCst);
    let delivery_id = failed[0]["id"].as_str().expect("id").to_owned();
    let path = format!("/v1/partner/webhooks/deliveries/{delivery_id}/redeliver");
    expect(&call(&app, &partner, Method::POST, &path, Value::Null).await, 200);
    dead.wait_for(4).await;
    eventually(Duration::from_secs(5), || {
        let (app, partner, dead_endpoint) = (&app, &partner, &dead_endpoint);
        async move { (deliveries(app, partner, dead_endpoint).await[0]["status"] == "DELIVERED").then_some(()) }
    })
    .await;
    app.shutdown().await;
}

async fn gone_disables_at_once_and_the_partner_re_enables(backend: StoreBackend) {
    let app = spawn_app_with(allow_loopback(backend, "0s,1s")).await;
    let partner = app.onboard_partner(10_000).await;
    let (receiver, url) = Receiver::start().await;
    receiver.always_status.store(410, Ordering::SeqCst);
    let (endpoint, _) = create_endpoint(&app, &partner, json!({ "url": url, "eventTypes": ["action.completed"] })).await;
    expect(&partner.submit(&action_body("g-1", "10", "jane")).await, 200);
    let path = format!("/v1/partner/webhooks/{endpoint}");
    let disabled = eventually(Duration::from_secs(10), || {
        let (app, partner, path) = (&app, &partner, &path);
        async move {
            let shown = expect(&call(app, partner, Method::GET, path, Value::Null).await, 200);
            (shown["status"] == "DISABLED").then_some(shown)
        }
    })
    .await;
    assert!(disabled["disabledReason"].as_str().is_some_and(|reason| reason.contains("410")));
    assert_eq!(receiver.all().len(), 1, "410 stops retries at once");
    assert!(feed(&app, &partner).await.iter().any(|event| event["type"] == "webhook_endpoint.disabled"));
    // Disabled endpoints get no new deliveries.
    expect(&partner.submit(&action_body("g-2", "10", "jane")).await, 200);
    // Fan-out happens in the submit's own commit: no delivery record means nothing to send.
    assert_eq!(deliveries(&app, &partner, &endpoint).await.len(), 1, "no delivery for a disabled endpoint");
    assert_eq!(receiver.all().len(), 1);

    receiver.always_status.store(0, Ordering::SeqCst);
    let enabled = expect(&call(&app, &partner, Method::PATCH, &path, json!({ "status": "ENABLED" })).await, 200);
    assert_eq!((enabled["status"].as_str(), enabled["disabledReason"].is_null()), (Some("ENABLED"), true));
    expect(&partner.submit(&action_body("g-3", "10", "jane")).await, 200);
    let received = receiver.wait_for(2).await;
    assert_eq!(received[1].json()["data"]["idempotencyKey"], "g-3");
    app.shutdown().await;
}

async fn an_endpoint_failing_for_the_whole_window_is_disabled(backend: StoreBackend) {
    let options = AppOptions {
        test_clock: true,
        tweak: Some(Arc::new(|config| {
            config.webhook.allowed_cidrs = vec!["127.0.0.0/8".into()];
            config.webhook.retry_schedule = vec!["0s".into(), "1s".into(), "1s".into(), "1s".into(), "1s".into()];
            config.webhook.disable_after = "1h".into();
            config.webhook.poll_interval = "20ms".into();
        })),
        backend,
        ..AppOptions::default()
    };
    let app = spawn_app_with(options).await;
    let partner = app.onboard_partner(10_000).await;
    let (failing, failing_url) = Receiver::start().await;
    failing.always_status.store(500, Ordering::SeqCst);
    let (endpoint, _) = create_endpoint(&app, &partner, json!({ "url": failing_url, "eventTypes": ["action.completed"] })).await;
    let (watcher, watcher_url) = Receiver::start().await;
    create_endpoint(&app, &partner, json!({ "url": watcher_url, "eventTypes": ["webhook_endpoint.unhealthy", "webhook_endpoint.disabled"] })).await;
    let submit = |key: &'static str| {
        let (app, partner) = (&app, &partner);
        async move {
            expect(
                &call(app, partner, Method::POST, "/v1/partner/actions/submit", serde_json::from_str(&action_body(key, "1", "jane")).expect("json"))
                    .await,
                200,
            )
        }
    };
    submit("h-1").await;
    failing.wait_for(1).await;
    // The failed attempt is recorded before the clock moves.
    eventually(Duration::from_secs(10), || {
        let (app, partner, endpoint) = (&app, &partner, &endpoint);
        async move { deliveries(app, partner, endpoint).await.iter().any(|delivery| delivery["attemptCount"].as_u64() >= Some(1)).then_some(()) }
    })
    .await;
    app.admin(Method::POST, "/api/v1/admin/clock", json!({ "advanceSeconds": 31 * 60 })).await;
    submit("h-2").await;
    let unhealthy = watcher.wait_for(1).await[0].json();
    assert_eq!((unhealthy["type"].as_str(), unhealthy["data"]["endpointId"].as_str()), (Some("webhook_endpoint.unhealthy"), Some(endpoint.as_str())));
    app.admin(Method::POST, "/api/v1/admin/clock", json!({ "advanceSeconds": 30 * 60 })).await;
    submit("h-3").await;
    let disabled = watcher.wait_for(2).await[1].json();
    assert_eq!(disabled["type"], "webhook_endpoint.disabled");
    let shown = expect(&call(&app, &partner, Method::GET, &format!("/v1/partner/webhooks/{endpoint}"), Value::Null).await, 200);
    assert_eq!(shown["status"], "DISABLED");
    let dashboard = expect(&call(&app, &partner, Method::GET, "/v1/partner/dashboard", Value::Null).await, 200);
    assert_eq!((dashboard["webhookHealth"]["disabled"].as_u64(), dashboard["webhookHealth"]["endpoints"].as_u64()), (Some(1), Some(2)));
    app.shutdown().await;
}

async fn a_rotated_secret_signs_beside_the_new_one_for_a_day(backend: StoreBackend) {
    let options = AppOptions { test_clock: true, ..allow_loopback(backend, "0s,1s") };
    let app = spawn_app_with(options).await;
    let partner = app.onboard_partner(10_000).await;
    let (receiver, url) = Receiver::start().await;
    let (endpoint, old_secret) = create_endpoint(&app, &partner, json!({ "url": url, "eventTypes": ["action.completed"] })).await;
    let rotated = expect(&call(&app, &partner, Method::POST, &format!("/v1/partner/webhooks/{endpoint}/rotate-secret"), Value::Null).await, 200);
    let new_secret = rotated["secret"].as_str().expect("the new secret, once").to_owned();
    assert_ne!(new_secret, old_secret);
    assert!(rotated["previousSecretExpiresAt"].is_string());
    let submit = |key: &'static str| {
        let (app, partner) = (&app, &partner);
        async move {
            expect(
                &call(app, partner, Method::POST, "/v1/partner/actions/submit", serde_json::from_str(&action_body(key, "1", "jane")).expect("json"))
                    .await,
                200,
            )
        }
    };
    submit("s-1").await;
    let during = receiver.wait_for(1).await[0].clone();
    assert_eq!(during.header("webhook-signature").split(' ').count(), 2, "v1,<new> v1,<old>");
    assert!(verify_standard(&new_secret, &during) && verify_standard(&old_secret, &during), "both secrets verify during the overlap");
    assert!(verify_sir(&new_secret, &during) && !verify_sir(&old_secret, &during), "X-SIR-Signature uses the new secret");

    app.admin(Method::POST, "/api/v1/admin/clock", json!({ "advanceSeconds": 25 * 3_600 })).await;
    submit("s-2").await;
    let after = receiver.wait_for(2).await[1].clone();
    assert_eq!(after.header("webhook-signature").split(' ').count(), 1, "the old secret stops after 24 h");
    assert!(verify_sir(&new_secret, &after));
    app.shutdown().await;
}

async fn private_targets_are_refused_without_the_allowlist(backend: StoreBackend) {
    let app = spawn_app_with(AppOptions { backend, ..AppOptions::default() }).await;
    let partner = app.onboard_partner(0).await;
    for url in ["http://127.0.0.1/hooks", "http://169.254.169.254/latest/meta-data", "http://10.0.0.1/", "http://[::1]:8080/", "http://localhost/"] {
        let refused = call(&app, &partner, Method::POST, "/v1/partner/webhooks", json!({ "url": url })).await;
        let body = expect(&refused, 400);
        assert_eq!((body["code"].as_str(), body["details"]["fields"][0]["field"].as_str()), (Some("VALIDATION_ERROR"), Some("url")), "{url}");
    }
    let listed = expect(&call(&app, &partner, Method::GET, "/v1/partner/webhooks", Value::Null).await, 200);
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(0), "nothing stored");
    app.shutdown().await;

    let app = spawn_app_with(allow_loopback(backend, "0s")).await;
    let partner = app.onboard_partner(0).await;
    expect(&call(&app, &partner, Method::POST, "/v1/partner/webhooks", json!({ "url": "http://127.0.0.1:9/hooks" })).await, 201);
    let still = call(&app, &partner, Method::POST, "/v1/partner/webhooks", json!({ "url": "http://169.254.169.254/" })).await;
    assert_eq!(still.status, 400, "only the allow-listed block opens");
    let live = app.onboard_partner_in("production", 0).await;
    let plain = call(&app, &live, Method::POST, "/v1/partner/webhooks", json!({ "url": "http://127.0.0.1:9/hooks" })).await;
    assert_eq!(plain.status, 400, "live endpoints must be HTTPS");
    app.shutdown().await;
}

/// The guard runs again at every delivery, for literal addresses and (through the client's
/// resolver) for names: endpoints registered while the operator allowed loopback get
/// nothing once that allowance is withdrawn, and each attempt records why.
async fn the_guard_refuses_at_delivery_time_too(backend: StoreBackend) {
    // `localhost` may also resolve to ::1 (a stock /etc/hosts): both loopbacks are allowed.
    let mut open = allow_loopback(backend, "0s,1s");
    open.tweak = Some(Arc::new(|config| {
        config.webhook.allowed_cidrs = vec!["127.0.0.0/8".into(), "::1/128".into()];
        config.webhook.retry_schedule = vec!["0s".into(), "1s".into()];
        config.webhook.poll_interval = "20ms".into();
    }));
    let mut app = spawn_app_with(open).await;
    let partner = app.onboard_partner(10_000).await;
    let (literal, literal_url) = Receiver::start().await;
    let (named, named_url) = Receiver::start().await;
    let named_url = named_url.replace("127.0.0.1", "localhost");
    let subscribed = |url: &str| json!({ "url": url, "eventTypes": ["action.completed"] });
    let (literal_endpoint, _) = create_endpoint(&app, &partner, subscribed(&literal_url)).await;
    let (named_endpoint, _) = create_endpoint(&app, &partner, subscribed(&named_url)).await;
    expect(&partner.submit(&action_body("guard-open", "1", "u")).await, 200);
    literal.wait_for(1).await;
    named.wait_for(1).await;

    let mut closed = allow_loopback(backend, "0s,1s");
    closed.tweak = Some(Arc::new(|config| {
        config.webhook.retry_schedule = vec!["0s".into(), "1s".into()];
        config.webhook.poll_interval = "20ms".into();
    }));
    app.restart_with(closed).await;
    let partner = Partner { address: app.address, ..partner };
    expect(&partner.submit(&action_body("guard-closed", "1", "u")).await, 200);
    for endpoint in [&literal_endpoint, &named_endpoint] {
        let failed = eventually(Duration::from_secs(20), || async {
            let log = deliveries(&app, &partner, endpoint).await;
            log.into_iter().find(|delivery| delivery["status"] == "FAILED")
        })
        .await;
        let attempts = failed["attempts"].as_array().expect("attempts");
        assert_eq!(attempts.len(), 2, "every attempt was made and refused: {failed}");
        for attempt in attempts {
            let error = attempt["error"].as_str().unwrap_or_default();
            assert!(error.contains("loopback"), "the attempt says why: {attempt}");
            assert!(attempt["statusCode"].is_null(), "nothing answered: no request left the engine");
        }
    }
    assert_eq!((literal.all().len(), named.all().len()), (1, 1), "no delivery reached a loopback receiver after the allowance went");
    app.shutdown().await;
}

async fn bad_webhook_input_is_refused_and_environments_stay_apart(backend: StoreBackend) {
    let app = spawn_app_with(allow_loopback(backend, "0s")).await;
    let partner = app.onboard_partner(0).await;
    let url = "http://127.0.0.1:9/hooks";
    for (body, field) in [
        (json!({}), "url"),
        (json!({ "url": "ftp://127.0.0.1/" }), "url"),
        (json!({ "url": url, "eventTypes": ["action.done"] }), "eventTypes[0]"),
        (json!({ "url": url, "eventTypes": [], "receiveAllEvents": false }), "eventTypes"),
        (json!({ "url": url, "headers": { "X-SIR-Signature": "forged" } }), "headers.X-SIR-Signature"),
        (json!({ "url": url, "headers": { "X-Bad": 5 } }), "headers.X-Bad"),
        (json!({ "url": url, "colour": "blue" }), "colour"),
    ] {
        let body = expect(&call(&app, &partner, Method::POST, "/v1/partner/webhooks", body).await, 400);
        assert_eq!(body["details"]["fields"][0]["field"], field, "{body}");
    }
    let (endpoint, _) = create_endpoint(&app, &partner, json!({ "url": url })).await;
    let path = format!("/v1/partner/webhooks/{endpoint}");
    assert_eq!(call(&app, &partner, Method::PATCH, &path, json!({ "status": "PAUSED" })).await.status, 400);
    assert_eq!(call(&app, &partner, Method::GET, "/v1/partner/events?after=x", Value::Null).await.status, 400);
    assert_eq!(call(&app, &partner, Method::GET, "/v1/partner/events?limit=101", Value::Null).await.status, 400);
    assert_eq!(
        call(&app, &partner, Method::POST, "/v1/partner/webhooks/deliveries/dlv_000000000000000000000000/redeliver", Value::Null).await.status,
        404
    );

    // The same partner's production key sees none of it.
    let live = app.issue_key(&partner.id, "production").await;
    assert_eq!(call(&app, &live, Method::GET, &path, Value::Null).await.status, 404);
    assert_eq!(call(&app, &live, Method::DELETE, &path, Value::Null).await.status, 404);
    assert_eq!(expect(&call(&app, &live, Method::GET, "/v1/partner/webhooks", Value::Null).await, 200)["data"].as_array().map(Vec::len), Some(0));
    // The publishable key may not read webhooks even signed (contract §3).
    let headers = partner.sign_with(&partner.public_key, "GET", "/v1/partner/webhooks", b"", app.engine().clock().now_ms() / 1000);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    assert_eq!(app.raw(Method::GET, "/v1/partner/webhooks", &headers, Bytes::new()).await.status, 403);

    let deleted = expect(&call(&app, &partner, Method::DELETE, &path, Value::Null).await, 200);
    assert_eq!(deleted["deleted"], true);
    assert_eq!(call(&app, &partner, Method::GET, &path, Value::Null).await.status, 404);
    app.shutdown().await;
}

async fn a_slow_endpoint_does_not_hold_up_other_partners(backend: StoreBackend) {
    let options = AppOptions {
        tweak: Some(Arc::new(|config| {
            config.webhook.allowed_cidrs = vec!["127.0.0.0/8".into()];
            config.webhook.endpoint_concurrency = 2;
            config.webhook.concurrency = 8;
            config.webhook.poll_interval = "20ms".into();
        })),
        backend,
        ..AppOptions::default()
    };
    let app = spawn_app_with(options).await;
    let slow_partner = app.onboard_partner(10_000).await;
    let fast_partner = app.onboard_partner(10_000).await;
    let (slow, slow_url) = Receiver::start().await;
    slow.delay_ms.store(30_000, Ordering::SeqCst);
    let (fast, fast_url) = Receiver::start().await;
    create_endpoint(&app, &slow_partner, json!({ "url": slow_url })).await;
    create_endpoint(&app, &fast_partner, json!({ "url": fast_url })).await;
    for index in 0..10 {
        expect(&slow_partner.submit(&action_body(&format!("slow-{index}"), "1", "jane")).await, 200);
    }
    let started = Instant::now();
    for index in 0..5 {
        expect(&fast_partner.submit(&action_body(&format!("fast-{index}"), "1", "jane")).await, 200);
    }
    fast.wait_for(10).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(20), "the fast partner's 10 events took {took:?} behind a 30 s endpoint");
    assert!(slow.all().len() <= 2, "the slow endpoint holds at most its own 2 slots");
    app.shutdown().await;
}

/// Durability: with the receiver down, events are queued; the engine is killed and
/// restarted; when the receiver comes up every event arrives, with its feed id.
async fn deliveries_survive_sigkill_while_the_receiver_is_down(backend: StoreBackend) {
    let temp = tempfile::tempdir().expect("temp dir");
    let data_dir = temp.path().join("data");
    let log = temp.path().join("engine.log");
    let schedule = ["0s"].into_iter().chain(std::iter::repeat_n("1s", 40)).collect::<Vec<_>>().join(",");
    let environment = [
        ("REWARD_WEBHOOK_ALLOWED_CIDRS", "127.0.0.0/8"),
        ("REWARD_WEBHOOK_RETRY_SCHEDULE", schedule.as_str()),
        ("REWARD_WEBHOOK_JITTER_PERCENT", "0"),
        ("REWARD_WAL_APPLY_INTERVAL_MS", "20"),
    ];
    let (mut child, address) = start_binary(&data_dir, backend, &log, &environment).await;
    let operator = Operator { address };
    let partner = operator.onboard_partner(100_000).await;
    let earlier = partner.signed(Method::GET, "/v1/partner/events?limit=100", "").await.json()["data"].as_array().map_or(0, Vec::len);
    let receiver_address = free_address();
    let body = json!({ "url": format!("http://{receiver_address}/hooks") }).to_string();
    let created = partner.signed(Method::POST, "/v1/partner/webhooks", &body).await;
    assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
    let secret = created.json()["secret"].as_str().expect("secret").to_owned();
    for index in 0..20 {
        assert_eq!(partner.submit(&action_body(&format!("k-{index}"), "1", "jane")).await.status, 200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.start_kill().expect("SIGKILL");
    child.wait().await.expect("killed");

    let (mut child, address) = start_binary(&data_dir, backend, &log, &environment).await;
    let partner = Partner { address, ..partner };
    let feed = partner.signed(Method::GET, "/v1/partner/events?limit=100", "").await.json();
    let expected: std::collections::BTreeSet<String> =
        feed["data"].as_array().expect("feed").iter().skip(earlier).map(|event| event["id"].as_str().expect("id").to_owned()).collect();
    assert_eq!(expected.len(), 40, "20 actions × (action.completed + transaction.completed)");
    let receiver = Receiver::start_at(receiver_address).await;
    let arrived = eventually(Duration::from_secs(30), || {
        let (receiver, expected) = (&receiver, &expected);
        async move {
            let ids: std::collections::BTreeSet<String> = receiver.all().iter().map(|received| received.header("webhook-id").to_owned()).collect();
            (ids == *expected).then_some(receiver.all())
        }
    })
    .await;
    assert!(arrived.iter().all(|delivery| verify_sir(&secret, delivery) && verify_standard(&secret, delivery)));
    eprintln!("{} deliveries for {} events after the kill", arrived.len(), expected.len());
    child.start_kill().expect("stop");
}

async fn a_deleted_endpoint_gets_nothing_more(backend: StoreBackend) {
    let app = spawn_app_with(allow_loopback(backend, "0s,1s,1s,1s,1s,1s,1s,1s")).await;
    let partner = app.onboard_partner(10_000).await;
    let (failing, url) = Receiver::start().await;
    failing.always_status.store(503, Ordering::SeqCst);
    let (endpoint, _) = create_endpoint(&app, &partner, json!({ "url": url })).await;
    for index in 0..5 {
        expect(&partner.submit(&action_body(&format!("d-{index}"), "1", "jane")).await, 200);
    }
    failing.wait_for(10).await;
    expect(&call(&app, &partner, Method::DELETE, &format!("/v1/partner/webhooks/{endpoint}"), Value::Null).await, 200);
    // Attempts already in flight may land; nothing is started after them.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let after_delete = failing.all().len();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(failing.all().len(), after_delete, "no attempt after the endpoint was deleted");
    app.shutdown().await;
}

/// §9: `Retry-After` is honoured (within bounds) and a 429 waits at least the back-off floor,
/// even when the schedule says sooner.
async fn retry_after_and_the_back_off_floor_delay_retries(backend: StoreBackend) {
    let options = AppOptions {
        tweak: Some(Arc::new(|config| {
            config.webhook.allowed_cidrs = vec!["127.0.0.0/8".into()];
            config.webhook.retry_schedule = vec!["0s".into(), "100ms".into(), "100ms".into()];
            config.webhook.jitter_percent = 0;
            config.webhook.backoff_floor = "1s".into();
            config.webhook.retry_after_max = "3s".into();
            config.webhook.poll_interval = "20ms".into();
        })),
        backend,
        ..AppOptions::default()
    };
    let app = spawn_app_with(options).await;
    let partner = app.onboard_partner(10_000).await;
    let (receiver, url) = Receiver::start().await;
    receiver.fail_status.store(429, Ordering::SeqCst);
    create_endpoint(&app, &partner, json!({ "url": url, "eventTypes": ["action.completed"] })).await;

    // A 429 asking for 2 s: the retry waits 2 s, not the schedule's 100 ms.
    receiver.fail_first.store(1, Ordering::SeqCst);
    receiver.retry_after_secs.store(2, Ordering::SeqCst);
    expect(&partner.submit(&action_body("ra-1", "1", "jane")).await, 200);
    let attempts = receiver.wait_for(2).await;
    let gap = (attempts[1].at - attempts[0].at).as_secs_f64();
    assert!((1.95..4.0).contains(&gap), "Retry-After 2 s honoured: {gap:.2} s");

    // A 429 with no Retry-After: at least the 1 s floor.
    receiver.fail_first.store(1, Ordering::SeqCst);
    receiver.retry_after_secs.store(0, Ordering::SeqCst);
    expect(&partner.submit(&action_body("ra-2", "1", "jane")).await, 200);
    let attempts = receiver.wait_for(4).await;
    let gap = (attempts[3].at - attempts[2].at).as_secs_f64();
    assert!((0.95..3.0).contains(&gap), "a 429 backs off at least the floor: {gap:.2} s");
    app.shutdown().await;
}

/// Every contract event type, as the subscription error lists them (contract §9, in order).
const EVENT_TYPES_MESSAGE: &str = "must be one of action.completed, action.failed, action.reversed, transaction.completed, \
    token_pool.low_balance, token_pool.refilled, campaign.status_changed, campaign.budget_exhausted, partner.status_changed, \
    api_key.expiring, donation.completed, webhook.test, webhook_endpoint.unhealthy, webhook_endpoint.disabled, webhook.delivery_exhausted";

async fn subscriptions_take_each_contract_event_type_once_and_refuse_others(backend: StoreBackend) {
    let app = spawn_app_with(allow_loopback(backend, "0s")).await;
    let partner = app.onboard_partner(0).await;
    let url = "http://127.0.0.1:9/hooks";
    let every_type: Vec<&str> = EVENT_TYPES_MESSAGE.trim_start_matches("must be one of ").split(", ").collect();
    let created = expect(&call(&app, &partner, Method::POST, "/v1/partner/webhooks", json!({ "url": url, "eventTypes": every_type })).await, 201);
    assert_eq!(created["eventTypes"], json!(every_type), "{created}");
    for (types, field, message) in [
        (json!(["action.done"]), "eventTypes[0]", EVENT_TYPES_MESSAGE),
        (json!(["action.completed", "Action.Completed"]), "eventTypes[1]", EVENT_TYPES_MESSAGE),
        (json!(["action.completed", 5]), "eventTypes[1]", EVENT_TYPES_MESSAGE),
        (json!(["webhook.test", "webhook.test"]), "eventTypes[1]", "appears twice"),
    ] {
        let body = expect(&call(&app, &partner, Method::POST, "/v1/partner/webhooks", json!({ "url": url, "eventTypes": types })).await, 400);
        assert_eq!(body["code"], "VALIDATION_ERROR", "{body}");
        assert_eq!((&body["details"]["fields"][0]["field"], &body["details"]["fields"][0]["message"]), (&json!(field), &json!(message)), "{body}");
    }
    app.shutdown().await;
}

crate::backend_tests!(
    every_delivery_verifies_under_both_schemes,
    retries_follow_the_schedule_with_one_event_id_then_exhaust,
    gone_disables_at_once_and_the_partner_re_enables,
    an_endpoint_failing_for_the_whole_window_is_disabled,
    a_rotated_secret_signs_beside_the_new_one_for_a_day,
    private_targets_are_refused_without_the_allowlist,
    bad_webhook_input_is_refused_and_environments_stay_apart,
    the_guard_refuses_at_delivery_time_too,
    a_slow_endpoint_does_not_hold_up_other_partners,
    deliveries_survive_sigkill_while_the_receiver_is_down,
    a_deleted_endpoint_gets_nothing_more,
    retry_after_and_the_back_off_floor_delay_retries,
    subscriptions_take_each_contract_event_type_once_and_refuse_others,
);
