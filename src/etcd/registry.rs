//! The registry of live agents: each agent holds `{prefix}/registry/{host}` on a lease of
//! [`LEASE_TTL_SECS`] that it keeps alive, so the key disappears within that time after the
//! agent dies (SIGKILL, power loss), and at once when it stops cleanly (the lease is revoked).

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
}

/// Keeps one agent's registry key alive.
pub struct Registry {
    /// etcd endpoints and credentials.
    pub access: crate::config::etcd_access::EtcdAccess,
    /// The key (`{prefix}/registry/{host}`).
    pub key: String,
    /// Number of files followed, kept current by the reading loop.
    pub files: Arc<AtomicU64>,
    /// How reconnections are paced.
    pub reconnect: BackoffPolicy,
}

impl Registry {
    /// Runs until `shutdown`, re-registering with backoff when etcd is away.
    pub async fn run(self, shutdown: Shutdown) {
        let started_at = now();
        let mut backoff = self.reconnect.start();
        while !shutdown.is_triggered() {
            if let Err(error) = self.session(&started_at, &mut backoff, &shutdown).await {
                tracing::warn!(key = self.key, %error, "agent registration lost; retrying");
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
