//! An endpoint's health, followed attempt by attempt (pure): a success ends a failing
//! streak; failures start one, warn at half the disable window and disable at its end; a
//! 410 disables at once.

use std::time::Duration;

use super::{AttemptOutcome, HealthNotice, HealthRecord};

/// Follows `outcome` into `health`; the notice to record, if any. A `Disable` notice means
/// the endpoint is disabled from now on.
pub(crate) fn follow(health: &mut HealthRecord, outcome: &AttemptOutcome, disable_after: Duration, now_ms: u64) -> Option<HealthNotice> {
    let window_ms = u64::try_from(disable_after.as_millis()).unwrap_or(u64::MAX);
    match outcome {
        AttemptOutcome::Delivered => {
            // Only a change of streak is written: a success after a success writes nothing.
            if health.failing_since_ms.is_some() || health.last_success_ms.is_none() {
                *health = HealthRecord { failing_since_ms: None, unhealthy_notified: false, last_success_ms: Some(now_ms) };
            }
            None
        }
        AttemptOutcome::Gone => {
            health.failing_since_ms.get_or_insert(now_ms);
            Some(HealthNotice::Disable { reason: "the endpoint answered 410 Gone".into() })
        }
        AttemptOutcome::Failed { .. } => {
            let since = *health.failing_since_ms.get_or_insert(now_ms);
            let failing_for = now_ms.saturating_sub(since);
            if failing_for >= window_ms {
                let days = window_ms as f64 / 86_400_000.0;
                Some(HealthNotice::Disable { reason: format!("every attempt failed for {days:.1} days") })
            } else if failing_for >= window_ms / 2 && !health.unhealthy_notified {
                health.unhealthy_notified = true;
                Some(HealthNotice::Unhealthy { failing_since_ms: since })
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: u64 = 86_400_000;

    fn failed() -> AttemptOutcome {
        AttemptOutcome::Failed { status_code: Some(500), retry_after_secs: None, overloaded: false }
    }

    #[test]
    fn failures_warn_at_half_the_window_once_and_disable_at_its_end() {
        let window = Duration::from_millis(4 * DAY_MS);
        let mut health = HealthRecord::default();
        assert!(follow(&mut health, &failed(), window, 10).is_none());
        assert_eq!(health.failing_since_ms, Some(10));
        assert!(matches!(follow(&mut health, &failed(), window, 10 + 2 * DAY_MS), Some(HealthNotice::Unhealthy { failing_since_ms: 10 })));
        assert!(follow(&mut health, &failed(), window, 10 + 3 * DAY_MS).is_none(), "the warning is given once");
        assert!(matches!(follow(&mut health, &failed(), window, 10 + 4 * DAY_MS), Some(HealthNotice::Disable { .. })));
    }

    #[test]
    fn a_success_ends_the_streak_and_gone_disables_at_once() {
        let window = Duration::from_millis(4 * DAY_MS);
        let mut health = HealthRecord::default();
        follow(&mut health, &failed(), window, 10);
        assert!(follow(&mut health, &AttemptOutcome::Delivered, window, 20).is_none());
        assert_eq!(health, HealthRecord { failing_since_ms: None, unhealthy_notified: false, last_success_ms: Some(20) });
        assert!(matches!(follow(&mut health, &AttemptOutcome::Gone, window, 30), Some(HealthNotice::Disable { .. })));
        assert_eq!(health.failing_since_ms, Some(30));
    }
}
