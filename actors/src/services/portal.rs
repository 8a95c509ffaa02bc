//! Portal accounts (contract §4): people who sign in to manage a partner's keys.
//!
//! Passwords are Argon2id hashes (PHC strings), computed off the async threads. Refresh
//! tokens are random, stored as SHA-256 digests, single-use (each refresh rotates them).
//! The access tokens themselves (short-lived JWTs) are signed by the front with the
//! portal signing secret kept here, sealed under the master key.

use std::time::Duration;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use serde::{Deserialize, Serialize};

use crate::engine::crypto::{Secret, random_hex, sha256};
use crate::engine::Engine;
use crate::engine::error::EngineError;
use crate::api::facades::Portal;
use crate::domain::ids::Id;
use crate::store::records::{self, RecordKey};

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    pub id: Id,
    /// Lower-case; unique.
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub partner_id: Option<Id>,
    pub created_at_ms: u64,
}

impl std::fmt::Debug for AccountRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountRecord").field("id", &self.id).field("partner_id", &self.partner_id).finish_non_exhaustive()
    }
}

/// `pub(crate)` for the audit, which decodes every stored value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RefreshTokenRecord {
    account_id: Id,
    expires_at_ms: u64,
}

#[derive(Debug)]
pub struct NewAccount {
    pub email: String,
    pub name: String,
    pub password: Secret,
    pub partner_id: Option<Id>,
}

/// How long a refresh token lives.
pub const REFRESH_TOKEN_TTL: Duration = Duration::from_secs(30 * 86_400);
/// The associated data the portal secret is sealed with.
const PORTAL_SECRET_KEY: &[u8] = b"portal_jwt_secret";

fn hash_password(password: &Secret) -> Result<String, EngineError> {
    let salt = argon2::password_hash::generate_salt();
    Argon2::default()
        .hash_password_with_salt(password.expose().as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| EngineError::internal("hashing a password", error))
}

fn password_matches(password: &Secret, hash: &str) -> bool {
    Argon2::default().verify_password(password.expose().as_bytes(), hash).is_ok()
}

/// A password hash for an email no account has: checking against it costs the same time as
/// a real check, so a wrong email is not told apart from a wrong password by timing.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&Secret::new(random_hex(16))).unwrap_or_default())
}

impl Engine {
    fn read_account(&self, key: &RecordKey<AccountRecord>) -> Result<Option<AccountRecord>, EngineError> {
        self.read_record(key, "reading an account")
    }

    /// A slot for one Argon2 computation, or 503 when all are busy (never an unbounded queue).
    fn password_permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, EngineError> {
        self.shared().password_permits.try_acquire().map_err(|_| EngineError::Overloaded { reason: "password_hashing", retry_after_secs: 1 })
    }
}

impl Portal<'_> {
    pub fn get_account(&self, account_id: Id) -> Result<AccountRecord, EngineError> {
        self.engine.read_account(&records::account(account_id))?.ok_or(EngineError::NotFound { resource: "account" })
    }
}

impl Engine {
    fn account_by_email(&self, email: &str) -> Result<Option<AccountRecord>, EngineError> {
        // An entry that is not an id reads as no account, as it always has (the audit flags it).
        let id = match records::account_email(email).get(self.shared().store.as_ref()) {
            Err(records::RecordError::Decode(_)) => None,
            read => read.map_err(|error| EngineError::internal("reading an account email", error))?,
        };
        match id {
            Some(account_id) => self.read_account(&records::account(account_id)),
            None => Ok(None),
        }
    }
}

impl Portal<'_> {
    pub async fn create_account(&self, new_account: NewAccount) -> Result<AccountRecord, EngineError> {
        let email = new_account.email.to_ascii_lowercase();
        if let Some(partner_id) = new_account.partner_id {
            self.engine.partners().get_partner(partner_id)?;
        }
        let password = new_account.password;
        let _permit = self.engine.password_permit()?;
        let password_hash = tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .map_err(|error| EngineError::internal("hashing a password", error))??;
        let _admin = self.engine.inner.admin_lock.lock().await;
        if self.engine.account_by_email(&email)?.is_some() {
            return Err(EngineError::Conflict { message: "an account with this email exists".into() });
        }
        let now_ms = self.engine.clock().now_ms();
        let account = AccountRecord {
            id: self.engine.ids().next(now_ms),
            email,
            name: new_account.name,
            password_hash,
            partner_id: new_account.partner_id,
            created_at_ms: now_ms,
        };
        self.engine.commit_admin(vec![records::account(account.id).put(&account), records::account_email(&account.email).put(&account.id)]).await?;
        Ok(account)
    }

    /// The account with this email and password, or `None` (either was wrong; which one is
    /// not told, not even by timing).
    pub async fn authenticate_account(&self, email: &str, password: Secret) -> Result<Option<AccountRecord>, EngineError> {
        let account = self.engine.account_by_email(&email.to_ascii_lowercase())?;
        let hash = account.as_ref().map_or_else(|| decoy_hash().to_owned(), |account| account.password_hash.clone());
        let _permit = self.engine.password_permit()?;
        let matches = tokio::task::spawn_blocking(move || password_matches(&password, &hash))
            .await
            .map_err(|error| EngineError::internal("checking a password", error))?;
        Ok(account.filter(|_| matches))
    }

    /// Links an account to the partner its first key created.
    pub async fn link_account(&self, account_id: Id, partner_id: Id) -> Result<AccountRecord, EngineError> {
        let _admin = self.engine.inner.admin_lock.lock().await;
        let mut account = self.get_account(account_id)?;
        account.partner_id = Some(partner_id);
        self.engine.commit_admin(vec![records::account(account.id).put(&account)]).await?;
        Ok(account)
    }

    /// A new single-use refresh token for the account.
    pub async fn issue_refresh_token(&self, account_id: Id) -> Result<Secret, EngineError> {
        let token = Secret::new(format!("rt_{}", random_hex(32)));
        let record = RefreshTokenRecord { account_id, expires_at_ms: self.engine.clock().now_ms() + REFRESH_TOKEN_TTL.as_millis() as u64 };
        self.engine.commit_admin(vec![records::refresh_token(&sha256(token.expose().as_bytes())).put(&record)]).await?;
        Ok(token)
    }

    /// Spends a refresh token: answers its account if the token is known and unexpired
    /// (and deletes it either way, so it works once).
    pub async fn redeem_refresh_token(&self, token: &Secret) -> Result<Option<AccountRecord>, EngineError> {
        let key = records::refresh_token(&sha256(token.expose().as_bytes()));
        let _admin = self.engine.inner.admin_lock.lock().await;
        let Some(record) = self.engine.read_record(&key, "reading a refresh token")? else {
            return Ok(None);
        };
        self.engine.commit_admin(vec![key.delete()]).await?;
        if record.expires_at_ms <= self.engine.clock().now_ms() {
            return Ok(None);
        }
        self.engine.read_account(&records::account(record.account_id))
    }

    /// The secret that signs portal access tokens: generated at the first start, kept
    /// sealed under the master key.
    pub async fn portal_signing_secret(&self) -> Result<Secret, EngineError> {
        let key = records::portal_secret();
        let master_key = &self.engine.shared().master_key;
        let read = || key.get_bytes(self.engine.shared().store.as_ref()).map_err(|error| EngineError::internal("reading the portal secret", error));
        let deadline = std::time::Instant::now() + crate::cluster::START_WAIT;
        loop {
            let _admin = self.engine.inner.admin_lock.lock().await;
            if let Some(sealed) = read()? {
                let opened = master_key.open(PORTAL_SECRET_KEY, &sealed).map_err(|error| EngineError::internal("unsealing the portal secret", error))?;
                return String::from_utf8(opened).map(Secret::new).map_err(|error| EngineError::internal("portal secret is not UTF-8", error));
            }
            // In a cluster only the admin shard's holder creates it; the others wait for it.
            if self.engine.holds_admin_shard() || std::time::Instant::now() >= deadline {
                let secret = Secret::new(random_hex(32));
                self.engine.commit_admin(vec![key.put(&master_key.seal(PORTAL_SECRET_KEY, secret.expose().as_bytes()))]).await?;
                return Ok(secret);
            }
            drop(_admin);
            tokio::time::sleep(crate::cluster::START_POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_password(&Secret::new("correct horse battery".into())).expect("hashes");
        assert!(hash.starts_with("$argon2id$"));
        assert!(password_matches(&Secret::new("correct horse battery".into()), &hash));
        assert!(!password_matches(&Secret::new("wrong horse battery".into()), &hash));
        assert!(!password_matches(&Secret::new("correct horse battery".into()), decoy_hash()));
    }
}
