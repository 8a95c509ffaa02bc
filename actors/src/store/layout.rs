//! The key layout: which bytes address which record. Every partner-owned key starts with
//! its table byte and the 13-byte (partner, environment) prefix, so one partner's data in
//! one environment is one contiguous range and tenancy is a property of the key itself.

use crate::domain::ids::Id;
use crate::domain::model::{IdempotencyScope, PartnerEnv};
use crate::store::Table;

/// Meta entries besides the schema version and the log's applied sequence (`store/mod.rs`).
/// The portal secret's and the master key check's names are also their seals' associated
/// data (`services/portal.rs`, `engine/mod.rs`).
pub const ADMIN_TOKEN_KEY: &[u8] = b"admin_token_sha256";
pub const PORTAL_SECRET_KEY: &[u8] = b"portal_jwt_secret";
pub const MASTER_KEY_CHECK: &[u8] = b"master_key_check";

pub fn admin_token_digest() -> Vec<u8> {
    Table::Meta.key(&[ADMIN_TOKEN_KEY])
}

pub fn portal_secret() -> Vec<u8> {
    Table::Meta.key(&[PORTAL_SECRET_KEY])
}

pub fn master_key_check() -> Vec<u8> {
    Table::Meta.key(&[MASTER_KEY_CHECK])
}

/// Cluster mode: changed by every admin write that can change what a key authenticates
/// (keys, their digests, partners); each node empties its auth cache when it sees it change.
pub fn auth_epoch() -> Vec<u8> {
    Table::Meta.key(&[b"auth_epoch"])
}

/// Whether a write changes what a presented key authenticates as.
pub fn changes_auth(key: &[u8]) -> bool {
    key.first().is_some_and(|table| [Table::ApiKeys as u8, Table::KeyDigests as u8, Table::Partners as u8].contains(table))
}

pub fn partner(partner_id: Id) -> Vec<u8> {
    Table::Partners.key(&[partner_id.as_bytes()])
}

pub fn partners_prefix() -> Vec<u8> {
    Table::Partners.key(&[])
}

pub fn partner_slug(slug: &str) -> Vec<u8> {
    Table::PartnerSlugs.key(&[slug.as_bytes()])
}

pub fn api_key(key_id: Id) -> Vec<u8> {
    Table::ApiKeys.key(&[key_id.as_bytes()])
}

pub fn key_digest(digest: &[u8; 32]) -> Vec<u8> {
    Table::KeyDigests.key(&[digest])
}

pub fn partner_env_state(partner_env: &PartnerEnv) -> Vec<u8> {
    Table::PartnerEnvState.key(&[&partner_env.key_prefix()])
}

pub fn pool(partner_env: &PartnerEnv, pool_id: Id) -> Vec<u8> {
    Table::Pools.key(&[&partner_env.key_prefix(), pool_id.as_bytes()])
}

pub fn pools_prefix(partner_env: &PartnerEnv) -> Vec<u8> {
    Table::Pools.key(&[&partner_env.key_prefix()])
}

pub fn user(partner_env: &PartnerEnv, external_id: &str) -> Vec<u8> {
    Table::Users.key(&[&partner_env.key_prefix(), external_id.as_bytes()])
}

pub fn action(partner_env: &PartnerEnv, action_id: Id) -> Vec<u8> {
    Table::Actions.key(&[&partner_env.key_prefix(), action_id.as_bytes()])
}

pub fn transaction(partner_env: &PartnerEnv, transaction_id: Id) -> Vec<u8> {
    Table::Transactions.key(&[&partner_env.key_prefix(), transaction_id.as_bytes()])
}

/// An index entry: the user's transactions, in id (time) order. External ids never hold a
/// 0 byte (their alphabet is `A-Z a-z 0-9 . _ : @ -`), so 0 ends the id unambiguously.
pub fn user_transaction(partner_env: &PartnerEnv, external_id: &str, transaction_id: Id) -> Vec<u8> {
    Table::UserTransactions.key(&[&partner_env.key_prefix(), external_id.as_bytes(), &[0], transaction_id.as_bytes()])
}

pub fn idempotency(partner_env: &PartnerEnv, scope: IdempotencyScope, idempotency_key: &str) -> Vec<u8> {
    Table::Idempotency.key(&[&partner_env.key_prefix(), &[scope as u8], idempotency_key.as_bytes()])
}

pub fn event(partner_env: &PartnerEnv, sequence: u64) -> Vec<u8> {
    Table::Events.key(&[&partner_env.key_prefix(), &sequence.to_be_bytes()])
}

pub fn events_prefix(partner_env: &PartnerEnv) -> Vec<u8> {
    Table::Events.key(&[&partner_env.key_prefix()])
}

pub fn partner_key(partner_id: Id, key_id: Id) -> Vec<u8> {
    Table::PartnerKeys.key(&[partner_id.as_bytes(), key_id.as_bytes()])
}

pub fn partner_keys_prefix(partner_id: Id) -> Vec<u8> {
    Table::PartnerKeys.key(&[partner_id.as_bytes()])
}

pub fn account(account_id: Id) -> Vec<u8> {
    Table::Accounts.key(&[account_id.as_bytes()])
}

pub fn account_email(email: &str) -> Vec<u8> {
    Table::AccountEmails.key(&[email.as_bytes()])
}

pub fn refresh_token(digest: &[u8; 32]) -> Vec<u8> {
    Table::RefreshTokens.key(&[digest])
}

pub fn pool_request(request_id: Id) -> Vec<u8> {
    Table::PoolRequests.key(&[request_id.as_bytes()])
}

pub fn pool_requests_prefix() -> Vec<u8> {
    Table::PoolRequests.key(&[])
}

pub fn api_keys_prefix() -> Vec<u8> {
    Table::ApiKeys.key(&[])
}

pub fn announcement(announcement_id: Id) -> Vec<u8> {
    Table::Announcements.key(&[announcement_id.as_bytes()])
}

pub fn announcements_prefix() -> Vec<u8> {
    Table::Announcements.key(&[])
}

pub fn campaign(partner_env: &PartnerEnv, campaign_id: Id) -> Vec<u8> {
    Table::Campaigns.key(&[&partner_env.key_prefix(), campaign_id.as_bytes()])
}

pub fn campaigns_prefix(partner_env: &PartnerEnv) -> Vec<u8> {
    Table::Campaigns.key(&[&partner_env.key_prefix()])
}

pub fn user_by_creation(partner_env: &PartnerEnv, user_id: Id) -> Vec<u8> {
    Table::UsersByCreation.key(&[&partner_env.key_prefix(), user_id.as_bytes()])
}

pub fn users_by_creation_prefix(partner_env: &PartnerEnv) -> Vec<u8> {
    Table::UsersByCreation.key(&[&partner_env.key_prefix()])
}

pub fn actions_prefix(partner_env: &PartnerEnv) -> Vec<u8> {
    Table::Actions.key(&[&partner_env.key_prefix()])
}

pub fn transactions_prefix(partner_env: &PartnerEnv) -> Vec<u8> {
    Table::Transactions.key(&[&partner_env.key_prefix()])
}

pub fn user_transactions_prefix(partner_env: &PartnerEnv, external_id: &str) -> Vec<u8> {
    Table::UserTransactions.key(&[&partner_env.key_prefix(), external_id.as_bytes(), &[0]])
}

pub fn organization(slug: &str) -> Vec<u8> {
    Table::Organizations.key(&[slug.as_bytes()])
}

pub fn donation(donation_id: Id) -> Vec<u8> {
    Table::Donations.key(&[donation_id.as_bytes()])
}

pub fn webhook_endpoint(partner_env: &PartnerEnv, endpoint_id: Id) -> Vec<u8> {
    Table::WebhookEndpoints.key(&[&partner_env.key_prefix(), endpoint_id.as_bytes()])
}

pub fn webhook_endpoints_prefix(partner_env: &PartnerEnv) -> Vec<u8> {
    Table::WebhookEndpoints.key(&[&partner_env.key_prefix()])
}

/// Every partner's endpoints (the dispatcher's sweep).
pub fn all_webhook_endpoints_prefix() -> Vec<u8> {
    Table::WebhookEndpoints.key(&[])
}

pub fn webhook_delivery(partner_env: &PartnerEnv, endpoint_id: Id, delivery_id: Id) -> Vec<u8> {
    Table::WebhookDeliveries.key(&[&partner_env.key_prefix(), endpoint_id.as_bytes(), delivery_id.as_bytes()])
}

pub fn webhook_deliveries_prefix(partner_env: &PartnerEnv, endpoint_id: Id) -> Vec<u8> {
    Table::WebhookDeliveries.key(&[&partner_env.key_prefix(), endpoint_id.as_bytes()])
}

pub fn webhook_queue(partner_env: &PartnerEnv, endpoint_id: Id, due_ms: u64, delivery_id: Id) -> Vec<u8> {
    Table::WebhookQueue.key(&[&partner_env.key_prefix(), endpoint_id.as_bytes(), &due_ms.to_be_bytes(), delivery_id.as_bytes()])
}

pub fn webhook_queue_prefix(partner_env: &PartnerEnv, endpoint_id: Id) -> Vec<u8> {
    Table::WebhookQueue.key(&[&partner_env.key_prefix(), endpoint_id.as_bytes()])
}

/// The due time and delivery of a queue row's key.
pub fn parse_webhook_queue(key: &[u8]) -> Option<(u64, Id)> {
    let tail = key.len().checked_sub(20)?;
    let due_ms = u64::from_be_bytes(key[tail..tail + 8].try_into().ok()?);
    Some((due_ms, Id::from_slice(&key[tail + 8..])?))
}

pub fn webhook_health(partner_env: &PartnerEnv, endpoint_id: Id) -> Vec<u8> {
    Table::WebhookHealth.key(&[&partner_env.key_prefix(), endpoint_id.as_bytes()])
}

/// The (partner, environment) and id of an endpoint record's key.
pub fn parse_webhook_endpoint(key: &[u8]) -> Option<(PartnerEnv, Id)> {
    if key.len() != 1 + 13 + 12 {
        return None;
    }
    let partner_env = PartnerEnv::from_key_prefix(&key[1..14])?;
    Some((partner_env, Id::from_slice(&key[14..])?))
}

/// The tables whose keys start with a (partner, environment) prefix after the table byte.
const PARTNER_TABLES: [Table; 14] = [
    Table::PartnerEnvState,
    Table::Pools,
    Table::Users,
    Table::Actions,
    Table::Transactions,
    Table::UserTransactions,
    Table::Idempotency,
    Table::Events,
    Table::Campaigns,
    Table::UsersByCreation,
    Table::WebhookEndpoints,
    Table::WebhookDeliveries,
    Table::WebhookQueue,
    Table::WebhookHealth,
];

/// The (partner, environment) that owns `key`, or `None` for a record no partner owns
/// (partners, keys, accounts, organizations, …): what decides a key's shard in a cluster.
pub fn partner_env_of_key(key: &[u8]) -> Option<PartnerEnv> {
    let table = *key.first()?;
    if !PARTNER_TABLES.iter().any(|partner_table| *partner_table as u8 == table) {
        return None;
    }
    PartnerEnv::from_key_prefix(key.get(1..14)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::IdGenerator;
    use crate::domain::model::Environment;

    #[test]
    fn every_partner_owned_key_names_its_partner_and_no_other_key_does() {
        let ids = IdGenerator::new();
        let partner_env = PartnerEnv::new(ids.next(1), Environment::Production);
        let id = ids.next(2);
        let owned = [
            partner_env_state(&partner_env),
            pool(&partner_env, id),
            user(&partner_env, "u1"),
            action(&partner_env, id),
            transaction(&partner_env, id),
            user_transaction(&partner_env, "u1", id),
            idempotency(&partner_env, IdempotencyScope::ActionSubmit, "k"),
            event(&partner_env, 7),
            campaign(&partner_env, id),
            user_by_creation(&partner_env, id),
            webhook_endpoint(&partner_env, id),
            webhook_delivery(&partner_env, id, id),
            webhook_queue(&partner_env, id, 5, id),
            webhook_health(&partner_env, id),
        ];
        for key in &owned {
            assert_eq!(partner_env_of_key(key), Some(partner_env), "table {}", key[0]);
        }
        let unowned = [
            admin_token_digest(),
            partner(id),
            partner_slug("acme"),
            api_key(id),
            key_digest(&[0; 32]),
            partner_key(id, id),
            account(id),
            account_email("a@b.c"),
            refresh_token(&[0; 32]),
            pool_request(id),
            announcement(id),
            organization("org"),
            donation(id),
        ];
        for key in &unowned {
            assert_eq!(partner_env_of_key(key), None, "table {}", key[0]);
        }
        assert_eq!(partner_env_of_key(&[]), None);
        assert_eq!(partner_env_of_key(&[Table::Pools as u8, 1, 2]), None, "too short to hold a prefix");
    }
}
