//! The reward path end to end: a signed submit pays exactly what it says, from the pool,
//! into the users' balances, with its ledger rows and events in the same commit.

use hyper::Method;
use reward_actors::domain::ids::Id;
use reward_actors::domain::model::{Environment, PartnerEnv};
use reward_actors::store::StoreBackend;
use serde_json::{Value, json};

use crate::support::{AppOptions, action_body, spawn_app, spawn_app_with};

fn partner_env(partner_id: &str) -> PartnerEnv {
    PartnerEnv::new(Id::parse_hex(partner_id).expect("partner id"), Environment::Sandbox)
}

async fn a_signed_submit_pays_fifty_tokens_for_49_99_usd(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(1_000).await;

    let response = partner.submit(&action_body("order_98765", "49.99", "user_42")).await;

    assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
    assert!(response.header("x-request-id").is_some_and(|id| id.starts_with("req_") && id.len() == 28));
    let body = response.json();
    assert_eq!(body["tokensDistributed"], 50);
    assert_eq!(body["status"], "COMPLETED");
    assert_eq!(body["idempotencyKey"], "order_98765");
    assert_eq!(body["campaignId"], Value::Null);
    assert_eq!(
        body["allocations"][0],
        json!({ "partnerUserId": "user_42", "stakeholderTypeCode": "CUSTOMER", "tokens": 50, "transactionId": body["transactionIds"][0] })
    );

    let balance = partner.balance("user_42").await.json();
    assert_eq!(
        balance,
        json!({ "partnerUserId": "user_42", "available": 50, "pending": 0, "lifetimeEarned": 50, "lifetimeReversed": 0, "lifetimeRedeemed": 0 })
    );
    let pool = partner.pool().await;
    assert_eq!((pool["balance"].as_u64(), pool["issuedTotal"].as_u64(), pool["allocatedTotal"].as_u64()), (Some(950), Some(50), Some(1_000)));

    let action_id = body["actionId"].as_str().expect("action id");
    let action = partner.signed(Method::GET, &format!("/v1/partner/actions/{action_id}"), "").await;
    assert_eq!(action.status, 200);
    let action = action.json();
    assert_eq!(
        (action["status"].as_str(), action["reversedTokens"].as_u64(), action["actionType"].as_str()),
        (Some("COMPLETED"), Some(0), Some("PURCHASE"))
    );
    assert_eq!(action["amount"].to_string(), "49.99", "the amount is shown back exactly");
    assert_eq!(action["currency"], "USD");
    assert_eq!(action["breakdown"]["multiplier"].to_string(), "1");
    assert_eq!(action["breakdown"]["rule"], "DEFAULT");

    let events = app.engine().webhooks().list_events(partner_env(&partner.id), 0, 100).expect("events").items;
    let kinds: Vec<(u64, &str)> = events.iter().map(|event| (event.sequence, event.event_type.as_str())).collect();
    assert_eq!(kinds, vec![(1, "partner.status_changed"), (2, "action.completed"), (3, "transaction.completed")]);
    let envelope: Value = serde_json::from_slice(&events[1].envelope_json).expect("json");
    assert_eq!(envelope["data"]["actionId"], action_id);
    assert_eq!(envelope["partnerId"], partner.id.as_str());
    assert_eq!(envelope["environment"], "sandbox");
    assert!(envelope["id"].as_str().is_some_and(|id| id.starts_with("evt_")));
    app.shutdown().await;
}

async fn tokens_split_equally_and_sum_to_the_total(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(1_000).await;
    let body = r#"{"idempotencyKey":"split","actionType":"PURCHASE","amount":100,"currency":"USD","stakeholders":[
        {"stakeholderTypeCode":"CUSTOMER","partnerUserId":"a"},{"stakeholderTypeCode":"CUSTOMER","partnerUserId":"b"},{"stakeholderTypeCode":"NONPROFIT","partnerUserId":"c"}]}"#;
    let response = partner.submit(body).await.json();
    let shares: Vec<u64> =
        response["allocations"].as_array().expect("allocations").iter().map(|allocation| allocation["tokens"].as_u64().expect("tokens")).collect();
    assert_eq!(shares, vec![34, 33, 33]);
    assert_eq!(response["tokensDistributed"], 100);
    for (user, tokens) in [("a", 34), ("b", 33), ("c", 33)] {
        assert_eq!(partner.balance(user).await.json()["available"], tokens);
    }
    app.shutdown().await;
}

async fn unknown_users_are_refused_when_auto_create_is_off(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(1_000).await;
    let body = r#"{"idempotencyKey":"no-create","actionType":"PURCHASE","amount":10,"currency":"USD","autoCreateUsers":false,"stakeholders":[{"stakeholderTypeCode":"CUSTOMER","partnerUserId":"ghost"}]}"#;
    let response = partner.submit(body).await;
    assert_eq!(response.status, 404);
    assert_eq!(response.json()["code"], "USER_NOT_FOUND");
    assert_eq!(response.json()["details"]["partnerUserId"], "ghost");
    assert_eq!(partner.balance("ghost").await.status, 404);
    assert_eq!(partner.pool().await["balance"], 1_000);
    // The key was not used up: the same key with users created works.
    partner.submit(&action_body("warm-up", "1", "ghost")).await;
    let retried = partner.submit(body).await;
    assert_eq!(retried.status, 200, "{}", String::from_utf8_lossy(&retried.body));
    app.shutdown().await;
}

async fn an_action_worth_zero_tokens_completes_without_a_pool(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(0).await;
    let response = partner.submit(&action_body("tiny", "0.49", "u")).await;
    assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
    let body = response.json();
    assert_eq!(body["tokensDistributed"], 0);
    assert_eq!(body["transactionIds"], json!([]));
    assert_eq!(body["allocations"][0]["transactionId"], Value::Null);
    let action = partner.signed(Method::GET, &format!("/v1/partner/actions/{}", body["actionId"].as_str().expect("id")), "").await.json();
    assert_eq!(action["tokenPoolId"], Value::Null);
    assert_eq!(partner.balance("u").await.json()["available"], 0);
    let paid = partner.submit(&action_body("paid", "0.50", "u")).await;
    assert_eq!((paid.status, paid.json()["code"].as_str()), (402, Some("INSUFFICIENT_POOL")));
    app.shutdown().await;
}

async fn a_rejected_action_is_recorded_as_failed_but_may_be_retried(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(40).await;
    let body = action_body("too-big", "49.99", "user_1");

    let refused = partner.submit(&body).await;
    assert_eq!(refused.status, 402);
    assert_eq!(refused.json()["code"], "INSUFFICIENT_POOL");
    assert_eq!(refused.json()["details"], json!({ "required": 50, "available": 40 }));
    let events = app.engine().webhooks().list_events(partner_env(&partner.id), 0, 10).expect("events").items;
    let failed: Vec<&reward_actors::domain::model::EventRecord> = events.iter().filter(|event| event.event_type == "action.failed").collect();
    assert_eq!(failed.len(), 1);
    let failed: Value = serde_json::from_slice(&failed[0].envelope_json).expect("json");
    assert_eq!(failed["type"], "action.failed");
    assert_eq!(failed["data"], json!({ "idempotencyKey": "too-big", "code": "INSUFFICIENT_POOL" }));

    assert_eq!(partner.allocate(&app, 100, "top-up").await.status, 200);
    let retried = partner.submit(&body).await;
    assert_eq!(retried.status, 200, "a 402 is not stored under the key: {}", String::from_utf8_lossy(&retried.body));
    assert_eq!(partner.pool().await["balance"], 90);
    app.shutdown().await;
}

async fn campaign_rules_that_cannot_apply_answer_422(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(1_000).await;
    let no_amount =
        r#"{"idempotencyKey":"no-amount","actionType":"VOLUNTEER","stakeholders":[{"stakeholderTypeCode":"CUSTOMER","partnerUserId":"u"}]}"#;
    let response = partner.submit(no_amount).await;
    assert_eq!((response.status, response.json()["code"].as_str()), (422, Some("CAMPAIGN_NOT_APPLICABLE")));
    let unknown_campaign = r#"{"idempotencyKey":"campaign","actionType":"PURCHASE","amount":5,"currency":"USD","campaignId":"0123456789abcdef01234567","stakeholders":[{"stakeholderTypeCode":"CUSTOMER","partnerUserId":"u"}]}"#;
    let response = partner.submit(unknown_campaign).await;
    assert_eq!((response.status, response.json()["code"].as_str()), (422, Some("CAMPAIGN_NOT_APPLICABLE")));
    assert_eq!(partner.pool().await["balance"], 1_000);
    app.shutdown().await;
}

async fn an_expired_pool_answers_402_pool_expired(backend: StoreBackend) {
    let app = spawn_app_with(AppOptions { backend, test_clock: true, ..AppOptions::default() }).await;
    let partner = app.onboard_partner(0).await;
    let expires_at = reward_actors::engine::clock::format_timestamp(app.engine().clock().now_ms() + 60_000);
    let pool = app
        .admin(
            Method::POST,
            &format!("/api/v1/admin/partners/{}/token-pools", partner.id),
            json!({ "environment": "sandbox", "tokens": 1000, "idempotencyKey": "expiring", "expiresAt": expires_at }),
        )
        .await;
    assert_eq!(pool.status, 201, "{}", String::from_utf8_lossy(&pool.body));
    assert_eq!(partner.submit(&action_body("before", "1", "u")).await.status, 200);

    let moved = app.admin(Method::POST, "/api/v1/admin/clock", json!({ "advanceSeconds": 120 })).await;
    assert_eq!(moved.status, 200);
    let response = partner.submit(&action_body("after", "1", "u")).await;
    assert_eq!((response.status, response.json()["code"].as_str()), (402, Some("POOL_EXPIRED")));
    app.shutdown().await;
}

async fn pools_list_and_read_with_all_their_totals(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(500).await;
    let pool = partner.pool().await;
    for field in [
        "id",
        "environment",
        "balance",
        "allocatedTotal",
        "refilledTotal",
        "issuedTotal",
        "reversedTotal",
        "expiresAt",
        "vestingDays",
        "lowBalanceThreshold",
        "autoRefill",
    ] {
        assert!(pool.get(field).is_some(), "pool lacks {field}");
    }
    let pool_id = pool["id"].as_str().expect("id");
    let one = partner.signed(Method::GET, &format!("/v1/partner/token-pools/{pool_id}"), "").await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["balance"], 500);
    let missing = partner.signed(Method::GET, "/v1/partner/token-pools/0123456789abcdef01234567", "").await;
    assert_eq!((missing.status, missing.json()["code"].as_str()), (404, Some("NOT_FOUND")));
    app.shutdown().await;
}

crate::backend_tests!(
    an_action_worth_zero_tokens_completes_without_a_pool,
    a_signed_submit_pays_fifty_tokens_for_49_99_usd,
    tokens_split_equally_and_sum_to_the_total,
    unknown_users_are_refused_when_auto_create_is_off,
    a_rejected_action_is_recorded_as_failed_but_may_be_retried,
    campaign_rules_that_cannot_apply_answer_422,
    an_expired_pool_answers_402_pool_expired,
    pools_list_and_read_with_all_their_totals
);
