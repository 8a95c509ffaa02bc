//! Field parsers shared by several resources: environments, scopes, timestamps, emails,
//! metadata, patchable fields and path segments (so no resource imports from another).

use reward_actors::api::common::Id;
use reward_actors::api::common::IdempotencyKey;
use reward_actors::api::common::TOKENS_MAX;
use reward_actors::api::common::parse_timestamp;
use reward_actors::api::common::{Environment, Scope, ScopeSet};

use super::error::{ApiError, ApiResult};
use super::fields::{Fields, array_elements};
use crate::config::HttpLimits;

pub fn environment(fields: &mut Fields<'_>) -> Option<Environment> {
    let text = fields.string("environment", true, 16)?;
    let environment = Environment::parse(&text);
    if environment.is_none() {
        fields.error("environment", "must be sandbox or production");
    }
    environment
}

/// `idempotencyKey`: 1–255 printable ASCII characters.
pub fn idempotency_key(fields: &mut Fields<'_>, required: bool) -> Option<IdempotencyKey> {
    fields.string("idempotencyKey", required, IdempotencyKey::BYTES_MAX).and_then(|key| {
        let parsed = IdempotencyKey::parse(&key);
        if parsed.is_none() {
            fields.error("idempotencyKey", "must be 1 to 255 printable ASCII characters");
        }
        parsed
    })
}

/// A 24-character lowercase hex id.
pub fn hex_id(fields: &mut Fields<'_>, name: &str, required: bool) -> Option<Id> {
    fields.string(name, required, 24).and_then(|text| {
        let id = Id::parse_hex(&text);
        if id.is_none() {
            fields.error(name, "must be a 24-character lowercase hex id");
        }
        id
    })
}

/// A token quantity that moves: 1 to 2^53 − 1.
pub fn positive_tokens(fields: &mut Fields<'_>, name: &str, required: bool) -> Option<u64> {
    fields.unsigned(name, required, TOKENS_MAX).filter(|tokens| {
        if *tokens == 0 {
            fields.error(name, "must be at least 1");
        }
        *tokens > 0
    })
}

/// The longest slug (partners, organizations).
pub const SLUG_CHARS_MAX: usize = 64;

/// A URL slug: lower-case letters and digits joined by single dashes.
pub fn slug(fields: &mut Fields<'_>, required: bool) -> Option<String> {
    fields.string("slug", required, SLUG_CHARS_MAX).filter(|slug| {
        let valid = is_slug(slug);
        if !valid {
            fields.error("slug", "must be lower-case letters and digits joined by single dashes");
        }
        valid
    })
}

pub fn is_slug(text: &str) -> bool {
    text.len() <= SLUG_CHARS_MAX
        && text.split('-').all(|part| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit()))
}

/// A field holding one of an enum's contract names.
pub fn enum_field<T: serde::de::DeserializeOwned>(fields: &mut Fields<'_>, name: &str, expected: &str) -> Option<T> {
    let raw = fields.raw(name)?;
    let parsed = serde_json::from_str::<T>(raw.get()).ok();
    if parsed.is_none() {
        fields.error(name, format!("must be one of {expected}"));
    }
    parsed
}

pub fn scopes(fields: &mut Fields<'_>) -> Option<ScopeSet> {
    let elements = array_elements(fields, "scopes", false)?;
    let mut scopes = Vec::with_capacity(elements.len());
    for element in elements {
        match serde_json::from_str::<String>(element.get()).ok().and_then(|text| Scope::parse(&text)) {
            Some(scope) => scopes.push(scope),
            None => {
                let known: Vec<&str> = Scope::ALL.iter().map(|scope| scope.as_str()).collect();
                fields.error("scopes", format!("must be scopes from: {}", known.join(", ")));
                return None;
            }
        }
    }
    if scopes.is_empty() {
        fields.error("scopes", "must name at least one scope (omit it for all scopes)");
        return None;
    }
    Some(ScopeSet::from_scopes(&scopes))
}

/// An RFC 3339 timestamp (past or future).
pub fn timestamp(fields: &mut Fields<'_>, name: &str) -> Option<u64> {
    let text = fields.string(name, false, 64)?;
    let parsed = parse_timestamp(&text);
    if parsed.is_none() {
        fields.error(name, "must be an ISO 8601 timestamp like 2027-01-01T00:00:00.000Z");
    }
    parsed
}

/// An RFC 3339 timestamp that lies in the future.
pub fn future_timestamp(fields: &mut Fields<'_>, name: &str, now_ms: u64) -> Option<u64> {
    let text = fields.string(name, false, 64)?;
    match parse_timestamp(&text) {
        Some(at_ms) if at_ms > now_ms => Some(at_ms),
        Some(_) => {
            fields.error(name, "must be in the future");
            None
        }
        None => {
            fields.error(name, "must be an ISO 8601 timestamp like 2027-01-01T00:00:00.000Z");
            None
        }
    }
}

pub fn email(fields: &mut Fields<'_>, name: &str, required: bool) -> Option<String> {
    fields.string(name, required, 254).filter(|email| {
        let valid = is_email(email);
        if !valid {
            fields.error(name, "must be an email address");
        }
        valid
    })
}
/// A plausible email address: `local@domain`, no spaces, at most 254 characters.
pub fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    text.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !text.chars().any(char::is_whitespace)
        && !domain.contains('@')
}

/// Characters an action type may use (`PURCHASE`, `donation.completed`, `volunteer-hour`).
pub fn is_action_type(text: &str) -> bool {
    text.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b':' | b'-'))
}

/// Free-form metadata: an object of at most `metadata_keys_max` keys and
/// `metadata_bytes_max` bytes, kept as canonical JSON (keys sorted at every level).
pub fn parse_metadata(fields: &mut Fields<'_>, name: &str, limits: &HttpLimits) -> Option<Vec<u8>> {
    let raw = fields.raw(name)?;
    metadata_value(fields, name, raw, limits)
}

/// On a patch: absent leaves metadata as it is (`None`), null clears it (`Some(None)`).
pub fn patch_metadata(fields: &mut Fields<'_>, name: &str, limits: &HttpLimits) -> Option<Option<Vec<u8>>> {
    match fields.nullable(name)? {
        None => Some(None),
        Some(raw) => metadata_value(fields, name, raw, limits).map(Some),
    }
}

fn metadata_value(fields: &mut Fields<'_>, name: &str, raw: &serde_json::value::RawValue, limits: &HttpLimits) -> Option<Vec<u8>> {
    let Ok(serde_json::Value::Object(object)) = serde_json::from_str::<serde_json::Value>(raw.get()) else {
        fields.error(name, "must be a JSON object");
        return None;
    };
    if object.len() > limits.metadata_keys_max {
        fields.error(name, format!("may hold at most {} keys", limits.metadata_keys_max));
        return None;
    }
    let canonical = canonical_json(&serde_json::Value::Object(object));
    if canonical.len() > limits.metadata_bytes_max {
        fields.error(name, format!("may be at most {} bytes", limits.metadata_bytes_max));
        return None;
    }
    Some(canonical)
}

/// A patchable field: `None` absent, `Some(None)` null, `Some(Some(v))` a valid value.
pub fn nullable<T>(fields: &mut Fields<'_>, name: &str, read: impl FnOnce(&mut Fields<'_>) -> Option<T>) -> Option<Option<T>> {
    if fields.is_null(name)? {
        return Some(None);
    }
    read(fields).map(Some)
}

/// A key id from a path segment (`key_<24hex>`); anything else names no key.
pub fn key_id(text: &str) -> Result<Id, ApiError> {
    Id::parse_prefixed("key_", text).ok_or_else(|| ApiError::not_found("key not found"))
}

/// A path slug; one that cannot exist names no organization.
pub fn organization_slug(text: &str) -> ApiResult<&str> {
    if is_slug(text) { Ok(text) } else { Err(ApiError::not_found("organization not found")) }
}

/// JSON with object keys sorted at every level, whatever serde_json's map order is.
pub fn canonical_json(value: &serde_json::Value) -> Vec<u8> {
    fn write(value: &serde_json::Value, out: &mut Vec<u8>) {
        match value {
            serde_json::Value::Object(object) => {
                let mut entries: Vec<_> = object.iter().collect();
                entries.sort_by_key(|(key, _)| *key);
                out.push(b'{');
                for (index, (key, item)) in entries.into_iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(&serde_json::to_vec(key).expect("a string serializes"));
                    out.push(b':');
                    write(item, out);
                }
                out.push(b'}');
            }
            serde_json::Value::Array(items) => {
                out.push(b'[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    write(item, out);
                }
                out.push(b']');
            }
            scalar => out.extend_from_slice(&serde_json::to_vec(scalar).expect("a scalar serializes")),
        }
    }
    let mut out = Vec::new();
    write(value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_plausible_or_refused() {
        assert!(is_email("jane@example.com"));
        for bad in ["jane", "@example.com", "jane@", "jane@example", "ja ne@example.com", "a@b@c.com", "jane@.com"] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let value: serde_json::Value = serde_json::from_str(r#"{"b":1,"a":{"d":[{"z":1,"y":2}],"c":null}}"#).expect("json");
        assert_eq!(String::from_utf8(canonical_json(&value)).expect("utf8"), r#"{"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}"#);
    }
}
