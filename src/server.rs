//! Starting and stopping the whole server: store, master key, clock, engine, admin token,
//! demo partner, HTTP. Shutdown is ordered: stop accepting, drain HTTP (bounded), then the
//! engine stops its actors and lets the committer finish what is queued.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use reward_actors::api::common::Clock;
use reward_actors::api::common::{MasterKey, Secret, constant_time_eq, random_hex, sha256};
use reward_actors::api::donations::Provider;
use reward_actors::api::operations::{ClusterParts, Store, StoreBackend, open_cluster_store, open_postgres_store, open_store_with};
use reward_actors::api::operations::{JobsConfig, MaintenanceConfig};
use reward_actors::{Engine, EngineError, EngineParts};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::demo;
use crate::http::resources::donations::DonationSettings;
use crate::http::resources::portal::PortalSettings;
use crate::http::{self, AppState, HttpMetrics};
use crate::listener::{self, ConnectionLimits};

/// Secrets the binary read from its environment; never part of `Config`.
#[derive(Debug, Default, Clone)]
pub struct ServerSecrets {
    pub admin_token: Option<Secret>,
    pub master_key: Option<Secret>,
    /// Each donation provider's callback signing secret; a provider without one has no
    /// callback route.
    pub provider_secrets: Vec<(Provider, Secret)>,
}

pub struct ServeOptions {
    pub config: Config,
    pub demo: bool,
    pub secrets: ServerSecrets,
    /// A store to use instead of opening `config.server.store` (tests wrap real stores).
    pub store: Option<Arc<dyn Store>>,
}

pub struct RunningServer {
    pub local_addr: SocketAddr,
    pub engine: Engine,
    stop_accepting: Option<oneshot::Sender<()>>,
    serving: JoinHandle<()>,
    grace: Duration,
}

/// Prints to the terminal (stdout), never through the logger: banners carry secrets that
/// must not end up in log pipelines.
pub fn print_banner(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}");
    let _ = stdout.flush();
}

pub async fn start(options: ServeOptions) -> anyhow::Result<RunningServer> {
    let ServeOptions { config, demo, secrets, store } = options;
    config.validate()?;
    let data_dir = config.server.data_dir.clone();
    let (store, cluster) = match store {
        Some(store) => (store, None),
        None => open_configured_store(&config)?,
    };
    let master_key = resolve_master_key(&config, secrets.master_key.as_ref(), demo)?;
    let clock = if config.server.test_clock {
        tracing::warn!("TEST CLOCK ON: POST /api/v1/admin/clock can move this server's time. Never run production like this.");
        Clock::test()
    } else {
        Clock::system()
    };
    let connections = connection_limits(&config);
    log_bounds(&config, &connections);
    let jobs = JobsConfig {
        webhooks: config.webhook.clone(),
        maintenance: MaintenanceConfig {
            interval: Duration::from_millis(config.server.maintenance_interval_ms),
            key_expiry_notice: Duration::from_secs(config.server.key_expiry_notice_days.saturating_mul(86_400)),
        },
        backups: config.backup.clone(),
    };
    let engine = Engine::start(EngineParts {
        config: config.engine.clone(),
        store,
        clock: Arc::new(clock),
        master_key,
        jobs,
        donations: config.donations.clone(),
        cluster,
    })?;
    let admin_token_digest = resolve_admin_token(&engine, secrets.admin_token.as_ref()).await?;
    let listener = listener::bind(config.server.listen).with_context(|| format!("listening on {}", config.server.listen))?;
    let local_addr = listener.local_addr()?;
    if demo {
        let credentials = demo::ensure_demo_partner(&engine, &data_dir).await?;
        demo::print_demo_banner(&credentials, local_addr, &demo::credentials_path(&data_dir));
    }
    let forwarder = engine.cluster_identity().map(crate::http::forward::Forwarder::new);
    let metrics = Arc::new(if forwarder.is_some() {
        HttpMetrics::register_cluster(engine.metrics_registry())
    } else {
        HttpMetrics::register(engine.metrics_registry())
    });
    let portal = Arc::new(PortalSettings {
        signing_secret: engine.portal().portal_signing_secret().await?,
        access_token_ttl_secs: config.server.access_token_ttl_secs,
        registration_open: config.server.portal_registration == crate::config::PortalRegistration::Open,
    });
    let client_ip_header = config.server.client_ip_header.clone();
    let donations = Arc::new(DonationSettings { provider_secrets: secrets.provider_secrets });
    let state = AppState {
        engine: engine.clone(),
        settings: Arc::new(config.limits.clone()),
        metrics,
        admin_token_digest,
        portal,
        client_ip_header,
        donations,
        forwarder,
    };
    let (stop_accepting, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(listener::serve(listener, http::router(state), connections.0, stopped));
    tracing::info!(address = %local_addr, store = %engine.store_backend(), "reward engine listening");
    Ok(RunningServer {
        local_addr,
        engine,
        stop_accepting: Some(stop_accepting),
        serving,
        grace: Duration::from_secs(config.server.shutdown_grace_secs),
    })
}

/// The store the configuration names: an embedded one in the data directory (behind the
/// write-ahead log unless it is off), or PostgreSQL at its URL (never behind the log).
/// In cluster mode, the node's parts come with it.
fn open_configured_store(config: &Config) -> anyhow::Result<(Arc<dyn Store>, Option<ClusterParts>)> {
    let data_dir = &config.server.data_dir;
    match (config.server.store, config.store.postgres_url.as_ref()) {
        (StoreBackend::Postgres, Some(url)) => {
            if config.wal.enabled {
                tracing::info!("the write-ahead log is off on the postgres store: the database logs every commit itself");
            }
            let opening = || format!("opening the postgres store ({})", url.redacted());
            if config.cluster.enabled {
                let (store, parts) = open_cluster_store(url, &config.cluster).with_context(opening)?;
                return Ok((store, Some(parts)));
            }
            Ok((open_postgres_store(url).with_context(opening)?, None))
        }
        (StoreBackend::Postgres, None) => bail!("server.store = postgres needs store.postgres_url (REWARD_STORE_POSTGRES_URL)"),
        (backend, _) => {
            let store =
                open_store_with(backend, data_dir, config.wal).with_context(|| format!("opening the {backend} store in {}", data_dir.display()))?;
            Ok((store, None))
        }
    }
}

impl RunningServer {
    /// Stops accepting, waits (bounded) for in-flight requests, then stops the engine. The
    /// engine is stopped on every path (the committer finishes what it holds); the answer is
    /// an error when the stop was not clean: requests were cut after the grace, or the HTTP
    /// server had failed.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop_accepting.take() {
            let _ = stop.send(());
        }
        let unclean = match tokio::time::timeout(self.grace, &mut self.serving).await {
            Ok(Ok(())) => None,
            Ok(Err(error)) => {
                tracing::error!(%error, "the HTTP server task failed");
                Some(anyhow::anyhow!("the HTTP server task failed: {error}"))
            }
            Err(_) => {
                tracing::warn!(grace_secs = self.grace.as_secs(), "in-flight requests did not finish in time; stopping anyway");
                self.serving.abort();
                Some(anyhow::anyhow!("in-flight requests did not finish within the {} s grace and were cut", self.grace.as_secs()))
            }
        };
        // The engine stops its periodic jobs (a scheduled backup in progress is waited for),
        // persists keys' last use, then its actors and committer.
        self.engine.shutdown().await;
        tracing::info!("reward engine stopped");
        unclean.map_or(Ok(()), Err)
    }
}

/// The connection bounds of `[server]`, the cap fitted under the open-files limit.
fn connection_limits(config: &Config) -> (ConnectionLimits, Option<u64>) {
    let server = &config.server;
    let (connections_max, open_files_limit) = listener::fit_connections_to_descriptors(server.connections_max);
    let limits = ConnectionLimits {
        connections_max,
        header_read_timeout: Duration::from_millis(server.header_read_timeout_ms),
        idle_timeout: Duration::from_millis(server.idle_timeout_ms),
        crowded_idle_timeout: Duration::from_millis(server.crowded_idle_timeout_ms),
    };
    (limits, open_files_limit)
}

fn log_bounds(config: &Config, (connections, open_files_limit): &(ConnectionLimits, Option<u64>)) {
    let engine = &config.engine;
    let limits = &config.limits;
    tracing::info!(
        connections_max = connections.connections_max,
        open_files_limit = open_files_limit.map_or_else(|| "unlimited".to_owned(), |limit| limit.to_string()),
        header_read_timeout_ms = config.server.header_read_timeout_ms,
        idle_timeout_ms = config.server.idle_timeout_ms,
        crowded_idle_timeout_ms = config.server.crowded_idle_timeout_ms,
        body_read_timeout_secs = limits.body_read_timeout_secs,
        shutdown_grace_secs = config.server.shutdown_grace_secs,
        "connection bounds"
    );
    tracing::info!(
        arbiters = engine.arbiter_count(),
        mailbox_capacity = engine.mailbox_capacity,
        commit_batch_max = engine.commit_batch_max,
        commit_queue_max = engine.commit_queue_max,
        reply_timeout_ms = engine.reply_timeout_ms,
        commit_timeout_ms = engine.commit_timeout_ms,
        passivate_after_secs = engine.passivate_after_secs,
        write_ahead_log = config.wal.enabled,
        memtable_bytes_max = config.wal.memtable_bytes_max,
        body_bytes_max = limits.body_bytes_max,
        signature_window_secs = limits.signature_window_secs,
        stakeholders_max = limits.stakeholders_max,
        "bounds"
    );
}

/// The master key: `REWARD_MASTER_KEY`, else `server.master_key_file`, else (demo only) a
/// key generated inside the data directory.
fn resolve_master_key(config: &Config, from_environment: Option<&Secret>, demo: bool) -> anyhow::Result<MasterKey> {
    if let Some(hex_key) = from_environment {
        return MasterKey::from_hex(hex_key.expose()).context("REWARD_MASTER_KEY");
    }
    if let Some(path) = &config.server.master_key_file {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading the master key file {}", path.display()))?;
        return MasterKey::from_hex(&text).with_context(|| format!("the master key file {}", path.display()));
    }
    if demo {
        let path = config.server.data_dir.join("master.key");
        if !path.exists() {
            tracing::warn!(path = %path.display(), "demo mode: generating a master key inside the data directory; production must use REWARD_MASTER_KEY or a key file kept elsewhere");
            write_private_file(&path, MasterKey::generate_hex().expose().as_bytes())?;
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        return MasterKey::from_hex(&text).with_context(|| format!("the demo master key {}", path.display()));
    }
    bail!(
        "no master key: set REWARD_MASTER_KEY to 64 hex characters (make one with `reward-engine keygen`), or point server.master_key_file at a file outside the data directory; `serve --demo` generates one for trying things out"
    )
}

/// The admin token's digest: from `REWARD_ADMIN_TOKEN`, else the one stored at a first
/// start, else a new token, printed once (to the terminal), of which only the digest is kept.
async fn resolve_admin_token(engine: &Engine, from_environment: Option<&Secret>) -> anyhow::Result<[u8; 32]> {
    if let Some(token) = from_environment {
        if token.expose().len() < 16 {
            bail!("REWARD_ADMIN_TOKEN must be at least 16 characters");
        }
        return Ok(sha256(token.expose().as_bytes()));
    }
    if let Some(digest) = engine.stored_admin_token_digest()? {
        return Ok(digest);
    }
    // In a cluster only the admin shard's holder generates it (set REWARD_ADMIN_TOKEN on every
    // node instead); the others wait for its digest.
    let deadline = std::time::Instant::now() + reward_actors::api::operations::CLUSTER_START_WAIT;
    while !engine.holds_admin_shard() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(digest) = engine.stored_admin_token_digest()? {
            return Ok(digest);
        }
    }
    let token = Secret::new(format!("adm_{}", random_hex(32)));
    let digest = sha256(token.expose().as_bytes());
    engine.store_admin_token_digest(digest).await.map_err(|error: EngineError| anyhow::anyhow!("storing the admin token digest: {error}"))?;
    debug_assert!(constant_time_eq(&digest, &sha256(token.expose().as_bytes())));
    print_banner(&format!(
        "\nAdmin token (shown once; only its SHA-256 is stored):\n\n    {}\n\nUse it as `Authorization: Bearer <token>` on /api/v1/admin. Set REWARD_ADMIN_TOKEN to choose your own.\n",
        token.expose()
    ));
    Ok(digest)
}

/// Creates `path` with mode 0600 and writes `contents`.
pub fn write_private_file(path: &PathBuf, contents: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(())
}
