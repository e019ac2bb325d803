//! `logship ctl`: reads and writes the central configuration (an operator's tool, so errors are
//! `anyhow` with the whole context).

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use etcd_client::GetOptions;

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
            let response = retried(access, PATIENCE, |mut client| {
                let (key, json) = (key.clone(), json.clone());
                async move { within("put", client.put(key, json, None)).await }
            })
            .await?;
            let revision = response.header().map(|h| h.revision()).unwrap_or(0);
            writeln!(out, "wrote {key} (revision {revision})")?;
        }
        CtlRequest::CollectGet { host } => {
            let key = collect_key(prefix, host);
            let response = retried(access, PATIENCE, |mut client| {
                let key = key.clone();
                async move { within("get", client.get(key, None)).await }
            })
            .await?;
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
            let response = retried(access, PATIENCE, |mut client| {
                let key = key.clone();
                async move {
                    within(
                        "get",
                        client.get(key, Some(GetOptions::new().with_prefix())),
                    )
                    .await
                }
            })
            .await?;
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
    }
    Ok(())
}

/// Reads `file` and validates it as a JSON array of collect entries; returns it normalized.
fn validated_file(file: &Path) -> anyhow::Result<Vec<u8>> {
    let text = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let entries = parse_entries(&text).with_context(|| format!("refused {}", file.display()))?;
    Ok(serde_json::to_vec(&entries)?)
}
