//! Webhook signatures (contract §9): `X-SIR-Signature` over `timestamp.body` keyed by the
//! whole `whsec_…` text, and the Standard Webhooks `webhook-signature` over
//! `id.timestamp.body` keyed by the base64-decoding of the text after `whsec_`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::engine::crypto::{Secret, constant_time_eq, hmac_sha256};

pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes behind a generated secret (Standard Webhooks asks for 24 to 64).
const SECRET_BYTES: usize = 32;

/// A fresh `whsec_<base64 of 32 random bytes>`.
pub fn generate_secret() -> Secret {
    let bytes: [u8; SECRET_BYTES] = rand::random();
    Secret::new(format!("{SECRET_PREFIX}{}", BASE64.encode(bytes)))
}

/// The Standard Webhooks key: the base64-decoding of the text after `whsec_`. `None` for an
/// empty or undecodable secret, which never signs nor verifies.
pub fn standard_key(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix(SECRET_PREFIX)?;
    BASE64.decode(encoded).ok().filter(|key| !key.is_empty())
}

/// `sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`.
pub fn sir_signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let digest = hmac_sha256(secret.as_bytes(), &[timestamp.to_string().as_bytes(), b".", body]);
    format!("sha256={}", hex::encode(digest))
}

/// `v1,<base64 HMAC-SHA256(key, id + "." + timestamp + "." + body)>`.
pub fn standard_signature(key: &[u8], id: &str, timestamp: u64, body: &[u8]) -> String {
    let digest = hmac_sha256(key, &[id.as_bytes(), b".", timestamp.to_string().as_bytes(), b".", body]);
    format!("v1,{}", BASE64.encode(digest))
}

/// The secrets an endpoint signs with: the current one, and during a rotation the previous.
#[derive(Debug, Clone)]
pub struct SigningSecrets {
    pub current: Secret,
    pub previous: Option<Secret>,
}

/// The two signature headers of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signatures {
    pub sir: String,
    pub standard: String,
}

impl SigningSecrets {
    /// `X-SIR-Signature` with the current secret; `webhook-signature` with the current and,
    /// during a rotation, the previous (`v1,<new> v1,<old>`). `None` if the current secret
    /// is not a valid `whsec_` secret (then nothing is sent).
    pub fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> Option<Signatures> {
        let current = self.current.expose();
        let key = standard_key(current)?;
        let mut standard = standard_signature(&key, id, timestamp, body);
        if let Some(previous_key) = self.previous.as_ref().and_then(|previous| standard_key(previous.expose())) {
            standard.push(' ');
            standard.push_str(&standard_signature(&previous_key, id, timestamp, body));
        }
        Some(Signatures { sir: sir_signature(current, timestamp, body), standard })
    }
}

/// Checks an `X-SIR-Signature` value. An empty secret or signature never verifies.
pub fn verify_sir(secret: &str, timestamp: u64, body: &[u8], presented: &str) -> bool {
    if secret.is_empty() || presented.strip_prefix("sha256=").is_none_or(str::is_empty) {
        return false;
    }
    constant_time_eq(sir_signature(secret, timestamp, body).as_bytes(), presented.as_bytes())
}

/// Checks a `webhook-signature` value (space-separated `v1,<sig>` entries): any entry made
/// with `secret` passes. Empty secrets and empty signatures (`v1,`) never verify.
pub fn verify_standard(secret: &str, id: &str, timestamp: u64, body: &[u8], presented: &str) -> bool {
    let Some(key) = standard_key(secret) else {
        return false;
    };
    let expected = standard_signature(&key, id, timestamp, body);
    presented
        .split(' ')
        .filter(|entry| entry.strip_prefix("v1,").is_some_and(|signature| !signature.is_empty()))
        .any(|entry| constant_time_eq(entry.as_bytes(), expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const BODY: &[u8] = br#"{"id":"evt_000000000000000000000001","type":"webhook.test","data":{}}"#;
    const ID: &str = "evt_000000000000000000000001";

    #[test]
    fn contract_test_vector() {
        assert_eq!(sir_signature(SECRET, 1_767_225_600, BODY), "sha256=c1d77bc37786d2199e2ca5c236ec11d2dfe56182758f0fb807dc69808d7b335a");
        let key = standard_key(SECRET).expect("valid secret");
        assert_eq!(standard_signature(&key, ID, 1_767_225_600, BODY), "v1,Xuaerd5bQiUn7u/BGdSw0XI0xCwRbTUgoCs7tv9rNfw=");
        let secrets = SigningSecrets { current: Secret::new(SECRET.into()), previous: None };
        let signed = secrets.sign(ID, 1_767_225_600, BODY).expect("signs");
        assert!(verify_sir(SECRET, 1_767_225_600, BODY, &signed.sir));
        assert!(verify_standard(SECRET, ID, 1_767_225_600, BODY, &signed.standard));
    }

    #[test]
    fn empty_secrets_and_signatures_never_verify() {
        assert!(standard_key("whsec_").is_none());
        assert!(standard_key("").is_none());
        assert!(!verify_sir("", 1, BODY, &sir_signature("", 1, BODY)));
        assert!(!verify_sir(SECRET, 1, BODY, "sha256="));
        assert!(!verify_standard(SECRET, ID, 1, BODY, "v1,"));
        assert!(!verify_standard("whsec_", ID, 1, BODY, "v1,"));
        assert!(!verify_sir(SECRET, 2, BODY, &sir_signature(SECRET, 1, BODY)), "the timestamp is signed");
    }

    #[test]
    fn rotation_signs_with_both_secrets() {
        let old = generate_secret();
        let new = generate_secret();
        assert!(old.expose().starts_with(SECRET_PREFIX) && standard_key(old.expose()).is_some_and(|key| key.len() == 32));
        let secrets = SigningSecrets { current: new.clone(), previous: Some(old.clone()) };
        let signed = secrets.sign(ID, 7, BODY).expect("signs");
        assert_eq!(signed.standard.split(' ').count(), 2);
        assert!(verify_standard(new.expose(), ID, 7, BODY, &signed.standard));
        assert!(verify_standard(old.expose(), ID, 7, BODY, &signed.standard));
        assert!(verify_sir(new.expose(), 7, BODY, &signed.sir), "X-SIR-Signature uses the new secret");
        assert!(!verify_sir(old.expose(), 7, BODY, &signed.sir));
    }
}
