//! Request signatures, exactly as the contract's §3 defines them:
//!
//! ```text
//! bodyHash      = lowercase hex SHA-256 of the raw body bytes
//! signedPayload = X-Timestamp + METHOD + pathWithQuery + bodyHash   (no separators)
//! X-Signature   = lowercase hex HMAC-SHA256(key = hmacSecret as UTF-8, signedPayload)
//! ```
//!
//! Used by the server to verify, and by `reward-engine sign`, the load generator and the
//! tests to sign. Verification rejects a malformed signature before any comparison and
//! compares in constant time.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

pub fn body_hash_hex(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

fn mac(hmac_secret: &str, timestamp: &str, method: &str, path_with_query: &str, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(hmac_secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(method.as_bytes());
    mac.update(path_with_query.as_bytes());
    mac.update(body_hash_hex(body).as_bytes());
    mac
}

/// The `X-Signature` value for a request.
pub fn sign(hmac_secret: &str, timestamp: &str, method: &str, path_with_query: &str, body: &[u8]) -> String {
    hex::encode(mac(hmac_secret, timestamp, method, path_with_query, body).finalize().into_bytes())
}

/// 64 lowercase hex characters: the only shape a signature can have.
pub fn is_signature_shaped(signature: &str) -> bool {
    signature.len() == 64 && signature.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

/// Checks `signature` against the request. A wrong length, empty, or non-lowercase-hex
/// signature is refused before any comparison; the comparison is constant-time.
pub fn verify(hmac_secret: &str, timestamp: &str, method: &str, path_with_query: &str, body: &[u8], signature: &str) -> bool {
    if hmac_secret.is_empty() || !is_signature_shaped(signature) {
        return false;
    }
    let mut expected = [0u8; 32];
    if hex::decode_to_slice(signature, &mut expected).is_err() {
        return false;
    }
    mac(hmac_secret, timestamp, method, path_with_query, body).verify_slice(&expected).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const BODY: &str = r#"{"idempotencyKey":"order_98765","actionType":"PURCHASE","amount":49.99,"currency":"USD","stakeholders":[{"stakeholderTypeCode":"CUSTOMER","partnerUserId":"user_42"}]}"#;

    #[test]
    fn contract_test_vectors_hold() {
        assert_eq!(body_hash_hex(BODY.as_bytes()), "a0b7f06e24e2461f607c6fed5cde168dacbb2b85eb94d72bb1d28f909f3f133c");
        assert_eq!(body_hash_hex(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(
            sign(SECRET, "1767225600", "POST", "/v1/partner/actions/submit", BODY.as_bytes()),
            "53d11e2e15cd0e0eca8ba05190a728dccdbb84f335d607a663cdba6ee05d00c2"
        );
        assert_eq!(
            sign(SECRET, "1767225600", "GET", "/v1/partner/users?page=1&limit=20", b""),
            "ff8e14605d64181feebc92982a1bf6ff7142fb2d118c9d9d92e8a17a87a1372d"
        );
    }

    #[test]
    fn verification_accepts_only_the_exact_signature() {
        let good = "53d11e2e15cd0e0eca8ba05190a728dccdbb84f335d607a663cdba6ee05d00c2";
        let check = |signature: &str, body: &str, path: &str| verify(SECRET, "1767225600", "POST", path, body.as_bytes(), signature);
        assert!(check(good, BODY, "/v1/partner/actions/submit"));
        assert!(!check(good, &BODY.replace("49.99", "49.98"), "/v1/partner/actions/submit"), "body changed after signing");
        assert!(!check(good, BODY, "/v1/partner/actions/submit?x=1"), "path changed after signing");
        assert!(!check(&good.to_uppercase(), BODY, "/v1/partner/actions/submit"), "upper-case hex");
        assert!(!check(&good[..63], BODY, "/v1/partner/actions/submit"), "short");
        assert!(!check("", BODY, "/v1/partner/actions/submit"), "empty");
        assert!(!verify("", "1767225600", "POST", "/v1/partner/actions/submit", BODY.as_bytes(), good), "empty secret");
    }
}
