//! Backups: a consistent copy of a running store, written as checksummed files with a
//! manifest, and restored into a new data directory only after every check passes.
//!
//! A backup is a directory `backup-<UTC time>` holding:
//! - `data-NNNNNN.kv`: every key and value of the store in key order (the logical copy
//!   [`Store::export`] streams), `[u32 key length][key][u32 value length][value]` after an
//!   8-byte magic; a file closes at [`CHUNK_BYTES_MAX`]. Logical, so a redb backup restores
//!   into sled and back;
//! - `manifest.json`: the format and its version, the data's schema version, the log sequence
//!   the copy covers, the time, and each file's size, record count and SHA-256;
//! - `SHA256SUMS`: the SHA-256 of every other file (`sha256sum -c SHA256SUMS` checks it).
//!
//! It is written under a hidden `.backup-…partial` name and renamed when complete, so a
//! directory named `backup-…` is whole. Restore checks the manifest and every checksum
//! before it writes a byte, loads into a hidden directory beside the target, and renames it
//! into place only when every record is in: a refused or failed restore leaves nothing.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{KeyValue, RedbStore, SCHEMA_VERSION, SledStore, Store, StoreBackend, StoreError, Table, WriteOp, applied_sequence_key, schema_key};
use crate::engine::clock::format_timestamp;

/// The manifest's `format`: what this directory is.
pub const BACKUP_FORMAT: &str = "reward-engine-backup";
/// The layout of a backup's files; bump it when the chunk or manifest layout changes.
pub const BACKUP_FORMAT_VERSION: u32 = 1;
/// A data file closes once it holds this many bytes (files stay easy to copy and check).
pub const CHUNK_BYTES_MAX: u64 = 256 * 1024 * 1024;
const CHUNK_MAGIC: &[u8; 8] = b"RWBKUP01";
const MANIFEST: &str = "manifest.json";
const SUMS: &str = "SHA256SUMS";
/// The manifest and the sums file are small (a line per data file); anything larger is not ours.
const MANIFEST_BYTES_MAX: u64 = 4 * 1024 * 1024;
/// A key or value larger than this in a data file is damage: the engine writes far smaller ones.
const RECORD_PART_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Restore commits this many bytes of records per transaction (bounds its memory).
const RESTORE_BATCH_BYTES_MAX: usize = 32 * 1024 * 1024;
/// Progress is reported every this many records.
const PROGRESS_EVERY_RECORDS: u64 = 100_000;

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "BackupManifest"))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    /// The store's data format (`SCHEMA_VERSION`) the records were written in.
    pub schema_version: u32,
    /// The engine build that wrote it.
    pub engine_version: String,
    /// The store it was copied from (a restore may choose another).
    pub backend: StoreBackend,
    /// The write-ahead log sequence the copy covers: every write acknowledged before the
    /// backup began is at or below it.
    pub sequence: u64,
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::Timestamp"))]
    pub created_at: String,
    pub created_at_ms: u64,
    pub duration_ms: u64,
    pub records: u64,
    /// Bytes of the data files.
    pub bytes: u64,
    pub files: Vec<BackupFile>,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "BackupFile"))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupFile {
    pub name: String,
    pub bytes: u64,
    pub records: u64,
    pub sha256: String,
}

/// Why a backup or restore did not happen. Messages name files and causes, never values.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    /// The backup is damaged, partial, foreign or of another version: refused.
    #[error("refusing the backup in {dir}: {reason}")]
    Refused { dir: PathBuf, reason: String },
    /// The restore target already holds files.
    #[error("refusing to restore into {0}: it exists and is not empty (restore into a new directory)")]
    TargetNotEmpty(PathBuf),
    /// The restore target has no name of its own (`.`, `..`, `/`).
    #[error("refusing to restore into {0}: name the new data directory itself (e.g. ./data-restored)")]
    TargetUnnamed(PathBuf),
}

fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let context = context.into();
    move |source| BackupError::Io { context, source }
}

/// Where a long backup or restore is, for progress output.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub records: u64,
    pub bytes: u64,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// The directory name of a backup taken at `unix_ms`: sorts by time.
fn backup_name(unix_ms: u64) -> String {
    let stamp: String = format_timestamp(unix_ms).chars().filter(|c| !matches!(c, '-' | ':')).collect();
    format!("backup-{stamp}")
}

fn sha256_hex(hasher: Sha256) -> String {
    hex::encode(hasher.finalize())
}

fn chunk_name(index: usize) -> String {
    format!("data-{index:06}.kv")
}

/// Creates `path` readable by its owner only: backups hold personal data and sealed secrets.
fn create_private_file(path: &Path) -> Result<File, BackupError> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io_error(format!("creating {}", path.display())))
}

fn create_private_dir(path: &Path) -> Result<(), BackupError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(path).map_err(io_error(format!("creating {}", path.display())))
}

fn sync_dir(path: &Path) -> Result<(), BackupError> {
    File::open(path).and_then(|dir| dir.sync_all()).map_err(io_error(format!("syncing {}", path.display())))
}

/// The data file being written: its bytes go through the hasher on the way out.
struct ChunkWriter {
    name: String,
    out: BufWriter<File>,
    hasher: Sha256,
    bytes: u64,
    records: u64,
}

impl ChunkWriter {
    fn create(dir: &Path, index: usize) -> Result<ChunkWriter, BackupError> {
        let name = chunk_name(index);
        let out = BufWriter::with_capacity(1 << 20, create_private_file(&dir.join(&name))?);
        let mut chunk = ChunkWriter { name, out, hasher: Sha256::new(), bytes: 0, records: 0 };
        chunk.write(CHUNK_MAGIC)?;
        Ok(chunk)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), BackupError> {
        self.hasher.update(bytes);
        self.bytes += bytes.len() as u64;
        // The error's context is built only on failure: this runs three times per record.
        self.out.write_all(bytes).map_err(|source| BackupError::Io { context: format!("writing {}", self.name), source })
    }

    fn record(&mut self, key: &[u8], value: &[u8]) -> Result<(), BackupError> {
        for part in [key, value] {
            let length = u32::try_from(part.len()).map_err(|_| BackupError::Store(StoreError::new("a record part over 4 GiB")))?;
            self.write(&length.to_be_bytes())?;
            self.write(part)?;
        }
        self.records += 1;
        Ok(())
    }

    fn finish(self) -> Result<BackupFile, BackupError> {
        let file =
            self.out.into_inner().map_err(|error| BackupError::Io { context: format!("writing {}", self.name), source: error.into_error() })?;
        file.sync_all().map_err(io_error(format!("syncing {}", self.name)))?;
        Ok(BackupFile { name: self.name, bytes: self.bytes, records: self.records, sha256: sha256_hex(self.hasher) })
    }
}

/// What the export stream writes into: the open chunk, the finished ones, and the facts
/// the manifest needs that pass by in the stream.
struct BackupWriter<'a> {
    dir: &'a Path,
    current: Option<ChunkWriter>,
    files: Vec<BackupFile>,
    records: u64,
    bytes: u64,
    sequence: Option<u64>,
    schema_version: Option<u32>,
    progress: &'a mut dyn FnMut(Progress),
}

impl BackupWriter<'_> {
    fn record(&mut self, key: &[u8], value: &[u8]) -> Result<(), BackupError> {
        if key.first() == Some(&(Table::Meta as u8)) {
            if key == applied_sequence_key().as_slice() {
                self.sequence = <[u8; 8]>::try_from(value).ok().map(u64::from_be_bytes);
            } else if key == schema_key().as_slice() {
                self.schema_version = <[u8; 4]>::try_from(value).ok().map(u32::from_be_bytes);
            }
        }
        let size = 8 + key.len() as u64 + value.len() as u64;
        if self.current.as_ref().is_some_and(|chunk| chunk.records > 0 && chunk.bytes + size > CHUNK_BYTES_MAX) {
            self.finish_chunk()?;
        }
        if self.current.is_none() {
            self.current = Some(ChunkWriter::create(self.dir, self.files.len())?);
        }
        self.current.as_mut().expect("a chunk is open").record(key, value)?;
        self.records += 1;
        self.bytes += size;
        if self.records.is_multiple_of(PROGRESS_EVERY_RECORDS) {
            (self.progress)(Progress { records: self.records, bytes: self.bytes });
        }
        Ok(())
    }

    fn finish_chunk(&mut self) -> Result<(), BackupError> {
        if let Some(chunk) = self.current.take() {
            self.files.push(chunk.finish()?);
        }
        Ok(())
    }
}

/// Takes a backup of `store` into a new directory under `parent` and answers its path and
/// manifest. The store keeps serving meanwhile (see [`Store::export`]).
pub fn write_backup(store: &dyn Store, parent: &Path, progress: &mut dyn FnMut(Progress)) -> Result<(PathBuf, Manifest), BackupError> {
    let started = Instant::now();
    let created_at_ms = now_ms();
    let name = backup_name(created_at_ms);
    create_private_dir(parent)?;
    let partial = parent.join(format!(".{name}.partial"));
    let result = write_into(store, &partial, created_at_ms, started, progress).and_then(|manifest| {
        let complete = parent.join(&name);
        if complete.exists() {
            return Err(BackupError::Io { context: format!("naming {}", complete.display()), source: std::io::ErrorKind::AlreadyExists.into() });
        }
        fs::rename(&partial, &complete).map_err(io_error(format!("renaming {} to {}", partial.display(), complete.display())))?;
        sync_dir(parent)?;
        Ok((complete, manifest))
    });
    if result.is_err() {
        let _ = fs::remove_dir_all(&partial);
    }
    result
}

fn write_into(
    store: &dyn Store,
    dir: &Path,
    created_at_ms: u64,
    started: Instant,
    progress: &mut dyn FnMut(Progress),
) -> Result<Manifest, BackupError> {
    create_private_dir(dir)?;
    let mut writer = BackupWriter { dir, current: None, files: Vec::new(), records: 0, bytes: 0, sequence: None, schema_version: None, progress };
    // The visitor's error type is the store's: keep the backup's own error beside it.
    let mut failure: Option<BackupError> = None;
    let exported = store.export(&mut |key, value| {
        writer.record(key, value).map_err(|error| {
            let message = error.to_string();
            failure = Some(error);
            StoreError::new(message)
        })
    });
    if let Some(error) = failure {
        return Err(error);
    }
    exported?;
    writer.finish_chunk()?;
    let schema_version = writer.schema_version.ok_or_else(|| StoreError::new("the store has no schema version"))?;
    let manifest = Manifest {
        format: BACKUP_FORMAT.to_owned(),
        format_version: BACKUP_FORMAT_VERSION,
        schema_version,
        engine_version: env!("CARGO_PKG_VERSION").to_owned(),
        backend: store.backend(),
        sequence: writer.sequence.unwrap_or(0),
        created_at: format_timestamp(created_at_ms),
        created_at_ms,
        duration_ms: started.elapsed().as_millis() as u64,
        records: writer.records,
        bytes: writer.files.iter().map(|file| file.bytes).sum(),
        files: writer.files,
    };
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).map_err(|error| StoreError::new(format!("encoding the manifest: {error}")))?;
    write_small_file(&dir.join(MANIFEST), &manifest_bytes)?;
    let mut sums = String::new();
    for file in &manifest.files {
        sums.push_str(&format!("{}  {}\n", file.sha256, file.name));
    }
    sums.push_str(&format!("{}  {MANIFEST}\n", hex::encode(Sha256::digest(&manifest_bytes))));
    write_small_file(&dir.join(SUMS), sums.as_bytes())?;
    sync_dir(dir)?;
    Ok(manifest)
}

fn write_small_file(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    let mut file = create_private_file(path)?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(io_error(format!("writing {}", path.display())))
}

/// The backups in `parent`, oldest first: directories named `backup-…` with a manifest.
pub fn list_backups(parent: &Path) -> Result<Vec<PathBuf>, BackupError> {
    let entries = match fs::read_dir(parent) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(io_error(format!("listing {}", parent.display()))(error)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.map_err(io_error(format!("listing {}", parent.display())))?.path();
        let named = path.file_name().and_then(|name| name.to_str()).is_some_and(|name| name.starts_with("backup-"));
        if named && path.join(MANIFEST).is_file() {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// Deletes the oldest backups in `parent` beyond the newest `keep`, and partial ones a
/// crash left behind (only one backup runs at a time per directory, so none is in
/// progress). `written` (the backup just taken) is never deleted and counts as one of the
/// kept, even when the clock stepped back and its name sorts first. Answers what it deleted.
pub fn prune_backups(parent: &Path, keep: usize, written: &Path) -> Result<Vec<PathBuf>, BackupError> {
    let mut deleted = Vec::new();
    if let Ok(entries) = fs::read_dir(parent) {
        for entry in entries.flatten() {
            let path = entry.path();
            let partial =
                path.file_name().and_then(|name| name.to_str()).is_some_and(|name| name.starts_with(".backup-") && name.ends_with(".partial"));
            if partial {
                fs::remove_dir_all(&path).map_err(io_error(format!("removing {}", path.display())))?;
                deleted.push(path);
            }
        }
    }
    let others: Vec<PathBuf> = list_backups(parent)?.into_iter().filter(|path| path != written).collect();
    let excess = others.len().saturating_sub(keep.saturating_sub(1));
    for path in others.into_iter().take(excess) {
        fs::remove_dir_all(&path).map_err(io_error(format!("removing {}", path.display())))?;
        deleted.push(path);
    }
    Ok(deleted)
}

/// Reads a small file whole, refusing one over [`MANIFEST_BYTES_MAX`].
fn read_small_file(dir: &Path, name: &str) -> Result<Vec<u8>, BackupError> {
    let refused = |reason: String| BackupError::Refused { dir: dir.to_owned(), reason };
    let path = dir.join(name);
    let file = File::open(&path).map_err(|error| refused(format!("{name} is missing or unreadable ({error}): not a complete backup")))?;
    let mut bytes = Vec::new();
    file.take(MANIFEST_BYTES_MAX + 1).read_to_end(&mut bytes).map_err(|error| refused(format!("reading {name}: {error}")))?;
    if bytes.len() as u64 > MANIFEST_BYTES_MAX {
        return Err(refused(format!("{name} is larger than {MANIFEST_BYTES_MAX} bytes: not a backup of this engine")));
    }
    Ok(bytes)
}

/// `SHA256SUMS` lines: file name → digest.
fn parse_sums(dir: &Path, text: &[u8]) -> Result<Vec<(String, String)>, BackupError> {
    let refused = |reason: String| BackupError::Refused { dir: dir.to_owned(), reason };
    let text = std::str::from_utf8(text).map_err(|_| refused(format!("{SUMS} is not text")))?;
    text.lines()
        .map(|line| {
            let (digest, name) = line.split_once("  ").ok_or_else(|| refused(format!("{SUMS} has a malformed line")))?;
            Ok((name.to_owned(), digest.to_owned()))
        })
        .collect()
}

/// The size and SHA-256 of `path`, reading at most one byte more than `expected` (enough
/// to tell a longer file; a file that never ends cannot hold the check).
fn file_sha256(path: &Path, expected: u64) -> std::io::Result<(u64, String)> {
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path)?).take(expected.saturating_add(1));
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            return Ok((bytes, sha256_hex(hasher)));
        }
        hasher.update(&buffer[..read]);
        bytes += read as u64;
    }
}

/// Checks a backup without writing anything: the manifest's own checksum, its format,
/// versions and file list, and every data file's size and SHA-256. Answers the manifest.
pub fn check_backup(dir: &Path) -> Result<Manifest, BackupError> {
    let refused = |reason: String| BackupError::Refused { dir: dir.to_owned(), reason };
    let sums = parse_sums(dir, &read_small_file(dir, SUMS)?)?;
    let sum_of = |name: &str| sums.iter().find(|(listed, _)| listed == name).map(|(_, digest)| digest.as_str());
    let manifest_bytes = read_small_file(dir, MANIFEST)?;
    if sum_of(MANIFEST) != Some(hex::encode(Sha256::digest(&manifest_bytes)).as_str()) {
        return Err(refused(format!("{MANIFEST} does not match its checksum in {SUMS}: the backup is damaged")));
    }
    let manifest: Manifest =
        serde_json::from_slice(&manifest_bytes).map_err(|error| refused(format!("{MANIFEST} is not a manifest of this engine ({error})")))?;
    if manifest.format != BACKUP_FORMAT {
        return Err(refused(format!("its format is {:?}, not {BACKUP_FORMAT:?}", manifest.format)));
    }
    if manifest.format_version != BACKUP_FORMAT_VERSION {
        return Err(refused(format!(
            "backup format version {} (this build reads version {BACKUP_FORMAT_VERSION}); restore it with the engine version that wrote it ({})",
            manifest.format_version, manifest.engine_version
        )));
    }
    if manifest.schema_version != SCHEMA_VERSION {
        return Err(refused(format!(
            "the data is in schema version {} (this build reads version {SCHEMA_VERSION}); restore it with the engine version that wrote it ({})",
            manifest.schema_version, manifest.engine_version
        )));
    }
    let expected_names: Vec<String> = (0..manifest.files.len()).map(chunk_name).collect();
    let names: Vec<&String> = manifest.files.iter().map(|file| &file.name).collect();
    if names.iter().zip(&expected_names).any(|(name, expected)| *name != expected) {
        return Err(refused(format!("{MANIFEST} lists files that are not data-NNNNNN.kv in order")));
    }
    if manifest.files.iter().map(|file| file.records).sum::<u64>() != manifest.records
        || manifest.files.iter().map(|file| file.bytes).sum::<u64>() != manifest.bytes
    {
        return Err(refused(format!("{MANIFEST}'s totals disagree with its files")));
    }
    for file in &manifest.files {
        if sum_of(&file.name) != Some(file.sha256.as_str()) {
            return Err(refused(format!("{} has a different checksum in {SUMS} and {MANIFEST}", file.name)));
        }
        let path = dir.join(&file.name);
        let metadata = fs::metadata(&path).map_err(|error| refused(format!("{} is missing or unreadable ({error})", file.name)))?;
        if !metadata.is_file() {
            return Err(refused(format!("{} is not a regular file", file.name)));
        }
        let (bytes, digest) = file_sha256(&path, file.bytes).map_err(|error| refused(format!("{} is unreadable ({error})", file.name)))?;
        if bytes != file.bytes {
            return Err(refused(format!("{} holds {bytes} bytes, the manifest says {}: the file is truncated or damaged", file.name, file.bytes)));
        }
        if digest != file.sha256 {
            return Err(refused(format!("{} does not match its SHA-256 in the manifest: the file is damaged", file.name)));
        }
    }
    Ok(manifest)
}

/// Reads a data file's records in order, checking their framing, and hashes what it reads
/// (the restore compares it with the manifest again: the file may have changed since the check).
struct ChunkReader {
    name: String,
    input: BufReader<File>,
    hasher: Sha256,
    bytes: u64,
}

impl ChunkReader {
    fn open(dir: &Path, name: &str) -> Result<ChunkReader, BackupError> {
        let path = dir.join(name);
        let input = BufReader::with_capacity(1 << 20, File::open(&path).map_err(io_error(format!("opening {}", path.display())))?);
        let mut reader = ChunkReader { name: name.to_owned(), input, hasher: Sha256::new(), bytes: 0 };
        let mut magic = [0u8; 8];
        reader.fill(&mut magic)?;
        if &magic != CHUNK_MAGIC {
            return Err(BackupError::Refused { dir: dir.to_owned(), reason: format!("{name} is not a data file of this format") });
        }
        Ok(reader)
    }

    /// The bytes read and their SHA-256.
    fn finish(self) -> (u64, String) {
        (self.bytes, sha256_hex(self.hasher))
    }

    fn part(&mut self, length: usize) -> Result<Vec<u8>, BackupError> {
        if length > RECORD_PART_BYTES_MAX {
            return Err(BackupError::Store(StoreError::new(format!("{} holds a record part over {RECORD_PART_BYTES_MAX} bytes", self.name))));
        }
        let mut part = vec![0u8; length];
        self.fill(&mut part)?;
        Ok(part)
    }

    /// `read_exact`, the error's context built only on failure (this runs per record).
    fn fill(&mut self, buffer: &mut [u8]) -> Result<(), BackupError> {
        self.input.read_exact(buffer).map_err(|source| BackupError::Io { context: format!("reading {}", self.name), source })?;
        self.hasher.update(&*buffer);
        self.bytes += buffer.len() as u64;
        Ok(())
    }

    /// The next record, `None` at the end of the file.
    fn next_record(&mut self) -> Result<Option<KeyValue>, BackupError> {
        let mut length = [0u8; 4];
        match self.input.read_exact(&mut length) {
            Ok(()) => {
                self.hasher.update(length);
                self.bytes += 4;
            }
            // A clean end, or a cut inside the length: then the byte count disagrees below.
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(error) => return Err(io_error(format!("reading {}", self.name))(error)),
        }
        let key = self.part(u32::from_be_bytes(length) as usize)?;
        self.fill(&mut length)?;
        let value = self.part(u32::from_be_bytes(length) as usize)?;
        Ok(Some((key, value)))
    }
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    pub manifest: Manifest,
    pub backend: StoreBackend,
    pub records: u64,
}

/// A file in a data directory being restored into: its presence means the restore has not
/// finished, and the engine and `verify` refuse the directory (see [`check_not_restoring`]).
pub const RESTORE_MARKER: &str = "RESTORE-INCOMPLETE";

/// Refuses a data directory a restore is loading, or left unfinished.
pub fn check_not_restoring(data_dir: &Path) -> Result<(), StoreError> {
    if data_dir.join(RESTORE_MARKER).exists() {
        return Err(StoreError::new(format!(
            "{} holds {RESTORE_MARKER}: a restore into it is running or did not finish; let it finish, or empty the directory and restore again",
            data_dir.display()
        )));
    }
    Ok(())
}

/// What the restore target is now.
enum Target {
    Missing,
    /// It exists and holds nothing (a file system's `lost+found` aside): a mount point or a
    /// directory the operator prepared, kept as it is and loaded in place.
    Empty,
}

fn target_state(data_dir: &Path) -> Result<Target, BackupError> {
    let entries = match fs::read_dir(data_dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Target::Missing),
        Err(error) => return Err(io_error(format!("reading {}", data_dir.display()))(error)),
    };
    for entry in entries {
        let entry = entry.map_err(io_error(format!("reading {}", data_dir.display())))?;
        if entry.file_name() != "lost+found" {
            return Err(BackupError::TargetNotEmpty(data_dir.to_owned()));
        }
    }
    Ok(Target::Empty)
}

/// Restores the backup in `from` into `data_dir` on `backend` (`None`: the store the backup
/// was taken from). Checks everything first ([`check_backup`]), then loads, hashing every
/// file again as it reads it. A `data_dir` that does not exist is loaded beside it under a
/// hidden name and renamed into place at the end; one that exists and is empty (a mount
/// point) is loaded in place under [`RESTORE_MARKER`], removed last. A failure leaves nothing
/// of the restore; a second restore into the same target is refused while one runs.
pub fn restore_backup(
    from: &Path,
    data_dir: &Path,
    backend: Option<StoreBackend>,
    progress: &mut dyn FnMut(Progress),
) -> Result<Restored, BackupError> {
    let Some(name) = data_dir.file_name().and_then(|name| name.to_str()) else {
        return Err(BackupError::TargetUnnamed(data_dir.to_owned()));
    };
    let target = target_state(data_dir)?;
    let manifest = check_backup(from)?;
    let backend = backend.unwrap_or(manifest.backend);
    if backend == StoreBackend::Postgres {
        return Err(BackupError::Refused {
            dir: from.to_owned(),
            reason: "a restore loads a redb or sled data directory; restoring into PostgreSQL is not supported yet (choose --store redb or sled)".into(),
        });
    }
    match target {
        Target::Missing => {
            let parent = data_dir.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
            fs::create_dir_all(parent).map_err(io_error(format!("creating {}", parent.display())))?;
            let partial = parent.join(format!(".{name}.restoring"));
            claim_dir(&partial)?;
            let result = load_into(from, &partial, backend, &manifest, progress).and_then(|records| {
                fs::rename(&partial, data_dir).map_err(io_error(format!("renaming {} to {}", partial.display(), data_dir.display())))?;
                sync_dir(parent)?;
                Ok(records)
            });
            if result.is_err() {
                let _ = fs::remove_dir_all(&partial);
            }
            Ok(Restored { manifest, backend, records: result? })
        }
        Target::Empty => {
            let marker = data_dir.join(RESTORE_MARKER);
            fs::OpenOptions::new().write(true).create_new(true).open(&marker).map_err(|error| BackupError::Io {
                context: format!("claiming {} (is another restore running into it?)", data_dir.display()),
                source: error,
            })?;
            let result = load_into(from, data_dir, backend, &manifest, progress).and_then(|records| {
                fs::remove_file(&marker).map_err(io_error(format!("removing {}", marker.display())))?;
                sync_dir(data_dir)?;
                Ok(records)
            });
            if result.is_err() {
                empty_after_failure(data_dir);
            }
            Ok(Restored { manifest, backend, records: result? })
        }
    }
}

/// Creates the loading directory; one that exists is another restore's (or a leftover the
/// operator should look at), never removed here.
fn claim_dir(path: &Path) -> Result<(), BackupError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().mode(0o700).create(path).map_err(|error| {
        let context = if error.kind() == std::io::ErrorKind::AlreadyExists {
            format!("{} exists: another restore is running into the same place, or one stopped half-way (remove it)", path.display())
        } else {
            format!("creating {}", path.display())
        };
        BackupError::Io { context, source: error }
    })
}

/// After a failed in-place load: removes what it wrote (keeping `lost+found`), then the
/// marker, so the directory is empty again for the next try. If anything could not be
/// removed the marker stays, and the engine keeps refusing the directory.
fn empty_after_failure(data_dir: &Path) {
    let mut all_removed = true;
    if let Ok(entries) = fs::read_dir(data_dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name == "lost+found" || name == RESTORE_MARKER {
                continue;
            }
            let path = entry.path();
            let removed = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
            all_removed &= removed.is_ok();
        }
    }
    if all_removed {
        let _ = fs::remove_file(data_dir.join(RESTORE_MARKER));
    }
}

/// Whether `dir` looks like a backup (it has a manifest or the sums file), not a data directory.
pub fn is_backup(dir: &Path) -> bool {
    dir.join(MANIFEST).is_file() || dir.join(SUMS).is_file()
}

/// A backup restored into a scratch directory (for an audit): the open store, and the
/// directory, deleted when this is dropped (after the store closes: field order).
pub struct ScratchRestore {
    pub store: std::sync::Arc<dyn Store>,
    pub restored: Restored,
    _dir: tempfile::TempDir,
}

/// Checks and restores the backup in `from` into a new directory under `scratch_parent`
/// (default: the system's temporary directory) and opens it.
pub fn restore_to_scratch(
    from: &Path,
    scratch_parent: Option<&Path>,
    backend: Option<StoreBackend>,
    progress: &mut dyn FnMut(Progress),
) -> Result<ScratchRestore, BackupError> {
    let builder = {
        let mut builder = tempfile::Builder::new();
        builder.prefix("reward-backup-audit-");
        builder
    };
    let dir = match scratch_parent {
        Some(parent) => builder.tempdir_in(parent),
        None => builder.tempdir(),
    }
    .map_err(io_error("creating a scratch directory"))?;
    let data_dir = dir.path().join("data");
    let restored = restore_backup(from, &data_dir, backend, progress)?;
    let store = super::open_store(restored.backend, &data_dir)?;
    Ok(ScratchRestore { store, restored, _dir: dir })
}

/// Syncs `dir` and every directory under it (sled keeps its files in subdirectories), so
/// their entries are durable before the restore says it is done. The store has synced the
/// files themselves.
fn sync_tree(dir: &Path) -> Result<(), BackupError> {
    let mut pending = vec![dir.to_owned()];
    while let Some(next) = pending.pop() {
        for entry in fs::read_dir(&next).map_err(io_error(format!("listing {}", next.display())))? {
            let entry = entry.map_err(io_error(format!("listing {}", next.display())))?;
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                pending.push(entry.path());
            }
        }
        sync_dir(&next)?;
    }
    Ok(())
}

fn open_backend(backend: StoreBackend, dir: &Path) -> Result<Box<dyn Store>, StoreError> {
    Ok(match backend {
        StoreBackend::Redb => Box::new(RedbStore::open(&dir.join("reward.redb"))?),
        StoreBackend::Sled => Box::new(SledStore::open(&dir.join("reward.sled"))?),
        StoreBackend::Postgres => return Err(super::postgres_needs_url()),
    })
}

fn load_into(from: &Path, dir: &Path, backend: StoreBackend, manifest: &Manifest, progress: &mut dyn FnMut(Progress)) -> Result<u64, BackupError> {
    create_private_dir(dir)?;
    let store = open_backend(backend, dir)?;
    let records = load_records(from, store.as_ref(), manifest, progress)?;
    drop(store);
    sync_tree(dir)?;
    Ok(records)
}

/// Streams the backup's records into `store` in key order, in batches of
/// [`RESTORE_BATCH_BYTES_MAX`], checking order, counts and every file's SHA-256 again.
fn load_records(from: &Path, store: &dyn Store, manifest: &Manifest, progress: &mut dyn FnMut(Progress)) -> Result<u64, BackupError> {
    let refused = |reason: String| BackupError::Refused { dir: from.to_owned(), reason };
    let mut batch: Vec<WriteOp> = Vec::new();
    let mut batch_bytes = 0usize;
    let mut previous: Option<Vec<u8>> = None;
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut saw_schema = false;
    let schema = schema_key();
    for file in &manifest.files {
        let mut reader = ChunkReader::open(from, &file.name)?;
        let mut in_file = 0u64;
        while let Some((key, value)) = reader.next_record()? {
            if previous.as_ref().is_some_and(|previous| *previous >= key) {
                return Err(refused(format!("{} has keys out of order", file.name)));
            }
            if key == schema {
                saw_schema = value == SCHEMA_VERSION.to_be_bytes();
            }
            in_file += 1;
            records += 1;
            bytes += 8 + key.len() as u64 + value.len() as u64;
            batch_bytes += key.len() + value.len();
            previous = Some(key.clone());
            batch.push(WriteOp::Put { key, value });
            if batch_bytes >= RESTORE_BATCH_BYTES_MAX {
                store.commit(&[&batch])?;
                batch.clear();
                batch_bytes = 0;
            }
            if records.is_multiple_of(PROGRESS_EVERY_RECORDS) {
                progress(Progress { records, bytes });
            }
        }
        if in_file != file.records {
            return Err(refused(format!("{} holds {in_file} records, the manifest says {}", file.name, file.records)));
        }
        if reader.finish() != (file.bytes, file.sha256.clone()) {
            return Err(refused(format!("{} changed while it was being restored (it no longer matches its SHA-256)", file.name)));
        }
    }
    if !saw_schema {
        return Err(refused(format!("the data has no schema version {SCHEMA_VERSION} record")));
    }
    store.commit(&[&batch])?;
    progress(Progress { records, bytes });
    Ok(records)
}

/// Restores the backup in `from` into the PostgreSQL database at `url` (the `kv` table of the
/// URL's schema, created if missing), which must hold no record yet: the way from one
/// embedded node to a cluster. Checks everything first ([`check_backup`]), then loads under
/// a restore mark (a Meta record written first and removed last), so an engine refuses the
/// database while a restore is unfinished ([`super::check_no_restore_mark`]); a failed restore
/// names what to empty before trying again.
pub fn restore_backup_to_postgres(from: &Path, url: &super::PostgresUrl, progress: &mut dyn FnMut(Progress)) -> Result<Restored, BackupError> {
    let manifest = check_backup(from)?;
    let store = super::PgStore::open(url)?;
    let refused = |reason: String| BackupError::Refused { dir: from.to_owned(), reason };
    if !store.scan(super::Scan { prefix: &[], after: None, order: super::ScanOrder::Ascending, limit: 1 })?.is_empty() {
        return Err(refused(format!("the database ({}) already holds data: a restore loads an empty one (a new schema: ?options=-csearch_path%3D…)", url.redacted())));
    }
    let mark = super::restore_mark_key();
    store.commit(&[&[WriteOp::Put { key: mark.clone(), value: b"restoring".to_vec() }]])?;
    let records = load_records(from, &store, &manifest, progress).map_err(|error| match error {
        BackupError::Refused { dir, reason } => BackupError::Refused {
            dir,
            reason: format!("{reason}; the records loaded so far stay in the database under a restore mark (empty its kv table before trying again)"),
        },
        other => other,
    })?;
    store.commit(&[&[WriteOp::Delete { key: mark }]])?;
    Ok(Restored { manifest, backend: StoreBackend::Postgres, records })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use super::*;
    use crate::store::{Scan, ScanOrder, Table, WalOptions, open_store, open_store_with};

    fn user_key(n: u64) -> Vec<u8> {
        Table::Users.key(&[&n.to_be_bytes()])
    }

    fn counter_key() -> Vec<u8> {
        Table::Meta.key(&[b"test_counter"])
    }

    /// Commit `n` puts user `n` and sets the counter to `n`, in one write set.
    fn commit_numbered(store: &dyn Store, n: u64) {
        store
            .commit(&[&[
                WriteOp::Put { key: user_key(n), value: n.to_be_bytes().to_vec() },
                WriteOp::Put { key: counter_key(), value: n.to_be_bytes().to_vec() },
            ]])
            .expect("commits");
    }

    fn all_pairs(store: &dyn Store) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut pairs = Vec::new();
        store
            .export(&mut |key, value| {
                pairs.push((key.to_vec(), value.to_vec()));
                Ok(())
            })
            .expect("exports");
        pairs
    }

    /// A backup taken while a writer commits holds a consistent prefix: the counter it holds
    /// equals the number of numbered users, and every commit acknowledged before it began.
    fn backup_under_writes_is_a_consistent_prefix(backend: StoreBackend, wal: WalOptions) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn Store> = open_store_with(backend, &dir.path().join("data"), wal).expect("opens");
        for n in 1..=500 {
            commit_numbered(store.as_ref(), n);
        }
        let acknowledged = Arc::new(AtomicU64::new(500));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (store, acknowledged, stop) = (Arc::clone(&store), Arc::clone(&acknowledged), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut n = 500;
                while !stop.load(Ordering::Acquire) && n < 20_000 {
                    n += 1;
                    commit_numbered(store.as_ref(), n);
                    acknowledged.store(n, Ordering::Release);
                }
            })
        };
        while acknowledged.load(Ordering::Acquire) < 1_000 {
            std::thread::yield_now();
        }
        let before = acknowledged.load(Ordering::Acquire);
        let (path, manifest) = write_backup(store.as_ref(), &dir.path().join("backups"), &mut |_| {}).expect("backs up");
        stop.store(true, Ordering::Release);
        writer.join().expect("writer");
        assert_eq!(check_backup(&path).expect("checks"), manifest);
        let restored_dir = dir.path().join("restored");
        let restored = restore_backup(&path, &restored_dir, Some(backend), &mut |_| {}).expect("restores");
        assert_eq!(restored.records, manifest.records);
        drop(store);
        let copy = open_store(backend, &restored_dir).expect("opens the restored store");
        let counter = u64::from_be_bytes(copy.get(&counter_key()).expect("reads").expect("counter").try_into().expect("8 bytes"));
        assert!(counter >= before, "the backup holds {counter} commits, {before} were acknowledged before it began");
        let users = copy.scan(Scan { prefix: &[Table::Users as u8], after: None, order: ScanOrder::Ascending, limit: 100_000 }).expect("scans");
        assert_eq!(users.len() as u64, counter, "a consistent copy holds exactly the users its counter names");
        if wal.enabled {
            assert!(manifest.sequence >= before, "the manifest's sequence {} covers the {before} acknowledged commits", manifest.sequence);
        }
    }

    #[test]
    fn redb_backup_under_writes_is_a_consistent_prefix() {
        backup_under_writes_is_a_consistent_prefix(StoreBackend::Redb, WalOptions::default());
        backup_under_writes_is_a_consistent_prefix(StoreBackend::Redb, WalOptions { enabled: false, ..WalOptions::default() });
    }

    #[test]
    fn sled_backup_under_writes_is_a_consistent_prefix() {
        backup_under_writes_is_a_consistent_prefix(StoreBackend::Sled, WalOptions::default());
        backup_under_writes_is_a_consistent_prefix(StoreBackend::Sled, WalOptions { enabled: false, ..WalOptions::default() });
    }

    /// An export that holds the backend still lets commits go on past the memtable bound.
    #[test]
    fn commits_go_on_while_an_export_holds_the_backend() {
        let dir = tempfile::tempdir().expect("temp dir");
        let wal = WalOptions { memtable_bytes_max: 1024 * 1024, apply_interval_ms: 0, frozen_max: 1, enabled: true };
        let store: Arc<dyn Store> = open_store_with(StoreBackend::Redb, dir.path(), wal).expect("opens");
        commit_numbered(store.as_ref(), 1);
        let (entered, release) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
        let exporter = {
            let store = Arc::clone(&store);
            let (entered, release) = (entered.0, release.1);
            std::thread::spawn(move || {
                let mut first = true;
                store
                    .export(&mut |_, _| {
                        if std::mem::take(&mut first) {
                            entered.send(()).expect("send");
                            release.recv().expect("released");
                        }
                        Ok(())
                    })
                    .expect("exports");
            })
        };
        entered.1.recv().expect("the export began");
        // apply_interval 0 freezes at every commit; with the backend held, these would wait
        // for the applier after the first one if freezing did not yield to the export.
        for n in 2..=200 {
            commit_numbered(store.as_ref(), n);
        }
        release.0.send(()).expect("release");
        exporter.join().expect("exporter");
        assert_eq!(all_pairs(store.as_ref()).iter().filter(|(key, _)| key[0] == Table::Users as u8).count(), 200);
    }

    fn backup_of_a_small_store(dir: &Path) -> PathBuf {
        let store = open_store(StoreBackend::Redb, &dir.join("data")).expect("opens");
        for n in 1..=50 {
            commit_numbered(store.as_ref(), n);
        }
        write_backup(store.as_ref(), &dir.join("backups"), &mut |_| {}).expect("backs up").0
    }

    fn assert_refused(backup: &Path, target: &Path, needle: &str) {
        let error = restore_backup(backup, target, None, &mut |_| {}).expect_err("refused");
        assert!(matches!(error, BackupError::Refused { .. }), "{error}");
        assert!(error.to_string().contains(needle), "{error} should say {needle:?}");
        assert!(!target.exists(), "a refused restore writes nothing");
        let leftovers: Vec<_> = fs::read_dir(target.parent().expect("parent")).expect("lists").flatten().map(|entry| entry.file_name()).collect();
        assert!(!leftovers.iter().any(|name| name.to_string_lossy().contains("restoring")), "{leftovers:?}");
    }

    #[test]
    fn damaged_partial_foreign_and_other_version_backups_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let backup = backup_of_a_small_store(dir.path());
        let target = dir.path().join("targets").join("new");
        fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        let copy = |name: &str| {
            let to = dir.path().join(name);
            fs::create_dir_all(&to).expect("mkdir");
            for entry in fs::read_dir(&backup).expect("lists").flatten() {
                fs::copy(entry.path(), to.join(entry.file_name())).expect("copies");
            }
            to
        };
        // One flipped byte in the middle of a data file.
        let flipped = copy("flipped");
        let data = flipped.join("data-000000.kv");
        let mut bytes = fs::read(&data).expect("reads");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        fs::write(&data, &bytes).expect("writes");
        assert_refused(&flipped, &target, "does not match its SHA-256");
        // A truncated data file (a copy cut short).
        let truncated = copy("truncated");
        let data = truncated.join("data-000000.kv");
        let bytes = fs::read(&data).expect("reads");
        fs::write(&data, &bytes[..bytes.len() - 7]).expect("writes");
        assert_refused(&truncated, &target, "truncated or damaged");
        // A missing data file, a missing manifest.
        let missing = copy("missing");
        fs::remove_file(missing.join("data-000000.kv")).expect("removes");
        assert_refused(&missing, &target, "data-000000.kv is missing");
        let no_manifest = copy("no-manifest");
        fs::remove_file(no_manifest.join(MANIFEST)).expect("removes");
        assert_refused(&no_manifest, &target, "manifest.json is missing");
        // Another schema version, its checksums made consistent (a real backup of another build).
        let other = copy("other-version");
        let mut manifest: Manifest = serde_json::from_slice(&fs::read(other.join(MANIFEST)).expect("reads")).expect("parses");
        manifest.schema_version = SCHEMA_VERSION + 1;
        rewrite_manifest(&other, &manifest);
        assert_refused(&other, &target, &format!("schema version {}", SCHEMA_VERSION + 1));
        let mut manifest: Manifest = serde_json::from_slice(&fs::read(backup.join(MANIFEST)).expect("reads")).expect("parses");
        manifest.format_version = BACKUP_FORMAT_VERSION + 1;
        let other_format = copy("other-format");
        rewrite_manifest(&other_format, &manifest);
        assert_refused(&other_format, &target, "backup format version");
        // A manifest edited without its checksum (the point moved by hand).
        let edited = copy("edited");
        let text = fs::read_to_string(edited.join(MANIFEST)).expect("reads").replace("\"records\": ", "\"records\": 1");
        fs::write(edited.join(MANIFEST), text).expect("writes");
        assert_refused(&edited, &target, "does not match its checksum");
        // A foreign directory.
        let foreign = dir.path().join("foreign");
        fs::create_dir_all(&foreign).expect("mkdir");
        fs::write(foreign.join("notes.txt"), b"hello").expect("writes");
        assert_refused(&foreign, &target, "SHA256SUMS is missing");
        // The good one restores, and not over a directory that holds files.
        restore_backup(&backup, &target, Some(StoreBackend::Sled), &mut |_| {}).expect("restores into sled");
        let error = restore_backup(&backup, &target, None, &mut |_| {}).expect_err("refused");
        assert!(matches!(error, BackupError::TargetNotEmpty(_)), "{error}");
    }

    /// An existing empty directory (a mount point, `lost+found` and all) is loaded in place
    /// and kept; while the marker is there the engine refuses it; a second restore into a
    /// target being loaded is refused; a target without a name of its own is refused.
    #[test]
    fn restore_targets_in_place_busy_and_unnamed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let backup = backup_of_a_small_store(dir.path());
        let mount_point = dir.path().join("mounted");
        fs::create_dir_all(mount_point.join("lost+found")).expect("mkdir");
        let restored = restore_backup(&backup, &mount_point, None, &mut |_| {}).expect("restores in place");
        assert_eq!(restored.records, check_backup(&backup).expect("checks").records);
        assert!(mount_point.join("lost+found").is_dir() && !mount_point.join(RESTORE_MARKER).exists());
        let store = open_store(StoreBackend::Redb, &mount_point).expect("opens the restored store");
        assert_eq!(u64::from_be_bytes(store.get(&counter_key()).expect("reads").expect("counter").try_into().expect("8 bytes")), 50);
        drop(store);
        // A restore that is loading (its marker there): the engine refuses the directory.
        let busy = dir.path().join("busy");
        fs::create_dir_all(&busy).expect("mkdir");
        fs::write(busy.join(RESTORE_MARKER), b"").expect("writes");
        let refused = open_store(StoreBackend::Redb, &busy).err().expect("refused");
        assert!(refused.message.contains(RESTORE_MARKER), "{refused}");
        assert!(matches!(restore_backup(&backup, &busy, None, &mut |_| {}), Err(BackupError::TargetNotEmpty(_))));
        // Another restore's loading directory beside a missing target.
        fs::create_dir_all(dir.path().join(".racing.restoring")).expect("mkdir");
        let error = restore_backup(&backup, &dir.path().join("racing"), None, &mut |_| {}).expect_err("refused");
        assert!(error.to_string().contains("another restore"), "{error}");
        assert!(dir.path().join(".racing.restoring").is_dir(), "another restore's directory is not touched");
        // A load that fails in place (a data file cut short after the check passed... here:
        // a record count the file does not hold) leaves the directory as it found it.
        let failing = dir.path().join("failing-backup");
        fs::create_dir_all(&failing).expect("mkdir");
        for entry in fs::read_dir(&backup).expect("lists").flatten() {
            fs::copy(entry.path(), failing.join(entry.file_name())).expect("copies");
        }
        let mut manifest: Manifest = serde_json::from_slice(&fs::read(failing.join(MANIFEST)).expect("reads")).expect("parses");
        manifest.files[0].records += 1;
        manifest.records += 1;
        rewrite_manifest(&failing, &manifest);
        let second_mount = dir.path().join("mounted-2");
        fs::create_dir_all(second_mount.join("lost+found")).expect("mkdir");
        let error = restore_backup(&failing, &second_mount, None, &mut |_| {}).expect_err("the load fails");
        assert!(error.to_string().contains("records"), "{error}");
        let left: Vec<_> = fs::read_dir(&second_mount).expect("lists").flatten().map(|entry| entry.file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("lost+found")], "a failed in-place restore leaves the directory as it was");
        for unnamed in [Path::new("."), Path::new(".."), Path::new("/")] {
            assert!(matches!(restore_backup(&backup, unnamed, None, &mut |_| {}), Err(BackupError::TargetUnnamed(_))), "{}", unnamed.display());
        }
    }

    fn rewrite_manifest(dir: &Path, manifest: &Manifest) {
        let bytes = serde_json::to_vec_pretty(manifest).expect("encodes");
        fs::write(dir.join(MANIFEST), &bytes).expect("writes");
        let sums = fs::read_to_string(dir.join(SUMS)).expect("reads");
        let sums: String = sums
            .lines()
            .map(|line| if line.ends_with(MANIFEST) { format!("{}  {MANIFEST}\n", hex::encode(Sha256::digest(&bytes))) } else { format!("{line}\n") })
            .collect();
        fs::write(dir.join(SUMS), sums).expect("writes");
    }

    #[test]
    fn retention_keeps_the_newest_and_clears_partials() {
        let dir = tempfile::tempdir().expect("temp dir");
        let parent = dir.path().join("backups");
        for name in ["backup-20261201T000000.000Z", "backup-20261202T000000.000Z", "backup-20261203T000000.000Z"] {
            fs::create_dir_all(parent.join(name)).expect("mkdir");
            fs::write(parent.join(name).join(MANIFEST), b"{}").expect("writes");
        }
        fs::create_dir_all(parent.join(".backup-20261204T000000.000Z.partial")).expect("mkdir");
        fs::create_dir_all(parent.join("backup-unrelated-without-manifest")).expect("mkdir");
        let deleted = prune_backups(&parent, 2, &parent.join("backup-20261203T000000.000Z")).expect("prunes");
        assert_eq!(deleted.len(), 2, "{deleted:?}");
        let left: Vec<PathBuf> = list_backups(&parent).expect("lists");
        assert_eq!(left, vec![parent.join("backup-20261202T000000.000Z"), parent.join("backup-20261203T000000.000Z")]);
        assert!(parent.join("backup-unrelated-without-manifest").exists(), "only backups are touched");
        // The clock stepped back: the backup just written sorts first and is kept anyway.
        let stepped_back = parent.join("backup-20250101T000000.000Z");
        fs::create_dir_all(&stepped_back).expect("mkdir");
        fs::write(stepped_back.join(MANIFEST), b"{}").expect("writes");
        prune_backups(&parent, 2, &stepped_back).expect("prunes");
        assert_eq!(list_backups(&parent).expect("lists"), vec![stepped_back, parent.join("backup-20261203T000000.000Z")]);
    }

    #[test]
    fn backup_names_sort_by_time() {
        assert_eq!(backup_name(1_764_633_600_123), "backup-20251202T000000.123Z");
        assert!(backup_name(1_000) < backup_name(2_000));
    }
}
