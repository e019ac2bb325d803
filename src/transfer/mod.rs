//! The transfer: Kafka consumer group → Elasticsearch bulk (placeholder until the transfer work lands).

use crate::config::TransferConfig;
use crate::shutdown::Shutdown;

/// Runs the transfer until `shutdown`.
pub async fn run(_config: TransferConfig, _shutdown: Shutdown) -> anyhow::Result<()> {
    anyhow::bail!("the transfer is not built yet")
}
