//! CPU cost of the agent's hot path, per stage: framing a read into lines, and turning a chunk
//! into Kafka record values (NDJSON of each line's JSON with its deterministic id), and a WAL
//! chunk's encoding (LZ4) and decoding; and the transfer's document preparation without and
//! with JSON parsing. The end-to-end figure (files →
//! Kafka with durability on) comes from the bench script; see docs/bench.md.
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// criterion_group! defines an undocumented public function.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use logship::agent::chunk::Chunk;
use logship::agent::framing::frame;
use logship::agent::shipper::encode_records;
use logship::config::index_name::IndexNameTemplate;
use logship::config::parse::ParseConfig;
use logship::record::{line_id, LineRecord, RECORD_TARGET_BYTES};
use logship::transfer::batch::Batch;
use logship::transfer::document::{Documents, KafkaRecord};
use logship::transfer::watermark::Watermarks;

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

/// The transfer's CPU per document: an agent record of 1,000 JSON lines (logship records whose
/// `message` is a service's JSON log line) turned into `_bulk` lines, without and with a
/// `[[parse]]` rule (`format = "json"` and an RFC 3339 `timestamp`).
fn transfer_documents(c: &mut Criterion) {
    let mut value = Vec::new();
    for n in 0..1000u64 {
        let message = format!(
            r#"{{"ts":"2026-11-23T10:00:{:02}.{:03}Z","level":"{}","logger":"com.example.checkout.PaymentService","user_id":{},"path":"/api/v1/orders/{}","status":{},"duration_ms":{},"msg":"order {} processed"}}"#,
            n % 60,
            n % 1000,
            if n % 10 == 0 { "error" } else { "info" },
            n * 7 % 10_000,
            n * 31 % 100_000,
            if n % 10 == 0 { 500 } else { 200 },
            n % 250,
            n
        );
        let record = LineRecord {
            id: line_id("web-01", "0123456789abcdef", n * 200).into(),
            host: "web-01".into(),
            file: "/var/log/checkout/app.json".into(),
            file_id: "0123456789abcdef".into(),
            offset: n * 200,
            message: message.into(),
            timestamp: "2026-11-23T10:00:30.123456789Z".into(),
            invalid_utf8: false,
            split: false,
            partial: false,
            lines: 1,
            fields: Default::default(),
        };
        if n > 0 {
            value.push(b'\n');
        }
        value.extend_from_slice(&serde_json::to_vec(&record).unwrap());
    }
    let record = KafkaRecord {
        topic: "checkout",
        partition: 0,
        offset: 1,
        payload: Some(&value),
        timestamp_ms: Some(1_795_000_000_000),
        current_format: false,
    };
    let template = || IndexNameTemplate::parse("{topic}-%Y.%m.%d").unwrap();
    let rule: ParseConfig = toml::from_str(
        "topics = [\"checkout\"]\nformat = \"json\"\n\
         timestamp = { field = \"ts\", format = \"rfc3339\" }",
    )
    .unwrap();
    let mut group = c.benchmark_group("transfer_documents");
    group.throughput(Throughput::Elements(1000));
    for (name, rules) in [("plain_1000", vec![]), ("json_parsed_1000", vec![rule])] {
        let documents = Documents::new(template(), rules);
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut marks = Watermarks::new();
                let epoch = marks.assign("checkout", 0);
                let mut batch = Batch::new();
                batch
                    .push(&record, "checkout".into(), epoch, &documents)
                    .documents
                    + batch.body.len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, framing, encoding, transfer_documents);
criterion_main!(benches);
