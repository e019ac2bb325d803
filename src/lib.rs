//! # logship
//!
//! A log shipper whose promise is that no line is lost and none is indexed twice.
//!
//! The data path, top to bottom:
//!
//! 1. [`agent`] (one per host) discovers files by glob, identifies each by device, inode, birth
//!    time and a fingerprint of its first line ([`agent::identity`]), reads complete lines in
//!    chunks ([`agent::framing`]), and writes each chunk together with the file's new checkpoint
//!    in one atomic, fsynced step to its write-ahead log (the [`logship_wal`] crate on sled).
//! 2. [`kafka`] sends the lines of a WAL chunk as Kafka records of the contract in [`record`]
//!    (NDJSON of [`record::LineRecord`]s, several lines a record, with a format version header)
//!    with an idempotent producer and `acks=all`; the chunk leaves the WAL only when Kafka
//!    acknowledged every record of it.
//! 3. [`transfer`] consumes the topics in a consumer group and bulk-indexes into Elasticsearch
//!    ([`es`]) with `create` and the line's deterministic id, committing offsets only up to the
//!    contiguous prefix Elasticsearch acknowledged. Records marked as host metrics
//!    ([`host_metrics`], sampled by the agent) are written to InfluxDB ([`influx`]) instead,
//!    under the same commit rule.
//! 4. [`console`] serves the web page and JSON API people search their logs with.
//!
//! Optionally, [`etcd`] adds collect entries from a central store while the agent runs.
//! [`telemetry`] serves what both roles tell operators: metrics, health, status.
//! [`backoff`] paces every retry and [`sync`] holds the one policy for poisoned locks. The
//! command line is the binary's own (`src/cli.rs`); the library takes plain values.
//!
//! `docs/design.md` explains every durability decision.

// Lints: the workspace's `[lints]` table (Cargo.toml) — missing docs, `unwrap`/`expect`/`panic`
// outside tests — for the library, the binary, benches and (repeated there) fuzz targets.
// These docs are the developers' (`cargo doc --document-private-items`): they link inward.
#![allow(rustdoc::private_intra_doc_links)]

pub mod agent;
pub mod alert;
pub mod backoff;
pub mod config;
pub mod console;
pub mod errors;
pub mod es;
pub mod etcd;
pub mod host_metrics;
pub mod influx;
pub mod kafka;
pub mod listener;
pub mod record;
pub mod reload;
pub mod shutdown;
pub mod sync;
pub mod telemetry;
pub mod transfer;
