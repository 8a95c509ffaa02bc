//! Campaign selection and arithmetic glue: which campaign applies to an action, and the
//! reward rule it stands for. Pure: the clock comes in as `now_ms`.
//!
//! Selection (contract §6 item 2): a named campaign must be ACTIVE, in its schedule, and
//! match the action's type and currency, else the action is refused (422). Without a name,
//! the highest-priority applicable ACTIVE campaign wins (ties: the oldest), else the default
//! rule. A campaign without `fixedTokens` needs an amount.

use crate::ids::Id;
use crate::model::{CampaignRecord, CampaignStatus};
use crate::money::{Money, Multiplier};
use crate::rules::{RewardRule, Split, Tier};

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
    use crate::ids::IdGenerator;
    use crate::money::Currency;

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
}
