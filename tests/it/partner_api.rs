//! The whole partner API (contract §6–§8): campaigns, users and balances, redemption,
//! reversal, batch, quote, lists, reconciliation and the dashboard, over real HTTP.

use hyper::Method;
use reward_actors::domain::ids::Id;
use reward_actors::domain::model::{Environment, PartnerEnv};
use reward_actors::store::StoreBackend;
use reward_bench::client::ClientResponse;
use serde_json::{Value, json};

use crate::support::{AppOptions, Partner, TestApp, call, code, expect, spawn_app, spawn_app_with};

/// Every event type in the partner's sandbox feed, in order.
fn event_types(app: &TestApp, partner: &Partner) -> Vec<String> {
    const PAGES_MAX: usize = 100;
    let partner_env = PartnerEnv::new(Id::parse_hex(&partner.id).expect("id"), Environment::parse(&partner.environment).expect("environment"));
    let mut types = Vec::new();
    let mut after = 0;
    for _ in 0..PAGES_MAX {
        let events = app.engine().webhooks().list_events(partner_env, after, 100).expect("events").items;
        let Some(last) = events.last() else { break };
        after = last.sequence;
        types.extend(events.into_iter().map(|event| event.event_type.to_string()));
    }
    types
}

fn count(types: &[String], wanted: &str) -> usize {
    types.iter().filter(|kind| *kind == wanted).count()
}

fn submit_body(key: &str, amount: &str, stakeholders: &[(&str, &str)]) -> Value {
    let stakeholders: Vec<Value> = stakeholders.iter().map(|(kind, user)| json!({ "stakeholderTypeCode": kind, "partnerUserId": user })).collect();
    json!({ "idempotencyKey": key, "actionType": "PURCHASE", "amount": serde_json::from_str::<Value>(amount).expect("number"), "currency": "USD", "stakeholders": stakeholders })
}

async fn submit(app: &TestApp, partner: &Partner, body: Value) -> ClientResponse {
    call(app, partner, Method::POST, "/v1/partner/actions/submit", body).await
}

async fn pool(app: &TestApp, partner: &Partner) -> Value {
    let pools = expect(&call(app, partner, Method::GET, "/v1/partner/token-pools", Value::Null).await, 200);
    pools["data"][0].clone()
}

async fn balance(app: &TestApp, partner: &Partner, user: &str) -> Value {
    expect(&call(app, partner, Method::GET, &format!("/v1/partner/users/{user}/balance"), Value::Null).await, 200)
}

async fn reconciled(app: &TestApp, partner: &Partner) -> Value {
    let pool_id = pool(app, partner).await["id"].as_str().expect("pool id").to_owned();
    let reconciliation =
        expect(&call(app, partner, Method::GET, &format!("/v1/partner/token-pools/{pool_id}/reconciliation"), Value::Null).await, 200);
    assert_eq!(reconciliation["balanced"], true, "{reconciliation}");
    reconciliation
}

async fn campaigns_select_split_and_spend_their_budget(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(10_000).await;
    let create = |body: Value| call(&app, &partner, Method::POST, "/v1/partner/campaigns", body);
    let valid = json!({
        "name": "Holiday", "status": "ACTIVE", "actionTypes": ["PURCHASE"], "priority": 5, "multiplier": 2,
        "tiers": [{ "minAmount": 100, "multiplier": 3 }],
        "splits": [{ "stakeholderTypeCode": "CUSTOMER", "percent": 70 }, { "stakeholderTypeCode": "NONPROFIT", "percent": 30 }],
        "budgetTokens": 300,
    });
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    };
    for (bad, field) in [
        (with("splits", json!([{ "stakeholderTypeCode": "CUSTOMER", "percent": 90 }])), "splits"),
        (with("splits", json!([{ "stakeholderTypeCode": "DRAGON", "percent": 100 }])), "splits[0].stakeholderTypeCode"),
        (with("multiplier", json!(1.23456)), "multiplier"),
        (with("multiplier", json!(-1)), "multiplier"),
        (with("status", json!("LIVE")), "status"),
        (with("schedule", json!({ "startsAt": "2027-02-01T00:00:00.000Z", "endsAt": "2027-01-01T00:00:00.000Z" })), "schedule.endsAt"),
        (with("tiers", json!([{ "minAmount": 10, "multiplier": 2 }, { "minAmount": 10, "multiplier": 3 }])), "tiers[1].minAmount"),
        (with("tokenPoolId", json!("nothex")), "tokenPoolId"),
        (with("actionTypes", json!(["PURCHASE", "PURCHASE"])), "actionTypes[1]"),
        (with("colour", json!("red")), "colour"),
        (json!({ "status": "ACTIVE" }), "name"),
    ] {
        let response = create(bad).await;
        let body = expect(&response, 400);
        assert_eq!(body["code"], "VALIDATION_ERROR");
        assert_eq!(body["details"]["fields"][0]["field"], field, "{body}");
    }
    let unknown_pool = create(with("tokenPoolId", json!("0123456789abcdef01234567"))).await;
    assert_eq!(code(&unknown_pool).0, 400);
    let listed = expect(&call(&app, &partner, Method::GET, "/v1/partner/campaigns", Value::Null).await, 200);
    assert_eq!(listed["data"], json!([]), "refused campaigns store nothing");

    let campaign = expect(&create(valid.clone()).await, 201);
    let campaign_id = campaign["id"].as_str().expect("id").to_owned();
    assert_eq!((campaign["budgetTokens"].as_u64(), campaign["budgetRemaining"].as_u64()), (Some(300), Some(300)));
    assert_eq!(campaign["tiers"], json!([{ "minAmount": 100, "multiplier": 3 }]));
    assert_eq!(campaign["schedule"], json!({ "startsAt": null, "endsAt": null }));
    assert_eq!(campaign["tokenPoolId"], Value::Null);

    // 49.99 × 2 = 99.98 → 100 tokens: customers share 70 (35 each), the nonprofit 30.
    let stakeholders = [("CUSTOMER", "c1"), ("NONPROFIT", "n1"), ("CUSTOMER", "c2")];
    let paid = expect(&submit(&app, &partner, submit_body("o-1", "49.99", &stakeholders)).await, 200);
    assert_eq!(paid["campaignId"], campaign_id.as_str());
    let shares: Vec<u64> =
        paid["allocations"].as_array().expect("allocations").iter().map(|share| share["tokens"].as_u64().expect("tokens")).collect();
    assert_eq!(shares, [35, 30, 35]);
    let action = expect(
        &call(&app, &partner, Method::GET, &format!("/v1/partner/actions/{}", paid["actionId"].as_str().expect("id")), Value::Null).await,
        200,
    );
    assert_eq!(action["breakdown"]["campaignId"], campaign_id.as_str());
    assert_eq!(action["breakdown"]["multiplier"], 2, "the stored breakdown says why it paid what it paid");

    // The quote shows the tier and that the budget (200 left) would not cover 300.
    let pool_before = pool(&app, &partner).await;
    let mut quote_body = submit_body("ignored", "100", &stakeholders);
    quote_body.as_object_mut().expect("object").remove("idempotencyKey");
    let quote = expect(&call(&app, &partner, Method::POST, "/v1/partner/actions/quote", quote_body).await, 200);
    assert_eq!(quote["tokensDistributed"], 300);
    assert_eq!(quote["breakdown"]["tierIndex"], 0);
    assert_eq!((quote["funding"]["sufficient"].as_bool(), quote["funding"]["code"].as_str()), (Some(false), Some("CAMPAIGN_BUDGET_EXHAUSTED")));
    assert_eq!(pool(&app, &partner).await, pool_before, "a quote has no effects");

    let short = submit(&app, &partner, submit_body("o-2", "100", &stakeholders)).await;
    let body = expect(&short, 402);
    assert_eq!(body["code"], "CAMPAIGN_BUDGET_EXHAUSTED");
    assert_eq!((body["details"]["required"].as_u64(), body["details"]["budgetRemaining"].as_u64()), (Some(300), Some(200)));
    // 99.99 × 2 → 200: exactly the rest of the budget.
    expect(&submit(&app, &partner, submit_body("o-3", "99.99", &stakeholders)).await, 200);
    let spent = expect(&call(&app, &partner, Method::GET, &format!("/v1/partner/campaigns/{campaign_id}"), Value::Null).await, 200);
    assert_eq!(spent["budgetRemaining"], 0);
    assert_eq!(count(&event_types(&app, &partner), "campaign.budget_exhausted"), 1);

    let paused = call(&app, &partner, Method::PATCH, &format!("/v1/partner/campaigns/{campaign_id}"), json!({ "status": "PAUSED" })).await;
    assert_eq!(expect(&paused, 200)["status"], "PAUSED");
    assert_eq!(count(&event_types(&app, &partner), "campaign.status_changed"), 1);
    let default_rule = expect(&submit(&app, &partner, submit_body("o-4", "30", &stakeholders)).await, 200);
    assert_eq!((default_rule["campaignId"].clone(), default_rule["tokensDistributed"].as_u64()), (Value::Null, Some(30)), "paused: the default rule");
    let back_to_draft = call(&app, &partner, Method::PATCH, &format!("/v1/partner/campaigns/{campaign_id}"), json!({ "status": "DRAFT" })).await;
    assert_eq!(code(&back_to_draft), (409, "CONFLICT".into()));

    let ended = call(&app, &partner, Method::DELETE, &format!("/v1/partner/campaigns/{campaign_id}"), Value::Null).await;
    assert_eq!(expect(&ended, 200)["status"], "ENDED");
    let campaigns_path = |status: &str| format!("/v1/partner/campaigns?status={status}");
    let by_status = |status: &'static str| {
        let path = campaigns_path(status);
        let (app, partner) = (&app, &partner);
        async move { call(app, partner, Method::GET, &path, Value::Null).await }
    };
    assert_eq!(expect(&by_status("ENDED").await, 200)["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(expect(&by_status("ACTIVE").await, 200)["data"], json!([]));
    assert_eq!(code(&by_status("GONE").await).0, 400);
    let mut named = submit_body("o-5", "10", &stakeholders);
    named["campaignId"] = json!(campaign_id);
    assert_eq!(code(&submit(&app, &partner, named).await), (422, "CAMPAIGN_NOT_APPLICABLE".into()));
    reconciled(&app, &partner).await;
    app.shutdown().await;
}

async fn users_balances_transactions_and_redemption(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(1_000).await;
    let users = "/v1/partner/users";
    let created = expect(
        &call(&app, &partner, Method::POST, users, json!({ "externalId": "jane", "email": "jane@example.com", "firstName": "Jane" })).await,
        201,
    );
    assert_eq!((created["externalId"].as_str(), created["lastName"].clone()), (Some("jane"), Value::Null));
    assert_eq!(created["balance"]["available"], 0);
    assert_eq!(code(&call(&app, &partner, Method::POST, users, json!({ "externalId": "jane" })).await), (409, "CONFLICT".into()));
    for bad in [
        json!({ "externalId": "no spaces" }),
        json!({ "externalId": "x", "email": "nope" }),
        json!({ "externalId": "x", "nickname": "x" }),
        json!({}),
    ] {
        assert_eq!(code(&call(&app, &partner, Method::POST, users, bad).await), (400, "VALIDATION_ERROR".into()));
    }
    let patched = call(&app, &partner, Method::PATCH, "/v1/partner/users/jane", json!({ "firstName": null, "lastName": "Doe" })).await;
    let patched = expect(&patched, 200);
    assert_eq!(
        (patched["firstName"].clone(), patched["lastName"].as_str(), patched["email"].as_str()),
        (Value::Null, Some("Doe"), Some("jane@example.com"))
    );
    assert_eq!(
        code(&call(&app, &partner, Method::PATCH, "/v1/partner/users/ghost", json!({ "lastName": "X" })).await),
        (404, "USER_NOT_FOUND".into())
    );
    assert_eq!(code(&call(&app, &partner, Method::PATCH, "/v1/partner/users/jane", json!({ "email": 5 })).await).0, 400);

    expect(&submit(&app, &partner, submit_body("o-1", "30", &[("CUSTOMER", "jane")])).await, 200);
    let redeem = |body: Value| call(&app, &partner, Method::POST, "/v1/partner/users/jane/redeem", body);
    assert_eq!(code(&redeem(json!({ "tokens": 5, "reason": "mug" })).await).0, 400, "idempotencyKey is required");
    assert_eq!(code(&redeem(json!({ "tokens": 0, "reason": "mug", "idempotencyKey": "r" })).await).0, 400);
    let short = redeem(json!({ "tokens": 31, "reason": "mug", "idempotencyKey": "r-1" })).await;
    let body = expect(&short, 402);
    assert_eq!((body["code"].as_str(), body["details"]["available"].as_i64()), (Some("INSUFFICIENT_BALANCE"), Some(30)));
    let redeemed = expect(&redeem(json!({ "tokens": 10, "reason": "mug", "idempotencyKey": "r-1" })).await, 200);
    let replay = redeem(json!({ "tokens": 10, "reason": "mug", "idempotencyKey": "r-1" })).await;
    assert_eq!(code(&replay), (409, "IDEMPOTENT".into()));
    assert_eq!(replay.json()["details"]["originalResponse"], redeemed);
    assert_eq!(code(&redeem(json!({ "tokens": 11, "reason": "mug", "idempotencyKey": "r-1" })).await), (409, "IDEMPOTENCY_KEY_REUSED".into()));
    assert_eq!(
        code(
            &call(&app, &partner, Method::POST, "/v1/partner/users/ghost/redeem", json!({ "tokens": 1, "reason": "x", "idempotencyKey": "r-2" }))
                .await
        ),
        (404, "USER_NOT_FOUND".into())
    );
    let jane = balance(&app, &partner, "jane").await;
    assert_eq!((jane["available"].as_i64(), jane["lifetimeEarned"].as_u64(), jane["lifetimeRedeemed"].as_u64()), (Some(20), Some(30), Some(10)));

    let history = expect(&call(&app, &partner, Method::GET, "/v1/partner/users/jane/transactions", Value::Null).await, 200);
    let kinds: Vec<(&str, i64)> = history["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|t| (t["type"].as_str().expect("type"), t["tokens"].as_i64().expect("tokens")))
        .collect();
    assert_eq!(kinds, [("REDEMPTION", -10), ("REWARD", 30)], "newest first");
    assert_eq!(kinds.iter().map(|(_, tokens)| tokens).sum::<i64>(), 20, "the balance is the sum of the ledger");
    let redemptions = expect(&call(&app, &partner, Method::GET, "/v1/partner/users/jane/transactions?type=REDEMPTION", Value::Null).await, 200);
    assert_eq!(redemptions["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(code(&call(&app, &partner, Method::GET, "/v1/partner/users/jane/transactions?type=GIFT", Value::Null).await).0, 400);
    assert_eq!(code(&call(&app, &partner, Method::GET, "/v1/partner/users/ghost/transactions", Value::Null).await), (404, "USER_NOT_FOUND".into()));
    let allocations = expect(&call(&app, &partner, Method::GET, "/v1/partner/transactions?type=ALLOCATION", Value::Null).await, 200);
    assert_eq!(allocations["data"][0]["tokens"], 1_000);
    let future = expect(&call(&app, &partner, Method::GET, "/v1/partner/transactions?from=2999-01-01T00%3A00%3A00.000Z", Value::Null).await, 200);
    assert_eq!(future["data"], json!([]));
    assert_eq!(code(&call(&app, &partner, Method::GET, "/v1/partner/transactions?from=yesterday", Value::Null).await).0, 400);

    for user in ["u1", "u2", "u3"] {
        expect(&call(&app, &partner, Method::POST, users, json!({ "externalId": user })).await, 201);
    }
    let first = expect(&call(&app, &partner, Method::GET, "/v1/partner/users?limit=2", Value::Null).await, 200);
    let ids = |page: &Value| {
        page["data"].as_array().expect("data").iter().map(|user| user["externalId"].as_str().expect("id").to_owned()).collect::<Vec<_>>()
    };
    assert_eq!((ids(&first), first["hasMore"].as_bool()), (vec!["u3".to_owned(), "u2".to_owned()], Some(true)));
    let cursor = first["nextCursor"].as_str().expect("cursor");
    let rest = expect(&call(&app, &partner, Method::GET, &format!("/v1/partner/users?limit=2&cursor={cursor}"), Value::Null).await, 200);
    assert_eq!((ids(&rest), rest["hasMore"].as_bool()), (vec!["u1".to_owned(), "jane".to_owned()], Some(false)));
    assert_eq!(code(&call(&app, &partner, Method::GET, "/v1/partner/users?limit=101", Value::Null).await).0, 400);
    reconciled(&app, &partner).await;
    app.shutdown().await;
}

async fn reversals_are_pro_rata_bounded_and_may_leave_balances_negative(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(1_000).await;
    let stakeholders = [("CUSTOMER", "a"), ("CUSTOMER", "b"), ("CUSTOMER", "c")];
    let first_day = crate::support::now_secs() / 86_400;
    let action = expect(&submit(&app, &partner, submit_body("o-1", "100", &stakeholders)).await, 200);
    let action_id = action["actionId"].as_str().expect("id").to_owned();
    let reverse_path = format!("/v1/partner/actions/{action_id}/reverse");
    let reverse = |body: Value| call(&app, &partner, Method::POST, &reverse_path, body);

    for bad in [
        json!({ "reason": "refund", "tokens": 1 }),
        json!({ "idempotencyKey": "k", "tokens": 1 }),
        json!({ "idempotencyKey": "k", "reason": "r", "tokens": 0 }),
    ] {
        assert_eq!(code(&reverse(bad).await).0, 400);
    }
    let unknown =
        call(&app, &partner, Method::POST, "/v1/partner/actions/0123456789abcdef01234567/reverse", json!({ "idempotencyKey": "k", "reason": "r" }))
            .await;
    assert_eq!(code(&unknown), (404, "NOT_FOUND".into()));

    // 34/33/33; 10 back pro rata by largest remainder: 3.4, 3.3, 3.3 → 4, 3, 3.
    let partial = expect(&reverse(json!({ "idempotencyKey": "rv-1", "reason": "partial refund", "tokens": 10 })).await, 200);
    assert_eq!(partial["status"], "PARTIALLY_REVERSED");
    let taken: Vec<u64> =
        partial["allocations"].as_array().expect("allocations").iter().map(|share| share["tokens"].as_u64().expect("tokens")).collect();
    assert_eq!(taken, [4, 3, 3]);
    assert_eq!(pool(&app, &partner).await["balance"], 910);
    assert_eq!(code(&reverse(json!({ "idempotencyKey": "rv-1", "reason": "partial refund", "tokens": 10 })).await), (409, "IDEMPOTENT".into()));
    assert_eq!(pool(&app, &partner).await["balance"], 910, "a replay moves nothing");
    let too_much = reverse(json!({ "idempotencyKey": "rv-2", "reason": "refund", "tokens": 91 })).await;
    let body = expect(&too_much, 422);
    assert_eq!((body["code"].as_str(), body["details"]["remaining"].as_u64()), (Some("REVERSAL_EXCEEDS_REMAINING"), Some(90)));

    // a spends all it has left; the full reversal then leaves it 30 below zero.
    expect(
        &call(&app, &partner, Method::POST, "/v1/partner/users/a/redeem", json!({ "tokens": 30, "reason": "gift card", "idempotencyKey": "spend" }))
            .await,
        200,
    );
    let full = expect(&reverse(json!({ "idempotencyKey": "rv-3", "reason": "chargeback" })).await, 200);
    assert_eq!((full["status"].as_str(), full["reversedTokens"].as_u64(), full["remainingTokens"].as_u64()), (Some("REVERSED"), Some(90), Some(0)));
    let a = balance(&app, &partner, "a").await;
    assert_eq!((a["available"].as_i64(), a["lifetimeReversed"].as_u64()), (Some(-30), Some(34)), "{a}");
    assert_eq!(balance(&app, &partner, "b").await["available"], 0);
    assert_eq!(code(&reverse(json!({ "idempotencyKey": "rv-4", "reason": "again" })).await), (422, "REVERSAL_EXCEEDS_REMAINING".into()));
    let read = expect(&call(&app, &partner, Method::GET, &format!("/v1/partner/actions/{action_id}"), Value::Null).await, 200);
    assert_eq!((read["status"].as_str(), read["reversedTokens"].as_u64()), (Some("REVERSED"), Some(100)));
    assert_eq!(pool(&app, &partner).await["balance"], 1_000, "every token went back to the pool");
    assert_eq!(count(&event_types(&app, &partner), "action.reversed"), 2);

    let by_status = expect(&call(&app, &partner, Method::GET, "/v1/partner/actions?status=REVERSED&actionType=PURCHASE", Value::Null).await, 200);
    assert_eq!(by_status["data"][0]["actionId"], action_id.as_str());
    let none = expect(&call(&app, &partner, Method::GET, "/v1/partner/actions?status=COMPLETED", Value::Null).await, 200);
    assert_eq!(none["data"], json!([]));
    assert_eq!(code(&call(&app, &partner, Method::GET, "/v1/partner/actions?status=DONE", Value::Null).await).0, 400);

    let reconciliation = reconciled(&app, &partner).await;
    assert_eq!((reconciliation["ledger"]["issuedTotal"].as_u64(), reconciliation["ledger"]["reversedTotal"].as_u64()), (Some(100), Some(100)));
    let dashboard = expect(&call(&app, &partner, Method::GET, "/v1/partner/dashboard", Value::Null).await, 200);
    // "today" is the UTC day: a run that crossed midnight checks the 30-day figures only.
    let today = if crate::support::now_secs() / 86_400 == first_day { 100 } else { 0 };
    assert_eq!(dashboard["tokensIssued"]["last30Days"], 100);
    assert_eq!(dashboard["tokensReversed"]["last30Days"], 100);
    if today == 100 {
        assert_eq!(dashboard["tokensIssued"]["today"], 100);
        assert_eq!(dashboard["tokensReversed"]["today"], 100);
        assert_eq!(dashboard["actions"]["today"], 1);
    }
    assert_eq!(dashboard["poolBalanceTotal"], 1_000);
    app.shutdown().await;
}

async fn batches_answer_each_item_in_order(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(1_000).await;
    let first = submit_body("b-1", "10", &[("CUSTOMER", "x")]);
    let invalid = json!({ "idempotencyKey": "b-2", "amount": 10, "currency": "USD", "stakeholders": [] });
    let batch = json!({ "actions": [first.clone(), invalid, first, submit_body("b-3", "5000", &[("CUSTOMER", "y")]), submit_body("b-4", "7", &[("CUSTOMER", "x")])] });
    let results = expect(&call(&app, &partner, Method::POST, "/v1/partner/actions/batch", batch).await, 200);
    let statuses: Vec<(u64, u64, String)> = results["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|item| {
            (
                item["index"].as_u64().expect("index"),
                item["statusCode"].as_u64().expect("status"),
                item["body"]["code"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (0, 200, String::new()),
            (1, 400, "VALIDATION_ERROR".into()),
            (2, 409, "IDEMPOTENT".into()),
            (3, 402, "INSUFFICIENT_POOL".into()),
            (4, 200, String::new())
        ]
    );
    assert_eq!(results["results"][0]["body"]["tokensDistributed"], 10);
    assert_eq!(pool(&app, &partner).await["balance"], 983);

    let too_many: Vec<Value> = (0..101).map(|index| submit_body(&format!("many-{index}"), "1", &[("CUSTOMER", "x")])).collect();
    assert_eq!(
        code(&call(&app, &partner, Method::POST, "/v1/partner/actions/batch", json!({ "actions": too_many })).await),
        (400, "VALIDATION_ERROR".into())
    );
    assert_eq!(code(&call(&app, &partner, Method::POST, "/v1/partner/actions/batch", json!({ "actions": [] })).await).0, 400);
    assert_eq!(code(&call(&app, &partner, Method::POST, "/v1/partner/actions/batch", json!({ "items": [] })).await).0, 400);
    let not_json = partner.signed(Method::POST, "/v1/partner/actions/batch", "{nope").await;
    assert_eq!(code(&not_json), (400, "INVALID_JSON".into()));
    assert_eq!(pool(&app, &partner).await["balance"], 983, "refused batches move nothing");
    let listed = expect(&call(&app, &partner, Method::GET, "/v1/partner/actions", Value::Null).await, 200);
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(2));

    let quote = expect(&call(&app, &partner, Method::POST, "/v1/partner/actions/quote", json!({ "actionType": "PURCHASE", "amount": 49.99, "currency": "USD", "stakeholders": [{ "stakeholderTypeCode": "CUSTOMER", "partnerUserId": "new_user" }] })).await, 200);
    assert_eq!((quote["tokensDistributed"].as_u64(), quote["funding"]["sufficient"].as_bool()), (Some(50), Some(true)));
    assert_eq!(
        code(
            &call(
                &app,
                &partner,
                Method::POST,
                "/v1/partner/actions/quote",
                json!({ "actionType": "PURCHASE", "amount": 1.999, "currency": "USD", "stakeholders": [] })
            )
            .await
        )
        .0,
        400
    );
    assert_eq!(code(&balance_response(&app, &partner, "new_user").await), (404, "USER_NOT_FOUND".into()), "a quote creates no user");
    assert_eq!(pool(&app, &partner).await["balance"], 983);
    app.shutdown().await;
}

async fn balance_response(app: &TestApp, partner: &Partner, user: &str) -> ClientResponse {
    call(app, partner, Method::GET, &format!("/v1/partner/users/{user}/balance"), Value::Null).await
}

async fn vesting_expiry_low_balance_and_auto_refill_follow_the_clock(backend: StoreBackend) {
    let app = spawn_app_with(AppOptions { backend, test_clock: true, ..AppOptions::default() }).await;
    let partner = app.onboard_partner(0).await;
    let allocations_path = format!("/api/v1/admin/partners/{}/token-pools", partner.id);
    let allocate = |body: Value| app.admin(Method::POST, &allocations_path, body);
    let pool_settings = json!({
        "environment": "sandbox", "tokens": 1_000, "idempotencyKey": "pool", "vestingDays": 7, "lowBalanceThreshold": 500,
        "autoRefill": { "thresholdTokens": 300, "refillTokens": 1_000, "maxRefillsPerMonth": 1 },
    });
    expect(&allocate(pool_settings).await, 201);

    let granted = expect(&submit(&app, &partner, submit_body("v-1", "600", &[("CUSTOMER", "v")])).await, 200);
    let transaction_id = granted["transactionIds"][0].as_str().expect("transaction").to_owned();
    let jane = balance(&app, &partner, "v").await;
    assert_eq!((jane["available"].as_i64(), jane["pending"].as_u64()), (Some(0), Some(600)), "unvested credit is pending");
    let history = expect(&call(&app, &partner, Method::GET, "/v1/partner/users/v/transactions", Value::Null).await, 200);
    assert_eq!(history["data"][0]["id"], transaction_id.as_str());
    assert!(history["data"][0]["vestsAt"].is_string());
    let redeem = |key: &str, tokens: u64| {
        call(&app, &partner, Method::POST, "/v1/partner/users/v/redeem", json!({ "tokens": tokens, "reason": "r", "idempotencyKey": key }))
    };
    assert_eq!(code(&redeem("early", 1).await), (402, "INSUFFICIENT_BALANCE".into()), "pending tokens cannot be spent");
    assert_eq!(count(&event_types(&app, &partner), "token_pool.low_balance"), 1, "400 < 500: one notice");

    // 400 → 250 crosses the refill threshold: +1000 from the allowance.
    expect(&submit(&app, &partner, submit_body("v-2", "150", &[("CUSTOMER", "v")])).await, 200);
    let refilled = pool(&app, &partner).await;
    assert_eq!((refilled["balance"].as_u64(), refilled["refilledTotal"].as_u64()), (Some(1_250), Some(1_000)));
    assert_eq!(count(&event_types(&app, &partner), "token_pool.refilled"), 1);
    // 1250 → 250: a second crossing of the low-balance line, and the month's one refill is used.
    expect(&submit(&app, &partner, submit_body("v-3", "1000", &[("CUSTOMER", "v")])).await, 200);
    let types = event_types(&app, &partner);
    assert_eq!((count(&types, "token_pool.low_balance"), count(&types, "token_pool.refilled")), (2, 1));
    assert_eq!(pool(&app, &partner).await["balance"], 250);

    app.admin(Method::POST, "/api/v1/admin/clock", json!({ "advanceSeconds": 8 * 86_400 })).await;
    let vested = balance(&app, &partner, "v").await;
    assert_eq!((vested["available"].as_i64(), vested["pending"].as_u64()), (Some(1_750), Some(0)), "vested by the clock, no job needed");
    expect(&redeem("later", 100).await, 200);

    // A later month renews the allowance: a reward the balance alone cannot cover (250 < 400)
    // refills first rather than being refused, although nothing moved the balance meanwhile.
    app.admin(Method::POST, "/api/v1/admin/clock", json!({ "advanceSeconds": 31 * 86_400 })).await;
    expect(&submit(&app, &partner, submit_body("v-refill", "400", &[("CUSTOMER", "v")])).await, 200);
    let refilled = pool(&app, &partner).await;
    assert_eq!((refilled["balance"].as_u64(), refilled["refilledTotal"].as_u64()), (Some(850), Some(2_000)));

    let expires_at = reward_actors::engine::clock::format_timestamp(app.engine().clock().now_ms() + 86_400_000);
    expect(&allocate(json!({ "environment": "sandbox", "tokens": 1, "idempotencyKey": "expiry", "expiresAt": expires_at })).await, 200);
    app.admin(Method::POST, "/api/v1/admin/clock", json!({ "advanceSeconds": 2 * 86_400 })).await;
    assert_eq!(code(&submit(&app, &partner, submit_body("v-4", "1", &[("CUSTOMER", "v")])).await), (402, "POOL_EXPIRED".into()));
    let reconciliation = reconciled(&app, &partner).await;
    assert_eq!(reconciliation["ledger"]["refilledTotal"], 2_000);
    app.shutdown().await;
}

async fn campaign_schedules_follow_the_clock(backend: StoreBackend) {
    let app = spawn_app_with(AppOptions { backend, test_clock: true, ..AppOptions::default() }).await;
    let partner = app.onboard_partner(10_000).await;
    let now_ms = app.engine().clock().now_ms();
    let at = |days: u64| reward_actors::engine::clock::format_timestamp(now_ms + days * 86_400_000);
    let campaign = json!({ "name": "Weekend", "status": "ACTIVE", "multiplier": 2, "schedule": { "startsAt": at(1), "endsAt": at(3) } });
    expect(&call(&app, &partner, Method::POST, "/v1/partner/campaigns", campaign).await, 201);
    let tokens = |key: &'static str| {
        let (app, partner) = (&app, &partner);
        async move { expect(&submit(app, partner, submit_body(key, "10", &[("CUSTOMER", "s")])).await, 200)["tokensDistributed"].as_u64() }
    };
    assert_eq!(tokens("s-1").await, Some(10), "before the start: the default rule");
    app.admin(Method::POST, "/api/v1/admin/clock", json!({ "advanceSeconds": 86_400 })).await;
    assert_eq!(tokens("s-2").await, Some(20), "inside the schedule: the campaign");
    app.admin(Method::POST, "/api/v1/admin/clock", json!({ "advanceSeconds": 2 * 86_400 })).await;
    assert_eq!(tokens("s-3").await, Some(10), "after the end: the default rule again");
    app.shutdown().await;
}

async fn a_campaign_with_its_own_pool_draws_from_it(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(1_000).await;
    let default_pool = pool(&app, &partner).await["id"].as_str().expect("id").to_owned();
    let allocations = format!("/api/v1/admin/partners/{}/token-pools", partner.id);
    let second = app
        .admin(
            Method::POST,
            &allocations,
            json!({ "environment": "sandbox", "tokens": 500, "idempotencyKey": "second", "newPool": true, "name": "Spring" }),
        )
        .await;
    let second = expect(&second, 201);
    let second_id = second["id"].as_str().expect("id").to_owned();
    assert_ne!(second_id, default_pool);
    let both = app
        .admin(
            Method::POST,
            &allocations,
            json!({ "environment": "sandbox", "tokens": 1, "idempotencyKey": "x", "newPool": true, "poolId": second_id }),
        )
        .await;
    assert_eq!(code(&both).0, 400);
    let campaign = json!({ "name": "Spring", "status": "ACTIVE", "tokenPoolId": second_id });
    expect(&call(&app, &partner, Method::POST, "/v1/partner/campaigns", campaign).await, 201);

    let paid = expect(&submit(&app, &partner, submit_body("sp-1", "100", &[("CUSTOMER", "w")])).await, 200);
    let action = expect(
        &call(&app, &partner, Method::GET, &format!("/v1/partner/actions/{}", paid["actionId"].as_str().expect("id")), Value::Null).await,
        200,
    );
    assert_eq!(action["tokenPoolId"], second_id.as_str());
    let balance_of = |id: String| {
        let (app, partner) = (&app, &partner);
        async move { expect(&call(app, partner, Method::GET, &format!("/v1/partner/token-pools/{id}"), Value::Null).await, 200)["balance"].as_u64() }
    };
    assert_eq!((balance_of(second_id.clone()).await, balance_of(default_pool.clone()).await), (Some(400), Some(1_000)));
    let reverse = json!({ "idempotencyKey": "sp-r", "reason": "refund" });
    expect(
        &call(&app, &partner, Method::POST, &format!("/v1/partner/actions/{}/reverse", paid["actionId"].as_str().expect("id")), reverse).await,
        200,
    );
    assert_eq!(balance_of(second_id.clone()).await, Some(500), "tokens go back to the pool they came from");
    let short = submit(&app, &partner, submit_body("sp-2", "600", &[("CUSTOMER", "w")])).await;
    assert_eq!(code(&short), (402, "INSUFFICIENT_POOL".into()), "the campaign's pool is short even though the default pool is not");
    app.shutdown().await;
}

async fn every_new_route_keeps_sandbox_and_production_apart(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let sandbox = app.onboard_partner(1_000).await;
    let production = app.issue_key(&sandbox.id, "production").await;
    assert_eq!(production.allocate(&app, 500, "live-pool").await.status, 201);
    let action = expect(&submit(&app, &sandbox, submit_body("iso-1", "10", &[("CUSTOMER", "shared")])).await, 200);
    let action_id = action["actionId"].as_str().expect("id").to_owned();
    let campaign = expect(&call(&app, &sandbox, Method::POST, "/v1/partner/campaigns", json!({ "name": "Sandbox only" })).await, 201);
    let campaign_id = campaign["id"].as_str().expect("id").to_owned();
    let sandbox_pool = pool(&app, &sandbox).await["id"].as_str().expect("pool").to_owned();
    for (method, path, body, expected) in [
        (Method::GET, "/v1/partner/users/shared".to_owned(), Value::Null, "USER_NOT_FOUND"),
        (Method::PATCH, "/v1/partner/users/shared".to_owned(), json!({ "lastName": "X" }), "USER_NOT_FOUND"),
        (Method::GET, "/v1/partner/users/shared/transactions".to_owned(), Value::Null, "USER_NOT_FOUND"),
        (Method::POST, "/v1/partner/users/shared/redeem".to_owned(), json!({ "tokens": 1, "reason": "x", "idempotencyKey": "x" }), "USER_NOT_FOUND"),
        (Method::GET, format!("/v1/partner/campaigns/{campaign_id}"), Value::Null, "NOT_FOUND"),
        (Method::PATCH, format!("/v1/partner/campaigns/{campaign_id}"), json!({ "name": "hijack" }), "NOT_FOUND"),
        (Method::DELETE, format!("/v1/partner/campaigns/{campaign_id}"), Value::Null, "NOT_FOUND"),
        (Method::POST, format!("/v1/partner/actions/{action_id}/reverse"), json!({ "idempotencyKey": "x", "reason": "x" }), "NOT_FOUND"),
        (Method::GET, format!("/v1/partner/token-pools/{sandbox_pool}/reconciliation"), Value::Null, "NOT_FOUND"),
    ] {
        let response = call(&app, &production, method.clone(), &path, body).await;
        assert_eq!(code(&response), (404, expected.to_owned()), "{method} {path}");
    }
    for list in ["/v1/partner/users", "/v1/partner/campaigns", "/v1/partner/actions", "/v1/partner/transactions?type=REWARD"] {
        let listed = expect(&call(&app, &production, Method::GET, list, Value::Null).await, 200);
        assert_eq!(listed["data"], json!([]), "{list}");
    }
    let dashboard = expect(&call(&app, &production, Method::GET, "/v1/partner/dashboard", Value::Null).await, 200);
    assert_eq!(
        (dashboard["environment"].as_str(), dashboard["tokensIssued"]["today"].as_u64(), dashboard["poolBalanceTotal"].as_u64()),
        (Some("production"), Some(0), Some(500))
    );
    assert_eq!(balance(&app, &sandbox, "shared").await["available"], 10);
    app.shutdown().await;
}

async fn parallel_reversals_and_redemptions_never_overdraw(backend: StoreBackend) {
    const CONCURRENT: usize = 16;
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(1_000).await;
    let action = expect(&submit(&app, &partner, submit_body("p-1", "100", &[("CUSTOMER", "p"), ("CUSTOMER", "q")])).await, 200);
    let path = format!("/v1/partner/actions/{}/reverse", action["actionId"].as_str().expect("id"));
    // Sixteen different keys each ask for 10 of the 100: exactly ten may succeed.
    let reversals = (0..CONCURRENT)
        .map(|index| call(&app, &partner, Method::POST, &path, json!({ "idempotencyKey": format!("par-{index}"), "reason": "r", "tokens": 10 })));
    let statuses: Vec<u16> = futures_statuses(reversals).await;
    assert_eq!(statuses.iter().filter(|status| **status == 200).count(), 10, "{statuses:?}");
    assert!(statuses.iter().all(|status| *status == 200 || *status == 422), "{statuses:?}");
    assert_eq!(pool(&app, &partner).await["balance"], 1_000);

    expect(&submit(&app, &partner, submit_body("p-2", "50", &[("CUSTOMER", "p")])).await, 200);
    let redemptions = (0..CONCURRENT).map(|index| {
        call(
            &app,
            &partner,
            Method::POST,
            "/v1/partner/users/p/redeem",
            json!({ "idempotencyKey": format!("red-{index}"), "reason": "r", "tokens": 7 }),
        )
    });
    let statuses = futures_statuses(redemptions).await;
    assert_eq!(statuses.iter().filter(|status| **status == 200).count(), 7, "50 available: seven redemptions of 7 fit, {statuses:?}");
    assert_eq!(balance(&app, &partner, "p").await["available"], 1);
    reconciled(&app, &partner).await;
    app.shutdown().await;
}

/// Runs the requests concurrently (interleaved on this task: they borrow the app) and
/// answers their statuses in order.
async fn futures_statuses<F: std::future::Future<Output = ClientResponse>>(requests: impl Iterator<Item = F>) -> Vec<u16> {
    let mut pending: Vec<std::pin::Pin<Box<F>>> = requests.map(Box::pin).collect();
    let mut statuses: Vec<Option<u16>> = vec![None; pending.len()];
    std::future::poll_fn(|context| {
        for (future, status) in pending.iter_mut().zip(statuses.iter_mut()) {
            if status.is_none()
                && let std::task::Poll::Ready(response) = future.as_mut().poll(context)
            {
                *status = Some(response.status);
            }
        }
        if statuses.iter().all(Option::is_some) { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
    })
    .await;
    statuses.into_iter().flatten().collect()
}

crate::backend_tests!(
    campaigns_select_split_and_spend_their_budget,
    users_balances_transactions_and_redemption,
    reversals_are_pro_rata_bounded_and_may_leave_balances_negative,
    batches_answer_each_item_in_order,
    vesting_expiry_low_balance_and_auto_refill_follow_the_clock,
    campaign_schedules_follow_the_clock,
    a_campaign_with_its_own_pool_draws_from_it,
    every_new_route_keeps_sandbox_and_production_apart,
    parallel_reversals_and_redemptions_never_overdraw
);
