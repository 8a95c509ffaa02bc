//! Cluster mode: any node accepts any request, and one for a partner whose shard another node
//! owns is forwarded there whole (method, path, headers, body: the owner verifies the
//! signature on the original bytes and path). No redirect: clients drop credentials on them.
//!
//! The request runs here first; the engine refuses it before doing anything (`NotOwner`,
//! which the error table marks with [`NOT_OWNER_SHARD`] and [`OWNER_ADDRESS`]), and this
//! layer sends the buffered request to the owner and streams its answer back. A hop carries
//! the forwarding node, the client's address and an HMAC over both, the time, the method
//! and the path under a key every node derives from the master key ([`FORWARD_AUTH`]), so
//! the owner applies key IP allowlists to the client, not to the forwarder. A forwarded
//! request is never forwarded again: an owner that no longer owns the shard answers 503 with
//! the marker, and the forwarder reads the owner from the database once and retries once.
//!
//! Bounds: the body is buffered under the route's own limit (the same as the extractor's),
//! a forward waits at most [`FORWARD_TIMEOUT`], and each peer has at most
//! [`IDLE_CONNECTIONS_PER_PEER`] idle connections in the pool.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use reward_actors::api::common::{constant_time_eq, hmac_sha256};
use reward_actors::api::operations::ClusterIdentity;

use super::AppState;
use super::error::ApiError;

/// Set by the error table on a `NotOwner` answer: the shard. Never leaves the cluster.
pub const NOT_OWNER_SHARD: HeaderName = HeaderName::from_static("x-reward-not-owner-shard");
/// Set with [`NOT_OWNER_SHARD`]: the owner's advertised address, when known.
pub const OWNER_ADDRESS: HeaderName = HeaderName::from_static("x-reward-owner-address");
/// On a forwarded request: the node that forwarded it.
pub const FORWARDED_BY: HeaderName = HeaderName::from_static("x-reward-forwarded-by");
/// On a forwarded request: the client's address as the forwarder saw it.
pub const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-reward-forwarded-for");
/// On a forwarded request: `v1,<unix seconds>,<hex HMAC>` over the hop's facts.
pub const FORWARD_AUTH: HeaderName = HeaderName::from_static("x-reward-forward-auth");

/// How long a forward may take: beyond the owner's own bounded waits (reply 5 s + commit
/// 10 s by default), with room for a slow body.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);
/// How far a hop's timestamp may be from this node's clock.
const FORWARD_AUTH_WINDOW_SECS: u64 = 60;
/// Idle connections kept to each peer node.
pub const IDLE_CONNECTIONS_PER_PEER: usize = 32;

/// A node's forwarding settings and its pooled client to the others.
#[derive(Clone)]
pub struct Forwarder {
    identity: ClusterIdentity,
    client: Client<HttpConnector, Body>,
}

impl Forwarder {
    pub fn new(identity: ClusterIdentity) -> Forwarder {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(IDLE_CONNECTIONS_PER_PEER).build(connector);
        Forwarder { identity, client }
    }

    fn sign(&self, client_ip: &str, unix_secs: u64, method: &Method, path_and_query: &str) -> String {
        let mac = hop_mac(&self.identity.forwarding_key, &self.identity.node_id, client_ip, unix_secs, method, path_and_query);
        format!("v1,{unix_secs},{}", hex::encode(mac))
    }

    /// The client's address a forwarded request carries, if its hop is authentic and fresh.
    pub fn verified_client(&self, headers: &HeaderMap, method: &Method, path_and_query: &str, now_secs: u64) -> Option<IpAddr> {
        let text = |name: &HeaderName| headers.get(name).and_then(|value| value.to_str().ok());
        let (by, client_ip, auth) = (text(&FORWARDED_BY)?, text(&FORWARDED_FOR)?, text(&FORWARD_AUTH)?);
        let mut fields = auth.splitn(3, ',');
        let (Some("v1"), Some(unix_secs), Some(mac)) = (fields.next(), fields.next(), fields.next()) else { return None };
        let unix_secs: u64 = unix_secs.parse().ok()?;
        if unix_secs.abs_diff(now_secs) > FORWARD_AUTH_WINDOW_SECS {
            return None;
        }
        let expected = hop_mac(&self.identity.forwarding_key, by, client_ip, unix_secs, method, path_and_query);
        let presented = hex::decode(mac).ok()?;
        constant_time_eq(&expected, &presented).then(|| client_ip.parse().ok()).flatten()
    }
}

fn hop_mac(key: &[u8; 32], node: &str, client_ip: &str, unix_secs: u64, method: &Method, path_and_query: &str) -> [u8; 32] {
    let time = unix_secs.to_string();
    hmac_sha256(
        key,
        &[
            b"v1\n",
            node.as_bytes(),
            b"\n",
            client_ip.as_bytes(),
            b"\n",
            time.as_bytes(),
            b"\n",
            method.as_str().as_bytes(),
            b"\n",
            path_and_query.as_bytes(),
        ],
    )
}

/// Headers that describe one connection, not the request (RFC 9110 §7.6.1), and the hop's own.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "proxy-connection" | "te" | "trailer" | "transfer-encoding" | "upgrade" | "proxy-authorization"
    ) || *name == FORWARDED_BY
        || *name == FORWARDED_FOR
        || *name == FORWARD_AUTH
}

/// The layer (installed in cluster mode only): runs the request here, and forwards it when
/// the engine says another node owns its partner.
pub async fn to_owner(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(forwarder) = state.forwarder.as_ref() else { return next.run(request).await };
    let path_and_query = request.uri().path_and_query().map_or("/", |path| path.as_str());
    if forwarder.verified_client(request.headers(), request.method(), path_and_query, state.engine.clock().now_secs()).is_some() {
        // An authentic hop: never forwarded again. A stale view at the forwarder is said with
        // the marker (it reads the owner again), which it strips before its client sees it.
        let mut response = next.run(request).await;
        if let Some((shard, _)) = take_not_owner(&mut response) {
            response.headers_mut().insert(NOT_OWNER_SHARD, HeaderValue::from(shard));
        }
        return response;
    }
    let (parts, body) = request.into_parts();
    let body = match super::extract::read_body(&parts, body, &state).await {
        Ok(body) => body,
        Err(refused) => return refused.into_response(),
    };
    let client_ip = super::extract::client_address(&parts, &state);
    let (method, uri, headers) = (parts.method.clone(), parts.uri.clone(), parts.headers.clone());
    let mut response = next.run(Request::from_parts(parts, Body::from(body.clone()))).await;
    let Some((shard, owner)) = take_not_owner(&mut response) else { return response };
    let hop = Hop { method, uri, headers, body, client_ip: client_ip.map_or_else(String::new, |ip| ip.to_string()) };
    let started = Instant::now();
    let mut tried = None;
    for attempt in 0..2 {
        let address = match (attempt, &owner) {
            (0, Some(address)) => address.clone(),
            // The view had no owner, or the owner said it is not: read the table once.
            _ => {
                let engine = state.engine.clone();
                match tokio::task::spawn_blocking(move || engine.refresh_shard_owner(shard)).await {
                    Ok(Some(address)) if tried.as_ref() != Some(&address) => address,
                    _ => break,
                }
            }
        };
        match forwarder.send(&address, &hop).await {
            Ok(mut answer) => {
                if take_not_owner(&mut answer).is_none() {
                    state.metrics.forwarded(if attempt == 0 { "forwarded" } else { "retried" }, started.elapsed());
                    return answer;
                }
                tried = Some(address);
            }
            Err(error) => {
                tracing::warn!(shard, owner = %address, %error, "forwarding to the shard's owner failed");
                state.metrics.forwarded("unreachable", started.elapsed());
                return moving(shard);
            }
        }
    }
    state.metrics.forwarded("no_owner", started.elapsed());
    moving(shard)
}

/// The answer while a shard has no reachable owner (it is moving): retry shortly.
fn moving(shard: u32) -> Response {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "OVERLOADED", format!("shard {shard} is moving between nodes; retry in a second"))
        .with_details(serde_json::json!({ "retryAfterSeconds": 1 }))
        .with_header(header::RETRY_AFTER, HeaderValue::from(1))
        .into_response()
}

/// Removes the internal `NotOwner` marks from an answer; the shard and owner they named.
fn take_not_owner(response: &mut Response) -> Option<(u32, Option<String>)> {
    let shard = response.headers_mut().remove(NOT_OWNER_SHARD)?;
    let owner = response.headers_mut().remove(OWNER_ADDRESS).and_then(|value| value.to_str().ok().map(str::to_owned));
    Some((shard.to_str().ok()?.parse().ok()?, owner))
}

/// The request as it arrived, buffered, to send to an owner.
struct Hop {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    client_ip: String,
}

impl Forwarder {
    async fn send(&self, address: &str, hop: &Hop) -> Result<Response, String> {
        let path_and_query = hop.uri.path_and_query().map_or("/", |path| path.as_str());
        let target: Uri = format!("http://{address}{path_and_query}").parse().map_err(|error| format!("bad owner address {address:?}: {error}"))?;
        let mut request = axum::http::Request::builder().method(hop.method.clone()).uri(target);
        let headers = request.headers_mut().expect("a fresh builder has headers");
        for (name, value) in &hop.headers {
            if !hop_by_hop(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        let now_secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs());
        headers.insert(FORWARDED_BY, HeaderValue::from_str(&self.identity.node_id).map_err(|error| error.to_string())?);
        headers.insert(FORWARDED_FOR, HeaderValue::from_str(&hop.client_ip).map_err(|error| error.to_string())?);
        let auth = self.sign(&hop.client_ip, now_secs, &hop.method, path_and_query);
        headers.insert(FORWARD_AUTH, HeaderValue::from_str(&auth).map_err(|error| error.to_string())?);
        let request = request.body(Body::from(hop.body.clone())).map_err(|error| error.to_string())?;
        let answer = tokio::time::timeout(FORWARD_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| format!("no answer within {} s", FORWARD_TIMEOUT.as_secs()))?
            .map_err(|error| error.to_string())?;
        let (mut parts, body) = answer.into_parts();
        parts.headers.retain_hop_free();
        Ok(Response::from_parts(parts, Body::new(body)))
    }
}

trait RetainHopFree {
    fn retain_hop_free(&mut self);
}

impl RetainHopFree for HeaderMap {
    fn retain_hop_free(&mut self) {
        let names: Vec<HeaderName> = self.keys().filter(|name| hop_by_hop(name)).cloned().collect();
        for name in names {
            self.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarder(node: &str, key: u8) -> Forwarder {
        Forwarder::new(ClusterIdentity { node_id: node.into(), forwarding_key: [key; 32] })
    }

    #[test]
    fn a_hop_is_believed_only_with_its_key_within_the_window() {
        let (a, peer, stranger) = (forwarder("a", 1), forwarder("b", 1), forwarder("a", 2));
        let method = Method::POST;
        let mut headers = HeaderMap::new();
        headers.insert(FORWARDED_BY, HeaderValue::from_static("a"));
        headers.insert(FORWARDED_FOR, HeaderValue::from_static("203.0.113.7"));
        headers.insert(FORWARD_AUTH, HeaderValue::from_str(&a.sign("203.0.113.7", 1_000, &method, "/api/v1/actions")).expect("ascii"));
        assert_eq!(peer.verified_client(&headers, &method, "/api/v1/actions", 1_030), Some("203.0.113.7".parse().expect("ip")));
        assert_eq!(stranger.verified_client(&headers, &method, "/api/v1/actions", 1_030), None, "another key");
        assert_eq!(peer.verified_client(&headers, &method, "/api/v1/actions", 1_100), None, "too old");
        assert_eq!(peer.verified_client(&headers, &Method::GET, "/api/v1/actions", 1_030), None, "another method");
        assert_eq!(peer.verified_client(&headers, &method, "/api/v1/users", 1_030), None, "another path");
        headers.insert(FORWARDED_FOR, HeaderValue::from_static("198.51.100.1"));
        assert_eq!(peer.verified_client(&headers, &method, "/api/v1/actions", 1_030), None, "another client address");
    }
}
