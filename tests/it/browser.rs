//! The operator dashboard, the API docs page and the load report in a real browser: headless Chromium signs
//! in with the admin token, sees live figures change under load and match `/metrics`, and
//! renders a load report; the screenshots are kept in `target/browser-artifacts/`.
//!
//! Needs `chromium` and Python's `websocket-client` (`scripts/install_browser.sh`, which
//! `.ci/run` runs first). Without them the test fails under CI (`CI` set), and elsewhere
//! says so and does nothing. Stale artifacts are removed first, and `.ci/run` checks that
//! this run wrote its screenshots, so a skipped run cannot pass for a run.

use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use reward_actors::store::StoreBackend;
use serde_json::Value;

use crate::support::{ADMIN_TOKEN, action_body, metric, spawn_app};

fn browser_available() -> bool {
    let chromium = std::process::Command::new("chromium").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    let client = std::process::Command::new("python3").args(["-c", "import websocket"]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    chromium.is_ok_and(|status| status.success()) && client.is_ok_and(|status| status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_live_figures_that_match_metrics() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let artifacts = root.join("target/browser-artifacts");
    if artifacts.exists() {
        std::fs::remove_dir_all(&artifacts).expect("stale artifacts are removed");
    }
    if !browser_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs the browser test: chromium or python3 websocket-client is missing (scripts/install_browser.sh)"
        );
        eprintln!("SKIPPED: chromium or python3 websocket-client missing; run scripts/install_browser.sh");
        return;
    }
    std::fs::create_dir_all(&artifacts).expect("artifact dir");
    let app = spawn_app(StoreBackend::Redb).await;
    let partner = app.onboard_partner(10_000).await;
    let temp = tempfile::tempdir().expect("temp dir");
    let marker = temp.path().join("loaded");
    let ready = temp.path().join("ready");

    // A load report to render, from the real renderer.
    let mut latency = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    for micros in [800u64, 1_100, 1_900, 2_500, 7_000, 30_000] {
        latency.record(micros).expect("in range");
    }
    let summary: reward_bench::loadgen::Summary = serde_json::from_value(serde_json::json!({
        "target": "engine", "connections": 2, "partners": 1, "durationSecs": 2.0, "requests": 6, "requestsPerSec": 3.0,
        "succeeded": 6, "succeededPerSec": 3.0, "p50Ms": 1.9, "p99Ms": 30.0, "p999Ms": 30.0, "maxMs": 30.0, "statuses": { "200": 6 }
    }))
    .expect("summary");
    let samples =
        [reward_bench::report::Sample { second: 1, completed: 3, failed: 0 }, reward_bench::report::Sample { second: 2, completed: 3, failed: 0 }];
    let report = temp.path().join("report.html");
    std::fs::write(&report, reward_bench::report::render(&summary, &samples, &latency, "browser test")).expect("report");

    let base = format!("http://{}", app.address);
    let screenshot = artifacts.join("dashboard.png");
    let child = tokio::process::Command::new("python3")
        .arg(root.join("scripts/browser_check.py"))
        .args([base.as_str(), ADMIN_TOKEN, screenshot.to_str().expect("path"), report.to_str().expect("path")])
        .env("BROWSER_CHECK_WAIT_FOR", &marker)
        .env("BROWSER_CHECK_READY", &ready)
        .env("BROWSER_CHECK_EXPECT_ACTIONS", "25")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the browser check starts");
    // Once the page shows its first figures, load while it watches: 25 actions.
    crate::support::eventually(Duration::from_secs(60), || {
        let ready = ready.clone();
        async move { ready.exists().then_some(()) }
    })
    .await;
    for index in 0..25 {
        assert_eq!(partner.submit(&action_body(&format!("browser-{index}"), "1", "viewer")).await.status, 200);
    }
    std::fs::write(&marker, b"done").expect("marker");
    let output = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output()).await.expect("the browser check ends").expect("runs");
    assert!(output.status.success(), "browser check failed: {}", String::from_utf8_lossy(&output.stderr));
    let seen: Value = serde_json::from_slice(&output.stdout).expect("the check prints JSON");
    let text = String::from_utf8_lossy(&app.raw(Method::GET, "/metrics", &[], Bytes::new()).await.body).into_owned();

    assert_eq!(seen["signedOutFirst"], true, "the page asks for the token first");
    assert_eq!(seen["urlHasToken"], false);
    assert_eq!((seen["storage"]["local"].as_u64(), seen["storage"]["cookie"].as_str()), (Some(0), Some("")), "session storage only");
    assert!(seen["updatesSecond"].as_u64() > seen["updatesFirst"].as_u64(), "it keeps refreshing: {seen}");
    let actions = |snapshot: &str| seen[snapshot]["stat-actions-total"].as_str().and_then(|text| text.parse::<f64>().ok()).expect("a number");
    let handled = metric(&text, r#"reward_actor_messages_total{message="submit_action"}"#);
    assert_eq!(actions("second") - actions("first"), 25.0, "the figure moved by the load: {seen}");
    assert_eq!(actions("second"), handled, "and matches /metrics");
    let requests = |snapshot: &str| seen[snapshot]["stat-requests-total"].as_str().and_then(|text| text.parse::<f64>().ok()).expect("a number");
    assert!(requests("second") >= requests("first") + 25.0);
    assert_eq!(seen["second"]["stat-actors-live"].as_str().map(|live| live != "0"), Some(true));
    assert_eq!(seen["errors"].as_array().map(Vec::len), Some(0), "no script errors: {seen}");
    assert_eq!((seen["report"]["svgs"].as_u64(), seen["report"]["bars"].as_u64()), (Some(2), Some(40)), "the load report renders");
    let documented = reward_engine::http::openapi::documented_routes().len() as u64;
    assert_eq!(seen["docs"]["operations"].as_u64(), Some(documented), "the API docs page renders every operation: {seen}");
    assert!(std::fs::metadata(&screenshot).is_ok_and(|file| file.len() > 10_000), "a screenshot was saved");
    app.shutdown().await;
}
