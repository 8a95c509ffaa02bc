//! CORS for the widget routes (called from partners' web pages with a publishable key): the
//! preflight, the origin a real answer names (only one the partner allows), and errors a page
//! can read whatever the partner allows (they carry nothing but the error).

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use reward_actors::api::partners::PartnerRecord;

use crate::http::error::ApiResult;
use crate::http::extract::RawRequest;

/// A widget route's answer: its response, or its error readable by the calling page.
pub fn widget_answer(request: &RawRequest, answer: ApiResult<Response>) -> Response {
    match answer {
        Ok(response) => response,
        Err(error) => {
            let mut response = error.into_response();
            if let Some(origin) = request.headers.get(header::ORIGIN).cloned() {
                expose(response.headers_mut(), origin);
            }
            response
        }
    }
}

fn expose(response: &mut HeaderMap, origin: HeaderValue) {
    response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    response.insert(header::VARY, HeaderValue::from_static("Origin"));
    response.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("X-Request-Id, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, X-RateLimit-RetryAfter, Retry-After, RateLimit, RateLimit-Policy"),
    );
}

/// Widget routes are called from browsers: answer the preflight for any origin (it carries
/// no key, so no partner to ask); the real response then names the origin only if the
/// partner allows it.
pub async fn preflight() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"),
            (header::ACCESS_CONTROL_ALLOW_HEADERS, "X-Partner-Key, Content-Type"),
            (header::ACCESS_CONTROL_MAX_AGE, "600"),
        ],
    )
        .into_response()
}

/// `Access-Control-Allow-Origin` for the request's origin when the partner allows it
/// (`allowedOrigins` empty or `*` allows every origin).
pub fn allow_origin(partner: &PartnerRecord, request: &HeaderMap, response: &mut HeaderMap) {
    response.insert(header::VARY, HeaderValue::from_static("Origin"));
    let Some(origin) = request.get(header::ORIGIN).and_then(|value| value.to_str().ok()) else {
        return;
    };
    let allowed = partner.allowed_origins.is_empty() || partner.allowed_origins.iter().any(|allowed| allowed == "*" || allowed == origin);
    if allowed && let Ok(value) = HeaderValue::from_str(origin) {
        response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        response.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("X-Request-Id, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After"),
        );
    }
}
