//! The transfer's Kafka consumer settings: a group member that never commits on its own.
//!
//! Automatic commits and automatic offset stores are off; the transfer commits explicit offsets
//! itself (its rebalance hooks and commit rule live in the transfer, as the consumer's
//! `ConsumerContext`).

use rdkafka::config::ClientConfig;

use crate::config::secret::SecretError;
use crate::config::TransferKafkaConfig;

/// The librdkafka settings of the transfer's consumer: the configured ones, then the ones the
/// commit rule requires (which the config validation keeps `options` from overriding).
pub fn client_config(config: &TransferKafkaConfig) -> Result<ClientConfig, SecretError> {
    let mut client = ClientConfig::new();
    client
        .set("client.id", "logship-transfer")
        // A new group starts at the beginning: nothing already in the topic is skipped.
        .set("auto.offset.reset", "earliest")
        // Prefetch at most 24 MiB (librdkafka's default is 64 MiB): measured 16 / 24 / 32 MiB,
        // peak RSS 101-105 / 116-124 / 131-139 MiB; 16 MiB cost throughput (docs/bench.md).
        .set("queued.max.messages.kbytes", "24576")
        .set("statistics.interval.ms", super::STATISTICS_INTERVAL_MS)
        // A configured topic that does not exist yet (the metrics topic before the first agent
        // samples) is joined within 10 s of its creation, not at librdkafka's 5 min refresh.
        .set("topic.metadata.refresh.interval.ms", "10000")
        // Incremental rebalancing: a transfer joining or leaving the group moves only the
        // partitions that change hands; the others go on being consumed (the revoke hook
        // commits what is indexed of each partition that leaves, as with eager rebalancing).
        .set("partition.assignment.strategy", "cooperative-sticky");
    // A request the broker never answers (a commit to a stuck coordinator, made synchronously
    // on revoke) may hold the consumer no longer than the stall bound: that is what lets the
    // transfer notice and replace it within `stall_timeout_ms` (librdkafka's default is 60 s;
    // its floor 10 ms).
    let stall_ms = config.stall_timeout_ms.get().as_millis();
    if stall_ms > 0 && stall_ms < 60_000 {
        client.set("socket.timeout.ms", stall_ms.max(10).to_string());
    }
    for (key, value) in &config.options {
        client.set(key, value);
    }
    client
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false");
    // Static membership: a restarted transfer rejoins as the member it was and gets its
    // partitions back without waiting for its old session to time out.
    if let Some(id) = config
        .group_instance_id
        .as_deref()
        .filter(|id| !id.is_empty())
    {
        client.set("group.instance.id", id);
    }
    super::security::apply(&mut client, config.tls.as_ref(), config.sasl.as_ref())?;
    Ok(client)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn commit_rule_settings_win_over_options() {
        let config = TransferKafkaConfig {
            brokers: "b:9092".into(),
            group: "g".into(),
            group_instance_id: Some("logship-transfer-h-0000abcd".into()),
            topics: vec!["t".into()],
            commit_interval_ms: crate::config::Millis::new(1000),
            stall_timeout_ms: crate::config::Millis::new(60_000),
            options: BTreeMap::from([
                ("session.timeout.ms".to_string(), "6000".to_string()),
                ("auto.offset.reset".to_string(), "latest".to_string()),
            ]),
            tls: None,
            sasl: None,
        };
        let client = client_config(&config).unwrap();
        assert_eq!(client.get("enable.auto.commit"), Some("false"));
        assert_eq!(client.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(client.get("group.id"), Some("g"));
        assert_eq!(client.get("session.timeout.ms"), Some("6000"));
        assert_eq!(client.get("auto.offset.reset"), Some("latest"));
        assert_eq!(
            client.get("group.instance.id"),
            Some("logship-transfer-h-0000abcd")
        );
        assert_eq!(
            client.get("partition.assignment.strategy"),
            Some("cooperative-sticky")
        );
        let dynamic = TransferKafkaConfig {
            group_instance_id: Some(String::new()),
            ..config
        };
        assert_eq!(
            client_config(&dynamic).unwrap().get("group.instance.id"),
            None
        );
    }
}
