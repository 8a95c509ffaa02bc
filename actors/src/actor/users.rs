//! Users written through the actor (it caches their balances): create, update, redeem.

use super::{ActorReply, PartnerActor, WriteOutcome};
use crate::api::views::UserView;
use crate::domain::model::{Effect, IdempotencyScope, UserRecord};
use crate::domain::posting::{Changes, PostingUser, RewardPosting, post_redemption};
use crate::domain::request::{PartnerUserId, RedemptionRequest, UserProfile};
use crate::engine::error::EngineError;

fn apply_profile(user: &mut UserRecord, profile: &UserProfile) {
    if let Some(email) = &profile.email {
        user.email = email.clone();
    }
    if let Some(first_name) = &profile.first_name {
        user.first_name = first_name.clone();
    }
    if let Some(last_name) = &profile.last_name {
        user.last_name = last_name.clone();
    }
    if let Some(metadata) = &profile.metadata_json {
        user.metadata_json = metadata.clone();
    }
}

impl PartnerActor {
    fn write_user(&mut self, user: PostingUser, effect: Effect, now_ms: u64) -> ActorReply<WriteOutcome> {
        let response_json = serde_json::to_vec(&UserView::of(&user.record, now_ms)).expect("serializing a user view cannot fail");
        let next_event_sequence = self.loaded().env_state.next_event_sequence;
        let posting = RewardPosting { changes: Changes { users: vec![user], ..Changes::default() }, response_json, next_event_sequence };
        self.finish(posting, None, "", effect, (0, 0, 0), now_ms)
    }

    pub(super) fn create_user(&mut self, external_id: &PartnerUserId, profile: &UserProfile, now_ms: u64) -> ActorReply<WriteOutcome> {
        match self.load_user(external_id.as_str()) {
            Ok(Some(_)) => return ActorReply::failed(EngineError::Conflict { message: format!("user '{}' exists", external_id.as_str()) }),
            Ok(None) => {}
            Err(error) => return ActorReply::failed(error),
        }
        let mut user = UserRecord::new(self.shared.ids.next(now_ms), external_id.as_str(), now_ms);
        apply_profile(&mut user, profile);
        self.write_user(PostingUser { record: user, is_new: true }, Effect::Created, now_ms)
    }

    pub(super) fn update_user(&mut self, external_id: &PartnerUserId, profile: &UserProfile, now_ms: u64) -> ActorReply<WriteOutcome> {
        let mut user = match self.load_user(external_id.as_str()) {
            Ok(Some(user)) => user,
            Ok(None) => return ActorReply::failed(EngineError::UserNotFound { partner_user_id: external_id.as_str().to_owned() }),
            Err(error) => return ActorReply::failed(error),
        };
        apply_profile(&mut user, profile);
        user.updated_at_ms = now_ms;
        self.write_user(PostingUser { record: user, is_new: false }, Effect::Applied, now_ms)
    }

    pub(super) fn redeem(&mut self, request: &RedemptionRequest, request_id: &str, now_ms: u64) -> ActorReply<WriteOutcome> {
        let request_hash = request.fingerprint();
        let key = request.idempotency_key.as_str();
        if let Some(answer) = self.replay(IdempotencyScope::Redemption, key, &request_hash) {
            return answer;
        }
        let user = match self.load_user(request.partner_user_id.as_str()) {
            Ok(Some(user)) => user,
            Ok(None) => return ActorReply::failed(EngineError::UserNotFound { partner_user_id: request.partner_user_id.as_str().to_owned() }),
            Err(error) => return ActorReply::failed(error),
        };
        let available = user.available(now_ms);
        if available < i64::try_from(request.tokens).unwrap_or(i64::MAX) {
            return ActorReply::failed(EngineError::InsufficientBalance { required: request.tokens, available });
        }
        let next_event_sequence = self.loaded().env_state.next_event_sequence;
        let posting = post_redemption(self.partner_env, &user, request.tokens, &request.reason, next_event_sequence, now_ms, &self.shared.ids);
        self.finish(posting, Some((IdempotencyScope::Redemption, key, request_hash)), request_id, Effect::Applied, (0, 0, 0), now_ms)
    }
}
