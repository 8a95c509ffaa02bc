//! The engine round trip with a real durable commit: `Engine::submit_action` from the
//! caller to the partner actor, the committer's transaction with its fsync, and back —
//! no HTTP. Measured for each backend, one request at a time (latency: one fsync per
//! action) and 256 at a time (throughput: group commit amortizes the fsync).
//!
//! Back of the envelope: one fsync on this VM is ~120 µs, so a lone submission costs
//! ~150–300 µs. With 256 in flight, a commit carries a whole batch: the cost per action
//! falls to the actor's work plus encoding (~10–20 µs), i.e. 50–100k actions/s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use reward_actors::domain::model::{Environment, PartnerEnv, PartnerStatus, Tier};
use reward_actors::domain::money::{Currency, Money};
use reward_actors::domain::request::{ActionRequest, AllocationRequest, IdempotencyKey, PartnerUserId, Stakeholder};
use reward_actors::engine::clock::Clock;
use reward_actors::engine::crypto::MasterKey;
use reward_actors::services::operations::JobsConfig;
use reward_actors::services::partners::{NewPartner, PartnerPatch};
use reward_actors::store::{StoreBackend, open_store};
use reward_actors::{Engine, EngineConfig, EngineParts};

struct Setup {
    runtime: tokio::runtime::Runtime,
    engine: Engine,
    partner_env: PartnerEnv,
    _dir: tempfile::TempDir,
}

fn setup(backend: StoreBackend) -> Setup {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_store(backend, dir.path()).expect("store");
    // The engine's periodic jobs run on this runtime, as in the server.
    let parts = EngineParts {
        config: EngineConfig::default(),
        store,
        clock: Arc::new(Clock::system()),
        master_key: MasterKey::from_bytes(&[7; 32]),
        jobs: JobsConfig::default(),
        donations: Default::default(),
        cluster: None,
    };
    let engine = runtime.block_on(async { Engine::start(parts) }).expect("engine");
    let partner_env = runtime.block_on(async {
        let partner = engine
            .partners()
            .create_partner(NewPartner {
                name: "bench".into(),
                contact_email: "bench@example.com".into(),
                legal_entity: None,
                slug: None,
                tier: Tier::Enterprise,
                rate_limit: None,
                stakeholder_types: None,
            })
            .await
            .expect("partner");
        engine
            .partners()
            .update_partner(partner.id, PartnerPatch { status: Some(PartnerStatus::Active), ..PartnerPatch::default() })
            .await
            .expect("active");
        let partner_env = PartnerEnv::new(partner.id, Environment::Sandbox);
        let allocation = AllocationRequest {
            new_pool: false,
            idempotency_key: IdempotencyKey::parse("bench-pool").expect("valid"),
            tokens: 1 << 50,
            pool_id: None,
            name: None,
            expires_at_ms: None,
            vesting_days: None,
            low_balance_threshold: None,
            auto_refill: None,
        };
        engine.pools().allocate_tokens(partner_env, allocation, "req_bench".into()).await.expect("pool");
        partner_env
    });
    Setup { runtime, engine, partner_env, _dir: dir }
}

fn action(key: u64) -> ActionRequest {
    ActionRequest {
        idempotency_key: IdempotencyKey::parse(&format!("bench-{key}")).expect("valid"),
        action_type: "PURCHASE".into(),
        amount: Some(Money { minor: 4_999, currency: Currency::from_code("USD").expect("USD") }),
        campaign_id: None,
        stakeholders: vec![Stakeholder {
            stakeholder_type_code: "CUSTOMER".into(),
            partner_user_id: PartnerUserId::parse(&format!("user_{}", key % 10_000)).expect("valid"),
            user_email: None,
            user_first_name: None,
            user_last_name: None,
        }],
        auto_create_users: true,
        metadata_json: None,
    }
}

/// Runs `total` submissions with at most `in_flight` outstanding; answers the elapsed time.
fn submit_many(setup: &Setup, next_key: &mut u64, total: u64, in_flight: usize) -> Duration {
    let first = *next_key;
    *next_key += total;
    setup.runtime.block_on(async {
        let started = Instant::now();
        let mut keys = first..first + total;
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            while tasks.len() < in_flight {
                let Some(key) = keys.next() else { break };
                let engine = setup.engine.clone();
                let partner_env = setup.partner_env;
                tasks.spawn(async move { engine.actions().submit_action(partner_env, action(key), "req_bench".into()).await });
            }
            match tasks.join_next().await {
                Some(result) => {
                    result.expect("task").expect("submission succeeds");
                }
                None => break,
            }
        }
        started.elapsed()
    })
}

fn engine_roundtrip(criterion: &mut Criterion) {
    for backend in [StoreBackend::Redb, StoreBackend::Sled] {
        let setup = setup(backend);
        let mut next_key = 0;
        let mut group = criterion.benchmark_group(format!("engine_roundtrip/{backend}"));
        group.sample_size(20).measurement_time(Duration::from_secs(5));
        group.throughput(Throughput::Elements(1));
        group.bench_function("one at a time", |bench| bench.iter_custom(|iterations| submit_many(&setup, &mut next_key, iterations, 1)));
        group.bench_function("256 in flight", |bench| bench.iter_custom(|iterations| submit_many(&setup, &mut next_key, iterations, 256)));
        group.finish();
        setup.runtime.block_on(setup.engine.shutdown());
    }
}

criterion_group!(benches, engine_roundtrip);
criterion_main!(benches);
