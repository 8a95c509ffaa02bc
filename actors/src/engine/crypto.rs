//! Secrets: generation, digests, sealing under the master key, and a type that never prints.
//!
//! `pk_`/`sk_` texts are stored only as SHA-256 digests. HMAC and webhook secrets must be
//! recoverable to verify or sign, so they are sealed with AES-256-GCM under the master key,
//! with the owning record's id as associated data (a sealed value moved to another record
//! does not open).

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::model::Environment;

/// A secret string. `Debug` shows nothing of it; there is no `Display` and no `Serialize`,
/// so printing or returning one takes a deliberate `expose()`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: String) -> Secret {
        Secret(text)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("master key must be 64 hex characters (32 bytes)")]
    BadMasterKey,
    #[error("sealed secret does not open under this master key")]
    Unseal,
}

/// The key that seals recoverable secrets at rest.
#[derive(Clone)]
pub struct MasterKey {
    cipher: Aes256Gcm,
    /// `HMAC-SHA256(master key, "reward-engine key derivation v1")`: the root of
    /// [`MasterKey::derive`], so the raw key is kept nowhere but in the cipher.
    derivation: [u8; 32],
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

const NONCE_BYTES: usize = 12;

impl MasterKey {
    pub fn from_hex(text: &str) -> Result<MasterKey, CryptoError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| CryptoError::BadMasterKey)?;
        Ok(MasterKey::from_bytes(&bytes))
    }

    pub fn from_bytes(bytes: &[u8; 32]) -> MasterKey {
        MasterKey { cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(bytes)), derivation: hmac_sha256(bytes, &[b"reward-engine key derivation v1"]) }
    }

    /// A key for `label`'s purpose, the same on every node that holds this master key (a
    /// cluster's nodes authenticate the requests they forward to one another with one).
    pub fn derive(&self, label: &str) -> [u8; 32] {
        hmac_sha256(&self.derivation, &[label.as_bytes()])
    }

    /// A fresh random master key as 64 hex characters.
    pub fn generate_hex() -> Secret {
        Secret(random_hex(32))
    }

    /// `nonce ‖ ciphertext+tag`, bound to `associated_data`.
    pub fn seal(&self, associated_data: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_BYTES] = rand::random();
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: associated_data })
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut sealed = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    pub fn open(&self, associated_data: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < NONCE_BYTES {
            return Err(CryptoError::Unseal);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        self.cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: associated_data }).map_err(|_| CryptoError::Unseal)
    }
}

/// HMAC-SHA256 under `key` of `parts`, concatenated.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::Mac;
    let mut mac = <hmac::Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// `bytes` random bytes from the thread's CSPRNG, as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::fill(buffer.as_mut_slice());
    hex::encode(buffer)
}

/// A newly issued key pair; its secrets are shown once, in the creating response.
#[derive(Debug)]
pub struct GeneratedKeyPair {
    pub public_key: String,
    pub secret_key: Secret,
    pub hmac_secret: Secret,
}

impl GeneratedKeyPair {
    /// `pk_<test|live>_<64hex>`, `sk_<test|live>_<64hex>`, and a 64-hex HMAC secret.
    pub fn generate(environment: Environment) -> GeneratedKeyPair {
        let word = environment.key_word();
        GeneratedKeyPair {
            public_key: format!("pk_{word}_{}", random_hex(32)),
            secret_key: Secret(format!("sk_{word}_{}", random_hex(32))),
            hmac_secret: Secret(random_hex(32)),
        }
    }
}

/// The environment a presented key addresses, from its prefix; `None` if it is not a key.
pub fn key_environment(presented: &str) -> Option<(Environment, crate::domain::model::KeyKind)> {
    use crate::domain::model::KeyKind;
    let (kind, rest) =
        if let Some(rest) = presented.strip_prefix("pk_") { (KeyKind::Publishable, rest) } else { (KeyKind::Secret, presented.strip_prefix("sk_")?) };
    let environment = if rest.starts_with("test_") {
        Environment::Sandbox
    } else if rest.starts_with("live_") {
        Environment::Production
    } else {
        return None;
    };
    Some((environment, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_record_id() {
        let master = MasterKey::from_hex(&"11".repeat(32)).expect("valid key");
        let sealed = master.seal(b"record-1", b"the secret");
        assert_eq!(master.open(b"record-1", &sealed).expect("opens"), b"the secret");
        assert!(master.open(b"record-2", &sealed).is_err());
        let other = MasterKey::from_hex(&"22".repeat(32)).expect("valid key");
        assert!(other.open(b"record-1", &sealed).is_err());
        assert!(MasterKey::from_hex("abc").is_err());
    }

    #[test]
    fn key_pairs_have_the_contract_formats() {
        let pair = GeneratedKeyPair::generate(Environment::Production);
        assert!(pair.public_key.starts_with("pk_live_") && pair.public_key.len() == 8 + 64);
        assert!(pair.secret_key.expose().starts_with("sk_live_") && pair.secret_key.expose().len() == 8 + 64);
        assert_eq!(pair.hmac_secret.expose().len(), 64);
        assert_eq!(key_environment(&pair.public_key), Some((Environment::Production, crate::domain::model::KeyKind::Publishable)));
        assert_eq!(key_environment("sk_test_x").map(|(environment, _)| environment), Some(Environment::Sandbox));
        assert_eq!(key_environment("xk_test_x"), None);
    }

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("sk_test_abcdef".into());
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        let pair = GeneratedKeyPair::generate(Environment::Sandbox);
        let printed = format!("{pair:?}");
        assert!(!printed.contains(pair.secret_key.expose()) && !printed.contains(pair.hmac_secret.expose()));
    }
}
