#!/usr/bin/env python3
"""Console benchmark for scripts/bench.sh (part `console`; standard library only).

Measures a running `logship console` (its pid given, for memory) over an index that holds the
shipped lines:

1. search overhead: --searches sequential `/api/search` requests (100 hits, facets, over the whole
   index), cycling through QUERIES; overhead = the request's wall time minus Elasticsearch's
   `took` (which the API passes on as `took_ms`);
2. context: `/api/context/{id}?before=50&after=50` for --contexts ids taken from those hits;
3. memory: --concurrency clients searching at once, --rounds searches each; the console's
   VmRSS sampled every 20 ms, and its VmHWM after;
4. live tail: --tails SSE clients on one query, then the same split over two queries, for
   --tail-seconds each; Elasticsearch's search count on the index (`_stats/search`
   query_total; the index has one shard, so one search is one query) over that time;
5. the page: headless Chromium (through chromedriver's WebDriver HTTP API) opens
   `/?q=...&from=...`; time from navigation start until the hits are on the page (polled every
   10 ms, so late by at most that), --page-loads times.

Prints a markdown report on stdout; progress on stderr.
"""

import argparse
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

# Queries over the bench corpus (access-log lines): selective and broad, terms and phrases.
QUERIES = [
    "500",
    "404 AND okhttp",
    '"POST /login"',
    "healthz",
    "DELETE AND 502",
    "kube-probe",
    "python-requests AND 403",
    "search AND 301",
    "orders AND PUT",
    "*",
    "4711",
    "HEAD AND 204",
]


def log(*args):
    print("bench-console:", *args, file=sys.stderr, flush=True)


def get_json(url, timeout=60):
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body = response.read()
    return json.loads(body), (time.perf_counter() - started) * 1000.0


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, int(round(p / 100.0 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def rss_kib(pid, field):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def search_url(base, q, extra=""):
    params = {"q": q, "from": "now-30d", "to": "now", "size": "100"}
    return f"{base}/api/search?{urllib.parse.urlencode(params)}{extra}"


def searches(base, count):
    overheads, walls, tooks, ids = [], [], [], []
    for n in range(count):
        answer, wall = get_json(search_url(base, QUERIES[n % len(QUERIES)]))
        took = answer.get("took_ms", 0)
        overheads.append(wall - took)
        walls.append(wall)
        tooks.append(took)
        ids.extend(hit["id"] for hit in answer.get("hits", []))
    return overheads, walls, tooks, ids


def contexts(base, ids, count):
    walls = []
    rng = random.Random(7)
    for _ in range(count):
        doc_id = rng.choice(ids)
        answer, wall = get_json(
            f"{base}/api/context/{urllib.parse.quote(doc_id, safe='')}?before=50&after=50")
        if not answer.get("lines"):
            raise SystemExit(f"context of {doc_id} is empty: {answer}")
        walls.append(wall)
    return walls


def concurrent_searches(base, pid, clients, rounds):
    errors = []
    done = threading.Event()
    peak = [rss_kib(pid, "VmRSS")]

    def sampler():
        while not done.is_set():
            peak[0] = max(peak[0], rss_kib(pid, "VmRSS"))
            time.sleep(0.02)

    def client(n):
        try:
            for r in range(rounds):
                get_json(search_url(base, QUERIES[(n + r) % len(QUERIES)]), timeout=120)
        except Exception as error:  # reported below
            errors.append(repr(error))

    watcher = threading.Thread(target=sampler)
    watcher.start()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    done.set()
    watcher.join()
    if errors:
        raise SystemExit(f"{len(errors)} concurrent searches failed, e.g. {errors[0]}")
    return peak[0], rss_kib(pid, "VmHWM"), wall


def search_count(es, index):
    stats, _ = get_json(f"{es}/{index}/_stats/search")
    return stats["_all"]["primaries"]["search"]["query_total"]


def tails(base, es, index, queries, clients, seconds):
    """Opens `clients` SSE streams spread over `queries`; returns searches/s on the index."""
    host, port = urllib.parse.urlsplit(base).netloc.split(":")
    connections = []
    for n in range(clients):
        conn = http.client.HTTPConnection(host, int(port), timeout=seconds + 30)
        q = queries[n % len(queries)]
        conn.request("GET", "/api/tail?" + urllib.parse.urlencode({"q": q}))
        response = conn.getresponse()
        if response.status != 200:
            raise SystemExit(f"tail client {n}: {response.status} {response.read()[:200]}")
        connections.append((conn, response))
    time.sleep(3)  # every poller running
    before = search_count(es, index)
    started = time.perf_counter()
    time.sleep(seconds)
    after = search_count(es, index)
    elapsed = time.perf_counter() - started
    for conn, _ in connections:
        conn.close()
    return (after - before) / elapsed


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def webdriver(port, method, path, body=None):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())["value"]


def page_loads(base, chromedriver, chromium, loads):
    port = free_port()
    profile = tempfile.mkdtemp(prefix="bench-console-chromium-")
    driver = subprocess.Popen([chromedriver, f"--port={port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,860",
                f"--user-data-dir={profile}"]
        session = webdriver(port, "POST", "/session", {"capabilities": {"alwaysMatch": {
            "goog:chromeOptions": {"binary": chromium, "args": args}}}})["sessionId"]
        url = f"{base}/?" + urllib.parse.urlencode({"q": "500", "from": "now-30d", "to": "now"})
        times = []
        probe = ("const s = document.getElementById('summary');"
                 "return [s ? s.textContent : '', performance.now(),"
                 " document.querySelectorAll('#hits tbody tr').length];")
        for n in range(loads + 1):
            webdriver(port, "POST", f"/session/{session}/url", {"url": "about:blank"})
            webdriver(port, "POST", f"/session/{session}/url", {"url": url})
            deadline = time.time() + 30
            while True:
                summary, at, rows = webdriver(port, "POST", f"/session/{session}/execute/sync",
                                              {"script": probe, "args": []})
                if summary and rows:
                    break
                if time.time() > deadline:
                    raise SystemExit(f"the page never showed hits: {summary!r}")
                time.sleep(0.01)
            if n > 0:  # the first load warms the browser's cache and process
                times.append(at)
        webdriver(port, "DELETE", f"/session/{session}")
        return times
    finally:
        driver.terminate()
        driver.wait()
        shutil.rmtree(profile, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--console", required=True, help="the console's base URL")
    parser.add_argument("--pid", type=int, required=True, help="the console's pid")
    parser.add_argument("--es", required=True)
    parser.add_argument("--index", required=True)
    parser.add_argument("--searches", type=int, default=600)
    parser.add_argument("--contexts", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--tails", type=int, default=100, help="0: not measured")
    parser.add_argument("--tail-seconds", type=int, default=30)
    parser.add_argument("--page-loads", type=int, default=10, help="0: not measured")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    a = parser.parse_args()
    base = a.console.rstrip("/")

    total, _ = get_json(f"{a.es}/{a.index}/_count")
    log(f"{total['count']} documents in {a.index}")
    searches(base, 24)  # warm-up: caches of Elasticsearch and the console
    log("searches")
    overheads, walls, tooks, ids = searches(base, a.searches)
    log("contexts")
    context_walls = contexts(base, ids, a.contexts)
    log("concurrent searches")
    peak, hwm, wall = concurrent_searches(base, a.pid, a.concurrency, a.rounds)
    one_query = two_queries = None
    if a.tails:
        log("tail clients")
        one_query = tails(base, a.es, a.index, ["tailbench-one"], a.tails, a.tail_seconds)
        two_queries = tails(base, a.es, a.index, ["tailbench-a", "tailbench-b"], a.tails,
                            a.tail_seconds)
    log("page loads")
    loads = []
    if not a.page_loads:
        pass
    elif os.path.exists(a.chromedriver):
        loads = page_loads(base, a.chromedriver, a.chromium, a.page_loads)
    else:
        log(f"{a.chromedriver} missing: page load not measured")

    f = lambda v: f"{v:.1f}"  # noqa: E731
    print(f"Index: {total['count']:,} documents. Queries cycled: "
          + ", ".join(f"`{q}`" for q in QUERIES) + ".")
    print()
    print("| what | n | median | p90 | p99 | max |")
    print("|---|---|---|---|---|---|")
    for name, values in [
        ("search: console overhead (wall − `took`), ms", overheads),
        ("search: wall, ms", walls),
        ("search: Elasticsearch `took`, ms", tooks),
        ("context ±50 lines: wall, ms", context_walls),
        ("page: navigation → hits shown (headless Chromium), ms", loads),
    ]:
        if values:
            print(f"| {name} | {len(values)} | {f(statistics.median(values))} | "
                  f"{f(percentile(values, 90))} | {f(percentile(values, 99))} | {f(max(values))} |")
    print()
    print(f"{a.concurrency} concurrent clients × {a.rounds} searches: {wall:.1f} s; console "
          f"RSS peak (sampled every 20 ms) {peak / 1024:.1f} MiB, VmHWM {hwm / 1024:.1f} MiB.")
    if one_query is not None:
        print()
        print(f"{a.tails} tail clients on one query: {one_query:.2f} Elasticsearch searches/s; "
              f"on two queries (half each): {two_queries:.2f}/s "
              f"({two_queries / 2:.2f} per query).")


if __name__ == "__main__":
    main()
