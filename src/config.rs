//! Configuration: built-in defaults, then an optional TOML file, then `REWARD_<SECTION>_<KEY>`
//! environment variables, then command-line flags. Every bound lives here or in
//! `EngineConfig`, with its reason, and is validated and printed once at start.
//!
//! Secrets are never configuration: `REWARD_ADMIN_TOKEN`, `REWARD_MASTER_KEY` and the
//! providers' `REWARD_PROVIDER_SECRET_*` are read by the binary directly and never logged.

use std::path::{Path, PathBuf};

use reward_actors::EngineConfig;
use reward_actors::store::{StoreBackend, WalOptions};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub engine: EngineConfig,
    pub limits: HttpLimits,
    /// The write-ahead log in front of the store (`actors/src/store/wal.rs`).
    pub wal: WalOptions,
    pub donations: DonationsConfig,
    /// Webhook deliveries (`REWARD_WEBHOOK_ALLOWED_CIDRS`, `REWARD_WEBHOOK_RETRY_SCHEDULE`, …).
    pub webhook: reward_actors::webhooks::WebhookConfig,
}

/// Donation links (contract §10): each provider's URL template. Placeholders, each
/// percent-encoded: `{nonprofitSlug}`, `{amount}` (minor units), `{amountDecimal}`,
/// `{currency}`, `{frequency}` (`once`/`monthly`), `{frequencyUpper}`, `{partnerDonationId}`,
/// `{donorEmail}`, `{firstName}`, `{lastName}`, `{tipAmount}`, `{referralCode}`. The providers'
/// callback secrets are not configuration: `REWARD_PROVIDER_SECRET_EVERY_ORG` and
/// `REWARD_PROVIDER_SECRET_STRIPE`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DonationsConfig {
    pub every_org_link_template: String,
    pub stripe_link_template: String,
}

impl Default for DonationsConfig {
    fn default() -> Self {
        DonationsConfig {
            every_org_link_template: "https://www.every.org/{nonprofitSlug}#/donate/card?amount={amountDecimal}&currency={currency}&frequency={frequencyUpper}&partner_donation_id={partnerDonationId}&email={donorEmail}&first_name={firstName}&last_name={lastName}".into(),
            stripe_link_template: "https://donate.stripe.com/pay?nonprofit={nonprofitSlug}&amount={amount}&currency={currency}&interval={frequency}&client_reference_id={partnerDonationId}&prefilled_email={donorEmail}".into(),
        }
    }
}

/// The placeholders a donation link template may use.
pub const LINK_PLACEHOLDERS: [&str; 12] = [
    "nonprofitSlug",
    "amount",
    "amountDecimal",
    "currency",
    "frequency",
    "frequencyUpper",
    "partnerDonationId",
    "donorEmail",
    "firstName",
    "lastName",
    "tipAmount",
    "referralCode",
];

impl DonationsConfig {
    /// A template is an http(s) URL whose `{placeholders}` are all known.
    pub fn check_template(name: &str, template: &str) -> Result<(), ConfigError> {
        if !(template.starts_with("https://") || template.starts_with("http://")) {
            return Err(ConfigError::Invalid(format!("donations.{name} must be an http(s) URL")));
        }
        let mut rest = template;
        while let Some(start) = rest.find('{') {
            let Some(length) = rest[start..].find('}') else {
                return Err(ConfigError::Invalid(format!("donations.{name} has an unclosed '{{'")));
            };
            let placeholder = &rest[start + 1..start + length];
            if !LINK_PLACEHOLDERS.contains(&placeholder) {
                return Err(ConfigError::Invalid(format!(
                    "donations.{name} uses unknown placeholder {{{placeholder}}} (known: {})",
                    LINK_PLACEHOLDERS.join(", ")
                )));
            }
            rest = &rest[start + length + 1..];
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: String,
    /// Where the store and (in demo mode) generated files live.
    pub data_dir: PathBuf,
    /// The embedded store: `redb` (default) or `sled`.
    pub store: StoreBackend,
    /// A file holding the 64-hex master key, outside the data directory. Empty: none.
    pub master_key_file: String,
    /// `pretty` for people, `json` for log pipelines.
    pub log_format: String,
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
    pub portal_registration: String,
    /// How long a portal access token is valid; refresh tokens renew it.
    pub access_token_ttl_secs: u64,
    /// A header set by a trusted reverse proxy that names the client (`x-forwarded-for`):
    /// its last address is the client for the IP allowlist. Empty (the default): the
    /// socket's peer address, and no header is trusted.
    pub client_ip_header: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            store: StoreBackend::Redb,
            master_key_file: String::new(),
            log_format: "pretty".into(),
            shutdown_grace_secs: 30,
            test_clock: false,
            maintenance_interval_ms: 60_000,
            key_expiry_notice_days: 7,
            portal_registration: "closed".into(),
            access_token_ttl_secs: 900,
            client_ip_header: String::new(),
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

/// Environment variables that are not `<SECTION>_<KEY>` settings.
const SPECIAL_VARIABLES: &[&str] = &[
    "REWARD_ADMIN_TOKEN",
    "REWARD_MASTER_KEY",
    "REWARD_TEST_CLOCK",
    "REWARD_LOG",
    "REWARD_SECRET_KEY",
    "REWARD_HMAC_SECRET",
    "REWARD_PORTAL_REGISTRATION",
    "REWARD_PROVIDER_SECRET_EVERY_ORG",
    "REWARD_PROVIDER_SECRET_STRIPE",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
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
        self.engine.validate().map_err(ConfigError::Invalid)?;
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
        self.webhook.settings().map_err(ConfigError::Invalid)?;
        DonationsConfig::check_template("every_org_link_template", &self.donations.every_org_link_template)?;
        DonationsConfig::check_template("stripe_link_template", &self.donations.stripe_link_template)?;
        if !matches!(self.server.portal_registration.as_str(), "open" | "closed") {
            return Err(ConfigError::Invalid("server.portal_registration must be open or closed".into()));
        }
        if !self.server.client_ip_header.is_empty() && axum::http::HeaderName::from_bytes(self.server.client_ip_header.as_bytes()).is_err() {
            return Err(ConfigError::Invalid("server.client_ip_header is not a header name".into()));
        }
        if self.server.maintenance_interval_ms == 0 {
            return Err(ConfigError::Invalid("server.maintenance_interval_ms must be greater than 0".into()));
        }
        if !matches!(self.server.log_format.as_str(), "pretty" | "json") {
            return Err(ConfigError::Invalid("server.log_format must be pretty or json".into()));
        }
        self.server
            .listen
            .parse::<std::net::SocketAddr>()
            .map_err(|_| ConfigError::Invalid(format!("server.listen '{}' is not an address like 127.0.0.1:8080", self.server.listen)))?;
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
    let Some((section, key)) = rest.split_once('_') else {
        return Ok(());
    };
    let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
    let Some(toml::Value::Table(settings)) = table.get(&section) else {
        return Ok(());
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
        assert_eq!(config.server.listen, "127.0.0.1:9000");
        assert_eq!(config.server.store, StoreBackend::Sled);
        assert_eq!(config.engine.mailbox_capacity, 20);
        assert!(config.server.test_clock);
        assert_eq!(config.limits.body_bytes_max, 64 * 1024);
    }

    #[test]
    fn typos_and_bad_values_are_refused() {
        assert!(Config::load(None, variables(&[("REWARD_ENGINE_MAILBOX_CAPACTY", "20")])).is_err());
        assert!(Config::load(None, variables(&[("REWARD_ENGINE_MAILBOX_CAPACITY", "lots")])).is_err());
        assert!(Config::load(None, variables(&[("REWARD_ENGINE_MAILBOX_CAPACITY", "0")])).is_err());
        assert!(Config::load(None, variables(&[("REWARD_SERVER_STORE", "mongo")])).is_err());
        assert!(Config::load(None, variables(&[("REWARD_SERVER_LISTEN", "localhost")])).is_err());
    }
}
