//! Test support for the webhook modules' own tests: a whole engine on a temporary redb
//! store with a test clock, so the partner actor and the dispatcher run as in production.

use std::sync::Arc;

use super::{EndpointRecord, WebhookConfig, WebhookFields};
use crate::domain::model::{Environment, PartnerEnv};
use crate::engine::clock::Clock;
use crate::engine::crypto::MasterKey;
use crate::engine::{Engine, EngineConfig, EngineParts};
use crate::services::operations::JobsConfig;
use crate::store::{StoreBackend, open_store};

/// A running engine and the directory its store lives in (removed when dropped).
pub(crate) struct TestEngine {
    pub(crate) engine: Engine,
    _dir: tempfile::TempDir,
}

impl TestEngine {
    /// Starts an engine with the default settings but the webhook ones `tweak` changes.
    pub(crate) fn start(tweak: impl FnOnce(&mut WebhookConfig)) -> TestEngine {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = open_store(StoreBackend::Redb, dir.path()).expect("the store opens");
        let mut jobs = JobsConfig::default();
        tweak(&mut jobs.webhooks);
        let parts = EngineParts {
            config: EngineConfig::default(),
            store,
            clock: Arc::new(Clock::test()),
            master_key: MasterKey::from_bytes(&[7; 32]),
            jobs,
            donations: Default::default(),
            cluster: None,
        };
        TestEngine { engine: Engine::start(parts).expect("the engine starts"), _dir: dir }
    }

    /// A new sandbox partner environment (the actor needs no partner record to hold
    /// endpoints; the front checks partners).
    pub(crate) fn partner_env(&self) -> PartnerEnv {
        PartnerEnv::new(self.engine.ids().next(self.engine.clock().now_ms()), Environment::Sandbox)
    }

    /// Creates an endpoint for every event type and answers its record.
    pub(crate) async fn create_endpoint(&self, partner_env: PartnerEnv, url: &str) -> EndpointRecord {
        let fields = WebhookFields { url: Some(url.to_owned()), receive_all_events: Some(true), ..WebhookFields::default() };
        self.engine.webhooks().create_webhook(partner_env, fields).await.expect("the endpoint is created");
        let endpoints = self.engine.webhooks().list_webhooks(partner_env).expect("endpoints read");
        endpoints.into_iter().max_by_key(|endpoint| endpoint.created_at_ms).expect("one endpoint")
    }

    pub(crate) fn endpoint(&self, partner_env: PartnerEnv, endpoint: &EndpointRecord) -> EndpointRecord {
        self.engine.webhooks().get_webhook(partner_env, endpoint.id).expect("the endpoint reads")
    }
}
