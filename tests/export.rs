//! `GET /api/export` against real Elasticsearch: a million shipped lines exported as CSV and as
//! NDJSON, each line once and in order, while the console's memory stays flat; a client that
//! goes away half-way leaves no point in time open; CSV quoting and formula neutralising read
//! back by Python's `csv` module; a viewer may export, and every export is an audit line.
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod transfer_support;

use std::io::{BufRead as _, Read as _, Write as _};
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use common::console::{query, Console};
use common::{es_url, wait_for};
use transfer_support::{es, Shipping, TransferSetup};

/// The resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Samples `pid`'s RSS every 50 ms until the returned flag is set; the peak is in the counter.
fn watch_rss(pid: u32) -> (Arc<AtomicBool>, Arc<AtomicU64>, std::thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let (s, p) = (stop.clone(), peak.clone());
    let handle = std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            p.fetch_max(rss(pid), Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    (stop, peak, handle)
}

/// `curl` of `url` into `file`; returns the response headers.
fn download(url: &str, file: &std::path::Path, cookie: Option<&std::path::Path>) -> String {
    let mut command = Command::new("curl");
    command.args(["-s", "-S", "-f", "-D", "-", "-o"]).arg(file);
    if let Some(jar) = cookie {
        command.arg("-b").arg(jar);
    }
    let output = command.arg(url).output().expect("curl");
    assert!(
        output.status.success(),
        "{url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// Creates `index` mapped as the transfer's template maps a line's fields.
fn create_line_index(index: &str) {
    let answer = es(
        "PUT",
        index,
        Some(
            r#"{"mappings": {"properties": {"@timestamp": {"type": "date"},
                "message": {"type": "text"}, "host": {"type": "keyword"},
                "file_id": {"type": "keyword"}, "offset": {"type": "long"}}}}"#,
        ),
    );
    assert_eq!(answer["acknowledged"], true, "{answer}");
}

/// Search contexts open on the cluster's nodes (points in time and scrolls).
fn open_contexts() -> u64 {
    let stats = es("GET", "_nodes/stats/indices/search", None);
    stats["nodes"]
        .as_object()
        .map(|nodes| {
            nodes
                .values()
                .filter_map(|n| n["indices"]["search"]["open_contexts"].as_u64())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn a_million_shipped_lines_export_once_in_order_at_flat_memory_and_a_dropped_client_closes_the_pit()
{
    let mut setup = TransferSetup::new("export");
    setup.max_docs = 5000;
    setup.max_wait_ms = 500;
    let shipping = Shipping::start_with(setup, "");
    let lines: u64 = 1_000_000;
    {
        let file = std::fs::File::create(shipping.logs.join("big.log")).unwrap();
        let mut writer = std::io::BufWriter::new(file);
        for n in 0..lines {
            writeln!(
                writer,
                "export line {n:07} of the million, with some text after it"
            )
            .unwrap();
        }
    }
    shipping.wait_indexed(lines, Duration::from_secs(900));
    let index = shipping.setup.index.clone();
    let console = Console::start(shipping.dir(), &es_url(), &index);
    let out = tempfile::tempdir().unwrap();
    let baseline = open_contexts();

    for format in ["csv", "ndjson"] {
        let file = out.path().join(format!("export.{format}"));
        let (stop, peak, watcher) = watch_rss(console.pid());
        let headers = download(
            &format!(
                "{}/api/export?q=&from=now-1d&to=now&format={format}&fields=@timestamp,file_id,offset,message",
                console.url()
            ),
            &file,
            None,
        );
        stop.store(true, Ordering::Relaxed);
        watcher.join().unwrap();
        let peak = peak.load(Ordering::Relaxed);
        assert!(
            peak > 0 && peak < 64 << 20,
            "{format}: the console's RSS reached {} MiB",
            peak >> 20
        );
        assert!(
            headers
                .to_ascii_lowercase()
                .contains(&format!("x-total-count: {lines}")),
            "{headers}"
        );
        let reader = std::io::BufReader::new(std::fs::File::open(&file).unwrap());
        let mut expected = 0u64;
        let mut positions = std::collections::HashSet::new();
        let mut rows = reader.lines().map(|l| l.unwrap());
        if format == "csv" {
            assert_eq!(
                rows.next().unwrap(),
                "\"@timestamp\",\"file_id\",\"offset\",\"message\""
            );
        }
        for row in rows {
            let (position, message) = if format == "csv" {
                // "ts","stream","offset","message" — nothing here needs quoting but the quotes.
                let cells: Vec<&str> = row.trim_end_matches('\r').split("\",\"").collect();
                assert_eq!(cells.len(), 4, "{row}");
                (
                    format!("{}:{}", cells[1], cells[2]),
                    cells[3].trim_end_matches('"').to_string(),
                )
            } else {
                let doc: Value = serde_json::from_str(&row).unwrap();
                (
                    format!("{}:{}", doc["file_id"], doc["offset"]),
                    doc["message"].as_str().unwrap().to_string(),
                )
            };
            assert_eq!(
                message,
                format!("export line {expected:07} of the million, with some text after it"),
                "{format}: row {expected} out of order or missing"
            );
            assert!(
                positions.insert(position),
                "{format}: a line twice at row {expected}"
            );
            expected += 1;
        }
        assert_eq!(expected, lines, "{format}: every line exactly once");
        eprintln!(
            "{format}: {lines} rows, console peak RSS {} MiB",
            peak >> 20
        );
    }
    let log = console.log();
    assert_eq!(
        log.matches("outcome=\"complete\"").count() + log.matches("outcome=complete").count(),
        2,
        "two complete exports in the audit:\n{log}"
    );

    // A client that reads a little and goes away: the point in time is closed.
    assert!(
        wait_for(Duration::from_secs(30), || (open_contexts() <= baseline)
            .then_some(()))
        .is_some(),
        "the completed exports left contexts open"
    );
    read_a_little_then_leave(
        console.addr,
        "/api/export?q=&from=now-1d&to=now&format=ndjson",
    );
    let closed = wait_for(Duration::from_secs(30), || {
        (open_contexts() <= baseline).then_some(())
    });
    assert!(
        closed.is_some(),
        "{} contexts open after the client left (baseline {baseline}):\n{}",
        open_contexts(),
        console.log()
    );
    let log = console.log();
    assert!(
        log.contains("cancelled"),
        "no audit line of the cancelled export:\n{log}"
    );
    drop(console);
    shipping.stop();
    es("DELETE", &index, None);
}

/// Sends a GET, reads about a megabyte of the answer, and closes the connection.
fn read_a_little_then_leave(addr: SocketAddr, path: &str) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut read = 0;
    while read < 1 << 20 {
        match stream.read(&mut buffer) {
            Ok(0) => panic!("the export ended after {read} bytes: too small to leave half-way"),
            Ok(n) => read += n,
            Err(e) => panic!("reading the export: {e}"),
        }
    }
    drop(stream);
}

/// Messages a spreadsheet would run, quotes, commas, CR/LF inside a message and the
/// replacement character of invalid UTF-8: each cell quoted, formulas neutralised, and
/// Python's `csv` module reads back every stored message (bar the neutralising `'`).
#[test]
fn csv_cells_are_quoted_and_formulas_neutralised_as_python_reads_them() {
    let index = common::unique("export-csv");
    create_line_index(&index);
    let messages = [
        "=cmd|' /C calc'!A0",
        "@SUM(1+1)",
        "+1 plus",
        "-2 minus",
        "\tTAB first",
        "\rCR first",
        "say \"hi\", twice \"\"",
        "a,b,c",
        "line one\r\nline two",
        "bad bytes \u{FFFD}\u{FFFD} here",
        "plain",
    ];
    let mut bulk = String::new();
    for (n, message) in messages.iter().enumerate() {
        bulk.push_str(&format!(
            "{{\"create\":{{\"_index\":\"{index}\",\"_id\":\"m{n}\"}}}}\n"
        ));
        bulk.push_str(
            &json!({
                "@timestamp": format!("2026-03-01T00:00:{n:02}Z"),
                "message": message,
                "host": "h",
                "file_id": "s",
                "offset": n,
            })
            .to_string(),
        );
        bulk.push('\n');
    }
    transfer_support::bulk_refreshed(&bulk);

    let dir = tempfile::tempdir().unwrap();
    let console = Console::start(dir.path(), &es_url(), &index);
    let file = dir.path().join("out.csv");
    download(
        &format!(
            "{}/api/export?q=&from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z&format=csv&fields=message,offset",
            console.url()
        ),
        &file,
        None,
    );
    let script = r#"
import csv, json, sys
with open(sys.argv[1], newline='', encoding='utf-8') as f:
    rows = list(csv.reader(f))
print(json.dumps(rows))
"#;
    let output = Command::new("python3")
        .args(["-c", script])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows: Vec<Vec<String>> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(rows[0], ["message", "offset"]);
    assert_eq!(rows.len(), messages.len() + 1, "{rows:?}");
    for (n, (row, message)) in rows[1..].iter().zip(messages).enumerate() {
        let dangerous = message.starts_with(['=', '+', '-', '@', '\t', '\r']);
        let expected = if dangerous {
            format!("'{message}")
        } else {
            message.to_string()
        };
        assert_eq!(row[0], expected, "row {n}");
        assert_eq!(row[1], n.to_string());
    }
    // Each raw cell is quoted.
    let raw = std::fs::read_to_string(&file).unwrap();
    assert!(raw.contains("\"'=cmd|' /C calc'!A0\""), "{raw}");
    assert!(raw.contains("\"say \"\"hi\"\", twice \"\"\"\"\""), "{raw}");
    es("DELETE", &index, None);
}

/// A viewer may export; the audit line names them, the query and the rows.
#[test]
fn a_viewer_exports_and_the_export_is_audited() {
    let index = common::unique("export-audit");
    create_line_index(&index);
    for n in 0..3 {
        es(
            "PUT",
            &format!("{index}/_doc/d{n}?refresh=true"),
            Some(
                &json!({"@timestamp": "2026-03-01T00:00:00Z", "message": format!("audited {n}"),
                        "file_id": "s", "offset": n})
                .to_string(),
            ),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let hash = common::console::hash_password("pw");
    let console = Console::launch(dir.path(), |addr| {
        format!(
            "listen = \"{addr}\"\n[[users]]\nname = \"vic\"\npassword_hash = \"{hash}\"\n\
             role = \"viewer\"\n[elasticsearch]\nurl = \"{}\"\nindex_pattern = \"{index}\"\n",
            es_url()
        )
    });
    let jar = dir.path().join("cookies");
    let login = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-c"])
        .arg(&jar)
        .args(["-H", &format!("Origin: {}", console.url())])
        .args(["--data", "name=vic&password=pw&next=/"])
        .arg(format!("{}/login", console.url()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&login.stdout), "303");
    // Without a session: refused.
    let anonymous = common::ops::http_get(console.addr, "/api/export?q=audited").unwrap();
    assert_eq!(anonymous.0, 401);
    let file = dir.path().join("out.ndjson");
    let url = format!(
        "{}/api/export?q={}&from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z&format=ndjson",
        console.url(),
        query("message:audited")
    );
    download(&url, &file, Some(&jar));
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    let audited = wait_for(Duration::from_secs(10), || {
        let log = console.log();
        log.lines()
            .find(|l| l.contains("logship::audit") && l.contains("export"))
            .map(str::to_string)
    })
    .unwrap_or_else(|| panic!("no audit line:\n{}", console.log()));
    for part in ["vic", "message:audited", "rows=3", "ndjson", "complete"] {
        assert!(audited.contains(part), "{part} missing from {audited}");
    }
    es("DELETE", &index, None);
}
