//! The engine's housekeeping, every `server.maintenance_interval_ms`: keys' last use
//! persisted, idle rate-limit budgets forgotten, pending announcements delivered,
//! `api_key.expiring` notices recorded. Each step is retried at the next tick when it fails.

use std::time::Duration;

use tokio::sync::watch;

use crate::Engine;

/// How often the housekeeping runs and how early keys are announced as expiring.
#[derive(Debug, Clone, Copy)]
pub struct MaintenanceConfig {
    /// Time between two passes; must be above 0.
    pub interval: Duration,
    /// `api_key.expiring` is recorded this long before a key expires.
    pub key_expiry_notice: Duration,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig { interval: Duration::from_secs(60), key_expiry_notice: Duration::from_secs(7 * 86_400) }
    }
}

/// Runs a pass every interval until `stop` changes.
pub(crate) async fn run(engine: Engine, config: MaintenanceConfig, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let notice_ms = u64::try_from(config.key_expiry_notice.as_millis()).unwrap_or(u64::MAX);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        engine.forget_idle_rate_limits();
        // Every node records the announcements of the partners it holds, and persists (or in a
        // cluster hands to the admin shard's holder) what it saw of keys' use.
        if let Err(error) = engine.deliver_announcements().await {
            tracing::warn!(%error, "delivering pending events failed; retrying at the next tick");
        }
        if let Err(error) = engine.keys().flush_key_usage().await {
            tracing::warn!(%error, "persisting keys' last use failed; retrying at the next tick");
        }
        // In a cluster, the rest writes records no partner owns: the admin shard's holder's job.
        if !engine.holds_admin_shard() {
            continue;
        }
        match engine.keys().notify_expiring_keys(notice_ms).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "api_key.expiring recorded"),
            Err(error) => tracing::warn!(%error, "api_key.expiring notices failed; retrying at the next tick"),
        }
    }
}
