#!/usr/bin/env python3
"""What this machine allows whatever the shipper: the ceilings of two ratios docs/bench.md sets
targets for, measured on the services alone, without logship in the loop.

kafka  librdkafka (kcat) producing the same JSON line records (the agent's record for one line)
       one per Kafka record, and ~64 KiB of them per record as the agent's batched records, with
       the agent's producer settings (idempotent, acks=all, lz4, linger.ms 5, batch.size 1 MB),
       4 keys as 4 files would give; wall time until every record was acknowledged. The ratio
       single/batched bounds `max_lines_per_record = 1` against the batched default.
es     the documents the transfer writes for JSON lines of a service's log (the corpus of
       `BENCH_PARTS=parse scripts/bench.sh`) without parsing (the line in `message`) and with
       `[[parse]] format = "json"` + a timestamp (8 more fields, `event.ingested`), bulk-indexed
       straight into Elasticsearch (4 bulks of 2,000 documents at a time, as bench.sh's transfer)
       into a fresh index mapped as the transfer's template maps it. The ratio bounds what
       parsing can cost end to end when Elasticsearch shares the machine.

Each pair runs both sides in turn (A B A B ...), so drift hits both. Prints a Markdown table
per part and the median ratio.

Usage: scripts/bench-floor.py [kafka] [es]   (default both)
Environment: PAIRS (5), LOGSHIP_KAFKA (127.0.0.1:9092), LOGSHIP_ES (http://127.0.0.1:9200),
KAFKA_LINES (1,000,000), ES_DOCS (200,000), WORK (a temporary directory).
"""

import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

PAIRS = int(os.environ.get("PAIRS", "5"))
BROKER = os.environ.get("LOGSHIP_KAFKA", "127.0.0.1:9092")
ES = urllib.parse.urlparse(os.environ.get("LOGSHIP_ES", "http://127.0.0.1:9200"))
KAFKA_LINES = int(os.environ.get("KAFKA_LINES", "1000000"))
ES_DOCS = int(os.environ.get("ES_DOCS", "200000"))
WORK = os.environ.get("WORK") or tempfile.mkdtemp(prefix="bench-floor-")
os.makedirs(WORK, exist_ok=True)
RECORD_TARGET_BYTES = 64 * 1024
STAMP = str(int(time.time()))


def say(text):
    print(f"bench-floor: {text}", file=sys.stderr, flush=True)


def median_ratio(pairs):
    return statistics.median(a / b for a, b in pairs)


# ------------------------------------------------------------------------------------ kafka


def kafka_corpus():
    """The agent's JSON record of each line, one per line (single) and ~64 KiB per record."""
    rng = random.Random(7)
    single = os.path.join(WORK, "kafka-single.txt")
    batched = os.path.join(WORK, "kafka-batched.txt")
    methods = ["GET", "GET", "GET", "POST", "PUT", "DELETE"]
    with open(single, "w") as one, open(batched, "w") as many:
        group, size, offsets = [], 0, [0, 0, 0, 0]
        for n in range(KAFKA_LINES):
            key = f"file-{n % 4}"
            query = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789&=%") for _ in range(120))
            line = (
                f'10.1.{rng.randrange(256)}.{rng.randrange(256)} - - [23/Nov/2026:00:00:{n % 60:02d} +0000] '
                f'"{rng.choice(methods)} /api/v1/items/{rng.randrange(100000)}?{query} HTTP/1.1" '
                f'{rng.choice([200, 200, 200, 404, 500])} {rng.randrange(100000)} "-" "curl/8.5.0"'
            )
            record = json.dumps(
                {
                    "id": f"{n:022d}",
                    "host": "bench-host",
                    "file": f"/var/log/bench/{key}.log",
                    "file_id": "0123456789abcdef",
                    "offset": offsets[n % 4],
                    "message": line,
                    "@timestamp": "2026-12-01T10:00:00.123456789Z",
                },
                separators=(",", ":"),
            )
            offsets[n % 4] += len(line) + 1
            one.write(f"{key}\t{record}\n")
            group.append(record)
            size += len(record) + 1
            # One batched record per ~64 KiB, keyed like the lines it holds (4 files in turn).
            if size >= RECORD_TARGET_BYTES:
                many.write(f"file-{len(group) % 4}\t" + "\n".join(group) + "\x1e")
                group, size = [], 0
        if group:
            many.write("file-0\t" + "\n".join(group) + "\x1e")
    return single, batched


def kcat(path, delimiter):
    topic = f"bench-floor-{STAMP}-{time.time_ns()}"
    args = [
        "kcat", "-P", "-b", BROKER, "-t", topic, "-K", "\t", "-D", delimiter, "-l", path,
        "-X", "compression.type=lz4", "-X", "linger.ms=5", "-X", "batch.size=1000000",
        "-X", "queue.buffering.max.kbytes=32768", "-X", "queue.buffering.max.messages=500000",
        "-X", "enable.idempotence=true", "-X", "acks=all",
    ]
    start = time.monotonic()
    subprocess.run(args, check=True)
    return time.monotonic() - start


def kafka():
    say(f"kafka: writing {KAFKA_LINES:,} records to {WORK}")
    single, batched = kafka_corpus()
    kcat(batched, "\\x1e")  # warm-up: topic creation, page cache
    pairs = []
    rows = []
    for n in range(PAIRS):
        one = kcat(single, "\\n")
        many = kcat(batched, "\\x1e")
        say(f"kafka pair {n + 1}: one line per record {one:.2f} s, batched {many:.2f} s")
        pairs.append((KAFKA_LINES / one, KAFKA_LINES / many))
        rows.append(f"| {n + 1} | {KAFKA_LINES / one:,.0f} | {KAFKA_LINES / many:,.0f} | {many / one:.2f} |")
    print("### Kafka alone: one line per record against ~64 KiB records (kcat)\n")
    print(f"{KAFKA_LINES:,} records of one line, as the agent writes each line, produced by kcat with the agent's producer settings, one line per Kafka record against ~64 KiB records of lines.\n")
    print("| pair | lines/s, one per record | lines/s, batched | ratio |")
    print("|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nMedian ratio one-per-record/batched: {median_ratio(pairs):.2f}\n")


# --------------------------------------------------------------------------------------- es


def es_corpus():
    """Bulk bodies (2,000 documents each) of the plain and the parsed document shapes."""
    rng = random.Random(97)
    levels = "info info info info info info info warn error debug".split()
    services = "checkout payment inventory cart users".split()
    shapes = {"plain": [], "json": []}
    for n in range(ES_DOCS):
        s = n // 50
        line = (
            '{"ts":"2026-11-23T%02d:%02d:%02d.%03dZ","level":"%s","service":"%s","user_id":%d,'
            '"path":"/api/v1/orders/%d","status":%d,"duration_ms":%d,"msg":"order %d processed"}'
            % ((s // 3600) % 24, (s // 60) % 60, s % 60, rng.randrange(1000), rng.choice(levels),
               rng.choice(services), rng.randrange(100000), rng.randrange(1000000),
               500 if rng.random() < 0.05 else 200, rng.randrange(900), n)
        )
        read_time = "2026-12-01T10:%02d:%02d.%06d000Z" % ((n // 10000) % 60, (n // 100) % 60, n % 1000000)
        doc = {
            "host": "bench-host",
            "file": "/var/log/bench/app.json.log",
            "file_id": "9f1c2e3d4b5a6978",
            "offset": n * 190,
            "message": line,
            "@timestamp": read_time,
            "topic": "bench-parse-src",
        }
        action = json.dumps({"create": {"_index": "INDEX", "_id": f"{n:022d}"}}, separators=(",", ":"))
        shapes["plain"].append(action + "\n" + json.dumps(doc, separators=(",", ":")))
        fields = json.loads(line)
        doc.update(fields)
        doc["event"] = {"ingested": read_time}
        doc["@timestamp"] = fields["ts"]
        shapes["json"].append(action + "\n" + json.dumps(doc, separators=(",", ":")))
    return {
        shape: ["\n".join(docs[i:i + 2000]) + "\n" for i in range(0, len(docs), 2000)]
        for shape, docs in shapes.items()
    }


def request(method, path, body=None, connection=None):
    conn = connection or http.client.HTTPConnection(ES.hostname, ES.port or 9200)
    headers = {"Content-Type": "application/x-ndjson" if method == "POST" else "application/json"}
    conn.request(method, path, body=body, headers=headers)
    answer = conn.getresponse()
    data = answer.read()
    if connection is None:
        conn.close()
    return answer.status, data


def mapping():
    """As `es::template::data_template` maps the data indices."""
    keyword = {"type": "keyword", "ignore_above": 8191}
    return {
        "dynamic_templates": [{"strings_as_keywords": {"match_mapping_type": "string", "mapping": keyword}}],
        "properties": {
            "message": {"type": "text"},
            "host": keyword, "file": keyword, "file_id": keyword, "topic": keyword,
            "offset": {"type": "long"}, "@timestamp": {"type": "date"},
            "event": {"properties": {"ingested": {"type": "date"}}},
        },
    }


def index(bodies):
    name = f"bench-floor-{STAMP}"
    request("DELETE", f"/{name}")
    status, data = request("PUT", f"/{name}", json.dumps({
        "settings": {"number_of_shards": 1, "number_of_replicas": 0}, "mappings": mapping()}))
    if status != 200:
        sys.exit(f"bench-floor: cannot create {name}: {data[:300]!r}")
    bodies = [body.replace('"_index":"INDEX"', f'"_index":"{name}"') for body in bodies]
    queue = list(reversed(bodies))
    lock = threading.Lock()
    failed = []

    def worker():
        conn = http.client.HTTPConnection(ES.hostname, ES.port or 9200)
        while True:
            with lock:
                if not queue:
                    return
                body = queue.pop()
            status, data = request("POST", "/_bulk", body.encode(), conn)
            if status != 200 or b'"errors":true' in data[:200]:
                failed.append(data[:300])
                return

    start = time.monotonic()
    workers = [threading.Thread(target=worker) for _ in range(4)]
    for worker_thread in workers:
        worker_thread.start()
    for worker_thread in workers:
        worker_thread.join()
    elapsed = time.monotonic() - start
    request("DELETE", f"/{name}")
    if failed:
        sys.exit(f"bench-floor: a bulk failed: {failed[0]!r}")
    return ES_DOCS / elapsed


def es():
    say(f"es: building {ES_DOCS:,} documents of each shape")
    bodies = es_corpus()
    index(bodies["plain"])  # warm-up: the JIT, the page cache
    index(bodies["json"])
    pairs = []
    rows = []
    for n in range(PAIRS):
        plain = index(bodies["plain"])
        parsed = index(bodies["json"])
        say(f"es pair {n + 1}: plain {plain:,.0f} docs/s, parsed {parsed:,.0f} docs/s")
        pairs.append((parsed, plain))
        rows.append(f"| {n + 1} | {plain:,.0f} | {parsed:,.0f} | {parsed / plain:.2f} |")
    print("### Elasticsearch alone: the parsed documents against the plain ones (`_bulk`)\n")
    print(f"{ES_DOCS:,} documents as the transfer writes them for the JSON lines of the parse benchmark, without parsing and with `format = \"json\"` + timestamp, bulk-indexed straight into a fresh index (4 bulks of 2,000 at a time).\n")
    print("| pair | docs/s, plain | docs/s, parsed | ratio |")
    print("|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nMedian ratio parsed/plain: {median_ratio(pairs):.2f}\n")


def main():
    parts = sys.argv[1:] or ["kafka", "es"]
    for part in parts:
        {"kafka": kafka, "es": es}[part]()


if __name__ == "__main__":
    main()
