//! `GET /v1/partner/dashboard` (contract §8): today's and the last 30 days' totals, pool
//! balances and campaigns, for one (partner, environment).
//!
//! The daily totals are kept by the partner's actor with every write (one small record per
//! UTC day, 31 days), so the dashboard reads a handful of records whatever the volume.
//! `webhookHealth` counts the endpoints: enabled, disabled, and failing now (contract §9).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use reward_actors::api::common::format_timestamp;
use reward_actors::api::common::{DAY_MS, Scope};
use reward_actors::api::partners::DailyTotals;
use reward_actors::api::pools::PoolView;
use serde::Serialize;

use crate::http::auth::Authorized;
use crate::http::error::ApiResult;
use crate::http::routes::{Route, read};
use crate::http::{AppState, json_response};

/// "The last 30 days" includes today.
const WINDOW_DAYS: u32 = 30;

pub fn routes() -> Vec<Route> {
    vec![Route::get("/v1/partner/dashboard", read(Scope::DashboardRead), dashboard)]
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
#[derive(schemars::JsonSchema)]
#[schemars(rename = "DashboardWindow")]
pub(crate) struct Window {
    today: u64,
    last30_days: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
#[derive(schemars::JsonSchema)]
#[schemars(rename = "DashboardCampaigns")]
pub(crate) struct CampaignCounts {
    active: u64,
    total: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
#[derive(schemars::JsonSchema)]
#[schemars(rename = "Dashboard")]
pub(crate) struct DashboardView {
    #[schemars(extend("enum" = ["sandbox", "production"]))]
    environment: &'static str,
    actions: Window,
    tokens_issued: Window,
    tokens_reversed: Window,
    pool_balance_total: u64,
    token_pools: Vec<PoolView>,
    campaigns: CampaignCounts,
    webhook_health: WebhookHealthView,
    #[schemars(with = "reward_actors::api::schema::Timestamp")]
    generated_at: String,
}

/// Sums one figure of the daily totals over today and the window.
fn window(daily: &[DailyTotals], today: u32, figure: impl Fn(&DailyTotals) -> u64) -> Window {
    let mut totals = Window::default();
    for day in daily.iter().filter(|totals| totals.day + WINDOW_DAYS > today && totals.day <= today) {
        totals.last30_days += figure(day);
        if day.day == today {
            totals.today += figure(day);
        }
    }
    totals
}

async fn dashboard(State(state): State<AppState>, Authorized { caller, .. }: Authorized) -> ApiResult<Response> {
    let partner_env = caller.partner_env();
    let dashboard = state.engine.partners().dashboard(partner_env)?;
    let now_ms = state.engine.clock().now_ms();
    let today = u32::try_from(now_ms / DAY_MS).unwrap_or(u32::MAX);
    let view = DashboardView {
        environment: partner_env.environment.as_str(),
        actions: window(&dashboard.daily, today, |day| day.actions),
        tokens_issued: window(&dashboard.daily, today, |day| day.issued),
        tokens_reversed: window(&dashboard.daily, today, |day| day.reversed),
        pool_balance_total: dashboard.pools.iter().map(|pool| pool.balance).sum(),
        token_pools: dashboard.pools.iter().map(PoolView::from).collect(),
        campaigns: CampaignCounts { active: dashboard.campaigns_active, total: dashboard.campaigns_total },
        webhook_health: WebhookHealthView::from(state.engine.webhooks().webhook_health(partner_env)?),
        generated_at: format_timestamp(now_ms),
    };
    Ok(json_response(StatusCode::OK, &view))
}

/// The dashboard's count of the partner's endpoints by state.
#[derive(Serialize, schemars::JsonSchema)]
#[schemars(rename = "WebhookHealth")]
pub(crate) struct WebhookHealthView {
    endpoints: usize,
    enabled: usize,
    disabled: usize,
    failing: usize,
}

impl From<reward_actors::api::webhooks::WebhookHealth> for WebhookHealthView {
    fn from(health: reward_actors::api::webhooks::WebhookHealth) -> Self {
        let reward_actors::api::webhooks::WebhookHealth { endpoints, enabled, disabled, failing } = health;
        WebhookHealthView { endpoints, enabled, disabled, failing }
    }
}
