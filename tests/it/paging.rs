//! Every list pages correctly at its largest page size over more items than one page
//! holds: a client following `nextCursor` with `limit=100` sees each item exactly once, and
//! `hasMore` is true exactly until the last page. (The event feed once answered 100 events
//! with `hasMore: false` over a feed of 240: its scan was capped at the page size, so the
//! extra item that proves "more" was never read.)

use std::collections::HashSet;
use std::sync::Arc;

use hyper::Method;
use reward_actors::store::StoreBackend;
use serde_json::{Value, json};

use crate::support::{AppOptions, Partner, TestApp, TweakConfig, action_body, expect, spawn_app, spawn_app_with};

/// More than one full page.
const ITEMS: usize = 101;
const LIMIT: usize = 100;

enum Caller<'a> {
    Partner(&'a Partner),
    Admin(&'a TestApp),
}

impl Caller<'_> {
    async fn get(&self, path: &str) -> Value {
        let response = match self {
            Caller::Partner(partner) => partner.signed(Method::GET, path, "").await,
            Caller::Admin(app) => app.admin(Method::GET, path, Value::Null).await,
        };
        expect(&response, 200)
    }
}

/// Follows `nextCursor` (passed back as `cursor_param`) from the first page to the last at
/// `limit`, asserting the page shapes; answers every item seen, in order.
async fn walk(caller: &Caller<'_>, path: &str, cursor_param: &str, limit: usize) -> Vec<Value> {
    let separator = if path.contains('?') { '&' } else { '?' };
    let mut items: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    // A bound on the walk: a list that never ends is a failure, not a hang.
    for _ in 0..1_000 {
        let url = match &cursor {
            Some(cursor) => format!("{path}{separator}limit={limit}&{cursor_param}={cursor}"),
            None => format!("{path}{separator}limit={limit}"),
        };
        let page = caller.get(&url).await;
        let data = page["data"].as_array().unwrap_or_else(|| panic!("{url}: no data in {page}"));
        assert!(data.len() <= limit, "{url}: {} items over a limit of {limit}", data.len());
        items.extend(data.iter().cloned());
        match (page["hasMore"].as_bool(), page["nextCursor"].as_str()) {
            (Some(true), Some(next)) => {
                assert_eq!(data.len(), limit, "{url}: a page before the last is full");
                cursor = Some(next.to_owned());
            }
            (Some(false), None) => return items,
            other => panic!("{url}: hasMore/nextCursor disagree: {other:?}"),
        }
    }
    panic!("{path}: more than 1,000 pages")
}

/// Walks `path` at the largest page size and checks it saw exactly `expected` distinct items.
async fn check_list(caller: &Caller<'_>, path: &str, cursor_param: &str, expected: usize) {
    let items = walk(caller, path, cursor_param, LIMIT).await;
    let distinct: HashSet<String> = items.iter().map(Value::to_string).collect();
    assert_eq!((items.len(), distinct.len()), (expected, expected), "{path}: every item once");
}

async fn every_list_pages_at_its_largest_size(backend: StoreBackend) {
    let app = spawn_app(backend).await;
    let partner = app.onboard_partner(1_000_000).await;
    for index in 0..ITEMS {
        expect(&partner.submit(&action_body(&format!("page-new-{index}"), "1", &format!("user_{index}"))).await, 200);
        expect(&partner.submit(&action_body(&format!("page-same-{index}"), "1", "regular")).await, 200);
        let campaign = json!({ "name": format!("Campaign {index}") }).to_string();
        expect(&partner.signed(Method::POST, "/v1/partner/campaigns", &campaign).await, 201);
        let top_up = json!({ "tokens": 1, "reason": format!("request {index}") }).to_string();
        expect(&partner.signed(Method::POST, "/v1/partner/token-pools/request", &top_up).await, 201);
        let pool = json!({ "environment": "sandbox", "tokens": 1, "idempotencyKey": format!("pool-{index}"), "newPool": true, "name": format!("Pool {index}") });
        expect(&app.admin(Method::POST, &format!("/api/v1/admin/partners/{}/token-pools", partner.id), pool).await, 201);
        let other = json!({ "name": format!("Partner {index}"), "contactEmail": format!("p{index}@example.com"), "stakeholderTypes": ["CUSTOMER"] });
        expect(&app.admin(Method::POST, "/api/v1/admin/partners", other).await, 201);
    }
    let as_partner = Caller::Partner(&partner);
    let actions = 2 * ITEMS;
    check_list(&as_partner, "/v1/partner/actions", "cursor", actions).await;
    check_list(&as_partner, "/v1/partner/actions?status=COMPLETED", "cursor", actions).await;
    check_list(&as_partner, "/v1/partner/users", "cursor", ITEMS + 1).await;
    check_list(&as_partner, "/v1/partner/users/regular/transactions", "cursor", ITEMS).await;
    let transactions = walk(&as_partner, "/v1/partner/transactions", "cursor", LIMIT).await.len();
    assert!(transactions >= actions, "{transactions} transactions for {actions} actions");
    check_list(&as_partner, "/v1/partner/transactions", "cursor", transactions).await;
    check_list(&as_partner, "/v1/partner/campaigns", "cursor", ITEMS).await;
    check_list(&as_partner, "/v1/partner/token-pools", "cursor", ITEMS + 1).await;

    // The finding: the feed, paged by `after`, holds at least two events per action.
    let feed = walk(&as_partner, "/v1/partner/events", "after", LIMIT).await;
    assert!(feed.len() >= 2 * actions, "{} events for {actions} actions", feed.len());
    let sequences: Vec<u64> = feed.iter().map(|event| event["sequence"].as_u64().expect("sequence")).collect();
    assert!(sequences.windows(2).all(|pair| pair[0] < pair[1]), "ascending, each once");
    assert_eq!(walk(&as_partner, "/v1/partner/events", "cursor", LIMIT).await, feed, "cursor is another name for after");

    let as_admin = Caller::Admin(&app);
    check_list(&as_admin, "/api/v1/admin/partners", "cursor", ITEMS + 1).await;
    check_list(&as_admin, "/api/v1/admin/token-pool-requests", "cursor", ITEMS).await;
    check_list(&as_admin, "/api/v1/admin/token-pool-requests?status=PENDING", "cursor", ITEMS).await;
    app.shutdown().await;
}

/// Webhook endpoints are bounded per partner (16) below a full page, so their list is
/// checked at a small limit instead: the same cursor rules hold.
async fn webhook_endpoints_page_like_every_list(backend: StoreBackend) {
    // Loopback targets (nothing is delivered: no event is raised) need the operator's allowance.
    let allow_loopback: TweakConfig = Arc::new(|config| config.webhook.allowed_cidrs = vec!["127.0.0.0/8".into()]);
    let app = spawn_app_with(AppOptions { backend, tweak: Some(allow_loopback), ..AppOptions::default() }).await;
    let partner = app.onboard_partner(0).await;
    for index in 0..7 {
        let endpoint = json!({ "url": format!("http://127.0.0.1:9/{index}") }).to_string();
        let created = partner.signed(Method::POST, "/v1/partner/webhooks", &endpoint).await;
        assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
    }
    let items = walk(&Caller::Partner(&partner), "/v1/partner/webhooks", "cursor", 3).await;
    let distinct: HashSet<String> = items.iter().map(|item| item["id"].to_string()).collect();
    assert_eq!((items.len(), distinct.len()), (7, 7));
    app.shutdown().await;
}

crate::backend_tests!(every_list_pages_at_its_largest_size, webhook_endpoints_page_like_every_list);
