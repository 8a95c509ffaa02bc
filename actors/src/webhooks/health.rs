//! An endpoint's health policy (pure): what the facts of its deliveries mean for its status.
//!
//! A success ends a failing streak; failures start one, warn at half the disable window and
//! disable at its end; a 410 disables at once. The partner actor, the only writer of an
//! endpoint's status and health, applies this policy ([`judge`]) to the facts the dispatcher
//! reports, in the order they happened, and commits the result in one write set.

use std::time::Duration;

use super::{AttemptOutcome, DeliveryFact, EndpointRecord, EndpointStatus, HealthRecord};
use crate::domain::ids::Id;
use crate::webhooks::EventType;

/// What the policy decided, for the partner actor to record as an event (and, for
/// `Disable`, as the endpoint's new status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HealthNotice {
    /// 410 Gone, or failing for the whole disable window: disable, `webhook_endpoint.disabled`.
    Disable { reason: String },
    /// Failing for half the window: `webhook_endpoint.unhealthy`.
    Unhealthy { failing_since_ms: u64 },
    /// A delivery ran out of attempts: `webhook.delivery_exhausted`.
    Exhausted { delivery_id: Id, event_id: Id, event_type: EventType, attempts: u32 },
}

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

/// Whether an attempt is older than the endpoint as it is now: the partner changed it
/// (re-enabled it, moved its URL, rotated its secret) after the attempt was made, so the
/// attempt says nothing about the endpoint the partner has now. Same millisecond counts.
pub(crate) fn is_stale(attempted_at_ms: u64, endpoint: &EndpointRecord) -> bool {
    attempted_at_ms < endpoint.updated_at_ms
}

/// Judges `facts` (in the order they happened) against an endpoint and its health: the
/// health that follows, and the notices to record. Attempts count only while the endpoint
/// is enabled and only if not [stale](is_stale); after a `Disable`, later attempts of the
/// same report count no more. An exhausted delivery is always told.
pub(crate) fn judge(
    endpoint: &EndpointRecord,
    health: &HealthRecord,
    facts: &[DeliveryFact],
    disable_after: Duration,
) -> (HealthRecord, Vec<HealthNotice>) {
    let mut health = health.clone();
    let mut notices = Vec::new();
    let mut enabled = endpoint.status == EndpointStatus::Enabled;
    for fact in facts {
        match fact {
            DeliveryFact::Attempted { attempted_at_ms, outcome } => {
                if !enabled || is_stale(*attempted_at_ms, endpoint) {
                    continue;
                }
                if let Some(notice) = follow(&mut health, outcome, disable_after, *attempted_at_ms) {
                    enabled = !matches!(notice, HealthNotice::Disable { .. });
                    notices.push(notice);
                }
            }
            DeliveryFact::Exhausted { delivery_id, event_id, event_type, attempts } => {
                notices.push(HealthNotice::Exhausted { delivery_id: *delivery_id, event_id: *event_id, event_type: *event_type, attempts: *attempts })
            }
        }
    }
    (health, notices)
}

/// Whether `outcome` would change nothing in `health` (no notice, the same record): the
/// dispatcher leaves such a fact out of its report when its view of the health is current.
pub(crate) fn changes_nothing(health: &HealthRecord, outcome: &AttemptOutcome, disable_after: Duration, attempted_at_ms: u64) -> bool {
    let mut probe = health.clone();
    follow(&mut probe, outcome, disable_after, attempted_at_ms).is_none() && probe == *health
}

/// Whether a fact may raise a notice (an event), judged on `health`: an exhausted delivery,
/// a 410, or a failure that crosses a threshold. The dispatcher writes such an attempt's
/// record before reporting it, so a partner who hears the event finds the attempt in the
/// delivery's log; the records of other reported facts wait for their verdict.
pub(crate) fn may_raise_notice(health: &HealthRecord, fact: &DeliveryFact, disable_after: Duration) -> bool {
    match fact {
        DeliveryFact::Exhausted { .. } | DeliveryFact::Attempted { outcome: AttemptOutcome::Gone, .. } => true,
        DeliveryFact::Attempted { outcome: AttemptOutcome::Delivered, .. } => false,
        DeliveryFact::Attempted { attempted_at_ms, outcome } => follow(&mut health.clone(), outcome, disable_after, *attempted_at_ms).is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::IdGenerator;

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

    fn endpoint(status: EndpointStatus, updated_at_ms: u64) -> EndpointRecord {
        EndpointRecord {
            id: IdGenerator::new().next(1),
            url: "https://example.com/hook".into(),
            description: None,
            event_types: Vec::new(),
            receive_all_events: true,
            headers: Vec::new(),
            status,
            disabled_reason: None,
            sealed_secret: Vec::new(),
            previous_sealed_secret: None,
            previous_secret_expires_at_ms: None,
            created_at_ms: 1,
            updated_at_ms,
        }
    }

    fn attempted(attempted_at_ms: u64, outcome: AttemptOutcome) -> DeliveryFact {
        DeliveryFact::Attempted { attempted_at_ms, outcome }
    }

    /// One row: the endpoint's status and last change, the facts, and what the policy says
    /// (the kinds of notice, in order, and the failing streak's start after it).
    fn check(status: EndpointStatus, updated_at_ms: u64, facts: &[DeliveryFact], notices: &[&str], failing_since_ms: Option<u64>) {
        let window = Duration::from_millis(4 * DAY_MS);
        let (health, said) = judge(&endpoint(status, updated_at_ms), &HealthRecord::default(), facts, window);
        let kinds: Vec<&str> = said
            .iter()
            .map(|notice| match notice {
                HealthNotice::Disable { .. } => "disable",
                HealthNotice::Unhealthy { .. } => "unhealthy",
                HealthNotice::Exhausted { .. } => "exhausted",
            })
            .collect();
        assert_eq!((kinds.as_slice(), health.failing_since_ms), (notices, failing_since_ms), "{status:?} changed at {updated_at_ms}: {facts:?}");
    }

    #[test]
    fn judging_counts_only_attempts_at_the_endpoint_as_it_is() {
        let exhausted = DeliveryFact::Exhausted {
            delivery_id: IdGenerator::new().next(1),
            event_id: IdGenerator::new().next(1),
            event_type: EventType::ActionCompleted,
            attempts: 3,
        };
        use EndpointStatus::{Disabled, Enabled};
        // A 410 made before the partner re-enabled the endpoint (changed at 100) is stale.
        check(Enabled, 100, &[attempted(50, AttemptOutcome::Gone)], &[], None);
        // One made after it disables again: the policy says so.
        check(Enabled, 100, &[attempted(150, AttemptOutcome::Gone)], &["disable"], Some(150));
        // The same millisecond counts.
        check(Enabled, 100, &[attempted(100, failed())], &[], Some(100));
        // A disabled endpoint's attempts (in flight when it was disabled) count no more.
        check(Disabled, 100, &[attempted(150, failed())], &[], None);
        // After a disable, the rest of the report counts no more; exhaustion is still told.
        check(Enabled, 0, &[attempted(10, AttemptOutcome::Gone), attempted(20, failed()), exhausted.clone()], &["disable", "exhausted"], Some(10));
        check(Disabled, 100, &[exhausted], &["exhausted"], None);
        // In order: the streak starts at the first failure, warns, disables.
        let facts = [attempted(10, failed()), attempted(10 + 2 * DAY_MS, failed()), attempted(10 + 4 * DAY_MS, failed())];
        check(Enabled, 0, &facts, &["unhealthy", "disable"], Some(10));
        // A success between ends the streak.
        let facts = [attempted(10, failed()), attempted(20, AttemptOutcome::Delivered), attempted(10 + 4 * DAY_MS, failed())];
        check(Enabled, 0, &facts, &[], Some(10 + 4 * DAY_MS));
    }

    #[test]
    fn a_fact_changes_nothing_only_when_the_record_and_the_notices_stay_the_same() {
        let window = Duration::from_millis(4 * DAY_MS);
        let healthy = HealthRecord { failing_since_ms: None, unhealthy_notified: false, last_success_ms: Some(5) };
        assert!(changes_nothing(&healthy, &AttemptOutcome::Delivered, window, 10));
        assert!(!changes_nothing(&HealthRecord::default(), &AttemptOutcome::Delivered, window, 10), "the first success is written");
        assert!(!changes_nothing(&healthy, &failed(), window, 10), "a failure starts a streak");
        let failing = HealthRecord { failing_since_ms: Some(10), ..healthy };
        assert!(changes_nothing(&failing, &failed(), window, 20));
        assert!(!changes_nothing(&failing, &failed(), window, 10 + 2 * DAY_MS), "the warning");
        assert!(!changes_nothing(&failing, &AttemptOutcome::Gone, window, 20));
    }

    #[test]
    fn only_exhaustion_a_410_and_a_threshold_may_raise_a_notice() {
        let window = Duration::from_millis(4 * DAY_MS);
        let failing = HealthRecord { failing_since_ms: Some(10), unhealthy_notified: false, last_success_ms: None };
        let exhausted = DeliveryFact::Exhausted {
            delivery_id: IdGenerator::new().next(1),
            event_id: IdGenerator::new().next(1),
            event_type: EventType::ActionCompleted,
            attempts: 3,
        };
        assert!(may_raise_notice(&failing, &exhausted, window));
        assert!(may_raise_notice(&HealthRecord::default(), &attempted(20, AttemptOutcome::Gone), window));
        assert!(!may_raise_notice(&failing, &attempted(20, AttemptOutcome::Delivered), window), "a success ends a streak quietly");
        assert!(!may_raise_notice(&HealthRecord::default(), &attempted(20, failed()), window), "a streak starts quietly");
        assert!(!may_raise_notice(&failing, &attempted(20, failed()), window));
        assert!(may_raise_notice(&failing, &attempted(10 + 2 * DAY_MS, failed()), window), "the warning");
        assert!(may_raise_notice(&failing, &attempted(10 + 4 * DAY_MS, failed()), window), "the disable");
    }
}
