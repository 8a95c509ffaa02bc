//! Reward rules: amount → tokens → shares per stakeholder.
//!
//! Pure functions of their arguments: no IO, no clock, no randomness. The partner actor
//! calls [`evaluate`] with the rule that applies (a campaign, or [`RewardRule::default_rule`])
//! and posts the result; `actions/quote` shows the same [`Evaluation`] without posting it.
//!
//! Invariant: the shares of an evaluation always sum to `tokens_distributed`, and
//! `tokens_distributed ≤ total_tokens ≤ TOKENS_MAX` (largest-remainder allocation).

use crate::domain::ids::Id;
use crate::domain::money::{Money, Multiplier, TOKENS_MAX, tokens_for_amount};

/// An amount tier: from `min_amount` (in ten-thousandths of a major unit) upwards,
/// `multiplier` replaces the rule's base multiplier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    pub min_amount_ten_thousandths: u128,
    pub multiplier: Multiplier,
}

/// A stakeholder type's percentage of an action's tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub stakeholder_type_code: String,
    pub percent: u8,
}

/// What turns an action into tokens: a campaign's arithmetic, or the default rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewardRule {
    pub campaign_id: Option<Id>,
    pub multiplier: Multiplier,
    pub tiers: Vec<Tier>,
    pub fixed_tokens: Option<u64>,
    pub max_tokens_per_action: Option<u64>,
    /// Empty: the tokens are split equally among all the action's stakeholders.
    pub splits: Vec<Split>,
}

impl RewardRule {
    /// No campaign: one token per major currency unit, split equally among the stakeholders.
    pub fn default_rule() -> RewardRule {
        RewardRule {
            campaign_id: None,
            multiplier: Multiplier::ONE,
            tiers: Vec::new(),
            fixed_tokens: None,
            max_tokens_per_action: None,
            splits: Vec::new(),
        }
    }
}

/// The full breakdown of one action's reward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub campaign_id: Option<Id>,
    /// The multiplier used; `None` when `fixed_tokens` decided the amount.
    pub multiplier: Option<Multiplier>,
    /// Index into the rule's tiers of the tier that applied.
    pub tier_index: Option<usize>,
    pub base_tokens: u64,
    /// `base_tokens` after `max_tokens_per_action`.
    pub total_tokens: u64,
    pub capped: bool,
    /// One share per stakeholder, in the order of the action's stakeholders.
    pub shares: Vec<u64>,
    /// The sum of `shares`: less than `total_tokens` when a split's type is absent.
    pub tokens_distributed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("this rule needs an amount and currency (only fixedTokens campaigns apply without them)")]
    AmountRequired,
    #[error("the reward would exceed {} tokens", TOKENS_MAX)]
    TooManyTokens,
}

/// Applies `rule` to an action with `amount` and stakeholders of `stakeholder_types`.
pub fn evaluate(rule: &RewardRule, amount: Option<Money>, stakeholder_types: &[&str]) -> Result<Evaluation, RuleError> {
    let (base_tokens, multiplier, tier_index) = match rule.fixed_tokens {
        Some(fixed_tokens) => (u128::from(fixed_tokens), None, None),
        None => {
            let amount = amount.ok_or(RuleError::AmountRequired)?;
            let (tier_index, multiplier) = multiplier_for(rule, amount);
            (tokens_for_amount(amount, multiplier), Some(multiplier), tier_index)
        }
    };
    let total_tokens = rule.max_tokens_per_action.map_or(base_tokens, |cap| base_tokens.min(u128::from(cap)));
    if total_tokens > u128::from(TOKENS_MAX) {
        return Err(RuleError::TooManyTokens);
    }
    let total_tokens = total_tokens as u64;
    let shares = if rule.splits.is_empty() {
        largest_remainder(total_tokens, &vec![1; stakeholder_types.len()])
    } else {
        split_by_type(total_tokens, &rule.splits, stakeholder_types)
    };
    let tokens_distributed = shares.iter().sum();
    assert!(tokens_distributed <= total_tokens, "shares never exceed the total");
    Ok(Evaluation {
        campaign_id: rule.campaign_id,
        multiplier,
        tier_index,
        base_tokens: u64::try_from(base_tokens).unwrap_or(u64::MAX),
        total_tokens,
        capped: u128::from(total_tokens) < base_tokens,
        shares,
        tokens_distributed,
    })
}

/// The highest tier whose minimum the amount reaches, else the rule's own multiplier.
fn multiplier_for(rule: &RewardRule, amount: Money) -> (Option<usize>, Multiplier) {
    let amount_scaled = amount.ten_thousandths();
    rule.tiers
        .iter()
        .enumerate()
        .filter(|(_, tier)| tier.min_amount_ten_thousandths <= amount_scaled)
        .max_by(|(index_a, a), (index_b, b)| a.min_amount_ten_thousandths.cmp(&b.min_amount_ten_thousandths).then(index_b.cmp(index_a)))
        .map_or((None, rule.multiplier), |(index, tier)| (Some(index), tier.multiplier))
}

/// Splits `total` by `splits` percentages, then each type's share equally among the
/// stakeholders of that type. Types absent from the action are not issued; stakeholders
/// whose type has no split get nothing.
pub fn split_by_type(total: u64, splits: &[Split], stakeholder_types: &[&str]) -> Vec<u64> {
    let percents: Vec<u64> = splits.iter().map(|split| u64::from(split.percent)).collect();
    let type_totals = largest_remainder(total, &percents);
    let mut shares = vec![0u64; stakeholder_types.len()];
    for (split, type_total) in splits.iter().zip(type_totals) {
        let members: Vec<usize> =
            stakeholder_types.iter().enumerate().filter(|(_, code)| **code == split.stakeholder_type_code).map(|(index, _)| index).collect();
        if members.is_empty() {
            continue;
        }
        let member_shares = largest_remainder(type_total, &vec![1; members.len()]);
        for (member, share) in members.into_iter().zip(member_shares) {
            shares[member] = share;
        }
    }
    shares
}

/// Divides `total` in proportion to `weights` into integers that sum exactly to `total`
/// (Hamilton's largest-remainder method). Each share gets the floor of its exact quota;
/// the units left over go to the largest remainders, ties to the earlier index.
/// With no positive weight there is nothing to divide by, and every share is 0.
pub fn largest_remainder(total: u64, weights: &[u64]) -> Vec<u64> {
    let weight_sum: u128 = weights.iter().map(|weight| u128::from(*weight)).sum();
    if weight_sum == 0 {
        return vec![0; weights.len()];
    }
    let mut shares = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    for (index, weight) in weights.iter().enumerate() {
        let exact = u128::from(total) * u128::from(*weight);
        shares.push((exact / weight_sum) as u64);
        remainders.push((exact % weight_sum, index));
    }
    let floor_sum: u64 = shares.iter().sum();
    let left_over = (total - floor_sum) as usize;
    remainders.sort_by(|(remainder_a, index_a), (remainder_b, index_b)| remainder_b.cmp(remainder_a).then(index_a.cmp(index_b)));
    for (_, index) in remainders.into_iter().take(left_over) {
        shares[index] += 1;
    }
    debug_assert_eq!(shares.iter().sum::<u64>(), total);
    shares
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::Currency;
    use proptest::prelude::*;

    fn usd(minor: u64) -> Money {
        Money { minor, currency: Currency::from_code("USD").expect("USD") }
    }

    fn split(code: &str, percent: u8) -> Split {
        Split { stakeholder_type_code: code.to_owned(), percent }
    }

    fn check(rule: &RewardRule, amount: Option<Money>, types: &[&str], expected_shares: &[u64]) {
        let evaluation = evaluate(rule, amount, types).expect("rule applies");
        assert_eq!(evaluation.shares, expected_shares, "{rule:?} {amount:?} {types:?}");
        assert_eq!(evaluation.tokens_distributed, expected_shares.iter().sum::<u64>());
    }

    #[test]
    fn default_rule_pays_one_token_per_unit_split_equally() {
        let rule = RewardRule::default_rule();
        check(&rule, Some(usd(4999)), &["CUSTOMER"], &[50]);
        check(&rule, Some(usd(10_000)), &["CUSTOMER", "CUSTOMER", "CUSTOMER"], &[34, 33, 33]);
        check(&rule, Some(usd(49)), &["CUSTOMER"], &[0]);
        assert_eq!(evaluate(&rule, None, &["CUSTOMER"]), Err(RuleError::AmountRequired));
    }

    #[test]
    fn tiers_fixed_tokens_and_caps() {
        let rule = RewardRule {
            multiplier: Multiplier::parse("1").expect("valid"),
            tiers: vec![
                Tier { min_amount_ten_thousandths: 100 * 10_000, multiplier: Multiplier::parse("2").expect("valid") },
                Tier { min_amount_ten_thousandths: 500 * 10_000, multiplier: Multiplier::parse("3").expect("valid") },
            ],
            max_tokens_per_action: Some(2_000),
            ..RewardRule::default_rule()
        };
        check(&rule, Some(usd(9_999)), &["CUSTOMER"], &[100]);
        check(&rule, Some(usd(10_000)), &["CUSTOMER"], &[200]);
        check(&rule, Some(usd(50_000)), &["CUSTOMER"], &[1_500]);
        let capped = evaluate(&rule, Some(usd(100_000)), &["CUSTOMER"]).expect("applies");
        assert!(capped.capped);
        assert_eq!((capped.base_tokens, capped.total_tokens, capped.tier_index), (3_000, 2_000, Some(1)));
        let fixed = RewardRule { fixed_tokens: Some(25), ..RewardRule::default_rule() };
        check(&fixed, None, &["CUSTOMER", "CUSTOMER"], &[13, 12]);
    }

    #[test]
    fn splits_by_type_then_equally_within_a_type() {
        let rule = RewardRule { splits: vec![split("CUSTOMER", 70), split("NONPROFIT", 30)], ..RewardRule::default_rule() };
        check(&rule, Some(usd(10_000)), &["CUSTOMER", "NONPROFIT"], &[70, 30]);
        check(&rule, Some(usd(10_100)), &["NONPROFIT", "CUSTOMER", "CUSTOMER"], &[30, 36, 35]);
        // An absent type is not issued; an unlisted type gets nothing.
        check(&rule, Some(usd(10_000)), &["CUSTOMER", "REFERRER"], &[70, 0]);
    }

    #[test]
    fn largest_remainder_breaks_ties_by_order() {
        assert_eq!(largest_remainder(10, &[1, 1, 1]), vec![4, 3, 3]);
        assert_eq!(largest_remainder(1, &[50, 50]), vec![1, 0]);
        assert_eq!(largest_remainder(7, &[0, 1]), vec![0, 7]);
        assert_eq!(largest_remainder(5, &[]), Vec::<u64>::new());
        assert_eq!(largest_remainder(5, &[0, 0]), vec![0, 0]);
    }

    #[test]
    fn too_many_tokens_is_refused() {
        let rule = RewardRule { fixed_tokens: Some(TOKENS_MAX + 1), ..RewardRule::default_rule() };
        assert_eq!(evaluate(&rule, None, &["CUSTOMER"]), Err(RuleError::TooManyTokens));
    }

    proptest! {
        #[test]
        fn shares_always_sum_to_the_total(total in 0u64..=TOKENS_MAX, weights in prop::collection::vec(0u64..1_000, 1..20)) {
            let shares = largest_remainder(total, &weights);
            let weight_sum: u128 = weights.iter().map(|w| u128::from(*w)).sum();
            match u128::from(total).checked_div(weight_sum) {
                None => prop_assert!(shares.iter().all(|share| *share == 0)),
                Some(_) => {
                    prop_assert_eq!(shares.iter().sum::<u64>(), total);
                    for (share, weight) in shares.iter().zip(&weights) {
                        // Each share is its exact quota rounded down or up by one.
                        let exact_floor = u128::from(total) * u128::from(*weight) / weight_sum;
                        prop_assert!(u128::from(*share) == exact_floor || u128::from(*share) == exact_floor + 1);
                    }
                }
            }
        }

        #[test]
        fn split_shares_never_exceed_the_total(total in 0u64..1_000_000_000, customers in 0usize..5, nonprofits in 0usize..5) {
            let splits = vec![split("CUSTOMER", 60), split("NONPROFIT", 40)];
            let mut types = vec!["CUSTOMER"; customers];
            types.extend(vec!["NONPROFIT"; nonprofits]);
            let shares = split_by_type(total, &splits, &types);
            let sum: u64 = shares.iter().sum();
            prop_assert!(sum <= total);
            if customers > 0 && nonprofits > 0 {
                prop_assert_eq!(sum, total);
            }
        }
    }
}
