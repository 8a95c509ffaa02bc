//! Stored value encoding: one version byte, then bincode (standard config, serde API).
//!
//! The version byte lets a later release read old values or refuse them clearly; the
//! store's schema version (checked at open) guards the key layout.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The version of every value this release writes.
pub const VALUE_VERSION: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("stored value is empty")]
    Empty,
    #[error("stored value has version {0}, this build reads version {VALUE_VERSION}")]
    UnknownVersion(u8),
    #[error("stored value does not decode: {0}")]
    Decode(String),
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = vec![VALUE_VERSION];
    bincode::serde::encode_into_std_write(value, &mut bytes, bincode::config::standard())
        .expect("encoding a record into a Vec cannot fail: records hold no maps with non-string keys");
    bytes
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != VALUE_VERSION {
        return Err(CodecError::UnknownVersion(version));
    }
    let (value, _) = bincode::serde::decode_from_slice(body, bincode::config::standard()).map_err(|error| CodecError::Decode(error.to_string()))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::IdGenerator;
    use crate::domain::model::{AutoRefill, Environment, PoolRecord};

    #[test]
    fn records_round_trip_behind_a_version_byte() {
        let pool = PoolRecord {
            id: IdGenerator::new().next(1),
            environment: Environment::Sandbox,
            name: Some("main".into()),
            balance: 5,
            allocated_total: 5,
            refilled_total: 0,
            issued_total: 0,
            reversed_total: 0,
            expires_at_ms: None,
            vesting_days: None,
            low_balance_threshold: Some(1),
            low_balance_notified: false,
            auto_refill: Some(AutoRefill { threshold_tokens: 1, refill_tokens: 10, max_refills_per_month: 2 }),
            refills_in_month: 0,
            refill_month: 0,
            created_at_ms: 1,
            updated_at_ms: 1,
        };
        let bytes = encode(&pool);
        assert_eq!(bytes[0], VALUE_VERSION);
        assert_eq!(decode::<PoolRecord>(&bytes).expect("decodes"), pool);
        let mut wrong_version = bytes.clone();
        wrong_version[0] = 9;
        assert!(matches!(decode::<PoolRecord>(&wrong_version), Err(CodecError::UnknownVersion(9))));
        assert!(matches!(decode::<PoolRecord>(&[]), Err(CodecError::Empty)));
    }
}
