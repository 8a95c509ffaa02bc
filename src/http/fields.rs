//! Field-by-field JSON validation with precise error paths (`stakeholders[0].partnerUserId`).
//!
//! A body is first checked to be well-formed JSON (`INVALID_JSON`), then read as an object
//! of raw values, so numbers keep their exact text (amounts are parsed from it, never from
//! a float). Each typed getter removes the field it reads; whatever is left at `finish` is
//! an unknown field and refused, the way Stripe refuses unknown parameters. Absent and
//! `null` are the same.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::error::{ApiError, FieldError};
use super::unique_members::{self, Ambiguity};

pub struct Fields<'a> {
    prefix: String,
    values: HashMap<String, &'a RawValue>,
    pub errors: Vec<FieldError>,
}

impl<'a> Fields<'a> {
    /// Parses a request body that must be a JSON object naming each member once, at every
    /// depth (`unique_members`).
    pub fn parse(body: &'a [u8]) -> Result<Fields<'a>, ApiError> {
        unique_members::check(body).map_err(|ambiguity| match ambiguity {
            Ambiguity::Malformed(error) => ApiError::invalid_json(format!("the body is not valid JSON: {error}")),
            Ambiguity::DuplicateMember(path) => ApiError::validation(vec![FieldError {
                field: path,
                message: "is named more than once; each member may appear only once (I-JSON, RFC 7493)".into(),
            }]),
        })?;
        let raw: &RawValue = serde_json::from_slice(body).map_err(|error| ApiError::invalid_json(format!("the body is not valid JSON: {error}")))?;
        Fields::from_raw(raw, String::new()).map_err(|error| ApiError::validation(vec![error]))
    }

    fn from_raw(raw: &'a RawValue, prefix: String) -> Result<Fields<'a>, FieldError> {
        let values: HashMap<String, &'a RawValue> = serde_json::from_str(raw.get()).map_err(|_| FieldError {
            field: if prefix.is_empty() { "body".into() } else { prefix.trim_end_matches('.').to_owned() },
            message: "must be a JSON object".into(),
        })?;
        Ok(Fields { prefix, values, errors: Vec::new() })
    }

    pub fn path(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    pub fn error(&mut self, name: &str, message: impl Into<String>) {
        let field = self.path(name);
        self.errors.push(FieldError { field, message: message.into() });
    }

    /// Takes a field that may be set to null on purpose: `None` absent, `Some(None)` null,
    /// `Some(Some(raw))` a value.
    pub fn nullable(&mut self, name: &str) -> Option<Option<&'a RawValue>> {
        self.values.remove(name).map(|raw| (raw.get() != "null").then_some(raw))
    }

    /// Whether a field is present and null (taking it then); `None` when absent.
    pub fn is_null(&mut self, name: &str) -> Option<bool> {
        let raw = self.values.get(name)?;
        let null = raw.get() == "null";
        if null {
            self.values.remove(name);
        }
        Some(null)
    }

    /// Takes a field's raw value; `None` when absent or null.
    pub fn raw(&mut self, name: &str) -> Option<&'a RawValue> {
        self.values.remove(name).filter(|raw| raw.get() != "null")
    }

    fn typed<T: DeserializeOwned>(&mut self, name: &str, required: bool, expected: &str) -> Option<T> {
        let Some(raw) = self.raw(name) else {
            if required {
                self.error(name, "is required");
            }
            return None;
        };
        match serde_json::from_str::<T>(raw.get()) {
            Ok(value) => Some(value),
            Err(_) => {
                self.error(name, format!("must be {expected}"));
                None
            }
        }
    }

    /// A string of 1..=`chars_max` characters.
    pub fn string(&mut self, name: &str, required: bool, chars_max: usize) -> Option<String> {
        let value: String = self.typed(name, required, "a string")?;
        let chars = value.chars().count();
        if chars == 0 || chars > chars_max {
            self.error(name, format!("must be 1 to {chars_max} characters"));
            return None;
        }
        Some(value)
    }

    pub fn boolean(&mut self, name: &str) -> Option<bool> {
        self.typed(name, false, "true or false")
    }

    /// A non-negative integer (no exponent; a zero fraction such as `5.0` is the integer 5,
    /// as JSON Schema's `integer` says) at most `max`.
    pub fn unsigned(&mut self, name: &str, required: bool, max: u64) -> Option<u64> {
        let Some(raw) = self.raw(name) else {
            if required {
                self.error(name, "is required");
            }
            return None;
        };
        match integral_text(raw.get()).parse::<u64>() {
            Ok(value) if value <= max => Some(value),
            _ => {
                self.error(name, format!("must be an integer from 0 to {max}"));
                None
            }
        }
    }

    /// A signed integer (no exponent; `5.0` is 5) from `min` to `max`.
    pub fn integer(&mut self, name: &str, min: i64, max: i64) -> Option<i64> {
        let raw = self.raw(name)?;
        match integral_text(raw.get()).parse::<i64>() {
            Ok(value) if (min..=max).contains(&value) => Some(value),
            _ => {
                self.error(name, format!("must be an integer from {min} to {max}"));
                None
            }
        }
    }

    /// A nested object, validated with its own `Fields` under `name.`.
    pub fn object(&mut self, name: &str, raw: &'a RawValue) -> Option<Fields<'a>> {
        match Fields::from_raw(raw, self.path(&format!("{name}."))) {
            Ok(fields) => Some(fields),
            Err(error) => {
                self.errors.push(error);
                None
            }
        }
    }

    /// Adds a nested object's errors (and its unknown fields) to this one's.
    pub fn absorb(&mut self, mut nested: Fields<'a>) {
        nested.refuse_unknown();
        self.errors.append(&mut nested.errors);
    }

    fn refuse_unknown(&mut self) {
        let mut unknown: Vec<String> = self.values.keys().cloned().collect();
        unknown.sort();
        for name in unknown {
            self.error(&name, "is not a known field");
        }
        self.values.clear();
    }

    /// Ends validation: unknown fields and collected errors become one `VALIDATION_ERROR`.
    pub fn finish(mut self) -> Result<(), ApiError> {
        self.refuse_unknown();
        if self.errors.is_empty() { Ok(()) } else { Err(ApiError::validation(self.errors)) }
    }
}

/// The integer part of a JSON number's text when its fraction is all zeros (`14748.0`,
/// `5.00`): JSON Schema counts such numbers as integers, and so do we. Anything else is
/// returned unchanged (and refused by the integer parse, exponents included).
fn integral_text(text: &str) -> &str {
    match text.split_once('.') {
        Some((whole, fraction)) if !fraction.is_empty() && fraction.bytes().all(|byte| byte == b'0') => whole,
        _ => text,
    }
}

/// Reads an array field as raw elements (borrowed from the body).
pub fn array_elements<'a>(fields: &mut Fields<'a>, name: &str, required: bool) -> Option<Vec<&'a RawValue>> {
    let Some(raw) = fields.raw(name) else {
        if required {
            fields.error(name, "is required");
        }
        return None;
    };
    match serde_json::from_str::<Vec<&'a RawValue>>(raw.get()) {
        Ok(elements) => Some(elements),
        Err(_) => {
            fields.error(name, "must be an array");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_json_and_non_objects_are_told_apart() {
        assert_eq!(Fields::parse(b"{nope").err().map(|error| error.code), Some("INVALID_JSON"));
        assert_eq!(Fields::parse(b"[1,2]").err().map(|error| error.code), Some("VALIDATION_ERROR"));
        assert!(Fields::parse(b"{}").is_ok());
        let repeated = Fields::parse(br#"{"a": {"b": 1, "b": 2}}"#).err().expect("refused");
        assert_eq!(repeated.code, "VALIDATION_ERROR");
        assert!(repeated.message.contains("a.b"), "{}", repeated.message);
    }

    #[test]
    fn integers_may_carry_a_zero_fraction_but_no_exponent() {
        let body = br#"{"a": 14748.0, "b": 5.00, "c": 5.5, "d": 1e3, "e": -2.0}"#;
        let mut fields = Fields::parse(body).expect("object");
        assert_eq!(fields.unsigned("a", true, u64::MAX), Some(14_748));
        assert_eq!(fields.unsigned("b", true, u64::MAX), Some(5));
        assert_eq!(fields.unsigned("c", true, u64::MAX), None);
        assert_eq!(fields.unsigned("d", true, u64::MAX), None);
        assert_eq!(fields.integer("e", -10, 10), Some(-2));
    }

    #[test]
    fn getters_report_paths_and_unknown_fields() {
        let body = br#"{"name": 5, "flag": true, "count": -1, "extra": 1, "nothing": null}"#;
        let mut fields = Fields::parse(body).expect("object");
        assert_eq!(fields.string("name", true, 10), None);
        assert_eq!(fields.boolean("flag"), Some(true));
        assert_eq!(fields.unsigned("count", true, 10), None);
        assert_eq!(fields.string("nothing", false, 10), None);
        assert_eq!(fields.string("missing", true, 10), None);
        let error = fields.finish().expect_err("invalid");
        let messages: Vec<String> = serde_json::from_str::<serde_json::Value>(error.details.get())
            .and_then(|details| serde_json::from_value::<Vec<FieldError>>(details["fields"].clone()))
            .map(|fields| fields.into_iter().map(|field| format!("{}: {}", field.field, field.message)).collect())
            .unwrap_or_default();
        assert_eq!(
            messages,
            vec!["name: must be a string", "count: must be an integer from 0 to 10", "missing: is required", "extra: is not a known field"]
        );
    }
}
