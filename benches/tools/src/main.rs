//! The `reward-bench` binary: the load generator, the webhook sink, the bare-axum ceiling
//! and the crash loop, with the flags they had as `reward-engine` subcommands.

use anyhow::Context;
use clap::{Parser, Subcommand};
use reward_bench::cluster_chaos::{self, ClusterChaosArgs};
use reward_bench::crash_loop::{self, CrashLoopArgs};
use reward_bench::loadgen::{self, LoadgenArgs};
use reward_bench::sink::{self, SinkArgs};
use reward_engine::config::log_filter;

// The same allocator as the server's binary, so the figures the tools measure stay
// comparable with those taken when they were `reward-engine` subcommands.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "reward-bench",
    version,
    about = "The reward engine's benchmark and test tools: load, webhook sink, HTTP ceiling, crash loop, cluster chaos."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Drive load against a running server and report throughput and latency.
    Loadgen(LoadgenArgs),
    /// Receive webhooks for benchmarks: count them and measure their lag.
    WebhookSink(SinkArgs),
    /// SIGKILL a real server under signed load, restart it, repeat; then audit every key and pool.
    CrashLoop(CrashLoopArgs),
    /// Run a cluster on PostgreSQL under signed load, kill, pause and cut off nodes; then audit the books.
    ClusterChaos(ClusterChaosArgs),
    /// Run a bare axum server that answers everything: the HTTP ceiling for benchmarks.
    HelloServer {
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: String,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Loadgen(args) => runtime()?.block_on(async move { loadgen::run(args).await.map(|_| ()) }),
        Command::WebhookSink(args) => runtime()?.block_on(async move { sink::run(args).await.map(|_| ()) }),
        Command::CrashLoop(args) => runtime()?.block_on(crash_loop::run(args)).map(|_| ()),
        Command::ClusterChaos(args) => runtime()?.block_on(cluster_chaos::run(args)).map(|_| ()),
        Command::HelloServer { listen } => {
            init_logging()?;
            runtime()?.block_on(reward_bench::hello::serve(&listen))
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

/// Logs to stderr, filtered as the server's are: `REWARD_LOG`, else `RUST_LOG`, else `info`.
fn init_logging() -> anyhow::Result<()> {
    let variable = |name: &str| std::env::var(name).ok();
    let filter = log_filter(variable("REWARD_LOG").as_deref(), variable("RUST_LOG").as_deref())?;
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_moved_subcommands_keep_their_flags() {
        let parse = |line: &str| Cli::try_parse_from(line.split_whitespace()).map(|cli| cli.command);
        assert!(matches!(parse("reward-bench loadgen --url http://127.0.0.1:9 --hot --connections 8 --rate 100"), Ok(Command::Loadgen(_))));
        assert!(matches!(parse("reward-bench webhook-sink --listen 127.0.0.1:9 --delay-ms 5 --status 503"), Ok(Command::WebhookSink(_))));
        assert!(matches!(parse("reward-bench crash-loop --backend sled --kills 2 --no-wal --duration-secs-max 20"), Ok(Command::CrashLoop(_))));
        assert!(matches!(parse("reward-bench hello-server --listen 127.0.0.1:9"), Ok(Command::HelloServer { .. })));
    }
}
