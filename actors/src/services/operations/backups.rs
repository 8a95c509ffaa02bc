//! Online backups of the running engine: one at a time, on request (the front's `POST
//! /api/v1/admin/backups`, which `reward-engine backup` calls) or on a schedule
//! (`[backup] interval_secs`), with retention and metrics for the alert on a stale backup.
//! The copy itself is [`crate::store::backup`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::{IntCounter, IntGauge, Registry};
use serde::{Deserialize, Serialize};

use crate::store::Store;
use crate::store::backup::{self, Manifest};

/// Where backups go, and whether the engine takes them on its own (README, "Backup, restore
/// and audit").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupConfig {
    /// The directory backups are written into, one `backup-<time>` directory each. Put it on
    /// another disk than `server.data_dir`: a backup on the same disk dies with it.
    pub directory: PathBuf,
    /// Take a backup every this many seconds; 0 (the default) takes none on its own.
    pub interval_secs: u64,
    /// Scheduled backups keep the newest this many backups in `directory` and delete older
    /// ones; backups asked for through the API are counted too.
    pub retention: usize,
    /// The backup thread's nice value (0–19): above 0, the copy yields the CPU to the
    /// engine's threads when both want it and takes longer. On the 2-core benchmark VM the
    /// difference in cost between 0 and 10 was within the noise (BENCHMARKS.md, "Backup");
    /// 10 is kept so a backup never outranks the reward path.
    pub niceness: i32,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig { directory: PathBuf::from("./backups"), interval_secs: 0, retention: 7, niceness: 10 }
    }
}

/// A manifest is a few KiB (a line per 256 MiB data file); a larger file is not one of ours.
const MANIFEST_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// The last backup's figures, for `/metrics` (described in METRICS.md).
struct BackupMetrics {
    last_success: IntGauge,
    last_duration_ms: prometheus::Gauge,
    last_bytes: IntGauge,
    last_sequence: IntGauge,
    failures: IntCounter,
    successes: IntCounter,
    in_progress: IntGauge,
    interval: IntGauge,
}

impl BackupMetrics {
    fn register(registry: &Registry, interval_secs: u64) -> BackupMetrics {
        let gauge = |name: &str, help: &str| {
            let gauge = IntGauge::new(name, help).expect("valid metric");
            registry.register(Box::new(gauge.clone())).expect("registers once");
            gauge
        };
        let last_duration_ms =
            prometheus::Gauge::new("reward_backup_last_duration_seconds", "How long the last successful backup took.").expect("valid metric");
        registry.register(Box::new(last_duration_ms.clone())).expect("registers once");
        let failures = IntCounter::new("reward_backup_failures_total", "Backups that failed (the reason is logged).").expect("valid metric");
        registry.register(Box::new(failures.clone())).expect("registers once");
        let successes = IntCounter::new("reward_backups_total", "Backups written completely since start.").expect("valid metric");
        registry.register(Box::new(successes.clone())).expect("registers once");
        let metrics = BackupMetrics {
            last_success: gauge(
                "reward_backup_last_success_timestamp_seconds",
                "Unix time of the newest complete backup in backup.directory (0: none).",
            ),
            last_duration_ms,
            last_bytes: gauge("reward_backup_last_size_bytes", "Bytes of the last successful backup's data files."),
            last_sequence: gauge("reward_backup_last_sequence", "The write-ahead log sequence the last successful backup covers."),
            failures,
            successes,
            in_progress: gauge("reward_backup_in_progress", "1 while a backup is being written."),
            interval: gauge("reward_backup_interval_seconds", "backup.interval_secs: how often the server backs up on its own (0: never)."),
        };
        metrics.interval.set(i64::try_from(interval_secs).unwrap_or(i64::MAX));
        metrics
    }

    fn record(&self, manifest: &Manifest) {
        self.last_success.set(i64::try_from(manifest.created_at_ms / 1000).unwrap_or(i64::MAX));
        self.last_duration_ms.set(manifest.duration_ms as f64 / 1000.0);
        self.last_bytes.set(i64::try_from(manifest.bytes).unwrap_or(i64::MAX));
        self.last_sequence.set(i64::try_from(manifest.sequence).unwrap_or(i64::MAX));
    }
}

/// Why a backup was not taken.
#[derive(Debug, thiserror::Error)]
pub enum BackupRunError {
    #[error("a backup is already being written; try again when it is done")]
    InProgress,
    #[error("the backup failed: {0}")]
    Failed(String),
}

/// A completed backup: where it is and its manifest.
#[derive(Debug, Clone)]
pub struct CompletedBackup {
    pub path: PathBuf,
    pub manifest: Manifest,
}

pub(crate) struct Backups {
    store: Arc<dyn Store>,
    config: BackupConfig,
    /// Held while a backup is written: one at a time.
    running: tokio::sync::Mutex<()>,
    metrics: BackupMetrics,
}

impl Backups {
    /// Registers the metrics and reads the newest backup already in the directory, so the
    /// staleness alert sees backups taken before a restart.
    pub(crate) fn new(store: Arc<dyn Store>, registry: &Registry, config: BackupConfig) -> Arc<Backups> {
        let metrics = BackupMetrics::register(registry, config.interval_secs);
        let newest = backup::list_backups(&config.directory).ok().and_then(|found| found.last().cloned());
        if let Some(manifest) = newest.and_then(|path| read_manifest(&path)) {
            metrics.record(&manifest);
        }
        Arc::new(Backups { store, config, running: tokio::sync::Mutex::new(()), metrics })
    }

    /// Takes a backup now (`trigger` names who asked, for the log), then applies retention.
    /// The work runs in a task of its own: a caller that goes away (an HTTP client that hangs
    /// up) does not end it early, so "one at a time", the metrics and retention stay right.
    pub(crate) async fn take(self: &Arc<Self>, trigger: &'static str) -> Result<CompletedBackup, BackupRunError> {
        let backups = Arc::clone(self);
        tokio::spawn(async move { backups.take_to_the_end(trigger).await })
            .await
            .unwrap_or_else(|error| Err(BackupRunError::Failed(format!("the backup task stopped: {error}"))))
    }

    async fn take_to_the_end(&self, trigger: &'static str) -> Result<CompletedBackup, BackupRunError> {
        let _running = self.running.try_lock().map_err(|_| BackupRunError::InProgress)?;
        self.metrics.in_progress.set(1);
        let started = Instant::now();
        tracing::info!(trigger, directory = %self.config.directory.display(), "backup started");
        let written = self.write_on_own_thread().await;
        self.metrics.in_progress.set(0);
        let (path, manifest) = match written {
            Ok(Ok(done)) => done,
            Ok(Err(error)) => return Err(self.failed(error.to_string())),
            Err(reason) => return Err(self.failed(reason)),
        };
        self.metrics.record(&manifest);
        self.metrics.successes.inc();
        tracing::info!(
            trigger,
            path = %path.display(),
            sequence = manifest.sequence,
            records = manifest.records,
            bytes = manifest.bytes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "backup complete"
        );
        match backup::prune_backups(&self.config.directory, self.config.retention, &path) {
            Ok(deleted) if !deleted.is_empty() => tracing::info!(deleted = deleted.len(), retention = self.config.retention, "old backups deleted"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "deleting old backups failed; retrying after the next backup"),
        }
        Ok(CompletedBackup { path, manifest })
    }

    /// Runs the copy on a thread of its own at `backup.niceness` (a thread that ends with
    /// the backup: an unprivileged process cannot raise a lowered priority back, so a pooled
    /// thread must not be lowered).
    async fn write_on_own_thread(&self) -> Result<Result<(PathBuf, Manifest), backup::BackupError>, String> {
        let store = Arc::clone(&self.store);
        let directory = self.config.directory.clone();
        let niceness = self.config.niceness;
        let (done, written) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("reward-backup".into())
            .spawn(move || {
                if niceness > 0
                    && let Err(error) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), niceness)
                {
                    tracing::warn!(%error, niceness, "could not lower the backup thread's priority; copying at normal priority");
                }
                let progress =
                    &mut |progress: backup::Progress| tracing::info!(records = progress.records, bytes = progress.bytes, "backup progress");
                let _ = done.send(backup::write_backup(store.as_ref(), &directory, progress));
            })
            .map_err(|error| format!("starting the backup thread: {error}"))?;
        written.await.map_err(|_| "the backup thread stopped before it finished".to_owned())
    }

    fn failed(&self, reason: String) -> BackupRunError {
        self.metrics.failures.inc();
        tracing::error!(reason = %reason, "backup failed");
        BackupRunError::Failed(reason)
    }

    /// The newest `limit` backups in the directory, newest first, with their manifests, and
    /// whether there are more.
    pub(crate) fn list(&self, limit: usize) -> Result<(Vec<CompletedBackup>, bool), backup::BackupError> {
        let found = backup::list_backups(&self.config.directory)?;
        let has_more = found.len() > limit;
        let newest = found.into_iter().rev().take(limit).filter_map(|path| read_manifest(&path).map(|manifest| CompletedBackup { path, manifest }));
        Ok((newest.collect(), has_more))
    }

    /// Backs up every `interval_secs` until told to stop (nothing when the interval is 0).
    pub(crate) async fn run_schedule(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        if self.config.interval_secs == 0 {
            return;
        }
        let interval = Duration::from_secs(self.config.interval_secs);
        tracing::info!(interval_secs = self.config.interval_secs, retention = self.config.retention, directory = %self.config.directory.display(), "scheduled backups on");
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.changed() => return,
            }
            // Failures are counted and logged; the next tick tries again.
            let _ = self.take("schedule").await;
        }
    }
}

/// A backup's manifest as written (not checked: listing is not restoring).
fn read_manifest(path: &Path) -> Option<Manifest> {
    let path = path.join("manifest.json");
    if std::fs::metadata(&path).ok()?.len() > MANIFEST_BYTES_MAX {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}
