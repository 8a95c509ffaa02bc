//! Key lookup for authentication, with a bounded in-memory cache.
//!
//! A presented `pk_`/`sk_` text is hashed; the digest finds the key record, its partner,
//! and (after unsealing) the HMAC secret. The front then checks timestamp, signature, key
//! state and partner status in the contract's order. Every admin write that touches keys
//! or partners empties the cache, so a revocation is effective on the very next request.
//! An epoch counter stops a lookup that raced such a write from caching what it read.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use crate::engine::crypto::{Secret, key_environment, sha256};
use crate::engine::Engine;
use crate::engine::error::EngineError;
use crate::api::facades::Keys;
use crate::domain::ids::Id;
use crate::domain::model::{KeyKind, KeyStatus, PartnerEnv, PartnerRecord, ScopeSet};
use crate::store::records;

/// Everything the front needs to authenticate and authorize a request made with a key.
#[derive(Debug)]
pub struct KeyContext {
    pub key_id: Id,
    pub kind: KeyKind,
    /// The pair's publishable key digest: Basic auth presents `pk:sk` and both must match.
    pub public_key_digest: [u8; 32],
    pub partner_env: PartnerEnv,
    pub scopes: ScopeSet,
    pub status: KeyStatus,
    pub expires_at_ms: Option<u64>,
    pub hmac_secret: Secret,
    pub partner: Arc<PartnerRecord>,
}

pub(crate) struct AuthCache {
    entries: RwLock<HashMap<[u8; 32], Arc<KeyContext>>>,
    epoch: AtomicU64,
    entries_max: usize,
}

impl AuthCache {
    pub fn new(entries_max: usize) -> AuthCache {
        AuthCache { entries: RwLock::new(HashMap::new()), epoch: AtomicU64::new(0), entries_max }
    }

    /// Empties the cache; lookups that started before this will not cache their result.
    pub fn invalidate(&self) {
        let mut entries = self.entries.write();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    fn get(&self, digest: &[u8; 32]) -> Option<Arc<KeyContext>> {
        self.entries.read().get(digest).cloned()
    }

    fn insert_if_current(&self, digest: [u8; 32], context: Arc<KeyContext>, epoch_at_read: u64) {
        let mut entries = self.entries.write();
        if self.epoch.load(Ordering::Acquire) != epoch_at_read {
            return;
        }
        if entries.len() >= self.entries_max {
            entries.clear();
        }
        entries.insert(digest, context);
    }
}

impl Keys<'_> {
    /// Finds the key a request presents. `Ok(None)`: no such key (401 INVALID_API_KEY).
    pub fn lookup_key(&self, presented: &str) -> Result<Option<Arc<KeyContext>>, EngineError> {
        let Some((environment, kind)) = key_environment(presented) else {
            return Ok(None);
        };
        let shared = self.engine.shared();
        let digest = sha256(presented.as_bytes());
        if let Some(context) = shared.auth_cache.get(&digest) {
            return Ok(Some(context));
        }
        let epoch = shared.auth_cache.epoch.load(Ordering::Acquire);
        let Some(context) = self.engine.load_key_context(&digest, environment, kind)? else {
            return Ok(None);
        };
        let context = Arc::new(context);
        shared.auth_cache.insert_if_current(digest, Arc::clone(&context), epoch);
        Ok(Some(context))
    }
}

impl Engine {
    fn load_key_context(&self, digest: &[u8; 32], environment: crate::domain::model::Environment, kind: KeyKind) -> Result<Option<KeyContext>, EngineError> {
        let Some(entry) = self.read_record(&records::key_digest(digest), "reading a key digest")? else {
            return Ok(None);
        };
        let Some(key) = self.read_record(&records::api_key(entry.key_id), "reading a key")? else {
            return Ok(None);
        };
        if key.environment != environment || entry.kind != kind {
            return Ok(None);
        }
        let Some(partner) = self.read_record(&records::partner(key.partner_id), "reading a partner")? else {
            return Ok(None);
        };
        let hmac_secret = self
            .shared()
            .master_key
            .open(key.id.as_bytes(), &key.hmac_secret_sealed)
            .map_err(|error| EngineError::internal("unsealing an HMAC secret", error))?;
        let hmac_secret = String::from_utf8(hmac_secret).map_err(|error| EngineError::internal("HMAC secret is not UTF-8", error))?;
        Ok(Some(KeyContext {
            key_id: key.id,
            kind,
            public_key_digest: key.public_key_digest,
            partner_env: PartnerEnv::new(key.partner_id, key.environment),
            scopes: key.scopes,
            status: key.status,
            expires_at_ms: key.expires_at_ms,
            hmac_secret: Secret::new(hmac_secret),
            partner: Arc::new(partner),
        }))
    }
}
