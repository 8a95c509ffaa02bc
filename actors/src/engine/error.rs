//! What the engine answers besides success. Domain outcomes are variants with their data;
//! infrastructure failures are `Internal` (logged once where they happen, opaque outside).
//! Each variant has a stable machine code; the HTTP front maps variants to statuses.

use crate::domain::ids::Id;

/// `Retry-After` while the store refuses reads or writes (a failing disk): it does not heal
/// within the usual 1 s of an overload, and a failed log needs an operator and a restart.
pub(crate) const STORE_UNAVAILABLE_RETRY_AFTER_SECS: u32 = 5;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("the token pool has {available} tokens available; this action needs {required}")]
    InsufficientPool { required: u64, available: u64 },
    #[error("the token pool {pool_id} has expired")]
    PoolExpired { pool_id: Id },
    #[error("{reason}")]
    CampaignNotApplicable { reason: String },
    #[error("campaign {campaign_id} has {remaining} tokens of budget left; this action needs {required}")]
    CampaignBudgetExhausted { campaign_id: Id, required: u64, remaining: u64 },
    #[error("the action has {remaining} tokens left to reverse")]
    ReversalExceedsRemaining { remaining: u64 },
    #[error("the user has {available} tokens available; this needs {required}")]
    InsufficientBalance { required: u64, available: i64 },
    #[error("user '{partner_user_id}' does not exist and autoCreateUsers is false")]
    UserNotFound { partner_user_id: String },
    #[error("this idempotency key was already used with a different request")]
    IdempotencyKeyReused,
    #[error("{resource} not found")]
    NotFound { resource: &'static str },
    #[error("{message}")]
    Conflict { message: String },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("the engine is at capacity ({reason}); retry after {retry_after_secs} s")]
    Overloaded { reason: &'static str, retry_after_secs: u32 },
    #[error("the engine admitted the request but did not confirm it in time; retry with the same idempotency key to learn the outcome")]
    Timeout,
    #[error("the engine is shutting down")]
    ShuttingDown,
    /// Cluster mode: another node owns the partner's shard (at `owner`, its advertised
    /// address, when known); the front forwards the request there.
    #[error("shard {shard} is owned by another node; retry shortly")]
    NotOwner { shard: u32, owner: Option<String> },
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    /// The stable code of the contract's §11.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::InsufficientPool { .. } => "INSUFFICIENT_POOL",
            EngineError::PoolExpired { .. } => "POOL_EXPIRED",
            EngineError::CampaignNotApplicable { .. } => "CAMPAIGN_NOT_APPLICABLE",
            EngineError::CampaignBudgetExhausted { .. } => "CAMPAIGN_BUDGET_EXHAUSTED",
            EngineError::ReversalExceedsRemaining { .. } => "REVERSAL_EXCEEDS_REMAINING",
            EngineError::InsufficientBalance { .. } => "INSUFFICIENT_BALANCE",
            EngineError::UserNotFound { .. } => "USER_NOT_FOUND",
            EngineError::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            EngineError::NotFound { .. } => "NOT_FOUND",
            EngineError::Conflict { .. } => "CONFLICT",
            EngineError::Invalid { .. } => "VALIDATION_ERROR",
            EngineError::Overloaded { .. } | EngineError::ShuttingDown | EngineError::NotOwner { .. } => "OVERLOADED",
            EngineError::Timeout => "ENGINE_TIMEOUT",
            EngineError::Internal(_) => "INTERNAL_ERROR",
        }
    }

    /// Engine rejections (402, 422) are recorded as `action.failed`; nothing else is.
    pub fn emits_action_failed(&self) -> bool {
        matches!(
            self,
            EngineError::InsufficientPool { .. }
                | EngineError::PoolExpired { .. }
                | EngineError::CampaignNotApplicable { .. }
                | EngineError::CampaignBudgetExhausted { .. }
        )
    }

    /// An infrastructure failure, logged here. A store that fails a read (a failing disk;
    /// redb and sled refuse everything after an I/O error until reopened) is 503
    /// `OVERLOADED`: nothing was done and a retry may succeed; anything else is opaque.
    pub(crate) fn internal<E: std::fmt::Display + 'static>(context: &str, error: E) -> EngineError {
        tracing::error!(%error, "{context}");
        let error_any = &error as &dyn std::any::Any;
        let store_failed = error_any.is::<crate::store::StoreError>()
            || matches!(error_any.downcast_ref::<crate::store::records::RecordError>(), Some(crate::store::records::RecordError::Store(_)));
        if store_failed {
            return EngineError::Overloaded { reason: "store_unavailable", retry_after_secs: STORE_UNAVAILABLE_RETRY_AFTER_SECS };
        }
        EngineError::Internal(format!("{context}: {error}"))
    }
}

/// An operator's setting refused at start: which setting, and a message that names it
/// (`engine.mailbox_capacity must be greater than 0`), shown as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidSetting {
    setting: String,
    message: String,
}

impl InvalidSetting {
    /// `setting` as the configuration spells it (`webhook.retry_schedule`); `message`
    /// names it too, since it is shown alone.
    pub(crate) fn new(setting: impl Into<String>, message: impl Into<String>) -> InvalidSetting {
        InvalidSetting { setting: setting.into(), message: message.into() }
    }

    /// The setting refused (`section.key`).
    pub fn setting(&self) -> &str {
        &self.setting
    }
}

#[cfg(test)]
mod invalid_setting_tests {
    use super::InvalidSetting;
    use crate::EngineConfig;
    use crate::services::donations::DonationsConfig;
    use crate::webhooks::WebhookConfig;

    /// Each refusal names its setting and keeps the message the `String` it replaced had.
    #[test]
    fn refused_settings_name_themselves() {
        let check = |refused: InvalidSetting, setting: &str, message: &str| {
            assert_eq!((refused.setting(), refused.to_string().as_str()), (setting, message));
        };
        let engine = EngineConfig { mailbox_capacity: 0, ..EngineConfig::default() };
        check(engine.validate().expect_err("zero"), "engine.mailbox_capacity", "engine.mailbox_capacity must be greater than 0");
        let engine = EngineConfig { arbiters: 257, ..EngineConfig::default() };
        check(engine.validate().expect_err("too many"), "engine.arbiters", "engine.arbiters must be at most 256");

        let webhook = |change: fn(&mut WebhookConfig)| {
            let mut config = WebhookConfig::default();
            change(&mut config);
            config.settings().expect_err("refused")
        };
        check(webhook(|config| config.jitter_percent = 101), "webhook.jitter_percent", "webhook.jitter_percent must be at most 100");
        check(webhook(|config| config.concurrency = 0), "webhook.concurrency", "webhook.concurrency must be 1 to 100000");
        check(webhook(|config| config.retry_schedule.clear()), "webhook.retry_schedule", "webhook.retry_schedule must hold 1 to 50 delays");
        check(
            webhook(|config| config.backoff_floor = "soon".into()),
            "webhook.backoff_floor",
            "webhook.backoff_floor: 'soon' is not a duration like 5s, 5m, 2h or 1d",
        );
        check(
            webhook(|config| config.poll_interval = "0s".into()),
            "webhook.poll_interval",
            "webhook.attempt_timeout, poll_interval and sweep_interval must be more than 0",
        );
        assert!(webhook(|config| config.allowed_cidrs = vec!["10.0.0.0/33".into()]).to_string().starts_with("webhook.allowed_cidrs: "));

        let donations = DonationsConfig { stripe_link_template: "ftp://pay".into(), ..DonationsConfig::default() };
        check(donations.check().expect_err("not http"), "donations.stripe_link_template", "donations.stripe_link_template must be an http(s) URL");
        assert!(
            EngineConfig::default().validate().is_ok() && WebhookConfig::default().settings().is_ok() && DonationsConfig::default().check().is_ok()
        );
    }
}
