//! The authentication matrix: every route group under every way of calling it, with the
//! exact status and code for each way that must not work; then every key and partner state
//! against the partner route groups.

use std::sync::Arc;

use bytes::Bytes;
use hyper::Method;
use reward_actors::store::StoreBackend;
use serde_json::{Value, json};

use crate::support::{AppOptions, Partner, TestApp, action_body, now_secs, request, spawn_app_with};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    SignedSecret,
    SignedPublishable,
    UnsignedPublishable,
    BasicSandbox,
    PortalToken,
    AdminToken,
    Nothing,
}

const SCHEMES: [Scheme; 7] = [
    Scheme::SignedSecret,
    Scheme::SignedPublishable,
    Scheme::UnsignedPublishable,
    Scheme::BasicSandbox,
    Scheme::PortalToken,
    Scheme::AdminToken,
    Scheme::Nothing,
];

struct Caller {
    partner: Partner,
    portal_token: String,
}

async fn call(app: &TestApp, caller: &Caller, scheme: Scheme, method: Method, path: &str, body: &str) -> (u16, String) {
    let partner = &caller.partner;
    let mut headers: Vec<(String, String)> = vec![("content-type".into(), "application/json".into())];
    match scheme {
        Scheme::SignedSecret => headers.extend(partner.sign_with(&partner.secret_key, method.as_str(), path, body.as_bytes(), now_secs())),
        Scheme::SignedPublishable => headers.extend(partner.sign_with(&partner.public_key, method.as_str(), path, body.as_bytes(), now_secs())),
        Scheme::UnsignedPublishable => headers.push(("x-partner-key".into(), partner.public_key.clone())),
        Scheme::BasicSandbox => {
            use base64::Engine as _;
            let pair = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", partner.public_key, partner.secret_key));
            headers.push(("authorization".into(), format!("Basic {pair}")));
        }
        Scheme::PortalToken => headers.push(("authorization".into(), format!("Bearer {}", caller.portal_token))),
        Scheme::AdminToken => headers.push(("authorization".into(), format!("Bearer {}", crate::support::ADMIN_TOKEN))),
        Scheme::Nothing => {}
    }
    let headers: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    let response = request(app.address, method, path, &headers, Bytes::from(body.to_owned())).await;
    let code = if response.status < 300 { String::new() } else { response.json()["code"].as_str().unwrap_or("").to_owned() };
    (response.status, code)
}

/// Expected outcome per scheme, in `SCHEMES` order; `""` codes are successes.
type Row = (&'static str, Method, String, String, [(u16, &'static str); 7]);

const MISSING_KEY: (u16, &str) = (401, "MISSING_API_KEY");
const MISSING_SIGNATURE: (u16, &str) = (401, "MISSING_SIGNATURE");
const INVALID_TOKEN: (u16, &str) = (401, "INVALID_TOKEN");

async fn every_route_group_under_every_scheme(backend: StoreBackend) {
    let app = spawn_app_with(AppOptions {
        backend,
        tweak: Some(Arc::new(|config| config.server.portal_registration = reward_engine::config::PortalRegistration::Open)),
        ..AppOptions::default()
    })
    .await;
    // A portal account whose first key creates the partner, funded by an admin.
    let registration = json!({ "email": "matrix@good.example", "password": "correct horse battery", "name": "Matrix" }).to_string();
    let session = app.raw(Method::POST, "/v1/partner/auth/register", &[("content-type", "application/json")], Bytes::from(registration)).await.json();
    let portal_token = session["accessToken"].as_str().expect("token").to_owned();
    let key = app.portal(Method::POST, "/v1/partner/keys", &portal_token, json!({ "name": "matrix", "environment": "sandbox" })).await.json();
    let partner = app.partner_from_key(&key);
    app.admin(
        Method::PATCH,
        &format!("/api/v1/admin/partners/{}", partner.id),
        json!({ "tier": "CUSTOM", "rateLimit": { "hourly": 1_000_000, "perMinute": 1_000_000 } }),
    )
    .await;
    partner.allocate(&app, 1_000_000, "matrix-pool").await;
    let action = partner.submit(&action_body("matrix-0", "100", "u")).await.json();
    app.admin(Method::POST, "/api/v1/admin/organizations", json!({ "slug": "matrix-org", "name": "Matrix Org" })).await;
    let caller = Caller { partner, portal_token };

    let ok = (200, "");
    let created = (201, "");
    let action_path = format!("/v1/partner/actions/{}", action["actionId"].as_str().expect("id"));
    let reverse_path = format!("{action_path}/reverse");
    let signed_only =
        |success: (u16, &'static str)| [success, (403, "SECRET_KEY_REQUIRED"), MISSING_SIGNATURE, success, MISSING_KEY, MISSING_KEY, MISSING_KEY];
    let readable = [ok, ok, MISSING_SIGNATURE, ok, MISSING_KEY, MISSING_KEY, MISSING_KEY];
    // §3: a publishable key reads every `*:read` scope except webhooks:read.
    let webhooks_readable = [ok, (403, "INSUFFICIENT_SCOPE"), MISSING_SIGNATURE, ok, MISSING_KEY, MISSING_KEY, MISSING_KEY];
    let widget = |success: (u16, &'static str)| [success, success, success, MISSING_KEY, MISSING_KEY, MISSING_KEY, MISSING_KEY];
    let quote = r#"{"actionType":"PURCHASE","amount":1,"currency":"USD","stakeholders":[{"stakeholderTypeCode":"CUSTOMER","partnerUserId":"u"}]}"#;
    let link = r#"{"nonprofitSlug":"matrix-org","amount":500,"currency":"USD","frequency":"once","provider":"stripe","donorEmail":"d@example.com","firstName":"D","lastName":"E"}"#;
    let mut sequence = 0;
    let mut submit_body = || {
        sequence += 1;
        action_body(&format!("matrix-{sequence}"), "1", "u")
    };
    let rows: Vec<Row> = vec![
        (
            "submit",
            Method::POST,
            "/v1/partner/actions/submit".into(),
            submit_body(),
            [ok, (403, "SECRET_KEY_REQUIRED"), MISSING_SIGNATURE, ok, MISSING_KEY, MISSING_KEY, MISSING_KEY],
        ),
        ("action read", Method::GET, action_path, String::new(), [ok, ok, MISSING_SIGNATURE, ok, MISSING_KEY, MISSING_KEY, MISSING_KEY]),
        (
            "balance",
            Method::GET,
            "/v1/partner/users/u/balance".into(),
            String::new(),
            [ok, ok, MISSING_SIGNATURE, ok, MISSING_KEY, MISSING_KEY, MISSING_KEY],
        ),
        (
            "pools",
            Method::GET,
            "/v1/partner/token-pools".into(),
            String::new(),
            [ok, ok, MISSING_SIGNATURE, ok, MISSING_KEY, MISSING_KEY, MISSING_KEY],
        ),
        (
            "top-up request",
            Method::POST,
            "/v1/partner/token-pools/request".into(),
            r#"{"tokens":1,"reason":"matrix"}"#.into(),
            [created, (403, "SECRET_KEY_REQUIRED"), MISSING_SIGNATURE, created, MISSING_KEY, MISSING_KEY, MISSING_KEY],
        ),
        ("campaign create", Method::POST, "/v1/partner/campaigns".into(), r#"{"name":"Matrix {scheme}"}"#.into(), signed_only(created)),
        ("campaign list", Method::GET, "/v1/partner/campaigns".into(), String::new(), readable),
        ("user create", Method::POST, "/v1/partner/users".into(), r#"{"externalId":"user-{scheme}"}"#.into(), signed_only(created)),
        ("user list", Method::GET, "/v1/partner/users?limit=5".into(), String::new(), readable),
        ("transactions", Method::GET, "/v1/partner/transactions?type=REWARD".into(), String::new(), readable),
        ("dashboard", Method::GET, "/v1/partner/dashboard".into(), String::new(), readable),
        ("action list", Method::GET, "/v1/partner/actions".into(), String::new(), readable),
        ("quote", Method::POST, "/v1/partner/actions/quote".into(), quote.into(), readable),
        ("reverse", Method::POST, reverse_path, r#"{"idempotencyKey":"rev-{scheme}","reason":"matrix","tokens":1}"#.into(), signed_only(ok)),
        (
            "redeem",
            Method::POST,
            "/v1/partner/users/u/redeem".into(),
            r#"{"idempotencyKey":"red-{scheme}","reason":"matrix","tokens":1}"#.into(),
            signed_only(ok),
        ),
        (
            "batch",
            Method::POST,
            "/v1/partner/actions/batch".into(),
            format!(r#"{{"actions":[{}]}}"#, action_body("batch-{scheme}", "1", "u")),
            signed_only(ok),
        ),
        // A public address literal (no DNS) subscribed to an event this test never makes:
        // nothing is ever sent off this machine.
        (
            "webhook create",
            Method::POST,
            "/v1/partner/webhooks".into(),
            r#"{"url":"https://93.184.216.34/hooks","eventTypes":["campaign.budget_exhausted"]}"#.into(),
            signed_only(created),
        ),
        ("webhook list", Method::GET, "/v1/partner/webhooks".into(), String::new(), webhooks_readable),
        ("event feed", Method::GET, "/v1/partner/events?after=0".into(), String::new(), webhooks_readable),
        ("organization", Method::GET, "/v1/partner/organizations/matrix-org".into(), String::new(), widget(ok)),
        ("donation link", Method::POST, "/v1/partner/donations/create-link".into(), link.into(), widget(created)),
        ("me", Method::GET, "/v1/partner/me".into(), String::new(), [ok, ok, MISSING_SIGNATURE, ok, MISSING_KEY, MISSING_KEY, MISSING_KEY]),
        ("widget config", Method::GET, "/v1/partner/config".into(), String::new(), [ok, ok, ok, MISSING_KEY, MISSING_KEY, MISSING_KEY, MISSING_KEY]),
        (
            "admin",
            Method::GET,
            "/api/v1/admin/partners".into(),
            String::new(),
            [INVALID_TOKEN, INVALID_TOKEN, INVALID_TOKEN, INVALID_TOKEN, INVALID_TOKEN, ok, INVALID_TOKEN],
        ),
        (
            "portal keys",
            Method::GET,
            "/v1/partner/keys".into(),
            String::new(),
            [INVALID_TOKEN, INVALID_TOKEN, INVALID_TOKEN, INVALID_TOKEN, ok, INVALID_TOKEN, INVALID_TOKEN],
        ),
        (
            "portal me",
            Method::GET,
            "/v1/partner/auth/me".into(),
            String::new(),
            [INVALID_TOKEN, INVALID_TOKEN, INVALID_TOKEN, INVALID_TOKEN, ok, INVALID_TOKEN, INVALID_TOKEN],
        ),
    ];
    let mut failures = Vec::new();
    for (name, method, path, body, expected) in rows {
        for (scheme, (status, code)) in SCHEMES.into_iter().zip(expected) {
            // A mutation that succeeds must not be replayed by the next scheme: fresh keys.
            let body = if name == "submit" {
                body.replace("matrix-1", &format!("matrix-1-{scheme:?}"))
            } else {
                body.replace("{scheme}", &format!("{scheme:?}"))
            };
            let got = call(&app, &caller, scheme, method.clone(), &path, &body).await;
            if got != (status, code.to_owned()) {
                failures.push(format!("{name} with {scheme:?}: expected {status} {code}, got {} {}", got.0, got.1));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    app.shutdown().await;
}

/// Every key and partner state against a mutation, a read and the widget route.
async fn every_state_gets_its_exact_code(backend: StoreBackend) {
    let app = spawn_app_with(AppOptions { backend, test_clock: true, ..AppOptions::default() }).await;
    let routes = |action_path: String| {
        vec![
            (Method::POST, "/v1/partner/actions/submit".to_owned(), true),
            (Method::GET, action_path, true),
            (Method::GET, "/v1/partner/config".to_owned(), false),
        ]
    };
    let check = |partner: Partner, expected: (u16, &'static str), label: &'static str, action_path: String, server_only: bool| {
        let app = &app;
        async move {
            let mut failures = Vec::new();
            for (method, path, server_route) in routes(action_path) {
                if server_only && !server_route {
                    continue;
                }
                let caller = Caller { partner: partner.clone(), portal_token: String::new() };
                let (scheme, body) = if server_route {
                    (Scheme::SignedSecret, if method == Method::POST { action_body(&format!("state-{label}"), "1", "u") } else { String::new() })
                } else {
                    (Scheme::UnsignedPublishable, String::new())
                };
                let got = call(app, &caller, scheme, method.clone(), &path, &body).await;
                if got != (expected.0, expected.1.to_owned()) {
                    failures.push(format!("{label} on {method} {path}: expected {expected:?}, got {got:?}"));
                }
            }
            failures
        }
    };
    let mut failures = Vec::new();
    let base = app.onboard_partner(1_000).await;
    let action = base.submit(&action_body("state-base", "1", "u")).await.json();
    let action_path = format!("/v1/partner/actions/{}", action["actionId"].as_str().expect("id"));

    // Missing scope.
    let narrow = app.issue_key_with(&base.id, json!({ "environment": "sandbox", "name": "narrow", "scopes": ["pools:read"] })).await;
    let got = call(&app, &Caller { partner: narrow, portal_token: String::new() }, Scheme::SignedSecret, Method::GET, &action_path, "").await;
    if got != (403, "INSUFFICIENT_SCOPE".into()) {
        failures.push(format!("missing scope: {got:?}"));
    }
    // Another environment's and another partner's ids are simply not there.
    let live = app.issue_key(&base.id, "production").await;
    let stranger = app.onboard_partner(1_000).await;
    for (label, partner) in [("wrong environment", live), ("other partner", stranger)] {
        let got = call(&app, &Caller { partner, portal_token: String::new() }, Scheme::SignedSecret, Method::GET, &action_path, "").await;
        if got != (404, "NOT_FOUND".into()) {
            failures.push(format!("{label}: {got:?}"));
        }
    }
    // A deactivated key, Basic auth on production without the partner's permission.
    let deactivated = app.issue_key(&base.id, "sandbox").await;
    let deactivated_id = deactivated.signed(Method::GET, "/v1/partner/me", "").await.json()["keyId"].as_str().expect("key id").to_owned();
    let key_id = reward_actors::domain::ids::Id::parse_prefixed("key_", &deactivated_id).expect("key id");
    let partner_id = reward_actors::domain::ids::Id::parse_hex(&base.id).expect("partner id");
    let patch = reward_actors::services::keys::KeyPatch { status: Some(reward_actors::domain::model::KeyStatus::Inactive), ..Default::default() };
    app.engine().keys().update_api_key(partner_id, key_id, patch).await.expect("deactivates");
    failures.extend(check(deactivated, (401, "KEY_INACTIVE"), "deactivated", action_path.clone(), true).await);
    let live_basic = app.issue_key(&base.id, "production").await;
    let got = call(&app, &Caller { partner: live_basic, portal_token: String::new() }, Scheme::BasicSandbox, Method::GET, "/v1/partner/me", "").await;
    if got != (401, "BASIC_AUTH_NOT_ALLOWED".into()) {
        failures.push(format!("Basic on production: {got:?}"));
    }
    // A wrong admin token; a portal token that is not one of ours.
    let wrong_admin = app.raw(Method::GET, "/api/v1/admin/partners", &[("authorization", "Bearer not-the-admin-token-at-all")], Bytes::new()).await;
    if (wrong_admin.status, wrong_admin.json()["code"].as_str()) != (401, Some("INVALID_TOKEN")) {
        failures.push(format!("wrong admin token: {}", wrong_admin.status));
    }
    // Key states.
    let expiring_at = reward_actors::engine::clock::format_timestamp(app.engine().clock().now_ms() + 60_000);
    let expiring = app.issue_key_with(&base.id, json!({ "environment": "sandbox", "name": "expiring", "expiresAt": expiring_at })).await;
    let revoked = app.issue_key(&base.id, "sandbox").await;
    let me = revoked.signed(Method::GET, "/v1/partner/me", "").await.json();
    app.admin(Method::DELETE, &format!("/api/v1/admin/partners/{}/keys/{}", base.id, me["keyId"].as_str().expect("key id")), Value::Null).await;
    failures.extend(check(revoked, (401, "KEY_REVOKED"), "revoked", action_path.clone(), false).await);
    // Two minutes later (well inside the ±300 s signature window) the key has expired.
    app.admin(Method::POST, "/api/v1/admin/clock", json!({ "advanceSeconds": 120 })).await;
    failures.extend(check(expiring, (401, "KEY_EXPIRED"), "expired", action_path.clone(), true).await);
    // Partner states and the IP allowlist (server routes only).
    let path = format!("/api/v1/admin/partners/{}", base.id);
    app.admin(Method::PATCH, &path, json!({ "ipAllowlist": ["203.0.113.0/24"] })).await;
    failures.extend(check(base.clone(), (403, "IP_NOT_ALLOWED"), "outside the allowlist", action_path.clone(), true).await);
    app.admin(Method::PATCH, &path, json!({ "ipAllowlist": [], "status": "SUSPENDED" })).await;
    failures.extend(check(base.clone(), (401, "PARTNER_SUSPENDED"), "suspended", action_path.clone(), false).await);
    let pending = app.admin(Method::POST, "/api/v1/admin/partners", json!({ "name": "Pending", "contactEmail": "p@pending.example" })).await.json();
    let pending = app.issue_key(pending["id"].as_str().expect("id"), "sandbox").await;
    failures.extend(check(pending, (401, "PARTNER_NOT_ACTIVE"), "pending", action_path.clone(), false).await);
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    app.shutdown().await;
}

crate::backend_tests!(every_route_group_under_every_scheme, every_state_gets_its_exact_code);
