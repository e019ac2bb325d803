//! Follows `{prefix}/agents/{host}/collect` and publishes every valid value into a
//! [`CentralEntries`], where the agent's reading loop picks it up.
//!
//! The protocol, so that no change is missed:
//! 1. `get` the key: its value (or absence: no entries) and the store revision `R`;
//! 2. `watch` the key from `R + 1`: every later change arrives, none is skipped;
//! 3. when the watch is canceled (its start revision was compacted away, or the server says so)
//!    or the stream fails, go back to 1 after a backoff. Re-reading the key yields the latest
//!    value whatever happened in between, so a compaction loses no *state*, only intermediate
//!    versions nobody needs.
//!
//! A value that is not valid JSON, or has an entry that fails validation or lies outside
//! `etcd.allowed_paths`, is refused as a whole: an error log names the key, its mod revision and
//! the reason, [`WatchStats::rejected`] counts it, and the last good entries stay in force.
//!
//! The agent keeps every accepted value in its WAL state (see `agent::paths`), so an agent
//! restarted while etcd is unreachable collects what it collected before; this module writes
//! nothing locally.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use etcd_client::{EventType, WatchOptions};

use super::entries::{parse_allowed, CentralEntries, EntriesError};
use super::{connect, within, EtcdError};
use crate::backoff::{Backoff, BackoffPolicy};
use crate::config::CollectEntry;
use crate::shutdown::Shutdown;

/// What the watcher did, for metrics and tests.
#[derive(Debug, Default)]
pub struct WatchStats {
    /// Values accepted and published.
    pub accepted: AtomicU64,
    /// Values refused (malformed or not allowed).
    pub rejected: AtomicU64,
}

/// The watcher of one host's collect key.
pub struct CollectWatcher {
    /// etcd endpoints and credentials.
    pub access: crate::config::etcd_access::EtcdAccess,
    /// The key (`{prefix}/agents/{host}/collect`).
    pub key: String,
    /// Roots every entry's glob must lie under.
    pub allowed_roots: Vec<String>,
    /// Where accepted entries are published.
    pub remote: CentralEntries,
    /// Counters.
    pub stats: Arc<WatchStats>,
    /// How reconnections are paced.
    pub reconnect: BackoffPolicy,
    /// Told when etcd refuses us and when it is reached again.
    pub events: Arc<dyn super::EtcdEvents>,
}

impl CollectWatcher {
    /// Runs until `shutdown`, reconnecting with backoff whenever etcd is away.
    pub async fn run(self, shutdown: Shutdown) {
        let mut backoff = self.reconnect.start();
        let mut reached_once = false;
        let mut reported_outage = false;
        loop {
            let result = tokio::select! {
                _ = shutdown.wait() => return,
                result = self.session(&mut backoff, &mut reached_once) => result,
            };
            match result {
                Ok(()) => {}
                Err(error) if error.is_refusal() => {
                    let reason = format!(
                        "etcd at {} refused us: {}",
                        self.access.endpoints.join(","),
                        match &error {
                            EtcdError::Client(inner) => crate::errors::with_causes(inner),
                            other => other.to_string(),
                        }
                    );
                    self.events.etcd_refused(&reason);
                }
                Err(error) if !reached_once && !reported_outage => {
                    reported_outage = true;
                    self.events.etcd_unreachable(
                        &self.key,
                        &error.to_string(),
                        self.remote.current().len(),
                    );
                }
                Err(error) => self.events.watch_lost(&self.key, &error.to_string()),
            }
            let delay = backoff.next_delay();
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// One read-then-watch session; `Ok` when the watch was canceled (re-read at once).
    async fn session(
        &self,
        backoff: &mut Backoff,
        reached_once: &mut bool,
    ) -> Result<(), EtcdError> {
        let mut client = connect(&self.access).await?;
        let response = within("get", client.get(self.key.as_str(), None)).await?;
        self.events.etcd_reached();
        let revision = response.header().map(|h| h.revision()).unwrap_or(0);
        match response.kvs().first() {
            Some(kv) => self.apply(Some(kv.value()), kv.mod_revision()),
            None => self.apply(None, revision),
        }
        *reached_once = true;
        backoff.reset();
        let options = WatchOptions::new().with_start_revision(revision + 1);
        let mut stream = within("watch", client.watch(self.key.as_str(), Some(options))).await?;
        loop {
            let Some(message) = stream.message().await? else {
                return Err(EtcdError::Value {
                    key: self.key.clone(),
                    reason: "watch stream closed by the server".into(),
                });
            };
            if message.compact_revision() > 0 {
                let why = format!(
                    "etcd compacted past our watch (revision {})",
                    message.compact_revision()
                );
                self.events.watch_restarted(&self.key, &why);
                return Ok(());
            }
            if message.canceled() {
                let why = format!("etcd canceled our watch: {}", message.cancel_reason());
                self.events.watch_restarted(&self.key, &why);
                return Ok(());
            }
            for event in message.events() {
                let Some(kv) = event.kv() else { continue };
                match event.event_type() {
                    EventType::Put => self.apply(Some(kv.value()), kv.mod_revision()),
                    EventType::Delete => self.apply(None, kv.mod_revision()),
                }
            }
        }
    }

    /// Validates one value (`None`: the key is absent, meaning no entries) and publishes it.
    fn apply(&self, value: Option<&[u8]>, revision: i64) {
        let parsed: Result<Vec<CollectEntry>, EntriesError> = match value {
            Some(bytes) => parse_allowed(bytes, &self.allowed_roots),
            None => Ok(Vec::new()),
        };
        let entries = match parsed {
            Ok(entries) => entries,
            Err(error) => {
                let rejected = self.stats.rejected.fetch_add(1, Ordering::Relaxed) + 1;
                self.events
                    .collect_refused(&self.key, revision, rejected, &error.to_string());
                return;
            }
        };
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        if entries == self.remote.current() {
            return;
        }
        self.events
            .collect_accepted(&self.key, revision, entries.len());
        self.remote.publish(entries);
    }
}
