//! Portal access tokens: compact JWTs signed with HMAC-SHA256 (RFC 7519, `alg` HS256 only).
//!
//! Hand-written on the `hmac` and `sha2` the server already uses: the portal needs HS256
//! alone, and the JWT crates bring RSA and elliptic-curve stacks (and a second copy of the
//! hash crates) for algorithms we would refuse anyway. Verification accepts exactly
//! `{"alg":"HS256","typ":"JWT"}`, compares the signature in constant time, and checks
//! expiry against the server clock.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The account id.
    pub sub: String,
    pub iat: u64,
    pub exp: u64,
    /// Always `access`: a token of another kind is refused.
    pub typ: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the token is not a JWT")]
    Malformed,
    #[error("the token's signature does not match")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
}

fn mac(secret: &str, signing_input: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(signing_input.as_bytes());
    mac
}

pub fn sign(secret: &str, claims: &AccessClaims) -> String {
    let payload = serde_json::to_vec(claims).expect("claims serialize");
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(HEADER), URL_SAFE_NO_PAD.encode(payload));
    let signature = mac(secret, &signing_input).finalize().into_bytes();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

pub fn verify(secret: &str, token: &str, now_secs: u64) -> Result<AccessClaims, JwtError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(JwtError::Malformed);
    };
    if URL_SAFE_NO_PAD.decode(header).ok().as_deref() != Some(HEADER.as_bytes()) {
        return Err(JwtError::Malformed);
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| JwtError::Malformed)?;
    if secret.is_empty() || mac(secret, &format!("{header}.{payload}")).verify_slice(&signature).is_err() {
        return Err(JwtError::BadSignature);
    }
    let claims: AccessClaims =
        URL_SAFE_NO_PAD.decode(payload).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).ok_or(JwtError::Malformed)?;
    if claims.typ != "access" {
        return Err(JwtError::Malformed);
    }
    if claims.exp <= now_secs {
        return Err(JwtError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_style_example_signature_matches() {
        // jwt.io's HS256 example: header {"alg":"HS256","typ":"JWT"}, secret "your-256-bit-secret".
        let signing_input = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ";
        let signature = URL_SAFE_NO_PAD.encode(mac("your-256-bit-secret", signing_input).finalize().into_bytes());
        assert_eq!(signature, "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c");
    }

    #[test]
    fn tokens_verify_until_they_expire_and_not_under_another_secret() {
        let claims = AccessClaims { sub: "account".into(), iat: 100, exp: 200, typ: "access".into() };
        let token = sign("secret", &claims);
        assert_eq!(verify("secret", &token, 150), Ok(claims));
        assert_eq!(verify("secret", &token, 200), Err(JwtError::Expired));
        assert_eq!(verify("other", &token, 150), Err(JwtError::BadSignature));
        assert_eq!(verify("", &token, 150), Err(JwtError::BadSignature));
        let (unsigned, _) = token.rsplit_once('.').expect("three parts");
        assert_eq!(verify("secret", &format!("{unsigned}."), 150), Err(JwtError::BadSignature));
        let none_header = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#), token.split('.').nth(1).expect("payload"));
        assert_eq!(verify("secret", &none_header, 150), Err(JwtError::Malformed));
        assert_eq!(verify("secret", "not-a-jwt", 150), Err(JwtError::Malformed));
    }
}
