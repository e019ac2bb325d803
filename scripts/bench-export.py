#!/usr/bin/env python3
"""Export benchmark (standard library only): `logship console`'s `GET /api/export` against
Elasticsearch's own `_search` through a point in time with `search_after`, read by this script.

1. The index: --lines documents shaped as the transfer writes them (`@timestamp`, `host`,
   `file`, `file_id`, `offset`, `message`: access-log lines of about 110 bytes), bulk-loaded
   once and kept (`bench-export-v1-{lines}`), one shard, force-merged.
2. Rate: --runs rounds, each in turn: the console's CSV export, its NDJSON export, and this
   script's own PIT + search_after loop (pages of 1000, `_source` written as NDJSON), each
   read to the end and counted; wall seconds, lines/s and MB/s (bytes of the answer).
3. Memory: the console's VmRSS sampled every 20 ms during its exports (peak), and its VmHWM.
4. Load on others: --searches sequential `/api/search` requests (100 hits, facets), p50 and
   p99 of their wall time, once with nothing else running and once while a CSV export runs.

Prints a markdown report on stdout; progress on stderr.
"""

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.parse

from benchlib import ensure_index, es_request, free_port, proc_mem, say

PAGE = 1000


def access_log(lines):
    """The export index's documents: access-log lines of about 110 bytes, 50 a second from
    2026-01-01, over four streams."""
    def documents():
        rng = random.Random(7)
        paths = ["/", "/api/orders", "/api/cart", "/static/app.js", "/login", "/api/search?q=shoes"]
        start = 1767225600  # 2026-01-01
        offsets = {}
        for n in range(lines):
            stream = f"s{n % 4}"
            offset = offsets.get(stream, 0)
            message = (f'10.0.{rng.randrange(256)}.{rng.randrange(256)} - - [01/Jan/2026:00:00:00 +0000] '
                       f'"GET {rng.choice(paths)} HTTP/1.1" {rng.choice([200, 200, 200, 304, 404, 500])} '
                       f'{rng.randrange(100, 90000)} "-" "bench/1.0" line {n}')
            offsets[stream] = offset + len(message) + 1
            yield f"d{n}", {"@timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start + n // 50)) + f".{(n % 50) * 20:03d}Z",
                            "host": f"web-{n % 4:02d}", "file": f"/var/log/nginx/{stream}.log", "file_id": stream,
                            "offset": offset, "message": message}
    return documents


def read_stream(host, port, path):
    """GETs path and reads it to the end: (bytes, lines, seconds)."""
    start = time.monotonic()
    conn = http.client.HTTPConnection(host, port, timeout=600)
    conn.request("GET", path)
    response = conn.getresponse()
    assert response.status == 200, response.read()[:300]
    size = lines = 0
    while True:
        chunk = response.read(1 << 16)
        if not chunk:
            break
        size += len(chunk)
        lines += chunk.count(b"\n")
    conn.close()
    return size, lines, time.monotonic() - start


def direct_export(es, index):
    """This script's own PIT + search_after export, `_source` as NDJSON: (bytes, lines, seconds)."""
    start = time.monotonic()
    status, pit = es_request(es, "POST", f"/{index}/_pit?keep_alive=2m")
    assert status == 200, pit
    pit_id, after, size, lines = pit["id"], None, 0, 0
    url = urllib.parse.urlparse(es)
    conn = http.client.HTTPConnection(url.hostname, url.port or 9200, timeout=120)
    while True:
        body = {"size": PAGE, "pit": {"id": pit_id, "keep_alive": "2m"}, "track_total_hits": False,
                "sort": [{"@timestamp": "asc"}, {"file_id": "asc"}, {"offset": "asc"}, {"_shard_doc": "asc"}]}
        if after is not None:
            body["search_after"] = after
        conn.request("POST", "/_search", body=json.dumps(body), headers={"Content-Type": "application/json"})
        answer = json.loads(conn.getresponse().read())
        pit_id = answer.get("pit_id", pit_id)
        hits = answer["hits"]["hits"]
        for hit in hits:
            size += len(json.dumps(hit["_source"], separators=(",", ":"))) + 1
        lines += len(hits)
        if len(hits) < PAGE:
            break
        after = hits[-1]["sort"]
    conn.close()
    es_request(es, "DELETE", "/_pit", {"id": pit_id})
    return size, lines, time.monotonic() - start


def searches(port, n):
    times = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for i in range(n):
        q = urllib.parse.quote(["GET", "500", "\"/api/orders\"", "404 AND web-01"][i % 4])
        start = time.monotonic()
        conn.request("GET", f"/api/search?q={q}&from=2025-12-31T00:00:00Z&to=2026-01-02T00:00:00Z&size=100")
        response = conn.getresponse()
        response.read()
        assert response.status == 200
        times.append(time.monotonic() - start)
    conn.close()
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--es", default="http://127.0.0.1:9200")
    p.add_argument("--lines", type=int, default=1_000_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--searches", type=int, default=200)
    args = p.parse_args()
    index = f"bench-export-v1-{args.lines}"
    ensure_index(args.es, index, args.lines, access_log(args.lines))

    work = tempfile.mkdtemp(prefix="bench-export-")
    port = free_port()
    config = os.path.join(work, "console.toml")
    with open(config, "w") as f:
        f.write(f'listen = "127.0.0.1:{port}"\n[elasticsearch]\nurl = "{args.es}"\nindex_pattern = "{index}"\n')
    log = open(os.path.join(work, "console.log"), "w")
    console = subprocess.Popen([args.bin, "console", "--config", config], stdout=subprocess.DEVNULL, stderr=log)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        query = f"/api/export?q=&from=2025-12-31T00:00:00Z&to=2026-01-02T00:00:00Z&fields=@timestamp,host,file,message"
        results = {"console csv": [], "console ndjson": [], "script: PIT + search_after": []}
        peak = [0]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], proc_mem(console.pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        idle = proc_mem(console.pid)
        for run in range(args.runs):
            for name, job in [
                ("console csv", lambda: read_stream("127.0.0.1", port, query + "&format=csv")),
                ("console ndjson", lambda: read_stream("127.0.0.1", port, query + "&format=ndjson")),
                ("script: PIT + search_after", lambda: direct_export(args.es, index)),
            ]:
                size, lines, seconds = job()
                say(f"run {run + 1} {name}: {lines} lines, {size / 1e6:.1f} MB in {seconds:.2f} s")
                results[name].append((size, lines, seconds))
        stop.set()
        sampler.join()
        hwm = proc_mem(console.pid, "VmHWM")

        before = searches(port, args.searches)
        exporting = threading.Thread(target=lambda: read_stream("127.0.0.1", port, query + "&format=csv"))
        exporting.start()
        time.sleep(0.5)
        during = searches(port, args.searches)
        exporting.join()

        print(f"{args.lines:,} documents (`{index}`, one shard), {args.runs} rounds, each in turn; medians (min–max).\n")
        print("| export | lines | MB | s | lines/s | MB/s |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, rows in results.items():
            secs = [r[2] for r in rows]
            med = statistics.median(secs)
            size, lines = rows[0][0], rows[0][1]
            print(f"| {name} | {lines:,} | {size / 1e6:.1f} | {med:.2f} ({min(secs):.2f}–{max(secs):.2f}) | "
                  f"{lines / med:,.0f} | {size / 1e6 / med:.1f} |")
        print(f"\nConsole RSS: {idle / 2**20:.1f} MiB idle, peak {peak[0] / 2**20:.1f} MiB during the exports "
              f"(sampled every 20 ms; VmHWM {hwm / 2**20:.1f} MiB).\n")
        print(f"`/api/search` ({args.searches} sequential requests, 100 hits with facets): "
              f"p50 {before[0] * 1000:.1f} ms, p99 {before[1] * 1000:.1f} ms alone; "
              f"p50 {during[0] * 1000:.1f} ms, p99 {during[1] * 1000:.1f} ms while a CSV export runs.")
    finally:
        console.terminate()
        console.wait()


if __name__ == "__main__":
    main()
