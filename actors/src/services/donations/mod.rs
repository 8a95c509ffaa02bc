//! The nonprofit registry and donations (contract §10).
//!
//! Organizations are operator-managed and global (every partner's widget looks them up by
//! slug). A donation starts `PENDING` when a widget asks for a link, and a provider's signed
//! callback settles it once: `COMPLETED` (emitting `donation.completed` in the partner's
//! feed, decided in the same commit as an announcement) or `FAILED`. Donations move no
//! tokens; a partner that rewards donors submits a `DONATION` action on the event.

mod links;

use serde::{Deserialize, Serialize};
use serde_json::json;

pub use links::{DonationsConfig, LINK_PLACEHOLDERS};

use crate::api::facades::Donations;
use crate::engine::clock::format_timestamp;
use crate::engine::Engine;
use crate::engine::error::EngineError;
use crate::domain::ids::Id;
use crate::store::records;
use crate::domain::model::{PartnerEnv, TipConfig};
use crate::domain::money::{Currency, round_half_up};

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrganizationStatus {
    Active,
    Inactive,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganizationRecord {
    pub id: Id,
    pub name: String,
    pub slug: String,
    pub logo_url: Option<String>,
    pub ein: Option<String>,
    pub status: OrganizationStatus,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

/// An organization's fields; on a patch `None` leaves one, `Some(None)` clears a nullable one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrganizationFields {
    pub name: Option<String>,
    pub logo_url: Option<Option<String>>,
    pub ein: Option<Option<String>>,
    pub status: Option<OrganizationStatus>,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DonationStatus {
    Pending,
    Completed,
    Failed,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Frequency {
    Once,
    Monthly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Provider {
    #[serde(rename = "every.org")]
    EveryOrg,
    #[serde(rename = "stripe")]
    Stripe,
}

impl Provider {
    pub const ALL: [Provider; 2] = [Provider::EveryOrg, Provider::Stripe];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::EveryOrg => "every.org",
            Provider::Stripe => "stripe",
        }
    }

    pub fn parse(text: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|provider| provider.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DonationRecord {
    pub id: Id,
    pub partner_env: PartnerEnv,
    pub organization_slug: String,
    /// Minor units of `currency`.
    pub amount_minor: u64,
    pub currency: String,
    pub frequency: Frequency,
    pub provider: Provider,
    pub donor_email: String,
    pub first_name: String,
    pub last_name: String,
    pub tip_minor: u64,
    pub referral_code: Option<String>,
    pub donation_link: String,
    pub status: DonationStatus,
    pub provider_reference: Option<String>,
    pub created_at_ms: u64,
    pub settled_at_ms: Option<u64>,
}

/// A donation a widget asks a link for, its fields validated by the front.
#[derive(Debug, Clone)]
pub struct NewDonation {
    pub organization_slug: String,
    pub amount_minor: u64,
    pub currency: Currency,
    pub frequency: Frequency,
    pub provider: Provider,
    pub donor_email: String,
    pub first_name: String,
    pub last_name: String,
    pub tip: Tip,
    pub referral_code: Option<String>,
}

/// The donor's tip choice (the front refuses a choice when the partner's tips are off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tip {
    /// The partner's default percent when its tips are on, else none.
    PartnerDefault,
    /// A fixed amount, in minor units.
    Amount(u64),
    /// A percent (0–100) of the donation, rounded half up.
    Percent(u64),
}

impl Tip {
    /// The tip in minor units of a donation of `amount_minor`.
    pub fn minor_units(self, amount_minor: u64, tips: TipConfig) -> u64 {
        let percent = match self {
            Tip::Amount(tip) => return tip,
            Tip::Percent(percent) => percent,
            Tip::PartnerDefault if tips.enabled => u64::from(tips.default_percent),
            Tip::PartnerDefault => return 0,
        };
        assert!(percent <= 100, "a tip percent is at most 100");
        u64::try_from(round_half_up(u128::from(amount_minor) * u128::from(percent), 100)).expect("a percent of an amount is at most the amount")
    }
}

/// What a provider's callback says of a donation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub donation_id: Id,
    pub provider: Provider,
    pub status: DonationStatus,
    pub provider_reference: Option<String>,
}

impl Donations<'_> {
    pub fn get_organization(&self, slug: &str) -> Result<OrganizationRecord, EngineError> {
        self.engine.read_record(&records::organization(slug), "reading an organization")?.ok_or(EngineError::NotFound { resource: "organization" })
    }

    /// Registers a nonprofit under a free slug (`409 CONFLICT` when taken). `fields.name` is set.
    pub async fn create_organization(&self, slug: String, fields: OrganizationFields) -> Result<OrganizationRecord, EngineError> {
        let _admin = self.engine.inner.admin_lock.lock().await;
        match self.get_organization(&slug) {
            Ok(_) => return Err(EngineError::Conflict { message: format!("organization '{slug}' exists") }),
            Err(EngineError::NotFound { .. }) => {}
            Err(error) => return Err(error),
        }
        let now_ms = self.engine.clock().now_ms();
        let mut organization = OrganizationRecord {
            id: self.engine.ids().next(now_ms),
            name: String::new(),
            slug,
            logo_url: None,
            ein: None,
            status: OrganizationStatus::Active,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        };
        apply_organization(&mut organization, fields);
        self.engine.commit_admin(vec![records::organization(&organization.slug).put(&organization)]).await?;
        Ok(organization)
    }

    pub async fn update_organization(&self, slug: &str, fields: OrganizationFields) -> Result<OrganizationRecord, EngineError> {
        let _admin = self.engine.inner.admin_lock.lock().await;
        let mut organization = self.get_organization(slug)?;
        apply_organization(&mut organization, fields);
        organization.updated_at_ms = self.engine.clock().now_ms();
        self.engine.commit_admin(vec![records::organization(&organization.slug).put(&organization)]).await?;
        Ok(organization)
    }

    /// Stores a new `PENDING` donation of `partner_env` with its tip (the partner's default
    /// percent unless the donor chose) and its provider link.
    pub async fn create_donation(&self, partner_env: PartnerEnv, tips: TipConfig, new: NewDonation) -> Result<DonationRecord, EngineError> {
        let now_ms = self.engine.clock().now_ms();
        let tip_minor = new.tip.minor_units(new.amount_minor, tips);
        let mut donation = DonationRecord {
            id: self.engine.ids().next(now_ms),
            partner_env,
            organization_slug: new.organization_slug,
            amount_minor: new.amount_minor,
            currency: new.currency.code().to_owned(),
            frequency: new.frequency,
            provider: new.provider,
            donor_email: new.donor_email,
            first_name: new.first_name,
            last_name: new.last_name,
            tip_minor,
            referral_code: new.referral_code,
            donation_link: String::new(),
            status: DonationStatus::Pending,
            provider_reference: None,
            created_at_ms: now_ms,
            settled_at_ms: None,
        };
        donation.donation_link = links::render_link(self.engine.inner.donation_links.template(donation.provider), &donation);
        self.engine.commit_admin(vec![records::donation(donation.id).put(&donation)]).await?;
        Ok(donation)
    }

    /// A donation as its partner sees it: another partner's or environment's is not found.
    pub fn get_donation(&self, partner_env: PartnerEnv, donation_id: Id) -> Result<DonationRecord, EngineError> {
        let donation = self.engine.read_donation(donation_id)?;
        if donation.partner_env != partner_env {
            return Err(EngineError::NotFound { resource: "donation" });
        }
        Ok(donation)
    }
}

impl Engine {
    fn read_donation(&self, donation_id: Id) -> Result<DonationRecord, EngineError> {
        self.read_record(&records::donation(donation_id), "reading a donation")?.ok_or(EngineError::NotFound { resource: "donation" })
    }
}

impl Donations<'_> {
    /// Settles a pending donation once. The same settlement again answers the donation as it
    /// is (providers retry their callbacks); a different one is `409 CONFLICT`. Completion
    /// records `donation.completed` in the partner's feed, decided in the same commit.
    pub async fn settle_donation(&self, settlement: Settlement) -> Result<DonationRecord, EngineError> {
        assert_ne!(settlement.status, DonationStatus::Pending, "a settlement completes or fails");
        let admin = self.engine.inner.admin_lock.lock().await;
        let mut donation = self.engine.read_donation(settlement.donation_id)?;
        if donation.provider != settlement.provider {
            return Err(EngineError::NotFound { resource: "donation" });
        }
        match donation.status {
            DonationStatus::Pending => {}
            status if status == settlement.status => return Ok(donation),
            status => return Err(EngineError::Conflict { message: format!("the donation is already {status:?}").to_uppercase() }),
        }
        let now_ms = self.engine.clock().now_ms();
        donation.status = settlement.status;
        donation.provider_reference = settlement.provider_reference;
        donation.settled_at_ms = Some(now_ms);
        let mut write_set = vec![records::donation(donation.id).put(&donation)];
        if donation.status == DonationStatus::Completed {
            let data = json!({
                "partnerDonationId": donation.id.to_hex(),
                "nonprofitSlug": donation.organization_slug,
                "amount": donation.amount_minor,
                "currency": donation.currency,
                "frequency": donation.frequency,
                "provider": donation.provider.as_str(),
                "tipAmount": donation.tip_minor,
                "referralCode": donation.referral_code,
                "donorEmail": donation.donor_email,
                "completedAt": format_timestamp(now_ms),
            });
            write_set.push(self.engine.announcement(donation.partner_env, crate::webhooks::EventType::DonationCompleted, &data));
        }
        self.engine.commit_admin(write_set).await?;
        drop(admin);
        if donation.status == DonationStatus::Completed
            && let Err(error) = self.engine.deliver_announcements().await
        {
            // Durable as an announcement: the next housekeeping pass records it.
            tracing::warn!(%error, "donation.completed waits for the next delivery pass");
        }
        Ok(donation)
    }
}

fn apply_organization(organization: &mut OrganizationRecord, fields: OrganizationFields) {
    let OrganizationFields { name, logo_url, ein, status } = fields;
    if let Some(name) = name {
        organization.name = name;
    }
    if let Some(logo_url) = logo_url {
        organization.logo_url = logo_url;
    }
    if let Some(ein) = ein {
        organization.ein = ein;
    }
    if let Some(status) = status {
        organization.status = status;
    }
}

#[cfg(test)]
mod tip_tests {
    use super::*;

    #[test]
    fn a_tip_is_the_donors_choice_else_the_partners_default_when_tips_are_on() {
        let on = TipConfig { enabled: true, default_percent: 15 };
        let off = TipConfig { enabled: false, default_percent: 15 };
        assert_eq!(Tip::Amount(250).minor_units(1_000, on), 250);
        assert_eq!(Tip::Percent(10).minor_units(1_005, on), 101, "100.5 rounds half up");
        assert_eq!(Tip::PartnerDefault.minor_units(1_000, on), 150);
        assert_eq!(Tip::PartnerDefault.minor_units(1_000, off), 0);
        assert_eq!(Tip::Percent(100).minor_units(u64::MAX, on), u64::MAX, "a whole percent of the largest amount fits");
    }
}
