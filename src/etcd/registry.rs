//! The registry of live agents: each agent holds `{prefix}/registry/{host}` on a lease of
//! [`LEASE_TTL_SECS`] that it keeps alive, so the key disappears within that time after the
//! agent dies (SIGKILL, power loss), and at once when it stops cleanly (the lease is revoked).
//!
//! The value also says where the agent's lines are ([`Progress`]: bytes not yet read per file,
//! records not yet acknowledged by Kafka), refreshed at every heartbeat, so the console can
//! answer "where are my lines right now?" without reaching the agent's own endpoint (which
//! stays on loopback).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::PutOptions;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{connect, within, EtcdError};
use crate::backoff::{Backoff, BackoffPolicy};
use crate::shutdown::Shutdown;

/// Lease time to live: how long a dead agent stays listed at most.
pub const LEASE_TTL_SECS: i64 = 10;
/// How often the lease is renewed and the value refreshed.
pub const HEARTBEAT: Duration = Duration::from_secs(3);

/// The value of a registry key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// logship version of the agent.
    pub version: String,
    /// When the agent started (RFC 3339 UTC).
    pub started_at: String,
    /// When the value was last refreshed (RFC 3339 UTC).
    pub heartbeat_at: String,
    /// Files followed at the last refresh.
    pub files: u64,
    /// Where the agent's lines are (absent from agents before this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
}

/// At most this many files are listed in [`Progress::files`] (the most behind first): the
/// value, written at every heartbeat, stays around 2 KB with thousands of files (each write is
/// an etcd revision: see docs/operations.md on compaction).
pub const MAX_PUBLISHED_FILES: usize = 20;

/// Where an agent's lines are, at its last heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Files with a checkpoint that are still followed, the most bytes behind first, at most
    /// [`MAX_PUBLISHED_FILES`].
    pub files: Vec<FileProgress>,
    /// How many followed files there are in all (more than `files.len()` when cut).
    pub files_total: u64,
    /// Bytes written to the followed files and not yet read, over all of them.
    pub bytes_behind: u64,
    /// WAL records (read, not yet acknowledged by Kafka).
    pub wal_pending_records: u64,
    /// Their payload bytes.
    pub wal_pending_bytes: u64,
    /// Every line this agent read with an earlier read time (`@timestamp`, RFC 3339) is
    /// acknowledged by Kafka; never decreasing. Absent from agents before it: the alert
    /// evaluator never counts such an agent as complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_through: Option<String>,
}

/// One followed file's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileProgress {
    /// Its path.
    pub path: String,
    /// First byte not yet read and committed to the WAL.
    pub offset: u64,
    /// Bytes written and not yet read (`None`: the file at the path is not the one being read,
    /// e.g. rotated away and not recreated yet).
    pub bytes_behind: Option<u64>,
}

impl Progress {
    /// A progress report from every followed file (`(path, offset, bytes behind)`) and the
    /// WAL depth: sorted most behind first, cut at [`MAX_PUBLISHED_FILES`], totals kept.
    pub fn new(
        mut files: Vec<FileProgress>,
        wal_pending_records: u64,
        wal_pending_bytes: u64,
    ) -> Progress {
        let bytes_behind = files.iter().filter_map(|f| f.bytes_behind).sum();
        let files_total = files.len() as u64;
        files.sort_by(|a, b| {
            b.bytes_behind
                .unwrap_or(0)
                .cmp(&a.bytes_behind.unwrap_or(0))
                .then_with(|| a.path.cmp(&b.path))
        });
        files.truncate(MAX_PUBLISHED_FILES);
        Progress {
            files,
            files_total,
            bytes_behind,
            wal_pending_records,
            wal_pending_bytes,
            acked_through: None,
        }
    }
}

/// Where the registry reads the agent's progress at each heartbeat (the agent implements it;
/// this module knows nothing of files or the WAL). `None` when it cannot be read now.
pub trait ProgressSource: Send + Sync {
    /// The progress now.
    fn progress(&self) -> Option<Progress>;
}

/// Keeps one agent's registry key alive.
pub struct Registry {
    /// etcd endpoints and credentials.
    pub access: crate::config::etcd_access::EtcdAccess,
    /// The key (`{prefix}/registry/{host}`).
    pub key: String,
    /// Number of files followed, kept current by the reading loop.
    pub files: Arc<AtomicU64>,
    /// The agent's progress, read at each heartbeat.
    pub progress: Arc<dyn ProgressSource>,
    /// How reconnections are paced.
    pub reconnect: BackoffPolicy,
    /// Told when the registration is lost.
    pub events: Arc<dyn super::EtcdEvents>,
}

impl Registry {
    /// Runs until `shutdown`, re-registering with backoff when etcd is away.
    pub async fn run(self, shutdown: Shutdown) {
        let started_at = now();
        let mut backoff = self.reconnect.start();
        while !shutdown.is_triggered() {
            if let Err(error) = self.session(&started_at, &mut backoff, &shutdown).await {
                self.events.registration_lost(&self.key, &error.to_string());
            }
            let delay = backoff.next_delay();
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// Grants a lease, then writes the value and renews the lease every [`HEARTBEAT`]; revokes
    /// the lease on shutdown.
    async fn session(
        &self,
        started_at: &str,
        backoff: &mut Backoff,
        shutdown: &Shutdown,
    ) -> Result<(), EtcdError> {
        let mut client = connect(&self.access).await?;
        let lease = within("lease grant", client.lease_grant(LEASE_TTL_SECS, None))
            .await?
            .id();
        let (mut keeper, mut responses) =
            within("lease keep-alive", client.lease_keep_alive(lease)).await?;
        loop {
            let value = Registration {
                version: env!("CARGO_PKG_VERSION").to_string(),
                started_at: started_at.to_string(),
                heartbeat_at: now(),
                files: self.files.load(Ordering::Relaxed),
                progress: self.progress.progress(),
            };
            let json = serde_json::to_vec(&value).map_err(|e| EtcdError::Value {
                key: self.key.clone(),
                reason: e.to_string(),
            })?;
            let options = PutOptions::new().with_lease(lease);
            within("put", client.put(self.key.as_str(), json, Some(options))).await?;
            within("keep-alive", keeper.keep_alive()).await?;
            match within("keep-alive response", responses.message()).await? {
                Some(response) if response.ttl() > 0 => {}
                _ => {
                    return Err(EtcdError::Value {
                        key: self.key.clone(),
                        reason: "lease expired".into(),
                    })
                }
            }
            backoff.reset();
            tokio::select! {
                _ = shutdown.wait() => {
                    let _ = within("lease revoke", client.lease_revoke(lease)).await;
                    return Ok(());
                }
                _ = tokio::time::sleep(HEARTBEAT) => {}
            }
        }
    }
}

/// Now, RFC 3339 in UTC.
fn now() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, behind: Option<u64>) -> FileProgress {
        FileProgress {
            path: path.into(),
            offset: 7,
            bytes_behind: behind,
        }
    }

    #[test]
    fn progress_lists_the_most_behind_first_and_keeps_totals_when_cut() {
        let mut files: Vec<FileProgress> = (0..MAX_PUBLISHED_FILES as u64 + 5)
            .map(|n| file(&format!("/f{n:04}"), Some(n)))
            .collect();
        files.push(file("/rotated", None));
        let progress = Progress::new(files, 3, 4096);
        assert_eq!(progress.files.len(), MAX_PUBLISHED_FILES);
        assert_eq!(progress.files_total, MAX_PUBLISHED_FILES as u64 + 6);
        assert_eq!(
            progress.files[0].bytes_behind,
            Some(MAX_PUBLISHED_FILES as u64 + 4)
        );
        let n = MAX_PUBLISHED_FILES as u64 + 5;
        assert_eq!(progress.bytes_behind, n * (n - 1) / 2);
        assert_eq!(
            (progress.wal_pending_records, progress.wal_pending_bytes),
            (3, 4096)
        );
        let old: Registration = serde_json::from_str(
            r#"{"version":"0.1.0","started_at":"a","heartbeat_at":"b","files":2}"#,
        )
        .unwrap();
        assert_eq!(old.progress, None, "values of older agents still read");
    }
}
