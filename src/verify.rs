//! `reward-engine verify`: the offline audit of a stopped engine's data directory (or a
//! backup's). Opens the store read-only (`open_store_read_only`: nothing in the directory is
//! written; sled is audited on a scratch copy), runs [`audit`] over it, prints the report to
//! stdout (text, or JSON with `--json`) and progress to stderr on a long run.
//!
//! Exit codes: 0 the books are clean, 1 discrepancies (each record named), 2 the store
//! could not be opened or read (the reason on stderr), e.g. while the engine runs on it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reward_actors::api::operations::backup;
use reward_actors::api::operations::{AuditProgress, AuditReport, audit};
use reward_actors::api::operations::{ReadOnlyOptions, Store, StoreBackend, open_store_read_only_with};
use serde::Serialize;

use crate::config::log_filter;

/// The books are clean.
pub const EXIT_CLEAN: i32 = 0;
/// At least one discrepancy (the report names each record).
pub const EXIT_DISCREPANCIES: i32 = 1;
/// The store could not be opened or read.
pub const EXIT_UNREADABLE: i32 = 2;

/// Progress lines start after this long (a small store prints none) ...
const PROGRESS_AFTER: Duration = Duration::from_secs(2);
/// ... and come at most this often.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

#[derive(clap::Args, Debug)]
#[command(
    about = "Audit a stopped engine's books offline, read-only",
    long_about = "Audit a stopped engine's books offline, read-only: every value decodes; every pool equals its \
allocations and refills minus what its actions took plus what reversals returned; every user's balance equals \
the sum of their transactions; every idempotency record points at its action and every action at its ledger \
rows; every webhook queue row at its delivery and every delivery at its event.\n\n\
Nothing in DIR is written (sled, which has no read-only mode, is copied to a scratch directory first). The engine \
must be stopped: on a live directory verify refuses at once; stop it, or verify a backup.\n\n\
Exit codes: 0 clean, 1 discrepancies (each record named), 2 the store cannot be opened or read."
)]
pub struct VerifyArgs {
    /// The data directory to audit (the engine's --data-dir), or a backup directory (one with
    /// manifest.json: its checksums are checked, then it is restored into a scratch
    /// directory and audited there).
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// The store [default: detected from the files present: reward.redb or reward.sled].
    #[arg(long, value_name = "redb|sled", value_parser = parse_store)]
    pub store: Option<StoreBackend>,
    /// Print the report as JSON (stdout) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Where sled's scratch copy goes (it needs room for the whole store) [default: the
    /// system's temporary directory]. The copy is removed when verify ends.
    #[arg(long, value_name = "DIR")]
    pub scratch: Option<PathBuf>,
}

fn parse_store(text: &str) -> Result<StoreBackend, String> {
    text.parse()
}

/// The JSON form: where, which store, the verdict, then the report.
#[derive(Serialize)]
struct VerifyOutput<'a> {
    data_dir: &'a Path,
    store: StoreBackend,
    clean: bool,
    #[serde(flatten)]
    report: &'a AuditReport,
}

/// Runs `verify` and answers the process's exit code.
pub fn run(args: &VerifyArgs) -> i32 {
    if let Err(error) = init_logging() {
        return unreadable(&args.data_dir, &error.to_string());
    }
    if backup::is_backup(&args.data_dir) {
        return run_on_backup(args);
    }
    let backend = match args.store.map_or_else(|| detect_store(&args.data_dir), Ok) {
        Ok(backend) => backend,
        Err(reason) => return unreadable(&args.data_dir, &reason),
    };
    let options = ReadOnlyOptions { scratch_dir: args.scratch.clone() };
    let store = match open_store_read_only_with(backend, &args.data_dir, &options) {
        Ok(store) => store,
        Err(error) => return unreadable(&args.data_dir, &error.message),
    };
    let mut stdout = std::io::stdout().lock();
    match run_on_store(store.as_ref(), &args.data_dir, args.json, &mut stdout) {
        Ok(report) if report.is_clean() => EXIT_CLEAN,
        Ok(_) => EXIT_DISCREPANCIES,
        Err(error) => unreadable(&args.data_dir, &error.to_string()),
    }
}

/// A backup: its manifest and every checksum checked, then restored into a scratch
/// directory (under `--scratch`, else the system's temporary one; removed at the end) and
/// audited there. A damaged backup cannot be audited: exit 2 with the reason.
fn run_on_backup(args: &VerifyArgs) -> i32 {
    eprintln!("verify: {} is a backup: checking its manifest and checksums, then auditing a scratch restore of it", args.data_dir.display());
    let mut report = |progress: backup::Progress| eprintln!("verify: restored {} records into the scratch directory", progress.records);
    let scratch = match backup::restore_to_scratch(&args.data_dir, args.scratch.as_deref(), args.store, &mut report) {
        Ok(scratch) => scratch,
        Err(error) => return unreadable(&args.data_dir, &error.to_string()),
    };
    eprintln!(
        "verify: the backup's {} files match their SHA-256; it covers log sequence {} (taken {})",
        scratch.restored.manifest.files.len(),
        scratch.restored.manifest.sequence,
        scratch.restored.manifest.created_at
    );
    let mut stdout = std::io::stdout().lock();
    match run_on_store(scratch.store.as_ref(), &args.data_dir, args.json, &mut stdout) {
        Ok(report) if report.is_clean() => EXIT_CLEAN,
        Ok(_) => EXIT_DISCREPANCIES,
        Err(error) => unreadable(&args.data_dir, &error.to_string()),
    }
}

/// Warnings (a torn log tail ignored) to stderr, filtered like `serve` (`REWARD_LOG`, then
/// `RUST_LOG`, else `info`).
fn init_logging() -> anyhow::Result<()> {
    let variable = |name: &str| std::env::var(name).ok();
    let filter = log_filter(variable("REWARD_LOG").as_deref(), variable("RUST_LOG").as_deref())?;
    // A subscriber already set (verify called in-process) is fine: keep it.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    Ok(())
}

fn unreadable(data_dir: &Path, reason: &str) -> i32 {
    eprintln!("verify: cannot audit {}: {reason}", data_dir.display());
    EXIT_UNREADABLE
}

/// Which store `data_dir` holds, from its files.
pub fn detect_store(data_dir: &Path) -> Result<StoreBackend, String> {
    let redb = data_dir.join("reward.redb").exists();
    let sled = data_dir.join("reward.sled").exists();
    match (redb, sled) {
        (true, false) => Ok(StoreBackend::Redb),
        (false, true) => Ok(StoreBackend::Sled),
        (true, true) => Err("it holds both reward.redb and reward.sled: choose one with --store".into()),
        (false, false) => Err("it holds no store (neither reward.redb nor reward.sled)".into()),
    }
}

/// Audits an open store and prints the report to `out`: the hook for auditing a store
/// opened elsewhere (a backup being restored). Progress goes to stderr on a long run.
pub fn run_on_store(store: &dyn Store, data_dir: &Path, json: bool, out: &mut dyn Write) -> anyhow::Result<AuditReport> {
    let started = Instant::now();
    let mut last_line: Option<Instant> = None;
    let mut progress = |at: &AuditProgress| {
        let due = last_line.map_or(started.elapsed() >= PROGRESS_AFTER, |last| last.elapsed() >= PROGRESS_INTERVAL);
        if due {
            eprintln!("verify: {} records read; in {}: {}", at.records_read, at.table, at.table_records);
            last_line = Some(Instant::now());
        }
    };
    let report = audit(store, &mut progress)?;
    if json {
        let output = VerifyOutput { data_dir, store: store.backend(), clean: report.is_clean(), report: &report };
        serde_json::to_writer_pretty(&mut *out, &output)?;
        writeln!(out)?;
    } else {
        writeln!(out, "{} ({} store) in {:.1} s", data_dir.display(), store.backend(), started.elapsed().as_secs_f64())?;
        write!(out, "{report}")?;
    }
    out.flush()?;
    Ok(report)
}
