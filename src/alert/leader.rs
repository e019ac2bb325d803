//! Leadership among several `logship alert`: etcd's election API on `{prefix}/alerts/leader`,
//! over a lease of [`LEASE_TTL_SECS`] kept alive by the candidate. One evaluates; when it dies
//! its lease expires and another's campaign returns within the TTL, and it continues from the
//! state stored in etcd. A leader that loses its lease (cut off from etcd) stops at its next
//! write: the state is written only in a transaction that checks the leader key is still the
//! one it was elected with ([`Leadership::fence`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp};

use crate::config::etcd_access::EtcdAccess;
use crate::etcd::{connect, within, EtcdError};

/// The leader's lease time to live: how long after a leader's death another takes over, at
/// most.
pub const LEASE_TTL_SECS: i64 = 10;

/// Being the leader, while [`Leadership::held`].
pub struct Leadership {
    key: Vec<u8>,
    rev: i64,
    lease: i64,
    client: Client,
    lost: Arc<AtomicBool>,
    keeper: tokio::task::JoinHandle<()>,
}

impl Leadership {
    /// Whether the lease is still kept alive.
    pub fn held(&self) -> bool {
        !self.lost.load(Ordering::Relaxed)
    }

    /// The condition a state write must meet: the leader key is still the one elected.
    pub fn fence(&self) -> Compare {
        Compare::create_revision(self.key.clone(), CompareOp::Equal, self.rev)
    }

    /// Gives leadership up at once (on shutdown), so another takes over without waiting for
    /// the lease to expire.
    pub async fn resign(mut self) {
        self.keeper.abort();
        let _ = within("lease revoke", self.client.lease_revoke(self.lease)).await;
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

/// The election's name under `prefix`.
pub fn election_name(prefix: &str) -> String {
    format!("{}/alerts/leader", prefix.trim_end_matches('/'))
}

/// Campaigns until elected (`id` names this instance in the election's value). While waiting,
/// `no_leader` is called with whether no instance leads now (checked every few seconds).
pub async fn campaign(
    access: &EtcdAccess,
    prefix: &str,
    id: &str,
    no_leader: &(dyn Fn(bool) + Sync),
) -> Result<Leadership, EtcdError> {
    let name = election_name(prefix);
    let mut client = connect(access).await?;
    let lease = within("lease grant", client.lease_grant(LEASE_TTL_SECS, None))
        .await?
        .id();
    let lost = Arc::new(AtomicBool::new(false));
    let keeper = {
        let mut client = client.clone();
        let lost = lost.clone();
        tokio::spawn(async move {
            let kept = async {
                let (mut keeper, mut responses) =
                    within("lease keep-alive", client.lease_keep_alive(lease)).await?;
                loop {
                    within("keep-alive", keeper.keep_alive()).await?;
                    match within("keep-alive response", responses.message()).await? {
                        Some(response) if response.ttl() > 0 => {}
                        _ => return Ok::<(), EtcdError>(()),
                    }
                    tokio::time::sleep(Duration::from_secs((LEASE_TTL_SECS / 3) as u64)).await;
                }
            };
            let _ = kept.await;
            lost.store(true, Ordering::Relaxed);
        })
    };
    let mut election = client.election_client();
    let campaign = election.campaign(name.as_str(), id, lease);
    tokio::pin!(campaign);
    let mut watcher = client.election_client();
    let response = loop {
        tokio::select! {
            response = &mut campaign => break response,
            _ = tokio::time::sleep(Duration::from_secs(3)) => {
                if lost.load(Ordering::Relaxed) {
                    keeper.abort();
                    return Err(EtcdError::Value { key: name.clone(), reason: "the campaign's lease was lost".into() });
                }
                let leads = within("leader", watcher.leader(name.as_str())).await;
                no_leader(leads.is_err());
            }
        }
    };
    let response = match response {
        Ok(response) => response,
        Err(error) => {
            keeper.abort();
            return Err(error.into());
        }
    };
    let Some(leader) = response.leader() else {
        keeper.abort();
        return Err(EtcdError::Value {
            key: name.clone(),
            reason: "the campaign answered without a leader key".into(),
        });
    };
    Ok(Leadership {
        key: leader.key().to_vec(),
        rev: leader.rev(),
        lease,
        client,
        lost,
        keeper,
    })
}
