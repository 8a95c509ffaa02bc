//! Reads of a partner's webhooks: endpoints, deliveries, and the health summary of the
//! dashboard. Writes go through the partner actor (endpoints, their status and health) and
//! the dispatcher (deliveries and their queue).

use super::{DeliveryRecord, EndpointRecord, EndpointStatus};
use crate::api::facades::Webhooks;
use crate::domain::ids::Id;
use crate::domain::model::PartnerEnv;
use crate::engine::error::EngineError;
use crate::store::ScanOrder;
use crate::store::records;

/// How many of a partner's endpoints are enabled, disabled, and in a failing streak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookHealth {
    pub endpoints: usize,
    pub enabled: usize,
    pub disabled: usize,
    pub failing: usize,
}

impl Webhooks<'_> {
    /// A partner's endpoints, oldest first (at most `webhooks_per_partner_max`).
    pub fn list_webhooks(&self, partner_env: PartnerEnv) -> Result<Vec<EndpointRecord>, EngineError> {
        let endpoints = records::webhook_endpoints(&partner_env).read(
            self.engine.shared().store.as_ref(),
            ScanOrder::Ascending,
            self.engine.config().webhooks_per_partner_max,
        );
        endpoints.map_err(|error| EngineError::internal("listing webhook endpoints", error))
    }

    pub fn get_webhook(&self, partner_env: PartnerEnv, endpoint_id: Id) -> Result<EndpointRecord, EngineError> {
        self.engine
            .read_record(&records::webhook_endpoint(&partner_env, endpoint_id), "reading a webhook endpoint")?
            .ok_or(EngineError::NotFound { resource: "webhook endpoint" })
    }

    /// An endpoint's deliveries, newest first.
    pub fn list_deliveries(
        &self,
        partner_env: PartnerEnv,
        endpoint_id: Id,
        page: crate::store::reads::PageRequest,
    ) -> Result<crate::store::reads::Page<DeliveryRecord>, EngineError> {
        self.get_webhook(partner_env, endpoint_id)?;
        self.engine.read_page(
            &records::webhook_deliveries(&partner_env, endpoint_id),
            page,
            |delivery: &DeliveryRecord| delivery.id,
            "listing webhook deliveries",
        )
    }

    /// Whether any of the partner's endpoints is disabled, and its latest delivery outcome
    /// counts, for the dashboard.
    pub fn webhook_health(&self, partner_env: PartnerEnv) -> Result<WebhookHealth, EngineError> {
        let endpoints = self.list_webhooks(partner_env)?;
        let mut failing = 0;
        for endpoint in &endpoints {
            let health = records::webhook_health(&partner_env, endpoint.id).get(self.engine.shared().store.as_ref()).ok().flatten();
            if health.is_some_and(|health| health.failing_since_ms.is_some()) {
                failing += 1;
            }
        }
        let disabled = endpoints.iter().filter(|endpoint| endpoint.status == EndpointStatus::Disabled).count();
        Ok(WebhookHealth { endpoints: endpoints.len(), enabled: endpoints.len() - disabled, disabled, failing })
    }
}
