//! The evaluator's state in etcd: per rule `{prefix}/alerts/state/{name}` (a versioned
//! [`RuleState`] as JSON), the hosts it has seen at `{prefix}/alerts/hosts`, and what it reads:
//! the rules (`{prefix}/alerts/rules/`), the registry and the collect entries. Every request
//! is retried on other members for a while (a leader election is not an error).

use std::collections::BTreeMap;

use etcd_client::{Compare, Txn, TxnOp};

use super::complete::{Agents, Published};
use super::episodes::{RuleState, STATE_VERSION};
use crate::config::etcd_access::EtcdAccess;
use crate::etcd::alert_rules::{Refused, Rule};
use crate::etcd::registry::Registration;
use crate::etcd::{registry_prefix, retried, within, EtcdError, CONSOLE_PATIENCE};

/// How often the hosts seen are written (the evaluator's memory is ahead in between; a restart
/// reads an older `acked_through`, which only holds windows longer).
const SAVE_AGENTS_MS: i64 = 10_000;

/// Reads and writes the evaluator's keys.
pub struct Store {
    access: EtcdAccess,
    prefix: String,
    agents_saved: i64,
    fence: Option<Compare>,
}

/// A write refused because this evaluator no longer leads.
#[derive(Debug, thiserror::Error)]
#[error("no longer the leader: {key} was not written")]
pub struct NotLeader {
    /// The key not written.
    pub key: String,
}

impl Store {
    /// The store under `prefix`.
    pub fn new(access: EtcdAccess, prefix: &str) -> Store {
        Store {
            access,
            prefix: prefix.trim_end_matches('/').to_string(),
            agents_saved: i64::MIN,
            fence: None,
        }
    }

    /// Writes from now on only while `fence` holds (the leader key is still this evaluator's);
    /// `None`: unconditionally.
    pub fn set_fence(&mut self, fence: Option<Compare>) {
        self.fence = fence;
        self.agents_saved = i64::MIN;
    }

    fn rules_prefix(&self) -> String {
        format!("{}/alerts/rules/", self.prefix)
    }

    fn state_key(&self, name: &str) -> String {
        format!("{}/alerts/state/{name}", self.prefix)
    }

    fn hosts_key(&self) -> String {
        format!("{}/alerts/hosts", self.prefix)
    }

    async fn get_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, EtcdError> {
        crate::etcd::get_prefix(&self.access, prefix).await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, EtcdError> {
        let response = crate::etcd::get_retried(&self.access, key, None).await?;
        Ok(response.kvs().first().map(|kv| kv.value().to_vec()))
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> anyhow::Result<()> {
        let Some(fence) = &self.fence else {
            crate::etcd::put_retried(&self.access, key, &value).await?;
            return Ok(());
        };
        self.fenced(fence, key, || TxnOp::put(key, value.clone(), None))
            .await
    }

    /// `op` on `key`, only while `fence` holds ([`NotLeader`] when it no longer does).
    async fn fenced(
        &self,
        fence: &etcd_client::Compare,
        key: &str,
        op: impl Fn() -> TxnOp,
    ) -> anyhow::Result<()> {
        let response = retried(&self.access, CONSOLE_PATIENCE, |mut client| {
            let txn = Txn::new().when([fence.clone()]).and_then([op()]);
            async move { within("txn", client.txn(txn)).await }
        })
        .await?;
        if !response.succeeded() {
            return Err(NotLeader {
                key: key.to_string(),
            }
            .into());
        }
        Ok(())
    }

    /// Every rule: parsed and checked, or refused with the reason.
    pub async fn rules(&self) -> Result<Vec<(String, Result<Rule, Refused>)>, EtcdError> {
        let prefix = self.rules_prefix();
        Ok(self
            .get_prefix(&prefix)
            .await?
            .into_iter()
            .map(|(key, value)| {
                let name = key[prefix.len()..].to_string();
                let rule = Rule::parse(&name, &value);
                (name, rule)
            })
            .collect())
    }

    /// Every stored rule state, in one read: by rule name (some may no longer have a rule),
    /// decoded, or why it does not read.
    pub async fn rule_states(
        &self,
    ) -> Result<BTreeMap<String, anyhow::Result<RuleState>>, EtcdError> {
        let prefix = self.state_key("");
        Ok(self
            .get_prefix(&prefix)
            .await?
            .into_iter()
            .map(|(key, value)| {
                let name = key[prefix.len()..].to_string();
                let state = decode_state(&name, &value);
                (name, state)
            })
            .collect())
    }

    /// Deletes the state of a rule that is gone.
    pub async fn delete_rule_state(&self, name: &str) -> anyhow::Result<()> {
        let key = self.state_key(name);
        match &self.fence {
            Some(fence) => {
                self.fenced(fence, &key, || TxnOp::delete(key.as_str(), None))
                    .await
            }
            None => {
                crate::etcd::delete_retried(&self.access, &key).await?;
                Ok(())
            }
        }
    }

    /// Puts a rule's state.
    pub async fn put_rule_state(&self, name: &str, state: &RuleState) -> anyhow::Result<()> {
        let encode = |state: &RuleState| {
            serde_json::to_vec(state)
                .map_err(|e| anyhow::anyhow!("cannot encode the state of rule {name}: {e}"))
        };
        let mut value = encode(state)?;
        if value.len() > super::episodes::STATE_BYTES {
            let mut fitted = state.clone();
            let dropped = fitted.fit(value.len());
            metrics::counter!("logship_alert_samples_dropped_total").increment(dropped as u64);
            tracing::warn!(rule = %name, bytes = value.len(), dropped, "rule state too large for etcd: the samples of its oldest unsent notifications dropped");
            value = encode(&fitted)?;
        }
        self.put(&self.state_key(name), value).await?;
        Ok(())
    }

    /// The registry (host → its `acked_through`) and the hosts with collect entries.
    pub async fn registry(&self) -> Result<(BTreeMap<String, Published>, Vec<String>), EtcdError> {
        let registry = registry_prefix(&self.prefix);
        let mut hosts = BTreeMap::new();
        for (key, value) in self.get_prefix(&registry).await? {
            let host = key[registry.len()..].trim_start_matches('/').to_string();
            let published = serde_json::from_slice::<Registration>(&value)
                .ok()
                .and_then(|r| r.progress)
                .and_then(|p| p.acked_through)
                .and_then(|t| crate::agent::acked::parse_rfc3339(&t))
                .map_or(Published::Never, |ns| Published::At(ns / 1_000_000));
            hosts.insert(host, published);
        }
        let agents = format!("{}/agents/", self.prefix);
        let mut collect: Vec<String> = self
            .get_prefix(&agents)
            .await?
            .into_iter()
            .filter_map(|(key, _)| {
                key[agents.len()..]
                    .strip_suffix("/collect")
                    .map(str::to_string)
            })
            .collect();
        collect.sort();
        collect.dedup();
        Ok((hosts, collect))
    }

    /// Lists this evaluator's receivers where `ctl` and the console look for them.
    pub async fn put_receivers(&self, receivers: &[String]) -> anyhow::Result<()> {
        let value = serde_json::to_vec(receivers)
            .map_err(|e| anyhow::anyhow!("cannot encode the receivers: {e}"))?;
        self.put(
            &crate::etcd::alert_rules::receivers_key(&self.prefix),
            value,
        )
        .await
    }

    /// The hosts seen before (empty the first time).
    pub async fn load_agents(&self) -> anyhow::Result<Agents> {
        match self.get(&self.hosts_key()).await? {
            None => Ok(Agents::default()),
            Some(value) => serde_json::from_slice(&value)
                .map_err(|e| anyhow::anyhow!("{} is unreadable: {e}", self.hosts_key())),
        }
    }

    /// Writes the hosts seen, at most every [`SAVE_AGENTS_MS`].
    pub async fn save_agents(&mut self, agents: &Agents, now_ms: i64) -> anyhow::Result<()> {
        if now_ms.saturating_sub(self.agents_saved) < SAVE_AGENTS_MS {
            return Ok(());
        }
        let value = serde_json::to_vec(agents)
            .map_err(|e| anyhow::anyhow!("cannot encode the hosts seen: {e}"))?;
        self.put(&self.hosts_key(), value).await?;
        self.agents_saved = now_ms;
        Ok(())
    }
}

/// A stored rule state, of this evaluator's [`STATE_VERSION`].
fn decode_state(name: &str, value: &[u8]) -> anyhow::Result<RuleState> {
    let state: RuleState = serde_json::from_slice(value)
        .map_err(|e| anyhow::anyhow!("the state of rule {name} is unreadable: {e}"))?;
    if state.version != STATE_VERSION {
        anyhow::bail!(
            "the state of rule {name} has version {}, this evaluator reads {STATE_VERSION}",
            state.version
        );
    }
    Ok(state)
}
