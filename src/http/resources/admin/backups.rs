//! `/api/v1/admin/backups` (ours): `POST` takes an online backup into `backup.directory`
//! and answers its manifest once it is complete (201); `GET` lists the newest backups there.
//! `reward-engine backup` is the command-line client of the `POST`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use reward_actors::api::operations::backup::Manifest;
use serde::Serialize;

use crate::http::auth::AdminRequest;
use crate::http::error::{ApiError, ApiResult};
use crate::http::fields::Fields;
use crate::http::list::sorted_list_response;
use crate::http::routes::{Guard, Route};
use crate::http::{AppState, sorted_json_response};
use reward_actors::api::operations::{BackupRunError, CompletedBackup};

/// A listing shows at most this many backups, newest first (retention keeps fewer anyway).
const BACKUPS_LISTED_MAX: usize = 100;

pub fn routes() -> Vec<Route> {
    vec![Route::get("/api/v1/admin/backups", Guard::Admin, list), Route::post("/api/v1/admin/backups", Guard::Admin, create)]
}

/// A completed backup: where it is and its manifest.
#[derive(Serialize, schemars::JsonSchema)]
#[schemars(rename = "Backup")]
pub(crate) struct BackupView<'a> {
    path: String,
    manifest: &'a Manifest,
}

fn backup_view(backup: &CompletedBackup) -> BackupView<'_> {
    BackupView { path: backup.path.display().to_string(), manifest: &backup.manifest }
}

async fn create(State(state): State<AppState>, AdminRequest(request): AdminRequest) -> ApiResult<Response> {
    // No options yet: an empty body or `{}`; anything else is refused, not ignored.
    if !request.body.is_empty() {
        request.require_json()?;
        Fields::parse(&request.body)?.finish()?;
    }
    match state.engine.operations().take_backup("api").await {
        Ok(backup) => Ok(sorted_json_response(StatusCode::CREATED, &backup_view(&backup))),
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
    // One page: retention keeps far fewer than a page holds, so there is no cursor.
    Ok(sorted_list_response(backups.iter().map(backup_view).collect(), has_more))
}
