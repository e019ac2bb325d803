#!/usr/bin/env python3
"""Alert evaluation benchmark (standard library only; docs/bench.md, "Alerts").

1. History: --lines documents (default 5,000,000) shaped as the transfer writes them, spread
   over the 24 h before the load, bulk-loaded once and kept (`bench-alerts-v1-history-{lines}`).
2. A live pipeline at --rate lines/s (default 1,000): two `logship agent`s (hosts bench-a and
   bench-b, half the lines each) → Kafka → `logship transfer` → `bench-alerts-live-…`, beside
   the history under the pattern `bench-alerts-*` that every rule counts in.
3. --rules rules (default 100) of 1m windows: 10 "flip" rules on `BURST` lines, which the
   writer emits only in odd minutes, so that each of them notifies every window (firing, then
   resolved); the others count `ERROR`/`WARN` lines of one service, a third grouped by host.
4. `logship alert` with every rule, notifying a webhook served by this script.
5. Two phases of --phase seconds each: quiet, then with agent bench-b SIGSTOPped for 60 s of
   every 75 s (its lines 60 s behind). Per phase: windows evaluated; Elasticsearch time per
   window (`took`, and the wall time of the search seen by the evaluator); the evaluator's CPU
   per window (utime+stime over the phase) and its memory (peak VmRSS, VmHWM); the lateness
   from a window's end to its evaluation (every window) and to the webhook's receipt of its
   notification (every notification: the flip rules' and the threshold rules' that crossed),
   p50/p99/max.

Prints a markdown report on stdout; progress on stderr.
"""

import argparse
import base64
import http.client
import http.server
import json
import os
import random
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse

from benchlib import ensure_index, es_request, free_port, proc_mem, say

FLIP_RULES = 10
WINDOW_S = 60


def etcd_put(etcd, key, value):
    url = urllib.parse.urlparse(etcd)
    conn = http.client.HTTPConnection(url.hostname, url.port or 2379, timeout=30)
    body = {"key": base64.b64encode(key.encode()).decode(), "value": base64.b64encode(value.encode()).decode()}
    conn.request("POST", "/v3/kv/put", body=json.dumps(body), headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    conn.close()
    assert response.status == 200, response.status


def etcd_delete_prefix(etcd, prefix):
    url = urllib.parse.urlparse(etcd)
    conn = http.client.HTTPConnection(url.hostname, url.port or 2379, timeout=30)
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    body = {"key": base64.b64encode(prefix.encode()).decode(), "range_end": base64.b64encode(end.encode()).decode()}
    conn.request("POST", "/v3/kv/deleterange", body=json.dumps(body), headers={"Content-Type": "application/json"})
    conn.getresponse().read()
    conn.close()


def level_of(rng):
    r = rng.random()
    return "ERROR" if r < 0.01 else "WARN" if r < 0.05 else "INFO"


def history(lines):
    """The history's documents: application lines spread over the 24 h before an hour ago,
    eight hosts, twenty services, levels as the live writer draws them."""
    def documents():
        rng = random.Random(11)
        end = int(time.time()) - 3600
        start_ms = (end - 86400) * 1000
        step_ms = 86400 * 1000 / lines
        for n in range(lines):
            ms = int(start_ms + n * step_ms)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"
            host = f"web-{n % 8:02d}"
            message = f"{stamp} {level_of(rng)} svc{n % 20} request {n} took {rng.randrange(1, 900)} ms"
            yield f"h{n}", {"@timestamp": stamp, "host": host, "file": "/var/log/app.log",
                            "file_id": host, "offset": n * 80, "message": message}
    return documents


def proc_cpu(pid):
    """utime + stime of pid, seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def quantiles(values):
    if not values:
        return "–", "–", "–"
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]
    return f"{pick(0.5):.2f}", f"{pick(0.99):.2f}", f"{values[-1]:.2f}"


class Hook(http.server.BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        Hook.received.append((time.time(), json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def rules(count, pattern):
    out = {}
    for i in range(FLIP_RULES):
        out[f"flip-{i:02d}"] = {"kind": "logs", "query": f"BURST AND svc{i}", "index": pattern,
                                "window": "1m", "condition": "count > 0", "receivers": ["bench"]}
    for i in range(count - FLIP_RULES):
        level = "ERROR" if i % 2 == 0 else "WARN"
        rule = {"kind": "logs", "query": f"{level} AND svc{i % 20}", "index": pattern, "window": "1m",
                "condition": f"count > {10 + i}", "receivers": ["bench"], "samples": 3}
        if i % 3 == 0:
            rule["group_by"] = ["host"]
        out[f"rule-{i:03d}"] = rule
    return out


def writer(logs, rate, stop, written):
    """Appends rate lines/s, half to each host's file, in 10 rounds a second; in odd minutes
    one BURST line per flip rule's service a second."""
    rng = random.Random(5)
    files = [open(os.path.join(d, "app.log"), "a") for d in logs]
    n = 0
    tick = time.monotonic()
    while not stop.is_set():
        now = time.time()
        burst = int(now // WINDOW_S) % 2 == 1 and int(now * 10) % 10 == 0
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
        for k, f in enumerate(files):
            chunk = []
            for _ in range(rate // 10 // len(files)):
                chunk.append(f"{stamp} {level_of(rng)} svc{n % 20} request {n} took {rng.randrange(1, 900)} ms\n")
                n += 1
            if burst and k == 0:
                chunk.extend(f"{stamp} WARN svc{i} BURST of retries {n}\n" for i in range(FLIP_RULES))
                n += FLIP_RULES
            f.write("".join(chunk))
            f.flush()
        written[0] = n
        tick += 0.1
        time.sleep(max(0.0, tick - time.monotonic()))
    for f in files:
        f.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--es", required=True)
    p.add_argument("--kafka", required=True)
    p.add_argument("--etcd", required=True)
    p.add_argument("--lines", type=int, default=5_000_000)
    p.add_argument("--rate", type=int, default=1000)
    p.add_argument("--rules", type=int, default=100)
    p.add_argument("--phase", type=int, default=360)
    args = p.parse_args()

    history_index = f"bench-alerts-v1-history-{args.lines}"
    ensure_index(args.es, history_index, args.lines, history(args.lines))
    run = f"{int(time.time())}"
    topic, group, prefix = f"bench-alerts-{run}", f"bench-alerts-{run}", f"/logship-bench-alerts-{run}"
    work = tempfile.mkdtemp(prefix="bench-alerts-")
    say(f"work dir {work}")
    hook_port, metrics_port = free_port(), free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", hook_port), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    with open(os.path.join(work, "transfer.toml"), "w") as f:
        f.write(f'[kafka]\nbrokers = "{args.kafka}"\ngroup = "{group}"\ntopics = ["{topic}"]\n'
                f'commit_interval_ms = 1000\n[elasticsearch]\nurl = "{args.es}"\n'
                f'index = "bench-alerts-live-{run}-%Y.%m.%d"\ndlq_index = "logship-dlq-bench-{run}"\n')
    logs = []
    agents_configs = []
    for host in ["bench-a", "bench-b"]:
        d = os.path.join(work, host)
        os.makedirs(os.path.join(d, "logs"))
        logs.append(os.path.join(d, "logs"))
        config = os.path.join(d, "agent.toml")
        with open(config, "w") as f:
            f.write(f'host = "{host}-{run}"\ndata_dir = "{d}/data"\n[kafka]\nbrokers = "{args.kafka}"\n'
                    f'[etcd]\nendpoints = ["{args.etcd}"]\nprefix = "{prefix}"\nallowed_paths = ["{d}/logs"]\n'
                    f'[[collect]]\npath = "{d}/logs/*.log"\ntopic = "{topic}"\n')
        agents_configs.append(config)
    for name, rule in rules(args.rules, "bench-alerts-*").items():
        etcd_put(args.etcd, f"{prefix}/alerts/rules/{name}", json.dumps(rule))
    alert_config = os.path.join(work, "alert.toml")
    with open(alert_config, "w") as f:
        f.write(f'console_url = "http://127.0.0.1:9700"\nmetrics_addr = "127.0.0.1:{metrics_port}"\n'
                f'[etcd]\nendpoints = ["{args.etcd}"]\nprefix = "{prefix}"\n'
                f'[elasticsearch]\nurl = "{args.es}"\n'
                f'[kafka]\nbrokers = "{args.kafka}"\ntransfer_group = "{group}"\ntopics = ["{topic}"]\n'
                f'[[webhook]]\nname = "bench"\nurl = "http://127.0.0.1:{hook_port}/"\n')

    def start(role, config, log):
        return subprocess.Popen([args.bin, "--log-format", "json", "--log-level", "info,logship=debug,rdkafka=warn"
                                 if role == "alert" else "info,rdkafka=warn", role, "--config", config],
                                stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, log), "w"))

    procs = []
    stop = threading.Event()
    written = [0]
    try:
        procs.append(start("transfer", os.path.join(work, "transfer.toml"), "transfer.log"))
        agents = [start("agent", c, f"agent-{i}.log") for i, c in enumerate(agents_configs)]
        procs.extend(agents)
        threading.Thread(target=writer, args=(logs, args.rate, stop, written), daemon=True).start()
        time.sleep(5)
        evaluator = start("alert", alert_config, "alert.log")
        procs.append(evaluator)
        # Warm up: the rules taken up and a window or two evaluated.
        warm_until = (int(time.time()) // WINDOW_S + 2) * WINDOW_S + 15
        say(f"warming up until {time.strftime('%H:%M:%S', time.gmtime(warm_until))}")
        time.sleep(max(0, warm_until - time.time()))

        peak = [0]

        def sample_rss():
            while not stop.is_set():
                peak[0] = max(peak[0], proc_mem(evaluator.pid, "VmRSS"))
                time.sleep(1)
        threading.Thread(target=sample_rss, daemon=True).start()

        phases = []
        for name in ["quiet", "behind"]:
            begin, cpu0 = time.time(), proc_cpu(evaluator.pid)
            say(f"phase {name}: {args.phase} s from {time.strftime('%H:%M:%S', time.gmtime(begin))}")
            if name == "behind":
                until = begin + args.phase
                while time.time() < until:
                    os.kill(agents[1].pid, signal.SIGSTOP)
                    time.sleep(min(60, max(0, until - time.time())))
                    os.kill(agents[1].pid, signal.SIGCONT)
                    time.sleep(min(15, max(0, until - time.time())))
            else:
                time.sleep(args.phase)
            phases.append((name, begin, time.time(), proc_cpu(evaluator.pid) - cpu0))
        # Let the windows of the last phase be evaluated before reading the log.
        time.sleep(WINDOW_S + 20)
        hwm = proc_mem(evaluator.pid, "VmHWM")
    finally:
        stop.set()
        for proc in procs:
            try:
                os.kill(proc.pid, signal.SIGCONT)
            except OSError:
                pass
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        server.shutdown()
        etcd_delete_prefix(args.etcd, prefix + "/")

    evaluated, counted = [], []
    with open(os.path.join(work, "alert.log")) as f:
        for line in f:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            fields = entry.get("fields", {})
            at = time.mktime(time.strptime(entry["timestamp"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
            at += float("0." + entry["timestamp"][20:-1]) if len(entry["timestamp"]) > 21 else 0.0
            if fields.get("message") == "window evaluated":
                evaluated.append((fields["to"] / 1000.0, at, fields["rule"]))
            elif fields.get("message") == "window counted":
                counted.append((fields["from"] / 1000.0 + WINDOW_S, fields["took_ms"], fields["wall_ms"]))
    status, answer = es_request(args.es, "GET", f"/bench-alerts-live-{run}-*/_count")
    indexed = answer.get("count", 0) if status == 200 else 0

    print(f"Alert evaluation, {args.rules} rules of 1m windows ({FLIP_RULES} notifying every window) "
          f"over `bench-alerts-*`: {args.lines:,} history lines + a live pipeline at {args.rate:,} lines/s "
          f"({written[0]:,} written, {indexed:,} indexed at the end); phases of {args.phase} s.\n")
    print("| phase | windows evaluated | ES took per window ms p50 / p99 | search wall ms p50 / p99 | "
          "evaluator CPU per window ms | evaluation lateness s p50 / p99 / max | notification lateness s p50 / p99 / max (n) |")
    print("|---|---|---|---|---|---|---|")
    for name, begin, end, cpu in phases:
        late = [at - to for to, at, _ in evaluated if begin <= to < end]
        took = [t for to, t, _ in counted if begin <= to < end]
        wall = [w for to, _, w in counted if begin <= to < end]
        notes = [received - to for received, body in Hook.received
                 for to in [time.mktime(time.strptime(body["window"]["to"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone]
                 if begin <= to < end]
        n = len(late)
        per_window = f"{cpu * 1000 / n:.1f}" if n else "–"
        lp, nq = quantiles(late), quantiles(notes)
        tq, wq = quantiles(took), quantiles(wall)
        print(f"| {name} | {n} | {tq[0]} / {tq[1]} | {wq[0]} / {wq[1]} | {per_window} ({cpu:.1f} s in {end - begin:.0f} s) | "
              f"{lp[0]} / {lp[1]} / {lp[2]} | {nq[0]} / {nq[1]} / {nq[2]} ({len(notes)}) |")
    print(f"\nEvaluator memory: peak VmRSS {peak[0] / 2**20:.1f} MiB (sampled each second), VmHWM {hwm / 2**20:.1f} MiB.")
    say(f"logs kept in {work}")


if __name__ == "__main__":
    main()
