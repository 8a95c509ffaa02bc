//! Error answers: every failure is `{"statusCode","code","message","requestId","details"}`
//! with a stable `code` (contract §11). [`ApiError::from`] on an engine error is the one
//! table from engine outcomes to HTTP statuses; internal errors become an opaque 500.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use reward_actors::EngineError;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::request_id::current_request_id;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Kept as raw JSON so stored bodies (a replay's original response) keep their bytes.
    pub details: Box<RawValue>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// One field's problem, for `VALIDATION_ERROR`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), details: raw_null(), headers: Vec::new() }
    }

    pub fn with_details(self, details: Value) -> ApiError {
        let details = serde_json::value::to_raw_value(&details).expect("a JSON value serializes");
        self.with_raw_details(details)
    }

    pub fn with_raw_details(mut self, details: Box<RawValue>) -> ApiError {
        self.details = details;
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> ApiError {
        self.headers.push((name, value));
        self
    }

    pub fn validation(fields: Vec<FieldError>) -> ApiError {
        let message = match fields.as_slice() {
            [only] => format!("{}: {}", only.field, only.message),
            _ => format!("{} fields are invalid", fields.len()),
        };
        ApiError::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message).with_details(json!({ "fields": fields }))
    }

    pub fn field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::validation(vec![FieldError { field: field.into(), message: message.into() }])
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    pub fn invalid_json(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "INVALID_JSON", message)
    }

    pub fn payload_too_large(limit_bytes: usize) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", format!("the body exceeds {limit_bytes} bytes"))
            .with_details(json!({ "limitBytes": limit_bytes }))
    }

    fn service_unavailable(code: &'static str, message: String, retry_after_secs: u32) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
            .with_details(json!({ "retryAfterSeconds": retry_after_secs }))
            .with_header(axum::http::header::RETRY_AFTER, HeaderValue::from(retry_after_secs))
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> ApiError {
        let code = error.code();
        let message = error.to_string();
        match error {
            EngineError::InsufficientPool { required, available } => {
                ApiError::new(StatusCode::PAYMENT_REQUIRED, code, message).with_details(json!({ "required": required, "available": available }))
            }
            EngineError::PoolExpired { pool_id } => {
                ApiError::new(StatusCode::PAYMENT_REQUIRED, code, message).with_details(json!({ "tokenPoolId": pool_id.to_hex() }))
            }
            EngineError::CampaignNotApplicable { .. } => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message),
            EngineError::CampaignBudgetExhausted { campaign_id, required, remaining } => ApiError::new(StatusCode::PAYMENT_REQUIRED, code, message)
                .with_details(json!({ "campaignId": campaign_id.to_hex(), "required": required, "budgetRemaining": remaining })),
            EngineError::ReversalExceedsRemaining { remaining } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message).with_details(json!({ "remaining": remaining }))
            }
            EngineError::InsufficientBalance { required, available } => {
                ApiError::new(StatusCode::PAYMENT_REQUIRED, code, message).with_details(json!({ "required": required, "available": available }))
            }
            EngineError::UserNotFound { partner_user_id } => {
                ApiError::new(StatusCode::NOT_FOUND, code, message).with_details(json!({ "partnerUserId": partner_user_id }))
            }
            EngineError::IdempotencyKeyReused => ApiError::new(StatusCode::CONFLICT, code, message),
            EngineError::NotFound { .. } => ApiError::new(StatusCode::NOT_FOUND, code, message),
            EngineError::Conflict { .. } => ApiError::new(StatusCode::CONFLICT, code, message),
            EngineError::Invalid { field, message } => ApiError::field(field, message),
            EngineError::Overloaded { retry_after_secs, .. } => ApiError::service_unavailable(code, message, retry_after_secs),
            EngineError::ShuttingDown => ApiError::service_unavailable(code, message, 1),
            // Marked for the forwarding layer, which sends the request to the owner and strips
            // the marks; a client sees this 503 only while the shard has no reachable owner.
            EngineError::NotOwner { shard, owner } => {
                let error = ApiError::service_unavailable(code, message, 1).with_header(super::forward::NOT_OWNER_SHARD, HeaderValue::from(shard));
                match owner.and_then(|address| HeaderValue::from_str(&address).ok()) {
                    Some(address) => error.with_header(super::forward::OWNER_ADDRESS, address),
                    None => error,
                }
            }
            EngineError::Timeout => ApiError::new(StatusCode::GATEWAY_TIMEOUT, code, message),
            // Logged where it happened; the client gets nothing it could use against us.
            EngineError::Internal(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, code, "internal error"),
        }
    }
}

/// Every error's body (contract §11).
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "Error")]
pub(crate) struct ErrorBody<'a> {
    status_code: u16,
    /// stable, machine-readable (contract §11)
    code: &'a str,
    message: &'a str,
    #[schemars(with = "reward_actors::api::schema::RequestId")]
    request_id: String,
    #[schemars(with = "Option<reward_actors::api::schema::JsonObject>")]
    details: &'a RawValue,
}

impl ApiError {
    /// The error's JSON body, as the contract shapes it.
    pub fn body(&self) -> Vec<u8> {
        let body = ErrorBody {
            status_code: self.status.as_u16(),
            code: self.code,
            message: &self.message,
            request_id: current_request_id(),
            details: &self.details,
        };
        serde_json::to_vec(&body).expect("serializing an error body cannot fail")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = super::json_bytes(self.status, self.body());
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

fn raw_null() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).expect("null is JSON")
}
