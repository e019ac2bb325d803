//! How far every line is indexed: the time `through` such that every line an agent that counts
//! read before it is acknowledged by Kafka, consumed and committed by the transfer (so indexed
//! by Elasticsearch), and refreshed. docs/design.md ("Alerts") has the argument; in short:
//!
//! 1. agents: `A` = the least `acked_through` of every agent that counts — every host in the
//!    registry, or seen in it in the last 24 h, or named by a collect entry. A host gone from
//!    the registry keeps the last value it published (a SIGKILLed agent still holds lines in
//!    its WAL); a host that never published one (an older agent) holds `A` at nothing;
//! 2. Kafka: then the end offsets of every partition of the transfer's topics are read; every
//!    line read before `A` is below them. Once the group's committed offsets reach them, every
//!    such line is indexed (the transfer commits only what Elasticsearch acknowledged);
//! 3. Elasticsearch: then the indices are refreshed, and `through = A`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::kafka::group::PartitionPosition;

/// How long a host that left the registry still counts.
pub const SEEN_FOR_MS: i64 = 24 * 3_600_000;

/// What the evaluator remembers of a host (kept in etcd with its state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    /// When it was last in the registry (ms).
    pub last_seen: i64,
    /// The last `acked_through` it published (ms), if any.
    pub acked_through: Option<i64>,
}

/// One host's `acked_through` now: in the registry with a value, in the registry without one
/// (an older agent), or not in it.
#[derive(Debug, Clone, PartialEq)]
pub enum Published {
    /// Registered, with `acked_through` (ms).
    At(i64),
    /// Registered without `acked_through`.
    Never,
}

/// The agents' side: which hosts count and how far each is acknowledged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Agents {
    /// Every host seen in the registry.
    pub seen: BTreeMap<String, Seen>,
}

impl Agents {
    /// Takes in the registry now (`registry`: host → what it published) and the hosts with
    /// collect entries; returns `A` (ms; `i64::MIN` when a host holds it at nothing) and the
    /// hosts holding it below `below` (for naming the hosts that held a window).
    pub fn through(
        &mut self,
        now_ms: i64,
        registry: &BTreeMap<String, Published>,
        collect_hosts: &[String],
    ) -> i64 {
        for (host, published) in registry {
            let seen = self.seen.entry(host.clone()).or_insert(Seen {
                last_seen: now_ms,
                acked_through: None,
            });
            seen.last_seen = now_ms;
            seen.acked_through = match published {
                At(t) => Some(seen.acked_through.map_or(*t, |before| before.max(*t))),
                Published::Never => None,
            };
        }
        self.seen
            .retain(|host, s| now_ms - s.last_seen <= SEEN_FOR_MS || collect_hosts.contains(host));
        let mut through = i64::MAX;
        for (host, seen) in &self.seen {
            let _ = host;
            through = through.min(seen.acked_through.unwrap_or(i64::MIN));
        }
        for host in collect_hosts {
            if !self.seen.contains_key(host) {
                // Named by a collect entry, never seen: its lines may be anywhere.
                through = i64::MIN;
            }
        }
        if through == i64::MAX {
            // No agent at all: nothing can be missing.
            through = now_ms;
        }
        through
    }

    /// The hosts whose lines before `to_ms` are not all acknowledged (as far as known).
    pub fn behind(&self, to_ms: i64, collect_hosts: &[String]) -> Vec<String> {
        let mut hosts: Vec<String> = self
            .seen
            .iter()
            .filter(|(_, s)| s.acked_through.is_none_or(|t| t < to_ms))
            .map(|(h, _)| h.clone())
            .collect();
        hosts.extend(
            collect_hosts
                .iter()
                .filter(|h| !self.seen.contains_key(*h))
                .cloned(),
        );
        hosts.sort();
        hosts.dedup();
        hosts
    }
}

use Published::At;

/// A barrier under way: the agents' `A` and the end offsets read after it.
#[derive(Debug, Clone)]
pub struct Barrier {
    /// The agents' `A` when the end offsets were read.
    pub agents_through: i64,
    /// `(topic, partition)` → end offset then.
    pub ends: BTreeMap<(String, i32), i64>,
}

impl Barrier {
    /// A barrier at the end offsets of `positions`.
    pub fn new(agents_through: i64, positions: &[PartitionPosition]) -> Barrier {
        Barrier {
            agents_through,
            ends: positions
                .iter()
                .map(|p| ((p.topic.clone(), p.partition), p.end))
                .collect(),
        }
    }

    /// Whether the group has committed through every end offset of the barrier
    /// (`positions`: the group's positions now; a partition missing from them has committed
    /// nothing).
    pub fn reached(&self, positions: &[PartitionPosition]) -> bool {
        self.ends.iter().all(|((topic, partition), end)| {
            positions
                .iter()
                .find(|p| &p.topic == topic && p.partition == *partition)
                .is_some_and(|p| p.committed_through(*end))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_gone_from_the_registry_holds_its_last_value_and_an_old_agent_holds_all() {
        let mut agents = Agents::default();
        let registry: BTreeMap<String, Published> =
            [("a".into(), At(100)), ("b".into(), At(300))].into();
        assert_eq!(agents.through(1_000, &registry, &[]), 100);
        // a is SIGKILLed, its key expires: it still holds at 100.
        let registry: BTreeMap<String, Published> = [("b".into(), At(900))].into();
        assert_eq!(agents.through(2_000, &registry, &[]), 100);
        assert_eq!(agents.behind(200, &[]), vec!["a".to_string()]);
        // Back, and past: released.
        let registry: BTreeMap<String, Published> =
            [("a".into(), At(950)), ("b".into(), At(960))].into();
        assert_eq!(agents.through(3_000, &registry, &[]), 950);
        // A day later without it, a host no longer counts, unless a collect entry names it.
        let registry: BTreeMap<String, Published> = [("b".into(), At(5_000))].into();
        let later = 3_000 + SEEN_FOR_MS + 1;
        assert_eq!(agents.through(later, &registry, &["a".into()]), 950);
        assert_eq!(agents.through(later, &registry, &[]), 5_000);
        let old: BTreeMap<String, Published> = [("old".into(), Published::Never)].into();
        assert_eq!(agents.through(later, &old, &[]), i64::MIN);
        assert_eq!(
            Agents::default().through(7, &BTreeMap::new(), &["new".into()]),
            i64::MIN,
            "named by a collect entry, never seen"
        );
    }

    #[test]
    fn a_barrier_is_reached_when_every_partition_is_committed_through_its_end() {
        let at = |partition, committed, end| PartitionPosition {
            topic: "t".into(),
            partition,
            committed,
            low: 0,
            end,
        };
        let barrier = Barrier::new(5, &[at(0, Some(1), 10), at(1, None, 4)]);
        assert!(!barrier.reached(&[at(0, Some(10), 12), at(1, None, 6)]));
        assert!(
            !barrier.reached(&[at(0, Some(10), 12)]),
            "a partition missing"
        );
        assert!(barrier.reached(&[at(0, Some(10), 12), at(1, Some(4), 6)]));
    }
}
