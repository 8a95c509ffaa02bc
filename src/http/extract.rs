//! The raw request a handler authenticates: method, the path exactly as the client sent
//! it (behind any router nesting), headers, peer address and the body bytes, read up to a
//! bound before anything else (413 first, per the contract's order of checks).
//!
//! A body over its bound is answered 413 with `Connection: close`, after reading and
//! discarding (never keeping) a bounded amount of what follows: a client that writes its whole
//! body before it reads (Python's urllib, many HTTP libraries) would otherwise meet a reset
//! and never see the 413 that names the limit.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, OriginalUri, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;

use super::AppState;
use super::error::ApiError;

pub struct RawRequest {
    pub method: Method,
    pub path_and_query: String,
    pub headers: HeaderMap,
    /// The client's address: the socket's peer, or (only when configured) the last address
    /// a trusted proxy put in its header.
    pub peer: Option<IpAddr>,
    pub body: Bytes,
}

/// The last address in a comma-separated list (`X-Forwarded-For`): the one the trusted
/// proxy appended, which the client cannot forge.
fn last_address(list: &str) -> Option<IpAddr> {
    list.rsplit(',').next().and_then(|entry| entry.trim().parse().ok())
}

impl RawRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// 415 unless the body is declared JSON (`application/json`, any parameters).
    pub fn require_json(&self) -> Result<(), ApiError> {
        let declared = self.header(header::CONTENT_TYPE.as_str()).unwrap_or("");
        let media_type = declared.split(';').next().unwrap_or("").trim();
        if media_type.eq_ignore_ascii_case("application/json") {
            Ok(())
        } else {
            Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                "send the body as Content-Type: application/json",
            ))
        }
    }
}

/// After a body over its bound, at most this much more is read and discarded, so the client
/// can finish writing and read the 413. 8 MiB covers uploads several times the largest bound
/// (the 1 MiB batch body); past it the connection is closed on the client.
const OVERSIZED_DRAIN_BYTES_MAX: u64 = 8 * 1024 * 1024;

/// How long discarding may take: 8 MiB crosses a LAN in well under a second; a client
/// slower than that is closed on rather than holding a task.
const OVERSIZED_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// How reading a body ended, when it did not end with the body.
enum BodyRefused {
    /// Over the bound; the rest of the body, still unread.
    TooLarge(Body),
    /// The client broke off (or sent a malformed chunk).
    Broken,
}

/// Reads `body` up to `limit` bytes, keeping nothing beyond it.
async fn read_bounded(mut body: Body, limit: usize) -> Result<Bytes, BodyRefused> {
    let mut collected = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| BodyRefused::Broken)?.into_data() else { continue };
        if collected.len() + data.len() > limit {
            return Err(BodyRefused::TooLarge(body));
        }
        collected.extend_from_slice(&data);
    }
    Ok(Bytes::from(collected))
}

/// Reads and discards what is left of an oversized body, within the drain bounds.
async fn discard_rest(mut body: Body) {
    let discarding = async move {
        let mut discarded: u64 = 0;
        while discarded <= OVERSIZED_DRAIN_BYTES_MAX {
            match body.frame().await {
                Some(Ok(frame)) => discarded += frame.data_ref().map_or(0, |data| data.len() as u64),
                _ => return,
            }
        }
    };
    let _ = tokio::time::timeout(OVERSIZED_DRAIN_TIMEOUT, discarding).await;
}

/// The 413, on a connection that closes after it (what follows the body is not a request).
fn too_large(limit: usize) -> ApiError {
    ApiError::payload_too_large(limit).with_header(header::CONNECTION, HeaderValue::from_static("close"))
}

impl FromRequest<AppState> for RawRequest {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<RawRequest, ApiError> {
        let (parts, body) = request.into_parts();
        let body = read_body(&parts, body, state).await?;
        let uri = parts.extensions.get::<OriginalUri>().map_or_else(|| parts.uri.clone(), |original| original.0.clone());
        let path_and_query = uri.path_and_query().map_or_else(|| uri.path().to_owned(), |path_and_query| path_and_query.as_str().to_owned());
        let peer = client_address(&parts, state);
        Ok(RawRequest { method: parts.method, path_and_query, headers: parts.headers, peer, body })
    }
}

/// The body, read whole under the route's bound (the batch route's is larger) and the read
/// timeout; a body over the bound is refused at once when its length says so.
pub(crate) async fn read_body(parts: &Parts, body: Body, state: &AppState) -> Result<Bytes, ApiError> {
    let limit = if parts.uri.path() == super::routes::BATCH_PATH { state.settings.batch_body_bytes_max } else { state.settings.body_bytes_max };
    let declared_length = parts.headers.get(header::CONTENT_LENGTH).and_then(|value| value.to_str().ok()).and_then(|text| text.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > limit as u64) {
        // A client waiting for `100 Continue` has sent nothing yet: answer at once. Reading
        // the body would ask it to send.
        if !parts.headers.contains_key(header::EXPECT) {
            discard_rest(body).await;
        }
        return Err(too_large(limit));
    }
    let read_timeout = std::time::Duration::from_secs(state.settings.body_read_timeout_secs);
    match tokio::time::timeout(read_timeout, read_bounded(body, limit)).await {
        Err(_) => Err(ApiError::new(StatusCode::REQUEST_TIMEOUT, "REQUEST_TIMEOUT", "the request body did not arrive in time")),
        Ok(Err(BodyRefused::TooLarge(rest))) => {
            discard_rest(rest).await;
            Err(too_large(limit))
        }
        Ok(Err(BodyRefused::Broken)) => Err(ApiError::invalid_json("the request body was cut off or its chunked encoding is malformed")),
        Ok(Ok(body)) => Ok(body),
    }
}

/// The client's address: the socket's peer, or the trusted proxy header's last address when
/// one is configured, or (cluster mode) the address an authentic forwarding hop carries.
pub(crate) fn client_address(parts: &Parts, state: &AppState) -> Option<IpAddr> {
    if let Some(forwarder) = &state.forwarder
        && parts.headers.contains_key(&super::forward::FORWARDED_BY)
    {
        let path_and_query = parts.uri.path_and_query().map_or("/", |path| path.as_str());
        if let Some(client) = forwarder.verified_client(&parts.headers, &parts.method, path_and_query, state.engine.clock().now_secs()) {
            return Some(client);
        }
    }
    let socket_peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
    let forwarded =
        state.client_ip_header.as_ref().and_then(|name| parts.headers.get(name)).and_then(|value| value.to_str().ok()).and_then(last_address);
    forwarded.or(socket_peer)
}

/// Path parameters as text (`String`, or a tuple of them). A segment that does not decode
/// (bad percent-encoding, not UTF-8) names nothing, so it is a JSON 404 like any unknown id.
pub struct PathSegment<T = String>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for PathSegment<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<PathSegment<T>, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(segments)| PathSegment(segments))
            .map_err(|_| ApiError::not_found("no such resource"))
    }
}
