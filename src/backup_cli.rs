//! `reward-engine backup` (asks a running server for an online backup through the admin
//! API) and `reward-engine restore` (checks a backup and loads it into a new data directory).

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use reward_actors::api::operations::backup::{self, Progress};
use reward_actors::api::operations::{PostgresUrl, StoreBackend};

#[derive(clap::Args)]
pub struct BackupArgs {
    /// The running server's base URL (plain HTTP; the admin API should not leave the host
    /// or a private network).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// A file holding the admin token [default: the REWARD_ADMIN_TOKEN variable]. Never a
    /// flag with the token itself: command lines are visible to every user of the host.
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Print the server's answer (the backup's path and manifest) as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct RestoreArgs {
    /// The backup directory (`backup-<time>`, holding manifest.json and SHA256SUMS).
    #[arg(long)]
    pub from: PathBuf,
    /// The new data directory; it must not exist or be empty.
    #[arg(long, required_unless_present = "postgres")]
    pub data_dir: Option<PathBuf>,
    /// The store to restore into [default: the one the backup was taken from].
    #[arg(long, value_enum, conflicts_with = "postgres")]
    pub store: Option<crate::config::StoreChoice>,
    /// Restore into the PostgreSQL database at REWARD_STORE_POSTGRES_URL instead (its schema
    /// must hold no data yet): the way from an embedded node to a cluster.
    #[arg(long, conflicts_with = "data_dir")]
    pub postgres: bool,
}

/// `http://host:port` (or `host:port`) → the first address it resolves to.
async fn server_address(url: &str) -> anyhow::Result<std::net::SocketAddr> {
    if url.starts_with("https://") {
        bail!("{url}: this client speaks plain HTTP only; run it on the server's host or network");
    }
    let authority = url.strip_prefix("http://").unwrap_or(url).trim_end_matches('/');
    if authority.contains('/') {
        bail!("{url}: give the server's base URL, without a path");
    }
    tokio::net::lookup_host(authority)
        .await
        .with_context(|| format!("resolving {authority}"))?
        .next()
        .with_context(|| format!("{authority} resolves to no address"))
}

/// Asks the server for a backup and waits for it; prints where it is.
pub async fn run_backup(args: BackupArgs) -> anyhow::Result<()> {
    let address = server_address(&args.url).await?;
    let connection = connect(address).await.with_context(|| format!("connecting to {address}"))?;
    eprintln!("backing up the engine at {address} (the server keeps serving; this waits until the backup is complete)…");
    let started = Instant::now();
    let token = match &args.admin_token_file {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading the admin token from {}", path.display()))?.trim().to_owned(),
        None => std::env::var("REWARD_ADMIN_TOKEN")
            .ok()
            .filter(|token| !token.is_empty())
            .context("no admin token: set REWARD_ADMIN_TOKEN or pass --admin-token-file")?,
    };
    let authorization = format!("Bearer {token}");
    let headers = [("authorization", authorization.as_str()), ("content-type", "application/json")];
    let (status, body) = post(connection, address, "/api/v1/admin/backups", &headers, Bytes::from_static(b"{}")).await?;
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    if status != 201 {
        let code = body["error"]["code"].as_str().unwrap_or("?");
        let message = body["error"]["message"].as_str().unwrap_or("(no message)");
        bail!("the server answered {status} {code}: {message}");
    }
    if args.json {
        println!("{body:#}");
        return Ok(());
    }
    let manifest = &body["manifest"];
    println!(
        "backup complete in {:.1} s: {}\n  covers log sequence {}, {} records, {} bytes in {} file(s), taken {}",
        started.elapsed().as_secs_f64(),
        body["path"].as_str().unwrap_or("?"),
        manifest["sequence"],
        manifest["records"],
        manifest["bytes"],
        manifest["files"].as_array().map_or(0, Vec::len),
        manifest["createdAt"].as_str().unwrap_or("?"),
    );
    Ok(())
}

/// An HTTP/1.1 connection to the server, opened before the token is read (an unreachable
/// server is reported first). The one request this command sends needs no keep-alive client;
/// the tools' client lives in `reward-bench`.
async fn connect(address: std::net::SocketAddr) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(address).await?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // The connection's driver; it ends when the sender is dropped after the answer.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// Sends one request and reads the whole answer: its status and body.
async fn post(
    mut sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    address: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> anyhow::Result<(u16, Bytes)> {
    let mut request = Request::builder().method(Method::POST).uri(path).header("host", address.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    sender.ready().await?;
    let response = sender.send_request(request.body(Full::new(body))?).await?;
    let status = response.status().as_u16();
    Ok((status, response.into_body().collect().await?.to_bytes()))
}

/// Checks the backup, loads it into the new directory, and prints what to run next.
pub fn run_restore(args: RestoreArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    eprintln!("checking {} (manifest and every file's SHA-256) before writing anything…", args.from.display());
    let mut report = |progress: Progress| {
        let _ = writeln!(std::io::stderr(), "  restored {} records ({} MiB)", progress.records, progress.bytes / (1024 * 1024));
    };
    let Some(data_dir) = args.data_dir.filter(|_| !args.postgres) else {
        let text = std::env::var("REWARD_STORE_POSTGRES_URL").ok().filter(|url| !url.is_empty());
        let url = PostgresUrl::new(&text.context("--postgres restores into the database at REWARD_STORE_POSTGRES_URL, which is not set")?)?;
        let restored = backup::restore_backup_to_postgres(&args.from, &url, &mut report)?;
        println!(
            "restored {} records (log sequence {}, taken {}) into PostgreSQL ({}) in {:.1} s.\nStart it with the master key it was sealed under: REWARD_SERVER_STORE=postgres reward-engine serve (and [cluster] for several nodes)",
            restored.records,
            restored.manifest.sequence,
            restored.manifest.created_at,
            url.redacted(),
            started.elapsed().as_secs_f64(),
        );
        return Ok(());
    };
    let backend = args.store.map(StoreBackend::from);
    let restored = backup::restore_backup(&args.from, &data_dir, backend, &mut report)?;
    println!(
        "restored {} records (log sequence {}, taken {}) into {} on {} in {:.1} s.\nStart it with the master key it was sealed under: reward-engine serve --data-dir {} --store {}",
        restored.records,
        restored.manifest.sequence,
        restored.manifest.created_at,
        data_dir.display(),
        restored.backend,
        started.elapsed().as_secs_f64(),
        data_dir.display(),
        restored.backend,
    );
    Ok(())
}
