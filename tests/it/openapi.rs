//! The OpenAPI document: valid OpenAPI 3.1, the same routes as the router, and schemas that
//! real answers satisfy.

use bytes::Bytes;
use hyper::Method;
use reward_actors::store::StoreBackend;
use serde_json::{Value, json};

use crate::support::{AppOptions, action_body, spawn_app, spawn_app_with};

fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("fixture JSON")
}

fn schema_errors(schema: &Value, instance: &Value) -> Vec<String> {
    let validator = jsonschema::validator_for(schema).expect("the schema compiles");
    validator.iter_errors(instance).map(|error| error.to_string()).take(10).collect()
}

#[test]
fn the_document_is_valid_openapi_3_1() {
    let meta = fixture("openapi-3.1.schema.json");
    let document = reward_engine::http::openapi::document();
    let errors = schema_errors(&meta, &document);
    assert!(errors.is_empty(), "not valid OpenAPI 3.1: {errors:#?}");
    // The check has teeth: a broken document is refused.
    let mut broken = document.clone();
    broken["paths"]["/healthz"]["get"]["responses"] = json!("none");
    assert!(!schema_errors(&meta, &broken).is_empty(), "the validator must refuse a broken document");
    let mut wrong_version = document.clone();
    wrong_version["openapi"] = json!("3.0.3");
    assert!(!schema_errors(&meta, &wrong_version).is_empty());

    // Every request example satisfies its own schema.
    let mut examples = 0;
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("operations") {
            let mut schema = operation["requestBody"]["content"]["application/json"]["schema"].clone();
            if schema.is_null() {
                continue;
            }
            let samples = schema["examples"].as_array().cloned().unwrap_or_default();
            schema["components"] = document["components"].clone();
            for sample in samples {
                let errors = schema_errors(&schema, &sample);
                assert!(errors.is_empty(), "{method} {path}: its example {sample} fails its schema: {errors:?}");
                examples += 1;
            }
        }
    }
    assert!(examples >= 6, "the main writes carry examples ({examples})");
}

/// Every route of the table the router is built from, as (method, path); OPTIONS (the widget
/// routes' CORS preflight) is left out, as the document leaves it out.
fn router_routes() -> std::collections::BTreeSet<(String, String)> {
    reward_engine::http::routes()
        .into_iter()
        .filter(|route| route.method != Method::OPTIONS)
        .map(|route| (route.method.as_str().to_ascii_lowercase(), route.path.to_owned()))
        .collect()
}

#[test]
fn the_document_and_the_router_list_the_same_routes() {
    let router = router_routes();
    assert!(router.len() > 60, "the table lists the routes: {router:?}");
    let documented: std::collections::BTreeSet<(String, String)> = reward_engine::http::openapi::documented_routes().into_iter().collect();
    let undocumented: Vec<_> = router.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&router).collect();
    assert!(undocumented.is_empty(), "routes missing from the OpenAPI document: {undocumented:?}");
    assert!(unrouted.is_empty(), "documented routes the router does not serve: {unrouted:?}");
}

/// Every partner route's scope, from the table the router is built from, is the one its
/// document operation names, and no other route's document names one.
#[test]
fn each_routes_documented_scope_is_its_table_scope() {
    let document = reward_engine::http::openapi::document();
    let mut scoped = 0;
    for route in reward_engine::http::routes().into_iter().filter(|route| route.method != Method::OPTIONS) {
        let method = route.method.as_str().to_ascii_lowercase();
        let operation = &document["paths"][route.path][&method];
        assert!(operation.is_object(), "{method} {} is not documented", route.path);
        match route.scope() {
            Some(scope) => {
                scoped += 1;
                assert_eq!(operation["description"], json!(format!("Scope `{scope}`.")), "{method} {}", route.path);
                assert_eq!(operation["security"][0]["partnerKey"], json!([]), "{method} {} is documented as a partner-key route", route.path);
            }
            None => assert!(operation["description"].is_null(), "{method} {} documents a scope its route does not require", route.path),
        }
    }
    assert!(scoped >= 34, "the partner routes carry their scopes ({scoped})");
}

/// A route's path with every `{parameter}` filled in: an id no resource has (the answer
/// past authorization is then a 404, which is what the check needs).
fn concrete(path: &str) -> String {
    path.split('/')
        .map(
            |segment| {
                if segment.starts_with('{') { if segment == "{external_id}" { "scope-user" } else { "0123456789abcdef01234567" } } else { segment }
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// Over real HTTP, for every partner route with a scope: a key holding every other scope is
/// refused with 403 `INSUFFICIENT_SCOPE` naming that scope, and a key holding that scope
/// alone gets past authorization (whatever the handler then answers: 200, 400, 404…).
async fn each_routes_scope_is_enforced_as_documented(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(1_000).await;
    let routes: Vec<_> = reward_engine::http::routes().into_iter().filter(|route| route.scope().is_some()).collect();
    let scopes: std::collections::BTreeSet<&str> = routes.iter().filter_map(|route| route.scope()).collect();
    let mut keys = std::collections::BTreeMap::new();
    for scope in &scopes {
        let others: Vec<&str> = scopes.iter().copied().filter(|other| other != scope).collect();
        let only = app.issue_key_with(&partner.id, json!({ "environment": "sandbox", "name": "only", "scopes": [scope] })).await;
        let without = app.issue_key_with(&partner.id, json!({ "environment": "sandbox", "name": "without", "scopes": others })).await;
        keys.insert(*scope, (only, without));
    }
    let mut wrong = Vec::new();
    for route in &routes {
        let scope = route.scope().expect("scoped");
        let (only, without) = &keys[scope];
        let path = concrete(route.path);
        let body = if route.method == Method::GET || route.method == Method::DELETE { "" } else { "{}" };
        let refused = without.signed(route.method.clone(), &path, body).await;
        let refusal = (refused.status, refused.json()["code"].clone(), refused.json()["details"]["requiredScope"].clone());
        if refusal != (403, json!("INSUFFICIENT_SCOPE"), json!(scope)) {
            wrong.push(format!("{} {path} without {scope}: {refusal:?}", route.method));
        }
        let allowed = only.signed(route.method.clone(), &path, body).await;
        if [401, 403, 429].contains(&allowed.status) {
            wrong.push(format!("{} {path} with only {scope}: {} {}", route.method, allowed.status, String::from_utf8_lossy(&allowed.body)));
        }
    }
    assert!(routes.len() >= 34, "the partner routes carry their scopes ({})", routes.len());
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    app.shutdown().await;
}

/// Over real HTTP, every route of the table answers a request with no credentials: a route
/// whose guard asks for a key or a token refuses it with 401 (so its handler enforces the
/// guard its table entry declares: a handler asking for another guard would answer 500),
/// and no route answers 500 or 405.
async fn every_route_enforces_its_table_guard(backend: StoreBackend) {
    use reward_engine::http::Guard;
    let app = spawn_app(backend).await;
    let mut wrong = Vec::new();
    for route in reward_engine::http::routes() {
        let path = concrete(route.path);
        let response = app.raw(route.method.clone(), &path, &[("content-type", "application/json")], Bytes::from_static(b"{}")).await;
        let needs_credentials = matches!(route.guard, Guard::Key(_) | Guard::Portal | Guard::Admin);
        if (needs_credentials && response.status != 401) || [405, 500].contains(&response.status) {
            wrong.push(format!("{} {path} ({:?}): {} {}", route.method, route.guard, response.status, String::from_utf8_lossy(&response.body)));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    app.shutdown().await;
}

/// The documented schema of one answer, with the components it refers to.
fn response_schema(document: &Value, method: &str, path: &str, status: u16) -> Value {
    let mut schema = document["paths"][path][method]["responses"][status.to_string()]["content"]["application/json"]["schema"].clone();
    assert!(!schema.is_null(), "{method} {path} documents no {status}");
    schema["components"] = document["components"].clone();
    schema
}

async fn real_answers_match_their_documented_schemas(backend: StoreBackend) {
    let app = spawn_app_with(AppOptions {
        backend,
        test_clock: true,
        tweak: Some(std::sync::Arc::new(|config| config.server.portal_registration = reward_engine::config::PortalRegistration::Open)),
        ..AppOptions::default()
    })
    .await;
    let document: Value = app.raw(Method::GET, "/partner-api/openapi.json", &[], Bytes::new()).await.json();
    assert_eq!(document["openapi"], "3.1.0");
    let partner = app.onboard_partner(10_000).await;
    // What these calls send must be what the document says they may send.
    let check_request = |method: &str, path: &str, body: &str| {
        let mut schema = document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"].clone();
        assert!(!schema.is_null(), "{method} {path} documents no request body");
        schema["components"] = document["components"].clone();
        let body: Value = serde_json::from_str(body).expect("JSON");
        let errors = schema_errors(&schema, &body);
        assert!(errors.is_empty(), "{method} {path}: the body {body} does not fit its documented schema: {errors:#?}");
    };
    check_request("post", "/v1/partner/actions/submit", &action_body("doc-0", "49.99", "jane"));
    check_request("post", "/v1/partner/users", r#"{"externalId":"doc-user","email":"d@example.com"}"#);
    check_request("post", "/v1/partner/campaigns", r#"{"name":"Double","status":"ACTIVE","multiplier":2}"#);
    check_request("post", "/v1/partner/webhooks", r#"{"url":"https://93.184.216.34/hooks","eventTypes":["campaign.budget_exhausted"]}"#);
    check_request("post", "/v1/partner/actions/{action_id}/reverse", r#"{"idempotencyKey":"r1","tokens":5,"reason":"x"}"#);
    check_request("post", "/v1/partner/users/{external_id}/redeem", r#"{"idempotencyKey":"m1","tokens":5,"reason":"x"}"#);
    check_request("post", "/v1/partner/auth/register", r#"{"email":"doc@good.example","password":"correct horse battery","name":"Doc"}"#);
    check_request("post", "/api/v1/admin/accounts", r#"{"email":"ops@good.example","password":"correct horse battery","name":"Ops"}"#);
    check_request("post", "/v1/partner/token-pools/request", r#"{"tokens":5,"reason":"x"}"#);
    check_request("patch", "/v1/partner/keys/{key_id}", r#"{"name":"renamed","status":"INACTIVE","expiresAt":null}"#);
    let partner_body = json!({
        "name": "Documented", "contactEmail": "docs@good.example", "slug": "documented", "tier": "CUSTOM",
        "rateLimit": { "hourly": 1000, "perMinute": 100 }, "stakeholderTypes": ["CUSTOMER"], "legalEntity": "Documented Ltd",
    });
    check_request("post", "/api/v1/admin/partners", &partner_body.to_string());
    // A body with every documented field is accepted by the handler.
    let created = app.admin(Method::POST, "/api/v1/admin/partners", partner_body).await;
    assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
    let key_body = json!({ "name": "documented", "environment": "sandbox", "scopes": ["actions:read"], "expiresAt": "2099-01-01T00:00:00.000Z" });
    check_request("post", "/api/v1/admin/partners/{partner_id}/keys", &key_body.to_string());
    let issued = app.admin(Method::POST, &format!("/api/v1/admin/partners/{}/keys", created.json()["id"].as_str().expect("id")), key_body).await;
    assert_eq!(issued.status, 201, "{}", String::from_utf8_lossy(&issued.body));

    let mut checked = 0;
    let mut check = |method: &str, path: &str, status: u16, answer: &Value| {
        let errors = schema_errors(&response_schema(&document, method, path, status), answer);
        assert!(errors.is_empty(), "{method} {path} {status} answered {answer}\nagainst its documented schema: {errors:#?}");
        checked += 1;
    };
    let submitted = partner.submit(&action_body("doc-1", "49.99", "jane")).await;
    assert_eq!(submitted.status, 200);
    check("post", "/v1/partner/actions/submit", 200, &submitted.json());
    let action_id = submitted.json()["actionId"].as_str().expect("id").to_owned();
    let action = partner.signed(Method::GET, &format!("/v1/partner/actions/{action_id}"), "").await.json();
    check("get", "/v1/partner/actions/{action_id}", 200, &action);
    check("get", "/v1/partner/actions", 200, &partner.signed(Method::GET, "/v1/partner/actions", "").await.json());
    check("get", "/v1/partner/users/{external_id}", 200, &partner.signed(Method::GET, "/v1/partner/users/jane", "").await.json());
    check("get", "/v1/partner/users/{external_id}/balance", 200, &partner.balance("jane").await.json());
    check(
        "get",
        "/v1/partner/users/{external_id}/transactions",
        200,
        &partner.signed(Method::GET, "/v1/partner/users/jane/transactions", "").await.json(),
    );
    check("get", "/v1/partner/transactions", 200, &partner.signed(Method::GET, "/v1/partner/transactions", "").await.json());
    check("get", "/v1/partner/token-pools", 200, &partner.signed(Method::GET, "/v1/partner/token-pools", "").await.json());
    let created_user = partner.signed(Method::POST, "/v1/partner/users", r#"{"externalId":"doc-user","email":"d@example.com"}"#).await;
    check("post", "/v1/partner/users", 201, &created_user.json());
    let campaign = partner.signed(Method::POST, "/v1/partner/campaigns", r#"{"name":"Double","status":"ACTIVE","multiplier":2}"#).await;
    check("post", "/v1/partner/campaigns", 201, &campaign.json());
    check("get", "/v1/partner/campaigns", 200, &partner.signed(Method::GET, "/v1/partner/campaigns", "").await.json());
    let endpoint = partner
        .signed(Method::POST, "/v1/partner/webhooks", r#"{"url":"https://93.184.216.34/hooks","eventTypes":["campaign.budget_exhausted"]}"#)
        .await;
    check("post", "/v1/partner/webhooks", 201, &endpoint.json());
    check("get", "/v1/partner/webhooks", 200, &partner.signed(Method::GET, "/v1/partner/webhooks", "").await.json());
    check("get", "/v1/partner/events", 200, &partner.signed(Method::GET, "/v1/partner/events?after=0", "").await.json());
    check("get", "/healthz", 200, &app.raw(Method::GET, "/healthz", &[], Bytes::new()).await.json());
    let refused = partner.signed(Method::POST, "/v1/partner/actions/submit", "{}").await;
    check("post", "/v1/partner/actions/submit", 400, &refused.json());
    let partners = app.admin(Method::GET, "/api/v1/admin/partners", Value::Null).await.json();
    check("get", "/api/v1/admin/partners", 200, &partners);

    let quote =
        r#"{"actionType":"PURCHASE","amount":10,"currency":"USD","stakeholders":[{"stakeholderTypeCode":"CUSTOMER","partnerUserId":"jane"}]}"#;
    check("post", "/v1/partner/actions/quote", 200, &partner.signed(Method::POST, "/v1/partner/actions/quote", quote).await.json());
    let reverse = format!("/v1/partner/actions/{action_id}/reverse");
    check(
        "post",
        "/v1/partner/actions/{action_id}/reverse",
        200,
        &partner.signed(Method::POST, &reverse, r#"{"idempotencyKey":"r1","tokens":5,"reason":"x"}"#).await.json(),
    );
    let redeemed = partner.signed(Method::POST, "/v1/partner/users/jane/redeem", r#"{"idempotencyKey":"m1","tokens":5,"reason":"x"}"#).await.json();
    check("post", "/v1/partner/users/{external_id}/redeem", 200, &redeemed);
    let pool_id = partner.pool().await["id"].as_str().expect("pool").to_owned();
    let reconciliation = partner.signed(Method::GET, &format!("/v1/partner/token-pools/{pool_id}/reconciliation"), "").await.json();
    check("get", "/v1/partner/token-pools/{pool_id}/reconciliation", 200, &reconciliation);
    check("get", "/v1/partner/dashboard", 200, &partner.signed(Method::GET, "/v1/partner/dashboard", "").await.json());
    check("get", "/v1/partner/me", 200, &partner.signed(Method::GET, "/v1/partner/me", "").await.json());
    check("get", "/v1/partner/config", 200, &partner.widget(Method::GET, "/v1/partner/config", None).await.json());
    let batch = format!(r#"{{"actions":[{}]}}"#, action_body("doc-b1", "1", "jane"));
    check("post", "/v1/partner/actions/batch", 200, &partner.signed(Method::POST, "/v1/partner/actions/batch", &batch).await.json());
    let json_header = [("content-type", "application/json")];
    let registration = r#"{"email":"doc@good.example","password":"correct horse battery","name":"Doc"}"#;
    let session = app.raw(Method::POST, "/v1/partner/auth/register", &json_header, Bytes::from(registration)).await.json();
    check("post", "/v1/partner/auth/register", 201, &session);
    let login = r#"{"email":"doc@good.example","password":"correct horse battery"}"#;
    check("post", "/v1/partner/auth/login", 200, &app.raw(Method::POST, "/v1/partner/auth/login", &json_header, Bytes::from(login)).await.json());
    let refresh = json!({ "refreshToken": session["refreshToken"] }).to_string();
    check(
        "post",
        "/v1/partner/auth/refresh",
        200,
        &app.raw(Method::POST, "/v1/partner/auth/refresh", &json_header, Bytes::from(refresh)).await.json(),
    );
    let access = session["accessToken"].as_str().expect("access token");
    check("get", "/v1/partner/auth/me", 200, &app.portal(Method::GET, "/v1/partner/auth/me", access, Value::Null).await.json());
    check("post", "/api/v1/admin/clock", 200, &app.admin(Method::POST, "/api/v1/admin/clock", json!({ "advanceSeconds": 1 })).await.json());
    check("get", "/readyz", 200, &app.raw(Method::GET, "/readyz", &[], Bytes::new()).await.json());
    let account = json!({ "email": "ops@good.example", "password": "correct horse battery", "name": "Ops" });
    check("post", "/api/v1/admin/accounts", 201, &app.admin(Method::POST, "/api/v1/admin/accounts", account).await.json());
    let request = partner.signed(Method::POST, "/v1/partner/token-pools/request", r#"{"tokens":5,"reason":"x"}"#).await.json();
    check("post", "/v1/partner/token-pools/request", 201, &request);
    let approve = format!("/api/v1/admin/token-pool-requests/{}/approve", request["id"].as_str().expect("id"));
    check("post", "/api/v1/admin/token-pool-requests/{request_id}/approve", 200, &app.admin(Method::POST, &approve, Value::Null).await.json());
    assert_eq!(checked, 34);
    let page = app.raw(Method::GET, "/partner-api", &[], Bytes::new()).await;
    assert_eq!(page.status, 200);
    let html = String::from_utf8_lossy(&page.body).into_owned();
    assert!(html.contains("/partner-api/openapi.json") && !html.contains("https://") && !html.contains("http://"), "self-contained docs page");
    app.shutdown().await;
}

/// What Schemathesis found: the document and the server disagreed on what a request may
/// hold. For each case here, the documented request schema and the running server must
/// agree: schema-valid ⟺ not refused with a 400.
async fn the_document_and_the_server_agree_on_what_is_valid(backend: StoreBackend) {
    let app = spawn_app_with(AppOptions { backend, ..AppOptions::default() }).await;
    let document: Value = app.raw(Method::GET, "/partner-api/openapi.json", &[], Bytes::new()).await.json();
    let partner = app.onboard_partner(100).await;
    let created = partner.signed(Method::POST, "/v1/partner/users", r#"{"externalId":"doc-user"}"#).await;
    assert_eq!(created.status, 201);
    let request_schema = |method: &str, path: &str| {
        let mut schema = document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"].clone();
        assert!(!schema.is_null(), "{method} {path} documents no request body");
        schema["components"] = document["components"].clone();
        schema
    };
    let cases: [(&str, &str, &str, &str); 8] = [
        ("patch", "/v1/partner/users/{external_id}", "/v1/partner/users/doc-user", r#"{"lastName":""}"#),
        ("patch", "/v1/partner/users/{external_id}", "/v1/partner/users/doc-user", r#"{"firstName":null,"lastName":"Doe"}"#),
        ("post", "/v1/partner/token-pools/request", "/v1/partner/token-pools/request", r#"{"tokens":0,"reason":"more"}"#),
        ("post", "/v1/partner/token-pools/request", "/v1/partner/token-pools/request", r#"{"tokens":5.0,"reason":"more"}"#),
        ("post", "/v1/partner/token-pools/request", "/v1/partner/token-pools/request", r#"{"tokens":5,"reason":""}"#),
        ("post", "/v1/partner/users", "/v1/partner/users", r#"{"externalId":"doc-2","email":null,"metadata":null}"#),
        ("post", "/v1/partner/users", "/v1/partner/users", r#"{"externalId":"doc-3","firstName":""}"#),
        ("post", "/v1/partner/users/{external_id}/redeem", "/v1/partner/users/doc-user/redeem", r#"{"idempotencyKey":"k","tokens":1,"reason":""}"#),
    ];
    let mut disagreements = Vec::new();
    for (method, documented, path, body) in cases {
        let valid = schema_errors(&request_schema(method, documented), &serde_json::from_str(body).expect("JSON")).is_empty();
        let response = partner.signed(method.to_uppercase().parse().expect("method"), path, body).await;
        if valid == (response.status == 400) {
            disagreements.push(format!("{method} {path} {body}: schema-valid {valid}, server {}", response.status));
        }
    }
    // An approval's note is optional: the document must not require a body the server does not.
    for action in ["approve", "reject"] {
        let path = format!("/api/v1/admin/token-pool-requests/{{request_id}}/{action}");
        assert_eq!(document["paths"][&path]["post"]["requestBody"]["required"], json!(false), "{path}");
    }
    // An allocation answers 201 when it creates the pool and 200 when it tops one up.
    let allocation = &document["paths"]["/api/v1/admin/partners/{partner_id}/token-pools"]["post"]["responses"];
    assert!(allocation["200"].is_object() && allocation["201"].is_object());
    assert!(disagreements.is_empty(), "\n{}", disagreements.join("\n"));
    app.shutdown().await;
}

crate::backend_tests!(
    real_answers_match_their_documented_schemas,
    the_document_and_the_server_agree_on_what_is_valid,
    each_routes_scope_is_enforced_as_documented,
    every_route_enforces_its_table_guard
);
