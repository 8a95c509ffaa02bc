//! Per-partner rate limits (contract §5): two GCRA quotas per (partner, environment) and
//! budget, an hourly one and a per-minute burst, both `governor` limiters.
//!
//! The limiters live in the engine's partner registry, next to the actors, and are checked
//! by the front through the `Engine` handle before a request takes a mailbox slot: a refused
//! request costs no actor work. They are thread-safe and kept at least an hour after their
//! last use, so an actor's passivation never refills a budget. Publishable-key (widget)
//! traffic has its own budget, so a leaked `pk_` cannot exhaust the server budget.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use parking_lot::Mutex;

use crate::domain::model::{PartnerEnv, RateLimit};

/// Which budget a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Budget {
    /// Server routes (secret keys, signed or Basic).
    Server,
    /// Widget routes (publishable keys, from end users' browsers).
    Widget,
}

impl Budget {
    /// A stable number for the budget, as a cluster handoff stores it.
    pub fn code(self) -> u8 {
        match self {
            Budget::Server => 0,
            Budget::Widget => 1,
        }
    }

    pub fn from_code(code: u8) -> Option<Budget> {
        [Budget::Server, Budget::Widget].into_iter().find(|budget| budget.code() == code)
    }
}

/// One quota's state after a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaState {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the quota is full again (0 when it is full).
    pub reset_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    pub hourly: QuotaState,
    pub burst: QuotaState,
    /// When refused: whole seconds (≥ 1) until the request could pass.
    pub retry_after_secs: u64,
}

/// The outcome of asking for more units than a burst can ever hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExceedsBurst {
    pub burst: u32,
}

type Gcra = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

struct Limiter {
    config: RateLimit,
    hourly: Gcra,
    burst: Gcra,
}

fn non_zero(value: u32) -> NonZeroU32 {
    NonZeroU32::new(value.max(1)).expect("at least 1")
}

impl Limiter {
    /// Spends on a fresh limiter what the previous one had spent (never more than it holds).
    fn carry_over(&self, last: RateDecision) {
        let spend = |gcra: &Gcra, limit: u32, previous: QuotaState| {
            let spent = previous.limit.saturating_sub(previous.remaining).min(limit);
            if let Some(spent) = NonZeroU32::new(spent) {
                let _ = gcra.check_n(spent);
            }
        };
        spend(&self.hourly, self.config.hourly, last.hourly);
        spend(&self.burst, self.config.per_minute, last.burst);
    }

    fn new(config: RateLimit) -> Limiter {
        let hourly = RateLimiter::direct(Quota::per_hour(non_zero(config.hourly))).with_middleware::<StateInformationMiddleware>();
        let burst = RateLimiter::direct(Quota::per_minute(non_zero(config.per_minute))).with_middleware::<StateInformationMiddleware>();
        Limiter { config, hourly, burst }
    }
}

/// Seconds until a quota with `remaining` of `limit` cells, one per `interval`, is full.
fn seconds_to_full(limit: u32, remaining: u32, interval: Duration) -> u64 {
    let missing = u64::from(limit.saturating_sub(remaining));
    (interval.as_secs_f64() * missing as f64).ceil() as u64
}

fn decide(gcra: &Gcra, limit: u32, units: NonZeroU32) -> Result<QuotaState, Duration> {
    match gcra.check_n(units) {
        Ok(Ok(snapshot)) => {
            let remaining = snapshot.remaining_burst_capacity();
            Ok(QuotaState { limit, remaining, reset_secs: seconds_to_full(limit, remaining, snapshot.quota().replenish_interval()) })
        }
        Ok(Err(not_until)) => Err(not_until.wait_time_from(DefaultClock::default().now())),
        // More units than the quota holds at all: never; the front refuses such batches first.
        Err(_) => Err(Duration::from_secs(3_600)),
    }
}

struct Entry {
    limiter: Arc<Limiter>,
    last_used: Instant,
    /// The last decision: what headers report when nothing is spent (a refusal before the
    /// rate-limit step, or the hourly state when the burst refuses), and what a new limit
    /// carries over so that a tier change never hands back spent budget.
    last: Option<RateDecision>,
}

/// All limiters, sharded by (partner, environment).
pub(crate) struct RateLimits {
    shards: Vec<Mutex<HashMap<(PartnerEnv, Budget), Entry>>>,
    checks: AtomicU64,
}

const SHARDS: usize = 64;
/// A limiter unused this long may be dropped: longer than the hourly window, so dropping it
/// can never hand back budget that was spent.
const IDLE_KEEP: Duration = Duration::from_secs(2 * 3_600);
/// Every this many checks a shard is swept of idle limiters: bounded work, bounded memory.
const SWEEP_EVERY_CHECKS: u64 = 4_096;

impl RateLimits {
    pub fn new() -> RateLimits {
        RateLimits { shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(), checks: AtomicU64::new(0) }
    }

    fn shard(&self, partner_env: PartnerEnv, budget: Budget) -> &Mutex<HashMap<(PartnerEnv, Budget), Entry>> {
        let mut hasher = DefaultHasher::new();
        (partner_env, budget).hash(&mut hasher);
        &self.shards[hasher.finish() as usize % self.shards.len()]
    }

    fn limiter(&self, partner_env: PartnerEnv, budget: Budget, config: RateLimit) -> (Arc<Limiter>, Option<RateDecision>) {
        let mut shard = self.shard(partner_env, budget).lock();
        let now = Instant::now();
        if self.checks.fetch_add(1, Ordering::Relaxed).is_multiple_of(SWEEP_EVERY_CHECKS) {
            shard.retain(|_, entry| now.duration_since(entry.last_used) < IDLE_KEEP);
        }
        let entry =
            shard.entry((partner_env, budget)).or_insert_with(|| Entry { limiter: Arc::new(Limiter::new(config)), last_used: now, last: None });
        // A tier or custom-limit change applies at once, with what was already spent.
        if entry.limiter.config != config {
            let replacement = Limiter::new(config);
            if let Some(last) = entry.last {
                replacement.carry_over(last);
            }
            entry.limiter = Arc::new(replacement);
        }
        entry.last_used = now;
        (Arc::clone(&entry.limiter), entry.last)
    }

    fn remember(&self, partner_env: PartnerEnv, budget: Budget, decision: RateDecision) {
        if let Some(entry) = self.shard(partner_env, budget).lock().get_mut(&(partner_env, budget)) {
            entry.last = Some(decision);
        }
    }

    /// The budget as the last decision left it, spending nothing: for the headers of an
    /// answer refused before the rate-limit step. `None` before the first decision.
    pub fn peek(&self, partner_env: PartnerEnv, budget: Budget) -> Option<RateDecision> {
        self.shard(partner_env, budget).lock().get(&(partner_env, budget)).and_then(|entry| entry.last)
    }

    /// The last decision of every budget whose partner `belongs` (a shard leaving this node
    /// in a graceful handoff takes them along).
    pub fn decisions(&self, belongs: impl Fn(&PartnerEnv) -> bool) -> Vec<(PartnerEnv, Budget, RateDecision)> {
        let mut found = Vec::new();
        for shard in &self.shards {
            for ((partner_env, budget), entry) in shard.lock().iter() {
                if let Some(last) = entry.last.filter(|_| belongs(partner_env)) {
                    found.push((*partner_env, *budget, last));
                }
            }
        }
        found
    }

    /// Starts a budget where another node left it `elapsed` ago (a graceful handoff): its
    /// next check spends on a fresh limiter what was spent then, less what has refilled
    /// since. A budget this node already tracks is kept as it is.
    pub fn seed(&self, partner_env: PartnerEnv, budget: Budget, left: RateDecision, elapsed: Duration) {
        let refilled = |quota: QuotaState, period: Duration| {
            let per_cell = period.as_secs_f64() / f64::from(quota.limit.max(1));
            let cells = (elapsed.as_secs_f64() / per_cell).floor().min(f64::from(u32::MAX)) as u32;
            QuotaState { remaining: quota.remaining.saturating_add(cells).min(quota.limit), ..quota }
        };
        let now_left = RateDecision {
            hourly: refilled(left.hourly, Duration::from_secs(3_600)),
            burst: refilled(left.burst, Duration::from_secs(60)),
            ..left
        };
        let config = RateLimit { hourly: left.hourly.limit, per_minute: left.burst.limit };
        let mut shard = self.shard(partner_env, budget).lock();
        shard.entry((partner_env, budget)).or_insert_with(|| {
            let limiter = Limiter::new(config);
            limiter.carry_over(now_left);
            Entry { limiter: Arc::new(limiter), last_used: Instant::now(), last: Some(now_left) }
        });
    }

    /// Takes `units` from both quotas, burst first (a refused burst spends no hourly budget).
    pub fn check(&self, partner_env: PartnerEnv, budget: Budget, config: RateLimit, units: u32) -> Result<RateDecision, ExceedsBurst> {
        if units > config.per_minute {
            return Err(ExceedsBurst { burst: config.per_minute });
        }
        let (limiter, last) = self.limiter(partner_env, budget, config);
        let units = non_zero(units);
        let empty = |limit: u32, reset_secs: u64| QuotaState { limit, remaining: 0, reset_secs };
        let refused = |wait: Duration, hourly: QuotaState, burst: QuotaState| RateDecision {
            allowed: false,
            hourly,
            burst,
            retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
        };
        let decision = match decide(&limiter.burst, config.per_minute, units) {
            // The burst refused: nothing was taken from the hourly quota, which stands as the
            // last decision left it.
            Err(wait) => {
                let hourly = last.map_or(QuotaState { limit: config.hourly, remaining: config.hourly, reset_secs: 0 }, |last| last.hourly);
                refused(wait, hourly, empty(config.per_minute, wait.as_secs().max(1)))
            }
            Ok(burst) => match decide(&limiter.hourly, config.hourly, units) {
                Ok(hourly) => RateDecision { allowed: true, hourly, burst, retry_after_secs: 0 },
                Err(wait) => refused(wait, empty(config.hourly, wait.as_secs().max(1)), burst),
            },
        };
        self.remember(partner_env, budget, decision);
        Ok(decision)
    }
}

/// Sign-in attempts per client address (login, registration, refresh): each costs an
/// Argon2 hash, so they are bounded before any is computed.
pub(crate) struct PortalAttempts {
    limiter: RateLimiter<std::net::IpAddr, governor::state::keyed::DefaultKeyedStateStore<std::net::IpAddr>, DefaultClock>,
}

impl PortalAttempts {
    pub fn new(per_minute: u32) -> PortalAttempts {
        PortalAttempts { limiter: RateLimiter::keyed(Quota::per_minute(non_zero(per_minute))) }
    }

    /// `Err(seconds)` when this address must wait.
    pub fn check(&self, address: std::net::IpAddr) -> Result<(), u64> {
        self.limiter
            .check_key(&address)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()).as_secs_f64().ceil().max(1.0) as u64)
    }

    /// Forgets addresses whose budget is full again (bounded memory).
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::IdGenerator;
    use crate::domain::model::Environment;

    fn partner() -> PartnerEnv {
        PartnerEnv::new(IdGenerator::new().next(1), Environment::Sandbox)
    }

    #[test]
    fn the_burst_refuses_first_and_says_when_to_retry() {
        let limits = RateLimits::new();
        let partner = partner();
        let config = RateLimit { hourly: 1_000, per_minute: 3 };
        for expected_remaining in [2, 1, 0] {
            let decision = limits.check(partner, Budget::Server, config, 1).expect("fits a burst");
            assert!(decision.allowed);
            assert_eq!(decision.burst.remaining, expected_remaining);
        }
        let refused = limits.check(partner, Budget::Server, config, 1).expect("fits a burst");
        assert!(!refused.allowed);
        assert!((1..=20).contains(&refused.retry_after_secs), "one cell returns in 20 s: {}", refused.retry_after_secs);
        assert_eq!((refused.hourly.limit, refused.hourly.remaining), (1_000, 997), "the hourly quota stands where it was");
    }

    #[test]
    fn budgets_and_partners_are_separate_and_a_new_limit_applies_at_once() {
        let limits = RateLimits::new();
        let (partner, other) = (partner(), partner());
        let one = RateLimit { hourly: 10, per_minute: 1 };
        assert!(limits.check(partner, Budget::Server, one, 1).expect("fits").allowed);
        assert!(!limits.check(partner, Budget::Server, one, 1).expect("fits").allowed);
        assert!(limits.check(partner, Budget::Widget, one, 1).expect("fits").allowed, "the widget budget is its own");
        assert!(limits.check(other, Budget::Server, one, 1).expect("fits").allowed, "another partner's is too");
        let raised = RateLimit { hourly: 10, per_minute: 5 };
        let after_raise = limits.check(partner, Budget::Server, raised, 1).expect("fits");
        assert!(after_raise.allowed);
        assert_eq!(after_raise.hourly.remaining, 8, "the new limit keeps what was spent: 10 − 1 before − 1 now");
        assert_eq!(limits.check(partner, Budget::Server, raised, 6), Err(ExceedsBurst { burst: 5 }));
        assert_eq!(limits.peek(partner, Budget::Server).map(|decision| decision.hourly.remaining), Some(8));
    }

    #[test]
    fn a_seeded_budget_starts_where_another_node_left_it_less_what_refilled() {
        let (limits, who) = (RateLimits::new(), partner());
        let config = RateLimit { hourly: 100, per_minute: 6 };
        for _ in 0..6 {
            assert!(limits.check(who, Budget::Server, config, 1).expect("fits").allowed);
        }
        let left = limits.decisions(|_| true);
        assert_eq!(left.len(), 1);
        let (partner_env, budget, decision) = left[0];
        assert_eq!((decision.burst.remaining, decision.hourly.remaining), (0, 94));

        let fresh = RateLimits::new();
        fresh.seed(partner_env, budget, decision, Duration::ZERO);
        assert!(!fresh.check(who, Budget::Server, config, 1).expect("fits").allowed, "the spent burst moved along");
        let later = RateLimits::new();
        // 20 s at 6 a minute: two cells back.
        later.seed(partner_env, budget, decision, Duration::from_secs(20));
        assert!(later.check(who, Budget::Server, config, 2).expect("fits").allowed);
        assert!(!later.check(who, Budget::Server, config, 1).expect("fits").allowed);
        assert!(limits.decisions(|_| false).is_empty());
    }

    #[test]
    fn the_hourly_quota_holds_when_the_burst_would_not() {
        let limits = RateLimits::new();
        let partner = partner();
        let config = RateLimit { hourly: 2, per_minute: 2 };
        assert!(limits.check(partner, Budget::Server, config, 2).expect("fits").allowed);
        let refused = limits.check(partner, Budget::Server, config, 1).expect("fits");
        assert!(!refused.allowed && refused.retry_after_secs >= 1);
    }
}
