#!/usr/bin/env python3
"""Write-to-searchable latency probe for scripts/bench.sh (standard library only).

Appends lines at a fixed rate to one log file (which a running `logship agent` follows, with a
`logship transfer` indexing its topic) and polls Elasticsearch to see when each line becomes
searchable. Every line carries its sequence number and its write time (ns since the epoch):

    <write-ns> seq=<n> GET /latency/<n> HTTP/1.1 200

The poller searches the index every --poll-ms for documents at or after the lowest byte offset
not yet seen (sorted by offset) and records, for each line seen for the first time, the time the
search request was sent. A line is therefore reported visible at most one poll interval late,
never early: the resolution of the figures is --poll-ms. Latency = seen time - write time.
The document's `@timestamp` (when the agent read the line) splits it: write -> read by the agent,
and read -> searchable (Kafka, transfer, bulk, refresh).

Prints one line: `latency: lines=N seen=N p50_ms=.. p90_ms=.. p99_ms=.. max_ms=..
read_p50_ms=.. read_p99_ms=..` (the read_ figures: write -> read by the agent).
"""

import argparse
import datetime
import json
import os
import sys
import threading
import time
import urllib.request


def search(es, index, low_offset):
    """The (message, @timestamp) of up to 10000 documents at or after `low_offset`, by offset."""
    body = json.dumps({
        "size": 10000,
        "track_total_hits": False,
        "query": {"range": {"offset": {"gte": low_offset}}},
        "sort": [{"offset": "asc"}],
        "_source": ["message", "@timestamp"],
    }).encode()
    request = urllib.request.Request(
        f"{es}/{index}/_search", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            hits = json.load(response)["hits"]["hits"]
    except (OSError, ValueError, KeyError):
        return []  # index not there yet, or a transient error: the next poll retries
    return [(h["_source"]["message"], h["_source"].get("@timestamp")) for h in hits]


def epoch_ns(rfc3339):
    """Nanoseconds since the epoch of an RFC 3339 time, or None."""
    try:
        return int(datetime.datetime.fromisoformat(rfc3339).timestamp() * 1e9)
    except (TypeError, ValueError):
        return None


def seq_of(message):
    """The sequence number of a probe line, or None."""
    parts = message.split(" ", 2)
    if len(parts) >= 2 and parts[1].startswith("seq="):
        try:
            return int(parts[1][4:])
        except ValueError:
            return None
    return None


def percentile(sorted_values, p):
    """Nearest-rank percentile of a sorted list."""
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", required=True)
    parser.add_argument("--es", required=True)
    parser.add_argument("--index", required=True)
    parser.add_argument("--rate", type=int, default=1000, help="lines per second")
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--poll-ms", type=int, default=100)
    parser.add_argument("--warmup-timeout", type=int, default=180)
    parser.add_argument("--drain-timeout", type=int, default=120)
    args = parser.parse_args()

    total = args.rate * args.seconds
    offsets = [0] * total  # byte offset of each probe line, known once written
    written = [None] * total  # write time (ns)
    seen = {}  # seq -> time (ns) of the search that first returned it
    read = {}  # seq -> the agent's read time (ns), from the document's @timestamp
    out = open(args.file, "ab", buffering=0)

    # Warm-up: one line (seq=-1) that must be searchable before timing starts, so that the agent
    # follows the file and the transfer has joined its group and put its templates.
    start_offset = os.fstat(out.fileno()).st_size
    out.write(f"{time.time_ns()} seq=-1 GET /latency/warmup HTTP/1.1 200\n".encode())
    deadline = time.monotonic() + args.warmup_timeout
    while not any(seq_of(m) == -1 for m, _ in search(args.es, args.index, start_offset)):
        if time.monotonic() > deadline:
            print("latency: the warm-up line never became searchable", file=sys.stderr)
            return 1
        time.sleep(0.2)
    base = os.fstat(out.fileno()).st_size

    def writer():
        position = base
        t0 = time.monotonic()
        for n in range(total):
            delay = t0 + n / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = time.time_ns()
            line = f"{now} seq={n} GET /latency/{n} HTTP/1.1 200\n".encode()
            offsets[n] = position
            written[n] = now
            out.write(line)
            position += len(line)

    thread = threading.Thread(target=writer)
    thread.start()
    lowest = 0  # lowest seq not yet seen
    drain_deadline = None
    while lowest < total:
        sent = time.time_ns()
        if written[lowest] is not None:
            for message, timestamp in search(args.es, args.index, offsets[lowest]):
                n = seq_of(message)
                if n is not None and 0 <= n < total and n not in seen:
                    seen[n] = sent
                    read[n] = epoch_ns(timestamp)
            while lowest < total and lowest in seen:
                lowest += 1
        if not thread.is_alive():
            if drain_deadline is None:
                drain_deadline = time.monotonic() + args.drain_timeout
            elif time.monotonic() > drain_deadline:
                break
        time.sleep(max(0.0, args.poll_ms / 1000 - (time.time_ns() - sent) / 1e9))
    thread.join()
    out.close()

    latencies = sorted((seen[n] - written[n]) / 1e6 for n in seen)
    if not latencies:
        print(f"latency: lines={total} seen=0")
        return 1
    reading = sorted((read[n] - written[n]) / 1e6 for n in seen if read[n] is not None)
    print("latency: lines={} seen={} p50_ms={:.0f} p90_ms={:.0f} p99_ms={:.0f} max_ms={:.0f} "
          "read_p50_ms={:.0f} read_p99_ms={:.0f}".format(
              total, len(latencies), percentile(latencies, 50), percentile(latencies, 90),
              percentile(latencies, 99), latencies[-1],
              percentile(reading, 50) if reading else float("nan"),
              percentile(reading, 99) if reading else float("nan")))
    return 0 if len(latencies) == total else 1


if __name__ == "__main__":
    sys.exit(main())
