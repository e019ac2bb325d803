//! `logship ctl`: reads and writes the central configuration (an operator's tool, so errors are
//! `anyhow` with the whole context).

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use etcd_client::GetOptions;

use super::alert_rules::{check_name, check_receivers, receivers_key, Refused, Rule};
use super::entries::parse_entries;
use super::registry::Registration;
use super::{collect_key, registry_prefix, retried, within};

/// How long one `ctl` request keeps trying other members while etcd does not answer.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);
/// One `ctl` request (the binary turns its command line into one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtlRequest {
    /// Print `host`'s collect entries as JSON (`[]` when it has none).
    CollectGet {
        /// The agent's `host`.
        host: String,
    },
    /// Validate `file` (a JSON array of collect entries) and make it `host`'s entries.
    CollectSet {
        /// The agent's `host`.
        host: String,
        /// The JSON file.
        file: std::path::PathBuf,
    },
    /// List live agents from the registry.
    Agents,
    /// List the alert rules.
    AlertList,
    /// Print alert rule `name`.
    AlertGet {
        /// The rule's name.
        name: String,
    },
    /// Check `file` as alert rule `name` and store it.
    AlertSet {
        /// The rule's name.
        name: String,
        /// The JSON file.
        file: std::path::PathBuf,
        /// Elasticsearch to check the query and `group_by` fields against.
        es: Option<String>,
    },
    /// Delete alert rule `name`.
    AlertDelete {
        /// The rule's name.
        name: String,
    },
}

/// The key of alert rule `name`.
pub fn alert_rule_key(prefix: &str, name: &str) -> String {
    format!("{}{name}", alert_rules_prefix(prefix))
}

/// The prefix of every alert rule's key.
pub fn alert_rules_prefix(prefix: &str) -> String {
    format!("{prefix}/alerts/rules/")
}

/// Runs one `ctl` request against etcd at `access`, writing its output to `out`.
pub async fn run(
    access: &crate::config::etcd_access::EtcdAccess,
    prefix: &str,
    request: &CtlRequest,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    if !prefix.starts_with('/') || prefix.ends_with('/') {
        anyhow::bail!("--prefix {prefix:?} must start with '/' and not end with one");
    }
    match request {
        CtlRequest::CollectSet { host, file } => {
            // Validate before connecting: a bad file is refused even with etcd away.
            let json = validated_file(file)?;
            let key = collect_key(prefix, host);
            let revision = put(access, &key, json).await?;
            writeln!(out, "wrote {key} (revision {revision})")?;
        }
        CtlRequest::CollectGet { host } => {
            let key = collect_key(prefix, host);
            let response = get(access, &key, None).await?;
            let Some(kv) = response.kvs().first() else {
                writeln!(out, "[]")?;
                return Ok(());
            };
            match parse_entries(kv.value()) {
                Ok(entries) => writeln!(out, "{}", serde_json::to_string_pretty(&entries)?)?,
                Err(error) => {
                    out.write_all(kv.value())?;
                    writeln!(out)?;
                    anyhow::bail!(
                        "{key} (revision {}) holds an invalid value: {error}",
                        kv.mod_revision()
                    );
                }
            }
        }
        CtlRequest::Agents => {
            let key = registry_prefix(prefix);
            let response = get(access, &key, Some(GetOptions::new().with_prefix())).await?;
            writeln!(out, "HOST\tVERSION\tSTARTED\tLAST HEARTBEAT\tFILES")?;
            for kv in response.kvs() {
                let host = String::from_utf8_lossy(kv.key());
                let host = host.strip_prefix(&key).unwrap_or(&host);
                match serde_json::from_slice::<Registration>(kv.value()) {
                    Ok(r) => writeln!(
                        out,
                        "{host}\t{}\t{}\t{}\t{}",
                        r.version, r.started_at, r.heartbeat_at, r.files
                    )?,
                    Err(error) => writeln!(out, "{host}\t(unreadable registration: {error})")?,
                }
            }
        }
        CtlRequest::AlertSet { name, file, es } => {
            // Checked before connecting: a bad rule is refused even with etcd away.
            let text =
                std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            let rule = Rule::parse(name, &text)?;
            let refused = |reason: String| Refused {
                name: name.clone(),
                reason,
            };
            if let Some(url) = es {
                if let Rule::Logs(logs) = &rule {
                    let client = crate::es::EsClient::new(&crate::es::EsSettings::plain(
                        url,
                        std::time::Duration::from_secs(30),
                    ))?;
                    let index = logs.index.as_deref().unwrap_or("*,-.*");
                    crate::es::rule_checks::check_logs_rule(
                        &client,
                        index,
                        &logs.query,
                        &logs.group_by,
                    )
                    .await
                    .map_err(refused)?;
                }
            }
            let receivers = get(access, &receivers_key(prefix), None).await?;
            if let Some(kv) = receivers.kvs().first() {
                let known: Vec<String> = serde_json::from_slice(kv.value()).unwrap_or_default();
                check_receivers(&rule, &known).map_err(refused)?;
            }
            let key = alert_rule_key(prefix, name);
            let json = serde_json::to_vec(&rule)?;
            let revision = put(access, &key, json).await?;
            writeln!(out, "wrote {key} (revision {revision})")?;
        }
        CtlRequest::AlertGet { name } => {
            check_name(name).map_err(|reason| anyhow::anyhow!("{reason}"))?;
            let key = alert_rule_key(prefix, name);
            let response = get(access, &key, None).await?;
            let Some(kv) = response.kvs().first() else {
                anyhow::bail!("no alert rule is named {name:?} ({key})");
            };
            match Rule::parse(name, kv.value()) {
                Ok(rule) => writeln!(out, "{}", serde_json::to_string_pretty(&rule)?)?,
                Err(error) => {
                    out.write_all(kv.value())?;
                    writeln!(out)?;
                    anyhow::bail!(
                        "{key} (revision {}) holds an invalid rule: {error}",
                        kv.mod_revision()
                    );
                }
            }
        }
        CtlRequest::AlertDelete { name } => {
            check_name(name).map_err(|reason| anyhow::anyhow!("{reason}"))?;
            let key = alert_rule_key(prefix, name);
            let response = retried(access, PATIENCE, |mut client| {
                let key = key.clone();
                async move { within("delete", client.delete(key, None)).await }
            })
            .await?;
            if response.deleted() == 0 {
                anyhow::bail!("no alert rule is named {name:?} ({key})");
            }
            writeln!(out, "deleted {key}")?;
        }
        CtlRequest::AlertList => {
            let key = alert_rules_prefix(prefix);
            let response = get(access, &key, Some(GetOptions::new().with_prefix())).await?;
            writeln!(out, "NAME\tKIND\tSTATE")?;
            for kv in response.kvs() {
                let full = String::from_utf8_lossy(kv.key());
                let name = full.strip_prefix(&key).unwrap_or(&full);
                match Rule::parse(name, kv.value()) {
                    Ok(rule) => writeln!(out, "{name}\t{}\tok", rule.kind())?,
                    Err(error) => writeln!(out, "{name}\t-\tinvalid: {}", error.reason)?,
                }
            }
        }
    }
    Ok(())
}

/// Puts `value` at `key` (retrying other members for [`PATIENCE`]); returns the revision.
async fn put(
    access: &crate::config::etcd_access::EtcdAccess,
    key: &str,
    value: Vec<u8>,
) -> anyhow::Result<i64> {
    let response = retried(access, PATIENCE, |mut client| {
        let (key, value) = (key.to_string(), value.clone());
        async move { within("put", client.put(key, value, None)).await }
    })
    .await?;
    Ok(response.header().map(|h| h.revision()).unwrap_or(0))
}

/// Gets `key` (or the keys under it, with a prefix option), retrying other members.
async fn get(
    access: &crate::config::etcd_access::EtcdAccess,
    key: &str,
    options: Option<GetOptions>,
) -> anyhow::Result<etcd_client::GetResponse> {
    Ok(retried(access, PATIENCE, |mut client| {
        let (key, options) = (key.to_string(), options.clone());
        async move { within("get", client.get(key, options)).await }
    })
    .await?)
}

/// Reads `file` and validates it as a JSON array of collect entries; returns it normalized.
fn validated_file(file: &Path) -> anyhow::Result<Vec<u8>> {
    let text = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let entries = parse_entries(&text).with_context(|| format!("refused {}", file.display()))?;
    Ok(serde_json::to_vec(&entries)?)
}
