//! Operator-side writes: partners, keys, and engine metadata (the admin token digest).
//!
//! These are rare, so they are serialized by one lock (read, check, write), and they go
//! through the committer like every other write (redb allows one writer). After each write
//! that touches a partner or key, the auth cache is emptied.

use std::time::Duration;

use crate::api::facades::{Partners, Portal};
use crate::engine::Engine;
use crate::engine::error::EngineError;
use crate::domain::ids::Id;
use crate::store::records;
use crate::domain::model::{Environment, Feature, PartnerEnv, PartnerRecord, PartnerStatus, RateLimit, Tier, TipConfig};
use crate::store::WriteOp;

/// A new partner, validated by the front.
#[derive(Debug, Clone)]
pub struct NewPartner {
    pub name: String,
    pub contact_email: String,
    pub legal_entity: Option<String>,
    pub slug: Option<String>,
    pub tier: Tier,
    /// Required with tier CUSTOM, refused with any other (the front checks).
    pub rate_limit: Option<RateLimit>,
    pub stakeholder_types: Option<Vec<String>>,
}

/// A partial update; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct PartnerPatch {
    pub name: Option<String>,
    pub contact_email: Option<String>,
    pub legal_entity: Option<Option<String>>,
    pub status: Option<PartnerStatus>,
    pub tier: Option<Tier>,
    pub rate_limit: Option<RateLimit>,
    pub enabled_features: Option<Vec<Feature>>,
    pub stakeholder_types: Option<Vec<String>>,
    pub ip_allowlist: Option<Vec<crate::domain::cidr::Cidr>>,
    pub allowed_origins: Option<Vec<String>>,
    pub production_approved: Option<bool>,
    pub allow_basic_auth: Option<bool>,
    pub tip_config: Option<TipConfig>,
}

/// Derived slugs try `name`, `name-2`, … up to this suffix before giving up.
const SLUG_SUFFIX_MAX: u32 = 1_000;
/// How long an admin write waits to become durable.
const ADMIN_COMMIT_TIMEOUT: Duration = Duration::from_secs(30);

impl Engine {
    pub(crate) async fn commit_admin(&self, mut write_set: Vec<WriteOp>) -> Result<(), EngineError> {
        self.check_store_writable()?;
        self.check_admin_shard()?;
        // In a cluster, the other nodes' auth caches learn of the change at their next round.
        if self.shared().cluster.is_some() && records::changes_auth(&write_set) {
            write_set.push(records::auth_epoch().put(&self.ids().next(self.clock().now_ms()).as_bytes().to_vec()));
        }
        let receipt = self.shared().committer.submit(write_set, None);
        match tokio::time::timeout(ADMIN_COMMIT_TIMEOUT, receipt.durable()).await {
            Err(_) => Err(EngineError::Timeout),
            // As for actions: a log write can fail after reaching the disk, so the outcome is
            // unknown (504), and the store now refuses writes (503 from the check above).
            Ok(Err(error)) => {
                tracing::error!(%error, "committing an admin write failed");
                Err(EngineError::Timeout)
            }
            Ok(Ok(())) => Ok(()),
        }
    }

    fn slug_taken(&self, slug: &str) -> Result<bool, EngineError> {
        records::partner_slug(slug).exists(self.shared().store.as_ref()).map_err(|error| EngineError::internal("reading a slug", error))
    }
}

impl Partners<'_> {
    pub async fn create_partner(&self, new_partner: NewPartner) -> Result<PartnerRecord, EngineError> {
        let _admin = self.engine.inner.admin_lock.lock().await;
        let partner = self.engine.new_partner_record(new_partner, PartnerStatus::PendingApproval)?;
        self.engine.commit_admin(vec![
            records::partner(partner.id).put(&partner),
            records::partner_slug(&partner.slug).put(&partner.id),
        ])
        .await?;
        Ok(partner)
    }
}

impl Portal<'_> {
    /// The partner of a portal account: the one it is linked to, or (its first key) a new
    /// one, ACTIVE for sandbox work, created and linked in one commit. Serialized, so two
    /// concurrent first keys make one partner.
    pub async fn ensure_account_partner(&self, account_id: Id, new_partner: NewPartner) -> Result<PartnerRecord, EngineError> {
        let _admin = self.engine.inner.admin_lock.lock().await;
        let mut account = self.get_account(account_id)?;
        if let Some(partner_id) = account.partner_id {
            return self.engine.partners().get_partner(partner_id);
        }
        let partner = self.engine.new_partner_record(new_partner, PartnerStatus::Active)?;
        account.partner_id = Some(partner.id);
        self.engine.commit_admin(vec![
            records::partner(partner.id).put(&partner),
            records::partner_slug(&partner.slug).put(&partner.id),
            records::account(account.id).put(&account),
        ])
        .await?;
        Ok(partner)
    }
}

impl Engine {
    /// A partner record with a free slug (the caller holds the admin lock).
    fn new_partner_record(&self, new_partner: NewPartner, status: PartnerStatus) -> Result<PartnerRecord, EngineError> {
        let slug = match &new_partner.slug {
            Some(slug) if self.slug_taken(slug)? => return Err(EngineError::Conflict { message: format!("slug '{slug}' is taken") }),
            Some(slug) => slug.clone(),
            None => self.free_slug(&slugify(&new_partner.name))?,
        };
        let now_ms = self.clock().now_ms();
        let rate_limit = new_partner.tier.default_rate_limit().or(new_partner.rate_limit).unwrap_or(RateLimit { hourly: 1_000, per_minute: 100 });
        let partner = PartnerRecord {
            id: self.ids().next(now_ms),
            name: new_partner.name,
            slug,
            legal_entity: new_partner.legal_entity,
            contact_email: new_partner.contact_email,
            status,
            tier: new_partner.tier,
            rate_limit,
            enabled_features: vec![Feature::Actions, Feature::Donations],
            stakeholder_types: new_partner.stakeholder_types.unwrap_or_else(|| vec!["CUSTOMER".to_owned()]),
            ip_allowlist: Vec::new(),
            allowed_origins: Vec::new(),
            allow_basic_auth: false,
            production_approved: false,
            tip_config: TipConfig { enabled: false, default_percent: 0 },
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        };
        Ok(partner)
    }

    fn free_slug(&self, base: &str) -> Result<String, EngineError> {
        if !self.slug_taken(base)? {
            return Ok(base.to_owned());
        }
        for suffix in 2..=SLUG_SUFFIX_MAX {
            let candidate = format!("{base}-{suffix}");
            if !self.slug_taken(&candidate)? {
                return Ok(candidate);
            }
        }
        Err(EngineError::Conflict { message: format!("no free slug derived from '{base}'; pass one explicitly") })
    }
}

impl Partners<'_> {
    pub async fn update_partner(&self, partner_id: Id, patch: PartnerPatch) -> Result<PartnerRecord, EngineError> {
        let _admin = self.engine.inner.admin_lock.lock().await;
        let mut partner = self.get_partner(partner_id)?;
        if let Some(status) = patch.status
            && !partner.status.may_become(status)
        {
            return Err(EngineError::Conflict { message: format!("a {:?} partner cannot change status", partner.status) });
        }
        let previous_status = partner.status;
        apply_patch(&mut partner, patch);
        partner.updated_at_ms = self.engine.clock().now_ms();
        let mut write_set = vec![records::partner(partner.id).put(&partner)];
        let status_changed = partner.status != previous_status;
        if status_changed {
            // `partner.status_changed` in each environment's feed, decided in this commit.
            let data = serde_json::json!({
                "partnerId": partner.id.to_hex(),
                "previousStatus": previous_status,
                "status": partner.status,
                "changedAt": crate::engine::clock::format_timestamp(partner.updated_at_ms),
            });
            write_set.extend(Environment::ALL.map(|environment| {
                self.engine.announcement(PartnerEnv::new(partner.id, environment), crate::webhooks::EventType::PartnerStatusChanged, &data)
            }));
        }
        let committed = self.engine.commit_admin(write_set).await;
        // Even a commit that timed out may land: never keep serving the old partner from cache.
        self.engine.shared().auth_cache.invalidate();
        committed?;
        drop(_admin);
        if status_changed && let Err(error) = self.engine.deliver_announcements().await {
            tracing::warn!(%error, "partner.status_changed waits for the next housekeeping pass");
        }
        Ok(partner)
    }
}

impl Engine {
    /// The SHA-256 of the admin token, if one was stored at a first start.
    pub fn stored_admin_token_digest(&self) -> Result<Option<[u8; 32]>, EngineError> {
        let bytes = records::admin_token_digest()
            .get_bytes(self.shared().store.as_ref())
            .map_err(|error| EngineError::internal("reading the admin token digest", error))?;
        Ok(bytes.and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok()))
    }

    pub async fn store_admin_token_digest(&self, digest: [u8; 32]) -> Result<(), EngineError> {
        self.commit_admin(vec![records::admin_token_digest().put(&digest.to_vec())]).await
    }
}

fn apply_patch(partner: &mut PartnerRecord, patch: PartnerPatch) {
    let PartnerPatch {
        name,
        contact_email,
        legal_entity,
        status,
        tier,
        rate_limit,
        enabled_features,
        stakeholder_types,
        ip_allowlist,
        allowed_origins,
        production_approved,
        allow_basic_auth,
        tip_config,
    } = patch;
    if let Some(tier) = tier {
        partner.tier = tier;
        if let Some(default) = tier.default_rate_limit() {
            partner.rate_limit = default;
        }
    }
    if partner.tier == Tier::Custom
        && let Some(rate_limit) = rate_limit
    {
        partner.rate_limit = rate_limit;
    }
    macro_rules! replace {
        ($($field:ident),*) => { $( if let Some(value) = $field { partner.$field = value; } )* };
    }
    replace!(
        name,
        contact_email,
        legal_entity,
        status,
        enabled_features,
        stakeholder_types,
        ip_allowlist,
        allowed_origins,
        production_approved,
        allow_basic_auth,
        tip_config
    );
}

/// A URL-safe slug from a display name: lower-case letters and digits joined by single dashes.
pub fn slugify(name: &str) -> String {
    let mut slug = String::with_capacity(name.len());
    for character in name.chars() {
        if character.is_ascii_alphanumeric() {
            slug.push(character.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug: String = slug.trim_end_matches('-').chars().take(48).collect();
    let slug = slug.trim_end_matches('-').to_owned();
    if slug.is_empty() { "partner".to_owned() } else { slug }
}

#[cfg(test)]
mod tests {
    use super::slugify;

    #[test]
    fn slugs_are_lowercase_words_joined_by_dashes() {
        assert_eq!(slugify("Acme Giving, Inc."), "acme-giving-inc");
        assert_eq!(slugify("  ***  "), "partner");
        assert_eq!(slugify("Café Ünïcode"), "caf-n-code");
        assert!(slugify(&"a".repeat(100)).len() <= 48);
    }
}
