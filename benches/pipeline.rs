//! CPU cost of the agent's hot path, per stage: framing a read into lines, and turning a chunk
//! into Kafka record values (NDJSON of each line's JSON with its deterministic id), and a WAL
//! chunk's encoding (LZ4) and decoding. The end-to-end figure (files →
//! Kafka with durability on) comes from the bench script; see docs/bench.md.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use logship::agent::chunk::Chunk;
use logship::agent::framing::frame;
use logship::agent::shipper::encode_records;
use logship::record::RECORD_TARGET_BYTES;

/// ~100-byte access-log lines, deterministic.
fn corpus(bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 200);
    let mut i = 0u64;
    while out.len() < bytes {
        let line = format!(
            "10.0.{}.{} - - [23/Nov/2026:10:00:{:02} +0000] \"GET /api/v1/items/{} HTTP/1.1\" 200 {}\n",
            i % 256,
            (i * 7) % 256,
            i % 60,
            i * 31 % 100_000,
            512 + i % 2048
        );
        out.extend_from_slice(line.as_bytes());
        i += 1;
    }
    out
}

fn framing(c: &mut Criterion) {
    let data = corpus(256 * 1024);
    let mut group = c.benchmark_group("framing");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("frame_256KiB", |b| {
        b.iter(|| frame(std::hint::black_box(&data), 1024 * 1024, false, false))
    });
    group.finish();
}

fn encoding(c: &mut Criterion) {
    let data = corpus(256 * 1024);
    let framed = frame(&data, 1024 * 1024, false, false);
    let chunk = Chunk {
        stream: "0123456789abcdef0123456789abcdef".into(),
        path: "/var/log/nginx/access.log".into(),
        topic: "web_log".into(),
        start_offset: 1 << 30,
        read_at: "2026-11-23T10:00:00.123456789Z".into(),
        starts_mid_line: false,
        cuts: framed.cuts.clone(),
        partial_end: false,
        data: data[..framed.len].to_vec(),
        events: vec![],
        event_cuts: vec![],
        starts_in_event: false,
        fields: Vec::new(),
    };
    let lines = chunk.piece_count() as u64;
    let mut group = c.benchmark_group("encoding");
    group.throughput(Throughput::Elements(lines));
    group.bench_function("json_records_of_256KiB_chunk", |b| {
        let mut buf = Vec::with_capacity(1024 * 1024);
        // As the shipper does: every line's JSON, grouped into NDJSON Kafka records.
        b.iter(|| {
            encode_records(&mut buf, "web-01", &chunk, 1000, RECORD_TARGET_BYTES).lines + buf.len()
        })
    });
    group.throughput(Throughput::Bytes(chunk.data.len() as u64));
    group.bench_function("chunk_encode_decode_256KiB", |b| {
        b.iter_batched(
            || chunk.clone(),
            |chunk| Chunk::decode(&chunk.encode().unwrap()).map(|c| c.data.len()),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, framing, encoding);
criterion_main!(benches);
