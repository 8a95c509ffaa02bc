//! Test support: a real server on 127.0.0.1 (port 0) over a temporary data directory, a
//! signing client, admin helpers, and `eventually` instead of sleeps.

#![allow(dead_code)]

pub mod binary;
pub mod stores;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::Method;
use reward_actors::engine::crypto::Secret;
use reward_actors::store::{Store, StoreBackend};
use reward_bench::client::{ClientResponse, Connection};
use reward_engine::config::Config;
use reward_engine::server::{RunningServer, ServeOptions, ServerSecrets, start};
use reward_engine::signing;
use serde_json::{Value, json};
use tempfile::TempDir;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";
/// every.org's callback secret in tests (stripe has none: its callback route is absent).
pub const PROVIDER_SECRET: &str = "provider-secret-every-org-0123456789";
pub const MASTER_KEY: &str = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";

/// Wraps the store the app opens (to instrument or gate it).
pub type WrapStore = Arc<dyn Fn(Arc<dyn Store>) -> Arc<dyn Store> + Send + Sync>;
/// Changes the configuration before the app starts.
pub type TweakConfig = Arc<dyn Fn(&mut Config) + Send + Sync>;

/// How the app under test is started.
#[derive(Clone)]
pub struct AppOptions {
    pub backend: StoreBackend,
    pub test_clock: bool,
    pub wrap_store: Option<WrapStore>,
    pub tweak: Option<TweakConfig>,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions { backend: StoreBackend::Redb, test_clock: false, wrap_store: None, tweak: None }
    }
}

pub struct TestApp {
    pub operator: Operator,
    pub server: Option<RunningServer>,
    pub data_dir: PathBuf,
    _temp: Arc<TempDir>,
    options: AppOptions,
}

pub async fn spawn_app(backend: StoreBackend) -> TestApp {
    spawn_app_with(AppOptions { backend, ..AppOptions::default() }).await
}

/// Runs each named `async fn(StoreBackend)` as two tests, one per embedded backend:
/// both backends pass the same suite.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod redb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(reward_actors::store::StoreBackend::Redb).await
                }
            )*
        }
        mod sled {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(reward_actors::store::StoreBackend::Sled).await
                }
            )*
        }
    };
}

/// An app whose store is wrapped in an [`stores::InstrumentedStore`] (commit log and gate).
pub async fn instrumented_app(backend: StoreBackend, tweak: Option<TweakConfig>) -> (TestApp, Arc<stores::InstrumentedStore>) {
    let slot: Arc<std::sync::OnceLock<Arc<stores::InstrumentedStore>>> = Arc::new(std::sync::OnceLock::new());
    let wrap_slot = Arc::clone(&slot);
    let options = AppOptions {
        backend,
        wrap_store: Some(Arc::new(move |inner| {
            let store = Arc::new(stores::InstrumentedStore::new(inner));
            let _ = wrap_slot.set(Arc::clone(&store));
            store
        })),
        tweak,
        ..AppOptions::default()
    };
    let app = spawn_app_with(options).await;
    let store = Arc::clone(slot.get().expect("the app wrapped its store"));
    (app, store)
}

pub async fn spawn_app_with(options: AppOptions) -> TestApp {
    let temp = Arc::new(tempfile::tempdir().expect("temp dir"));
    let data_dir = temp.path().join("data");
    let (server, address) = start_server(&options, &data_dir).await;
    TestApp { operator: Operator { address }, server: Some(server), data_dir, _temp: temp, options }
}

/// An app whose data directory is `data_dir` (e.g. on a size-limited filesystem); the
/// caller owns and cleans it.
pub async fn spawn_app_in(options: AppOptions, data_dir: PathBuf) -> TestApp {
    let temp = Arc::new(tempfile::tempdir().expect("temp dir"));
    let (server, address) = start_server(&options, &data_dir).await;
    TestApp { operator: Operator { address }, server: Some(server), data_dir, _temp: temp, options }
}

async fn start_server(options: &AppOptions, data_dir: &std::path::Path) -> (RunningServer, SocketAddr) {
    let mut config = Config::default();
    config.server.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    config.server.data_dir = data_dir.to_owned();
    config.server.store = options.backend;
    config.server.test_clock = options.test_clock;
    config.server.shutdown_grace_secs = 5;
    if let Some(tweak) = &options.tweak {
        tweak(&mut config);
    }
    let store = options.wrap_store.as_ref().map(|wrap| wrap(reward_actors::store::open_store(options.backend, data_dir).expect("store opens")));
    let secrets = ServerSecrets {
        admin_token: Some(Secret::new(ADMIN_TOKEN.into())),
        master_key: Some(Secret::new(MASTER_KEY.into())),
        provider_secrets: vec![(reward_actors::services::donations::Provider::EveryOrg, Secret::new(PROVIDER_SECRET.into()))],
    };
    let server = start(ServeOptions { config, demo: false, secrets, store }).await.expect("server starts");
    let address = server.local_addr;
    (server, address)
}

impl TestApp {
    pub fn engine(&self) -> &reward_actors::Engine {
        &self.server.as_ref().expect("running").engine
    }

    /// Stops the server gracefully and starts it again on the same data directory.
    pub async fn restart(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("clean shutdown");
        }
        let (server, address) = start_server(&self.options, &self.data_dir).await;
        self.server = Some(server);
        self.operator.address = address;
    }

    /// Stops the server gracefully and starts it again on the same data directory with
    /// other options (an operator changing the configuration between runs).
    pub async fn restart_with(&mut self, options: AppOptions) {
        self.options = options;
        self.restart().await;
    }

    /// Stops the server gracefully and waits until its store's file lock is released, so
    /// another process (`verify`, `restore`) may open the data directory at once.
    pub async fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("clean shutdown");
        }
        // A test that wrapped the store may still hold it: then the lock stays taken.
        if self.options.wrap_store.is_none() {
            let data_dir = self.data_dir.clone();
            tokio::task::spawn_blocking(move || wait_for_store_lock(&data_dir)).await.expect("lock wait");
        }
    }
}

/// How long [`TestApp::shutdown`] waits for the store's lock. In a test the engine shares
/// the process with the test, and sled releases its `flock` when its own IO threads drop
/// their last reference, a moment after the handle's drop (a real `serve` exits instead).
const STORE_LOCK_WAIT: Duration = Duration::from_secs(10);

fn wait_for_store_lock(data_dir: &std::path::Path) {
    let deadline = Instant::now() + STORE_LOCK_WAIT;
    for locked in [data_dir.join("reward.sled").join("db"), data_dir.join("reward.redb")] {
        let Ok(file) = std::fs::File::open(&locked) else { continue };
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                Err(error) => panic!("{} still locked after shutdown: {error}", locked.display()),
            }
        }
        file.unlock().expect("unlocks");
    }
}

impl std::ops::Deref for TestApp {
    type Target = Operator;

    fn deref(&self) -> &Operator {
        &self.operator
    }
}

/// Talks to a running server as its operator: raw requests, the admin API, onboarding.
#[derive(Debug, Clone)]
pub struct Operator {
    pub address: SocketAddr,
}

impl Operator {
    /// One request on a fresh connection.
    pub async fn raw(&self, method: Method, path: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> ClientResponse {
        request(self.address, method, path, headers, body.into()).await
    }

    pub async fn admin(&self, method: Method, path: &str, body: Value) -> ClientResponse {
        let authorization = format!("Bearer {ADMIN_TOKEN}");
        let body = if body.is_null() { Bytes::new() } else { Bytes::from(body.to_string()) };
        self.raw(method, path, &[("authorization", &authorization), ("content-type", "application/json")], body).await
    }

    /// An ACTIVE partner with a sandbox key pair and a default pool of `pool_tokens`.
    pub async fn onboard_partner(&self, pool_tokens: u64) -> Partner {
        self.onboard_partner_in("sandbox", pool_tokens).await
    }

    pub async fn onboard_partner_in(&self, environment: &str, pool_tokens: u64) -> Partner {
        let created = self
            .admin(
                Method::POST,
                "/api/v1/admin/partners",
                // A CUSTOM limit far above any test's traffic: rate limits have their own tests.
                json!({
                    "name": "Acme Giving",
                    "contactEmail": "ops@acme.example",
                    "stakeholderTypes": ["CUSTOMER", "NONPROFIT"],
                    "tier": "CUSTOM",
                    "rateLimit": { "hourly": 1_000_000_000, "perMinute": 1_000_000_000 },
                }),
            )
            .await;
        assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
        let partner_id = created.json()["id"].as_str().expect("id").to_owned();
        let activated = self.admin(Method::PATCH, &format!("/api/v1/admin/partners/{partner_id}"), json!({ "status": "ACTIVE" })).await;
        assert_eq!(activated.status, 200);
        let partner = self.issue_key(&partner_id, environment).await;
        if pool_tokens > 0 {
            let pool = partner.allocate(self, pool_tokens, "initial-pool").await;
            assert!(pool.status == 201 || pool.status == 200, "{}", String::from_utf8_lossy(&pool.body));
        }
        partner
    }

    /// A request with a portal access token.
    pub async fn portal(&self, method: Method, path: &str, access_token: &str, body: Value) -> ClientResponse {
        let authorization = format!("Bearer {access_token}");
        let body = if body.is_null() { Bytes::new() } else { Bytes::from(body.to_string()) };
        self.raw(method, path, &[("authorization", &authorization), ("content-type", "application/json")], body).await
    }

    /// Signs in to the portal and answers the session (tokens, account, partner).
    pub async fn login(&self, email: &str, password: &str) -> Value {
        let body = Bytes::from(json!({ "email": email, "password": password }).to_string());
        let response = self.raw(Method::POST, "/v1/partner/auth/login", &[("content-type", "application/json")], body).await;
        assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
        response.json()
    }

    /// A Partner handle from a key the portal created (its JSON answer).
    pub fn partner_from_key(&self, key: &Value) -> Partner {
        let text = |field: &str| key[field].as_str().expect(field).to_owned();
        Partner {
            id: text("partnerId"),
            environment: text("environment"),
            public_key: text("publicKey"),
            secret_key: text("secretKey"),
            hmac_secret: text("hmacSecret"),
            address: self.address,
        }
    }

    pub async fn issue_key(&self, partner_id: &str, environment: &str) -> Partner {
        self.issue_key_with(partner_id, json!({ "environment": environment, "name": "test key" })).await
    }

    pub async fn issue_key_with(&self, partner_id: &str, body: Value) -> Partner {
        let key = self.admin(Method::POST, &format!("/api/v1/admin/partners/{partner_id}/keys"), body).await;
        assert_eq!(key.status, 201, "{}", String::from_utf8_lossy(&key.body));
        let key = key.json();
        let text = |field: &str| key[field].as_str().expect(field).to_owned();
        Partner {
            id: partner_id.to_owned(),
            environment: text("environment"),
            public_key: text("publicKey"),
            secret_key: text("secretKey"),
            hmac_secret: text("hmacSecret"),
            address: self.address,
        }
    }
}

pub async fn request(address: SocketAddr, method: Method, path: &str, headers: &[(&str, &str)], body: Bytes) -> ClientResponse {
    let mut connection = Connection::connect(address).await.expect("connects");
    connection.request(method, path, headers, body).await.expect("answers")
}

#[derive(Debug, Clone)]
pub struct Partner {
    pub id: String,
    pub environment: String,
    pub public_key: String,
    pub secret_key: String,
    pub hmac_secret: String,
    pub address: SocketAddr,
}

pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
}

impl Partner {
    /// The three signing headers for a request made with `key`.
    pub fn sign_with(&self, key: &str, method: &str, path: &str, body: &[u8], timestamp: u64) -> Vec<(String, String)> {
        let timestamp = timestamp.to_string();
        let signature = signing::sign(&self.hmac_secret, &timestamp, method, path, body);
        vec![
            ("x-partner-key".into(), key.to_owned()),
            ("x-timestamp".into(), timestamp),
            ("x-signature".into(), signature),
            ("content-type".into(), "application/json".into()),
        ]
    }

    /// A request signed with the secret key, now.
    pub async fn signed(&self, method: Method, path: &str, body: &str) -> ClientResponse {
        let headers = self.sign_with(&self.secret_key, method.as_str(), path, body.as_bytes(), now_secs());
        let headers: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
        request(self.address, method, path, &headers, Bytes::from(body.to_owned())).await
    }

    /// A request with Basic `pk:sk` authorization instead of a signature.
    pub async fn basic(&self, method: Method, path: &str, body: &str) -> ClientResponse {
        use base64::Engine as _;
        let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", self.public_key, self.secret_key));
        let authorization = format!("Basic {credentials}");
        let headers = [("authorization", authorization.as_str()), ("content-type", "application/json")];
        request(self.address, method, path, &headers, Bytes::from(body.to_owned())).await
    }

    /// An unsigned request with the publishable key (widget routes).
    pub async fn widget(&self, method: Method, path: &str, origin: Option<&str>) -> ClientResponse {
        let mut headers = vec![("x-partner-key", self.public_key.as_str())];
        if let Some(origin) = origin {
            headers.push(("origin", origin));
        }
        request(self.address, method, path, &headers, Bytes::new()).await
    }

    pub async fn submit(&self, body: &str) -> ClientResponse {
        self.signed(Method::POST, "/v1/partner/actions/submit", body).await
    }

    pub async fn balance(&self, user: &str) -> ClientResponse {
        self.signed(Method::GET, &format!("/v1/partner/users/{user}/balance"), "").await
    }

    /// The partner's default pool in this key's environment.
    pub async fn pool(&self) -> Value {
        let pools = self.signed(Method::GET, "/v1/partner/token-pools", "").await;
        assert_eq!(pools.status, 200, "{}", String::from_utf8_lossy(&pools.body));
        pools.json()["data"][0].clone()
    }

    pub async fn allocate(&self, app: &Operator, tokens: u64, idempotency_key: &str) -> ClientResponse {
        let body = json!({ "environment": self.environment, "tokens": tokens, "idempotencyKey": idempotency_key });
        app.admin(Method::POST, &format!("/api/v1/admin/partners/{}/token-pools", self.id), body).await
    }
}

/// A submit body: `amount` is JSON number text (e.g. "49.99").
pub fn action_body(idempotency_key: &str, amount: &str, user: &str) -> String {
    format!(
        r#"{{"idempotencyKey":"{idempotency_key}","actionType":"PURCHASE","amount":{amount},"currency":"USD","stakeholders":[{{"stakeholderTypeCode":"CUSTOMER","partnerUserId":"{user}"}}]}}"#
    )
}

/// Retries `check` until it returns `Some` or the deadline passes.
pub async fn eventually<T, F, Fut>(deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < until, "condition not met within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A request signed with the partner's secret key at the server's clock (which a test may
/// have moved), JSON in and out.
pub async fn call(app: &TestApp, partner: &Partner, method: Method, path: &str, body: Value) -> ClientResponse {
    let body = if body.is_null() { String::new() } else { body.to_string() };
    let now_secs = app.engine().clock().now_ms() / 1000;
    let headers = partner.sign_with(&partner.secret_key, method.as_str(), path, body.as_bytes(), now_secs);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    app.raw(method, path, &headers, body).await
}

/// Asserts the status (showing the body when it differs) and answers the JSON body.
pub fn expect(response: &ClientResponse, status: u16) -> Value {
    assert_eq!(response.status, status, "{}", String::from_utf8_lossy(&response.body));
    response.json()
}

/// The status and the error `code` of an answer.
pub fn code(response: &ClientResponse) -> (u16, String) {
    (response.status, response.json()["code"].as_str().unwrap_or_default().to_owned())
}

/// What the users `user_0` … `user_{users-1}` hold in all (those that exist).
pub async fn credited_to_users(partner: &Partner, users: usize) -> u64 {
    let mut credited = 0;
    for user in 0..users {
        let response = partner.balance(&format!("user_{user}")).await;
        if response.status == 200 {
            credited += response.json()["available"].as_u64().expect("available");
        }
    }
    credited
}

/// The value of one series in Prometheus text; a series that is not there fails the test
/// (a renamed metric must not read as 0).
pub fn metric(text: &str, series: &str) -> f64 {
    find_metric(text, series).unwrap_or_else(|| panic!("no series {series} in the scrape"))
}

/// The value of one series, 0 when absent: only for a "before" scrape, where a labelled
/// series may not have been created yet. Pair it with [`metric`] on the "after" scrape.
pub fn metric_or_zero(text: &str, series: &str) -> f64 {
    find_metric(text, series).unwrap_or(0.0)
}

fn find_metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series).filter(|rest| rest.starts_with(' ')).and_then(|rest| rest.trim().parse().ok()))
}
