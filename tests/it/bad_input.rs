//! Bad input: each case gets a clear 4xx with its stable code, and nothing is stored
//! (the pool is untouched, no user appears, and the idempotency key stays free).

use bytes::Bytes;
use hyper::Method;
use reward_actors::store::StoreBackend;

use crate::support::{Partner, action_body, code, now_secs, request, spawn_app};

const SUBMIT: &str = "/v1/partner/actions/submit";

/// How a case's request is made.
struct Case {
    name: &'static str,
    /// Body the signature covers.
    signed_body: String,
    /// Body actually sent (differs only when testing tampering).
    sent_body: Option<String>,
    key: KeyChoice,
    timestamp_offset_secs: i64,
    signature: SignatureChoice,
    content_type: &'static str,
    expected: (u16, &'static str),
    field: Option<&'static str>,
}

#[derive(Clone, Copy)]
enum KeyChoice {
    Secret,
    Publishable,
    Unknown,
    Missing,
}

#[derive(Clone, Copy)]
enum SignatureChoice {
    Valid,
    Missing,
    WrongValue,
    UpperCase,
    Empty,
}

fn case(name: &'static str, body: String, expected: (u16, &'static str), field: Option<&'static str>) -> Case {
    Case {
        name,
        signed_body: body,
        sent_body: None,
        key: KeyChoice::Secret,
        timestamp_offset_secs: 0,
        signature: SignatureChoice::Valid,
        content_type: "application/json",
        expected,
        field,
    }
}

fn good() -> String {
    action_body("bad-1", "49.99", "victim")
}

fn with_stakeholders(count: usize) -> String {
    let stakeholders: Vec<String> =
        (0..count).map(|index| format!(r#"{{"stakeholderTypeCode":"CUSTOMER","partnerUserId":"victim{index}"}}"#)).collect();
    format!(r#"{{"idempotencyKey":"bad-1","actionType":"PURCHASE","amount":49.99,"currency":"USD","stakeholders":[{}]}}"#, stakeholders.join(","))
}

fn cases() -> Vec<Case> {
    let validation = (400, "VALIDATION_ERROR");
    vec![
        Case { key: KeyChoice::Missing, ..case("missing key", good(), (401, "MISSING_API_KEY"), None) },
        Case { key: KeyChoice::Unknown, ..case("unknown key", good(), (401, "INVALID_API_KEY"), None) },
        Case { signature: SignatureChoice::Missing, ..case("missing signature", good(), (401, "MISSING_SIGNATURE"), None) },
        Case { signature: SignatureChoice::WrongValue, ..case("wrong signature", good(), (401, "INVALID_SIGNATURE"), None) },
        Case { signature: SignatureChoice::Empty, ..case("empty signature", good(), (401, "MISSING_SIGNATURE"), None) },
        Case { signature: SignatureChoice::UpperCase, ..case("upper-case signature", good(), (401, "INVALID_SIGNATURE"), None) },
        Case { timestamp_offset_secs: -301, ..case("stale timestamp", good(), (401, "TIMESTAMP_OUT_OF_RANGE"), None) },
        Case { timestamp_offset_secs: 400, ..case("future timestamp", good(), (401, "TIMESTAMP_OUT_OF_RANGE"), None) },
        Case { sent_body: Some(action_body("bad-1", "4999.99", "victim")), ..case("body changed after signing", good(), (401, "INVALID_SIGNATURE"), None) },
        Case { key: KeyChoice::Publishable, ..case("publishable key on a mutation", good(), (403, "SECRET_KEY_REQUIRED"), None) },
        Case { content_type: "text/plain", ..case("wrong content type", good(), (415, "UNSUPPORTED_MEDIA_TYPE"), None) },
        case("malformed JSON", r#"{"idempotencyKey": "bad-1", "#.into(), (400, "INVALID_JSON"), None),
        case("empty body", String::new(), (400, "INVALID_JSON"), None),
        case("not an object", "[1, 2, 3]".into(), validation, Some("body")),
        case("amount as a string", good().replace("49.99", "\"49.99\""), validation, Some("amount")),
        case("idempotency key as a number", good().replace("\"bad-1\"", "17"), validation, Some("idempotencyKey")),
        case("stakeholders not an array", r#"{"idempotencyKey":"bad-1","actionType":"PURCHASE","amount":1,"currency":"USD","stakeholders":{"a":1}}"#.into(), validation, Some("stakeholders")),
        case("negative amount", action_body("bad-1", "-5", "victim"), validation, Some("amount")),
        case("zero amount", action_body("bad-1", "0", "victim"), validation, Some("amount")),
        case("over-precise amount", action_body("bad-1", "49.999", "victim"), validation, Some("amount")),
        case("exponent amount", action_body("bad-1", "1e3", "victim"), validation, Some("amount")),
        case("huge amount", action_body("bad-1", "123456789012345678901234567890", "victim"), validation, Some("amount")),
        case("unknown currency", good().replace("\"USD\"", "\"XYZ\""), validation, Some("currency")),
        case("amount without currency", r#"{"idempotencyKey":"bad-1","actionType":"PURCHASE","amount":5,"stakeholders":[{"stakeholderTypeCode":"CUSTOMER","partnerUserId":"victim"}]}"#.into(), validation, Some("currency")),
        case("too many stakeholders", with_stakeholders(21), validation, Some("stakeholders")),
        case("no stakeholders", with_stakeholders(0), validation, Some("stakeholders")),
        case("overlong idempotency key", good().replace("\"bad-1\"", &format!("\"{}\"", "k".repeat(256))), validation, Some("idempotencyKey")),
        case("duplicate partnerUserId", good().replace(r#"}]}"#, r#"},{"stakeholderTypeCode":"NONPROFIT","partnerUserId":"victim"}]}"#), validation, Some("stakeholders[1].partnerUserId")),
        case("unregistered stakeholder type", good().replace("CUSTOMER", "EMPLOYEE"), validation, Some("stakeholders[0].stakeholderTypeCode")),
        case("bad partnerUserId", good().replace("victim", "vic tim"), validation, Some("stakeholders[0].partnerUserId")),
        case("unknown field", good().replace("{\"idempotencyKey\"", "{\"tip\":1,\"idempotencyKey\""), validation, Some("tip")),
        case("metadata not an object", good().replace("}]}", "}],\"metadata\":[1]}"), validation, Some("metadata")),
        case("metadata too large", good().replace("}]}", &format!("}}],\"metadata\":{{\"blob\":\"{}\"}}}}", "x".repeat(5_000))), validation, Some("metadata")),
        case("oversized body", good().replace("}]}", &format!("}}],\"metadata\":{{\"blob\":\"{}\"}}}}", "x".repeat(70_000))), (413, "PAYLOAD_TOO_LARGE"), None),
    ]
}

async fn send(partner: &Partner, case: &Case) -> reward_bench::client::ClientResponse {
    let timestamp = (now_secs() as i64 + case.timestamp_offset_secs) as u64;
    let key = match case.key {
        KeyChoice::Secret | KeyChoice::Missing => partner.secret_key.clone(),
        KeyChoice::Publishable => partner.public_key.clone(),
        KeyChoice::Unknown => format!("sk_test_{}", "0".repeat(64)),
    };
    let mut headers = partner.sign_with(&key, "POST", SUBMIT, case.signed_body.as_bytes(), timestamp);
    headers.retain(|(name, _)| name != "content-type");
    headers.push(("content-type".into(), case.content_type.into()));
    match case.signature {
        SignatureChoice::Valid => {}
        SignatureChoice::Missing => headers.retain(|(name, _)| name != "x-signature"),
        SignatureChoice::WrongValue => headers.iter_mut().filter(|(name, _)| name == "x-signature").for_each(|(_, value)| *value = "0".repeat(64)),
        SignatureChoice::UpperCase => {
            headers.iter_mut().filter(|(name, _)| name == "x-signature").for_each(|(_, value)| *value = value.to_uppercase())
        }
        SignatureChoice::Empty => headers.iter_mut().filter(|(name, _)| name == "x-signature").for_each(|(_, value)| value.clear()),
    }
    if matches!(case.key, KeyChoice::Missing) {
        headers.retain(|(name, _)| name != "x-partner-key");
    }
    let headers: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    let body = case.sent_body.clone().unwrap_or_else(|| case.signed_body.clone());
    request(partner.address, Method::POST, SUBMIT, &headers, Bytes::from(body)).await
}

async fn every_bad_request_gets_its_code_and_stores_nothing(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(1_000).await;
    let mut failures = Vec::new();
    for case in cases() {
        let response = send(&partner, &case).await;
        let body = response.json();
        let code = body["code"].as_str().unwrap_or("<none>").to_owned();
        if (response.status, code.as_str()) != case.expected {
            failures.push(format!(
                "{}: expected {:?}, got {} {}",
                case.name,
                case.expected,
                response.status,
                String::from_utf8_lossy(&response.body)
            ));
            continue;
        }
        if body["requestId"].as_str().is_none_or(|id| !id.starts_with("req_")) || response.header("x-request-id").is_none() {
            failures.push(format!("{}: no request id", case.name));
        }
        if let Some(field) = case.field {
            let fields: Vec<&str> = body["details"]["fields"]
                .as_array()
                .map(|fields| fields.iter().filter_map(|entry| entry["field"].as_str()).collect())
                .unwrap_or_default();
            if !fields.contains(&field) {
                failures.push(format!("{}: expected field {field} in {fields:?}", case.name));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));

    // Nothing was stored: the pool is whole, the victim does not exist, the key is free.
    assert_eq!(partner.pool().await["balance"], 1_000);
    assert_eq!(partner.balance("victim").await.status, 404);
    let valid = partner.submit(&good()).await;
    assert_eq!(valid.status, 200, "{}", String::from_utf8_lossy(&valid.body));
    app.shutdown().await;
}

async fn unknown_routes_and_methods_answer_json(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let missing = app.raw(Method::GET, "/v1/partner/nothing-here", &[], Bytes::new()).await;
    assert_eq!((missing.status, missing.json()["code"].as_str()), (404, Some("NOT_FOUND")));
    assert!(missing.header("x-request-id").is_some());
    let undecodable = app.raw(Method::GET, "/v1/partner/users/%FF%FE/balance", &[], Bytes::new()).await;
    assert_eq!((undecodable.status, undecodable.json()["code"].as_str()), (404, Some("NOT_FOUND")));
    let wrong_method = app.raw(Method::DELETE, "/v1/partner/actions/submit", &[], Bytes::new()).await;
    assert_eq!((wrong_method.status, wrong_method.json()["code"].as_str()), (405, Some("METHOD_NOT_ALLOWED")));
    app.shutdown().await;
}

/// Everything a partner can read, to show a bad request changed none of it.
async fn snapshot(app: &crate::support::TestApp, partner: &Partner) -> Vec<serde_json::Value> {
    let mut seen = Vec::new();
    for path in ["/v1/partner/users", "/v1/partner/campaigns", "/v1/partner/actions", "/v1/partner/transactions", "/v1/partner/token-pools"] {
        let response = partner.signed(Method::GET, path, "").await;
        assert_eq!(response.status, 200, "{path}");
        seen.push(response.json()["data"].clone());
    }
    let partner_env = reward_actors::domain::model::PartnerEnv::new(
        reward_actors::domain::ids::Id::parse_hex(&partner.id).expect("id"),
        reward_actors::domain::model::Environment::Sandbox,
    );
    seen.push(serde_json::json!(app.engine().webhooks().list_events(partner_env, 0, 100).expect("events").items.len()));
    seen
}

async fn every_partner_route_refuses_bad_input_and_stores_nothing(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(1_000).await;
    let seeded = partner.submit(&action_body("seed", "10", "holder")).await;
    assert_eq!(seeded.status, 200);
    let action_id = seeded.json()["actionId"].as_str().expect("id").to_owned();
    let campaign = partner.signed(Method::POST, "/v1/partner/campaigns", r#"{"name":"Base"}"#).await;
    assert_eq!(campaign.status, 201);
    let campaign_id = campaign.json()["id"].as_str().expect("id").to_owned();
    let before = snapshot(&app, &partner).await;

    let reverse = format!("/v1/partner/actions/{action_id}/reverse");
    let campaign_path = format!("/v1/partner/campaigns/{campaign_id}");
    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(70_000));
    let validation = (400, "VALIDATION_ERROR");
    let cases: Vec<(Method, &str, String, (u16, &str))> = vec![
        (Method::POST, "/v1/partner/users", "{nope".into(), (400, "INVALID_JSON")),
        (Method::POST, "/v1/partner/users", r#"{"externalId":"a b"}"#.into(), validation),
        (Method::POST, "/v1/partner/users", r#"{"externalId":"ok","email":"not-an-email"}"#.into(), validation),
        (Method::POST, "/v1/partner/users", r#"{"externalId":"ok","metadata":[1]}"#.into(), validation),
        (Method::POST, "/v1/partner/users", big.clone(), (413, "PAYLOAD_TOO_LARGE")),
        (Method::PATCH, "/v1/partner/users/holder", r#"{"firstName":""}"#.into(), validation),
        (Method::PATCH, "/v1/partner/users/holder", r#"{"externalId":"other"}"#.into(), validation),
        (Method::POST, "/v1/partner/users/holder/redeem", r#"{"tokens":1,"reason":"x"}"#.into(), validation),
        (Method::POST, "/v1/partner/users/holder/redeem", r#"{"tokens":-1,"reason":"x","idempotencyKey":"k"}"#.into(), validation),
        (Method::POST, "/v1/partner/users/holder/redeem", r#"{"tokens":1.5,"reason":"x","idempotencyKey":"k"}"#.into(), validation),
        (Method::POST, "/v1/partner/users/holder/redeem", r#"{"tokens":9007199254740992,"reason":"x","idempotencyKey":"k"}"#.into(), validation),
        (Method::POST, &reverse, r#"{"reason":"x"}"#.into(), validation),
        (Method::POST, &reverse, r#"{"idempotencyKey":"k","reason":"x","tokens":"5"}"#.into(), validation),
        (Method::POST, &reverse, "[]".into(), validation),
        (Method::POST, "/v1/partner/campaigns", r#"{"name":"x","multiplier":"2"}"#.into(), validation),
        (Method::POST, "/v1/partner/campaigns", r#"{"name":"x","priority":1.5}"#.into(), validation),
        (Method::POST, "/v1/partner/campaigns", r#"{"name":"x","tiers":[{"minAmount":1}]}"#.into(), validation),
        (Method::POST, "/v1/partner/campaigns", r#"{"name":"x","currencies":["XXX1"]}"#.into(), validation),
        (Method::POST, "/v1/partner/campaigns", r#"{"name":"x","budgetTokens":-5}"#.into(), validation),
        (Method::PATCH, &campaign_path, r#"{"splits":[{"stakeholderTypeCode":"CUSTOMER","percent":0}]}"#.into(), validation),
        (Method::PATCH, &campaign_path, r#"{"schedule":{"startsAt":"soon"}}"#.into(), validation),
        (Method::PATCH, "/v1/partner/campaigns/0123456789abcdef01234567", r#"{"name":"y"}"#.into(), (404, "NOT_FOUND")),
        (Method::POST, "/v1/partner/actions/batch", r#"{"actions":{}}"#.into(), validation),
        (
            Method::POST,
            "/v1/partner/actions/quote",
            r#"{"actionType":"PURCHASE","amount":1e3,"currency":"USD","stakeholders":[]}"#.into(),
            validation,
        ),
        (Method::POST, "/v1/partner/token-pools/request", r#"{"tokens":0,"reason":"x"}"#.into(), validation),
    ];
    let mut failures = Vec::new();
    for (method, path, body, expected) in &cases {
        let response = partner.signed(method.clone(), path, body).await;
        let code = response.json()["code"].as_str().unwrap_or("<none>").to_owned();
        if (response.status, code.as_str()) != *expected {
            failures.push(format!(
                "{method} {path} {body:.60}: expected {expected:?}, got {} {}",
                response.status,
                String::from_utf8_lossy(&response.body)
            ));
        }
    }
    let wrong_type = {
        let headers = partner.sign_with(&partner.secret_key, "POST", "/v1/partner/users", br#"{"externalId":"t"}"#, now_secs());
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(name, value)| if name == "content-type" { (name.as_str(), "text/plain") } else { (name.as_str(), value.as_str()) })
            .collect();
        request(partner.address, Method::POST, "/v1/partner/users", &headers, Bytes::from_static(br#"{"externalId":"t"}"#)).await
    };
    if wrong_type.status != 415 {
        failures.push(format!("text/plain body: got {}", wrong_type.status));
    }
    for query in
        ["/v1/partner/actions?limit=0", "/v1/partner/actions?from=never", "/v1/partner/transactions?actionId=zz", "/v1/partner/users?colour=red"]
    {
        let response = partner.signed(Method::GET, query, "").await;
        if response.status != 400 {
            failures.push(format!("GET {query}: got {}", response.status));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert_eq!(snapshot(&app, &partner).await, before, "bad requests stored nothing");
    app.shutdown().await;
}

/// Query values Schemathesis found read as absent or past their bounds: an empty value, a
/// repeated parameter, a page deeper than `PAGE_MAX`, a query on a list that reads none.
/// Each is a 400 naming the parameter, on partner and admin lists alike.
async fn list_queries_refuse_empty_repeated_and_unknown_values(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(0).await;
    let refused = |field: &'static str| ((400, "VALIDATION_ERROR".to_owned()), field);
    let partner_cases = [
        ("/v1/partner/actions?to=", "to"),
        ("/v1/partner/actions?from=&status=COMPLETED", "from"),
        ("/v1/partner/actions?actionType=", "actionType"),
        ("/v1/partner/transactions?to=", "to"),
        ("/v1/partner/transactions?type=", "type"),
        ("/v1/partner/users/holder/transactions?actionId=", "actionId"),
        ("/v1/partner/campaigns?status=", "status"),
        ("/v1/partner/users?cursor=", "cursor"),
        ("/v1/partner/users?page=1&page=1", "page"),
        ("/v1/partner/token-pools?limit=10&limit=20", "limit"),
        ("/v1/partner/webhooks?page=102", "page"),
    ];
    let mut failures = Vec::new();
    for (path, field) in partner_cases {
        let response = partner.signed(Method::GET, path, "").await;
        let fields = response.json()["details"]["fields"].clone();
        if (code(&response), fields[0]["field"].as_str().unwrap_or("")) != (refused(field).0, field) {
            failures.push(format!("GET {path}: {} {}", response.status, String::from_utf8_lossy(&response.body)));
        }
    }
    let keys = format!("/api/v1/admin/partners/{}/keys?page=null&page=null", partner.id);
    for path in
        [keys.as_str(), "/api/v1/admin/partners?page=1&page=2", "/api/v1/admin/token-pool-requests?status=", "/api/v1/admin/partners?page=5000"]
    {
        let response = app.admin(Method::GET, path, serde_json::Value::Null).await;
        if code(&response) != (400, "VALIDATION_ERROR".to_owned()) {
            failures.push(format!("GET {path}: {} {}", response.status, String::from_utf8_lossy(&response.body)));
        }
    }
    let deepest = partner.signed(Method::GET, "/v1/partner/users?page=101&limit=100", "").await;
    if deepest.status != 200 {
        failures.push(format!("the deepest page: {}", deepest.status));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    app.shutdown().await;
}

crate::backend_tests!(
    list_queries_refuse_empty_repeated_and_unknown_values,
    every_bad_request_gets_its_code_and_stores_nothing,
    unknown_routes_and_methods_answer_json,
    every_partner_route_refuses_bad_input_and_stores_nothing
);
