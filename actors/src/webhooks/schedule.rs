//! What happens after a delivery attempt (contract §9), as a pure function of the attempt's
//! outcome, the schedule and the clock: delivered, retry at a time, exhausted, or the
//! endpoint is gone (410).

use std::time::Duration;

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// 2xx.
    Delivered,
    /// 410 Gone: the receiver asks us to stop.
    Gone,
    /// Any other answer, or none (connect error, timeout).
    Failed {
        status_code: Option<u16>,
        /// `Retry-After` in seconds, when the receiver sent one.
        retry_after_secs: Option<u64>,
        /// 429, 503 with `Retry-After`, or a timeout: the receiver is overloaded, so the
        /// next attempt waits at least the back-off floor.
        overloaded: bool,
    },
}

/// The retry policy's numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before each attempt, the first included (`immediately, 5 s, 5 min, …`).
    pub schedule: Vec<Duration>,
    /// ± this share of each delay, in percent.
    pub jitter_percent: u64,
    /// A receiver's `Retry-After` is honoured up to this.
    pub retry_after_max: Duration,
    /// Overloaded receivers (429, timeouts) wait at least this before the next attempt.
    pub backoff_floor: Duration,
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    Delivered,
    RetryAt { due_ms: u64 },
    Exhausted,
    DisableEndpoint,
}

impl RetryPolicy {
    /// After `attempts_made` scheduled attempts (this one included) ended in `outcome`.
    /// `jitter` is a draw in [-1, 1] (the caller's randomness, so this stays pure).
    pub fn next_step(&self, attempts_made: usize, outcome: &AttemptOutcome, now_ms: u64, jitter: f64) -> NextStep {
        let (retry_after_secs, overloaded) = match outcome {
            AttemptOutcome::Delivered => return NextStep::Delivered,
            AttemptOutcome::Gone => return NextStep::DisableEndpoint,
            AttemptOutcome::Failed { retry_after_secs, overloaded, .. } => (*retry_after_secs, *overloaded),
        };
        let Some(scheduled) = self.schedule.get(attempts_made) else {
            return NextStep::Exhausted;
        };
        let scheduled_ms = u64::try_from(scheduled.as_millis()).unwrap_or(u64::MAX);
        let spread = scheduled_ms.saturating_mul(self.jitter_percent) / 100;
        let offset = (spread as f64 * jitter.clamp(-1.0, 1.0)) as i64;
        let mut delay_ms = scheduled_ms.saturating_add_signed(offset);
        if let Some(seconds) = retry_after_secs {
            let wanted_ms = seconds.saturating_mul(1000).min(u64::try_from(self.retry_after_max.as_millis()).unwrap_or(u64::MAX));
            delay_ms = delay_ms.max(wanted_ms);
        }
        if overloaded {
            delay_ms = delay_ms.max(u64::try_from(self.backoff_floor.as_millis()).unwrap_or(u64::MAX));
        }
        NextStep::RetryAt { due_ms: now_ms.saturating_add(delay_ms) }
    }
}

/// Parses `250ms`, `0s`, `5s`, `5m`, `2h`, `1d` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number.parse().map_err(|_| format!("'{text}' is not a duration like 5s, 5m, 2h or 1d"))?;
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("'{text}' has an unknown unit (ms, s, m, h, d)")),
    };
    value.checked_mul(unit_ms).map(Duration::from_millis).ok_or_else(|| format!("'{text}' is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            schedule: ["0s", "5s", "5m", "30m", "2h", "5h", "10h", "10h"].iter().map(|text| parse_duration(text).expect("duration")).collect(),
            jitter_percent: 20,
            retry_after_max: Duration::from_secs(3_600),
            backoff_floor: Duration::from_secs(30),
        }
    }

    fn failed(status_code: u16) -> AttemptOutcome {
        AttemptOutcome::Failed { status_code: Some(status_code), retry_after_secs: None, overloaded: false }
    }

    #[test]
    fn the_contract_schedule_with_jitter_bounds() {
        let policy = policy();
        // After the first (immediate) attempt the next is 5 s later, ±20 %.
        assert_eq!(policy.next_step(1, &failed(500), 1_000, 0.0), NextStep::RetryAt { due_ms: 6_000 });
        assert_eq!(policy.next_step(1, &failed(500), 1_000, 1.0), NextStep::RetryAt { due_ms: 7_000 });
        assert_eq!(policy.next_step(1, &failed(500), 1_000, -1.0), NextStep::RetryAt { due_ms: 5_000 });
        assert_eq!(policy.next_step(2, &failed(500), 0, 0.0), NextStep::RetryAt { due_ms: 300_000 });
        assert_eq!(policy.next_step(7, &failed(500), 0, 0.0), NextStep::RetryAt { due_ms: 36_000_000 });
        assert_eq!(policy.next_step(8, &failed(500), 0, 0.0), NextStep::Exhausted, "eight attempts in all");
        assert_eq!(policy.next_step(3, &AttemptOutcome::Delivered, 0, 0.0), NextStep::Delivered);
        assert_eq!(policy.next_step(1, &AttemptOutcome::Gone, 0, 0.0), NextStep::DisableEndpoint);
    }

    #[test]
    fn retry_after_is_honoured_within_bounds_and_overload_backs_off() {
        let policy = policy();
        let asked = |seconds| AttemptOutcome::Failed { status_code: Some(429), retry_after_secs: Some(seconds), overloaded: true };
        assert_eq!(policy.next_step(1, &asked(120), 0, 0.0), NextStep::RetryAt { due_ms: 120_000 });
        assert_eq!(policy.next_step(1, &asked(999_999), 0, 0.0), NextStep::RetryAt { due_ms: 3_600_000 }, "capped");
        assert_eq!(policy.next_step(1, &asked(1), 0, 0.0), NextStep::RetryAt { due_ms: 30_000 }, "the floor");
        assert_eq!(policy.next_step(2, &asked(1), 0, 0.0), NextStep::RetryAt { due_ms: 300_000 }, "never sooner than the schedule");
        let timeout = AttemptOutcome::Failed { status_code: None, retry_after_secs: None, overloaded: true };
        assert_eq!(policy.next_step(1, &timeout, 0, 0.0), NextStep::RetryAt { due_ms: 30_000 });
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("10h"), Ok(Duration::from_secs(36_000)));
        assert_eq!(parse_duration("5d"), Ok(Duration::from_secs(432_000)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
