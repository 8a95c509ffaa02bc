//! The engine's façades, one per domain, named like the front's resource files:
//! `engine.actions().submit_action(…)`, `engine.webhooks().list_deliveries(…)`. Each borrows the
//! [`Engine`] handle and dereferences to it, so a domain's methods reach the engine's shared
//! state as before; the handle itself keeps only its life cycle, admission and health.

use crate::Engine;

macro_rules! facades {
    ($($(#[$doc:meta])* $facade:ident => $accessor:ident),* $(,)?) => {
        $(
            $(#[$doc])*
            #[derive(Clone, Copy)]
            pub struct $facade<'a> {
                engine: &'a Engine,
            }

            impl std::ops::Deref for $facade<'_> {
                type Target = Engine;

                fn deref(&self) -> &Engine {
                    self.engine
                }
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
