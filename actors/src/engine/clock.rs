//! The engine's clock: wall time, or wall time plus an offset that tests can move.
//!
//! Everything time-dependent (signature windows, pool expiry, key expiry, ids, createdAt)
//! reads this clock, never `SystemTime` directly, so a server started with
//! `REWARD_TEST_CLOCK=on` can be moved forward by `POST /api/v1/admin/clock`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Debug)]
pub struct Clock {
    /// `None` for the production clock; `Some(offset)` for a test clock.
    test_offset_ms: Option<AtomicI64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    #[error("the clock can only be moved when the server runs with REWARD_TEST_CLOCK=on")]
    NotATestClock,
    #[error("the clock only moves forward")]
    Backwards,
}

impl Clock {
    pub fn system() -> Clock {
        Clock { test_offset_ms: None }
    }

    pub fn test() -> Clock {
        Clock { test_offset_ms: Some(AtomicI64::new(0)) }
    }

    pub fn is_test(&self) -> bool {
        self.test_offset_ms.is_some()
    }

    pub fn now_ms(&self) -> u64 {
        let wall_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_millis() as i64).unwrap_or(0);
        let offset_ms = self.test_offset_ms.as_ref().map_or(0, |offset| offset.load(Ordering::Relaxed));
        (wall_ms + offset_ms).max(0) as u64
    }

    pub fn now_secs(&self) -> u64 {
        self.now_ms() / 1000
    }

    /// Moves a test clock forward and answers the new time in Unix milliseconds.
    pub fn advance(&self, seconds: i64) -> Result<u64, ClockError> {
        let offset = self.test_offset_ms.as_ref().ok_or(ClockError::NotATestClock)?;
        if seconds < 0 {
            return Err(ClockError::Backwards);
        }
        offset.fetch_add(seconds.saturating_mul(1000), Ordering::Relaxed);
        Ok(self.now_ms())
    }
}

/// `2026-11-23T09:12:00.123Z`: ISO 8601 UTC with milliseconds, as the contract's §1 shows.
pub fn format_timestamp(unix_ms: u64) -> String {
    let Ok(moment) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000) else {
        return "9999-12-31T23:59:59.999Z".to_owned();
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        moment.year(),
        u8::from(moment.month()),
        moment.day(),
        moment.hour(),
        moment.minute(),
        moment.second(),
        moment.millisecond()
    )
}

/// Parses an RFC 3339 timestamp (any offset) into Unix milliseconds; before 1970 is refused.
pub fn parse_timestamp(text: &str) -> Option<u64> {
    let moment = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    let millis = moment.unix_timestamp_nanos() / 1_000_000;
    u64::try_from(millis).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_milliseconds_and_z() {
        assert_eq!(format_timestamp(1_767_225_600_123), "2026-01-01T00:00:00.123Z");
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn parses_what_it_formats_and_other_offsets() {
        assert_eq!(parse_timestamp("2026-01-01T00:00:00.123Z"), Some(1_767_225_600_123));
        assert_eq!(parse_timestamp("2026-01-01T01:00:00+01:00"), Some(1_767_225_600_000));
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp("1969-12-31T23:59:59Z"), None);
    }

    #[test]
    fn only_a_test_clock_moves_and_only_forward() {
        assert!(Clock::system().advance(10).is_err());
        let clock = Clock::test();
        let before = clock.now_ms();
        let after = clock.advance(3600).expect("a test clock moves");
        assert!(after >= before + 3_600_000);
        assert!(clock.advance(-1).is_err());
    }
}
