//! The API's own description: `GET /partner-api/openapi.json` (OpenAPI 3.1) and a readable
//! page at `GET /partner-api` that renders it in the browser with no external asset.
//!
//! The document is built here: who may call each operation (security, scope) from the
//! route table the router is built from (`super::routes()`), what each reads and which
//! component it answers from one table of operation docs keyed by (method, path)
//! (`operations`), and every answer component from the answer types themselves
//! (`answer_schemas`: `schemars::JsonSchema`, derived beside `Serialize`), each answer object
//! closed so a field the schema lacks is an error, not an extra.
//! Tests keep it honest: it must validate against the official OpenAPI 3.1 schema, its
//! (method, path) pairs must equal the route table's exactly, each partner route's
//! documented scope is the one a real request is refused without, and real responses of
//! the main routes must validate against the schemas documented for them.

use std::collections::HashMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use schemars::generate::SchemaSettings;
use schemars::transform::RecursiveTransform;
use schemars::{Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use super::routes::{Guard, Route};

const DOCS_PAGE: &str = include_str!("openapi_docs.html");

pub fn routes() -> Vec<Route> {
    vec![Route::get("/partner-api/openapi.json", Guard::Public, openapi_json), Route::get("/partner-api", Guard::Public, docs_page)]
}

async fn openapi_json() -> Response {
    let mut response = (StatusCode::OK, serde_json::to_vec(&document()).expect("the document serializes")).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

async fn docs_page() -> Response {
    let mut response = (StatusCode::OK, DOCS_PAGE).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

// ---- schema helpers ----

fn string() -> Value {
    json!({ "type": "string" })
}
/// An RFC 3339 instant from 1970 on (the engine keeps Unix milliseconds; earlier is a 400).
fn timestamp() -> Value {
    json!({
        "type": "string", "format": "date-time", "pattern": "^(19[7-9][0-9]|[2-9][0-9]{3})-",
        "description": "ISO 8601 UTC with milliseconds", "examples": ["2026-11-23T09:12:00.123Z"],
    })
}
/// A string the server reads as 1..=`chars_max` characters (`Fields::string`).
fn text_of(chars_max: usize) -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": chars_max })
}
/// A name: 1–200 characters (`limits.name_chars_max`).
fn name() -> Value {
    text_of(NAME_CHARS_MAX)
}
/// An email address (`parse::is_email`).
fn email() -> Value {
    json!({ "type": "string", "format": "email", "maxLength": 254 })
}
/// An idempotency key: 1–255 printable ASCII characters (contract §1).
fn idempotency_key() -> Value {
    json!({ "type": "string", "pattern": "^[ -~]{1,255}$" })
}
/// Tokens a request moves: a positive integer ≤ 2^53 − 1.
fn positive_tokens() -> Value {
    json!({ "type": "integer", "minimum": 1, "maximum": 9_007_199_254_740_991_u64 })
}
/// An action type or a stakeholder type code: letters, digits and `_ . : -`.
fn code_text() -> Value {
    json!({ "type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$" })
}
/// A slug: lower-case letters and digits joined by single dashes, ≤ 64 characters.
fn slug() -> Value {
    json!({ "type": "string", "pattern": "^[a-z0-9]+(-[a-z0-9]+)*$", "maxLength": 64 })
}
/// The active ISO 4217 codes the engine accepts (`Currency::from_code`), listed from it.
fn currency() -> Value {
    let codes: Vec<String> = (b'A'..=b'Z')
        .flat_map(|a| (b'A'..=b'Z').flat_map(move |b| (b'A'..=b'Z').map(move |c| String::from_utf8(vec![a, b, c]).expect("ASCII"))))
        .filter(|code| reward_actors::api::common::Currency::from_code(code).is_some())
        .collect();
    json!({ "type": "string", "enum": codes })
}
/// A logo's http(s) URL, ≤ 2,048 characters.
fn logo_url() -> Value {
    json!({ "type": "string", "pattern": "^https?://", "maxLength": 2_048 })
}
/// A CUSTOM rate limit: 1 ≤ perMinute ≤ hourly ≤ 10^9 (the order is checked by the server).
fn rate_limit() -> Value {
    let bound = json!({ "type": "integer", "minimum": 1, "maximum": 1_000_000_000 });
    body(&[("hourly", bound.clone()), ("perMinute", bound)], &["hourly", "perMinute"])
}
/// A portal password: 10–128 characters.
fn password() -> Value {
    text_of(128)
        .as_object()
        .cloned()
        .map(|mut schema| {
            schema.insert("minLength".into(), json!(10));
            Value::Object(schema)
        })
        .expect("an object")
}
/// At least one scope (a repeated one counts once).
fn scopes() -> Value {
    json!({ "type": "array", "items": one_of(&SCOPES), "minItems": 1 })
}
/// An expiry: a timestamp that must lie in the future (checked by the server).
fn future_timestamp() -> Value {
    let mut schema = timestamp();
    schema["description"] = json!("ISO 8601, in the future");
    schema
}
/// A metadata object: at most 50 keys (and 4 KiB, checked on the text).
fn metadata() -> Value {
    json!({ "type": "object", "maxProperties": 50, "description": "≤ 4 KiB, ≤ 50 keys" })
}
fn id() -> Value {
    json!({ "type": "string", "pattern": "^[0-9a-f]{24}$", "description": "24-character lowercase hex id" })
}
fn tokens() -> Value {
    json!({ "type": "integer", "minimum": 0, "maximum": 9_007_199_254_740_991_u64 })
}
fn boolean() -> Value {
    json!({ "type": "boolean" })
}
fn integer() -> Value {
    json!({ "type": "integer" })
}
fn number() -> Value {
    json!({ "type": "number" })
}
fn one_of(values: &[&str]) -> Value {
    json!({ "type": "string", "enum": values })
}
fn nullable(schema: Value) -> Value {
    json!({ "anyOf": [schema, { "type": "null" }] })
}
fn array(items: Value) -> Value {
    json!({ "type": "array", "items": items })
}
fn any_object() -> Value {
    json!({ "type": "object", "additionalProperties": true })
}
fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}
/// A request body: `required` names what must be sent; unknown fields are refused. An
/// optional field may be `null`, which the server reads as absent (contract §6: "absent
/// equal to null"); on a PATCH, `null` clears the fields that say so.
fn body(properties: &[(&str, Value)], required: &[&str]) -> Value {
    let properties: Map<String, Value> = properties
        .iter()
        .map(|(name, schema)| {
            let already_nullable = schema["anyOf"].as_array().is_some_and(|variants| variants.iter().any(|variant| variant["type"] == "null"));
            let schema = if required.contains(name) || already_nullable { schema.clone() } else { nullable(schema.clone()) };
            ((*name).to_owned(), schema)
        })
        .collect();
    json!({ "type": "object", "properties": properties, "required": required, "additionalProperties": false })
}
/// A schema with an example value (shown in the docs page and by OpenAPI tools).
fn example(mut schema: Value, example: Value) -> Value {
    schema["examples"] = json!([example]);
    schema
}
/// A page of a list of `item`s (`list::ListBody`, whose component is `{item}List`).
fn list_of(item: &str) -> Value {
    reference(&format!("{item}List"))
}

/// Names and descriptions: `limits.name_chars_max` and the admin routes' `NAME_CHARS_MAX`.
const NAME_CHARS_MAX: usize = 200;
/// `reason` and `note` fields.
const REASON_CHARS_MAX: usize = 500;

const ENVIRONMENTS: [&str; 2] = ["sandbox", "production"];
const SCOPES: [&str; 12] = [
    "actions:read",
    "actions:write",
    "users:read",
    "users:write",
    "transactions:read",
    "campaigns:read",
    "campaigns:write",
    "pools:read",
    "pools:write",
    "webhooks:read",
    "webhooks:write",
    "dashboard:read",
];

fn stakeholder() -> Value {
    body(
        &[
            ("stakeholderTypeCode", example(code_text(), json!("CUSTOMER"))),
            ("partnerUserId", json!({ "type": "string", "pattern": "^[A-Za-z0-9._:@-]{1,128}$" })),
            ("userEmail", email()),
            ("userFirstName", name()),
            ("userLastName", name()),
        ],
        &["stakeholderTypeCode", "partnerUserId"],
    )
}

fn action_fields(with_key: bool) -> Vec<(&'static str, Value)> {
    let mut fields = vec![
        ("actionType", example(code_text(), json!("PURCHASE"))),
        (
            "amount",
            json!({ "type": "number", "exclusiveMinimum": 0, "description": "currency units, parsed exactly from the JSON text: at most the currency's decimals, no exponent" }),
        ),
        ("currency", currency()),
        ("campaignId", id()),
        ("stakeholders", json!({ "type": "array", "items": stakeholder(), "minItems": 1, "maxItems": 20 })),
        ("metadata", metadata()),
        ("autoCreateUsers", boolean()),
    ];
    if with_key {
        fields.insert(0, ("idempotencyKey", idempotency_key()));
    }
    fields
}

/// Every answer's schema, derived from the type the handler answers with
/// (`schemars::JsonSchema`: field names, `null`s, enums and nesting as serde writes them),
/// named as clients know them (`Action`, `User`, `TokenPool`, …); lists are `{Item}List`.
/// Each answer object is closed (`additionalProperties: false`), so a field a type answers
/// with but its schema lacks fails validation (`tests/it/openapi.rs` checks real answers).
fn answer_schemas() -> Map<String, Value> {
    let mut generator = SchemaSettings::draft2020_12()
        .for_serialize()
        .with(|settings| {
            settings.definitions_path = "/components/schemas".into();
            settings.meta_schema = None;
        })
        .with_transform(RecursiveTransform(close_answer_object))
        .into_generator();
    register_answers(&mut generator);
    generator.take_definitions(true)
}

/// An object with named properties takes no other (a map, such as webhook headers or
/// metadata, has no `properties` and stays open).
fn close_answer_object(schema: &mut Schema) {
    if let Some(object) = schema.as_object_mut()
        && object.contains_key("properties")
    {
        object.entry("additionalProperties").or_insert(Value::Bool(false));
    }
}

/// Every type a handler answers with (its nested types come along).
fn register_answers(generator: &mut SchemaGenerator) {
    use reward_actors::api::{actions, campaigns, donations, keys, partners, pools, users, webhooks};

    use super::list::ListBody;
    generator.subschema_for::<super::error::ErrorBody<'static>>();
    generator.subschema_for::<actions::ActionResponse>();
    generator.subschema_for::<actions::QuoteView>();
    generator.subschema_for::<actions::ReversalResponse>();
    generator.subschema_for::<super::resources::actions::BatchResults>();
    generator.subschema_for::<users::RedemptionResponse>();
    generator.subschema_for::<users::BalanceView>();
    generator.subschema_for::<super::resources::token_pools::ReconciliationView>();
    generator.subschema_for::<super::resources::dashboard::DashboardView>();
    generator.subschema_for::<webhooks::EndpointDeleted>();
    generator.subschema_for::<webhooks::DeliveryView>();
    generator.subschema_for::<super::resources::webhooks::FeedPage<'static>>();
    generator.subschema_for::<super::resources::partner::Me<'static>>();
    generator.subschema_for::<super::resources::partner::WidgetConfig<'static>>();
    generator.subschema_for::<donations::OrganizationView>();
    generator.subschema_for::<donations::DonationStatusView>();
    generator.subschema_for::<super::resources::donations::DonationLink>();
    generator.subschema_for::<super::resources::portal::Session>();
    generator.subschema_for::<super::resources::portal::PortalMe>();
    generator.subschema_for::<keys::CreatedKeyView>();
    generator.subschema_for::<super::resources::admin::pool_requests::PoolRequestDecision>();
    generator.subschema_for::<super::resources::admin::clock::ClockMoved>();
    generator.subschema_for::<super::resources::ops::Health>();
    generator.subschema_for::<super::resources::ops::Readiness>();
    generator.subschema_for::<ListBody<actions::ActionView>>();
    generator.subschema_for::<ListBody<users::UserView>>();
    generator.subschema_for::<ListBody<users::TransactionView>>();
    generator.subschema_for::<ListBody<pools::PoolView>>();
    generator.subschema_for::<ListBody<pools::PoolRequestView>>();
    generator.subschema_for::<ListBody<campaigns::CampaignView>>();
    generator.subschema_for::<ListBody<webhooks::EndpointView>>();
    generator.subschema_for::<ListBody<webhooks::DeliveryView>>();
    generator.subschema_for::<ListBody<partners::PartnerView>>();
    generator.subschema_for::<ListBody<keys::KeyView>>();
    generator.subschema_for::<ListBody<super::resources::admin::backups::BackupView<'static>>>();
}

fn components() -> Value {
    let mut schemas = answer_schemas();
    // Request bodies stay written here: they carry the bounds, patterns and examples the
    // server enforces, which a response type does not know.
    schemas.insert("SubmitAction".to_owned(), body(&action_fields(true), &["idempotencyKey", "actionType", "stakeholders"]));
    schemas.insert("Object".to_owned(), any_object());
    json!({
        "schemas": schemas,
        "securitySchemes": {
            "partnerKey": { "type": "apiKey", "in": "header", "name": "X-Partner-Key", "description": "The secret key (sk_test_/sk_live_), or a publishable key (pk_) for reads. Signed requests also send X-Timestamp and X-Signature (contract §3)." },
            "timestamp": { "type": "apiKey", "in": "header", "name": "X-Timestamp", "description": "Unix seconds, within ±300 s of GET /healthz serverTime." },
            "signature": { "type": "apiKey", "in": "header", "name": "X-Signature", "description": "hex HMAC-SHA256(hmacSecret, timestamp + method + path + body), contract §3." },
            "basicAuth": { "type": "http", "scheme": "basic", "description": "pk:sk; sandbox always, production only when the partner allows it." },
            "widgetKey": { "type": "apiKey", "in": "header", "name": "X-Partner-Key", "description": "The publishable key, unsigned, for widget routes (§10)." },
            "portalToken": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "A portal access token from /v1/partner/auth/login (15 minutes)." },
            "adminToken": { "type": "http", "scheme": "bearer", "description": "The operator's admin token (REWARD_ADMIN_TOKEN)." },
        },
    })
}

/// Who may call an operation, as the document tells it: read from the route's table entry
/// (`routes::Guard`), never written here.
#[derive(Clone, Copy)]
enum Auth {
    /// A signed secret key (or Basic pk:sk) with this scope; reads also a signed pk.
    Partner(&'static str),
    /// Any valid key of the partner (no scope).
    AnyKey,
    /// A widget route: the publishable key unsigned (or a signed secret key).
    Widget,
    Portal,
    Admin,
    /// A donation provider's signed callback (X-Timestamp, X-Signature with its secret).
    Provider,
    Public,
}

impl Auth {
    fn of(guard: Guard) -> Auth {
        match guard {
            Guard::Key(access) if access.widget => Auth::Widget,
            Guard::Key(access) => access.scope.map_or(Auth::AnyKey, |scope| Auth::Partner(scope.as_str())),
            Guard::Portal => Auth::Portal,
            Guard::Admin => Auth::Admin,
            Guard::Provider => Auth::Provider,
            Guard::Public => Auth::Public,
        }
    }

    fn security(self) -> Value {
        let signed = json!({ "partnerKey": [], "timestamp": [], "signature": [] });
        match self {
            Auth::Partner(_) | Auth::AnyKey => json!([signed, { "basicAuth": [] }]),
            Auth::Widget => json!([{ "widgetKey": [] }, signed]),
            Auth::Portal => json!([{ "portalToken": [] }]),
            Auth::Admin => json!([{ "adminToken": [] }]),
            Auth::Provider => json!([{ "timestamp": [], "signature": [] }]),
            Auth::Public => json!([]),
        }
    }

    fn errors(self) -> &'static [u16] {
        match self {
            Auth::Partner(_) => &[400, 401, 403, 404, 429],
            Auth::AnyKey | Auth::Widget => &[401, 403, 429],
            Auth::Portal | Auth::Admin | Auth::Provider => &[400, 401, 404],
            Auth::Public => &[],
        }
    }
}

/// An operation's documentation, keyed by (method, path); who may call it comes from the
/// route table.
struct Operation {
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    request: Option<Value>,
    status: u16,
    response: Value,
    errors: &'static [u16],
    /// Other success statuses answering the same schema (an allocation that tops a pool up: 200).
    also: &'static [u16],
    /// Whether the body may be left out (an approval's optional note).
    body_optional: bool,
}

#[allow(clippy::too_many_arguments)]
fn op(
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    request: Option<Value>,
    status: u16,
    response: Value,
) -> Operation {
    Operation { method, path, tag, summary, request, status, response, errors: &[], also: &[], body_optional: false }
}

impl Operation {
    fn with_errors(self, errors: &'static [u16]) -> Operation {
        Operation { errors, ..self }
    }

    fn also_answering(self, also: &'static [u16]) -> Operation {
        Operation { also, ..self }
    }

    fn with_optional_body(self) -> Operation {
        Operation { body_optional: true, ..self }
    }
}

/// Every route the server answers, with what it reads and answers (who may call it: the
/// route table), by resource.
fn operations() -> Vec<Operation> {
    [
        action_operations(),
        user_and_pool_operations(),
        campaign_operations(),
        webhook_operations(),
        delivery_operations(),
        widget_operations(),
        donation_operations(),
        portal_operations(),
        admin_partner_operations(),
        admin_pool_operations(),
        admin_operations(),
        server_operations(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Submitting, quoting, listing and reversing actions.
fn action_operations() -> Vec<Operation> {
    let r = reference;
    let mut submit = op(
        "post",
        "/v1/partner/actions/submit",
        "Actions",
        "Submit an action: tokens by the campaign rules, exactly once",
        Some(r("SubmitAction")),
        200,
        r("Action"),
    )
    .with_errors(&[402, 409, 413, 415, 422, 503, 504]);
    submit.request = Some(json!({ "$ref": "#/components/schemas/SubmitAction", "examples": [{
        "idempotencyKey": "order_1", "actionType": "PURCHASE", "amount": 49.99, "currency": "USD",
        "stakeholders": [{ "stakeholderTypeCode": "CUSTOMER", "partnerUserId": "user_42" }]
    }] }));
    vec![
    submit,
    op(
        "post",
        "/v1/partner/actions/batch",
        "Actions",
        "Submit up to 100 actions, each independent",
        Some(body(
            &[(
                "actions",
                json!({
                    "type": "array", "minItems": 1, "maxItems": 100,
                    "items": { "description": "a SubmitAction body, validated on its own: an invalid item (even one that is not an object) is a 400 in results, the batch still 200" },
                }),
            )],
            &["actions"],
        )),
        200,
        r("BatchResults"),
    )
    .with_errors(&[413, 503]),
    op(
        "post",
        "/v1/partner/actions/quote",
        "Actions",
        "The breakdown an action would get, with no effects",
        Some(body(&action_fields(false), &["actionType", "stakeholders"])),
        200,
        r("Quote"),
    )
    .with_errors(&[422]),
    op(
        "get",
        "/v1/partner/actions",
        "Actions",
        "List actions (status, actionType, from, to)",
        None,
        200,
        list_of("ActionDetail"),
    ),
    op(
        "get",
        "/v1/partner/actions/{action_id}",
        "Actions",
        "One action with its stored breakdown",
        None,
        200,
        r("ActionDetail"),
    ),
    op(
        "post",
        "/v1/partner/actions/{action_id}/reverse",
        "Actions",
        "Reverse an action fully or in part",
        Some(example(tokens_body(&[], &["idempotencyKey", "reason"]), json!({ "idempotencyKey": "refund_1", "tokens": 25, "reason": "partial refund" }))),
        200,
        r("Reversal"),
    )
    .with_errors(&[409, 422]),
    ]
}

/// Users, their balances, transactions and redemptions; token pools.
fn user_and_pool_operations() -> Vec<Operation> {
    let r = reference;
    vec![
    op("post", "/v1/partner/users", "Users", "Create a user", Some(example(user_body(true), json!({ "externalId": "user_42", "email": "jane@example.com", "firstName": "Jane", "lastName": null, "metadata": { "tier": "gold" } }))), 201, r("User")).with_errors(&[409]),
    op("get", "/v1/partner/users", "Users", "List users, newest first", None, 200, list_of("User")),
    op("get", "/v1/partner/users/{external_id}", "Users", "One user", None, 200, r("User")),
    op(
        "patch",
        "/v1/partner/users/{external_id}",
        "Users",
        "Change a user (null clears)",
        Some(user_body(false)),
        200,
        r("User"),
    ),
    op("get", "/v1/partner/users/{external_id}/balance", "Users", "A user's balance", None, 200, r("Balance")),
    op(
        "get",
        "/v1/partner/users/{external_id}/transactions",
        "Users",
        "A user's transactions (type, actionId, from, to)",
        None,
        200,
        list_of("Transaction"),
    ),
    op(
        "post",
        "/v1/partner/users/{external_id}/redeem",
        "Users",
        "Redeem a user's available tokens",
        Some(example(tokens_body(&[], &["tokens", "idempotencyKey", "reason"]), json!({ "idempotencyKey": "redeem_1", "tokens": 100, "reason": "gift card" }))),
        200,
        r("Redemption"),
    )
    .with_errors(&[402, 409]),
    op(
        "get",
        "/v1/partner/transactions",
        "Users",
        "All transactions (type, actionId, from, to)",
        None,
        200,
        list_of("Transaction"),
    ),
    op("get", "/v1/partner/token-pools", "Token pools", "List the partner's pools", None, 200, list_of("TokenPool")),
    op(
        "get",
        "/v1/partner/token-pools/{pool_id}",
        "Token pools",
        "One pool with all its totals",
        None,
        200,
        r("TokenPool"),
    ),
    op(
        "get",
        "/v1/partner/token-pools/{pool_id}/reconciliation",
        "Token pools",
        "The pool's totals recomputed from its ledger",
        None,
        200,
        r("Reconciliation"),
    ),
    op(
        "post",
        "/v1/partner/token-pools/request",
        "Token pools",
        "Ask the operator for tokens",
        Some(body(&[("tokens", positive_tokens()), ("reason", text_of(REASON_CHARS_MAX))], &["tokens", "reason"])),
        201,
        r("PoolRequest"),
    ),
    ]
}

/// Campaigns and the dashboard.
fn campaign_operations() -> Vec<Operation> {
    let r = reference;
    vec![
    op(
        "post",
        "/v1/partner/campaigns",
        "Campaigns",
        "Create a campaign",
        Some(example(campaign_body(true), json!({ "name": "Double points weekend", "status": "ACTIVE", "actionTypes": ["PURCHASE"], "multiplier": 2, "splits": [{ "stakeholderTypeCode": "CUSTOMER", "percent": 80 }, { "stakeholderTypeCode": "NONPROFIT", "percent": 20 }], "budgetTokens": 100000 }))),
        201,
        r("Campaign"),
    )
    .with_errors(&[409]),
    op("get", "/v1/partner/campaigns", "Campaigns", "List campaigns (status)", None, 200, list_of("Campaign")),
    op("get", "/v1/partner/campaigns/{campaign_id}", "Campaigns", "One campaign", None, 200, r("Campaign")),
    op(
        "patch",
        "/v1/partner/campaigns/{campaign_id}",
        "Campaigns",
        "Change a campaign (status moves DRAFT → ACTIVE ⇄ PAUSED → ENDED)",
        Some(campaign_body(false)),
        200,
        r("Campaign"),
    )
    .with_errors(&[409]),
    op(
        "delete",
        "/v1/partner/campaigns/{campaign_id}",
        "Campaigns",
        "End a campaign (kept for the actions that name it)",
        None,
        200,
        r("Campaign"),
    ),
    op(
        "get",
        "/v1/partner/dashboard",
        "Dashboard",
        "Totals for today and 30 days, pools, campaigns, webhook health",
        None,
        200,
        r("Dashboard"),
    ),
    ]
}

/// Webhook endpoints.
fn webhook_operations() -> Vec<Operation> {
    let r = reference;
    vec![
    op(
        "post",
        "/v1/partner/webhooks",
        "Webhooks",
        "Register an endpoint (its secret is shown once)",
        Some(example(webhook_body(true), json!({ "url": "https://hooks.example.com/rewards", "eventTypes": ["action.completed", "action.reversed"], "headers": { "X-Team": "rewards" } }))),
        201,
        r("WebhookEndpoint"),
    )
    .with_errors(&[409]),
    op("get", "/v1/partner/webhooks", "Webhooks", "List endpoints", None, 200, list_of("WebhookEndpoint")),
    op("get", "/v1/partner/webhooks/{endpoint_id}", "Webhooks", "One endpoint", None, 200, r("WebhookEndpoint")),
    op(
        "patch",
        "/v1/partner/webhooks/{endpoint_id}",
        "Webhooks",
        "Change an endpoint; status ENABLED re-enables it",
        Some(webhook_body(false)),
        200,
        r("WebhookEndpoint"),
    ),
    op(
        "delete",
        "/v1/partner/webhooks/{endpoint_id}",
        "Webhooks",
        "Delete an endpoint and its queued deliveries",
        None,
        200,
        r("WebhookEndpointDeleted"),
    ),
    op(
        "post",
        "/v1/partner/webhooks/{endpoint_id}/rotate-secret",
        "Webhooks",
        "A new secret; the old one signs beside it for 24 h",
        None,
        200,
        r("WebhookEndpoint"),
    ),
    ]
}

/// Webhook deliveries, tests and the event feed.
fn delivery_operations() -> Vec<Operation> {
    let r = reference;
    vec![
        op("post", "/v1/partner/webhooks/{endpoint_id}/test", "Webhooks", "Send webhook.test to this endpoint", None, 200, r("Delivery")),
        op(
            "get",
            "/v1/partner/webhooks/{endpoint_id}/deliveries",
            "Webhooks",
            "The endpoint's deliveries and every attempt",
            None,
            200,
            list_of("Delivery"),
        ),
        op("post", "/v1/partner/webhooks/deliveries/{delivery_id}/redeliver", "Webhooks", "Attempt a delivery again now", None, 200, r("Delivery"))
            .with_errors(&[409]),
        op("get", "/v1/partner/events", "Webhooks", "The durable event feed, ascending by sequence (after, limit)", None, 200, list_of("Event")),
    ]
}

/// The calling key and the widget's configuration and nonprofits.
fn widget_operations() -> Vec<Operation> {
    let r = reference;
    vec![
        op("get", "/v1/partner/me", "Partner", "The calling key, its partner and environment", None, 200, r("Me")),
        op("get", "/v1/partner/config", "Widget", "The partner's public configuration", None, 200, r("WidgetConfig")),
        op("get", "/v1/partner/organizations/{slug}", "Widget", "A nonprofit from the registry", None, 200, r("Organization")).with_errors(&[404]),
        op("get", "/v1/partner/keys/partner-info", "Portal", "The account's partner", None, 200, r("Partner")),
        op(
            "post",
            "/api/v1/admin/partners",
            "Admin",
            "Create a partner",
            Some(body(
                &[
                    ("name", name()),
                    ("contactEmail", email()),
                    ("legalEntity", name()),
                    ("slug", slug()),
                    ("tier", one_of(&["STANDARD", "PROFESSIONAL", "ENTERPRISE", "CUSTOM"])),
                    ("rateLimit", rate_limit()),
                    ("stakeholderTypes", array(string())),
                ],
                &["name", "contactEmail"],
            )),
            201,
            r("Partner"),
        )
        .with_errors(&[409]),
        op("get", "/api/v1/admin/partners", "Admin", "List partners", None, 200, list_of("Partner")),
        op("get", "/api/v1/admin/partners/{partner_id}", "Admin", "One partner", None, 200, r("Partner")),
        op(
            "patch",
            "/api/v1/admin/partners/{partner_id}",
            "Admin",
            "Change a partner (status, tier, features, …)",
            Some(body(
                &[
                    ("name", name()),
                    ("contactEmail", email()),
                    ("legalEntity", nullable(name())),
                    ("tier", one_of(&["STANDARD", "PROFESSIONAL", "ENTERPRISE", "CUSTOM"])),
                    ("status", one_of(&["PENDING_APPROVAL", "ACTIVE", "SUSPENDED", "CLOSED"])),
                    ("rateLimit", rate_limit()),
                    ("stakeholderTypes", array(string())),
                    ("enabledFeatures", array(one_of(&["ACTIONS", "DONATIONS"]))),
                    ("ipAllowlist", array(string())),
                    ("allowedOrigins", array(string())),
                    ("productionApproved", boolean()),
                    ("allowBasicAuth", boolean()),
                    ("tipConfig", body(&[("enabled", boolean()), ("defaultPercent", integer())], &[])),
                ],
                &[],
            )),
            200,
            r("Partner"),
        )
        .with_errors(&[409]),
    ]
}

/// Donation links and statuses (widget routes) and the providers' callbacks.
fn donation_operations() -> Vec<Operation> {
    let r = reference;
    vec![
        op(
            "post",
            "/v1/partner/donations/create-link",
            "Widget",
            "A donation link from the provider's template",
            Some(body(
                &[
                    ("nonprofitSlug", slug()),
                    ("amount", json!({ "type": "integer", "minimum": 1, "description": "minor units" })),
                    ("currency", currency()),
                    ("frequency", one_of(&["once", "monthly"])),
                    ("provider", one_of(&["every.org", "stripe"])),
                    ("donorEmail", email()),
                    ("firstName", name()),
                    ("lastName", name()),
                    ("tipAmount", tokens()),
                    ("tipPercent", json!({ "type": "integer", "minimum": 0, "maximum": 100 })),
                    ("referralCode", text_of(64)),
                ],
                &["nonprofitSlug", "amount", "currency", "frequency", "provider", "donorEmail", "firstName", "lastName"],
            )),
            201,
            r("DonationLink"),
        )
        .with_errors(&[400, 404]),
        op("get", "/v1/partner/donations/status/{donation_id}", "Widget", "A donation's status", None, 200, r("DonationStatus")).with_errors(&[404]),
        op(
            "post",
            "/v1/providers/{provider}/events",
            "Providers",
            "A donation provider's signed settlement callback",
            Some(body(
                &[("partnerDonationId", id()), ("status", one_of(&["COMPLETED", "FAILED"])), ("providerReference", text_of(255))],
                &["partnerDonationId", "status"],
            )),
            200,
            r("DonationStatus"),
        )
        .with_errors(&[409]),
    ]
}

/// The portal: accounts, sessions and self-service keys.
fn portal_operations() -> Vec<Operation> {
    let r = reference;
    vec![
        op(
            "post",
            "/v1/partner/auth/register",
            "Portal",
            "Create a portal account (when registration is open)",
            Some(body(&[("email", email()), ("password", password()), ("name", name())], &["email", "password", "name"])),
            201,
            r("Session"),
        )
        .with_errors(&[400, 403, 409, 429]),
        op(
            "post",
            "/v1/partner/auth/login",
            "Portal",
            "Sign in: access and refresh tokens",
            Some(body(&[("email", text_of(254)), ("password", text_of(128))], &["email", "password"])),
            200,
            r("Session"),
        )
        .with_errors(&[400, 401, 429]),
        op(
            "post",
            "/v1/partner/auth/refresh",
            "Portal",
            "A new access token (the refresh token works once)",
            Some(body(&[("refreshToken", text_of(256))], &["refreshToken"])),
            200,
            r("Session"),
        )
        .with_errors(&[400, 401, 429]),
        op("get", "/v1/partner/auth/me", "Portal", "The signed-in account", None, 200, r("PortalMe")),
        op(
            "post",
            "/v1/partner/keys",
            "Portal",
            "Create a key pair (the first creates the partner)",
            Some(body(
                &[
                    ("name", name()),
                    ("environment", one_of(&ENVIRONMENTS)),
                    ("scopes", scopes()),
                    ("expiresAt", future_timestamp()),
                    ("keyType", one_of(&["secret", "publishable"])),
                ],
                &["name", "environment"],
            )),
            201,
            r("CreatedKey"),
        )
        .with_errors(&[403]),
        op("get", "/v1/partner/keys", "Portal", "The account's keys (no secrets)", None, 200, list_of("Key")),
        op("get", "/v1/partner/keys/{key_id}", "Portal", "One key (no secrets)", None, 200, r("Key")),
        op(
            "patch",
            "/v1/partner/keys/{key_id}",
            "Portal",
            "Rename, deactivate or set the expiry of a key",
            Some(body(&[("name", name()), ("status", one_of(&["ACTIVE", "INACTIVE"])), ("expiresAt", nullable(future_timestamp()))], &[])),
            200,
            r("Key"),
        )
        .with_errors(&[409]),
        op("delete", "/v1/partner/keys/{key_id}", "Portal", "Revoke a key", None, 200, r("Key")),
    ]
}

/// The operator's partners and their keys.
fn admin_partner_operations() -> Vec<Operation> {
    let r = reference;
    vec![
        op(
            "post",
            "/api/v1/admin/partners/{partner_id}/keys",
            "Admin",
            "Issue a key pair",
            Some(body(
                &[("name", name()), ("environment", one_of(&ENVIRONMENTS)), ("scopes", scopes()), ("expiresAt", future_timestamp())],
                &["environment", "name"],
            )),
            201,
            r("CreatedKey"),
        ),
        op("get", "/api/v1/admin/partners/{partner_id}/keys", "Admin", "A partner's keys (no secrets)", None, 200, list_of("Key")),
        op("delete", "/api/v1/admin/partners/{partner_id}/keys/{key_id}", "Admin", "Revoke a key at once", None, 200, r("Key")),
        op(
            "post",
            "/api/v1/admin/partners/{partner_id}/keys/{key_id}/rotate",
            "Admin",
            "A new pair with the same scopes",
            None,
            201,
            r("CreatedKey"),
        )
        .with_errors(&[409]),
    ]
}

/// The operator's allocations and partners' top-up requests.
fn admin_pool_operations() -> Vec<Operation> {
    let r = reference;
    vec![
        op(
            "post",
            "/api/v1/admin/partners/{partner_id}/token-pools",
            "Admin",
            "Allocate tokens to a pool (idempotent)",
            Some(body(
                &[
                    ("environment", one_of(&ENVIRONMENTS)),
                    ("tokens", positive_tokens()),
                    ("idempotencyKey", idempotency_key()),
                    ("poolId", id()),
                    ("newPool", boolean()),
                    ("name", name()),
                    ("expiresAt", nullable(timestamp())),
                    ("vestingDays", nullable(integer())),
                    ("lowBalanceThreshold", nullable(tokens())),
                    (
                        "autoRefill",
                        nullable(body(
                            &[("thresholdTokens", tokens()), ("refillTokens", tokens()), ("maxRefillsPerMonth", integer())],
                            &["thresholdTokens", "refillTokens", "maxRefillsPerMonth"],
                        )),
                    ),
                ],
                &["environment", "tokens", "idempotencyKey"],
            )),
            201,
            r("TokenPool"),
        )
        .also_answering(&[200])
        .with_errors(&[409]),
        op("get", "/api/v1/admin/token-pool-requests", "Admin", "Top-up requests (status)", None, 200, list_of("PoolRequest")),
        op(
            "post",
            "/api/v1/admin/token-pool-requests/{request_id}/approve",
            "Admin",
            "Approve a top-up request",
            Some(body(&[("note", text_of(REASON_CHARS_MAX))], &[])),
            200,
            r("PoolRequestDecision"),
        )
        .with_optional_body()
        .with_errors(&[409]),
        op(
            "post",
            "/api/v1/admin/token-pool-requests/{request_id}/reject",
            "Admin",
            "Reject a top-up request",
            Some(body(&[("note", text_of(REASON_CHARS_MAX))], &[])),
            200,
            r("PoolRequest"),
        )
        .with_optional_body()
        .with_errors(&[409]),
    ]
}

/// The operator's portal accounts, nonprofits and test clock.
fn admin_operations() -> Vec<Operation> {
    let r = reference;
    vec![
        op(
            "post",
            "/api/v1/admin/accounts",
            "Admin",
            "Create a portal account",
            Some(body(&[("email", email()), ("password", password()), ("name", name()), ("partnerId", id())], &["email", "password", "name"])),
            201,
            r("Account"),
        )
        .with_errors(&[409]),
        op(
            "post",
            "/api/v1/admin/organizations",
            "Admin",
            "Add a nonprofit to the registry",
            Some(body(
                &[
                    ("slug", slug()),
                    ("name", name()),
                    ("logoUrl", nullable(logo_url())),
                    ("ein", nullable(text_of(32))),
                    ("status", one_of(&["ACTIVE", "INACTIVE"])),
                ],
                &["slug", "name"],
            )),
            201,
            r("Organization"),
        )
        .with_errors(&[409]),
        op("get", "/api/v1/admin/organizations/{slug}", "Admin", "One nonprofit", None, 200, r("Organization")),
        op(
            "patch",
            "/api/v1/admin/organizations/{slug}",
            "Admin",
            "Change a nonprofit",
            Some(body(
                &[("name", name()), ("logoUrl", nullable(logo_url())), ("ein", nullable(text_of(32))), ("status", one_of(&["ACTIVE", "INACTIVE"]))],
                &[],
            )),
            200,
            r("Organization"),
        ),
        op(
            "post",
            "/api/v1/admin/clock",
            "Admin",
            "Move the test clock (REWARD_TEST_CLOCK=on only)",
            Some(body(&[("advanceSeconds", integer())], &["advanceSeconds"])),
            200,
            r("ClockMoved"),
        ),
    ]
}

/// Health, readiness, metrics and this document.
fn server_operations() -> Vec<Operation> {
    let r = reference;
    vec![
        op(
            "post",
            "/api/v1/admin/backups",
            "Operations",
            "Take an online backup into backup.directory (answers when complete)",
            Some(body(&[], &[])),
            201,
            r("Backup"),
        )
        .with_optional_body()
        .with_errors(&[409, 503]),
        op("get", "/api/v1/admin/backups", "Operations", "The newest backups in backup.directory, newest first", None, 200, list_of("Backup")),
        op("get", "/api/v1/admin/metrics", "Operations", "Every metric family as JSON (the operator dashboard's data)", None, 200, any_object()),
        op("get", "/admin/dashboard", "Operations", "The operator dashboard (HTML)", None, 200, string()),
        op("get", "/healthz", "Operations", "Alive, with serverTime to sign against", None, 200, r("Health")),
        op("get", "/readyz", "Operations", "Store open and engine answering", None, 200, r("Readiness")).with_errors(&[503]),
        op("get", "/metrics", "Operations", "Prometheus text (see METRICS.md)", None, 200, string()),
        op("get", "/partner-api/openapi.json", "Operations", "This document", None, 200, any_object()),
        op("get", "/partner-api", "Operations", "This document, readable (HTML)", None, 200, string()),
    ]
}

/// A body that moves tokens (a reversal, a redemption): `tokens`, `reason`, `idempotencyKey`.
fn tokens_body(extra: &[(&'static str, Value)], required: &[&str]) -> Value {
    let mut fields = vec![("tokens", positive_tokens()), ("reason", text_of(REASON_CHARS_MAX)), ("idempotencyKey", idempotency_key())];
    fields.extend(extra.iter().cloned());
    body(&fields, required)
}

/// A user's body: all of it to create one, all but `externalId` to change one.
fn user_body(creating: bool) -> Value {
    let fields = vec![
        ("externalId", json!({ "type": "string", "pattern": "^[A-Za-z0-9._:@-]{1,128}$" })),
        ("email", nullable(email())),
        ("firstName", nullable(name())),
        ("lastName", nullable(name())),
        ("metadata", nullable(metadata())),
    ];
    let fields: Vec<_> = fields.into_iter().filter(|(name, _)| creating || *name != "externalId").collect();
    body(&fields, if creating { &["externalId"] } else { &[] })
}

/// A campaign's body: `name` is required to create one, nothing to change one.
fn campaign_body(creating: bool) -> Value {
    body(
        &[
            ("name", name()),
            ("status", one_of(&["DRAFT", "ACTIVE", "PAUSED", "ENDED"])),
            ("actionTypes", json!({ "type": "array", "items": code_text(), "uniqueItems": true })),
            ("priority", integer()),
            ("multiplier", number()),
            ("tiers", array(body(&[("minAmount", number()), ("multiplier", number())], &["minAmount", "multiplier"]))),
            ("fixedTokens", nullable(tokens())),
            ("maxTokensPerAction", nullable(tokens())),
            ("splits", array(body(&[("stakeholderTypeCode", string()), ("percent", integer())], &["stakeholderTypeCode", "percent"]))),
            ("schedule", body(&[("startsAt", nullable(timestamp())), ("endsAt", nullable(timestamp()))], &[])),
            ("budgetTokens", nullable(tokens())),
            ("tokenPoolId", nullable(id())),
            ("currencies", json!({ "type": "array", "items": currency(), "uniqueItems": true })),
            ("metadata", nullable(metadata())),
        ],
        if creating { &["name"] } else { &[] },
    )
}

/// An endpoint's body: `url` is required to create one; `status` only to change one.
fn webhook_body(creating: bool) -> Value {
    let mut fields = vec![
        ("url", json!({ "type": "string", "format": "uri", "description": "https for production; private addresses refused" })),
        ("description", nullable(name())),
        (
            "eventTypes",
            json!({ "type": "array", "items": one_of(&reward_actors::api::webhooks::EventType::names().collect::<Vec<_>>()), "uniqueItems": true }),
        ),
        ("receiveAllEvents", boolean()),
        (
            "headers",
            json!({
                "type": "object", "maxProperties": 20,
                "propertyNames": { "pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$" },
                "additionalProperties": { "type": "string", "maxLength": 1_024, "pattern": "^[\t -~]*$" },
                "description": "not the engine's own: content-type, content-length, user-agent, host, connection, transfer-encoding, x-sir-timestamp, x-sir-signature, webhook-id, webhook-timestamp, webhook-signature (any case)",
            }),
        ),
    ];
    if !creating {
        fields.push(("status", one_of(&["ENABLED", "DISABLED"])));
    }
    body(&fields, if creating { &["url"] } else { &[] })
}

fn media_type(path: &str) -> &'static str {
    match path {
        "/metrics" => "text/plain",
        "/admin/dashboard" | "/partner-api" => "text/html",
        _ => "application/json",
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Invalid input (VALIDATION_ERROR, INVALID_JSON, BATCH_EXCEEDS_BURST)",
        401 => "Not authenticated (MISSING_API_KEY, INVALID_SIGNATURE, KEY_REVOKED, INVALID_TOKEN, …)",
        402 => "Not funded (INSUFFICIENT_POOL, POOL_EXPIRED, CAMPAIGN_BUDGET_EXHAUSTED, INSUFFICIENT_BALANCE)",
        403 => "Not allowed (SECRET_KEY_REQUIRED, INSUFFICIENT_SCOPE, IP_NOT_ALLOWED, FEATURE_DISABLED, …)",
        404 => "Not found (NOT_FOUND, USER_NOT_FOUND)",
        409 => "Conflict (IDEMPOTENT replay, IDEMPOTENCY_KEY_REUSED, CONFLICT)",
        405 => "Method not allowed (METHOD_NOT_ALLOWED)",
        413 => "Payload too large",
        415 => "Unsupported media type",
        422 => "Not applicable (CAMPAIGN_NOT_APPLICABLE, REVERSAL_EXCEEDS_REMAINING)",
        429 => "Rate limited (Retry-After)",
        503 => "Overloaded: not done, retry (Retry-After)",
        504 => "Engine timeout: outcome unknown, retry with the same idempotency key",
        _ => "See the error body",
    }
}

/// The whole OpenAPI 3.1 document.
pub fn document() -> Value {
    let guards: HashMap<(String, &'static str), Guard> =
        super::routes().into_iter().map(|route| ((route.method.as_str().to_ascii_lowercase(), route.path), route.guard)).collect();
    let mut paths: Map<String, Value> = Map::new();
    for operation in operations() {
        // An operation no route serves is left out (the OpenAPI route test names it).
        let Some(&guard) = guards.get(&(operation.method.to_owned(), operation.path)) else { continue };
        let auth = Auth::of(guard);
        let mut responses = Map::new();
        let content_type = media_type(operation.path);
        for status in std::iter::once(operation.status).chain(operation.also.iter().copied()) {
            responses.insert(
                status.to_string(),
                json!({ "description": reason(status), "content": { content_type: { "schema": operation.response.clone() } } }),
            );
        }
        let framing: &[u16] = if operation.request.is_some() { &[405, 413, 415] } else { &[405] };
        for status in auth.errors().iter().chain(operation.errors).chain(framing) {
            responses
                .entry(status.to_string())
                .or_insert_with(|| json!({ "description": reason(*status), "content": { "application/json": { "schema": reference("Error") } } }));
        }
        let mut parameters: Vec<Value> = operation
            .path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{').and_then(|rest| rest.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        parameters.extend(query_parameters(operation.method, operation.path));
        let operation_id = format!(
            "{}{}",
            operation.method,
            operation.path.split(['/', '-', '{', '}', '.']).filter(|part| !part.is_empty()).map(capitalize).collect::<String>()
        );
        let mut entry = json!({
            "operationId": operation_id,
            "summary": operation.summary,
            "tags": [operation.tag],
            "security": auth.security(),
            "responses": responses,
        });
        if let Auth::Partner(scope) = auth {
            entry["description"] = json!(format!("Scope `{scope}`."));
        }
        if !parameters.is_empty() {
            entry["parameters"] = Value::Array(parameters);
        }
        if let Some(request) = operation.request {
            entry["requestBody"] = json!({ "required": !operation.body_optional, "content": { "application/json": { "schema": request } } });
        }
        let item = paths.entry(operation.path.to_owned()).or_insert_with(|| json!({}));
        item[operation.method] = entry;
    }
    let tags: Vec<Value> =
        ["Actions", "Users", "Token pools", "Campaigns", "Dashboard", "Webhooks", "Partner", "Widget", "Providers", "Portal", "Admin", "Operations"]
            .iter()
            .map(|name| json!({ "name": name }))
            .collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "reward-engine partner API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The SIR Giving partner API served by reward-engine: signed actions become tokens exactly once. Every error body is `Error`; every list is `{data, hasMore, nextCursor}` (limit 1–100, cursor or page). Webhooks are signed as described in the contract §9.",
        },
        "servers": [{ "url": "/" }],
        "tags": tags,
        "paths": paths,
        "components": components(),
    })
}

/// The query parameters a route reads (unknown ones are refused with 400).
fn query_parameters(method: &str, path: &str) -> Vec<Value> {
    let query = |name: &str, schema: Value, description: &str| json!({ "name": name, "in": "query", "required": false, "schema": schema, "description": description });
    let page = || {
        vec![
            query("limit", json!({ "type": "integer", "minimum": 1, "maximum": 100, "default": 20 }), "items per page"),
            query("cursor", json!({ "type": "string", "pattern": "^[0-9a-f]{24}$" }), "nextCursor of the previous page, unchanged"),
            query(
                "page",
                json!({ "type": "integer", "minimum": 1, "maximum": super::list::PAGE_MAX }),
                "1-based page (SIR compatibility); not with cursor; deeper lists page with cursor",
            ),
        ]
    };
    let window = || vec![query("from", timestamp(), "created at or after (inclusive)"), query("to", timestamp(), "created at or before (inclusive)")];
    let transactions = || {
        let mut parameters = vec![
            query("type", one_of(&["REWARD", "REVERSAL", "REDEMPTION", "ALLOCATION", "REFILL"]), "transaction type"),
            query("actionId", id(), "the action's transactions"),
        ];
        parameters.extend(window());
        parameters
    };
    if method != "get" {
        return Vec::new();
    }
    let mut parameters = match path {
        "/v1/partner/events" => {
            return vec![
                query("after", json!({ "type": "integer", "minimum": 0, "maximum": u64::MAX }), "events with a greater sequence (default 0)"),
                query(
                    "cursor",
                    json!({ "type": "string", "pattern": "^[0-9]{1,19}$" }),
                    "the same as after (nextCursor of the previous page); not together with after",
                ),
                query("limit", json!({ "type": "integer", "minimum": 1, "maximum": 100, "default": 20 }), "events per page"),
            ];
        }
        "/v1/partner/actions" => {
            let mut parameters =
                vec![query("status", one_of(&["COMPLETED", "REVERSED", "PARTIALLY_REVERSED"]), ""), query("actionType", code_text(), "")];
            parameters.extend(window());
            parameters
        }
        "/v1/partner/transactions" | "/v1/partner/users/{external_id}/transactions" => transactions(),
        "/v1/partner/campaigns" => vec![query("status", one_of(&["DRAFT", "ACTIVE", "PAUSED", "ENDED"]), "")],
        "/api/v1/admin/token-pool-requests" => vec![query("status", one_of(&["PENDING", "APPROVED", "REJECTED"]), "")],
        _ => Vec::new(),
    };
    let lists = [
        "/v1/partner/actions",
        "/v1/partner/users",
        "/v1/partner/transactions",
        "/v1/partner/users/{external_id}/transactions",
        "/v1/partner/token-pools",
        "/v1/partner/campaigns",
        "/v1/partner/webhooks",
        "/v1/partner/webhooks/{endpoint_id}/deliveries",
        "/api/v1/admin/partners",
        "/api/v1/admin/token-pool-requests",
    ];
    if lists.contains(&path) {
        parameters.extend(page());
    }
    parameters
}

fn capitalize(part: &str) -> String {
    let mut chars = part.chars();
    chars.next().map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

/// The (method, path) pairs the document describes, for the router comparison.
pub fn documented_routes() -> Vec<(String, String)> {
    operations().into_iter().map(|operation| (operation.method.to_owned(), operation.path.to_owned())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component with every other component beside it, so its `$ref`s resolve.
    fn component(document: &Value, name: &str) -> Value {
        let mut schema = document["components"]["schemas"][name].clone();
        assert!(schema.is_object(), "no component {name}");
        schema["components"] = document["components"].clone();
        schema
    }

    fn errors(schema: &Value, instance: &Value) -> Vec<String> {
        let validator = jsonschema::validator_for(schema).expect("the schema compiles");
        validator.iter_errors(instance).map(|error| error.to_string()).collect()
    }

    /// Every `$ref` in the document, wherever it sits.
    fn references(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(object) => {
                if let Some(Value::String(target)) = object.get("$ref") {
                    found.push(target.clone());
                }
                object.values().for_each(|value| references(value, found));
            }
            Value::Array(items) => items.iter().for_each(|value| references(value, found)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_names_a_component() {
        let document = document();
        let mut found = Vec::new();
        references(&document, &mut found);
        assert!(found.len() > 100, "{}", found.len());
        for target in found {
            let name = target.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("{target} points outside the components"));
            assert!(document["components"]["schemas"][name].is_object(), "{target} names no component");
        }
        // The names clients know stay.
        for name in
            ["Error", "Action", "ActionDetail", "Balance", "User", "Transaction", "TokenPool", "Campaign", "WebhookEndpoint", "Delivery", "Event"]
                .into_iter()
                .chain([
                    "Partner",
                    "Key",
                    "CreatedKey",
                    "PoolRequest",
                    "Organization",
                    "DonationStatus",
                    "SubmitAction",
                    "Breakdown",
                    "Quote",
                    "Reversal",
                ])
                .chain([
                    "Redemption",
                    "Reconciliation",
                    "Dashboard",
                    "Me",
                    "WidgetConfig",
                    "BatchResults",
                    "Account",
                    "Session",
                    "Backup",
                    "ClockMoved",
                ])
                .chain(["PoolRequestDecision", "Allocation", "Object"])
        {
            assert!(document["components"]["schemas"][name].is_object(), "the component {name} is gone");
        }
    }

    /// The teeth of "an undocumented field is caught": an answer with one field more than its
    /// type has fails its schema, at the top and nested, and one with a field missing too.
    #[test]
    fn an_answer_with_a_field_its_type_lacks_fails_its_schema() {
        let document = document();
        let balance = json!({
            "partnerUserId": "jane", "available": 5, "pending": 0, "lifetimeEarned": 5, "lifetimeReversed": 0, "lifetimeRedeemed": 0,
        });
        let user = json!({
            "id": "0123456789abcdef01234567", "externalId": "jane", "email": null, "firstName": "Jane", "lastName": null,
            "metadata": { "tier": "gold" }, "balance": balance, "createdAt": "2026-11-23T09:12:00.123Z", "updatedAt": "2026-11-23T09:12:00.123Z",
        });
        let schema = component(&document, "User");
        assert_eq!(errors(&schema, &user), Vec::<String>::new());
        let mut extended = user.clone();
        extended["nickname"] = json!("J");
        assert!(!errors(&schema, &extended).is_empty(), "an extra field passed");
        let mut nested = user.clone();
        nested["balance"]["frozen"] = json!(0);
        assert!(!errors(&schema, &nested).is_empty(), "an extra nested field passed");
        let mut missing = user.clone();
        missing.as_object_mut().expect("an object").remove("lastName");
        assert!(!errors(&schema, &missing).is_empty(), "a missing optional field passed (the contract sends null)");
        let mut list = json!({ "data": [user], "hasMore": false, "nextCursor": null });
        assert_eq!(errors(&component(&document, "UserList"), &list), Vec::<String>::new());
        list["total"] = json!(1);
        assert!(!errors(&component(&document, "UserList"), &list).is_empty(), "an extra field on a list passed");
    }

    /// What the types write as text or raw JSON is documented as what the text is.
    #[test]
    fn timestamps_ids_decimals_and_enums_are_documented_as_written() {
        let document = document();
        let schemas = &document["components"]["schemas"];
        assert_eq!(schemas["Action"]["properties"]["createdAt"]["format"], "date-time");
        assert_eq!(schemas["Action"]["properties"]["actionId"]["pattern"], "^[0-9a-f]{24}$");
        assert_eq!(schemas["Key"]["properties"]["id"]["pattern"], "^key_[0-9a-f]{24}$");
        assert_eq!(schemas["Error"]["properties"]["requestId"]["pattern"], "^req_[0-9a-f]{24}$");
        assert_eq!(schemas["Campaign"]["properties"]["multiplier"]["type"], "number");
        assert_eq!(schemas["ActionDetail"]["properties"]["amount"]["type"], json!(["number", "null"]));
        assert_eq!(schemas["Action"]["properties"]["status"]["enum"], json!(["COMPLETED", "PARTIALLY_REVERSED", "REVERSED"]));
        let required = schemas["TokenPool"]["required"].as_array().expect("required");
        assert!(required.contains(&json!("expiresAt")), "an optional field is sent as null, so it is required");
        assert_eq!(schemas["TokenPool"]["additionalProperties"], false);
    }
}
