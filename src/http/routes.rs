//! The route table: each route written once — method, path, who may call it (`Guard`) and
//! its handler. The router is built from it (`super::router`), the guard reaches the
//! handler through a per-route extension (`auth::Authorized`), and the OpenAPI document
//! takes each operation's method, path and security from it (`super::openapi`).

use axum::Extension;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};

use super::AppState;
use super::auth::Access;

/// The batch route, whose body may be larger than others'.
pub const BATCH_PATH: &str = "/v1/partner/actions/batch";

/// Who may call a route.
#[derive(Debug, Clone, Copy)]
pub enum Guard {
    /// A partner key: scope, feature, secret key or widget, as the `Access` says.
    Key(Access),
    /// A portal account's bearer token (`portal::authorize_portal`).
    Portal,
    /// The operator's admin token (`auth::authorize_admin`).
    Admin,
    /// A donation provider's signed callback (its own secret; `donations::ProviderCallback`).
    Provider,
    /// Anyone: operations endpoints, the documents, CORS preflights.
    Public,
}

/// One route: method, path, guard and handler.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub guard: Guard,
    pub handler: MethodRouter<AppState>,
}

impl Route {
    fn on<H: Handler<T, AppState>, T: 'static>(method: Method, path: &'static str, guard: Guard, handler: H) -> Route {
        let filter = MethodFilter::try_from(method.clone()).expect("a route's method is one axum routes");
        Route { method, path, guard, handler: on(filter, handler) }
    }

    pub fn get<H: Handler<T, AppState>, T: 'static>(path: &'static str, guard: Guard, handler: H) -> Route {
        Route::on(Method::GET, path, guard, handler)
    }

    pub fn post<H: Handler<T, AppState>, T: 'static>(path: &'static str, guard: Guard, handler: H) -> Route {
        Route::on(Method::POST, path, guard, handler)
    }

    pub fn patch<H: Handler<T, AppState>, T: 'static>(path: &'static str, guard: Guard, handler: H) -> Route {
        Route::on(Method::PATCH, path, guard, handler)
    }

    pub fn delete<H: Handler<T, AppState>, T: 'static>(path: &'static str, guard: Guard, handler: H) -> Route {
        Route::on(Method::DELETE, path, guard, handler)
    }

    /// A widget route's CORS preflight (`OPTIONS`, public, left out of the document).
    pub fn preflight(path: &'static str) -> Route {
        Route::on(Method::OPTIONS, path, Guard::Public, super::cors::preflight)
    }

    /// The partner scope the route requires, if any (as the contract spells it).
    pub fn scope(&self) -> Option<&'static str> {
        match self.guard {
            Guard::Key(access) => access.scope.map(|scope| scope.as_str()),
            _ => None,
        }
    }

    /// The handler, carrying its guard for the extractors that enforce it
    /// (`auth::Authorized`, `auth::RouteAccess`, `auth::AdminRequest`, `portal::PortalCaller`).
    pub fn into_method_router(self) -> MethodRouter<AppState> {
        self.handler.route_layer(Extension(self.guard))
    }
}

/// Shorthands for the table entries.
pub const fn write(scope: reward_actors::api::common::Scope) -> Guard {
    Guard::Key(Access::write(scope))
}

pub const fn read(scope: reward_actors::api::common::Scope) -> Guard {
    Guard::Key(Access::read(scope))
}
