//! The `reward-engine` binary: `serve`, `backup`, `restore`, `verify`, `sign`, `keygen`. The
//! benchmark tools moved to the `reward-bench` binary; their old names stay as hidden
//! subcommands that say where they went.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Parser, Subcommand};
use reward_actors::api::common::{MasterKey, Secret};
use reward_actors::api::donations::Provider;
use reward_engine::backup_cli::{self, BackupArgs, RestoreArgs};
use reward_engine::config::{Config, LogFormat, StoreChoice, log_filter};
use reward_engine::server::{self, ServeOptions, ServerSecrets};
use reward_engine::sign_cli::{SigningCredentials, curl_command, sign_request};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "reward-engine", version, about = "An actor-based reward engine: signed partner actions become tokens, exactly once, durably.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine (HTTP API on --listen, data in --data-dir).
    Serve(ServeArgs),
    /// Print the headers (or a curl command) for a signed request.
    Sign(SignArgs),
    /// Print a new random master key (64 hex characters) for REWARD_MASTER_KEY.
    Keygen,
    /// Ask a running server for an online backup (into its backup.directory) and wait for it.
    Backup(BackupArgs),
    /// Check a backup (manifest and checksums) and load it into a new data directory.
    Restore(RestoreArgs),
    // Its help (about, exit codes) is on `VerifyArgs`.
    Verify(reward_engine::verify::VerifyArgs),
    // The tools that moved to `reward-bench` (2026-12-02): hidden, and any arguments (even
    // `--help`) get the same answer, where they went.
    #[command(hide = true, disable_help_flag = true)]
    Loadgen(MovedArgs),
    #[command(hide = true, disable_help_flag = true)]
    WebhookSink(MovedArgs),
    #[command(hide = true, disable_help_flag = true)]
    CrashLoop(MovedArgs),
    #[command(hide = true, disable_help_flag = true)]
    HelloServer(MovedArgs),
}

/// Whatever followed a moved subcommand: it is not run, only pointed to its new home.
#[derive(clap::Args)]
struct MovedArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    _ignored: Vec<OsString>,
}

/// Exit status of a moved subcommand: the command line is wrong (clap's own usage errors also
/// exit 2), and a script that still calls it stops instead of silently doing nothing.
const MOVED_EXIT_CODE: i32 = 2;

/// Says where a moved tool went and exits with [`MOVED_EXIT_CODE`].
fn moved(subcommand: &str) -> ! {
    eprintln!(
        "moved: run `cargo run --release -p reward-bench -- {subcommand} …` (the benchmark tools are the reward-bench binary since 2026-12-02)"
    );
    std::process::exit(MOVED_EXIT_CODE)
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, value_parser = listen_address)]
    listen: Option<std::net::SocketAddr>,
    /// Data directory [default: ./data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Embedded store [default: redb].
    #[arg(long, value_enum)]
    store: Option<StoreChoice>,
    /// A TOML configuration file (environment variables REWARD_<SECTION>_<KEY> override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Create (once) and print a sandbox demo partner with keys and 1,000,000 tokens.
    #[arg(long)]
    demo: bool,
    /// Log format [default: pretty].
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
}

#[derive(clap::Args)]
struct SignArgs {
    /// A JSON file with secretKey and hmacSecret (the demo writes one). Without it,
    /// REWARD_SECRET_KEY and REWARD_HMAC_SECRET are used.
    #[arg(long, env = "REWARD_CREDENTIALS")]
    credentials: Option<PathBuf>,
    /// Print a complete curl command for this base URL instead of the headers.
    #[arg(long)]
    curl: Option<String>,
    /// Unix seconds to sign with [default: now].
    #[arg(long)]
    timestamp: Option<u64>,
    /// Read the body from this file instead of the BODY argument.
    #[arg(long, conflicts_with = "body")]
    body_file: Option<PathBuf>,
    /// HTTP method, e.g. POST.
    method: String,
    /// Path with query, exactly as it will be sent, e.g. /v1/partner/actions/submit.
    path: String,
    /// The exact body bytes to send (empty for GET).
    body: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Keygen => {
            println!("{}", MasterKey::generate_hex().expose());
            Ok(())
        }
        Command::Sign(args) => sign(args),
        Command::Serve(args) => runtime()?.block_on(serve(args)),
        Command::Backup(args) => runtime()?.block_on(backup_cli::run_backup(args)),
        Command::Restore(args) => backup_cli::run_restore(args),
        Command::Verify(args) => std::process::exit(reward_engine::verify::run(&args)),
        Command::Loadgen(_) => moved("loadgen"),
        Command::WebhookSink(_) => moved("webhook-sink"),
        Command::CrashLoop(_) => moved("crash-loop"),
        Command::HelloServer(_) => moved("hello-server"),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

/// Logs to stderr, filtered by `REWARD_LOG` (else `RUST_LOG`, else `info`); a filter that
/// does not parse stops the start with its variable's name.
fn init_logging(format: LogFormat) -> anyhow::Result<()> {
    let variable = |name: &str| std::env::var(name).ok();
    let filter = log_filter(variable("REWARD_LOG").as_deref(), variable("RUST_LOG").as_deref())?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
    Ok(())
}

/// `--listen`, refused at parse with the same hint as `server.listen`.
fn listen_address(text: &str) -> Result<std::net::SocketAddr, String> {
    text.parse().map_err(|_| "not an address like 127.0.0.1:8080".to_owned())
}

fn secret_from_environment(name: &str) -> Option<Secret> {
    std::env::var(name).ok().filter(|value| !value.is_empty()).map(Secret::new)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref(), std::env::vars())?;
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    if let Some(data_dir) = args.data_dir {
        config.server.data_dir = data_dir;
    }
    if let Some(store) = args.store {
        config.server.store = store.into();
    }
    if let Some(log_format) = args.log_format {
        config.server.log_format = log_format;
    }
    config.validate()?;
    init_logging(config.server.log_format)?;
    let secrets = ServerSecrets {
        admin_token: secret_from_environment("REWARD_ADMIN_TOKEN"),
        master_key: secret_from_environment("REWARD_MASTER_KEY"),
        provider_secrets: [(Provider::EveryOrg, "REWARD_PROVIDER_SECRET_EVERY_ORG"), (Provider::Stripe, "REWARD_PROVIDER_SECRET_STRIPE")]
            .into_iter()
            .filter_map(|(provider, name)| secret_from_environment(name).map(|secret| (provider, secret)))
            .collect(),
    };
    // The handlers go in before the server answers: a SIGTERM that arrives once /healthz is
    // up must drain, never kill the process with the store open.
    let stop_signal = StopSignal::install()?;
    let running = server::start(ServeOptions { config, demo: args.demo, secrets, store: None }).await?;
    stop_signal.received().await;
    tracing::info!("stop signal received; draining");
    running.shutdown().await
}

/// SIGINT (Ctrl-C) and SIGTERM, listened for from the moment this is made.
struct StopSignal {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignal {
    fn install() -> anyhow::Result<StopSignal> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignal {
            interrupt: signal(SignalKind::interrupt()).context("installing a SIGINT handler")?,
            terminate: signal(SignalKind::terminate()).context("installing a SIGTERM handler")?,
        })
    }

    async fn received(mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

fn sign(args: SignArgs) -> anyhow::Result<()> {
    let credentials = match &args.credentials {
        Some(path) => SigningCredentials::from_file(path)?,
        None => SigningCredentials::from_environment()?,
    };
    let body = match (&args.body_file, &args.body) {
        (Some(path), _) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        (None, Some(body)) => body.clone().into_bytes(),
        (None, None) => Vec::new(),
    };
    let method = args.method.to_ascii_uppercase();
    let now_secs = args.timestamp.unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs()));
    let headers = sign_request(&credentials, &method, &args.path, &body, now_secs);
    match args.curl {
        Some(base_url) => println!("{}", curl_command(&base_url, &method, &args.path, &body, &headers)),
        None => println!("X-Partner-Key: {}\nX-Timestamp: {}\nX-Signature: {}", headers.partner_key, headers.timestamp, headers.signature),
    }
    Ok(())
}
