//! Configuration: built-in defaults, then an optional TOML file, then `REWARD_<SECTION>_<KEY>`
//! environment variables, then command-line flags. Every bound lives here or in
//! `EngineConfig`, with its reason, and is validated and printed once at start.
//!
//! Secrets are never configuration: `REWARD_ADMIN_TOKEN`, `REWARD_MASTER_KEY` and the
//! providers' `REWARD_PROVIDER_SECRET_*` are read by the binary directly and never logged.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axum::http::HeaderName;

use reward_actors::EngineConfig;
use reward_actors::api::operations::{PostgresUrl, StoreBackend, WalOptions};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub engine: EngineConfig,
    pub limits: HttpLimits,
    /// The write-ahead log in front of the store (`actors/src/store/wal.rs`).
    pub wal: WalOptions,
    pub donations: reward_actors::api::donations::DonationsConfig,
    /// Webhook deliveries (`REWARD_WEBHOOK_ALLOWED_CIDRS`, `REWARD_WEBHOOK_RETRY_SCHEDULE`, …).
    pub webhook: reward_actors::api::webhooks::WebhookConfig,
    /// Online backups (`POST /api/v1/admin/backups`, `reward-engine backup`) and their schedule.
    pub backup: reward_actors::api::operations::BackupConfig,
    /// Where a networked store lives (`server.store = "postgres"`).
    pub store: StoreConfig,
    /// Cluster mode: this node is one of several over the PostgreSQL store (README,
    /// "Running a cluster"). Off by default.
    pub cluster: reward_actors::api::operations::ClusterConfig,
}

/// The networked store's settings; the embedded stores need none (they live in `data_dir`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// The PostgreSQL database of `server.store = "postgres"` (`REWARD_STORE_POSTGRES_URL`),
    /// e.g. `postgresql://reward:PASSWORD@db.internal:5432/reward`. Empty: none. Its password is
    /// never logged (`Debug` and the start-up line show host, port, database and user only).
    #[serde(serialize_with = "url_or_empty", deserialize_with = "empty_or_url")]
    pub postgres_url: Option<PostgresUrl>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on (`host:port`, checked at load).
    #[serde(deserialize_with = "listen_address")]
    pub listen: SocketAddr,
    /// Where the store and (in demo mode) generated files live.
    pub data_dir: PathBuf,
    /// The store: `redb` (default) or `sled` (embedded, in `data_dir`), or `postgres`
    /// (a database at `store.postgres_url`).
    pub store: StoreBackend,
    /// A file holding the 64-hex master key, outside the data directory. Empty: none.
    #[serde(serialize_with = "path_or_empty", deserialize_with = "empty_or_path")]
    pub master_key_file: Option<PathBuf>,
    /// `pretty` for people, `json` for log pipelines.
    pub log_format: LogFormat,
    /// How long a shutdown waits for in-flight requests before it stops anyway.
    pub shutdown_grace_secs: u64,
    /// A clock that `POST /api/v1/admin/clock` can move (tests only; `REWARD_TEST_CLOCK=on`).
    pub test_clock: bool,
    /// How often housekeeping runs: persisting keys' last use, `api_key.expiring` notices.
    pub maintenance_interval_ms: u64,
    /// `api_key.expiring` is emitted once a key is this close to its `expiresAt`.
    pub key_expiry_notice_days: u64,
    /// Portal self-registration: `closed` (the default: accounts come from admins, as the
    /// partnership review expects) or `open` (`REWARD_PORTAL_REGISTRATION=open`).
    #[serde(deserialize_with = "portal_registration")]
    pub portal_registration: PortalRegistration,
    /// How long a portal access token is valid; refresh tokens renew it.
    pub access_token_ttl_secs: u64,
    /// A header set by a trusted reverse proxy that names the client (`x-forwarded-for`):
    /// its last address is the client for the IP allowlist. Empty (the default): the
    /// socket's peer address, and no header is trusted.
    #[serde(serialize_with = "header_or_empty", deserialize_with = "empty_or_header")]
    pub client_ip_header: Option<HeaderName>,
    /// Open HTTP connections at most; at the cap the server stops accepting (new clients wait
    /// in the kernel's backlog) and closes connections that are only waiting (see
    /// `crowded_idle_timeout_ms`). Each connection costs a file descriptor and a few KiB, so
    /// it is also clamped below the open-files limit at start. 16,384 serves far more partner
    /// backends than one node sees, and stays under this VM's 20,000-descriptor limit.
    pub connections_max: usize,
    /// A request head (request line and headers) must arrive within this, counted from its
    /// first byte (from the accept, for a connection's first request): a client that dribbles headers (the
    /// slowloris attack) is cut instead of holding a slot. Real clients send a head in one
    /// packet; 10 s leaves room for a slow mobile link.
    pub header_read_timeout_ms: u64,
    /// A keep-alive connection with no request in progress is closed after this. 60 s is above
    /// the usual client pool idle time (30–55 s), so clients close first and rarely race a close.
    pub idle_timeout_ms: u64,
    /// While open connections are at `connections_max`, a connection that has been waiting for
    /// a request (idle, or its head incomplete) longer than this is closed, so the slots go to
    /// clients that send requests. 250 ms is long for a head that arrives in one packet and
    /// short enough that a fresh client waits well under a second for a slot.
    pub crowded_idle_timeout_ms: u64,
}

/// `--store`'s values (so `--help` lists them); the engine crate stays free of clap. The
/// embedded stores only: PostgreSQL needs its URL too, so it is chosen in the configuration
/// (`server.store = "postgres"` with `store.postgres_url`), and `restore` loads only these.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum StoreChoice {
    Redb,
    Sled,
}

impl From<StoreChoice> for StoreBackend {
    fn from(choice: StoreChoice) -> StoreBackend {
        match choice {
            StoreChoice::Redb => StoreBackend::Redb,
            StoreChoice::Sled => StoreBackend::Sled,
        }
    }
}

/// The log output: `pretty` for people, `json` for log pipelines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

/// Who may open a portal account (`server.portal_registration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PortalRegistration {
    /// Accounts come from admins only.
    #[default]
    Closed,
    /// Anyone may register through `POST /v1/partner/auth/register`.
    Open,
}

// Typed settings keep their TOML and environment spelling: the table that environment
// variables are typed against (`apply_variable`) is the serialized defaults, so a setting
// whose absence is `None` still serializes as a string (empty), and each refusal names the
// setting.

fn listen_address<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(|_| D::Error::custom(format!("server.listen '{text}' is not an address like 127.0.0.1:8080")))
}

fn portal_registration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PortalRegistration, D::Error> {
    match String::deserialize(deserializer)?.as_str() {
        "closed" => Ok(PortalRegistration::Closed),
        "open" => Ok(PortalRegistration::Open),
        _ => Err(D::Error::custom("server.portal_registration must be open or closed")),
    }
}

fn path_or_empty<S: Serializer>(path: &Option<PathBuf>, serializer: S) -> Result<S::Ok, S::Error> {
    match path {
        Some(path) => path.serialize(serializer),
        None => serializer.serialize_str(""),
    }
}

/// An empty string is no path, as before the setting was typed.
fn empty_or_path<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<PathBuf>, D::Error> {
    let text = String::deserialize(deserializer)?;
    Ok((!text.is_empty()).then(|| PathBuf::from(text)))
}

fn url_or_empty<S: Serializer>(url: &Option<PostgresUrl>, serializer: S) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => url.serialize(serializer),
        None => serializer.serialize_str(""),
    }
}

/// An empty string is no database; any other must parse as a PostgreSQL URL.
fn empty_or_url<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<PostgresUrl>, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.is_empty() {
        return Ok(None);
    }
    PostgresUrl::new(&text).map(Some).map_err(|error| D::Error::custom(format!("store.postgres_url: {}", error.message)))
}

fn header_or_empty<S: Serializer>(name: &Option<HeaderName>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(name.as_ref().map_or("", HeaderName::as_str))
}

/// An empty string is no header (the socket's peer counts).
fn empty_or_header<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<HeaderName>, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.is_empty() {
        return Ok(None);
    }
    HeaderName::from_bytes(text.as_bytes()).map(Some).map_err(|_| D::Error::custom("server.client_ip_header is not a header name"))
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            store: StoreBackend::Redb,
            master_key_file: None,
            log_format: LogFormat::Pretty,
            shutdown_grace_secs: 30,
            test_clock: false,
            maintenance_interval_ms: 60_000,
            key_expiry_notice_days: 7,
            portal_registration: PortalRegistration::Closed,
            access_token_ttl_secs: 900,
            client_ip_header: None,
            connections_max: 16_384,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            crowded_idle_timeout_ms: 250,
        }
    }
}

/// Bounds on what a request may carry (contract §1).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpLimits {
    /// A request body; more is 413. 64 KiB holds 20 stakeholders and 4 KiB of metadata
    /// many times over.
    pub body_bytes_max: usize,
    /// The body of `POST /v1/partner/actions/batch`.
    pub batch_body_bytes_max: usize,
    /// Actions in one batch.
    pub batch_items_max: usize,
    /// `X-Timestamp` may be this far from the server clock, either way.
    pub signature_window_secs: u64,
    /// Stakeholders in one action.
    pub stakeholders_max: usize,
    /// Canonical JSON bytes of `metadata`.
    pub metadata_bytes_max: usize,
    /// Keys in `metadata`.
    pub metadata_keys_max: usize,
    /// Names (users' first and last names).
    pub name_chars_max: usize,
    /// How long reading a request body may take before the request is refused (408), so a
    /// slow sender cannot hold a task and a body buffer indefinitely.
    pub body_read_timeout_secs: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            body_bytes_max: 64 * 1024,
            batch_body_bytes_max: 1024 * 1024,
            batch_items_max: 100,
            signature_window_secs: 300,
            stakeholders_max: 20,
            metadata_bytes_max: 4 * 1024,
            metadata_keys_max: 50,
            name_chars_max: 200,
            body_read_timeout_secs: 30,
        }
    }
}

/// Environment variables that are not `<SECTION>_<KEY>` settings: every other `REWARD_*`
/// variable the binary reads. Any `REWARD_*` variable that is neither one of these nor a
/// setting is refused, so a misspelt or misplaced one cannot silently do nothing.
const SPECIAL_VARIABLES: &[&str] = &[
    // Secrets, read by `src/main.rs` (serve) and `src/sign.rs` (sign), never configuration.
    "REWARD_ADMIN_TOKEN",
    "REWARD_MASTER_KEY",
    "REWARD_SECRET_KEY",
    "REWARD_HMAC_SECRET",
    "REWARD_PROVIDER_SECRET_EVERY_ORG",
    "REWARD_PROVIDER_SECRET_STRIPE",
    // `sign --credentials` (clap's `env`).
    "REWARD_CREDENTIALS",
    // The log filter (`log_filter`).
    "REWARD_LOG",
    // Shorthands for `server.test_clock` and `server.portal_registration`.
    "REWARD_TEST_CLOCK",
    "REWARD_PORTAL_REGISTRATION",
    // The tests' PostgreSQL (`scripts/pg/test_server.sh`): CI exports it to the whole test run,
    // including the servers the tests start; the binary itself ignores it.
    "REWARD_TEST_POSTGRES_URL",
];

/// The sections of the configuration, in the order of `Config`.
const SECTIONS: &[&str] = &["server", "engine", "limits", "wal", "donations", "webhook", "backup", "store", "cluster"];

/// The log filter: `REWARD_LOG`, else `RUST_LOG`, else `info` (an empty variable counts as
/// unset). A filter that does not parse is refused with the variable's name, rather than
/// silently logging at another level.
pub fn log_filter(reward_log: Option<&str>, rust_log: Option<&str>) -> Result<tracing_subscriber::EnvFilter, ConfigError> {
    let chosen = [("REWARD_LOG", reward_log), ("RUST_LOG", rust_log)]
        .into_iter()
        .find_map(|(name, value)| value.map(str::trim).filter(|text| !text.is_empty()).map(|text| (name, text)));
    match chosen {
        None => Ok(tracing_subscriber::EnvFilter::new("info")),
        Some((name, text)) => tracing_subscriber::EnvFilter::builder().parse(text).map_err(|error| {
            ConfigError::Invalid(format!("{name}={text:?} is not a log filter ({error}); try info, debug or reward_engine=debug,warn"))
        }),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
    /// A setting the engine crate checks (`[engine]`, `[webhook]`, `[donations]`).
    #[error(transparent)]
    Setting(#[from] reward_actors::InvalidSetting),
}

impl Config {
    /// Defaults, then `file`, then the `REWARD_*` variables of `environment`.
    pub fn load(file: Option<&Path>, environment: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let mut table = toml::Table::try_from(Config::default()).map_err(|error| ConfigError::Invalid(error.to_string()))?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|error| ConfigError::File { path: path.to_owned(), message: error.to_string() })?;
            let from_file: toml::Table =
                text.parse().map_err(|error: toml::de::Error| ConfigError::File { path: path.to_owned(), message: error.to_string() })?;
            merge(&mut table, from_file);
        }
        for (name, value) in environment {
            apply_variable(&mut table, &name, &value)?;
        }
        let config: Config = toml::Value::Table(table).try_into().map_err(|error: toml::de::Error| ConfigError::Invalid(error.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.engine.validate()?;
        if self.backup.retention == 0 {
            return Err(ConfigError::Invalid("backup.retention must be at least 1".into()));
        }
        if !(0..=19).contains(&self.backup.niceness) {
            return Err(ConfigError::Invalid("backup.niceness must be between 0 and 19".into()));
        }
        if self.wal.memtable_bytes_max < 1024 * 1024 || self.wal.frozen_max == 0 {
            return Err(ConfigError::Invalid("wal.memtable_bytes_max must be at least 1 MiB and wal.frozen_max at least 1".into()));
        }
        let limits = &self.limits;
        for (name, value) in [
            ("body_bytes_max", limits.body_bytes_max),
            ("batch_body_bytes_max", limits.batch_body_bytes_max),
            ("batch_items_max", limits.batch_items_max),
            ("stakeholders_max", limits.stakeholders_max),
            ("metadata_bytes_max", limits.metadata_bytes_max),
            ("metadata_keys_max", limits.metadata_keys_max),
            ("name_chars_max", limits.name_chars_max),
            ("body_read_timeout_secs", limits.body_read_timeout_secs as usize),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid(format!("limits.{name} must be greater than 0")));
            }
        }
        if limits.body_bytes_max.max(limits.batch_body_bytes_max) > 16 * 1024 * 1024 {
            return Err(ConfigError::Invalid("limits.body_bytes_max and limits.batch_body_bytes_max must be at most 16 MiB".into()));
        }
        self.webhook.settings()?;
        self.donations.check()?;
        if self.server.maintenance_interval_ms == 0 {
            return Err(ConfigError::Invalid("server.maintenance_interval_ms must be greater than 0".into()));
        }
        self.validate_connections()?;
        if self.server.store == StoreBackend::Postgres && self.store.postgres_url.is_none() {
            return Err(ConfigError::Invalid("server.store = postgres needs store.postgres_url (REWARD_STORE_POSTGRES_URL)".into()));
        }
        if self.cluster.enabled && self.server.store != StoreBackend::Postgres {
            return Err(ConfigError::Invalid("cluster.enabled needs server.store = postgres: the nodes share one database".into()));
        }
        self.cluster.validate()?;
        Ok(())
    }
}

impl Config {
    fn validate_connections(&self) -> Result<(), ConfigError> {
        let server = &self.server;
        for (name, value) in [
            ("connections_max", server.connections_max as u64),
            ("header_read_timeout_ms", server.header_read_timeout_ms),
            ("idle_timeout_ms", server.idle_timeout_ms),
            ("crowded_idle_timeout_ms", server.crowded_idle_timeout_ms),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid(format!("server.{name} must be greater than 0")));
            }
        }
        if server.crowded_idle_timeout_ms > server.header_read_timeout_ms.min(server.idle_timeout_ms) {
            return Err(ConfigError::Invalid(
                "server.crowded_idle_timeout_ms must not exceed server.header_read_timeout_ms nor server.idle_timeout_ms".into(),
            ));
        }
        Ok(())
    }
}

fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base_section)), toml::Value::Table(overlay_section)) => merge(base_section, overlay_section),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Applies `REWARD_<SECTION>_<KEY>=value`, typed like the setting it replaces.
fn apply_variable(table: &mut toml::Table, name: &str, value: &str) -> Result<(), ConfigError> {
    let Some(rest) = name.strip_prefix("REWARD_") else {
        return Ok(());
    };
    if name == "REWARD_TEST_CLOCK" {
        let on = matches!(value.to_ascii_lowercase().as_str(), "on" | "true" | "1" | "yes");
        set(table, "server", "test_clock", toml::Value::Boolean(on));
        return Ok(());
    }
    if name == "REWARD_PORTAL_REGISTRATION" {
        set(table, "server", "portal_registration", toml::Value::String(value.to_ascii_lowercase()));
        return Ok(());
    }
    if SPECIAL_VARIABLES.contains(&name) {
        return Ok(());
    }
    let unknown = || {
        ConfigError::Invalid(format!(
            "{name} is not a setting: configuration variables are REWARD_<SECTION>_<KEY> with a section among {}, and the other REWARD_ variables are {}",
            SECTIONS.join(", "),
            SPECIAL_VARIABLES.join(", ")
        ))
    };
    let (section, key) = rest.split_once('_').ok_or_else(unknown)?;
    let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
    let Some(toml::Value::Table(settings)) = table.get(&section) else {
        return Err(unknown());
    };
    let typed = match settings.get(&key) {
        None => return Err(ConfigError::Invalid(format!("{name} names no setting ({section}.{key} does not exist)"))),
        Some(toml::Value::Integer(_)) => {
            value.trim().parse::<i64>().map(toml::Value::Integer).map_err(|_| ConfigError::Invalid(format!("{name} must be an integer")))?
        }
        Some(toml::Value::Boolean(_)) => {
            value.trim().parse::<bool>().map(toml::Value::Boolean).map_err(|_| ConfigError::Invalid(format!("{name} must be true or false")))?
        }
        Some(toml::Value::Array(_)) => toml::Value::Array(
            value.split(',').map(str::trim).filter(|item| !item.is_empty()).map(|item| toml::Value::String(item.to_owned())).collect(),
        ),
        Some(_) => toml::Value::String(value.to_owned()),
    };
    set(table, &section, &key, typed);
    Ok(())
}

fn set(table: &mut toml::Table, section: &str, key: &str, value: toml::Value) {
    if let Some(toml::Value::Table(settings)) = table.get_mut(section) {
        settings.insert(key.to_owned(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variables(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()
    }

    #[test]
    fn environment_overrides_file_overrides_defaults() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("reward.toml");
        std::fs::write(&file, "[server]\nlisten = \"127.0.0.1:9000\"\nstore = \"sled\"\n[engine]\nmailbox_capacity = 10\n").expect("write");
        let config = Config::load(
            Some(&file),
            variables(&[("REWARD_ENGINE_MAILBOX_CAPACITY", "20"), ("REWARD_TEST_CLOCK", "on"), ("REWARD_ADMIN_TOKEN", "x"), ("PATH", "/bin")]),
        )
        .expect("valid");
        assert_eq!(config.server.listen, SocketAddr::from(([127, 0, 0, 1], 9000)));
        assert_eq!(config.server.store, StoreBackend::Sled);
        assert_eq!(config.engine.mailbox_capacity, 20);
        assert!(config.server.test_clock);
        assert_eq!(config.limits.body_bytes_max, 64 * 1024);
    }

    #[test]
    fn a_cluster_node_is_configured_by_its_section_or_variables_and_needs_postgres() {
        let url = "postgresql://reward@db.internal:5432/reward";
        let node = [
            ("REWARD_SERVER_STORE", "postgres"),
            ("REWARD_STORE_POSTGRES_URL", url),
            ("REWARD_CLUSTER_ENABLED", "true"),
            ("REWARD_CLUSTER_NODE_ID", "node-2"),
            ("REWARD_CLUSTER_ADVERTISE", "10.0.0.2:8080"),
            ("REWARD_CLUSTER_SHARDS", "16"),
        ];
        let config = Config::load(None, variables(&node)).expect("valid");
        assert!(config.cluster.enabled);
        assert_eq!((config.cluster.node_id.as_str(), config.cluster.advertise.as_str(), config.cluster.shards), ("node-2", "10.0.0.2:8080", 16));
        assert_eq!(config.cluster.takeover_after_ms, 5_000, "the default");
        assert!(refusal(None, &node[2..]).contains("cluster.enabled needs server.store = postgres"));
        assert!(refusal(None, &[node[0], node[1], node[2], ("REWARD_CLUSTER_ADVERTISE", "10.0.0.2:8080")]).contains("cluster.node_id"));
        assert!(refusal(None, &[node[0], node[1], node[2], node[3]]).contains("cluster.advertise"));
    }

    #[test]
    fn the_postgres_store_takes_its_url_from_the_store_section_and_never_shows_the_password() {
        let url = "postgresql://reward:s3cret-pw@db.internal:5433/reward";
        let config = Config::load(None, variables(&[("REWARD_SERVER_STORE", "postgres"), ("REWARD_STORE_POSTGRES_URL", url)])).expect("valid");
        assert_eq!(config.server.store, StoreBackend::Postgres);
        assert_eq!(config.store.postgres_url, Some(PostgresUrl::new(url).expect("parses")));
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret-pw") && shown.contains("db.internal"), "{shown}");
        assert!(refusal(None, &[("REWARD_SERVER_STORE", "postgres")]).contains("store.postgres_url"));
        assert!(refusal(None, &[("REWARD_STORE_POSTGRES_URL", "postgresql://[oops")]).contains("store.postgres_url"));
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("reward.toml");
        std::fs::write(&file, format!("[server]\nstore = \"postgres\"\n[store]\npostgres_url = \"{url}\"\n")).expect("write");
        let from_file = Config::load(Some(&file), variables(&[])).expect("valid");
        assert_eq!(from_file.store.postgres_url, Some(PostgresUrl::new(url).expect("parses")));
    }

    #[test]
    fn typos_and_bad_values_are_refused() {
        assert!(Config::load(None, variables(&[("REWARD_ENGINE_MAILBOX_CAPACTY", "20")])).is_err());
        assert!(Config::load(None, variables(&[("REWARD_ENGINE_MAILBOX_CAPACITY", "lots")])).is_err());
        assert!(Config::load(None, variables(&[("REWARD_ENGINE_MAILBOX_CAPACITY", "0")])).is_err());
        assert!(Config::load(None, variables(&[("REWARD_SERVER_STORE", "mongo")])).is_err());
        assert!(Config::load(None, variables(&[("REWARD_SERVER_LISTEN", "localhost")])).is_err());
    }

    /// The error of loading `pairs` (and `file_text` as the TOML file, if any).
    fn refusal(file_text: Option<&str>, pairs: &[(&str, &str)]) -> String {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("reward.toml");
        if let Some(text) = file_text {
            std::fs::write(&file, text).expect("write");
        }
        match Config::load(file_text.map(|_| file.as_path()), variables(pairs)) {
            Ok(_) => panic!("{pairs:?} / {file_text:?} was accepted"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn unknown_sections_and_keys_are_refused_with_their_name() {
        for name in ["REWARD_LOG_FORMAT", "REWARD_SERVR_LISTEN", "REWARD_VERBOSE", "REWARD_PROVIDER_SECRET_STRIP", "REWARD_SERVER_LISTN"] {
            let message = refusal(None, &[(name, "x")]);
            assert!(message.contains(name), "{name}: {message}");
        }
        for (text, name) in [
            ("[log]\nformat = \"json\"\n", "log"),
            ("[server]\nlisten_address = \"127.0.0.1:1\"\n", "listen_address"),
            ("[webhook]\nretries = 3\n", "retries"),
        ] {
            let message = refusal(Some(text), &[]);
            assert!(message.contains(name), "{name}: {message}");
        }
    }

    #[test]
    fn every_other_reward_variable_the_binary_reads_is_accepted() {
        let pairs: Vec<(&str, &str)> =
            SPECIAL_VARIABLES.iter().map(|name| (*name, if *name == "REWARD_PORTAL_REGISTRATION" { "open" } else { "on" })).collect();
        let config = Config::load(None, variables(&pairs)).expect("the non-config variables are legitimate");
        assert!(config.server.test_clock);
        assert_eq!(config.server.portal_registration, PortalRegistration::Open);
    }

    #[test]
    fn connection_bounds_are_settings_with_sane_relations() {
        let config = Config::load(
            None,
            variables(&[
                ("REWARD_SERVER_CONNECTIONS_MAX", "64"),
                ("REWARD_SERVER_HEADER_READ_TIMEOUT_MS", "2000"),
                ("REWARD_SERVER_IDLE_TIMEOUT_MS", "3000"),
                ("REWARD_SERVER_CROWDED_IDLE_TIMEOUT_MS", "100"),
                ("REWARD_SERVER_LOG_FORMAT", "json"),
            ]),
        )
        .expect("valid");
        assert_eq!(
            (
                config.server.connections_max,
                config.server.header_read_timeout_ms,
                config.server.idle_timeout_ms,
                config.server.crowded_idle_timeout_ms
            ),
            (64, 2000, 3000, 100)
        );
        assert_eq!(config.server.log_format, LogFormat::Json);
        assert!(refusal(None, &[("REWARD_SERVER_CONNECTIONS_MAX", "0")]).contains("server.connections_max"));
        assert!(refusal(None, &[("REWARD_SERVER_CROWDED_IDLE_TIMEOUT_MS", "20000")]).contains("server.crowded_idle_timeout_ms"));
        assert!(refusal(None, &[("REWARD_SERVER_LOG_FORMAT", "xml")]).contains("xml"));
    }

    #[test]
    fn typed_server_settings_parse_at_load() {
        let defaults = Config::load(None, variables(&[])).expect("defaults");
        assert_eq!(defaults.server.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!((defaults.server.master_key_file, defaults.server.client_ip_header), (None, None));
        assert_eq!(defaults.server.portal_registration, PortalRegistration::Closed);

        let from_environment = Config::load(
            None,
            variables(&[
                ("REWARD_SERVER_LISTEN", "[::1]:9443"),
                ("REWARD_SERVER_MASTER_KEY_FILE", "/etc/reward/master.key"),
                ("REWARD_SERVER_PORTAL_REGISTRATION", "open"),
                ("REWARD_SERVER_CLIENT_IP_HEADER", "X-Forwarded-For"),
            ]),
        )
        .expect("valid");
        let server = from_environment.server;
        assert_eq!(server.listen, "[::1]:9443".parse::<SocketAddr>().expect("an address"));
        assert_eq!(server.master_key_file.as_deref(), Some(Path::new("/etc/reward/master.key")));
        assert_eq!(server.portal_registration, PortalRegistration::Open);
        assert_eq!(server.client_ip_header, Some(HeaderName::from_static("x-forwarded-for")), "header names are case-insensitive");

        let shorthand = Config::load(None, variables(&[("REWARD_PORTAL_REGISTRATION", "OPEN")])).expect("the shorthand ignores case");
        assert_eq!(shorthand.server.portal_registration, PortalRegistration::Open);
    }

    #[test]
    fn an_empty_key_file_or_proxy_header_means_none() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("reward.toml");
        let set = "[server]\nmaster_key_file = \"/etc/reward/master.key\"\nclient_ip_header = \"x-real-ip\"\nportal_registration = \"open\"\n";
        std::fs::write(&file, set).expect("write");
        let from_file = Config::load(Some(&file), variables(&[])).expect("valid");
        assert_eq!(from_file.server.master_key_file.as_deref(), Some(Path::new("/etc/reward/master.key")));
        assert_eq!(from_file.server.client_ip_header, Some(HeaderName::from_static("x-real-ip")));
        assert_eq!(from_file.server.portal_registration, PortalRegistration::Open);

        let emptied = Config::load(Some(&file), variables(&[("REWARD_SERVER_MASTER_KEY_FILE", ""), ("REWARD_SERVER_CLIENT_IP_HEADER", "")]))
            .expect("an empty variable is none");
        assert_eq!((emptied.server.master_key_file, emptied.server.client_ip_header), (None, None));

        std::fs::write(&file, "[server]\nmaster_key_file = \"\"\nclient_ip_header = \"\"\n").expect("write");
        let empty_in_file = Config::load(Some(&file), variables(&[])).expect("an empty string in TOML is none");
        assert_eq!((empty_in_file.server.master_key_file, empty_in_file.server.client_ip_header), (None, None));
    }

    #[test]
    fn bad_typed_server_settings_are_refused_naming_the_setting() {
        for (name, value, expected) in [
            ("REWARD_SERVER_LISTEN", "localhost", "server.listen 'localhost' is not an address like 127.0.0.1:8080"),
            ("REWARD_SERVER_LISTEN", "127.0.0.1", "server.listen '127.0.0.1' is not an address"),
            ("REWARD_SERVER_LISTEN", "127.0.0.1:70000", "server.listen '127.0.0.1:70000' is not an address"),
            ("REWARD_SERVER_LISTEN", "", "server.listen '' is not an address"),
            ("REWARD_SERVER_PORTAL_REGISTRATION", "sometimes", "server.portal_registration must be open or closed"),
            ("REWARD_SERVER_PORTAL_REGISTRATION", "Open", "server.portal_registration must be open or closed"),
            ("REWARD_SERVER_PORTAL_REGISTRATION", "", "server.portal_registration must be open or closed"),
            ("REWARD_PORTAL_REGISTRATION", "ajar", "server.portal_registration must be open or closed"),
            ("REWARD_SERVER_CLIENT_IP_HEADER", "x forwarded for", "server.client_ip_header is not a header name"),
            ("REWARD_SERVER_CLIENT_IP_HEADER", "x-forwarded-for:", "server.client_ip_header is not a header name"),
        ] {
            let message = refusal(None, &[(name, value)]);
            assert!(message.contains(expected), "{name}={value:?}: {message}");
        }
        for (text, expected) in [
            ("[server]\nlisten = \"example.org\"\n", "server.listen 'example.org'"),
            ("[server]\nportal_registration = \"closed \"\n", "server.portal_registration"),
            ("[server]\nclient_ip_header = \"\u{e9}\"\n", "server.client_ip_header"),
        ] {
            let message = refusal(Some(text), &[]);
            assert!(message.contains(expected), "{text}: {message}");
        }
    }

    #[test]
    fn the_log_filter_comes_from_reward_log_then_rust_log_and_a_bad_one_is_refused() {
        let shown = |reward_log: Option<&str>, rust_log: Option<&str>| log_filter(reward_log, rust_log).map(|filter| filter.to_string());
        assert_eq!(shown(None, None).expect("default"), "info");
        assert_eq!(shown(Some(""), Some("debug")).expect("RUST_LOG"), "debug", "an empty REWARD_LOG counts as unset");
        assert_eq!(shown(None, Some("reward_engine=debug")).expect("RUST_LOG"), "reward_engine=debug");
        assert_eq!(shown(Some("warn"), Some("debug")).expect("REWARD_LOG first"), "warn");
        let refused = shown(Some("reward_engine=loud"), None).expect_err("not a level");
        assert!(refused.to_string().contains("REWARD_LOG"), "{refused}");
        let refused = shown(None, Some("info,[{")).expect_err("not a directive");
        assert!(refused.to_string().contains("RUST_LOG"), "{refused}");
    }
}
