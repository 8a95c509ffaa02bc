//! Operations: what the engine does on its own or for its operator rather than for a
//! partner. Its periodic jobs (housekeeping, scheduled backups, the webhook dispatcher) start
//! in [`Engine::start`] and stop in [`Engine::shutdown`]; [`Operations`] is the façade the
//! front calls for online backups.

pub mod backups;
pub mod maintenance;

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use backups::{BackupConfig, BackupRunError, CompletedBackup};
pub use maintenance::MaintenanceConfig;

use crate::Engine;
use crate::webhooks::WebhookConfig;

/// The settings of the engine's periodic jobs.
#[derive(Debug, Clone, Default)]
pub struct JobsConfig {
    pub webhooks: WebhookConfig,
    pub maintenance: MaintenanceConfig,
    pub backups: BackupConfig,
}

/// The running periodic jobs (besides the webhook dispatcher, which has its own handle).
pub(crate) struct Jobs {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Jobs {
    /// Spawns the housekeeping loop and the backup schedule on the current tokio runtime.
    pub(crate) fn start(engine: &Engine, maintenance: MaintenanceConfig, backups: &Arc<backups::Backups>) -> Jobs {
        let (stop, stopped) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(maintenance::run(engine.clone(), maintenance, stopped.clone())),
            tokio::spawn(Arc::clone(backups).run_schedule(stopped)),
        ];
        Jobs { stop, tasks }
    }

    /// Stops them; a scheduled backup in progress is waited for.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// The operator's façade: online backups.
pub struct Operations<'a> {
    engine: &'a Engine,
}

impl Engine {
    pub fn operations(&self) -> Operations<'_> {
        Operations { engine: self }
    }
}

impl Operations<'_> {
    /// Takes a backup now (`trigger` names who asked, for the log), then applies retention.
    /// A caller that goes away does not end it early.
    pub async fn take_backup(&self, trigger: &'static str) -> Result<CompletedBackup, BackupRunError> {
        self.engine.inner.backups.take(trigger).await
    }

    /// The newest `limit` backups, newest first, and whether there are more.
    pub fn list_backups(&self, limit: usize) -> Result<(Vec<CompletedBackup>, bool), crate::store::backup::BackupError> {
        self.engine.inner.backups.list(limit)
    }
}
