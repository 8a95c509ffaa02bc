//! Identifiers: 12 bytes, time-ordered, shown as 24 lowercase hex characters (ObjectId-like).
//!
//! Layout: 6 bytes of Unix milliseconds (big-endian), 3 bytes of a process-wide counter,
//! 3 bytes of per-process randomness. Within one process ids sort by creation time, so a
//! reverse scan over an id-keyed table lists newest first without an extra index. Prefixed
//! forms (`key_`, `evt_`, `dlv_`, `req_`) are the same 24 hex characters behind a tag.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};

/// A 12-byte identifier. Ordering is byte order, which is creation order within a process.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Id(pub [u8; 12]);

impl Id {
    pub const LEN: usize = 12;

    pub fn as_bytes(&self) -> &[u8; 12] {
        &self.0
    }

    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    /// Parses exactly 24 lowercase hex characters; anything else is not an id.
    pub fn parse_hex(text: &str) -> Option<Id> {
        if text.len() != 24 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut bytes = [0u8; 12];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Id(bytes))
    }

    /// Parses `<prefix><24 hex>`, e.g. `key_0123…`.
    pub fn parse_prefixed(prefix: &str, text: &str) -> Option<Id> {
        Id::parse_hex(text.strip_prefix(prefix)?)
    }

    pub fn prefixed(self, prefix: &str) -> String {
        let mut text = String::with_capacity(prefix.len() + 24);
        text.push_str(prefix);
        text.push_str(&self.to_hex());
        text
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Id> {
        Some(Id(bytes.try_into().ok()?))
    }

    /// The creation time encoded in the id, in Unix milliseconds.
    pub fn created_at_ms(self) -> u64 {
        let mut millis = [0u8; 8];
        millis[2..].copy_from_slice(&self.0[..6]);
        u64::from_be_bytes(millis)
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.to_hex())
    }
}

/// Makes ids. One per engine; cheap to call from any thread.
#[derive(Debug)]
pub struct IdGenerator {
    counter: AtomicU32,
    process: [u8; 3],
}

impl Default for IdGenerator {
    fn default() -> Self {
        IdGenerator::new()
    }
}

impl IdGenerator {
    pub fn new() -> IdGenerator {
        let seed: [u8; 6] = rand::random();
        IdGenerator { counter: AtomicU32::new(u32::from_be_bytes([0, seed[0], seed[1], seed[2]])), process: [seed[3], seed[4], seed[5]] }
    }

    pub fn next(&self, now_ms: u64) -> Id {
        let count = self.counter.fetch_add(1, Ordering::Relaxed) & 0x00ff_ffff;
        let mut bytes = [0u8; 12];
        bytes[..6].copy_from_slice(&now_ms.to_be_bytes()[2..]);
        bytes[6..9].copy_from_slice(&count.to_be_bytes()[1..]);
        bytes[9..].copy_from_slice(&self.process);
        Id(bytes)
    }

    /// A request id, `req_<24hex>`.
    pub fn request_id(&self, now_ms: u64) -> String {
        self.next(now_ms).prefixed("req_")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_hex_and_sort_by_time() {
        let ids = IdGenerator::new();
        let first = ids.next(1_767_225_600_000);
        let second = ids.next(1_767_225_600_001);
        assert!(first < second);
        assert_eq!(Id::parse_hex(&first.to_hex()), Some(first));
        assert_eq!(first.created_at_ms(), 1_767_225_600_000);
        assert_eq!(Id::parse_prefixed("evt_", &first.prefixed("evt_")), Some(first));
    }

    #[test]
    fn parse_rejects_anything_but_24_lowercase_hex() {
        for text in ["", "abc", "0123456789ABCDEF01234567", "0123456789abcdef0123456g", "0123456789abcdef012345678"] {
            assert_eq!(Id::parse_hex(text), None, "{text}");
        }
    }

    #[test]
    fn ids_within_one_millisecond_still_sort_in_creation_order() {
        let ids = IdGenerator::new();
        let mut previous = ids.next(5);
        for _ in 0..1000 {
            let next = ids.next(5);
            // The counter may wrap once in 2^24 ids; it does not within 1000.
            assert!(next > previous || next.0[6..9] == [0, 0, 0]);
            previous = next;
        }
    }
}
