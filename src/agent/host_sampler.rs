//! The agent's host metrics thread (`[host_metrics]`): every `interval_ms` it samples the host
//! ([`crate::host_metrics`]) and appends the round to the WAL as one record
//! ([`MetricsRecord`]), which the shipper sends like any chunk (with the Kafka header
//! `logship-kind: metrics`) and removes once Kafka acknowledged it.
//!
//! Durability: a round is appended and then the WAL is flushed (fsync) before it counts as
//! committed (`logship_agent_metrics_samples_total`). Samples never take room from log lines:
//! while the WAL is full, each new round first removes the oldest round this sampler wrote
//! that is still waiting (counted in `logship_agent_metrics_samples_dropped_total`); lines are
//! never removed for samples. A round whose sources partly fail is still written with what
//! could be read (the failures are reported, at most once a minute).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use logship_wal::{Seq, Wal, WalError};

use super::chunk::MetricsRecord;
use super::events::AgentEvents;
use super::shipper::ShipQueue;
use crate::config::HostMetricsConfig;
use crate::host_metrics::Sampler;
use crate::shutdown::Shutdown;

/// How often sampling problems are reported at most.
const PROBLEM_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// The host metrics thread's state.
pub struct HostSampler {
    /// The agent's WAL.
    pub wal: Wal,
    /// Where new seqs are handed to the shipper.
    pub queue: ShipQueue,
    /// The host tag.
    pub host: String,
    /// Interval and topic.
    pub config: HostMetricsConfig,
    /// Told about rounds written, dropped and partly failed.
    pub events: Arc<dyn AgentEvents>,
    /// Each round's sampling time holds `acked_through` until Kafka has it.
    pub acked_through: Arc<super::acked::AckedThrough>,
}

/// Why the sampler stopped.
#[derive(Debug, thiserror::Error)]
pub enum SamplerError {
    /// The WAL failed.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// A round could not be encoded.
    #[error("cannot encode a metrics record: {0}")]
    Encode(#[from] bincode::Error),
}

impl HostSampler {
    /// Samples until `shutdown`.
    pub fn run(self, shutdown: &Shutdown) -> Result<(), SamplerError> {
        let interval = self.config.interval_ms.get();
        let mut sampler = Sampler::new(&self.host);
        // The rounds this sampler wrote that may still be in the WAL, oldest first.
        let mut written: VecDeque<Seq> = VecDeque::new();
        let mut last_problem_log: Option<Instant> = None;
        // A first reading, so the first round written has CPU usage.
        sampler.sample(now_ns());
        let mut next = Instant::now() + interval;
        self.events.metrics_sampling(&self.config.topic, interval);
        loop {
            if shutdown.wait_timeout(next.saturating_duration_since(Instant::now())) {
                return Ok(());
            }
            next += interval;
            if next < Instant::now() {
                // Fell behind (a stalled disk): skip the missed ticks rather than burst.
                next = Instant::now() + interval;
            }
            let time_ns = self.acked_through.begin_sample();
            let sample = sampler.sample(time_ns);
            if !sample.problems.is_empty()
                && last_problem_log.is_none_or(|at| at.elapsed() >= PROBLEM_LOG_INTERVAL)
            {
                last_problem_log = Some(Instant::now());
                self.events.metrics_unreadable(&sample.problems);
            }
            let record = MetricsRecord {
                topic: self.config.topic.clone(),
                time_ns,
                lines: sample.to_line_protocol().into_bytes(),
            };
            self.write_round(&record, &mut written)?;
        }
    }

    /// Appends `record` (first removing this sampler's oldest waiting rounds while the WAL is
    /// full), flushes, and hands the seq to the shipper.
    fn write_round(
        &self,
        record: &MetricsRecord,
        written: &mut VecDeque<Seq>,
    ) -> Result<(), SamplerError> {
        let mut dropped = 0;
        while self.wal.is_full() {
            let Some(oldest) = written.pop_front() else {
                break;
            };
            if self.wal.get(oldest)?.is_some() {
                self.wal.ack(&[oldest])?;
                self.acked_through.acknowledged(&[oldest]);
                dropped += 1;
            }
        }
        if dropped > 0 {
            self.events.metrics_dropped(dropped);
        }
        let seqs = self.wal.append(&[&record.encode()?], &[])?;
        self.wal.flush()?;
        self.acked_through.end_sample(&seqs, record.time_ns);
        self.events.metrics_committed(seqs.len() as u64);
        self.queue.push(&seqs);
        written.extend(seqs);
        // Remember a bounded number of rounds (older ones are long delivered or dropped).
        while written.len() > 1024 {
            written.pop_front();
        }
        Ok(())
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::chunk::{Chunk, Payload};
    use logship_wal::{Replayed, WalOptions};

    #[test]
    fn a_full_wal_loses_the_oldest_rounds_and_never_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), WalOptions::default().max_bytes(4096)).unwrap();
        let events: Arc<dyn AgentEvents> = Arc::new(crate::agent::report::Reported::new(Arc::new(
            crate::telemetry::Health::default(),
        )));
        let sampler = HostSampler {
            wal: wal.clone(),
            queue: ShipQueue::new(),
            host: "h".into(),
            config: HostMetricsConfig {
                interval_ms: crate::config::Millis::new(1000),
                topic: "m".into(),
            },
            events,
            acked_through: Arc::default(),
        };
        let round = |n: u8| MetricsRecord {
            topic: "m".into(),
            time_ns: i64::from(n),
            lines: vec![b'x'; 1500],
        };
        let mut written = VecDeque::new();
        sampler.write_round(&round(1), &mut written).unwrap();
        // Lines fill the WAL past its bound.
        // Incompressible bytes (the WAL stores chunks LZ4-compressed).
        let mut state = 0x2545_f491_u32;
        let data: Vec<u8> = (0..3000)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 24) as u8
            })
            .collect();
        let chunk = Chunk {
            stream: "s".into(),
            path: "/var/log/a.log".into(),
            topic: "t".into(),
            start_offset: 0,
            read_at: "2026-12-01T00:00:00Z".into(),
            starts_mid_line: false,
            cuts: Vec::new(),
            partial_end: false,
            data,
            events: Vec::new(),
            event_cuts: Vec::new(),
            starts_in_event: false,
            fields: Vec::new(),
        };
        wal.append(&[&chunk.encode().unwrap()], &[]).unwrap();
        assert!(wal.is_full());
        sampler.write_round(&round(2), &mut written).unwrap();
        sampler.write_round(&round(3), &mut written).unwrap();
        let kept: Vec<Payload> = wal
            .replay()
            .map(|item| match item.unwrap() {
                Replayed::Record(entry) => Payload::decode(&entry.payload).unwrap(),
                other => panic!("{other:?}"),
            })
            .collect();
        let lines = kept
            .iter()
            .filter(|p| matches!(p, Payload::Lines(_)))
            .count();
        let rounds: Vec<i64> = kept
            .iter()
            .filter_map(|p| match p {
                Payload::Metrics(m) => Some(m.time_ns),
                Payload::Lines(_) => None,
            })
            .collect();
        assert_eq!(lines, 1, "the lines stay");
        assert_eq!(rounds, [3], "the oldest rounds made room for the newest");
        assert_eq!(
            sampler.acked_through.now(),
            3,
            "a dropped round no longer holds acked_through; the kept one does"
        );
    }
}
