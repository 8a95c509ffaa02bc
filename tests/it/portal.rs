//! The portal and onboarding as the seeds describe them: accounts, access and refresh
//! tokens, self-service keys (the first creates the partner), production approval.

use std::sync::Arc;

use bytes::Bytes;
use hyper::Method;
use reward_actors::store::StoreBackend;
use serde_json::{Value, json};

use crate::support::{AppOptions, TestApp, action_body, code, spawn_app, spawn_app_with};

async fn open_app(backend: StoreBackend) -> TestApp {
    spawn_app_with(AppOptions {
        backend,
        tweak: Some(Arc::new(|config| config.server.portal_registration = reward_engine::config::PortalRegistration::Open)),
        ..AppOptions::default()
    })
    .await
}

async fn register(app: &TestApp, email: &str, password: &str) -> reward_bench::client::ClientResponse {
    let body = json!({ "email": email, "password": password, "name": "Good Causes" }).to_string();
    app.raw(Method::POST, "/v1/partner/auth/register", &[("content-type", "application/json")], Bytes::from(body)).await
}

async fn registration_is_closed_unless_opened(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    assert_eq!(code(&register(&app, "a@good.example", "long enough password").await), (403, "FORBIDDEN".into()));
    // Operators create accounts while registration is closed.
    let created = app
        .admin(Method::POST, "/api/v1/admin/accounts", json!({ "email": "Ops@Good.example", "password": "long enough password", "name": "Ops" }))
        .await;
    assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
    assert_eq!(created.json()["email"], "ops@good.example");
    assert!(!String::from_utf8_lossy(&created.body).contains("long enough password"));
    let again = app
        .admin(Method::POST, "/api/v1/admin/accounts", json!({ "email": "ops@good.example", "password": "another long password", "name": "Ops" }))
        .await;
    assert_eq!(code(&again), (409, "CONFLICT".into()));
    let session = app.login("ops@good.example", "long enough password").await;
    assert_eq!(session["account"]["email"], "ops@good.example");
    assert_eq!((session["partner"].clone(), session["publishableKey"].clone()), (Value::Null, Value::Null));
    app.shutdown().await;
}

async fn tokens_sign_in_refresh_once_and_expire(backend: StoreBackend) {
    let app = open_app(backend).await;
    let registered = register(&app, "jane@good.example", "correct horse battery").await;
    assert_eq!(registered.status, 201, "{}", String::from_utf8_lossy(&registered.body));
    assert_eq!(code(&register(&app, "jane@good.example", "correct horse battery").await), (409, "CONFLICT".into()));
    assert_eq!(code(&register(&app, "bob@good.example", "short").await), (400, "VALIDATION_ERROR".into()));

    let wrong = app
        .raw(
            Method::POST,
            "/v1/partner/auth/login",
            &[("content-type", "application/json")],
            Bytes::from(r#"{"email":"jane@good.example","password":"wrong horse battery"}"#),
        )
        .await;
    assert_eq!(code(&wrong), (401, "INVALID_TOKEN".into()));
    let unknown = app
        .raw(
            Method::POST,
            "/v1/partner/auth/login",
            &[("content-type", "application/json")],
            Bytes::from(r#"{"email":"nobody@good.example","password":"wrong horse battery"}"#),
        )
        .await;
    assert_eq!(code(&unknown), (401, "INVALID_TOKEN".into()));

    let session = app.login("JANE@good.example", "correct horse battery").await;
    let access = session["accessToken"].as_str().expect("access token").to_owned();
    assert_eq!((session["tokenType"].as_str(), session["expiresIn"].as_u64()), (Some("Bearer"), Some(900)));
    let me = app.portal(Method::GET, "/v1/partner/auth/me", &access, Value::Null).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["account"]["email"], "jane@good.example");
    assert_eq!(code(&app.portal(Method::GET, "/v1/partner/auth/me", "not.a.jwt", Value::Null).await), (401, "INVALID_TOKEN".into()));
    let tampered = format!("{}x", &access[..access.len() - 1]);
    assert_eq!(code(&app.portal(Method::GET, "/v1/partner/auth/me", &tampered, Value::Null).await), (401, "INVALID_TOKEN".into()));

    let refresh = |token: Value| {
        let body = Bytes::from(json!({ "refreshToken": token }).to_string());
        app.raw(Method::POST, "/v1/partner/auth/refresh", &[("content-type", "application/json")], body)
    };
    let renewed = refresh(session["refreshToken"].clone()).await;
    assert_eq!(renewed.status, 200);
    assert_ne!(renewed.json()["refreshToken"], session["refreshToken"], "refresh tokens rotate");
    assert_eq!(code(&refresh(session["refreshToken"].clone()).await), (401, "INVALID_TOKEN".into()), "a refresh token works once");
    app.shutdown().await;
}

async fn an_expired_access_token_is_refused(backend: StoreBackend) {
    let app = spawn_app_with(AppOptions {
        backend,
        test_clock: true,
        tweak: Some(Arc::new(|config| config.server.portal_registration = reward_engine::config::PortalRegistration::Open)),
        ..AppOptions::default()
    })
    .await;
    let session = register(&app, "jane@good.example", "correct horse battery").await.json();
    let access = session["accessToken"].as_str().expect("token").to_owned();
    assert_eq!(app.portal(Method::GET, "/v1/partner/auth/me", &access, Value::Null).await.status, 200);
    app.admin(Method::POST, "/api/v1/admin/clock", json!({ "advanceSeconds": 901 })).await;
    assert_eq!(code(&app.portal(Method::GET, "/v1/partner/auth/me", &access, Value::Null).await), (401, "INVALID_TOKEN".into()));
    app.shutdown().await;
}

/// The seeds' onboarding, end to end: register → the first key creates the partner →
/// sandbox rewards work → production is refused until approved → an admin approves and
/// funds production → live rewards work, and sandbox data is invisible to the live key.
async fn a_new_partner_onboards_as_the_seeds_describe(backend: StoreBackend) {
    let app = open_app(backend).await;
    let session = register(&app, "founder@good.example", "correct horse battery").await.json();
    let access = session["accessToken"].as_str().expect("token").to_owned();
    let portal = |method: Method, path: &'static str, body: Value| {
        let access = access.clone();
        let app = &app;
        async move { app.portal(method, path, &access, body).await }
    };
    assert_eq!(code(&portal(Method::GET, "/v1/partner/keys/partner-info", Value::Null).await), (404, "NOT_FOUND".into()));
    assert_eq!(
        code(&portal(Method::POST, "/v1/partner/keys", json!({ "name": "Live", "environment": "production" })).await),
        (403, "PRODUCTION_NOT_APPROVED".into())
    );

    let first =
        portal(Method::POST, "/v1/partner/keys", json!({ "name": "Sandbox Integration", "environment": "sandbox", "keyType": "secret" })).await;
    assert_eq!(first.status, 201, "{}", String::from_utf8_lossy(&first.body));
    let first = first.json();
    assert!(first["publicKey"].as_str().is_some_and(|key| key.starts_with("pk_test_")));
    assert!(first["secretKey"].as_str().is_some_and(|key| key.starts_with("sk_test_")));
    let sandbox = app.partner_from_key(&first);
    let info = portal(Method::GET, "/v1/partner/keys/partner-info", Value::Null).await.json();
    assert_eq!((info["id"].as_str(), info["status"].as_str()), (Some(sandbox.id.as_str()), Some("ACTIVE")));
    for field in ["name", "slug", "enabledFeatures", "rateLimit"] {
        assert!(info.get(field).is_some(), "partner-info lacks {field}");
    }

    // Sandbox rewards, once a sandbox pool is provisioned (here through a top-up request).
    let requested = sandbox.signed(Method::POST, "/v1/partner/token-pools/request", r#"{"tokens":10000,"reason":"sandbox testing"}"#).await.json();
    let approve = format!("/api/v1/admin/token-pool-requests/{}/approve", requested["id"].as_str().expect("id"));
    assert_eq!(app.admin(Method::POST, &approve, Value::Null).await.status, 200);
    let reward = sandbox.submit(&action_body("order_98765", "49.99", "user_42")).await;
    assert_eq!((reward.status, reward.json()["tokensDistributed"].as_u64()), (200, Some(50)));

    // Production: refused until approved, then funded by an admin, then live rewards.
    assert_eq!(
        code(&portal(Method::POST, "/v1/partner/keys", json!({ "name": "Live", "environment": "production" })).await),
        (403, "PRODUCTION_NOT_APPROVED".into())
    );
    app.admin(Method::PATCH, &format!("/api/v1/admin/partners/{}", sandbox.id), json!({ "productionApproved": true })).await;
    let pool = app
        .admin(
            Method::POST,
            &format!("/api/v1/admin/partners/{}/token-pools", sandbox.id),
            json!({ "environment": "production", "tokens": 1000, "idempotencyKey": "live-pool" }),
        )
        .await;
    assert_eq!(pool.status, 201);
    let live_key = portal(Method::POST, "/v1/partner/keys", json!({ "name": "Live", "environment": "production" })).await;
    assert_eq!(live_key.status, 201, "{}", String::from_utf8_lossy(&live_key.body));
    let live = app.partner_from_key(&live_key.json());
    assert!(live.secret_key.starts_with("sk_live_"));
    let live_reward = live.submit(&action_body("order_98765", "10", "user_42")).await;
    assert_eq!((live_reward.status, live_reward.json()["tokensDistributed"].as_u64()), (200, Some(10)), "same key, other environment");
    assert_eq!(live.balance("user_42").await.json()["available"], 10, "sandbox tokens never count in production");
    let sandbox_action = format!("/v1/partner/actions/{}", reward.json()["actionId"].as_str().expect("id"));
    assert_eq!(code(&live.signed(Method::GET, &sandbox_action, "").await), (404, "NOT_FOUND".into()));
    assert_eq!(live.pool().await["balance"], 990);

    // The portal lists the keys without secrets, renames, deactivates and revokes them.
    let listed = portal(Method::GET, "/v1/partner/keys", Value::Null).await;
    let text = String::from_utf8_lossy(&listed.body).into_owned();
    for secret in [&sandbox.secret_key, &sandbox.hmac_secret, &live.secret_key, &live.hmac_secret, &sandbox.public_key] {
        assert!(!text.contains(secret.as_str()), "no secret in the key list");
    }
    let keys = listed.json()["data"].as_array().cloned().expect("keys");
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().all(|key| key["lastUsedAt"].is_string()), "both keys were used: {keys:?}");
    let live_id = keys.iter().find(|key| key["environment"] == "production").and_then(|key| key["id"].as_str()).expect("live key").to_owned();
    let key_path = format!("/v1/partner/keys/{live_id}");
    let renamed = app.portal(Method::PATCH, &key_path, &access, json!({ "name": "Live (main)", "status": "INACTIVE" })).await;
    assert_eq!((renamed.json()["name"].as_str(), renamed.json()["status"].as_str()), (Some("Live (main)"), Some("INACTIVE")));
    assert_eq!(code(&live.submit(&action_body("after-deactivation", "1", "u")).await), (401, "KEY_INACTIVE".into()));
    app.portal(Method::PATCH, &key_path, &access, json!({ "status": "ACTIVE" })).await;
    assert_eq!(live.submit(&action_body("after-reactivation", "1", "u")).await.status, 200);
    assert_eq!(app.portal(Method::DELETE, &key_path, &access, Value::Null).await.json()["status"], "REVOKED");
    assert_eq!(code(&live.submit(&action_body("after-revocation", "1", "u")).await), (401, "KEY_REVOKED".into()));
    assert_eq!(code(&app.portal(Method::PATCH, &key_path, &access, json!({ "status": "ACTIVE" })).await), (409, "CONFLICT".into()));

    // Signing in again shows the partner and its publishable key.
    let again = app.login("founder@good.example", "correct horse battery").await;
    assert_eq!(again["partner"]["id"], sandbox.id.as_str());
    assert_eq!(again["publishableKey"], sandbox.public_key.as_str());
    app.shutdown().await;
}

async fn sign_in_attempts_are_bounded_per_address(backend: StoreBackend) {
    let app =
        spawn_app_with(AppOptions { backend, tweak: Some(Arc::new(|config| config.engine.portal_attempts_per_minute = 3)), ..AppOptions::default() })
            .await;
    let attempt = || {
        app.raw(
            Method::POST,
            "/v1/partner/auth/login",
            &[("content-type", "application/json")],
            Bytes::from(r#"{"email":"x@good.example","password":"guess guess guess"}"#),
        )
    };
    for _ in 0..3 {
        assert_eq!(code(&attempt().await), (401, "INVALID_TOKEN".into()));
    }
    let refused = attempt().await;
    assert_eq!(code(&refused), (429, "RATE_LIMITED".into()));
    assert!(refused.header("retry-after").is_some());
    app.shutdown().await;
}

async fn two_first_keys_at_once_make_one_partner(backend: StoreBackend) {
    let app = open_app(backend).await;
    let session = register(&app, "racer@good.example", "correct horse battery").await.json();
    let access = session["accessToken"].as_str().expect("token").to_owned();
    let create = || app.portal(Method::POST, "/v1/partner/keys", &access, json!({ "name": "k", "environment": "sandbox" }));
    let (first, second) = tokio::join!(create(), create());
    assert_eq!((first.status, second.status), (201, 201));
    assert_eq!(first.json()["partnerId"], second.json()["partnerId"]);
    let keys = app.portal(Method::GET, "/v1/partner/keys", &access, Value::Null).await.json();
    assert_eq!(keys["data"].as_array().map(Vec::len), Some(2), "both keys belong to the one partner");
    app.shutdown().await;
}

crate::backend_tests!(
    sign_in_attempts_are_bounded_per_address,
    two_first_keys_at_once_make_one_partner,
    registration_is_closed_unless_opened,
    tokens_sign_in_refresh_once_and_expire,
    an_expired_access_token_is_refused,
    a_new_partner_onboards_as_the_seeds_describe
);
