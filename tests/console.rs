//! The console's JSON API against real Elasticsearch, holding lines shipped by the real agent and
//! transfer: search, context across a rename rotation, paging past 10,000 hits, histogram, and
//! the errors a user can cause.
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod transfer_support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::agent::append_lines;
use common::console::{query, Console};
use common::ops::{free_addr, http_get};
use common::{es_url, wait_for};
use transfer_support::{es, Shipping};

/// Ships lines through the real agent and transfer: `app.log` gets 20 lines, is renamed to
/// `app.log.1` (the writer keeps appending 20 more to the renamed file, as a logger does until it
/// reopens), and a new `app.log` gets 5; then `bulk.log` gets 10,500 lines.
#[test]
fn search_context_paging_and_errors_against_shipped_lines() {
    let shipping = Shipping::start("console");
    let (setup, logs) = (&shipping.setup, &shipping.logs);

    let app = logs.join("app.log");
    let first: Vec<String> = (0..20)
        .map(|i| format!("app line {i:02} needle-{i}"))
        .collect();
    append_lines(&app, &first);
    shipping.wait_indexed(20, Duration::from_secs(120));
    std::fs::rename(&app, logs.join("app.log.1")).unwrap();
    let renamed: Vec<String> = (20..40)
        .map(|i| format!("app line {i:02} needle-{i}"))
        .collect();
    append_lines(&logs.join("app.log.1"), &renamed);
    // The new app.log only once the renamed one is read to its end: its lines are then read
    // after every line of the old stream.
    shipping.wait_indexed(40, Duration::from_secs(120));
    let fresh: Vec<String> = (0..5).map(|i| format!("new app line {i}")).collect();
    append_lines(&app, &fresh);
    let bulk = 10_500;
    let many: Vec<String> = (0..bulk).map(|i| format!("bulk line {i:06}")).collect();
    append_lines(&logs.join("bulk.log"), &many);
    let total = 45 + bulk as u64;
    shipping.wait_indexed(total, Duration::from_secs(300));

    let console = Console::start(shipping.dir(), &es_url(), &setup.index);
    let range = "from=now-1h&to=now";

    // Search finds a known line, highlighted, with its source position.
    let (code, found) = console.get(&format!("/api/search?q={}&{range}", query("\"needle-27\"")));
    assert_eq!(code, 200, "{found}");
    assert_eq!(found["total"], 1, "{found}");
    let hit = &found["hits"][0];
    assert_eq!(hit["message"], "app line 27 needle-27");
    assert!(
        hit["highlight"]
            .as_str()
            .unwrap()
            .contains("<mark>needle-27</mark>"),
        "{hit}"
    );
    assert!(hit["offset"].as_u64().is_some(), "{hit}");
    assert_eq!(found["facets"]["file"][0]["count"], 1, "{found}");

    // Context of the last line read before the rename: its neighbours from the same stream,
    // in file order, continuing into the renamed file (and not the new app.log).
    let (_, before_rename) =
        console.get(&format!("/api/search?q={}&{range}", query("\"needle-19\"")));
    let id = before_rename["hits"][0]["id"].as_str().unwrap().to_string();
    let (code, context) = console.get(&format!("/api/context/{id}?before=3&after=3"));
    assert_eq!(code, 200, "{context}");
    let messages: Vec<&str> = context["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    let want: Vec<String> = (16..23)
        .map(|i| format!("app line {i:02} needle-{i}"))
        .collect();
    assert_eq!(messages, want, "{context}");
    assert_eq!(context["hit"], 3);
    let offsets: Vec<u64> = context["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["offset"].as_u64().unwrap())
        .collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    let streams: HashSet<&str> = context["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["file_id"].as_str().unwrap())
        .collect();
    assert_eq!(streams.len(), 1, "one stream across the rename: {context}");

    // The neighbouring streams at the path: the old app.log's context offers the new app.log
    // (from its first line), and the new one's offers the old (its last line read as app.log).
    let old_stream = context["stream"].as_str().unwrap().to_string();
    let (code, around_old) = console.get(&format!("/api/context/{id}/streams"));
    assert_eq!(code, 200, "{around_old}");
    assert_eq!(
        around_old["next"]["message"], "new app line 0",
        "{around_old}"
    );
    assert!(around_old["previous"].is_null(), "{around_old}");
    let new_id = around_old["next"]["id"].as_str().unwrap().to_string();
    let (_, around_new) = console.get(&format!("/api/context/{new_id}/streams"));
    assert_eq!(
        around_new["previous"]["file_id"],
        old_stream.as_str(),
        "{around_new}"
    );
    assert!(around_new["next"].is_null(), "{around_new}");
    let (code, missing) = console.get("/api/context/no-such-id/streams");
    assert_eq!(code, 404, "{missing}");

    // The dead-letter index is searched only when named: a wildcard matching it leaves its
    // documents out (they have no `message`), naming it outright brings them in.
    let dlq = format!("{}-dlq", setup.index);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    es(
        "POST",
        &format!("{dlq}/_doc?refresh=true"),
        Some(&format!(
            r#"{{"@timestamp": {now_ms}, "record": "not json", "error": "mapper_parsing_exception"}}"#
        )),
    );
    let all = format!("/api/search?size=1&{range}");
    let wildcard_dir = tempfile::tempdir().unwrap();
    let wildcard = Console::start(wildcard_dir.path(), &es_url(), &format!("{}*", setup.index));
    let (code, page) = wildcard.get(&all);
    assert_eq!(code, 200, "{page}");
    assert_eq!(
        page["total"], total,
        "a wildcard does not bring in the dead letters: {page}"
    );
    let named_dir = tempfile::tempdir().unwrap();
    let named = Console::start(
        named_dir.path(),
        &es_url(),
        &format!("{},{dlq}", setup.index),
    );
    let (_, page) = named.get(&all);
    assert_eq!(page["total"], total + 1, "named, it is searched: {page}");
    drop((wildcard, named));

    // Paging past 10,000 hits: every line exactly once.
    let mut seen = HashSet::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let cursor = after
            .as_deref()
            .map(|a| format!("&after={a}"))
            .unwrap_or_default();
        let (code, page) = console.get(&format!("/api/search?size=500&{range}{cursor}"));
        assert_eq!(code, 200, "{page}");
        assert_eq!(page["total"], total);
        for hit in page["hits"].as_array().unwrap() {
            assert!(
                seen.insert(hit["id"].as_str().unwrap().to_string()),
                "twice: {hit}"
            );
        }
        pages += 1;
        match page["after"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
        assert!(pages < 100, "paging does not end");
    }
    assert_eq!(seen.len() as u64, total);

    // The histogram counts every match once.
    let (code, histogram) = console.get(&format!("/api/histogram?{range}"));
    assert_eq!(code, 200, "{histogram}");
    let counted: u64 = histogram["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, total, "{histogram}");

    // Errors a user can cause: clear messages, never a 500.
    let (code, bad) = console.get(&format!("/api/search?q={}&{range}", query("a AND")));
    assert_eq!(code, 400, "{bad}");
    assert!(bad["error"].as_str().unwrap().contains("parse"), "{bad}");
    let (code, unknown) = console.get("/api/context/no-such-id");
    assert_eq!(code, 404, "{unknown}");
    let (code, bad_time) = console.get("/api/search?from=yesterday");
    assert_eq!(code, 400, "{bad_time}");
    assert!(
        bad_time["error"].as_str().unwrap().contains("from"),
        "{bad_time}"
    );
    let (code, bad_cursor) = console.get("/api/search?after=nonsense");
    assert_eq!(code, 400, "{bad_cursor}");

    // An index without `@timestamp` in its mapping under the console's pattern (made by someone
    // else, or not written yet): the sort on `@timestamp` skips it instead of failing ("No
    // mapping found for [@timestamp] in order to sort on": a 400 when it is the only index,
    // a failed shard beside others).
    let empty = format!("{}-empty", setup.index);
    let made = es("PUT", &empty, Some("{}"));
    assert_eq!(made["acknowledged"], true, "{made}");
    let searched = |pattern: &str| {
        let dir = tempfile::tempdir().unwrap();
        let console = Console::start(dir.path(), &es_url(), pattern);
        console.get(&format!("/api/search?q={}&{range}", query("\"needle-27\"")))
    };
    let (alone, beside) = (searched(&empty), searched(&format!("{}*", setup.index)));
    es("DELETE", &empty, None);
    assert_eq!(alone.0, 200, "{}", alone.1);
    assert_eq!(alone.1["total"], 0, "{}", alone.1);
    assert_eq!(beside.0, 200, "{}", beside.1);
    assert_eq!(beside.1["total"], 1, "{}", beside.1);

    shipping.stop();
}

/// Elasticsearch unreachable (an address nothing listens on): 503 saying so, on every API.
#[test]
fn elasticsearch_unreachable_is_a_503_saying_so() {
    let closed = free_addr();
    let dir = tempfile::tempdir().unwrap();
    let console = Console::start(dir.path(), &format!("http://{closed}"), "logs-*");
    for path in ["/api/search", "/api/histogram", "/api/context/some-id"] {
        let (code, answer) = console.get(path);
        assert_eq!(code, 503, "{path}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("unreachable"),
            "{path}: {answer}"
        );
    }
    // The page itself is served from the binary, whatever Elasticsearch does.
    let (code, page) = http_get(console.addr, "/").unwrap();
    assert_eq!(code, 200);
    let search = script_urls(&page)
        .into_iter()
        .find(|url| url.starts_with("/assets/search."))
        .unwrap_or_else(|| panic!("no search script in the page:\n{page}"));
    let (code, script) = http_get(console.addr, &search).unwrap();
    assert_eq!(code, 200);
    assert!(script.contains("/api/search"));
}

/// Several nodes in `elasticsearch.url`, the first dead: every search is answered (by the
/// live node), none is a 503 — a request the dead node does not answer goes to the next.
#[test]
fn a_dead_node_listed_first_is_skipped_and_every_search_is_answered() {
    let closed = free_addr();
    let dir = tempfile::tempdir().unwrap();
    let nodes = format!("http://{closed},{}", es_url());
    let console = Console::start(dir.path(), &nodes, "logs-none-*");
    for round in 0..6 {
        let (code, answer) = console.get("/api/search");
        assert_eq!(code, 200, "search {round}: {answer}");
    }
}

/// The `src` of every `<script>` of `page`.
fn script_urls(page: &str) -> Vec<String> {
    page.split("<script src=\"")
        .skip(1)
        .filter_map(|rest| rest.split_once('"').map(|(url, _)| url.to_string()))
        .collect()
}

/// Status, headers (lower-case names) and body of `GET path`.
fn http_get_headers(
    addr: std::net::SocketAddr,
    path: &str,
) -> (u16, Vec<(String, String)>, String) {
    let output = std::process::Command::new("curl")
        .args(["-s", "-i", "-m", "10"])
        .arg(format!("http://{addr}{path}"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&output.stdout).replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
}

/// Every page carries a strict Content-Security-Policy and is never cached; its scripts (one
/// per page, then the router) and its style have a content hash in their URL and are cached for
/// a year; a name from another release is 404; the sign-in page is an asset like the others.
#[test]
fn pages_carry_a_strict_csp_and_assets_are_cached_by_content_hash() {
    let dir = tempfile::tempdir().unwrap();
    let console = Console::start(dir.path(), &es_url(), "logs-none-*");
    // The sign-in page exists with users only.
    let users_dir = tempfile::tempdir().unwrap();
    let hash = common::console::hash_password("csp-test-password");
    let with_users = Console::launch(users_dir.path(), |addr| {
        format!(
            "listen = \"{addr}\"\n[[users]]\nname = \"ann\"\npassword_hash = \"{hash}\"\n\
             role = \"viewer\"\n[elasticsearch]\nurl = \"{}\"\nindex_pattern = \"logs-none-*\"\n",
            es_url()
        )
    });
    for (addr, path) in [
        (console.addr, "/"),
        (console.addr, "/tail"),
        (console.addr, "/hosts"),
        (with_users.addr, "/login"),
    ] {
        let (code, headers, page) = http_get_headers(addr, path);
        assert_eq!(code, 200, "{path}");
        let csp = header(&headers, "content-security-policy");
        assert!(
            csp.contains("script-src 'self'") && csp.contains("style-src 'self'"),
            "{path}: {csp}"
        );
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{path}: {csp}"
        );
        assert_eq!(header(&headers, "cache-control"), "no-cache", "{path}");
        assert!(!page.contains("{{"), "{path}: a placeholder left:\n{page}");
        // Every script of the page is a file: no inline script, no style attribute.
        assert_eq!(
            page.matches("<script").count(),
            script_urls(&page).len(),
            "{path}"
        );
        assert!(
            !page.contains(" style=") && !page.contains("<style"),
            "{path}"
        );
        let style = page
            .split("<link rel=\"stylesheet\" href=\"")
            .nth(1)
            .and_then(|rest| rest.split_once('"'))
            .map(|(url, _)| url.to_string())
            .unwrap_or_default();
        assert!(
            style.starts_with("/assets/app.") && style.ends_with(".css"),
            "{path}: {style}"
        );
        let (code, headers, _) = http_get_headers(addr, &style);
        assert_eq!(code, 200, "{style}");
        assert!(
            header(&headers, "cache-control").contains("immutable"),
            "{style}"
        );
    }
    let (_, _, page) = http_get_headers(console.addr, "/");
    let scripts = script_urls(&page);
    let names: Vec<&str> = scripts
        .iter()
        .map(|url| {
            url.trim_start_matches("/assets/")
                .split('.')
                .next()
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        names,
        [
            "common", "search", "context", "tail", "collect", "hosts", "pipeline", "storage",
            "alerts", "app"
        ]
    );
    for url in &scripts {
        let (code, headers, body) = http_get_headers(console.addr, url);
        assert_eq!(code, 200, "{url}");
        assert!(
            header(&headers, "content-type").starts_with("text/javascript"),
            "{url}"
        );
        assert_eq!(
            header(&headers, "cache-control"),
            "public, max-age=31536000, immutable"
        );
        assert!(
            !header(&headers, "content-security-policy").is_empty(),
            "{url}"
        );
        assert!(body.contains("\"use strict\""), "{url}");
    }
    let (code, headers, _) = http_get_headers(console.addr, "/assets/app.000000000000.js");
    assert_eq!(code, 404);
    assert_eq!(header(&headers, "cache-control"), "no-store");
}

/// The fleet pages without their sources: each says what to configure; a source that cannot
/// answer is named with its error while the rest still answers.
#[test]
fn fleet_pages_name_the_sources_to_configure_and_the_ones_failing() {
    let dir = tempfile::tempdir().unwrap();
    let console = Console::start(dir.path(), &es_url(), "logs-none-*");
    let (code, fleet) = console.get("/api/fleet");
    assert_eq!(code, 200, "{fleet}");
    assert!(fleet["missing"]["etcd"]
        .as_str()
        .unwrap()
        .contains("add [etcd]"));
    assert!(fleet["missing"]["influxdb"]
        .as_str()
        .unwrap()
        .contains("add [influxdb]"));
    let (code, pipeline) = console.get("/api/pipeline");
    assert_eq!(code, 200, "{pipeline}");
    assert!(pipeline["missing"]["kafka"]
        .as_str()
        .unwrap()
        .contains("transfer_group"));
    assert_eq!(
        pipeline["indices"],
        serde_json::json!([]),
        "no index matches: none listed"
    );
    for path in ["/api/hosts", "/api/collect/web-01"] {
        let (code, answer) = console.get(path);
        assert_eq!(code, 404, "{path}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("no [etcd]"),
            "{answer}"
        );
    }
    let (code, charts) = console.get("/api/hosts/web-01/metrics");
    assert_eq!(code, 404, "{charts}");
    assert!(charts["error"].as_str().unwrap().contains("[influxdb]"));

    // InfluxDB and Kafka configured but away: named with their errors, 200 still.
    let closed = free_addr();
    let away_dir = tempfile::tempdir().unwrap();
    let away = Console::launch(away_dir.path(), |addr| {
        format!(
            "listen = \"{addr}\"\n[elasticsearch]\nurl = \"{}\"\nindex_pattern = \"logs-none-*\"\n\
             [influxdb]\nurl = \"http://{closed}\"\ndatabase = \"telegraf\"\n\
             [kafka]\nbrokers = \"{closed}\"\ntransfer_group = \"g\"\n",
            es_url()
        )
    });
    let (code, pipeline) = away.get("/api/pipeline");
    assert_eq!(code, 200, "{pipeline}");
    assert!(pipeline["problems"]["kafka"].is_string(), "{pipeline}");
    let (code, fleet) = away.get("/api/fleet");
    assert_eq!(code, 200, "{fleet}");
    assert!(
        fleet["problems"]["influxdb"]
            .as_str()
            .unwrap()
            .contains("cannot reach InfluxDB"),
        "{fleet}"
    );
    let (code, charts) = away.get("/api/hosts/web-01/metrics?range=1h");
    assert_eq!(code, 503, "{charts}");
    let (code, bad) = away.get("/api/hosts/web-01/metrics?range=2h");
    assert_eq!(code, 400, "{bad}");
}

/// A client following `/api/tail` with curl; what it received so far.
struct TailClient {
    child: Child,
    received: std::sync::Arc<std::sync::Mutex<String>>,
}

impl TailClient {
    fn follow(addr: SocketAddr, q: &str) -> TailClient {
        use std::io::Read;
        let mut child = Command::new("curl")
            .args(["-sN", "--max-time", "120"])
            .arg(format!("http://{addr}/api/tail?q={}", query(q)))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run curl");
        let received = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut stdout = child.stdout.take().unwrap();
        let sink = received.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        TailClient { child, received }
    }

    fn text(&self) -> String {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for TailClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Live tail: three clients follow one query; a line written to a file reaches each of them as a
/// `line` event (lines that were there before they came do not), one that does not match reaches
/// none; a bad query is a 400 before any stream.
#[test]
fn live_tail_pushes_new_matching_lines_to_every_client() {
    let shipping = Shipping::start("console-tail");
    let (setup, logs) = (&shipping.setup, &shipping.logs);
    let app = logs.join("app.log");
    append_lines(&app, &["old tailneedle line".to_string()]);
    shipping.wait_indexed(1, Duration::from_secs(120));

    let console = Console::start(shipping.dir(), &es_url(), &setup.index);
    let (code, bad) = console.get(&format!("/api/tail?q={}", query("a AND")));
    assert_eq!(code, 400, "{bad}");

    let clients: Vec<TailClient> = (0..3)
        .map(|_| TailClient::follow(console.addr, "tailneedle"))
        .collect();
    // The pollers' first round (what is already there) passes nothing on.
    std::thread::sleep(Duration::from_secs(3));
    append_lines(
        &app,
        &[
            "new tailneedle line 1".to_string(),
            "another line".to_string(),
            "new tailneedle line 2".to_string(),
        ],
    );
    for (n, client) in clients.iter().enumerate() {
        let got = wait_for(Duration::from_secs(30), || {
            let text = client.text();
            (text.contains("new tailneedle line 1") && text.contains("new tailneedle line 2"))
                .then_some(text)
        });
        let text = got.unwrap_or_else(|| {
            panic!(
                "client {n} did not receive the new lines: {}\n{}",
                client.text(),
                console.log()
            )
        });
        assert!(text.contains("event: line"), "{text}");
        assert!(!text.contains("old tailneedle line"), "{text}");
        assert!(!text.contains("another line"), "{text}");
        let first = text.find("new tailneedle line 1").unwrap();
        let second = text.find("new tailneedle line 2").unwrap();
        assert!(first < second, "lines out of order: {text}");
    }
    drop(clients);
    shipping.stop();
}
