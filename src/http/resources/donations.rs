//! Widget routes for giving (contract §10): nonprofit lookup, donation links built from each
//! provider's URL template, donation status, and the providers' signed callbacks that settle
//! a donation (`donation.completed`).
//!
//! The widget routes take the publishable key from browsers (CORS as for
//! `/v1/partner/config`). A provider signs its callback exactly like a partner signs a
//! request (contract §3: `X-Timestamp`, `X-Signature` over timestamp, method, path and body
//! hash) with the secret it shares with us (`REWARD_PROVIDER_SECRET_EVERY_ORG`,
//! `REWARD_PROVIDER_SECRET_STRIPE`); a provider without a secret has no callback route.

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use reward_actors::api::common::Feature;
use reward_actors::api::common::Id;
use reward_actors::api::common::Secret;
use reward_actors::api::common::{Currency, TOKENS_MAX};
use reward_actors::api::donations::{DonationStatus, Frequency, NewDonation, OrganizationStatus, Provider, Settlement, Tip};
use reward_actors::api::donations::{DonationStatusView, OrganizationView};
use reward_actors::api::partners::PartnerRecord;
use serde::Serialize;

use crate::http::auth::{Access, Authorized, unguarded};
use crate::http::cors::{allow_origin, widget_answer};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{PathSegment, RawRequest};
use crate::http::fields::Fields;
use crate::http::parse::{email, enum_field, is_slug, organization_slug};
use crate::http::routes::{Guard, Route};
use crate::http::{AppState, json_response, sorted_json_response};
use crate::signing;

/// The longest referral code a link carries.
const REFERRAL_CHARS_MAX: usize = 64;
/// The longest provider reference a callback may record.
const PROVIDER_REFERENCE_CHARS_MAX: usize = 255;

/// The providers' callback secrets.
pub struct DonationSettings {
    pub provider_secrets: Vec<(Provider, Secret)>,
}

impl DonationSettings {
    fn secret(&self, provider: Provider) -> Option<&Secret> {
        self.provider_secrets.iter().find(|(candidate, _)| *candidate == provider).map(|(_, secret)| secret)
    }
}

pub fn routes() -> Vec<Route> {
    let giving = Guard::Key(Access::widget().with_feature(Feature::Donations));
    vec![
        Route::get("/v1/partner/organizations/{slug}", Guard::Key(Access::widget()), get_organization),
        Route::preflight("/v1/partner/organizations/{slug}"),
        Route::post("/v1/partner/donations/create-link", giving, create_link),
        Route::preflight("/v1/partner/donations/create-link"),
        Route::get("/v1/partner/donations/status/{donation_id}", giving, donation_status),
        Route::preflight("/v1/partner/donations/status/{donation_id}"),
        Route::post("/v1/providers/{provider}/events", Guard::Provider, provider_event),
    ]
}

async fn get_organization(State(state): State<AppState>, PathSegment(slug): PathSegment, Authorized { caller, request }: Authorized) -> Response {
    let answer = async {
        let organization = state.engine.donations().get_organization(organization_slug(&slug)?)?;
        let mut response = json_response(StatusCode::OK, &OrganizationView::from(&organization));
        allow_origin(caller.partner(), &request.headers, response.headers_mut());
        Ok(response)
    };
    widget_answer(&request, answer.await)
}

async fn donation_status(
    State(state): State<AppState>,
    PathSegment(donation_id): PathSegment,
    Authorized { caller, request }: Authorized,
) -> Response {
    let answer = async {
        let donation_id = Id::parse_hex(&donation_id).ok_or_else(|| ApiError::not_found("donation not found"))?;
        let donation = state.engine.donations().get_donation(caller.partner_env(), donation_id)?;
        let mut response = json_response(StatusCode::OK, &DonationStatusView::from(&donation));
        allow_origin(caller.partner(), &request.headers, response.headers_mut());
        Ok(response)
    };
    widget_answer(&request, answer.await)
}

/// The answer to a link's creation.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DonationLink {
    donation_link: String,
    #[schemars(with = "reward_actors::api::schema::HexId")]
    partner_donation_id: String,
}

/// `POST /v1/partner/donations/create-link` → 201 `{donationLink, partnerDonationId}`.
async fn create_link(State(state): State<AppState>, Authorized { caller, request }: Authorized) -> Response {
    let answer = async {
        request.require_json()?;
        let new = parse_donation(&request.body, caller.partner(), &state)?;
        let donation = state.engine.donations().create_donation(caller.partner_env(), caller.partner().tip_config, new).await?;
        let body = DonationLink { donation_link: donation.donation_link, partner_donation_id: donation.id.to_hex() };
        let mut response = sorted_json_response(StatusCode::CREATED, &body);
        allow_origin(caller.partner(), &request.headers, response.headers_mut());
        Ok(response)
    };
    widget_answer(&request, answer.await)
}

fn parse_donation(body: &[u8], partner: &PartnerRecord, state: &AppState) -> ApiResult<NewDonation> {
    let mut fields = Fields::parse(body)?;
    let organization = fields.string("nonprofitSlug", true, crate::http::parse::SLUG_CHARS_MAX).filter(|slug| {
        let active = is_slug(slug)
            && state.engine.donations().get_organization(slug).is_ok_and(|organization| organization.status == OrganizationStatus::Active);
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
    let tip = match (tip_amount, tip_percent) {
        (Some(amount), _) => Tip::Amount(amount),
        (None, Some(percent)) => Tip::Percent(percent),
        (None, None) => Tip::PartnerDefault,
    };
    Ok(NewDonation { organization_slug, amount_minor, currency, frequency, provider, donor_email, first_name, last_name, tip, referral_code })
}

/// A provider's callback whose signature checked out, on a route whose table entry says
/// `Guard::Provider`: the provider signs exactly as a partner does (contract §3), with the
/// secret it shares with us; a provider without a secret has no callback route (404).
pub struct ProviderCallback {
    pub provider: Provider,
    pub request: RawRequest,
}

impl FromRequest<AppState> for ProviderCallback {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<ProviderCallback, ApiError> {
        let guard = request.extensions().get::<Guard>().copied();
        let (mut parts, body) = request.into_parts();
        let PathSegment(provider) = PathSegment::<String>::from_request_parts(&mut parts, state).await?;
        let request = RawRequest::from_request(Request::from_parts(parts, body), state).await?;
        if !matches!(guard, Some(Guard::Provider)) {
            return Err(unguarded(&request));
        }
        let provider = Provider::parse(&provider).ok_or_else(|| ApiError::not_found("no such provider"))?;
        let secret = state.donations.secret(provider).ok_or_else(|| ApiError::not_found("callbacks from this provider are not configured"))?;
        let missing = || ApiError::unauthorized("MISSING_SIGNATURE", "X-Timestamp and X-Signature are required");
        let timestamp = request.header("x-timestamp").ok_or_else(missing)?;
        let signature = request.header("x-signature").filter(|value| !value.is_empty()).ok_or_else(missing)?;
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
        Ok(ProviderCallback { provider, request })
    }
}

/// `POST /v1/providers/:provider/events {partnerDonationId, status: COMPLETED|FAILED,
/// providerReference?}`, signed by the provider: settles the donation once.
async fn provider_event(State(state): State<AppState>, ProviderCallback { provider, request }: ProviderCallback) -> ApiResult<Response> {
    request.require_json()?;
    let mut fields = Fields::parse(&request.body)?;
    let donation_id = crate::http::parse::hex_id(&mut fields, "partnerDonationId", true);
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
    let donation = state.engine.donations().settle_donation(Settlement { donation_id, provider, status, provider_reference }).await?;
    Ok(json_response(StatusCode::OK, &DonationStatusView::from(&donation)))
}
