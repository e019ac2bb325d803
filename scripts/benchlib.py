"""What the Python benchmark drivers share (standard library only): talking to Elasticsearch,
a free port, a process's memory, progress on stderr."""

import http.client
import json
import socket
import sys
import urllib.parse


def say(*args):
    """Progress, on stderr (the report goes to stdout)."""
    print(*args, file=sys.stderr, flush=True)


def es_request(es, method, path, body=None, timeout=300):
    """One request to Elasticsearch at `es`: a dict body as JSON, bytes or str as NDJSON.
    Returns (status, decoded answer or None)."""
    url = urllib.parse.urlparse(es)
    conn = http.client.HTTPConnection(url.hostname, url.port or 9200, timeout=timeout)
    data = None if body is None else (body if isinstance(body, (bytes, str)) else json.dumps(body))
    headers = {"Content-Type": "application/x-ndjson" if isinstance(body, (bytes, str)) else "application/json"}
    conn.request(method, path, body=data, headers=headers)
    response = conn.getresponse()
    text = response.read()
    conn.close()
    return response.status, (json.loads(text) if text else None)


def free_port():
    """A loopback port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_mem(pid, field="VmRSS"):
    """A /proc/PID/status memory field (VmRSS, VmHWM) in bytes; 0 once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def ensure_index(es, index, lines, documents):
    """Makes `index` hold the `lines` documents that `documents()` yields as (id, source), kept
    when an earlier run left it complete: one shard, no replica, shaped as the transfer writes
    (`@timestamp`, `host`, `file`, `file_id`, `offset`, `message`), bulk-loaded, refreshed and
    force-merged to one segment."""
    status, answer = es_request(es, "GET", f"/{index}/_count")
    if status == 200 and answer["count"] == lines:
        say(f"index {index}: {lines} documents, kept from an earlier run")
        return
    es_request(es, "DELETE", f"/{index}")
    mapping = {
        "settings": {"index": {"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "-1"}},
        "mappings": {"properties": {
            "@timestamp": {"type": "date"}, "message": {"type": "text"},
            "host": {"type": "keyword"}, "file": {"type": "keyword"},
            "file_id": {"type": "keyword"}, "offset": {"type": "long"},
        }},
    }
    status, answer = es_request(es, "PUT", f"/{index}", mapping)
    assert status == 200, answer
    say(f"loading {lines} documents into {index}")
    batch = []
    loaded = 0

    def send():
        status, answer = es_request(es, "POST", "/_bulk", "\n".join(batch) + "\n")
        assert status == 200 and not answer["errors"], str(answer)[:500]
        batch.clear()

    for doc_id, source in documents():
        batch.append(json.dumps({"create": {"_index": index, "_id": doc_id}}))
        batch.append(json.dumps(source))
        loaded += 1
        if len(batch) >= 2 * 5000:
            send()
            if loaded % 1_000_000 == 0:
                say(f"  {loaded} loaded")
    if batch:
        send()
    es_request(es, "PUT", f"/{index}/_settings", {"index": {"refresh_interval": "1s"}})
    es_request(es, "POST", f"/{index}/_refresh")
    es_request(es, "POST", f"/{index}/_forcemerge?max_num_segments=1", timeout=900)
    status, answer = es_request(es, "GET", f"/{index}/_count")
    assert answer["count"] == lines, answer
