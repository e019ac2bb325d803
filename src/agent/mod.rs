//! The agent (placeholder).
use crate::config::AgentConfig;
use crate::shutdown::Shutdown;
/// Runs the agent.
pub async fn run(_config: AgentConfig, _shutdown: Shutdown) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
