//! One delivery attempt: the HTTP client every attempt shares (no redirects, no proxy, the
//! SSRF guard in its resolver), then sign, send, read at most 4 KiB of the answer, classify.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::signing::SigningSecrets;
use super::ssrf::{GuardedResolver, check_url_shape};
use super::{AttemptOutcome, AttemptRecord, DeliveryRecord, RESPONSE_EXCERPT_BYTES, USER_AGENT, WebhookSettings};
use crate::domain::ids::Id;
use crate::domain::model::PartnerEnv;
use crate::engine::EngineShared;
use crate::store::records::{QueueEntry, RecordKey};

/// An endpoint: its partner environment and id.
pub(super) type EndpointKey = (PartnerEnv, Id);

/// The delivery client cannot be built (its TLS backend or resolver failed to start).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the webhook HTTP client")]
pub struct WebhookClientError(#[source] reqwest::Error);

/// The client all attempts share.
pub(super) fn client(settings: &WebhookSettings) -> Result<reqwest::Client, WebhookClientError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        // A proxy from the environment would resolve targets itself, past the SSRF guard.
        .no_proxy()
        .timeout(settings.attempt_timeout)
        .connect_timeout(settings.attempt_timeout.min(Duration::from_secs(10)))
        .dns_resolver(Arc::new(GuardedResolver { policy: Arc::new(settings.policy.clone()) }))
        // Endpoints often share a host (one receiver, many partners): keep a connection
        // for every slot rather than reconnecting.
        .pool_max_idle_per_host(settings.concurrency)
        .user_agent(USER_AGENT)
        .build()
        .map_err(WebhookClientError)
}

/// A claimed delivery, ready to send.
pub(super) struct Job {
    pub(super) key: EndpointKey,
    pub(super) delivery: DeliveryRecord,
    pub(super) queue_key: RecordKey<QueueEntry>,
    pub(super) envelope: Vec<u8>,
    pub(super) url: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) secrets: SigningSecrets,
}

/// An attempt's result, for the dispatcher to record.
pub(super) struct Finished {
    pub(super) key: EndpointKey,
    pub(super) delivery: DeliveryRecord,
    pub(super) queue_key: RecordKey<QueueEntry>,
    pub(super) attempt: AttemptRecord,
    pub(super) outcome: AttemptOutcome,
}

/// One attempt: sign, send, read at most 4 KiB of the answer, classify.
pub(super) async fn attempt(client: &reqwest::Client, settings: &WebhookSettings, shared: &EngineShared, job: Job) -> Finished {
    let Job { key, delivery, queue_key, envelope, url, headers, secrets } = job;
    let started = Instant::now();
    let attempted_at_ms = shared.clock.now_ms();
    let manual = delivery.manual;
    let result = send(client, settings, key.0, &url, &headers, &secrets, &delivery, envelope, shared.clock.now_secs()).await;
    let latency = started.elapsed();
    shared.metrics.webhook_attempt_seconds.observe(latency.as_secs_f64());
    let latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
    let (attempt, outcome) = match result {
        Ok(answer) => {
            let outcome = match answer.status_code {
                200..=299 => AttemptOutcome::Delivered,
                410 => AttemptOutcome::Gone,
                status_code => AttemptOutcome::Failed {
                    status_code: Some(status_code),
                    retry_after_secs: answer.retry_after_secs,
                    overloaded: status_code == 429 || (status_code == 503 && answer.retry_after_secs.is_some()),
                },
            };
            let attempt = AttemptRecord {
                attempted_at_ms,
                status_code: Some(answer.status_code),
                latency_ms,
                error: None,
                response_excerpt: answer.excerpt,
                manual,
            };
            (attempt, outcome)
        }
        Err(failure) => {
            let attempt = AttemptRecord {
                attempted_at_ms,
                status_code: None,
                latency_ms,
                error: Some(failure.message),
                response_excerpt: String::new(),
                manual,
            };
            (attempt, AttemptOutcome::Failed { status_code: None, retry_after_secs: None, overloaded: failure.timed_out })
        }
    };
    Finished { key, delivery, queue_key, attempt, outcome }
}

/// An error and its causes (the URL left out: a partner's URL may carry a token).
fn error_text(error: reqwest::Error) -> String {
    const CAUSES_MAX: usize = 6;
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    for _ in 0..CAUSES_MAX {
        let Some(cause) = source else { break };
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.chars().take(1_000).collect()
}

struct Answer {
    status_code: u16,
    retry_after_secs: Option<u64>,
    excerpt: String,
}

struct Failure {
    message: String,
    timed_out: bool,
}

impl Failure {
    fn refused(message: impl Into<String>) -> Failure {
        Failure { message: message.into(), timed_out: false }
    }
}

#[allow(clippy::too_many_arguments)]
async fn send(
    client: &reqwest::Client,
    settings: &WebhookSettings,
    partner_env: PartnerEnv,
    url: &str,
    headers: &[(String, String)],
    secrets: &SigningSecrets,
    delivery: &DeliveryRecord,
    envelope: Vec<u8>,
    timestamp: u64,
) -> Result<Answer, Failure> {
    // Checked again at every attempt: the resolver guards names, this guards literal addresses.
    let parsed = check_url_shape(url, partner_env.environment).map_err(|refusal| Failure::refused(refusal.to_string()))?;
    if let Some(host) = parsed.host_str()
        && let Ok(address) = host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>()
    {
        settings.policy.permits(address).map_err(|refusal| Failure::refused(refusal.to_string()))?;
    }
    let event_id = delivery.event_id.prefixed("evt_");
    let signatures = secrets.sign(&event_id, timestamp, &envelope).ok_or_else(|| Failure::refused("the endpoint's secret cannot sign"))?;
    let mut request = client
        .post(parsed)
        .header("content-type", "application/json")
        .header("x-sir-timestamp", timestamp.to_string())
        .header("x-sir-signature", signatures.sir)
        .header("webhook-id", &event_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signatures.standard);
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let describe = |error: reqwest::Error| {
        let timed_out = error.is_timeout();
        let message = if timed_out { format!("timed out after {} ms", settings.attempt_timeout.as_millis()) } else { error_text(error) };
        Failure { message, timed_out }
    };
    let mut response = request.body(envelope).send().await.map_err(describe)?;
    let status_code = response.status().as_u16();
    let retry_after_secs =
        response.headers().get("retry-after").and_then(|value| value.to_str().ok()).and_then(|value| value.trim().parse::<u64>().ok());
    let mut excerpt = Vec::new();
    while excerpt.len() < RESPONSE_EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk[..chunk.len().min(RESPONSE_EXCERPT_BYTES - excerpt.len())]),
            Ok(None) | Err(_) => break,
        }
    }
    Ok(Answer { status_code, retry_after_secs, excerpt: String::from_utf8_lossy(&excerpt).into_owned() })
}
