//! Ambiguous JSON is refused: an object that names a member twice (`{"amount": 10, …,
//! "amount": 99999}`) means one thing to serde (the last wins) and another to a parser in
//! the partner's own pipeline (a gateway, a log, an audit copy, which may keep the first).
//! A money API accepts only I-JSON (RFC 7493 §2.3), so every body is walked once, at every
//! nesting level, before any field is read. Member names are compared after unescaping, so
//! `"amount"` and `"\u0061mount"` are the same member.

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Why a body was refused: not JSON at all, or a member named twice at `path`.
#[derive(Debug, PartialEq, Eq)]
pub enum Ambiguity {
    Malformed(String),
    /// The dotted path of the repeated member (`stakeholders[0].partnerUserId`).
    DuplicateMember(String),
}

/// Walks `body` and fails on the first object that repeats a member name.
pub fn check(body: &[u8]) -> Result<(), Ambiguity> {
    let mut walk = WalkState::default();
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let walked = Walk(&mut walk).deserialize(&mut deserializer).and_then(|()| deserializer.end());
    // Malformed wins: a body that is not JSON is told so, whatever it repeats.
    match (walked, walk.duplicate) {
        (Err(error), _) => Err(Ambiguity::Malformed(error.to_string())),
        (Ok(()), Some(path)) => Err(Ambiguity::DuplicateMember(path)),
        (Ok(()), None) => Ok(()),
    }
}

/// One step of the path from the body's root to the value being walked.
enum Step {
    Member(String),
    Index(usize),
}

/// The walk's state: the current path as a stack (pushed and popped, so each step costs
/// once; the path is rendered only when a duplicate is found), and the first duplicate.
#[derive(Default)]
struct WalkState {
    path: Vec<Step>,
    duplicate: Option<String>,
}

impl WalkState {
    /// `stakeholders[0].partnerUserId`.
    fn render(&self) -> String {
        let mut text = String::new();
        for step in &self.path {
            match step {
                Step::Member(name) if text.is_empty() => text.push_str(name),
                Step::Member(name) => {
                    text.push('.');
                    text.push_str(name);
                }
                Step::Index(index) => text.push_str(&format!("[{index}]")),
            }
        }
        text
    }
}

/// One value; records the first repeated member and walks on, so that a body that is also
/// malformed is reported as malformed.
struct Walk<'s>(&'s mut WalkState);

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut elements: A) -> Result<(), A::Error> {
        let state = self.0;
        let mut index = 0usize;
        loop {
            state.path.push(Step::Index(index));
            let element = elements.next_element_seed(Walk(&mut *state));
            state.path.pop();
            if element?.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<(), A::Error> {
        let state = self.0;
        // The body bound (`limits.body_bytes_max`) bounds how many names one object holds.
        let mut seen = HashSet::new();
        while let Some(name) = members.next_key::<String>()? {
            let repeated = !seen.insert(name.clone());
            state.path.push(Step::Member(name));
            if repeated && state.duplicate.is_none() {
                state.duplicate = Some(state.render());
            }
            let value = members.next_value_seed(Walk(&mut *state));
            state.path.pop();
            value?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_text(text: &str) -> Result<(), Ambiguity> {
        check(text.as_bytes())
    }

    #[test]
    fn repeated_members_are_found_at_every_depth() {
        let cases = [
            (r#"{"amount": 10, "currency": "USD", "amount": 99999}"#, Some("amount")),
            (r#"{"a": {"b": 1, "b": 2}}"#, Some("a.b")),
            (r#"{"s": [{"x": 1}, {"y": 1, "y": 1}]}"#, Some("s[1].y")),
            (r#"[[{"k": 1, "k": 1}]]"#, Some("[0][0].k")),
            (r#"{"amount": 1, "\u0061mount": 2}"#, Some("amount")),
            (r#"{"a": 1, "A": 2, "b": {"a": 1}, "c": [{"a": 1}, {"a": 1}]}"#, None),
            (r#"{}"#, None),
            (r#"[]"#, None),
            (r#""text""#, None),
            (r#"{"nested": {"deep": {"deeper": [1, 2.5, -3, true, null, "x"]}}}"#, None),
        ];
        for (text, expected) in cases {
            let found = match check_text(text) {
                Ok(()) => None,
                Err(Ambiguity::DuplicateMember(path)) => Some(path),
                Err(Ambiguity::Malformed(error)) => panic!("{text}: {error}"),
            };
            assert_eq!(found.as_deref(), expected, "{text}");
        }
    }

    #[test]
    fn malformed_bodies_are_not_mistaken_for_duplicates() {
        for text in ["{nope", r#"{"a": 1,}"#, r#"{"a": 1} trailing"#, "", r#"{"a": 1, "a""#] {
            assert!(matches!(check_text(text), Err(Ambiguity::Malformed(_))), "{text}");
        }
    }
}
