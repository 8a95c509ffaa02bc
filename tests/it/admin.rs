//! The minimal admin API: partners, key pairs and idempotent pool allocation.

use hyper::Method;
use reward_actors::store::StoreBackend;
use serde_json::json;

use crate::support::spawn_app;

async fn partners_are_created_pending_with_the_contract_defaults(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let created = app.admin(Method::POST, "/api/v1/admin/partners", json!({ "name": "Good Causes, Inc.", "contactEmail": "ops@good.example" })).await;
    assert_eq!(created.status, 201);
    let partner = created.json();
    assert_eq!(partner["status"], "PENDING_APPROVAL");
    assert_eq!(partner["tier"], "STANDARD");
    assert_eq!(partner["rateLimit"], json!({ "hourly": 1000, "perMinute": 100 }));
    assert_eq!(partner["enabledFeatures"], json!(["ACTIONS", "DONATIONS"]));
    assert_eq!(partner["stakeholderTypes"], json!(["CUSTOMER"]));
    assert_eq!(partner["slug"], "good-causes-inc");
    assert_eq!(partner["productionApproved"], false);
    assert_eq!(partner["legalEntity"], serde_json::Value::Null);
    assert!(partner["id"].as_str().is_some_and(|id| id.len() == 24));

    let second =
        app.admin(Method::POST, "/api/v1/admin/partners", json!({ "name": "Good Causes Inc", "contactEmail": "ops@good.example" })).await.json();
    assert_eq!(second["slug"], "good-causes-inc-2", "derived slugs stay unique");
    let clash =
        app.admin(Method::POST, "/api/v1/admin/partners", json!({ "name": "X", "contactEmail": "x@x.example", "slug": "good-causes-inc" })).await;
    assert_eq!((clash.status, clash.json()["code"].as_str()), (409, Some("CONFLICT")));

    let listed = app.admin(Method::GET, "/api/v1/admin/partners?limit=1", json!(null)).await.json();
    assert_eq!(listed["data"][0]["id"], second["id"], "newest first");
    assert_eq!(listed["hasMore"], true);
    let cursor = listed["nextCursor"].as_str().expect("cursor");
    let next = app.admin(Method::GET, &format!("/api/v1/admin/partners?limit=1&cursor={cursor}"), json!(null)).await.json();
    assert_eq!(next["data"][0]["id"], partner["id"]);
    assert_eq!(next["hasMore"], false);
    app.shutdown().await;
}

async fn tiers_rate_limits_and_status_transitions(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let missing_limit =
        app.admin(Method::POST, "/api/v1/admin/partners", json!({ "name": "C", "contactEmail": "c@c.example", "tier": "CUSTOM" })).await;
    assert_eq!(missing_limit.status, 400);
    let inverted = app
        .admin(
            Method::POST,
            "/api/v1/admin/partners",
            json!({ "name": "C", "contactEmail": "c@c.example", "tier": "CUSTOM", "rateLimit": { "hourly": 10, "perMinute": 20 } }),
        )
        .await;
    assert_eq!(inverted.status, 400);
    let custom = app
        .admin(
            Method::POST,
            "/api/v1/admin/partners",
            json!({ "name": "C", "contactEmail": "c@c.example", "tier": "CUSTOM", "rateLimit": { "hourly": 50000, "perMinute": 900 } }),
        )
        .await
        .json();
    assert_eq!(custom["rateLimit"], json!({ "hourly": 50000, "perMinute": 900 }));
    let path = format!("/api/v1/admin/partners/{}", custom["id"].as_str().expect("id"));

    let enterprise = app.admin(Method::PATCH, &path, json!({ "tier": "ENTERPRISE" })).await.json();
    assert_eq!(enterprise["rateLimit"], json!({ "hourly": 20000, "perMinute": 2000 }));
    let not_custom = app.admin(Method::PATCH, &path, json!({ "rateLimit": { "hourly": 5, "perMinute": 5 } })).await;
    assert_eq!(not_custom.status, 400);

    assert_eq!(app.admin(Method::PATCH, &path, json!({ "status": "ACTIVE" })).await.json()["status"], "ACTIVE");
    let backwards = app.admin(Method::PATCH, &path, json!({ "status": "PENDING_APPROVAL" })).await;
    assert_eq!((backwards.status, backwards.json()["code"].as_str()), (409, Some("CONFLICT")), "nothing returns to PENDING_APPROVAL");
    assert_eq!(app.admin(Method::PATCH, &path, json!({ "status": "CLOSED" })).await.json()["status"], "CLOSED");
    let reopened = app.admin(Method::PATCH, &path, json!({ "status": "ACTIVE" })).await;
    assert_eq!((reopened.status, reopened.json()["code"].as_str()), (409, Some("CONFLICT")));
    let unknown = app.admin(Method::PATCH, "/api/v1/admin/partners/0123456789abcdef01234567", json!({ "status": "ACTIVE" })).await;
    assert_eq!(unknown.status, 404);
    app.shutdown().await;
}

async fn keys_show_their_secrets_once_in_the_contract_formats(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(0).await;
    let key =
        app.admin(Method::POST, &format!("/api/v1/admin/partners/{}/keys", partner.id), json!({ "environment": "production", "name": "live" })).await;
    assert_eq!(key.status, 201);
    let key = key.json();
    let text = |field: &str| key[field].as_str().expect(field).to_owned();
    assert!(text("id").starts_with("key_") && text("id").len() == 28);
    assert!(text("publicKey").starts_with("pk_live_") && text("publicKey").len() == 72);
    assert!(text("secretKey").starts_with("sk_live_") && text("secretKey").len() == 72);
    assert!(text("hmacSecret").len() == 64 && text("hmacSecret").bytes().all(|byte| byte.is_ascii_hexdigit()));
    assert_eq!(key["scopes"].as_array().map(Vec::len), Some(12));
    let partner_view = app.admin(Method::GET, &format!("/api/v1/admin/partners/{}", partner.id), json!(null)).await;
    let partner_text = String::from_utf8_lossy(&partner_view.body).into_owned();
    assert!(!partner_text.contains(&text("secretKey")) && !partner_text.contains(&text("hmacSecret")));
    let bad = app
        .admin(
            Method::POST,
            &format!("/api/v1/admin/partners/{}/keys", partner.id),
            json!({ "environment": "staging", "name": "x", "scopes": ["actions:fly"] }),
        )
        .await;
    assert_eq!(bad.status, 400);
    app.shutdown().await;
}

async fn allocation_is_idempotent(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(0).await;
    let first = partner.allocate(&app, 1_000, "alloc-1").await;
    assert_eq!(first.status, 201, "the first allocation creates the default pool");
    assert_eq!(first.json()["balance"], 1_000);
    let replay = partner.allocate(&app, 1_000, "alloc-1").await;
    assert_eq!((replay.status, replay.json()["code"].as_str()), (409, Some("IDEMPOTENT")));
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.json()["details"]["originalResponse"], first.json());
    let reused = partner.allocate(&app, 5, "alloc-1").await;
    assert_eq!(reused.json()["code"], "IDEMPOTENCY_KEY_REUSED");
    let top_up = partner.allocate(&app, 500, "alloc-2").await;
    assert_eq!(top_up.status, 200);
    assert_eq!((top_up.json()["balance"].as_u64(), top_up.json()["allocatedTotal"].as_u64()), (Some(1_500), Some(1_500)));
    assert_eq!(top_up.json()["id"], first.json()["id"], "without poolId the default pool is topped up");
    let vesting = app
        .admin(
            Method::POST,
            &format!("/api/v1/admin/partners/{}/token-pools", partner.id),
            json!({ "environment": "sandbox", "tokens": 1, "idempotencyKey": "v", "vestingDays": 30,
                    "autoRefill": { "thresholdTokens": 100, "refillTokens": 1000, "maxRefillsPerMonth": 2 } }),
        )
        .await;
    assert_eq!(vesting.status, 200, "{}", String::from_utf8_lossy(&vesting.body));
    assert_eq!(vesting.json()["vestingDays"], 30);
    assert_eq!(vesting.json()["autoRefill"], json!({ "thresholdTokens": 100, "refillTokens": 1000, "maxRefillsPerMonth": 2 }));
    let bad_refill = app
        .admin(
            Method::POST,
            &format!("/api/v1/admin/partners/{}/token-pools", partner.id),
            json!({ "environment": "sandbox", "tokens": 1, "idempotencyKey": "w", "autoRefill": { "thresholdTokens": 0, "refillTokens": 1 } }),
        )
        .await;
    assert_eq!(bad_refill.status, 400);
    let body = bad_refill.json();
    let fields: Vec<&str> = body["details"]["fields"].as_array().expect("fields").iter().filter_map(|field| field["field"].as_str()).collect();
    assert_eq!(fields, ["autoRefill.thresholdTokens", "autoRefill.maxRefillsPerMonth"]);
    app.shutdown().await;
}

crate::backend_tests!(
    partners_are_created_pending_with_the_contract_defaults,
    tiers_rate_limits_and_status_transitions,
    keys_show_their_secrets_once_in_the_contract_formats,
    allocation_is_idempotent
);
