//! Donation links: each provider's URL template (`[donations]`), checked at load and filled
//! for a new donation, every value percent-encoded.

use serde::{Deserialize, Serialize};

use super::{DonationRecord, Provider};
use crate::services::donations::Frequency;
use crate::engine::error::InvalidSetting;
use crate::domain::money::{Currency, Money};

/// Donation links (contract §10): each provider's URL template. Placeholders, each
/// percent-encoded: `{nonprofitSlug}`, `{amount}` (minor units), `{amountDecimal}`,
/// `{currency}`, `{frequency}` (`once`/`monthly`), `{frequencyUpper}`, `{partnerDonationId}`,
/// `{donorEmail}`, `{firstName}`, `{lastName}`, `{tipAmount}`, `{referralCode}`. The providers'
/// callback secrets are not configuration: `REWARD_PROVIDER_SECRET_EVERY_ORG` and
/// `REWARD_PROVIDER_SECRET_STRIPE`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DonationsConfig {
    pub every_org_link_template: String,
    pub stripe_link_template: String,
}

impl Default for DonationsConfig {
    fn default() -> Self {
        DonationsConfig {
            every_org_link_template: "https://www.every.org/{nonprofitSlug}#/donate/card?amount={amountDecimal}&currency={currency}&frequency={frequencyUpper}&partner_donation_id={partnerDonationId}&email={donorEmail}&first_name={firstName}&last_name={lastName}".into(),
            stripe_link_template: "https://donate.stripe.com/pay?nonprofit={nonprofitSlug}&amount={amount}&currency={currency}&interval={frequency}&client_reference_id={partnerDonationId}&prefilled_email={donorEmail}".into(),
        }
    }
}

/// The placeholders a donation link template may use.
pub const LINK_PLACEHOLDERS: [&str; 12] = [
    "nonprofitSlug",
    "amount",
    "amountDecimal",
    "currency",
    "frequency",
    "frequencyUpper",
    "partnerDonationId",
    "donorEmail",
    "firstName",
    "lastName",
    "tipAmount",
    "referralCode",
];

impl DonationsConfig {
    /// Both templates are valid ([`DonationsConfig::check_template`]).
    pub fn check(&self) -> Result<(), InvalidSetting> {
        DonationsConfig::check_template("every_org_link_template", &self.every_org_link_template)?;
        DonationsConfig::check_template("stripe_link_template", &self.stripe_link_template)
    }

    /// The link template of `provider`.
    pub(crate) fn template(&self, provider: Provider) -> &str {
        match provider {
            Provider::EveryOrg => &self.every_org_link_template,
            Provider::Stripe => &self.stripe_link_template,
        }
    }

    /// A template is an http(s) URL whose `{placeholders}` are all known.
    pub fn check_template(name: &str, template: &str) -> Result<(), InvalidSetting> {
        let refused = |message: String| InvalidSetting::new(format!("donations.{name}"), message);
        if !(template.starts_with("https://") || template.starts_with("http://")) {
            return Err(refused(format!("donations.{name} must be an http(s) URL")));
        }
        let mut rest = template;
        while let Some(start) = rest.find('{') {
            let Some(length) = rest[start..].find('}') else {
                return Err(refused(format!("donations.{name} has an unclosed '{{'")));
            };
            let placeholder = &rest[start + 1..start + length];
            if !LINK_PLACEHOLDERS.contains(&placeholder) {
                let known = LINK_PLACEHOLDERS.join(", ");
                return Err(refused(format!("donations.{name} uses unknown placeholder {{{placeholder}}} (known: {known})")));
            }
            rest = &rest[start + length + 1..];
        }
        Ok(())
    }
}

/// Fills a provider's template, percent-encoding every value.
pub(crate) fn render_link(template: &str, donation: &DonationRecord) -> String {
    let currency = Currency::from_code(&donation.currency).expect("validated");
    let frequency = match donation.frequency {
        Frequency::Once => "once",
        Frequency::Monthly => "monthly",
    };
    let value = |placeholder: &str| -> String {
        match placeholder {
            "nonprofitSlug" => donation.organization_slug.clone(),
            "amount" => donation.amount_minor.to_string(),
            "amountDecimal" => Money { minor: donation.amount_minor, currency }.to_decimal_text(),
            "currency" => donation.currency.clone(),
            "frequency" => frequency.to_owned(),
            "frequencyUpper" => frequency.to_ascii_uppercase(),
            "partnerDonationId" => donation.id.to_hex(),
            "donorEmail" => donation.donor_email.clone(),
            "firstName" => donation.first_name.clone(),
            "lastName" => donation.last_name.clone(),
            "tipAmount" => donation.tip_minor.to_string(),
            "referralCode" => donation.referral_code.clone().unwrap_or_default(),
            _ => String::new(),
        }
    };
    let mut link = String::with_capacity(template.len() + 128);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let Some(length) = rest[start..].find('}') else { break };
        link.push_str(&rest[..start]);
        link.extend(form_urlencoded::byte_serialize(value(&rest[start + 1..start + length]).as_bytes()));
        rest = &rest[start + length + 1..];
    }
    link.push_str(rest);
    link
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::donations::{DonationStatus, Frequency};
    use crate::domain::model::{Environment, PartnerEnv};

    #[test]
    fn links_fill_every_placeholder_percent_encoded() {
        let ids = crate::domain::ids::IdGenerator::new();
        let donation = DonationRecord {
            id: ids.next(1),
            partner_env: PartnerEnv::new(ids.next(1), Environment::Sandbox),
            organization_slug: "save-the-bees".into(),
            amount_minor: 2_550,
            currency: "USD".into(),
            frequency: Frequency::Monthly,
            provider: Provider::EveryOrg,
            donor_email: "jane+gifts@example.com".into(),
            first_name: "Jane Q".into(),
            last_name: "O'Neil".into(),
            tip_minor: 255,
            referral_code: None,
            donation_link: String::new(),
            status: DonationStatus::Pending,
            provider_reference: None,
            created_at_ms: 1,
            settled_at_ms: None,
        };
        let link = render_link(
            "https://give.example/{nonprofitSlug}?a={amountDecimal}&m={amount}&f={frequencyUpper}&e={donorEmail}&n={firstName}&r={referralCode}",
            &donation,
        );
        assert_eq!(link, "https://give.example/save-the-bees?a=25.5&m=2550&f=MONTHLY&e=jane%2Bgifts%40example.com&n=Jane+Q&r=");
        let defaults = DonationsConfig::default();
        assert!(DonationsConfig::check_template("every", &defaults.every_org_link_template).is_ok());
        assert!(DonationsConfig::check_template("stripe", &defaults.stripe_link_template).is_ok());
        assert!(DonationsConfig::check_template("x", "https://x/{nope}").is_err());
        assert!(DonationsConfig::check_template("x", "ftp://x/").is_err());
        assert!(DonationsConfig::check_template("x", "https://x/{amount").is_err());
    }
}
