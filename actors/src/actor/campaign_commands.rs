//! Campaigns written through the actor (it owns their budgets): create and update, with
//! the status lifecycle and `campaign.status_changed`.

use serde_json::json;

use super::{ActorReply, PartnerActor, WriteOutcome};
use crate::api::views::CampaignView;
use crate::domain::ids::Id;
use crate::domain::model::{CampaignRecord, CampaignStatus, Effect};
use crate::domain::posting::{Changes, EventBuilder, RewardPosting};
use crate::domain::request::CampaignFields;
use crate::engine::error::EngineError;

/// Applies the fields given; the budget keeps what was spent when `budgetTokens` changes.
fn apply_fields(campaign: &mut CampaignRecord, fields: &CampaignFields) {
    let CampaignFields {
        name,
        status,
        action_types,
        priority,
        multiplier_ten_thousandths,
        tiers,
        fixed_tokens,
        max_tokens_per_action,
        splits,
        starts_at_ms,
        ends_at_ms,
        budget_tokens,
        token_pool_id,
        currencies,
        metadata_json,
    } = fields.clone();
    if let Some(budget_tokens) = budget_tokens {
        let spent = campaign.budget_tokens.zip(campaign.budget_remaining).map_or(0, |(budget, remaining)| budget.saturating_sub(remaining));
        campaign.budget_tokens = budget_tokens;
        campaign.budget_remaining = budget_tokens.map(|budget| budget.saturating_sub(spent));
    }
    macro_rules! replace {
        ($($field:ident),*) => { $( if let Some(value) = $field { campaign.$field = value; } )* };
    }
    replace!(
        name,
        status,
        action_types,
        priority,
        multiplier_ten_thousandths,
        tiers,
        fixed_tokens,
        max_tokens_per_action,
        splits,
        starts_at_ms,
        ends_at_ms,
        token_pool_id,
        currencies,
        metadata_json
    );
}

impl PartnerActor {
    fn check_campaign(&self, campaign: &CampaignRecord) -> Result<(), EngineError> {
        if let Some(pool_id) = campaign.token_pool_id
            && !self.loaded().pools.contains_key(&pool_id)
        {
            return Err(EngineError::Invalid { field: "tokenPoolId".into(), message: format!("token pool {pool_id} does not exist") });
        }
        if let (Some(starts), Some(ends)) = (campaign.starts_at_ms, campaign.ends_at_ms)
            && starts >= ends
        {
            return Err(EngineError::Invalid { field: "schedule".into(), message: "startsAt must be before endsAt".into() });
        }
        Ok(())
    }

    fn write_campaign(
        &mut self,
        campaign: CampaignRecord,
        previous_status: Option<CampaignStatus>,
        effect: Effect,
        now_ms: u64,
    ) -> ActorReply<WriteOutcome> {
        if let Err(error) = self.check_campaign(&campaign) {
            return ActorReply::failed(error);
        }
        let response_json = serde_json::to_vec(&CampaignView::from(&campaign)).expect("serializing a campaign view cannot fail");
        let mut events = EventBuilder {
            partner_env: self.partner_env,
            ids: &self.shared.ids,
            now_ms,
            next_sequence: self.loaded().env_state.next_event_sequence,
            events: Vec::new(),
        };
        if let Some(previous) = previous_status.filter(|previous| *previous != campaign.status) {
            events.push(
                crate::webhooks::EventType::CampaignStatusChanged,
                &json!({ "campaignId": campaign.id.to_hex(), "previousStatus": previous, "status": campaign.status }),
            );
        }
        let EventBuilder { next_sequence, events, .. } = events;
        let posting = RewardPosting {
            changes: Changes { campaigns: vec![campaign], events, ..Changes::default() },
            response_json,
            next_event_sequence: next_sequence,
        };
        self.finish(posting, None, "", effect, (0, 0, 0), now_ms)
    }

    pub(super) fn create_campaign(&mut self, fields: &CampaignFields, now_ms: u64) -> ActorReply<WriteOutcome> {
        let campaigns_max = self.shared.config.campaigns_per_partner_max;
        if self.loaded().campaigns.len() >= campaigns_max {
            return ActorReply::failed(EngineError::Conflict {
                message: format!("a partner may hold at most {campaigns_max} campaigns per environment"),
            });
        }
        let mut campaign = CampaignRecord {
            id: self.shared.ids.next(now_ms),
            name: String::new(),
            status: CampaignStatus::Draft,
            action_types: Vec::new(),
            priority: 0,
            multiplier_ten_thousandths: 10_000,
            tiers: Vec::new(),
            fixed_tokens: None,
            max_tokens_per_action: None,
            splits: Vec::new(),
            starts_at_ms: None,
            ends_at_ms: None,
            budget_tokens: None,
            budget_remaining: None,
            token_pool_id: None,
            currencies: Vec::new(),
            metadata_json: None,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        };
        apply_fields(&mut campaign, fields);
        self.write_campaign(campaign, None, Effect::Created, now_ms)
    }

    pub(super) fn update_campaign(&mut self, campaign_id: Id, fields: &CampaignFields, now_ms: u64) -> ActorReply<WriteOutcome> {
        let Some(current) = self.loaded().campaigns.get(&campaign_id).cloned() else {
            return ActorReply::failed(EngineError::NotFound { resource: "campaign" });
        };
        if let Some(next) = fields.status
            && !current.status.may_become(next)
        {
            return ActorReply::failed(EngineError::Conflict {
                message: format!("a {:?} campaign cannot become {next:?}", current.status).to_uppercase(),
            });
        }
        let mut campaign = current.clone();
        apply_fields(&mut campaign, fields);
        campaign.updated_at_ms = now_ms;
        self.write_campaign(campaign, Some(current.status), Effect::Applied, now_ms)
    }
}
