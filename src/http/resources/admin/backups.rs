//! `/api/v1/admin/backups` (ours): `POST` takes an online backup into `backup.directory`
//! and answers its manifest once it is complete (201); `GET` lists the newest backups there.
//! `reward-engine backup` is the command-line client of the `POST`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::http::auth::AdminRequest;
use crate::http::error::{ApiError, ApiResult};
use crate::http::fields::Fields;
use crate::http::routes::{Guard, Route};
use crate::http::{AppState, json_response};
use reward_actors::api::operations::{BackupRunError, CompletedBackup};

/// A listing shows at most this many backups, newest first (retention keeps fewer anyway).
const BACKUPS_LISTED_MAX: usize = 100;

pub fn routes() -> Vec<Route> {
    vec![Route::get("/api/v1/admin/backups", Guard::Admin, list), Route::post("/api/v1/admin/backups", Guard::Admin, create)]
}

fn backup_json(backup: &CompletedBackup) -> Value {
    json!({ "path": backup.path.display().to_string(), "manifest": backup.manifest })
}

async fn create(State(state): State<AppState>, AdminRequest(request): AdminRequest) -> ApiResult<Response> {
    // No options yet: an empty body or `{}`; anything else is refused, not ignored.
    if !request.body.is_empty() {
        request.require_json()?;
        Fields::parse(&request.body)?.finish()?;
    }
    match state.engine.operations().take_backup("api").await {
        Ok(backup) => Ok(json_response(StatusCode::CREATED, &backup_json(&backup))),
        Err(BackupRunError::InProgress) => Err(ApiError::new(StatusCode::CONFLICT, "BACKUP_IN_PROGRESS", BackupRunError::InProgress.to_string())),
        Err(error @ BackupRunError::Failed(_)) => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "BACKUP_FAILED", error.to_string())),
    }
}

async fn list(State(state): State<AppState>, AdminRequest(_): AdminRequest) -> ApiResult<Response> {
    let (backups, has_more) = state
        .engine
        .operations()
        .list_backups(BACKUPS_LISTED_MAX)
        .map_err(|reason| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "BACKUP_FAILED", format!("listing backups: {reason}")))?;
    let data: Vec<Value> = backups.iter().map(backup_json).collect();
    // One page: retention keeps far fewer than a page holds, so there is no cursor.
    Ok(json_response(StatusCode::OK, &json!({ "data": data, "hasMore": has_more, "nextCursor": null })))
}
