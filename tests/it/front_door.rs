//! The front door (contract §2–§5): rate limits, Basic auth, widget routes, rotation and
//! revocation, lifecycle events, top-up requests.

use std::sync::Arc;
use std::time::Duration;

use hyper::Method;
use reward_actors::domain::ids::Id;
use reward_actors::domain::model::{Environment, PartnerEnv};
use reward_actors::store::StoreBackend;
use serde_json::{Value, json};

use crate::support::{AppOptions, Operator, Partner, action_body, code, eventually, spawn_app, spawn_app_with};

fn event_types(app: &crate::support::TestApp, partner: &Partner, environment: Environment) -> Vec<String> {
    let partner_env = PartnerEnv::new(Id::parse_hex(&partner.id).expect("id"), environment);
    app.engine().webhooks().list_events(partner_env, 0, 100).expect("events").items.into_iter().map(|event| event.event_type.to_string()).collect()
}

async fn set_limit(operator: &Operator, partner: &Partner, hourly: u64, per_minute: u64) {
    let body = json!({ "tier": "CUSTOM", "rateLimit": { "hourly": hourly, "perMinute": per_minute } });
    let response = operator.admin(Method::PATCH, &format!("/api/v1/admin/partners/{}", partner.id), body).await;
    assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
}

async fn rate_limits_answer_429_with_the_contract_headers(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(1_000).await;
    set_limit(&app, &partner, 100, 3).await;
    for (index, remaining) in [99, 98, 97].into_iter().enumerate() {
        let response = partner.submit(&action_body(&format!("rl-{index}"), "1", "u")).await;
        assert_eq!(response.status, 200);
        assert_eq!(response.header("x-ratelimit-limit"), Some("100"));
        assert_eq!(response.header("x-ratelimit-remaining"), Some(remaining.to_string().as_str()));
        let reset: u64 = response.header("x-ratelimit-reset").and_then(|value| value.parse().ok()).expect("reset");
        assert!(reset >= crate::support::now_secs() && reset <= crate::support::now_secs() + 3_600);
        assert_eq!(response.header("ratelimit-policy"), Some(r#""hourly";q=100;w=3600, "burst";q=3;w=60"#));
        assert!(response.header("ratelimit").is_some_and(|value| value.starts_with(&format!("\"hourly\";r={remaining};t="))));
    }
    let refused = partner.submit(&action_body("rl-3", "1", "u")).await;
    assert_eq!(code(&refused), (429, "RATE_LIMITED".into()));
    let retry_after: u64 = refused.header("retry-after").and_then(|value| value.parse().ok()).expect("Retry-After");
    assert!(retry_after >= 1);
    assert_eq!(refused.header("x-ratelimit-retryafter"), refused.header("retry-after"));
    assert_eq!(refused.json()["details"]["retryAfterSeconds"], retry_after);
    // The burst refused it: the hourly quota (X-RateLimit-*) is where it was, the burst is empty.
    assert_eq!(refused.header("x-ratelimit-remaining"), Some("97"));
    assert!(refused.header("ratelimit").is_some_and(|value| value.contains(r#""burst";r=0;"#)), "{:?}", refused.header("ratelimit"));
    // A refusal after authentication but before the rate-limit step still carries the headers.
    let narrow = app.issue_key_with(&partner.id, json!({ "environment": "sandbox", "name": "narrow", "scopes": ["pools:read"] })).await;
    let scoped_out = narrow.submit(&action_body("rl-scope", "1", "u")).await;
    assert_eq!(code(&scoped_out), (403, "INSUFFICIENT_SCOPE".into()));
    assert_eq!(scoped_out.header("x-ratelimit-limit"), Some("100"));
    // A leaked publishable key has its own budget: the widget still answers.
    assert_eq!(partner.widget(Method::GET, "/v1/partner/config", None).await.status, 200);
    // A changed limit applies at once; the refused request cost nothing.
    set_limit(&app, &partner, 100, 50).await;
    assert_eq!(partner.pool().await["balance"], 997);
    assert_eq!(partner.submit(&action_body("rl-3", "1", "u")).await.status, 200);
    app.shutdown().await;
}

async fn basic_auth_works_in_sandbox_and_in_production_only_when_allowed(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let sandbox = app.onboard_partner(1_000).await;
    let response = sandbox.basic(Method::POST, "/v1/partner/actions/submit", &action_body("basic-1", "2", "u")).await;
    assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
    let wrong_pair = Partner { public_key: format!("pk_test_{}", "1".repeat(64)), ..sandbox.clone() };
    assert_eq!(code(&wrong_pair.basic(Method::GET, "/v1/partner/me", "").await), (401, "INVALID_API_KEY".into()));
    let publishable_as_secret = Partner { secret_key: sandbox.public_key.clone(), ..sandbox.clone() };
    assert_eq!(code(&publishable_as_secret.basic(Method::GET, "/v1/partner/me", "").await), (401, "INVALID_API_KEY".into()));

    let production = app.issue_key(&sandbox.id, "production").await;
    assert_eq!(code(&production.basic(Method::GET, "/v1/partner/me", "").await), (401, "BASIC_AUTH_NOT_ALLOWED".into()));
    app.admin(Method::PATCH, &format!("/api/v1/admin/partners/{}", sandbox.id), json!({ "allowBasicAuth": true })).await;
    let allowed = production.basic(Method::GET, "/v1/partner/me", "").await;
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.json()["environment"], "production");
    app.shutdown().await;
}

async fn rotation_has_no_downtime_and_revocation_is_immediate(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let old = app.onboard_partner(1_000).await;
    let old_id = old.signed(Method::GET, "/v1/partner/me", "").await.json()["keyId"].as_str().expect("key id").to_owned();
    let rotated = app.admin(Method::POST, &format!("/api/v1/admin/partners/{}/keys/{old_id}/rotate", old.id), Value::Null).await;
    assert_eq!(rotated.status, 201, "{}", String::from_utf8_lossy(&rotated.body));
    let rotated = rotated.json();
    assert_eq!(rotated["rotatedFrom"], old_id.as_str());
    assert_eq!(rotated["scopes"].as_array().map(Vec::len), Some(12));
    let new = Partner {
        public_key: rotated["publicKey"].as_str().expect("pk").into(),
        secret_key: rotated["secretKey"].as_str().expect("sk").into(),
        hmac_secret: rotated["hmacSecret"].as_str().expect("hmac").into(),
        ..old.clone()
    };
    assert_eq!(old.submit(&action_body("rot-1", "1", "u")).await.status, 200, "the old pair works until revoked");
    assert_eq!(new.submit(&action_body("rot-2", "1", "u")).await.status, 200, "the new pair works at once");

    let revoked = app.admin(Method::DELETE, &format!("/api/v1/admin/partners/{}/keys/{old_id}", old.id), Value::Null).await;
    assert_eq!((revoked.status, revoked.json()["status"].as_str()), (200, Some("REVOKED")));
    assert_eq!(code(&old.submit(&action_body("rot-3", "1", "u")).await), (401, "KEY_REVOKED".into()), "revoked on the very next request");
    assert_eq!(code(&old.widget(Method::GET, "/v1/partner/config", None).await), (401, "KEY_REVOKED".into()));
    assert_eq!(new.submit(&action_body("rot-3", "1", "u")).await.status, 200);

    let listed = app.admin(Method::GET, &format!("/api/v1/admin/partners/{}/keys", old.id), Value::Null).await;
    let text = String::from_utf8_lossy(&listed.body).into_owned();
    for secret in [&old.secret_key, &old.hmac_secret, &new.secret_key, &new.hmac_secret, &old.public_key] {
        assert!(!text.contains(secret.as_str()), "a key list shows no secret");
    }
    assert_eq!(listed.json()["data"].as_array().map(Vec::len), Some(2));
    app.shutdown().await;
}

async fn widget_routes_take_the_publishable_key_with_cors(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(0).await;
    let path = format!("/api/v1/admin/partners/{}", partner.id);
    app.admin(Method::PATCH, &path, json!({ "allowedOrigins": ["https://shop.example.com"], "ipAllowlist": ["203.0.113.0/24"] })).await;

    let config = partner.widget(Method::GET, "/v1/partner/config", Some("https://shop.example.com")).await;
    assert_eq!(config.status, 200, "widget routes are exempt from the IP allowlist");
    assert_eq!(config.header("access-control-allow-origin"), Some("https://shop.example.com"));
    let body = config.json();
    assert_eq!((body["id"].as_str(), body["isActive"].as_bool()), (Some(partner.id.as_str()), Some(true)));
    for field in ["name", "slug", "enabledFeatures", "rateLimit", "webhookUrl", "tipConfig"] {
        assert!(body.get(field).is_some(), "config lacks {field}");
    }
    let unknown = Partner { public_key: format!("pk_test_{}", "2".repeat(64)), ..partner.clone() };
    let refused = unknown.widget(Method::GET, "/v1/partner/config", Some("https://shop.example.com")).await;
    assert_eq!(code(&refused), (401, "INVALID_API_KEY".into()));
    assert_eq!(refused.header("access-control-allow-origin"), Some("https://shop.example.com"), "a browser can read the error");
    let other_origin = partner.widget(Method::GET, "/v1/partner/config", Some("https://evil.example.com")).await;
    assert_eq!(other_origin.header("access-control-allow-origin"), None);
    let preflight = app.raw(Method::OPTIONS, "/v1/partner/config", &[("origin", "https://shop.example.com")], bytes::Bytes::new()).await;
    assert_eq!(preflight.status, 204);
    assert!(preflight.header("access-control-allow-headers").is_some_and(|value| value.contains("X-Partner-Key")));

    // A secret key never works unsigned; a publishable key cannot reach server routes unsigned.
    let unsigned_secret = Partner { public_key: partner.secret_key.clone(), ..partner.clone() };
    assert_eq!(code(&unsigned_secret.widget(Method::GET, "/v1/partner/config", None).await), (401, "MISSING_SIGNATURE".into()));
    assert_eq!(code(&partner.widget(Method::GET, "/v1/partner/token-pools", None).await), (401, "MISSING_SIGNATURE".into()));
    // Server routes keep the allowlist.
    assert_eq!(code(&partner.signed(Method::GET, "/v1/partner/me", "").await), (403, "IP_NOT_ALLOWED".into()));
    app.shutdown().await;
}

async fn status_changes_and_expiring_keys_are_recorded_as_events(backend: StoreBackend) {
    let app = spawn_app_with(AppOptions {
        backend,
        test_clock: true,
        tweak: Some(Arc::new(|config| config.server.maintenance_interval_ms = 50)),
        ..AppOptions::default()
    })
    .await;
    let partner = app.onboard_partner(0).await;
    app.admin(Method::PATCH, &format!("/api/v1/admin/partners/{}", partner.id), json!({ "status": "SUSPENDED" })).await;
    for environment in Environment::ALL {
        let changes: Vec<String> = event_types(&app, &partner, environment).into_iter().filter(|kind| kind == "partner.status_changed").collect();
        assert_eq!(changes.len(), 2, "PENDING→ACTIVE and ACTIVE→SUSPENDED in {environment:?}");
    }
    app.admin(Method::PATCH, &format!("/api/v1/admin/partners/{}", partner.id), json!({ "status": "ACTIVE" })).await;

    let expires_at = reward_actors::engine::clock::format_timestamp(app.engine().clock().now_ms() + 30 * 86_400_000);
    app.issue_key_with(&partner.id, json!({ "environment": "sandbox", "name": "expiring", "expiresAt": expires_at })).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !event_types(&app, &partner, Environment::Sandbox).contains(&"api_key.expiring".to_owned()),
        "30 days out is not within the 7-day notice"
    );
    app.admin(Method::POST, "/api/v1/admin/clock", json!({ "advanceSeconds": 24 * 86_400 })).await;
    eventually(Duration::from_secs(10), || async {
        event_types(&app, &partner, Environment::Sandbox).contains(&"api_key.expiring".to_owned()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let notices = event_types(&app, &partner, Environment::Sandbox).into_iter().filter(|kind| kind == "api_key.expiring").count();
    assert_eq!(notices, 1, "emitted once");
    app.shutdown().await;
}

async fn top_up_requests_are_approved_or_rejected_once(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(0).await;
    let request = |tokens: u64| {
        let partner = partner.clone();
        async move {
            partner
                .signed(Method::POST, "/v1/partner/token-pools/request", &json!({ "tokens": tokens, "reason": "holiday campaign" }).to_string())
                .await
        }
    };
    let first = request(5_000).await;
    assert_eq!(first.status, 201, "{}", String::from_utf8_lossy(&first.body));
    assert_eq!(first.json()["status"], "PENDING");
    let second = request(7).await.json();
    let pending = app.admin(Method::GET, "/api/v1/admin/token-pool-requests?status=PENDING", Value::Null).await.json();
    assert_eq!(pending["data"].as_array().map(Vec::len), Some(2));

    let approve_path = format!("/api/v1/admin/token-pool-requests/{}/approve", first.json()["id"].as_str().expect("id"));
    let approved = app.admin(Method::POST, &approve_path, Value::Null).await;
    assert_eq!(approved.status, 200, "{}", String::from_utf8_lossy(&approved.body));
    assert_eq!(approved.json()["request"]["status"], "APPROVED");
    assert_eq!(partner.pool().await["balance"], 5_000);
    assert_eq!(code(&app.admin(Method::POST, &approve_path, Value::Null).await), (409, "CONFLICT".into()));
    assert_eq!(partner.pool().await["balance"], 5_000, "a second decision allocates nothing");

    let reject_path = format!("/api/v1/admin/token-pool-requests/{}/reject", second["id"].as_str().expect("id"));
    let rejected = app.admin(Method::POST, &reject_path, json!({ "note": "not this quarter" })).await.json();
    assert_eq!((rejected["status"].as_str(), rejected["decisionNote"].as_str()), (Some("REJECTED"), Some("not this quarter")));
    assert_eq!(code(&app.admin(Method::POST, &reject_path, Value::Null).await), (409, "CONFLICT".into()));
    let publishable = Partner { secret_key: partner.public_key.clone(), ..partner.clone() };
    let refused = publishable.signed(Method::POST, "/v1/partner/token-pools/request", r#"{"tokens":1,"reason":"x"}"#).await;
    assert_eq!(code(&refused), (403, "SECRET_KEY_REQUIRED".into()));
    app.shutdown().await;
}

crate::backend_tests!(
    rate_limits_answer_429_with_the_contract_headers,
    basic_auth_works_in_sandbox_and_in_production_only_when_allowed,
    rotation_has_no_downtime_and_revocation_is_immediate,
    widget_routes_take_the_publishable_key_with_cors,
    status_changes_and_expiring_keys_are_recorded_as_events,
    top_up_requests_are_approved_or_rejected_once
);
