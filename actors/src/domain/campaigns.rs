//! Campaign selection and arithmetic glue: which campaign applies to an action, and the
//! reward rule it stands for. Pure: the clock comes in as `now_ms`.
//!
//! Selection (contract §6 item 2): a named campaign must be ACTIVE, in its schedule, and
//! match the action's type and currency, else the action is refused (422). Without a name,
//! the highest-priority applicable ACTIVE campaign wins (ties: the oldest), else the default
//! rule. A campaign without `fixedTokens` needs an amount.

use crate::engine::error::EngineError;
use crate::domain::ids::Id;
use crate::domain::model::{CampaignRecord, CampaignStatus};
use crate::domain::money::{Money, Multiplier};
use crate::domain::rules::{RewardRule, Split, Tier};

/// Why a campaign does not apply (the 422's message).
pub fn why_not_applicable(campaign: &CampaignRecord, action_type: &str, amount: Option<Money>, now_ms: u64) -> Option<String> {
    if campaign.status != CampaignStatus::Active {
        return Some(
            format!("campaign {} is {:?}, not ACTIVE", campaign.id, campaign.status)
                .replace("Draft", "DRAFT")
                .replace("Paused", "PAUSED")
                .replace("Ended", "ENDED"),
        );
    }
    if campaign.starts_at_ms.is_some_and(|starts| now_ms < starts) || campaign.ends_at_ms.is_some_and(|ends| now_ms >= ends) {
        return Some(format!("campaign {} is outside its schedule", campaign.id));
    }
    if !campaign.action_types.is_empty() && !campaign.action_types.iter().any(|listed| listed == action_type) {
        return Some(format!("campaign {} does not apply to action type {action_type}", campaign.id));
    }
    match amount {
        Some(money) if !campaign.currencies.is_empty() && !campaign.currencies.iter().any(|code| code == money.currency.code()) => {
            Some(format!("campaign {} does not apply to {}", campaign.id, money.currency.code()))
        }
        None if campaign.fixed_tokens.is_none() => Some(format!("campaign {} needs an amount and currency (it has no fixedTokens)", campaign.id)),
        _ => None,
    }
}

/// The campaign an action gets: the named one if it applies (else why not), or the best
/// applicable one, or none (the default rule).
pub fn select<'a>(
    campaigns: impl IntoIterator<Item = &'a CampaignRecord>,
    named: Option<Id>,
    action_type: &str,
    amount: Option<Money>,
    now_ms: u64,
) -> Result<Option<&'a CampaignRecord>, String> {
    let mut campaigns = campaigns.into_iter();
    if let Some(campaign_id) = named {
        let campaign = campaigns.find(|campaign| campaign.id == campaign_id).ok_or_else(|| format!("campaign {campaign_id} does not exist"))?;
        return match why_not_applicable(campaign, action_type, amount, now_ms) {
            Some(reason) => Err(reason),
            None => Ok(Some(campaign)),
        };
    }
    Ok(campaigns
        .filter(|campaign| why_not_applicable(campaign, action_type, amount, now_ms).is_none())
        .max_by(|a, b| a.priority.cmp(&b.priority).then(b.created_at_ms.cmp(&a.created_at_ms)).then(b.id.cmp(&a.id))))
}

/// Whether the campaign's budget covers `required` tokens (no budget: unlimited).
pub fn budget_covers(campaign: &CampaignRecord, required: u64) -> Result<(), EngineError> {
    match campaign.budget_remaining {
        Some(remaining) if remaining < required => Err(EngineError::CampaignBudgetExhausted { campaign_id: campaign.id, required, remaining }),
        _ => Ok(()),
    }
}

/// The reward rule a campaign stands for.
pub fn rule(campaign: &CampaignRecord) -> RewardRule {
    let multiplier = |value: u64| Multiplier::from_ten_thousandths(value).unwrap_or(Multiplier::ONE);
    RewardRule {
        campaign_id: Some(campaign.id),
        multiplier: multiplier(campaign.multiplier_ten_thousandths),
        tiers: campaign
            .tiers
            .iter()
            .map(|tier| Tier {
                min_amount_ten_thousandths: u128::from(tier.min_amount_ten_thousandths),
                multiplier: multiplier(tier.multiplier_ten_thousandths),
            })
            .collect(),
        fixed_tokens: campaign.fixed_tokens,
        max_tokens_per_action: campaign.max_tokens_per_action,
        splits: campaign
            .splits
            .iter()
            .map(|split| Split { stakeholder_type_code: split.stakeholder_type_code.clone(), percent: split.percent })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::IdGenerator;
    use crate::domain::model::CampaignSplit;
    use crate::domain::money::Currency;

    fn campaign(ids: &IdGenerator, priority: i32, created_at_ms: u64) -> CampaignRecord {
        CampaignRecord {
            id: ids.next(created_at_ms),
            name: "c".into(),
            status: CampaignStatus::Active,
            action_types: vec!["PURCHASE".into()],
            priority,
            multiplier_ten_thousandths: 20_000,
            tiers: Vec::new(),
            fixed_tokens: None,
            max_tokens_per_action: None,
            splits: Vec::new(),
            starts_at_ms: Some(100),
            ends_at_ms: Some(200),
            budget_tokens: None,
            budget_remaining: None,
            token_pool_id: None,
            currencies: Vec::new(),
            metadata_json: None,
            created_at_ms,
            updated_at_ms: created_at_ms,
        }
    }

    fn usd() -> Option<Money> {
        Some(Money { minor: 1_000, currency: Currency::from_code("USD").expect("USD") })
    }

    #[test]
    fn the_highest_priority_applicable_campaign_wins_ties_to_the_oldest() {
        let ids = IdGenerator::new();
        let low = campaign(&ids, 1, 1);
        let old_high = campaign(&ids, 5, 2);
        let new_high = campaign(&ids, 5, 3);
        let all = [low.clone(), new_high.clone(), old_high.clone()];
        assert_eq!(select(&all, None, "PURCHASE", usd(), 150).expect("selects").map(|c| c.id), Some(old_high.id));
        assert_eq!(select(&all, None, "DONATION", usd(), 150).expect("selects"), None, "no campaign for the type: the default rule");
        assert_eq!(select(&all, None, "PURCHASE", usd(), 200).expect("selects"), None, "the schedule's end is exclusive");
        assert_eq!(select(&all, None, "PURCHASE", usd(), 99).expect("selects"), None, "not started");
        assert_eq!(
            select(&all, Some(low.id), "PURCHASE", usd(), 150).expect("named").map(|c| c.id),
            Some(low.id),
            "a named campaign is used even if not the best"
        );
    }

    #[test]
    fn a_named_campaign_that_does_not_apply_says_why() {
        let ids = IdGenerator::new();
        let paused = CampaignRecord { status: CampaignStatus::Paused, ..campaign(&ids, 1, 1) };
        let euro_only = CampaignRecord { currencies: vec!["EUR".into()], ..campaign(&ids, 1, 1) };
        let fixed = CampaignRecord { fixed_tokens: Some(10), ..campaign(&ids, 1, 1) };
        assert!(select([&paused], Some(paused.id), "PURCHASE", usd(), 150).expect_err("paused").contains("PAUSED"));
        assert!(select([&euro_only], Some(euro_only.id), "PURCHASE", usd(), 150).expect_err("currency").contains("USD"));
        assert!(select([&paused], Some(euro_only.id), "PURCHASE", usd(), 150).expect_err("unknown").contains("does not exist"));
        assert!(select([&euro_only], Some(euro_only.id), "PURCHASE", None, 150).expect_err("no amount").contains("needs an amount"));
        assert_eq!(select([&fixed], Some(fixed.id), "PURCHASE", None, 150).expect("fixed tokens need no amount").map(|c| c.id), Some(fixed.id));
    }

    /// One row of the selection-and-arithmetic table: a campaign (or none), an action, and
    /// the shares it must pay (or the refusal it must get).
    struct Case {
        name: &'static str,
        campaign: Option<fn(CampaignRecord) -> CampaignRecord>,
        action_type: &'static str,
        amount: Option<(&'static str, &'static str)>,
        stakeholders: &'static [&'static str],
        now_ms: u64,
        expected: Result<&'static [u64], &'static str>,
    }

    fn run(case: &Case) -> Result<Vec<u64>, String> {
        let ids = IdGenerator::new();
        let campaigns: Vec<CampaignRecord> = case.campaign.map(|tweak| tweak(campaign(&ids, 1, 1))).into_iter().collect();
        let amount = case.amount.map(|(text, code)| {
            let currency = Currency::from_code(code).expect("a known currency");
            Money { minor: crate::domain::money::parse_amount(text, currency).map_err(|error| error.to_string()).expect("a valid amount"), currency }
        });
        let chosen = select(&campaigns, None, case.action_type, amount, case.now_ms)?;
        let rule = chosen.map_or_else(RewardRule::default_rule, rule);
        let evaluation = crate::domain::rules::evaluate(&rule, amount, case.stakeholders).map_err(|error| error.to_string())?;
        if let Some(campaign) = chosen {
            budget_covers(campaign, evaluation.tokens_distributed).map_err(|error| error.code().to_owned())?;
        }
        assert_eq!(evaluation.shares.iter().sum::<u64>(), evaluation.tokens_distributed, "{}: shares sum to the total", case.name);
        Ok(evaluation.shares)
    }

    fn splits(parts: &[(&str, u8)]) -> Vec<CampaignSplit> {
        parts.iter().map(|(code, percent)| CampaignSplit { stakeholder_type_code: (*code).into(), percent: *percent }).collect()
    }

    #[test]
    fn selection_and_arithmetic_table() {
        use crate::domain::model::CampaignTier;
        const NOW: u64 = 150;
        let cases = [
            Case {
                name: "SIR example: 49.99 USD at 1x",
                campaign: None,
                action_type: "PURCHASE",
                amount: Some(("49.99", "USD")),
                stakeholders: &["CUSTOMER"],
                now_ms: NOW,
                expected: Ok(&[50]),
            },
            Case {
                name: "half a token rounds up",
                campaign: None,
                action_type: "PURCHASE",
                amount: Some(("0.50", "USD")),
                stakeholders: &["CUSTOMER"],
                now_ms: NOW,
                expected: Ok(&[1]),
            },
            Case {
                name: "just under half rounds down",
                campaign: None,
                action_type: "PURCHASE",
                amount: Some(("0.49", "USD")),
                stakeholders: &["CUSTOMER"],
                now_ms: NOW,
                expected: Ok(&[0]),
            },
            Case {
                name: "0.005 of a 3-decimal currency is 0 tokens",
                campaign: None,
                action_type: "PURCHASE",
                amount: Some(("0.005", "KWD")),
                stakeholders: &["CUSTOMER"],
                now_ms: NOW,
                expected: Ok(&[0]),
            },
            Case {
                name: "0.005 KWD at 100x is exactly half a token: rounds up",
                campaign: Some(|c| CampaignRecord { multiplier_ten_thousandths: 1_000_000, ..c }),
                action_type: "PURCHASE",
                amount: Some(("0.005", "KWD")),
                stakeholders: &["CUSTOMER"],
                now_ms: NOW,
                expected: Ok(&[1]),
            },
            Case {
                name: "zero-decimal currency: one token per yen",
                campaign: None,
                action_type: "PURCHASE",
                amount: Some(("1000", "JPY")),
                stakeholders: &["CUSTOMER"],
                now_ms: NOW,
                expected: Ok(&[1000]),
            },
            Case {
                name: "huge amount at the token maximum",
                campaign: None,
                action_type: "PURCHASE",
                amount: Some(("9007199254740991", "JPY")),
                stakeholders: &["CUSTOMER"],
                now_ms: NOW,
                expected: Ok(&[9_007_199_254_740_991]),
            },
            Case {
                name: "huge amount past the token maximum is refused",
                campaign: Some(|c| CampaignRecord { multiplier_ten_thousandths: 10_000_000, ..c }),
                action_type: "PURCHASE",
                amount: Some(("90071992547409.91", "USD")),
                stakeholders: &["CUSTOMER"],
                now_ms: NOW,
                expected: Err("exceed"),
            },
            Case {
                name: "the highest tier reached applies (tiers unordered)",
                campaign: Some(|c| CampaignRecord {
                    tiers: vec![
                        CampaignTier { min_amount_ten_thousandths: 1_000_000, multiplier_ten_thousandths: 30_000 },
                        CampaignTier { min_amount_ten_thousandths: 500_000, multiplier_ten_thousandths: 15_000 },
                    ],
                    ..c
                }),
                action_type: "PURCHASE",
                amount: Some(("50.00", "USD")),
                stakeholders: &["CUSTOMER"],
                now_ms: NOW,
                expected: Ok(&[75]),
            },
            Case {
                name: "below every tier: the campaign multiplier",
                campaign: Some(|c| CampaignRecord {
                    tiers: vec![CampaignTier { min_amount_ten_thousandths: 500_000, multiplier_ten_thousandths: 15_000 }],
                    ..c
                }),
                action_type: "PURCHASE",
                amount: Some(("49.99", "USD")),
                stakeholders: &["CUSTOMER"],
                now_ms: NOW,
                expected: Ok(&[100]),
            },
            Case {
                name: "fixed tokens replace the amount",
                campaign: Some(|c| CampaignRecord { fixed_tokens: Some(7), ..c }),
                action_type: "PURCHASE",
                amount: Some(("1000.00", "USD")),
                stakeholders: &["CUSTOMER"],
                now_ms: NOW,
                expected: Ok(&[7]),
            },
            Case {
                name: "fixed tokens need no amount",
                campaign: Some(|c| CampaignRecord { fixed_tokens: Some(7), ..c }),
                action_type: "PURCHASE",
                amount: None,
                stakeholders: &["CUSTOMER"],
                now_ms: NOW,
                expected: Ok(&[7]),
            },
            Case {
                name: "no amount and no fixed tokens",
                campaign: None,
                action_type: "PURCHASE",
                amount: None,
                stakeholders: &["CUSTOMER"],
                now_ms: NOW,
                expected: Err("needs an amount"),
            },
            Case {
                name: "the cap limits the total",
                campaign: Some(|c| CampaignRecord { max_tokens_per_action: Some(60), ..c }),
                action_type: "PURCHASE",
                amount: Some(("49.99", "USD")),
                stakeholders: &["CUSTOMER"],
                now_ms: NOW,
                expected: Ok(&[60]),
            },
            Case {
                name: "70/30 with two customers: the customers' 70 split equally",
                campaign: Some(|c| CampaignRecord {
                    multiplier_ten_thousandths: 10_000,
                    splits: splits(&[("CUSTOMER", 70), ("NONPROFIT", 30)]),
                    ..c
                }),
                action_type: "PURCHASE",
                amount: Some(("101", "USD")),
                stakeholders: &["CUSTOMER", "NONPROFIT", "CUSTOMER"],
                now_ms: NOW,
                expected: Ok(&[36, 30, 35]),
            },
            Case {
                name: "a type absent from the action is not issued",
                campaign: Some(|c| CampaignRecord {
                    multiplier_ten_thousandths: 10_000,
                    splits: splits(&[("CUSTOMER", 70), ("NONPROFIT", 30)]),
                    ..c
                }),
                action_type: "PURCHASE",
                amount: Some(("100", "USD")),
                stakeholders: &["CUSTOMER"],
                now_ms: NOW,
                expected: Ok(&[70]),
            },
            Case {
                name: "a stakeholder whose type has no split gets nothing",
                campaign: Some(|c| CampaignRecord { multiplier_ten_thousandths: 10_000, splits: splits(&[("CUSTOMER", 100)]), ..c }),
                action_type: "PURCHASE",
                amount: Some(("10", "USD")),
                stakeholders: &["CUSTOMER", "REFERRER"],
                now_ms: NOW,
                expected: Ok(&[10, 0]),
            },
            Case {
                name: "the default rule splits equally, remainder by order",
                campaign: None,
                action_type: "PURCHASE",
                amount: Some(("10", "USD")),
                stakeholders: &["CUSTOMER", "NONPROFIT", "REFERRER"],
                now_ms: NOW,
                expected: Ok(&[4, 3, 3]),
            },
            Case {
                name: "schedule start is inclusive",
                campaign: Some(|c| c),
                action_type: "PURCHASE",
                amount: Some(("10", "USD")),
                stakeholders: &["CUSTOMER"],
                now_ms: 100,
                expected: Ok(&[20]),
            },
            Case {
                name: "before the start: default rule",
                campaign: Some(|c| c),
                action_type: "PURCHASE",
                amount: Some(("10", "USD")),
                stakeholders: &["CUSTOMER"],
                now_ms: 99,
                expected: Ok(&[10]),
            },
            Case {
                name: "last instant before the end",
                campaign: Some(|c| c),
                action_type: "PURCHASE",
                amount: Some(("10", "USD")),
                stakeholders: &["CUSTOMER"],
                now_ms: 199,
                expected: Ok(&[20]),
            },
            Case {
                name: "schedule end is exclusive",
                campaign: Some(|c| c),
                action_type: "PURCHASE",
                amount: Some(("10", "USD")),
                stakeholders: &["CUSTOMER"],
                now_ms: 200,
                expected: Ok(&[10]),
            },
            Case {
                name: "another action type: default rule",
                campaign: Some(|c| c),
                action_type: "DONATION",
                amount: Some(("10", "USD")),
                stakeholders: &["CUSTOMER"],
                now_ms: NOW,
                expected: Ok(&[10]),
            },
            Case {
                name: "budget exactly covers the reward",
                campaign: Some(|c| CampaignRecord { budget_tokens: Some(100), budget_remaining: Some(20), ..c }),
                action_type: "PURCHASE",
                amount: Some(("10", "USD")),
                stakeholders: &["CUSTOMER"],
                now_ms: NOW,
                expected: Ok(&[20]),
            },
            Case {
                name: "budget one token short",
                campaign: Some(|c| CampaignRecord { budget_tokens: Some(100), budget_remaining: Some(19), ..c }),
                action_type: "PURCHASE",
                amount: Some(("10", "USD")),
                stakeholders: &["CUSTOMER"],
                now_ms: NOW,
                expected: Err("CAMPAIGN_BUDGET_EXHAUSTED"),
            },
            Case {
                name: "an exhausted budget still pays a 0-token action",
                campaign: Some(|c| CampaignRecord { budget_tokens: Some(100), budget_remaining: Some(0), ..c }),
                action_type: "PURCHASE",
                amount: Some(("0.10", "USD")),
                stakeholders: &["CUSTOMER"],
                now_ms: NOW,
                expected: Ok(&[0]),
            },
        ];
        for case in &cases {
            match (run(case), case.expected) {
                (Ok(shares), Ok(expected)) => assert_eq!(shares, expected, "{}", case.name),
                (Err(error), Err(expected)) => assert!(error.contains(expected), "{}: {error}", case.name),
                (got, expected) => panic!("{}: got {got:?}, expected {expected:?}", case.name),
            }
        }
    }
}
