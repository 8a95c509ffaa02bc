//! The real binary as a child process: for crash tests and for reading what it logs.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use reward_actors::store::StoreBackend;
use reward_bench::client::Connection;
use tokio::process::{Child, Command};

use super::{ADMIN_TOKEN, MASTER_KEY, eventually};

pub fn free_address() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("a free port")
}

/// Starts the real binary on a free port over `data_dir`, logging to `log`, and waits
/// until it answers `/healthz`. `environment` adds variables (e.g. faster log applies).
pub async fn start_binary(data_dir: &Path, backend: StoreBackend, log: &Path, environment: &[(&str, &str)]) -> (Child, SocketAddr) {
    let address = free_address();
    let log_file = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_reward-engine"))
        .args(["serve", "--store", backend.as_str(), "--listen", &address.to_string(), "--data-dir"])
        .arg(data_dir)
        .env("REWARD_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("REWARD_MASTER_KEY", MASTER_KEY)
        .env("REWARD_LOG", "warn")
        .envs(environment.iter().copied())
        .stdout(Stdio::from(log_file.try_clone().expect("log file")))
        .stderr(Stdio::from(log_file))
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    eventually(Duration::from_secs(60), || async move {
        let mut connection = Connection::connect(address).await.ok()?;
        let response = connection.request(Method::GET, "/healthz", &[], Bytes::new()).await.ok()?;
        (response.status == 200).then_some(())
    })
    .await;
    (child, address)
}
