//! Widget routes for giving (contract §10): nonprofit lookup, donation links built from each
//! provider's URL template, donation status, and the providers' signed callbacks that settle
//! a donation (`donation.completed`).
//!
//! The widget routes take the publishable key from browsers (CORS as for
//! `/v1/partner/config`). A provider signs its callback exactly like a partner signs a
//! request (contract §3: `X-Timestamp`, `X-Signature` over timestamp, method, path and body
//! hash) with the secret it shares with us (`REWARD_PROVIDER_SECRET_EVERY_ORG`,
//! `REWARD_PROVIDER_SECRET_STRIPE`); a provider without a secret has no callback route.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use reward_actors::crypto::Secret;
use reward_actors::donations::{DonationRecord, DonationStatus, Frequency, OrganizationStatus, Provider, Settlement};
use reward_actors::ids::Id;
use reward_actors::model::{Feature, PartnerRecord};
use reward_actors::money::{Currency, Money, TOKENS_MAX, round_half_up};
use reward_actors::views::{DonationStatusView, OrganizationView};
use serde_json::json;

use super::admin::organizations::organization_slug;
use super::auth::{Access, authorize};
use super::error::{ApiError, ApiResult};
use super::extract::{PathSegment, RawRequest};
use super::fields::Fields;
use super::parse::{email, enum_field, is_slug};
use super::partner::{allow_origin, widget_answer};
use super::{AppState, json_response};
use crate::signing;

/// The longest referral code a link carries.
const REFERRAL_CHARS_MAX: usize = 64;
/// The longest provider reference a callback may record.
const PROVIDER_REFERENCE_CHARS_MAX: usize = 255;

/// Link templates and callback secrets, per provider.
pub struct DonationSettings {
    pub templates: Vec<(Provider, String)>,
    pub provider_secrets: Vec<(Provider, Secret)>,
}

impl DonationSettings {
    fn template(&self, provider: Provider) -> &str {
        self.templates.iter().find(|(candidate, _)| *candidate == provider).map_or("", |(_, template)| template.as_str())
    }

    fn secret(&self, provider: Provider) -> Option<&Secret> {
        self.provider_secrets.iter().find(|(candidate, _)| *candidate == provider).map(|(_, secret)| secret)
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/partner/organizations/{slug}", get(get_organization).options(super::partner::preflight))
        .route("/v1/partner/donations/create-link", post(create_link).options(super::partner::preflight))
        .route("/v1/partner/donations/status/{donation_id}", get(donation_status).options(super::partner::preflight))
        .route("/v1/providers/{provider}/events", post(provider_event))
}

async fn get_organization(State(state): State<AppState>, PathSegment(slug): PathSegment, request: RawRequest) -> Response {
    let answer = async {
        let caller = authorize(&state, &request, Access::widget())?;
        let organization = state.engine.get_organization(organization_slug(&slug)?)?;
        let mut response = json_response(StatusCode::OK, &OrganizationView::from(&organization));
        allow_origin(caller.partner(), &request.headers, response.headers_mut());
        Ok(response)
    };
    widget_answer(&request, answer.await)
}

async fn donation_status(State(state): State<AppState>, PathSegment(donation_id): PathSegment, request: RawRequest) -> Response {
    let answer = async {
        let caller = authorize(&state, &request, Access::widget().with_feature(Feature::Donations))?;
        let donation_id = Id::parse_hex(&donation_id).ok_or_else(|| ApiError::not_found("donation not found"))?;
        let donation = state.engine.get_donation(caller.partner_env(), donation_id)?;
        let mut response = json_response(StatusCode::OK, &DonationStatusView::from(&donation));
        allow_origin(caller.partner(), &request.headers, response.headers_mut());
        Ok(response)
    };
    widget_answer(&request, answer.await)
}

/// `POST /v1/partner/donations/create-link` → 201 `{donationLink, partnerDonationId}`.
async fn create_link(State(state): State<AppState>, request: RawRequest) -> Response {
    let answer = async {
        let caller = authorize(&state, &request, Access::widget().with_feature(Feature::Donations))?;
        request.require_json()?;
        let now_ms = state.engine.clock().now_ms();
        let mut donation = parse_donation(&request.body, caller.partner(), &state, now_ms)?;
        donation.partner_env = caller.partner_env();
        donation.donation_link = render_link(state.donations.template(donation.provider), &donation);
        let donation = state.engine.create_donation(donation).await?;
        let body = json!({ "donationLink": donation.donation_link, "partnerDonationId": donation.id.to_hex() });
        let mut response = json_response(StatusCode::CREATED, &body);
        allow_origin(caller.partner(), &request.headers, response.headers_mut());
        Ok(response)
    };
    widget_answer(&request, answer.await)
}

fn parse_donation(body: &[u8], partner: &PartnerRecord, state: &AppState, now_ms: u64) -> ApiResult<DonationRecord> {
    let mut fields = Fields::parse(body)?;
    let organization = fields.string("nonprofitSlug", true, super::parse::SLUG_CHARS_MAX).filter(|slug| {
        let active = is_slug(slug) && state.engine.get_organization(slug).is_ok_and(|organization| organization.status == OrganizationStatus::Active);
        if !active {
            fields.error("nonprofitSlug", format!("'{slug}' names no active organization"));
        }
        active
    });
    let amount = fields.unsigned("amount", true, TOKENS_MAX).filter(|amount| {
        if *amount == 0 {
            fields.error("amount", "must be at least 1 (minor units)");
        }
        *amount > 0
    });
    let currency = fields.string("currency", true, 3).and_then(|code| {
        let currency = Currency::from_code(&code);
        if currency.is_none() {
            fields.error("currency", format!("'{code}' is not an ISO 4217 currency code we accept"));
        }
        currency
    });
    let frequency = enum_field::<Frequency>(&mut fields, "frequency", "once or monthly");
    let provider = fields.string("provider", true, 16).and_then(|text| {
        let provider = Provider::parse(&text);
        if provider.is_none() {
            fields.error("provider", "must be every.org or stripe");
        }
        provider
    });
    let donor_email = email(&mut fields, "donorEmail", true);
    let first_name = fields.string("firstName", true, state.settings.name_chars_max);
    let last_name = fields.string("lastName", true, state.settings.name_chars_max);
    let tip_amount = fields.unsigned("tipAmount", false, TOKENS_MAX);
    let tip_percent = fields.unsigned("tipPercent", false, 100);
    let referral_code = fields.string("referralCode", false, REFERRAL_CHARS_MAX);
    let tips = partner.tip_config;
    if (tip_amount.is_some() || tip_percent.is_some()) && !tips.enabled {
        fields.error(if tip_amount.is_some() { "tipAmount" } else { "tipPercent" }, "tips are not enabled for this partner");
    }
    if tip_amount.is_some() && tip_percent.is_some() {
        fields.error("tipPercent", "cannot be combined with tipAmount");
    }
    if frequency.is_none() && fields.errors.iter().all(|error| error.field != "frequency") {
        fields.error("frequency", "is required");
    }
    fields.finish()?;
    let (
        Some(organization_slug),
        Some(amount_minor),
        Some(currency),
        Some(frequency),
        Some(provider),
        Some(donor_email),
        Some(first_name),
        Some(last_name),
    ) = (organization, amount, currency, frequency, provider, donor_email, first_name, last_name)
    else {
        return Err(ApiError::field("body", "is invalid"));
    };
    let percent = tip_percent.or((tips.enabled && tip_amount.is_none()).then_some(u64::from(tips.default_percent)));
    let tip_minor = match (tip_amount, percent) {
        (Some(tip), _) => tip,
        (None, Some(percent)) => {
            u64::try_from(round_half_up(u128::from(amount_minor) * u128::from(percent), 100)).expect("a percent of a bounded amount")
        }
        (None, None) => 0,
    };
    Ok(DonationRecord {
        id: state.engine.ids().next(now_ms),
        partner_env: reward_actors::model::PartnerEnv::new(partner.id, reward_actors::model::Environment::Sandbox),
        organization_slug,
        amount_minor,
        currency: currency.code().to_owned(),
        frequency,
        provider,
        donor_email,
        first_name,
        last_name,
        tip_minor,
        referral_code,
        donation_link: String::new(),
        status: DonationStatus::Pending,
        provider_reference: None,
        created_at_ms: now_ms,
        settled_at_ms: None,
    })
}

/// Fills a provider's template, percent-encoding every value.
fn render_link(template: &str, donation: &DonationRecord) -> String {
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

/// `POST /v1/providers/:provider/events {partnerDonationId, status: COMPLETED|FAILED,
/// providerReference?}`, signed by the provider: settles the donation once.
async fn provider_event(State(state): State<AppState>, PathSegment(provider): PathSegment, request: RawRequest) -> ApiResult<Response> {
    let provider = Provider::parse(&provider).ok_or_else(|| ApiError::not_found("no such provider"))?;
    let secret = state.donations.secret(provider).ok_or_else(|| ApiError::not_found("callbacks from this provider are not configured"))?;
    let timestamp =
        request.header("x-timestamp").ok_or_else(|| ApiError::unauthorized("MISSING_SIGNATURE", "X-Timestamp and X-Signature are required"))?;
    let signature = request.header("x-signature").filter(|value| !value.is_empty());
    let signature = signature.ok_or_else(|| ApiError::unauthorized("MISSING_SIGNATURE", "X-Timestamp and X-Signature are required"))?;
    let now_secs = state.engine.clock().now_ms() / 1000;
    let window = state.settings.signature_window_secs;
    let in_window = timestamp.parse::<u64>().is_ok_and(|sent| sent.abs_diff(now_secs) <= window);
    if !in_window {
        return Err(ApiError::unauthorized(
            "TIMESTAMP_OUT_OF_RANGE",
            format!("X-Timestamp must be Unix seconds within {window} s of the server clock"),
        ));
    }
    if !signing::verify(secret.expose(), timestamp, request.method.as_str(), &request.path_and_query, &request.body, signature) {
        return Err(ApiError::unauthorized("INVALID_SIGNATURE", "the signature does not match"));
    }
    request.require_json()?;
    let mut fields = Fields::parse(&request.body)?;
    let donation_id = super::parse::hex_id(&mut fields, "partnerDonationId", true);
    let status = fields.string("status", true, 16).and_then(|text| {
        let status = match text.as_str() {
            "COMPLETED" => Some(DonationStatus::Completed),
            "FAILED" => Some(DonationStatus::Failed),
            _ => None,
        };
        if status.is_none() {
            fields.error("status", "must be COMPLETED or FAILED");
        }
        status
    });
    let provider_reference = fields.string("providerReference", false, PROVIDER_REFERENCE_CHARS_MAX);
    fields.finish()?;
    let (Some(donation_id), Some(status)) = (donation_id, status) else {
        return Err(ApiError::field("body", "is invalid"));
    };
    let donation = state.engine.settle_donation(Settlement { donation_id, provider, status, provider_reference }).await?;
    Ok(json_response(StatusCode::OK, &DonationStatusView::from(&donation)))
}

#[cfg(test)]
mod tests {
    use reward_actors::model::{Environment, PartnerEnv};

    use super::*;
    use crate::config::DonationsConfig;

    #[test]
    fn links_fill_every_placeholder_percent_encoded() {
        let ids = reward_actors::ids::IdGenerator::new();
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
