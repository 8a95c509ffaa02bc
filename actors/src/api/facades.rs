//! The engine's façades, one per domain, named like the front's resource files:
//! `engine.actions().submit_action(…)`, `engine.webhooks().list_deliveries(…)`. Each borrows the
//! [`Engine`] handle; a domain's methods reach the engine's shared state through
//! `self.engine`, and a façade offers only its domain's methods (it does not dereference to the
//! handle, whose own methods are its life cycle, admission and health).

use crate::Engine;

macro_rules! facades {
    ($($(#[$doc:meta])* $facade:ident => $accessor:ident),* $(,)?) => {
        $(
            $(#[$doc])*
            #[derive(Clone, Copy)]
            pub struct $facade<'a> {
                pub(crate) engine: &'a Engine,
            }
        )*

        impl Engine {
            $(
                pub fn $accessor(&self) -> $facade<'_> {
                    $facade { engine: self }
                }
            )*
        }
    };
}

facades! {
    /// Submitting, quoting, reversing and reading actions.
    Actions => actions,
    /// Users, their balances, transactions and redemptions.
    Users => users,
    /// Campaign rules.
    Campaigns => campaigns,
    /// Token pools, allocations and top-up requests.
    Pools => pools,
    /// Webhook endpoints, deliveries and the event feed.
    Webhooks => webhooks,
    /// Partners (the operator's) and their dashboard.
    Partners => partners,
    /// API keys: issuing, rotating, revoking, looking up, and their last use.
    Keys => keys,
    /// Portal accounts, their sessions and partners.
    Portal => portal,
    /// Organizations and donations.
    Donations => donations,
}
