//! Ambiguous bodies (a member named twice, at any depth) are refused on every route family
//! that reads JSON — partner (signed), batch items, admin, portal, widget and provider
//! callbacks — with 400 `VALIDATION_ERROR` naming the member, and nothing is stored.

use bytes::Bytes;
use hyper::Method;
use reward_actors::store::StoreBackend;
use reward_bench::client::ClientResponse;
use reward_engine::signing;
use serde_json::json;

use crate::support::{PROVIDER_SECRET, Partner, code, now_secs, spawn_app};

/// The 400 names `field` as the repeated member.
fn assert_ambiguous(response: &ClientResponse, field: &str, what: &str) {
    assert_eq!(code(response), (400, "VALIDATION_ERROR".into()), "{what}: {}", String::from_utf8_lossy(&response.body));
    let fields: Vec<String> = response.json()["details"]["fields"]
        .as_array()
        .map(|fields| fields.iter().filter_map(|entry| entry["field"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    assert_eq!(fields, vec![field.to_owned()], "{what}");
}

async fn signed_raw(partner: &Partner, path: &str, body: &str) -> ClientResponse {
    let headers = partner.sign_with(&partner.secret_key, "POST", path, body.as_bytes(), now_secs());
    let headers: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    crate::support::request(partner.address, Method::POST, path, &headers, Bytes::from(body.to_owned())).await
}

async fn a_repeated_member_is_refused_on_every_route_family(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(100_000).await;
    let stakeholder = r#"{"stakeholderTypeCode":"CUSTOMER","partnerUserId":"twice"}"#;

    // The finding: the last `amount` used to win and pay 99,999 tokens.
    let submit =
        format!(r#"{{"idempotencyKey":"dup-1","actionType":"PURCHASE","amount":10,"currency":"USD","stakeholders":[{stakeholder}],"amount":99999}}"#);
    assert_ambiguous(&signed_raw(&partner, "/v1/partner/actions/submit", &submit).await, "amount", "submit");
    let nested = r#"{"idempotencyKey":"dup-2","actionType":"PURCHASE","amount":10,"currency":"USD","stakeholders":[{"stakeholderTypeCode":"CUSTOMER","partnerUserId":"a","partnerUserId":"b"}]}"#;
    assert_ambiguous(&signed_raw(&partner, "/v1/partner/actions/submit", nested).await, "stakeholders[0].partnerUserId", "nested submit");
    let escaped = format!(
        r#"{{"idempotencyKey":"dup-3","actionType":"PURCHASE","amount":10,"\u0061mount":11,"currency":"USD","stakeholders":[{stakeholder}]}}"#
    );
    assert_ambiguous(&signed_raw(&partner, "/v1/partner/actions/submit", &escaped).await, "amount", "escaped name");
    let batch = format!(
        r#"{{"actions":[{{"idempotencyKey":"dup-4","actionType":"PURCHASE","amount":1,"currency":"USD","stakeholders":[{stakeholder}],"currency":"EUR"}}]}}"#
    );
    assert_ambiguous(&signed_raw(&partner, "/v1/partner/actions/batch", &batch).await, "actions[0].currency", "batch item");
    assert_ambiguous(&signed_raw(&partner, "/v1/partner/users", r#"{"externalId":"u1","externalId":"u2"}"#).await, "externalId", "users");

    // Admin (bearer token), portal (no auth yet), widget (publishable key), provider callback.
    let admin = app
        .raw(
            Method::POST,
            "/api/v1/admin/partners",
            &[("authorization", &format!("Bearer {}", crate::support::ADMIN_TOKEN)), ("content-type", "application/json")],
            Bytes::from_static(br#"{"name":"A","contactEmail":"a@example.com","name":"B"}"#),
        )
        .await;
    assert_ambiguous(&admin, "name", "admin partner create");
    let login = app
        .raw(
            Method::POST,
            "/v1/partner/auth/login",
            &[("content-type", "application/json")],
            Bytes::from_static(br#"{"email":"a@example.com","password":"x","password":"y"}"#),
        )
        .await;
    assert_ambiguous(&login, "password", "portal login");
    let widget = app
        .raw(
            Method::POST,
            "/v1/partner/donations/create-link",
            &[("x-partner-key", partner.public_key.as_str()), ("content-type", "application/json"), ("origin", "https://shop.example")],
            Bytes::from_static(
                br#"{"nonprofitSlug":"bees","amount":100,"amount":1000000,"currency":"USD","frequency":"once","provider":"every.org"}"#,
            ),
        )
        .await;
    assert_ambiguous(&widget, "amount", "widget donation link");
    let callback_path = "/v1/providers/every.org/events";
    let callback_body = br#"{"partnerDonationId":"x","status":"FAILED","status":"COMPLETED"}"#;
    let timestamp = now_secs().to_string();
    let signature = signing::sign(PROVIDER_SECRET, &timestamp, "POST", callback_path, callback_body);
    let callback = app
        .raw(
            Method::POST,
            callback_path,
            &[("x-timestamp", timestamp.as_str()), ("x-signature", signature.as_str()), ("content-type", "application/json")],
            Bytes::from_static(callback_body),
        )
        .await;
    assert_ambiguous(&callback, "status", "provider callback");

    // Nothing was stored: the pool is whole, no user appeared, the keys are still free.
    assert_eq!(partner.pool().await["balance"], 100_000);
    assert_eq!(partner.balance("twice").await.status, 404);
    let valid = partner.submit(&json!({"idempotencyKey":"dup-1","actionType":"PURCHASE","amount":10,"currency":"USD","stakeholders":[{"stakeholderTypeCode":"CUSTOMER","partnerUserId":"twice"}]}).to_string()).await;
    assert_eq!(valid.status, 200, "{}", String::from_utf8_lossy(&valid.body));
    assert_eq!(valid.json()["tokensDistributed"], 10);
    app.shutdown().await;
}

crate::backend_tests!(a_repeated_member_is_refused_on_every_route_family);
