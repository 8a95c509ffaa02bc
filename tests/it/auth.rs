//! Who may call what: key state, partner status, scopes, features and tenancy.

use std::sync::Arc;

use hyper::Method;
use reward_actors::store::StoreBackend;
use serde_json::json;

use crate::support::{AppOptions, action_body, code, expect, spawn_app, spawn_app_with};

async fn partner_status_gates_every_call(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(1_000).await;
    let path = format!("/api/v1/admin/partners/{}", partner.id);

    app.admin(Method::PATCH, &path, json!({ "status": "SUSPENDED" })).await;
    assert_eq!(code(&partner.submit(&action_body("s-1", "1", "u")).await), (401, "PARTNER_SUSPENDED".into()));
    app.admin(Method::PATCH, &path, json!({ "status": "ACTIVE" })).await;
    assert_eq!(partner.submit(&action_body("s-1", "1", "u")).await.status, 200, "reactivation is effective at once");
    app.admin(Method::PATCH, &path, json!({ "status": "CLOSED" })).await;
    assert_eq!(code(&partner.submit(&action_body("s-2", "1", "u")).await), (401, "PARTNER_NOT_ACTIVE".into()));

    let pending =
        app.admin(Method::POST, "/api/v1/admin/partners", json!({ "name": "Pending Co", "contactEmail": "p@pending.example" })).await.json();
    let pending_partner = app.issue_key(pending["id"].as_str().expect("id"), "sandbox").await;
    assert_eq!(code(&pending_partner.submit(&action_body("p-1", "1", "u")).await), (401, "PARTNER_NOT_ACTIVE".into()));
    app.shutdown().await;
}

async fn scopes_publishable_keys_and_features(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(1_000).await;
    let reader =
        app.issue_key_with(&partner.id, json!({ "environment": "sandbox", "name": "reader", "scopes": ["actions:read", "pools:read"] })).await;
    let refused = reader.submit(&action_body("r-1", "1", "u")).await;
    assert_eq!(code(&refused), (403, "INSUFFICIENT_SCOPE".into()));
    assert_eq!(refused.json()["details"]["requiredScope"], "actions:write");
    assert_eq!(code(&reader.balance("u").await), (403, "INSUFFICIENT_SCOPE".into()));
    assert_eq!(reader.signed(Method::GET, "/v1/partner/token-pools", "").await.status, 200);

    // A publishable key has its pair's scopes, narrowed to reads.
    let reader_publishable = crate::support::Partner { secret_key: reader.public_key.clone(), ..reader.clone() };
    assert_eq!(reader_publishable.signed(Method::GET, "/v1/partner/token-pools", "").await.status, 200);
    assert_eq!(code(&reader_publishable.balance("u").await), (403, "INSUFFICIENT_SCOPE".into()), "users:read is not in the pair's scopes");

    // A signed publishable key may read pools (a *:read scope), never write.
    let publishable = crate::support::Partner { secret_key: partner.public_key.clone(), ..partner.clone() };
    assert_eq!(publishable.signed(Method::GET, "/v1/partner/token-pools", "").await.status, 200);
    assert_eq!(code(&publishable.submit(&action_body("pk-1", "1", "u")).await), (403, "SECRET_KEY_REQUIRED".into()));

    app.admin(Method::PATCH, &format!("/api/v1/admin/partners/{}", partner.id), json!({ "enabledFeatures": ["DONATIONS"] })).await;
    assert_eq!(code(&partner.submit(&action_body("f-1", "1", "u")).await), (403, "FEATURE_DISABLED".into()));
    app.shutdown().await;
}

async fn sandbox_and_production_and_partners_never_see_each_other(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let sandbox = app.onboard_partner(1_000).await;
    let production = app.issue_key(&sandbox.id, "production").await;
    assert_eq!(production.allocate(&app, 500, "live-pool").await.status, 201);
    let other = app.onboard_partner(1_000).await;

    let action = sandbox.submit(&action_body("t-1", "10", "shared_user")).await.json();
    let action_path = format!("/v1/partner/actions/{}", action["actionId"].as_str().expect("id"));
    assert_eq!(sandbox.signed(Method::GET, &action_path, "").await.status, 200);
    assert_eq!(code(&production.signed(Method::GET, &action_path, "").await), (404, "NOT_FOUND".into()));
    assert_eq!(code(&other.signed(Method::GET, &action_path, "").await), (404, "NOT_FOUND".into()));
    assert_eq!(code(&production.balance("shared_user").await), (404, "USER_NOT_FOUND".into()));
    assert_eq!(code(&other.balance("shared_user").await), (404, "USER_NOT_FOUND".into()));

    // The same idempotency key in another environment is another action.
    let live = production.submit(&action_body("t-1", "10", "shared_user")).await;
    assert_eq!(live.status, 200);
    assert_eq!(production.pool().await["balance"], 490);
    assert_eq!(sandbox.pool().await["balance"], 990);
    assert_eq!(sandbox.balance("shared_user").await.json()["available"], 10);
    app.shutdown().await;
}

async fn the_ip_allowlist_refuses_other_addresses(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(1_000).await;
    let path = format!("/api/v1/admin/partners/{}", partner.id);
    app.admin(Method::PATCH, &path, json!({ "ipAllowlist": ["203.0.113.0/24"] })).await;
    assert_eq!(code(&partner.submit(&action_body("ip-1", "1", "u")).await), (403, "IP_NOT_ALLOWED".into()));
    app.admin(Method::PATCH, &path, json!({ "ipAllowlist": ["203.0.113.0/24", "127.0.0.0/8"] })).await;
    assert_eq!(partner.submit(&action_body("ip-1", "1", "u")).await.status, 200);
    let bad = app.admin(Method::PATCH, &path, json!({ "ipAllowlist": ["10.0.0.0/33"] })).await;
    assert_eq!(bad.status, 400);

    // The finding: an IPv4-mapped block used to wrap its mask to 0 and let every IPv4 client
    // in. It is now its IPv4 network, shown as such, and 127.0.0.1 is outside it.
    let mapped = expect(&app.admin(Method::PATCH, &path, json!({ "ipAllowlist": ["::ffff:10.0.0.0/104"] })).await, 200);
    assert_eq!(mapped["ipAllowlist"], json!(["10.0.0.0/8"]));
    assert_eq!(code(&partner.submit(&action_body("ip-2", "1", "u")).await), (403, "IP_NOT_ALLOWED".into()));
    let mapped_loopback = expect(&app.admin(Method::PATCH, &path, json!({ "ipAllowlist": ["::ffff:127.0.0.0/104"] })).await, 200);
    assert_eq!(mapped_loopback["ipAllowlist"], json!(["127.0.0.0/8"]));
    assert_eq!(partner.submit(&action_body("ip-2", "1", "u")).await.status, 200);
    // Other IPv6 forms of IPv4 networks would silently match nothing: refused, with the reason.
    for carrier in ["64:ff9b::/96", "2002:7f00::/24", "::127.0.0.0/104", "127.0.0.1"] {
        let refused = app.admin(Method::PATCH, &path, json!({ "ipAllowlist": ["203.0.113.0/24", carrier] })).await;
        assert_eq!(code(&refused), (400, "VALIDATION_ERROR".into()), "{carrier}");
    }
    let unchanged = expect(&app.admin(Method::GET, &path, serde_json::Value::Null).await, 200);
    assert_eq!(unchanged["ipAllowlist"], json!(["127.0.0.0/8"]), "a refused patch changes nothing");
    app.shutdown().await;
}

async fn a_proxy_header_is_trusted_only_when_configured(backend: StoreBackend) {
    for trusted in [false, true] {
        let app = spawn_app_with(AppOptions {
            backend,
            tweak: trusted.then(|| {
                Arc::new(|config: &mut reward_engine::config::Config| {
                    config.server.client_ip_header = Some(axum::http::HeaderName::from_static("x-forwarded-for"))
                }) as crate::support::TweakConfig
            }),
            ..AppOptions::default()
        })
        .await;
        let partner = app.onboard_partner(0).await;
        app.admin(Method::PATCH, &format!("/api/v1/admin/partners/{}", partner.id), json!({ "ipAllowlist": ["203.0.113.0/24"] })).await;
        let mut headers = partner.sign_with(&partner.secret_key, "GET", "/v1/partner/me", b"", crate::support::now_secs());
        headers.push(("x-forwarded-for".into(), "10.9.9.9, 203.0.113.9".into()));
        let headers: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
        let response = crate::support::request(app.address, Method::GET, "/v1/partner/me", &headers, bytes::Bytes::new()).await;
        let expected = if trusted { (200, String::new()) } else { (403, "IP_NOT_ALLOWED".to_owned()) };
        assert_eq!((response.status, response.json()["code"].as_str().unwrap_or("").to_owned()), expected, "trusted: {trusted}");
        app.shutdown().await;
    }
}

async fn expired_keys_are_refused(backend: StoreBackend) {
    let app = spawn_app_with(AppOptions { backend, test_clock: true, ..AppOptions::default() }).await;
    let partner = app.onboard_partner(1_000).await;
    let expires_at = reward_actors::engine::clock::format_timestamp(app.engine().clock().now_ms() + 30_000);
    let expiring = app.issue_key_with(&partner.id, json!({ "environment": "sandbox", "name": "short", "expiresAt": expires_at })).await;
    assert_eq!(expiring.submit(&action_body("e-1", "1", "u")).await.status, 200);
    app.admin(Method::POST, "/api/v1/admin/clock", json!({ "advanceSeconds": 60 })).await;
    assert_eq!(code(&expiring.submit(&action_body("e-2", "1", "u")).await), (401, "KEY_EXPIRED".into()));
    assert_eq!(partner.submit(&action_body("e-3", "1", "u")).await.status, 200, "other keys keep working");
    app.shutdown().await;
}

async fn the_admin_api_needs_the_admin_token(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    for authorization in [None, Some("Bearer wrong-token-0123456789"), Some("Basic abc")] {
        let headers: Vec<(&str, &str)> = authorization.iter().map(|value| ("authorization", *value)).collect();
        let response = app.raw(Method::GET, "/api/v1/admin/partners", &headers, bytes::Bytes::new()).await;
        assert_eq!(code(&response), (401, "INVALID_TOKEN".into()));
    }
    app.shutdown().await;
}

crate::backend_tests!(
    a_proxy_header_is_trusted_only_when_configured,
    the_ip_allowlist_refuses_other_addresses,
    partner_status_gates_every_call,
    scopes_publishable_keys_and_features,
    sandbox_and_production_and_partners_never_see_each_other,
    expired_keys_are_refused,
    the_admin_api_needs_the_admin_token
);
