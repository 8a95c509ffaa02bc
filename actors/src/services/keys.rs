//! Key pairs: issue, rotate, revoke, update, list, and when each was last used.
//!
//! A pair is a publishable key, a secret key and an HMAC secret. The `pk_` and `sk_` texts
//! are found by their SHA-256 digests; the HMAC secret and the publishable key are sealed
//! under the master key (each with its own associated data). Secrets are shown once, in the
//! creating answer. Every change empties the auth cache, so a revocation is effective on
//! the very next request. Rotation issues a new pair with the same scopes and leaves the
//! old one valid until it is revoked (zero-downtime rotation).

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::api::facades::Keys;
use crate::engine::clock::format_timestamp;
use crate::engine::crypto::{GeneratedKeyPair, sha256};
use crate::engine::Engine;
use crate::engine::error::EngineError;
use crate::domain::ids::Id;
use crate::domain::model::{ApiKeyRecord, Environment, KeyDigestEntry, KeyKind, KeyStatus, ScopeSet};
use crate::store::ScanOrder;
use crate::store::records::{self, PartnerKeyEntry, RecordKey};
use crate::api::views::CreatedKeyView;

/// A key pair to issue.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub environment: Environment,
    pub name: String,
    pub scopes: ScopeSet,
    pub expires_at_ms: Option<u64>,
}

/// A partial update of a key; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct KeyPatch {
    pub name: Option<String>,
    /// `Active` or `Inactive`; revocation is its own, final, operation.
    pub status: Option<KeyStatus>,
    /// `Some(None)` removes the expiry.
    pub expires_at_ms: Option<Option<u64>>,
}

/// Keys one partner may hold (all environments, revoked ones included): a list is one page.
pub const KEYS_PER_PARTNER_MAX: usize = 1_000;

/// Associated data for the sealed publishable key (the HMAC secret uses the bare key id).
fn public_key_aad(key_id: Id) -> Vec<u8> {
    [key_id.as_bytes().as_slice(), b"/pk"].concat()
}

/// When keys were last used, kept in memory and persisted by `flush_key_usage`.
#[derive(Default)]
pub(crate) struct KeyUsage {
    last_used_ms: Mutex<HashMap<Id, u64>>,
}

impl Keys<'_> {
    pub async fn create_api_key(&self, partner_id: Id, new_key: NewKey) -> Result<CreatedKeyView, EngineError> {
        let _admin = self.engine.inner.admin_lock.lock().await;
        self.engine.partners().get_partner(partner_id)?;
        self.engine.issue_key(partner_id, new_key, None).await
    }

    /// A new pair with the old one's scopes, environment, name and expiry; the old pair
    /// stays valid until revoked.
    pub async fn rotate_api_key(&self, partner_id: Id, key_id: Id) -> Result<CreatedKeyView, EngineError> {
        let _admin = self.engine.inner.admin_lock.lock().await;
        let old = self.get_api_key(partner_id, key_id)?;
        if old.status == KeyStatus::Revoked {
            return Err(EngineError::Conflict { message: "a revoked key cannot be rotated".into() });
        }
        let new_key = NewKey { environment: old.environment, name: old.name.clone(), scopes: old.scopes, expires_at_ms: old.expires_at_ms };
        self.engine.issue_key(partner_id, new_key, Some(key_id)).await
    }

    /// Revokes a key at once (idempotent: revoking a revoked key answers it again).
    pub async fn revoke_api_key(&self, partner_id: Id, key_id: Id) -> Result<ApiKeyRecord, EngineError> {
        let _admin = self.engine.inner.admin_lock.lock().await;
        let mut key = self.get_api_key(partner_id, key_id)?;
        if key.status != KeyStatus::Revoked {
            key.status = KeyStatus::Revoked;
            let committed = self.engine.commit_admin(vec![records::api_key(key.id).put(&key)]).await;
            // Even a commit that timed out may land: never keep serving the key from cache.
            self.engine.shared().auth_cache.invalidate();
            committed?;
        }
        self.engine.shared().auth_cache.invalidate();
        Ok(key)
    }

    pub async fn update_api_key(&self, partner_id: Id, key_id: Id, patch: KeyPatch) -> Result<ApiKeyRecord, EngineError> {
        let _admin = self.engine.inner.admin_lock.lock().await;
        let mut key = self.get_api_key(partner_id, key_id)?;
        if key.status == KeyStatus::Revoked {
            return Err(EngineError::Conflict { message: "a revoked key stays revoked".into() });
        }
        if let Some(name) = patch.name {
            key.name = name;
        }
        if let Some(status) = patch.status {
            if status == KeyStatus::Revoked {
                return Err(EngineError::Invalid { field: "status".into(), message: "revoke a key with DELETE".into() });
            }
            key.status = status;
        }
        if let Some(expires_at_ms) = patch.expires_at_ms {
            key.expires_at_ms = expires_at_ms;
            key.expiring_notified = false;
        }
        let committed = self.engine.commit_admin(vec![records::api_key(key.id).put(&key)]).await;
        self.engine.shared().auth_cache.invalidate();
        committed?;
        Ok(key)
    }

    /// One of the partner's keys; another partner's key id is simply not found.
    pub fn get_api_key(&self, partner_id: Id, key_id: Id) -> Result<ApiKeyRecord, EngineError> {
        let key = self.engine.read_record(&records::api_key(key_id), "reading a key")?.ok_or(EngineError::NotFound { resource: "key" })?;
        if key.partner_id != partner_id {
            return Err(EngineError::NotFound { resource: "key" });
        }
        Ok(self.engine.with_usage(key))
    }

    /// The partner's keys, newest first.
    pub fn list_api_keys(&self, partner_id: Id) -> Result<Vec<ApiKeyRecord>, EngineError> {
        let entries = records::partner_keys(partner_id).scan(self.engine.shared().store.as_ref(), ScanOrder::Descending, KEYS_PER_PARTNER_MAX);
        let entries = entries.map_err(|error| EngineError::internal("listing keys", error))?;
        entries.iter().filter_map(|entry| entry.key.key_id()).map(|key_id| self.get_api_key(partner_id, key_id)).collect()
    }

    /// The publishable key of a pair (the portal shows it after a login).
    pub fn publishable_key(&self, key: &ApiKeyRecord) -> Result<String, EngineError> {
        let opened = self
            .engine
            .shared()
            .master_key
            .open(&public_key_aad(key.id), &key.public_key_sealed)
            .map_err(|error| EngineError::internal("unsealing a publishable key", error))?;
        String::from_utf8(opened).map_err(|error| EngineError::internal("publishable key is not UTF-8", error))
    }

    /// Notes that a key was used now (memory only; see `flush_key_usage`).
    pub fn touch_key(&self, key_id: Id) {
        let now_ms = self.engine.clock().now_ms();
        self.engine.shared().key_usage.last_used_ms.lock().insert(key_id, now_ms);
    }

    /// Writes the last-used times gathered in memory to the keys. Runs every minute and at
    /// shutdown, so `lastUsedAt` is exact to about a minute and costs no write per request.
    /// In a cluster only the admin shard's holder writes key records: every other node hands
    /// what it saw to the database (`reward_key_usage`), and the holder folds it in.
    pub async fn flush_key_usage(&self) -> Result<(), EngineError> {
        let mut used: HashMap<Id, u64> = std::mem::take(&mut *self.engine.shared().key_usage.last_used_ms.lock());
        if let Some((store, node_id)) = self.engine.cluster_node() {
            if !self.engine.holds_admin_shard() {
                if used.is_empty() {
                    return Ok(());
                }
                let rows: Vec<(Vec<u8>, u64)> = used.iter().map(|(key_id, used_at_ms)| (key_id.as_bytes().to_vec(), *used_at_ms)).collect();
                if let Err(error) = store.save_key_usage(node_id, &rows) {
                    // Kept for the next tick (merged with what comes meanwhile).
                    let mut pending = self.engine.shared().key_usage.last_used_ms.lock();
                    for (key_id, used_at_ms) in used {
                        let entry = pending.entry(key_id).or_insert(used_at_ms);
                        *entry = (*entry).max(used_at_ms);
                    }
                    return Err(EngineError::internal("handing keys' last use to the database", error));
                }
                return Ok(());
            }
            let others = store.take_key_usage().map_err(|error| EngineError::internal("reading other nodes' key usage", error))?;
            for (key_id, used_at_ms) in others {
                if let Some(key_id) = Id::from_slice(&key_id) {
                    let entry = used.entry(key_id).or_insert(used_at_ms);
                    *entry = (*entry).max(used_at_ms);
                }
            }
        }
        if used.is_empty() {
            return Ok(());
        }
        let _admin = self.engine.inner.admin_lock.lock().await;
        let mut write_set = Vec::with_capacity(used.len());
        for (key_id, used_at_ms) in used {
            let stored = records::api_key(key_id);
            let Some(mut key) = self.engine.read_record(&stored, "reading a key")? else {
                continue;
            };
            key.last_used_at_ms = key.last_used_at_ms.max(Some(used_at_ms));
            write_set.push(stored.put(&key));
        }
        self.engine.commit_admin(write_set).await
    }

    /// Emits `api_key.expiring` once for every active key whose `expiresAt` is within
    /// `notice_ms` from now (and not yet past), then marks it notified. Answers how many.
    /// Scans at most `KEY_SCAN_MAX` keys per call; it runs periodically.
    pub async fn notify_expiring_keys(&self, notice_ms: u64) -> Result<usize, EngineError> {
        const PAGE: usize = 1_000;
        const KEY_SCAN_MAX: usize = 1_000_000;
        let now_ms = self.engine.clock().now_ms();
        let keys = records::api_keys();
        let mut after: Option<RecordKey<ApiKeyRecord>> = None;
        let mut due = Vec::new();
        for _ in 0..KEY_SCAN_MAX / PAGE {
            let page = keys.scan_after(self.engine.shared().store.as_ref(), after.as_ref(), ScanOrder::Ascending, PAGE);
            let page = page.map_err(|error| EngineError::internal("scanning keys", error))?;
            for row in &page {
                let key = row.record().map_err(|error| EngineError::internal("decoding a key", error))?;
                let expiring =
                    key.expires_at_ms.is_some_and(|expires_at_ms| expires_at_ms > now_ms && expires_at_ms <= now_ms.saturating_add(notice_ms));
                if key.status == KeyStatus::Active && !key.expiring_notified && expiring {
                    due.push(key);
                }
            }
            match page.last() {
                Some(last) if page.len() == PAGE => after = Some(last.key.clone()),
                _ => break,
            }
        }
        let mut notified = 0;
        for key in due {
            let _admin = self.engine.inner.admin_lock.lock().await;
            // Re-read under the lock: the key may have changed since the scan.
            let mut current = self.get_api_key(key.partner_id, key.id)?;
            if current.expiring_notified || current.status != KeyStatus::Active || current.expires_at_ms != key.expires_at_ms {
                continue;
            }
            current.expiring_notified = true;
            let data = serde_json::json!({
                "keyId": current.id.prefixed("key_"),
                "name": current.name,
                "environment": current.environment,
                "expiresAt": current.expires_at_ms.map(format_timestamp),
            });
            let announcement = self.engine.announcement(
                crate::domain::model::PartnerEnv::new(current.partner_id, current.environment),
                crate::webhooks::EventType::ApiKeyExpiring,
                &data,
            );
            self.engine.commit_admin(vec![records::api_key(current.id).put(&current), announcement]).await?;
            notified += 1;
        }
        if notified > 0 {
            self.engine.shared().auth_cache.invalidate();
            self.engine.deliver_announcements().await?;
        }
        Ok(notified)
    }
}

impl Engine {
    fn with_usage(&self, mut key: ApiKeyRecord) -> ApiKeyRecord {
        if let Some(used_at_ms) = self.shared().key_usage.last_used_ms.lock().get(&key.id) {
            key.last_used_at_ms = key.last_used_at_ms.max(Some(*used_at_ms));
        }
        key
    }

    async fn issue_key(&self, partner_id: Id, new_key: NewKey, rotated_from: Option<Id>) -> Result<CreatedKeyView, EngineError> {
        let existing = records::partner_keys(partner_id).scan(self.shared().store.as_ref(), ScanOrder::Ascending, KEYS_PER_PARTNER_MAX);
        if existing.map_err(|error| EngineError::internal("counting keys", error))?.len() >= KEYS_PER_PARTNER_MAX {
            return Err(EngineError::Conflict { message: format!("a partner may hold at most {KEYS_PER_PARTNER_MAX} keys; revoked ones count") });
        }
        let now_ms = self.clock().now_ms();
        let key_id = self.ids().next(now_ms);
        let pair = GeneratedKeyPair::generate(new_key.environment);
        let last4 = |text: &str| text[text.len() - 4..].to_owned();
        let master_key = &self.shared().master_key;
        let record = ApiKeyRecord {
            id: key_id,
            partner_id,
            environment: new_key.environment,
            name: new_key.name.clone(),
            public_key_digest: sha256(pair.public_key.as_bytes()),
            secret_key_digest: sha256(pair.secret_key.expose().as_bytes()),
            public_key_last4: last4(&pair.public_key),
            secret_key_last4: last4(pair.secret_key.expose()),
            hmac_secret_sealed: master_key.seal(key_id.as_bytes(), pair.hmac_secret.expose().as_bytes()),
            public_key_sealed: master_key.seal(&public_key_aad(key_id), pair.public_key.as_bytes()),
            scopes: new_key.scopes,
            status: KeyStatus::Active,
            expires_at_ms: new_key.expires_at_ms,
            created_at_ms: now_ms,
            rotated_from,
            last_used_at_ms: None,
            expiring_notified: false,
        };
        let digest_entry = |kind| KeyDigestEntry { key_id, kind };
        self.commit_admin(vec![
            records::api_key(key_id).put(&record),
            records::key_digest(&record.public_key_digest).put(&digest_entry(KeyKind::Publishable)),
            records::key_digest(&record.secret_key_digest).put(&digest_entry(KeyKind::Secret)),
            records::partner_key(partner_id, key_id).put(&PartnerKeyEntry),
        ])
        .await?;
        self.shared().auth_cache.invalidate();
        Ok(CreatedKeyView {
            id: key_id.prefixed("key_"),
            partner_id: partner_id.to_hex(),
            name: new_key.name,
            environment: new_key.environment,
            public_key: pair.public_key,
            secret_key: pair.secret_key.expose().to_owned(),
            hmac_secret: pair.hmac_secret.expose().to_owned(),
            scopes: new_key.scopes.to_vec(),
            expires_at: new_key.expires_at_ms.map(format_timestamp),
            created_at: format_timestamp(now_ms),
            rotated_from: rotated_from.map(|id| id.prefixed("key_")),
        })
    }
}
