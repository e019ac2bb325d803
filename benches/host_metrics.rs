//! The cost of one round of host metrics: sampling `/proc` and `statvfs` and encoding the
//! points as line protocol (what the agent's sampler does every `interval_ms`, before the WAL
//! append). Its share of a core at the default 10 s interval is this time / 10 s
//! (docs/bench.md).
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// criterion_group! defines an undocumented public function.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use logship::host_metrics::Sampler;

fn one_round(c: &mut Criterion) {
    let mut sampler = Sampler::new("bench-host");
    sampler.sample(0);
    let mut time = 1;
    c.bench_function("host_metrics_round", |b| {
        b.iter(|| {
            time += 1;
            let sample = sampler.sample(time);
            std::hint::black_box(sample.to_line_protocol())
        })
    });
}

criterion_group!(benches, one_round);
criterion_main!(benches);
