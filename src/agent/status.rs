//! `logship status`: which files the agent follows, how far it is in each, and its WAL depth.
//!
//! The source of truth is the agent's own WAL state (the checkpoints, committed with the data
//! they describe), so the same [`collect`] serves both cases:
//! - the agent runs: `logship status` asks it over `metrics_addr` (`GET /status`);
//! - the agent is stopped: [`from_stopped`] copies the sled database to a temporary directory and
//!   reads the copy, so the agent's own files are never written. If the database is locked, the
//!   agent is running without a reachable endpoint, and that is what the command says.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use logship_wal::{Replayed, Wal, WalError, WalOptions};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::checkpoint::{Checkpoint, KEY_PREFIX};
use super::chunk::Chunk;
use super::identity::PhysicalFile;

/// The whole status document (JSON on `/status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// `running` (answered by the agent) or `stopped` (read from its database).
    pub state: String,
    /// One entry per file with a checkpoint, by path.
    pub files: Vec<FileStatus>,
    /// The write-ahead log.
    pub wal: WalStatus,
    /// Files matched but waiting for a file descriptor (open-files limit); only from a running
    /// agent (absent when stopped, and from older agents' answers).
    #[serde(default)]
    pub files_waiting: Option<u64>,
}

/// Progress in one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileStatus {
    /// Last path the file was read under.
    pub path: String,
    /// Identity: `dev:inode`.
    pub identity: String,
    /// CRC32 of the file's first line (the content fingerprint), hex.
    pub fingerprint: String,
    /// Stream id (the file-identity part of every line id).
    pub stream: String,
    /// First byte not yet committed to the WAL.
    pub offset: u64,
    /// Current size of the file at `path`, if that is still the same file.
    pub size: Option<u64>,
    /// `size - offset`: bytes written and not yet read.
    pub bytes_behind: Option<u64>,
    /// When the file was last read (RFC 3339, UTC).
    pub last_read: String,
    /// Renamed away or deleted and fully drained: no longer followed.
    pub finished: bool,
}

/// WAL depth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalStatus {
    /// Records (chunks) not yet acknowledged by Kafka.
    pub pending_records: u64,
    /// Their payload bytes.
    pub pending_bytes: u64,
    /// Age of the oldest pending record, seconds.
    pub oldest_pending_age_seconds: Option<f64>,
    /// Records in quarantine (undecodable; see the agent's log).
    pub quarantined: u64,
    /// Bytes the whole `data_dir` occupies on disk (absent when it could not be measured, and
    /// from older agents' answers).
    #[serde(default)]
    pub disk_bytes: Option<u64>,
}

/// Reads the status from `wal` (checkpoints, depth), the files' current sizes and the size of
/// `data_dir` on disk.
pub fn collect(wal: &Wal, state: &str, data_dir: &Path) -> Result<AgentStatus, WalError> {
    let mut files = Vec::new();
    for item in wal.state_scan_prefix(KEY_PREFIX.as_bytes()) {
        let (_, value) = item?;
        // An undecodable checkpoint is reported by the agent itself at start.
        let Ok(checkpoint) = Checkpoint::decode(&value) else {
            continue;
        };
        files.push(file_status(&checkpoint));
    }
    files.sort_by(|a, b| (&a.path, a.finished).cmp(&(&b.path, b.finished)));
    Ok(AgentStatus {
        state: state.to_string(),
        files,
        wal: WalStatus {
            pending_records: wal.pending_records(),
            pending_bytes: wal.pending_bytes(),
            oldest_pending_age_seconds: oldest_pending_age(wal),
            quarantined: wal.quarantined()?.len() as u64,
            disk_bytes: super::disk::disk_usage(data_dir).ok(),
        },
        files_waiting: None,
    })
}

fn file_status(checkpoint: &Checkpoint) -> FileStatus {
    let size = std::fs::metadata(&checkpoint.path)
        .ok()
        .filter(|m| PhysicalFile::from_metadata(m) == checkpoint.file)
        .map(|m| m.len());
    FileStatus {
        path: checkpoint.path.clone(),
        identity: format!("{}:{}", checkpoint.file.dev, checkpoint.file.ino),
        fingerprint: format!("{:08x}", checkpoint.fingerprint.0),
        stream: checkpoint.stream.0.clone(),
        offset: checkpoint.offset,
        size,
        bytes_behind: size.map(|size| size.saturating_sub(checkpoint.offset)),
        last_read: rfc3339_of_ms(checkpoint.updated_ms),
        finished: checkpoint.finished,
    }
}

/// Age of the oldest pending WAL record, from the read time it carries.
pub fn oldest_pending_age(wal: &Wal) -> Option<f64> {
    let seq = wal.oldest_pending()?;
    let Ok(Some(Replayed::Record(entry))) = wal.get(seq) else {
        return None;
    };
    let chunk = Chunk::decode(&entry.payload).ok()?;
    let read_at = OffsetDateTime::parse(&chunk.read_at, &Rfc3339).ok()?;
    Some(
        (OffsetDateTime::now_utc() - read_at)
            .as_seconds_f64()
            .max(0.0),
    )
}

fn rfc3339_of_ms(ms: u64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Reads the status of a stopped agent whose data directory is `data_dir`.
///
/// Fails with a clear message when the database is locked (the agent runs) or missing.
pub fn from_stopped(data_dir: &Path) -> anyhow::Result<AgentStatus> {
    let wal_dir = data_dir.join("wal");
    let db_file = wal_dir.join("db");
    if !db_file.exists() {
        bail!(
            "no agent database at {} (the agent has not run with this data_dir yet)",
            wal_dir.display()
        );
    }
    if is_locked(&db_file)? {
        bail!(
            "the agent is running (its database {} is locked) but does not answer on its \
             metrics_addr; set metrics_addr in its configuration to see its status while it runs",
            wal_dir.display()
        );
    }
    let copy = tempfile::tempdir().context("cannot create a temporary directory")?;
    copy_dir(&wal_dir, copy.path())
        .with_context(|| format!("cannot copy {} to read it", wal_dir.display()))?;
    let wal = Wal::open(copy.path(), WalOptions::default())
        .with_context(|| format!("cannot read the agent database {}", wal_dir.display()))?;
    Ok(collect(&wal, "stopped", data_dir)?)
}

/// Whether another process holds sled's exclusive lock on `db_file`.
fn is_locked(db_file: &Path) -> io::Result<bool> {
    let file = File::open(db_file)?;
    // SAFETY: flock on a file descriptor we own; it is released when `file` is closed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(false);
    }
    let error = io::Error::last_os_error();
    if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(true)
    } else {
        Err(error)
    }
}

fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target: PathBuf = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&target)?;
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Writes `status` as a table: unfinished files (all with `all`), then the WAL line.
pub fn render(status: &AgentStatus, all: bool, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "agent: {}", status.state)?;
    writeln!(
        out,
        "{:<48} {:<20} {:>14} {:>14} {:>12}  {:<20} FINGERPRINT",
        "PATH", "IDENTITY", "OFFSET", "SIZE", "BEHIND", "LAST READ"
    )?;
    let dash = || "-".to_string();
    for file in status.files.iter().filter(|f| all || !f.finished) {
        writeln!(
            out,
            "{:<48} {:<20} {:>14} {:>14} {:>12}  {:<20} {}{}",
            file.path,
            file.identity,
            file.offset,
            file.size.map_or_else(dash, |s| s.to_string()),
            file.bytes_behind.map_or_else(dash, |s| s.to_string()),
            file.last_read,
            file.fingerprint,
            if file.finished { " (finished)" } else { "" },
        )?;
    }
    writeln!(
        out,
        "wal: {} records pending, {} bytes, oldest {}, {} quarantined, data_dir {} on disk",
        status.wal.pending_records,
        status.wal.pending_bytes,
        status
            .wal
            .oldest_pending_age_seconds
            .map_or_else(|| "-".to_string(), |s| format!("{s:.1} s")),
        status.wal.quarantined,
        status
            .wal
            .disk_bytes
            .map_or_else(|| "-".to_string(), |b| format!("{b} bytes")),
    )?;
    if let Some(waiting) = status.files_waiting.filter(|w| *w > 0) {
        writeln!(
            out,
            "files: {waiting} waiting for a file descriptor (open-files limit reached; they take \
             turns with the files read to their end)"
        )?;
    }
    Ok(())
}

/// `logship status`: asks the running agent at `metrics_addr`, or reads the stopped agent's
/// database in `data_dir`.
///
/// With `metrics_tls`, it asks over HTTPS and trusts exactly the certificate the endpoint is
/// configured to serve.
pub async fn run_command(
    metrics_addr: Option<std::net::SocketAddr>,
    metrics_tls: Option<&crate::config::ListenTls>,
    data_dir: &Path,
    all: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut unreachable = None;
    if let Some(addr) = metrics_addr {
        match query(addr, metrics_tls).await {
            Ok(status) => return Ok(render(&status, all, out)?),
            Err(error) => unreachable = Some(error),
        }
    }
    let data_dir = data_dir.to_path_buf();
    let status = tokio::task::spawn_blocking(move || from_stopped(&data_dir))
        .await
        .context("status reader panicked")?;
    match (status, unreachable) {
        (Ok(status), _) => Ok(render(&status, all, out)?),
        (Err(error), Some(query_error)) => Err(error.context(format!(
            "and the agent's endpoint did not answer: {query_error:#}"
        ))),
        (Err(error), None) => Err(error),
    }
}

async fn query(
    addr: std::net::SocketAddr,
    tls: Option<&crate::config::ListenTls>,
) -> anyhow::Result<AgentStatus> {
    let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10));
    let url = match tls {
        Some(tls) => {
            builder = builder.use_preconfigured_tls(crate::listener::pinned_client_config(tls)?);
            format!("https://{addr}/status")
        }
        None => format!("http://{addr}/status"),
    };
    let client = builder.build().context("cannot build an HTTP client")?;
    let response = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let code = response.status();
    let body = response.text().await.context("reading /status")?;
    if !code.is_success() {
        bail!("{url} answered {code}: {}", body.trim());
    }
    serde_json::from_str(&body).context("the agent's /status is not valid status JSON")
}

/// The progress the agent publishes in its etcd registry value at each heartbeat: every
/// followed (not finished) file's offset and bytes behind, and the WAL depth.
pub struct WalProgress {
    /// The agent's WAL (its checkpoints and depth).
    pub wal: Wal,
    /// How far its lines are acknowledged by Kafka.
    pub acked_through: std::sync::Arc<super::acked::AckedThrough>,
}

impl crate::etcd::registry::ProgressSource for WalProgress {
    fn progress(&self) -> Option<crate::etcd::registry::Progress> {
        let mut files = Vec::new();
        for item in self.wal.state_scan_prefix(KEY_PREFIX.as_bytes()) {
            let (_, value) = item.ok()?;
            let Ok(checkpoint) = Checkpoint::decode(&value) else {
                continue;
            };
            if checkpoint.finished {
                continue;
            }
            let status = file_status(&checkpoint);
            files.push(crate::etcd::registry::FileProgress {
                path: status.path,
                offset: status.offset,
                bytes_behind: status.bytes_behind,
            });
        }
        let mut progress = crate::etcd::registry::Progress::new(
            files,
            self.wal.pending_records(),
            self.wal.pending_bytes(),
        );
        progress.acked_through = Some(super::acked::rfc3339(self.acked_through.now()));
        Some(progress)
    }
}

/// `/status` of the running agent: answers once the WAL is open.
#[derive(Default)]
pub struct RunningStatus {
    wal: std::sync::OnceLock<(Wal, PathBuf)>,
    waiting: std::sync::OnceLock<std::sync::Arc<std::sync::atomic::AtomicU64>>,
}

impl RunningStatus {
    /// Makes `wal`, stored in `data_dir`, the source of the answers.
    pub fn attach(&self, wal: Wal, data_dir: &Path) {
        let _ = self.wal.set((wal, data_dir.to_path_buf()));
    }

    /// The reader's count of files waiting for a descriptor, shown in the answers.
    pub fn attach_waiting(&self, waiting: std::sync::Arc<std::sync::atomic::AtomicU64>) {
        let _ = self.waiting.set(waiting);
    }
}

impl crate::telemetry::StatusSource for RunningStatus {
    fn status_json(&self) -> Result<String, String> {
        let (wal, data_dir) = self
            .wal
            .get()
            .ok_or_else(|| "the agent is starting (its WAL is not open yet)".to_string())?;
        let mut status = collect(wal, "running", data_dir).map_err(|e| e.to_string())?;
        status.files_waiting = self
            .waiting
            .get()
            .map(|w| w.load(std::sync::atomic::Ordering::Relaxed));
        serde_json::to_string(&status).map_err(|e| e.to_string())
    }
}
