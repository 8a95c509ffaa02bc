//! Widget routes for giving (contract §10): the nonprofit registry, donation links from the
//! provider's template, donation status, and the provider's signed callback.

use bytes::Bytes;
use hyper::Method;
use reward_actors::domain::ids::Id;
use reward_actors::domain::model::{Environment, PartnerEnv};
use reward_actors::store::StoreBackend;
use reward_bench::client::ClientResponse;
use reward_engine::signing;
use serde_json::{Value, json};

use crate::support::{Operator, PROVIDER_SECRET, Partner, TestApp, code, expect, now_secs, request, spawn_app};

/// A widget POST: the publishable key, unsigned, from a page at `origin`.
async fn widget_post(partner: &Partner, path: &str, body: Value) -> ClientResponse {
    let headers = [("x-partner-key", partner.public_key.as_str()), ("content-type", "application/json"), ("origin", "https://shop.example")];
    request(partner.address, Method::POST, path, &headers, Bytes::from(body.to_string())).await
}

/// A provider's callback, signed with `secret` at `timestamp`.
async fn callback(operator: &Operator, provider: &str, body: Value, secret: &str, timestamp: u64) -> ClientResponse {
    let path = format!("/v1/providers/{provider}/events");
    let body = body.to_string();
    let timestamp = timestamp.to_string();
    let signature = signing::sign(secret, &timestamp, "POST", &path, body.as_bytes());
    let headers = [("x-timestamp", timestamp.as_str()), ("x-signature", signature.as_str()), ("content-type", "application/json")];
    operator.raw(Method::POST, &path, &headers, body).await
}

fn completed_events(app: &TestApp, partner: &Partner) -> Vec<Value> {
    let partner_env = PartnerEnv::new(Id::parse_hex(&partner.id).expect("id"), Environment::Sandbox);
    let events = app.engine().webhooks().list_events(partner_env, 0, 100).expect("events").items;
    events
        .into_iter()
        .filter(|event| event.event_type == "donation.completed")
        .map(|event| serde_json::from_slice::<Value>(&event.envelope_json).expect("envelope"))
        .collect()
}

fn link_body(slug: &str) -> Value {
    json!({ "nonprofitSlug": slug, "amount": 2_550, "currency": "USD", "frequency": "once", "provider": "every.org",
            "donorEmail": "jane@example.com", "firstName": "Jane", "lastName": "Doe", "referralCode": "spring" })
}

async fn organizations_links_and_signed_callbacks(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(0).await;
    let organizations = "/api/v1/admin/organizations";
    let bees = json!({ "slug": "save-the-bees", "name": "Save the Bees", "ein": "12-3456789", "logoUrl": "https://cdn.example/bees.png" });
    let created = expect(&app.admin(Method::POST, organizations, bees.clone()).await, 201);
    assert_eq!((created["status"].as_str(), created["ein"].as_str()), (Some("ACTIVE"), Some("12-3456789")));
    assert_eq!(code(&app.admin(Method::POST, organizations, bees).await), (409, "CONFLICT".into()));
    for bad in [
        json!({ "slug": "Save Bees", "name": "x" }),
        json!({ "slug": "ok", "name": "x", "logoUrl": "javascript:alert(1)" }),
        json!({ "slug": "ok" }),
        json!({ "slug": "ok", "name": "x", "status": "GONE" }),
        json!({ "slug": "ok", "name": "x", "mission": "y" }),
    ] {
        assert_eq!(code(&app.admin(Method::POST, organizations, bad).await), (400, "VALIDATION_ERROR".into()));
    }
    expect(&app.admin(Method::POST, organizations, json!({ "slug": "old-trees", "name": "Old Trees", "status": "INACTIVE" })).await, 201);
    let patched =
        expect(&app.admin(Method::PATCH, "/api/v1/admin/organizations/save-the-bees", json!({ "ein": null, "name": "Save the Bees!" })).await, 200);
    assert_eq!((patched["ein"].clone(), patched["name"].as_str()), (Value::Null, Some("Save the Bees!")));
    assert_eq!(code(&app.admin(Method::PATCH, "/api/v1/admin/organizations/nobody", json!({ "name": "x" })).await), (404, "NOT_FOUND".into()));

    // The widget looks organizations up with the publishable key alone.
    let found = partner.widget(Method::GET, "/v1/partner/organizations/save-the-bees", Some("https://shop.example")).await;
    let found_body = expect(&found, 200);
    assert_eq!(
        found_body,
        json!({ "id": created["id"], "name": "Save the Bees!", "slug": "save-the-bees", "logoUrl": "https://cdn.example/bees.png", "ein": null, "status": "ACTIVE" })
    );
    assert_eq!(found.header("access-control-allow-origin"), Some("https://shop.example"));
    assert_eq!(code(&partner.widget(Method::GET, "/v1/partner/organizations/nobody", None).await), (404, "NOT_FOUND".into()));
    let anonymous = app.raw(Method::GET, "/v1/partner/organizations/save-the-bees", &[], Bytes::new()).await;
    assert_eq!(code(&anonymous), (401, "MISSING_API_KEY".into()));

    // Tips: enabled at 10 % by the operator.
    let tips = app
        .admin(Method::PATCH, &format!("/api/v1/admin/partners/{}", partner.id), json!({ "tipConfig": { "enabled": true, "defaultPercent": 10 } }))
        .await;
    expect(&tips, 200);
    let link = expect(&widget_post(&partner, "/v1/partner/donations/create-link", link_body("save-the-bees")).await, 201);
    let donation_id = link["partnerDonationId"].as_str().expect("id").to_owned();
    let url = link["donationLink"].as_str().expect("link");
    assert!(url.starts_with("https://www.every.org/save-the-bees#/donate/card?amount=25.5&currency=USD&frequency=ONCE"), "{url}");
    assert!(url.contains(&format!("partner_donation_id={donation_id}")) && url.contains("email=jane%40example.com"), "{url}");
    let status_path = format!("/v1/partner/donations/status/{donation_id}");
    let pending = expect(&partner.widget(Method::GET, &status_path, None).await, 200);
    assert_eq!(
        (pending["status"].as_str(), pending["tipAmount"].as_u64(), pending["completedAt"].clone()),
        (Some("PENDING"), Some(255), Value::Null)
    );
    assert!(pending.get("donorEmail").is_none(), "a public route shows no donor details");

    let with = |field: &str, value: Value| {
        let mut body = link_body("save-the-bees");
        body[field] = value;
        body
    };
    for (bad, field) in [
        (with("nonprofitSlug", json!("old-trees")), "nonprofitSlug"),
        (with("nonprofitSlug", json!("nobody")), "nonprofitSlug"),
        (with("amount", json!(0)), "amount"),
        (with("amount", json!(25.5)), "amount"),
        (with("frequency", json!("weekly")), "frequency"),
        (with("provider", json!("paypal")), "provider"),
        (with("donorEmail", json!("jane")), "donorEmail"),
        (with("tipPercent", json!(101)), "tipPercent"),
        (
            json!({ "nonprofitSlug": "save-the-bees", "amount": 100, "currency": "USD", "frequency": "once", "provider": "stripe", "donorEmail": "a@b.co", "firstName": "A", "lastName": "B", "tipAmount": 1, "tipPercent": 5 }),
            "tipPercent",
        ),
    ] {
        let response = widget_post(&partner, "/v1/partner/donations/create-link", bad).await;
        let body = expect(&response, 400);
        assert_eq!(body["details"]["fields"][0]["field"], field, "{body}");
        assert!(response.header("access-control-allow-origin").is_some(), "browsers can read widget errors");
    }

    // The provider's callback settles the donation once, and the partner hears of it.
    let settle = json!({ "partnerDonationId": donation_id, "status": "COMPLETED", "providerReference": "evo_123" });
    assert_eq!(code(&callback(&app, "every.org", settle.clone(), "wrong-secret", now_secs()).await), (401, "INVALID_SIGNATURE".into()));
    assert_eq!(code(&callback(&app, "every.org", settle.clone(), PROVIDER_SECRET, now_secs() - 3_600).await), (401, "TIMESTAMP_OUT_OF_RANGE".into()));
    assert_eq!(code(&callback(&app, "stripe", settle.clone(), PROVIDER_SECRET, now_secs()).await), (404, "NOT_FOUND".into()), "no secret, no route");
    assert_eq!(code(&callback(&app, "paypal", settle.clone(), PROVIDER_SECRET, now_secs()).await), (404, "NOT_FOUND".into()));
    let unsigned = app.raw(Method::POST, "/v1/providers/every.org/events", &[("content-type", "application/json")], settle.to_string()).await;
    assert_eq!(code(&unsigned), (401, "MISSING_SIGNATURE".into()));
    assert!(completed_events(&app, &partner).is_empty(), "nothing settled yet");

    let settled = expect(&callback(&app, "every.org", settle.clone(), PROVIDER_SECRET, now_secs()).await, 200);
    assert_eq!((settled["status"].as_str(), settled["providerReference"].as_str()), (Some("COMPLETED"), Some("evo_123")));
    expect(&callback(&app, "every.org", settle.clone(), PROVIDER_SECRET, now_secs()).await, 200);
    let failed = json!({ "partnerDonationId": donation_id, "status": "FAILED" });
    assert_eq!(code(&callback(&app, "every.org", failed, PROVIDER_SECRET, now_secs()).await), (409, "CONFLICT".into()));
    let events = completed_events(&app, &partner);
    assert_eq!(events.len(), 1, "a retried callback emits nothing more");
    let data = &events[0]["data"];
    assert_eq!(
        (data["partnerDonationId"].as_str(), data["amount"].as_u64(), data["tipAmount"].as_u64()),
        (Some(donation_id.as_str()), Some(2_550), Some(255))
    );
    let completed = expect(&partner.widget(Method::GET, &status_path, None).await, 200);
    assert_eq!(completed["status"], "COMPLETED");
    assert!(completed["completedAt"].is_string());
    let unknown = json!({ "partnerDonationId": "0123456789abcdef01234567", "status": "COMPLETED" });
    assert_eq!(code(&callback(&app, "every.org", unknown, PROVIDER_SECRET, now_secs()).await), (404, "NOT_FOUND".into()));
    app.shutdown().await;
}

async fn donations_stay_with_their_partner_environment_and_feature(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(0).await;
    expect(&app.admin(Method::POST, "/api/v1/admin/organizations", json!({ "slug": "bees", "name": "Bees" })).await, 201);
    let link = expect(&widget_post(&partner, "/v1/partner/donations/create-link", link_body("bees")).await, 201);
    let status_path = format!("/v1/partner/donations/status/{}", link["partnerDonationId"].as_str().expect("id"));
    assert_eq!(expect(&partner.widget(Method::GET, &status_path, None).await, 200)["tipAmount"], 0, "tips are off by default");
    let production = app.issue_key(&partner.id, "production").await;
    assert_eq!(code(&production.widget(Method::GET, &status_path, None).await), (404, "NOT_FOUND".into()));
    let other = app.onboard_partner(0).await;
    assert_eq!(code(&other.widget(Method::GET, &status_path, None).await), (404, "NOT_FOUND".into()));
    let with_tip = {
        let mut body = link_body("bees");
        body["tipAmount"] = json!(100);
        body
    };
    assert_eq!(
        code(&widget_post(&partner, "/v1/partner/donations/create-link", with_tip).await),
        (400, "VALIDATION_ERROR".into()),
        "tips are off by default"
    );

    let no_donations = app.admin(Method::PATCH, &format!("/api/v1/admin/partners/{}", other.id), json!({ "enabledFeatures": ["ACTIONS"] })).await;
    expect(&no_donations, 200);
    assert_eq!(code(&widget_post(&other, "/v1/partner/donations/create-link", link_body("bees")).await), (403, "FEATURE_DISABLED".into()));
    app.shutdown().await;
}

crate::backend_tests!(organizations_links_and_signed_callbacks, donations_stay_with_their_partner_environment_and_feature);
