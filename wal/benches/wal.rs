//! Throughput of the WAL's write path: append, fsync, ack.
//!
//! - `append_flush_ack/256KiB`: one 256 KiB payload per append, flushed and acked at once
//!   (the latency-bound case: one fsync per record).
//! - `group_commit/16x64KiB`: sixteen 64 KiB appends sharing one flush (group commit),
//!   acked after the flush.
//!
//! Throughput is in payload bytes.
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// criterion_group! defines an undocumented public function.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use logship_wal::{Wal, WalOptions};

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(dir.path(), WalOptions::default()).expect("open WAL");

    let big = payload(256 * 1024);
    let mut g = c.benchmark_group("append_flush_ack");
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("256KiB", |b| {
        b.iter(|| {
            let seqs = wal.append(&[&big], &[]).expect("append");
            wal.flush().expect("flush");
            wal.ack(&seqs).expect("ack");
        })
    });
    g.finish();

    let chunk = payload(64 * 1024);
    let mut g = c.benchmark_group("group_commit");
    g.throughput(Throughput::Bytes(16 * chunk.len() as u64));
    g.bench_function("16x64KiB", |b| {
        b.iter_batched(
            Vec::new,
            |mut seqs| {
                for _ in 0..16 {
                    seqs.extend(wal.append(&[&chunk], &[]).expect("append"));
                }
                wal.flush().expect("flush");
                // Ack so the WAL does not grow without bound; not flushed (rides along
                // with the next iteration's flush, as in production).
                wal.ack(&seqs).expect("ack");
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
