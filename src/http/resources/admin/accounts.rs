//! `/api/v1/admin/accounts`: portal accounts created by an operator (the way in while
//! self-registration is closed), optionally linked to an existing partner.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use reward_actors::api::common::Id;
use reward_actors::api::portal::NewAccount;

use crate::http::auth::AdminRequest;
use crate::http::error::{ApiError, ApiResult};
use crate::http::fields::Fields;
use crate::http::parse::email;
use crate::http::resources::portal::{account_view, password};
use crate::http::routes::{Guard, Route};
use crate::http::{AppState, sorted_json_response};

pub fn routes() -> Vec<Route> {
    vec![Route::post("/api/v1/admin/accounts", Guard::Admin, create_account)]
}

async fn create_account(State(state): State<AppState>, AdminRequest(request): AdminRequest) -> ApiResult<Response> {
    request.require_json()?;
    let mut fields = Fields::parse(&request.body)?;
    let email = email(&mut fields, "email", true);
    let password = password(&mut fields, true);
    let name = fields.string("name", true, 200);
    let partner_id = fields.string("partnerId", false, 24).and_then(|text| {
        let id = Id::parse_hex(&text);
        if id.is_none() {
            fields.error("partnerId", "must be a 24-character lowercase hex id");
        }
        id
    });
    fields.finish()?;
    let (Some(email), Some(password), Some(name)) = (email, password, name) else {
        return Err(ApiError::field("body", "is invalid"));
    };
    let account = state.engine.portal().create_account(NewAccount { email, name, password, partner_id }).await?;
    Ok(sorted_json_response(StatusCode::CREATED, &account_view(&account)))
}
