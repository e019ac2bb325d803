//! Looking after Elasticsearch's storage while the transfer runs: retention and disks.
//!
//! - **Retention**: at start and then every `elasticsearch.retention_check_ms`, the indices of
//!   the transfer's own [`RetentionRule`]s (the data indices of `elasticsearch.index` for its
//!   topics, and a dated `dlq_index`) whose period plus retention has passed are deleted. Only
//!   names the rule's template renders are ever deleted ([`crate::es::retention`]). Several
//!   transfers may sweep at once: a deletion answered 404 was done by another. A sweep that
//!   fails is a warning in `/health` and is tried again at the next check.
//! - **Disks**: every [`DISK_CHECK_INTERVAL`] the nodes' disks are read against the
//!   cluster's watermarks; above the high watermark `/health` warns (still 200) before the
//!   flood stage makes Elasticsearch refuse writes.
//! - At start, a topic whose Kafka retention outlives the indices' is warned about: a replay
//!   of its oldest records would create an index retention already deleted.
//!
//! Nothing here touches the data path; deleting an index never loses a line the transfer
//! still has to write (its records are older than the retention).

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::config::retention::Retention;
use crate::config::TransferKafkaConfig;
use crate::es::disk::{NodeDisk, Watermarks};
use crate::es::retention::RetentionRule;
use crate::es::SharedEs;
use crate::kafka::topics::TopicRetention;
use crate::shutdown::Shutdown;

/// How often the nodes' disks are read.
pub const DISK_CHECK_INTERVAL: Duration = Duration::from_secs(30);

/// What the storage upkeep reports.
pub trait StorageEvents: Send + Sync {
    /// The retention in force, said once at start (forever: the disk will fill).
    fn retention_in_force(&self, data: Retention, dead_letters: Retention);
    /// This transfer deleted `index` (due at `due`).
    fn index_deleted(&self, index: &str, due: OffsetDateTime);
    /// A sweep went through (possibly deleting nothing).
    fn sweep_done(&self, deleted: usize);
    /// A sweep failed; it is tried again at the next check.
    fn sweep_failed(&self, error: &str);
    /// `topic`'s records outlive the indices they go to.
    fn topic_outlives_indices(&self, topic: &str, kafka: &TopicRetention, indices: Retention);
    /// The disks as read now.
    fn disks(&self, watermarks: &Watermarks, disks: &[NodeDisk]);
    /// The disks could not be read.
    fn disks_unknown(&self, error: &str);
}

/// The upkeep of one transfer's indices.
pub struct Storage {
    /// Where the indices are.
    pub es: SharedEs,
    /// The transfer's rules: data indices first, then the dead-letter index.
    pub rules: Vec<RetentionRule>,
    /// Time between sweeps.
    pub every: Duration,
    /// Whom to tell.
    pub events: Arc<dyn StorageEvents>,
}

impl Storage {
    /// Sweeps at once and then every `every`, reads the disks every
    /// [`DISK_CHECK_INTERVAL`], and first checks the topics' retention against `kafka`,
    /// until `shutdown`.
    pub async fn run(self, kafka: TransferKafkaConfig, shutdown: Shutdown) {
        let (data, dead_letters) = (
            self.rules
                .first()
                .map_or(Retention::Forever, RetentionRule::keep),
            self.rules
                .get(1)
                .map_or(Retention::Forever, RetentionRule::keep),
        );
        self.events.retention_in_force(data, dead_letters);
        let mut sweep = tokio::time::interval(self.every);
        let mut disks = tokio::time::interval(DISK_CHECK_INTERVAL);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        disks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let topics = self.check_topics(kafka, data);
        tokio::pin!(topics);
        let mut topics_done = false;
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = &mut topics, if !topics_done => topics_done = true,
                _ = sweep.tick() => match self.sweep(OffsetDateTime::now_utc()).await {
                    Ok(deleted) => self.events.sweep_done(deleted),
                    Err(error) => self.events.sweep_failed(&error),
                },
                _ = disks.tick() => match crate::es::disk::read(&self.es.get()).await {
                    Ok((watermarks, nodes)) => self.events.disks(&watermarks, &nodes),
                    Err(error) => self.events.disks_unknown(&error.to_string()),
                },
            }
        }
    }

    /// Deletes the indices due at `now`; returns how many this call deleted.
    pub async fn sweep(&self, now: OffsetDateTime) -> Result<usize, String> {
        let patterns: Vec<String> = self
            .rules
            .iter()
            .flat_map(RetentionRule::patterns)
            .collect();
        if patterns.is_empty() {
            return Ok(0);
        }
        let es = self.es.get();
        let refs: Vec<&str> = patterns.iter().map(String::as_str).collect();
        let names: Vec<String> = es
            .index_stats(&refs)
            .await
            .map_err(|e| format!("listing indices: {e}"))?
            .into_iter()
            .map(|stats| stats.index)
            .collect();
        let mut deleted = 0;
        for rule in &self.rules {
            for name in rule.expired(&names, now) {
                match es.delete_index(name).await {
                    Ok(true) => {
                        deleted += 1;
                        let due = rule.delete_at(name).unwrap_or(now);
                        self.events.index_deleted(name, due);
                    }
                    Ok(false) => {}
                    Err(error) => return Err(format!("deleting index {name}: {error}")),
                }
            }
        }
        Ok(deleted)
    }

    /// Warns about each topic whose records Kafka keeps longer than the data indices are.
    async fn check_topics(&self, kafka: TransferKafkaConfig, data: Retention) {
        let Retention::For(keep) = data else {
            return;
        };
        let answers = match crate::kafka::topics::retention(&kafka, Duration::from_secs(10)).await {
            Ok(answers) => answers,
            Err(error) => {
                tracing::debug!(%error, "cannot read the topics' retention.ms");
                return;
            }
        };
        for (topic, kept) in answers {
            let outlives = match &kept {
                TopicRetention::Unlimited => true,
                TopicRetention::For(kafka_keeps) => *kafka_keeps > keep,
                TopicRetention::Unknown(_) => false,
            };
            if outlives {
                self.events.topic_outlives_indices(&topic, &kept, data);
            }
        }
    }
}
