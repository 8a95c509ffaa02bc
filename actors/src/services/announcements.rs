//! Announcements: events that operator-side writes decide (a partner's status changed, a
//! key is about to expire) but that only a partner's actor may record, since it alone
//! assigns the feed's sequence.
//!
//! The write that decides the event stores an announcement in the same commit; delivery
//! then records it through the actor, which marks it recorded in the same commit (an
//! idempotency record of scope `AnnouncementRecorded`), and deletes it. Delivery runs right
//! after the write and again on every housekeeping tick, so an announcement survives a
//! refusal (503), a crash or a restart: recorded exactly once, never lost. In a cluster the
//! partner's owner records it and the admin shard's holder deletes it once marked.

use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::engine::error::EngineError;

use crate::domain::model::{IdempotencyScope, PartnerEnv};
use crate::store::records;
use crate::store::{ScanOrder, WriteOp};
use crate::webhooks::EventType;

/// `pub(crate)` for the audit, which decodes every stored value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Announcement {
    partner_env: PartnerEnv,
    event_type: EventType,
    data_json: Vec<u8>,
}

/// Announcements recorded per delivery pass: bounds one pass; the next tick continues.
const DELIVERY_BATCH_MAX: usize = 1_000;

impl Engine {
    /// The write op that stores an announcement (to go in the deciding write's commit).
    pub(crate) fn announcement(&self, partner_env: PartnerEnv, event_type: EventType, data: &serde_json::Value) -> WriteOp {
        let announcement = Announcement { partner_env, event_type, data_json: serde_json::to_vec(data).expect("JSON values serialize") };
        records::announcement(self.ids().next(self.clock().now_ms())).put(&announcement)
    }

    /// Records pending announcements through their partners' actors, oldest first, and
    /// answers how many were settled. Each is recorded at most once (the actor marks it in
    /// the feed's commit), then deleted. In a cluster, a node records those whose partner it
    /// holds, and the admin shard's holder deletes those marked recorded, whoever recorded
    /// them; one that cannot be recorded or deleted now stays for the next pass.
    pub(crate) async fn deliver_announcements(&self) -> Result<usize, EngineError> {
        let _delivering = self.inner.announce_lock.lock().await;
        let pending = records::announcements().scan(self.shared().store.as_ref(), ScanOrder::Ascending, DELIVERY_BATCH_MAX);
        let pending = pending.map_err(|error| EngineError::internal("reading announcements", error))?;
        let cluster = self.shared().cluster.clone();
        let mut delivered = 0;
        for row in pending {
            let announcement = row.record().map_err(|error| EngineError::internal("decoding an announcement", error))?;
            let Some(announcement_id) = row.key.id() else {
                tracing::error!("an announcement's key holds no id; it stays");
                continue;
            };
            let mark = records::idempotency(&announcement.partner_env, IdempotencyScope::AnnouncementRecorded, &announcement_id.to_hex());
            let recorded = mark.exists(self.shared().store.as_ref()).map_err(|error| EngineError::internal("reading an announcement's mark", error))?;
            if !recorded {
                // In a cluster only the partner's owner records it.
                if cluster.as_ref().is_some_and(|ownership| ownership.epoch_for(&announcement.partner_env).is_none()) {
                    continue;
                }
                let data: serde_json::Value =
                    serde_json::from_slice(&announcement.data_json).map_err(|error| EngineError::internal("announcement data", error))?;
                let webhooks = self.webhooks();
                if let Err(error) = webhooks.record_announcement(announcement.partner_env, announcement.event_type, data, announcement_id).await {
                    tracing::warn!(%error, event_type = %announcement.event_type, "an announcement waits for the next pass");
                    continue;
                }
            }
            if !self.holds_admin_shard() {
                continue;
            }
            self.commit_admin(vec![row.key.delete()]).await?;
            delivered += 1;
        }
        Ok(delivered)
    }
}
