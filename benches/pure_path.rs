//! The pure reward path, measured apart from IO: amount parsing, rule evaluation, posting a
//! reward into records and encoding its write set, the idempotency fingerprint, and the
//! request signature.
//!
//! Back of the envelope: parsing and evaluation are a few hundred integer operations
//! (< 1 µs); posting allocates ~10 records and serializes a response and two event
//! envelopes to JSON (~5–10 µs); HMAC-SHA256 over ~300 B is two SHA-256 passes (~1 µs).
//! So the pure path is ≤ ~15 µs per action: ~70k/s on one core, not the bottleneck beside
//! HTTP parsing and the durable commit.

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use reward_actors::domain::ids::IdGenerator;
use reward_actors::domain::model::{Environment, IdempotencyScope, PartnerEnv, PartnerEnvState, PoolRecord, UserRecord};
use reward_actors::domain::money::{Currency, Money, parse_amount};
use reward_actors::domain::posting::{PostingUser, RewardDraft, post_reward};
use reward_actors::domain::request::{ActionRequest, IdempotencyKey, PartnerUserId, Stakeholder};
use reward_actors::domain::rules::{RewardRule, Split, evaluate, largest_remainder};
use reward_engine::signing;

fn request(stakeholders: usize) -> ActionRequest {
    ActionRequest {
        idempotency_key: IdempotencyKey::parse("order_98765").expect("valid"),
        action_type: "PURCHASE".into(),
        amount: Some(Money { minor: 4_999, currency: Currency::from_code("USD").expect("USD") }),
        campaign_id: None,
        stakeholders: (0..stakeholders)
            .map(|index| Stakeholder {
                stakeholder_type_code: if index % 2 == 0 { "CUSTOMER".into() } else { "NONPROFIT".into() },
                partner_user_id: PartnerUserId::parse(&format!("user_{index}")).expect("valid"),
                user_email: None,
                user_first_name: None,
                user_last_name: None,
            })
            .collect(),
        auto_create_users: true,
        metadata_json: None,
    }
}

fn pool(ids: &IdGenerator) -> PoolRecord {
    PoolRecord { balance: 1_000_000_000, allocated_total: 1_000_000_000, ..PoolRecord::new(ids.next(1), Environment::Sandbox, 1) }
}

fn user(ids: &IdGenerator, external_id: String) -> PostingUser {
    PostingUser { record: UserRecord::new(ids.next(1), &external_id, 1), is_new: true }
}

fn pure_path(criterion: &mut Criterion) {
    let usd = Currency::from_code("USD").expect("USD");
    criterion.bench_function("parse_amount 49.99 USD", |bench| bench.iter(|| parse_amount(black_box("49.99"), usd)));

    let one = request(1);
    let rule = RewardRule::default_rule();
    criterion.bench_function("evaluate default rule, 1 stakeholder", |bench| {
        bench.iter(|| evaluate(black_box(&rule), one.amount, &one.stakeholder_types()))
    });
    let five = request(5);
    let split_rule = RewardRule {
        splits: vec![
            Split { stakeholder_type_code: "CUSTOMER".into(), percent: 70 },
            Split { stakeholder_type_code: "NONPROFIT".into(), percent: 30 },
        ],
        ..RewardRule::default_rule()
    };
    criterion.bench_function("evaluate 70/30 split, 5 stakeholders", |bench| {
        bench.iter(|| evaluate(black_box(&split_rule), five.amount, &five.stakeholder_types()))
    });
    criterion.bench_function("largest_remainder 20 ways", |bench| bench.iter(|| largest_remainder(black_box(1_000_003), &[1; 20])));

    criterion.bench_function("fingerprint (idempotency hash)", |bench| bench.iter(|| black_box(&one).fingerprint()));

    let ids = IdGenerator::new();
    let partner_env = PartnerEnv::new(ids.next(1), Environment::Sandbox);
    let pool = pool(&ids);
    let evaluation = evaluate(&rule, one.amount, &one.stakeholder_types()).expect("applies");
    let env_state = PartnerEnvState { next_event_sequence: 1, default_pool_id: Some(pool.id), daily: Vec::new() };
    criterion.bench_function("post_reward + encode write set, 1 stakeholder", |bench| {
        bench.iter(|| {
            let draft = RewardDraft {
                partner_env,
                request: &one,
                request_id: "req_0123456789abcdef01234567",
                evaluation: &evaluation,
                pool: Some(&pool),
                campaign: None,
                users: vec![user(&ids, "user_0".into())],
                next_event_sequence: 1,
                now_ms: 1_767_225_600_000,
            };
            let mut posting = post_reward(draft, &ids);
            let idempotency = reward_actors::domain::model::IdempotencyRecord {
                request_hash: [0; 32],
                resource_id: posting.changes.action.as_ref().expect("a reward posts an action").id,
                response_json: posting.response_json.clone(),
                request_id: "req_0123456789abcdef01234567".into(),
                effect: reward_actors::domain::model::Effect::Applied,
                created_at_ms: 1,
            };
            posting.changes.idempotency = Some((IdempotencyScope::ActionSubmit, "order_98765".into(), idempotency));
            posting.changes.write_set(&partner_env, &env_state)
        })
    });

    let body = br#"{"idempotencyKey":"order_98765","actionType":"PURCHASE","amount":49.99,"currency":"USD","stakeholders":[{"stakeholderTypeCode":"CUSTOMER","partnerUserId":"user_42"}]}"#;
    let secret = "a".repeat(64);
    let signature = signing::sign(&secret, "1767225600", "POST", "/v1/partner/actions/submit", body);
    criterion.bench_function("verify request signature", |bench| {
        bench.iter(|| signing::verify(&secret, "1767225600", "POST", "/v1/partner/actions/submit", black_box(body), &signature))
    });
}

criterion_group!(benches, pure_path);
criterion_main!(benches);
