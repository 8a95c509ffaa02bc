//! `serve --demo`: one ACTIVE sandbox partner with a key pair and 1,000,000 tokens, created
//! once; its credentials go to `<data-dir>/demo-credentials.json` (mode 0600) and to the
//! terminal with a copy-paste example. Later `--demo` starts reprint them from the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use reward_actors::Engine;
use reward_actors::api::common::IdempotencyKey;
use reward_actors::api::common::{Environment, PartnerEnv, ScopeSet};
use reward_actors::api::keys::NewKey;
use reward_actors::api::partners::{NewPartner, PartnerPatch};
use reward_actors::api::partners::{PartnerStatus, Tier};
use reward_actors::api::pools::AllocationRequest;
use serde::{Deserialize, Serialize};

use crate::server::{print_banner, write_private_file};

/// The demo pool's size.
pub const DEMO_POOL_TOKENS: u64 = 1_000_000;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DemoCredentials {
    pub partner_id: String,
    pub environment: String,
    pub key_id: String,
    pub public_key: String,
    pub secret_key: String,
    pub hmac_secret: String,
}

impl std::fmt::Debug for DemoCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoCredentials").field("partner_id", &self.partner_id).field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

pub fn credentials_path(data_dir: &Path) -> PathBuf {
    data_dir.join("demo-credentials.json")
}

pub async fn ensure_demo_partner(engine: &Engine, data_dir: &Path) -> anyhow::Result<DemoCredentials> {
    let path = credentials_path(data_dir);
    if path.exists() {
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        return serde_json::from_str(&text).with_context(|| format!("{} is not a demo credentials file", path.display()));
    }
    let partner = engine
        .partners()
        .create_partner(NewPartner {
            name: "Demo Partner".into(),
            contact_email: "demo@example.com".into(),
            legal_entity: None,
            slug: None,
            tier: Tier::Enterprise,
            rate_limit: None,
            stakeholder_types: Some(vec!["CUSTOMER".into(), "NONPROFIT".into(), "REFERRER".into()]),
        })
        .await?;
    engine.partners().update_partner(partner.id, PartnerPatch { status: Some(PartnerStatus::Active), ..PartnerPatch::default() }).await?;
    let key = engine
        .keys()
        .create_api_key(
            partner.id,
            NewKey { environment: Environment::Sandbox, name: "Demo key".into(), scopes: ScopeSet::all(), expires_at_ms: None },
        )
        .await?;
    let allocation = AllocationRequest {
        new_pool: false,
        idempotency_key: IdempotencyKey::parse("demo-initial-pool").expect("a constant valid key"),
        tokens: DEMO_POOL_TOKENS,
        pool_id: None,
        name: Some("Demo pool".into()),
        expires_at_ms: None,
        vesting_days: None,
        low_balance_threshold: None,
        auto_refill: None,
    };
    let request_id = engine.ids().request_id(engine.clock().now_ms());
    engine.pools().allocate_tokens(PartnerEnv::new(partner.id, Environment::Sandbox), allocation, request_id).await?;
    let credentials = DemoCredentials {
        partner_id: partner.id.to_hex(),
        environment: "sandbox".into(),
        key_id: key.id.clone(),
        public_key: key.public_key.clone(),
        secret_key: key.secret_key.clone(),
        hmac_secret: key.hmac_secret.clone(),
    };
    write_private_file(&path, &serde_json::to_vec_pretty(&credentials)?)?;
    Ok(credentials)
}

pub fn print_demo_banner(credentials: &DemoCredentials, address: SocketAddr, path: &Path) {
    let exe = std::env::current_exe().map_or_else(|_| "reward-engine".to_owned(), |path| path.display().to_string());
    let body = r#"{"idempotencyKey":"order_1","actionType":"PURCHASE","amount":49.99,"currency":"USD","stakeholders":[{"stakeholderTypeCode":"CUSTOMER","partnerUserId":"user_42"}]}"#;
    print_banner(&format!(
        "
Demo partner ready (sandbox, {DEMO_POOL_TOKENS} tokens). Credentials are in {path} (mode 0600):

    partnerId   {partner}
    publicKey   {public}
    secretKey   {secret}
    hmacSecret  {hmac}

Reward user_42 for a 49.99 USD purchase (50 tokens), signing with the demo credentials:

    {exe} sign --credentials {path} --curl http://{address} \\
        POST /v1/partner/actions/submit '{body}' | sh

Then read the balance:

    {exe} sign --credentials {path} --curl http://{address} GET /v1/partner/users/user_42/balance | sh
",
        path = path.display(),
        partner = credentials.partner_id,
        public = credentials.public_key,
        secret = credentials.secret_key,
        hmac = credentials.hmac_secret,
    ));
}
