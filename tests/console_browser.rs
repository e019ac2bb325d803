//! The console in a real browser: Debian's headless Chromium, driven over WebDriver by
//! `chromedriver` (both installed by `scripts/deps.sh`), against a console reading lines the real
//! agent and transfer shipped into real Elasticsearch.
//!
//! One test walks what a person does: types a query and sees the hits with the term marked, opens
//! a hit's context and sees the marked line between its neighbours in file order, opens the live
//! tail and sees a line written to the file appear, pauses it and resumes. Each step saves a screenshot under
//! `target/screenshots/` (the README's pictures are copies of them).
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod transfer_support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::agent::append_lines;
use common::browser::{browser, click, screenshot, texts, wait_texts, ChromeDriver};
use common::console::{hash_password, Console};
use common::{es_url, wait_for};
use fantoccini::{Client, Locator};
use serde_json::json;
use transfer_support::Shipping;

/// The lines of `app.log`: 60 lines, three of them errors with a timeout.
fn app_lines() -> Vec<String> {
    (0..60)
        .map(|i| match i {
            17 => "ERROR payment timeout after 30s order=4711 user=42".to_string(),
            33 => "ERROR upstream timeout calling inventory order=4712".to_string(),
            48 => "ERROR db timeout on replica-2 order=4713".to_string(),
            _ => format!(
                "INFO request {i:02} GET /api/orders/{} 200 in {}ms",
                4700 + i,
                3 + i % 7
            ),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_searches_opens_context_and_follows_the_tail_in_chromium() {
    let shipping = Shipping::start("console-browser");
    let app = shipping.logs.join("app.log");
    let lines = app_lines();
    append_lines(&app, &lines);
    tokio::task::block_in_place(|| {
        shipping.wait_indexed(lines.len() as u64, Duration::from_secs(120))
    });

    let console = Console::start(shipping.dir(), &es_url(), &shipping.setup.index);
    let driver = ChromeDriver::start(&shipping.dir().join("chromedriver.log"));
    let client = browser(&driver, &shipping.dir().join("chromium-profile")).await;
    let base = format!("http://{}", console.addr);

    // Search: type a query, submit, see the three hits, newest first, the term marked.
    client.goto(&format!("{base}/")).await.unwrap();
    let q = client.find(Locator::Id("q")).await.unwrap();
    q.send_keys("timeout AND ERROR").await.unwrap();
    click(&client, Locator::Css("#range option[value='now-1h']")).await;
    click(&client, Locator::Id("go")).await;
    let hits = wait_texts(&client, "#hits td.message", Duration::from_secs(20), |t| {
        t.len() == 3
    })
    .await;
    assert!(hits[0].contains("order=4713"), "newest first: {hits:?}");
    assert!(hits[2].contains("order=4711"), "newest first: {hits:?}");
    let marked = texts(&client, "#hits td.message mark").await;
    assert!(
        marked.iter().any(|m| m == "timeout"),
        "the matched term is highlighted: {marked:?}"
    );
    let summary = texts(&client, "#summary").await;
    assert_eq!(summary, ["3 hits"]);
    let url = client.current_url().await.unwrap();
    assert!(
        url.query().unwrap_or("").contains("q=timeout"),
        "the search lives in the URL: {url}"
    );
    let bars = client
        .find_all(Locator::Css("#histogram rect"))
        .await
        .unwrap();
    assert!(!bars.is_empty(), "the histogram is drawn");
    let facets = texts(&client, "#facets a.facet").await;
    assert!(
        facets
            .iter()
            .any(|f| f.contains("app.log") && f.ends_with('3')),
        "the file facet counts the hits: {facets:?}"
    );
    screenshot(&client, "console-search.png").await;

    // Context: the oldest hit's link shows it marked between its neighbours, in file order.
    let links = client
        .find_all(Locator::Css("#hits a.context-link"))
        .await
        .unwrap();
    links[2].click().await.unwrap();
    let marked = wait_texts(
        &client,
        "#lines tr.hit td.message",
        Duration::from_secs(20),
        |t| t.len() == 1,
    )
    .await;
    assert_eq!(marked[0], lines[17]);
    let shown = texts(&client, "#lines td.message").await;
    assert_eq!(shown, lines, "all 60 lines of the file, in file order");
    let offsets: Vec<u64> = texts(&client, "#lines td.offset")
        .await
        .iter()
        .map(|o| o.parse().unwrap())
        .collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    assert!(client
        .current_url()
        .await
        .unwrap()
        .path()
        .starts_with("/context/"));
    screenshot(&client, "console-context.png").await;

    // Live tail: a line written to the file appears without reloading.
    client
        .goto(&format!("{base}/tail?q=tailneedle"))
        .await
        .unwrap();
    wait_texts(&client, "#tail-status", Duration::from_secs(10), |t| {
        t.iter().any(|s| s.contains("tailneedle"))
    })
    .await;
    // The poller's first round (what is there already) passes nothing on.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let written = Instant::now();
    append_lines(&app, &["WARN tailneedle: cache miss storm".to_string()]);
    let tail = wait_texts(
        &client,
        "#tail-lines td.message",
        Duration::from_secs(30),
        |t| t.iter().any(|s| s.contains("cache miss storm")),
    )
    .await;
    let latency = written.elapsed();
    eprintln!("live tail: the line appeared {latency:?} after it was written");
    assert_eq!(tail.len(), 1, "only the new matching line: {tail:?}");
    screenshot(&client, "console-tail.png").await;
    assert!(
        latency <= Duration::from_secs(5),
        "the line took {latency:?} from the file to the page (agent, Kafka, transfer, \
         Elasticsearch refresh, tail poll)"
    );

    // Paused, new lines wait (and the status says how many); resumed, they appear in order.
    click(&client, Locator::Id("pause")).await;
    append_lines(
        &app,
        &[
            "WARN tailneedle: second".to_string(),
            "WARN tailneedle: third".to_string(),
        ],
    );
    wait_texts(&client, "#tail-status", Duration::from_secs(30), |t| {
        t.iter().any(|s| s.contains("paused: 2 new lines waiting"))
    })
    .await;
    assert_eq!(texts(&client, "#tail-lines td.message").await.len(), 1);
    click(&client, Locator::Id("pause")).await;
    let tail = texts(&client, "#tail-lines td.message").await;
    assert_eq!(
        tail,
        [
            "WARN tailneedle: cache miss storm",
            "WARN tailneedle: second",
            "WARN tailneedle: third"
        ]
    );

    client.close().await.unwrap();
    assert_no_csp_violation(&console);
    drop(console);
    shipping.stop();
}

/// Clicks `button` and waits until the browser shows a new document (a form post).
async fn submit(client: &Client, button: Locator<'_>) {
    client
        .execute("document.documentElement.dataset.stale = '1'", vec![])
        .await
        .unwrap();
    click(client, button).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let fresh = client
            .execute(
                "return document.readyState === 'complete' && !document.documentElement.dataset.stale",
                vec![],
            )
            .await
            .map(|v| v == json!(true))
            .unwrap_or(false);
        if fresh {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the form post never led to a new page"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Fills the sign-in form and submits it.
async fn sign_in(client: &Client, name: &str, password: &str) {
    for (id, text) in [("name", name), ("password", password)] {
        let input = client.find(Locator::Id(id)).await.unwrap();
        input.clear().await.unwrap();
        input.send_keys(text).await.unwrap();
    }
    submit(client, Locator::Id("sign-in")).await;
}

async fn path_of(client: &Client) -> String {
    let url = client.current_url().await.unwrap();
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

/// A page on another origin (another port of 127.0.0.1: another origin, but the same site, so
/// the browser does send a `SameSite=Lax` cookie along) whose form posts, as soon as it loads,
/// a collect entry to the console: the classic cross-site request forgery.
fn forging_site(target: &str) -> SocketAddr {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // text/plain posts the body `name=value`: together, a JSON array.
    let page = format!(
        "<!doctype html><html><body><form method=\"post\" enctype=\"text/plain\" action=\"{target}\">\
         <input type=\"hidden\" name='[{{\"topic\":\"forged\",\"path\":\"/var/log/forged' value='.log\"}}]'>\
         </form><script>document.forms[0].submit()</script></body></html>"
    );
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    addr
}

const EDITOR_PASSWORD: &str = "ed-Secret-4431";
const VIEWER_PASSWORD: &str = "vi-Secret-9072";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_roles_csrf_and_throttling_and_an_editors_change_reaches_the_agent_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let prefix = format!("/logship-console-{}", common::unique("users"));
    let host = common::unique("host");
    let topic = common::unique("console-collect");
    let agent_config = dir.path().join("agent.toml");
    std::fs::write(
        &agent_config,
        format!(
            "host = \"{host}\"\ndata_dir = \"{data}\"\nrescan_interval_ms = 200\n\
             [kafka]\nbrokers = \"{brokers}\"\n\n[etcd]\nendpoints = [\"{etcd}\"]\nprefix = \"{prefix}\"\n\
             allowed_paths = [\"{logs}\"]\n",
            data = dir.path().join("data").display(),
            brokers = common::kafka_brokers(),
            etcd = common::etcd_endpoint(),
            logs = logs.display(),
        ),
    )
    .unwrap();
    let lines: Vec<String> = (0..50)
        .map(|i| format!("collected from the console {i}"))
        .collect();
    append_lines(&logs.join("app.log"), &lines);
    let agent = common::agent::AgentProcess::start(&agent_config);
    let mut reader = common::agent::TopicReader::new(&topic);

    let (editor_hash, viewer_hash) = (
        hash_password(EDITOR_PASSWORD),
        hash_password(VIEWER_PASSWORD),
    );
    let console = Console::launch(dir.path(), |addr| {
        format!(
            "listen = \"{addr}\"\n\
             [[users]]\nname = \"ed\"\npassword_hash = \"{editor_hash}\"\nrole = \"editor\"\n\
             [[users]]\nname = \"vi\"\npassword_hash = \"{viewer_hash}\"\nrole = \"viewer\"\n\
             [elasticsearch]\nurl = \"{es}\"\nindex_pattern = \"logship-console-users-*\"\n\
             [etcd]\nendpoints = [\"{etcd}\"]\nprefix = \"{prefix}\"\n",
            es = es_url(),
            etcd = common::etcd_endpoint(),
        )
    });
    let base = console.url();
    let driver = ChromeDriver::start(&dir.path().join("chromedriver.log"));
    let client = browser(&driver, &dir.path().join("chromium-profile")).await;
    let collect_page = format!("/collect?host={host}");

    // Anonymous: the sign-in page, which will lead back to the page asked for.
    client.goto(&format!("{base}{collect_page}")).await.unwrap();
    assert_eq!(
        path_of(&client).await,
        format!("/login?next=/collect%3Fhost%3D{host}")
    );
    screenshot(&client, "login.png").await;
    let (status, _) = console.get("/api/me");
    assert_eq!(status, 401, "the API refuses the anonymous");

    // A wrong password five times: then even the right one has to wait.
    for attempt in 1..=5 {
        sign_in(&client, "vi", "guess").await;
        let error = texts(&client, "#login-error").await;
        assert_eq!(error, ["Wrong name or password."], "attempt {attempt}");
    }
    sign_in(&client, "vi", VIEWER_PASSWORD).await;
    let error = texts(&client, "#login-error").await;
    assert!(
        error.len() == 1 && error[0].starts_with("Too many failed sign-ins: try again in"),
        "{error:?}"
    );
    screenshot(&client, "login-slowed.png").await;
    assert_eq!(path_of(&client).await, "/login");
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // The viewer sees the collect page but cannot save, and the API refuses the write.
    sign_in(&client, "vi", VIEWER_PASSWORD).await;
    assert_eq!(path_of(&client).await, collect_page);
    wait_texts(&client, "#who", Duration::from_secs(10), |t| {
        t == ["vi (viewer)"]
    })
    .await;
    wait_texts(&client, "#collect-info", Duration::from_secs(10), |t| {
        t.iter().any(|s| s.contains("no entries yet"))
    })
    .await;
    let save = client.find(Locator::Id("collect-save")).await.unwrap();
    assert!(
        save.attr("disabled").await.unwrap().is_some(),
        "Save is disabled for viewers"
    );
    let status = client
        .execute(
            "return fetch('/api/collect/' + arguments[0], { method: 'POST', \
             headers: { 'X-CSRF-Token': me.csrf, 'Content-Type': 'application/json' }, body: '[]' }) \
             .then((r) => r.status)",
            vec![json!(host)],
        )
        .await
        .unwrap();
    assert_eq!(status, json!(403), "a viewer's write is forbidden");
    click(&client, Locator::Id("sign-out")).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path_of(&client).await.starts_with("/login") {
        assert!(
            Instant::now() < deadline,
            "signing out leads to the sign-in page"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The editor: a refused value shows its reason; a good one is saved and the agent follows it.
    client.goto(&format!("{base}{collect_page}")).await.unwrap();
    sign_in(&client, "ed", EDITOR_PASSWORD).await;
    wait_texts(&client, "#who", Duration::from_secs(10), |t| {
        t == ["ed (editor)"]
    })
    .await;
    wait_texts(&client, "#collect-info", Duration::from_secs(10), |t| {
        t.iter().any(|s| s.contains("no entries yet"))
    })
    .await;
    let entries = client.find(Locator::Id("collect-entries")).await.unwrap();
    entries.clear().await.unwrap();
    entries
        .send_keys(&format!(r#"[{{"path": "{}/*.log"}}]"#, logs.display()))
        .await
        .unwrap();
    click(&client, Locator::Id("collect-save")).await;
    wait_texts(&client, "#collect-result", Duration::from_secs(10), |t| {
        t.iter()
            .any(|s| s.contains("refused: entry 0") && s.contains("topic"))
    })
    .await;
    screenshot(&client, "collect-refused.png").await;
    entries.clear().await.unwrap();
    entries
        .send_keys(&format!(
            r#"[{{"path": "{}/*.log", "topic": "{topic}"}}]"#,
            logs.display()
        ))
        .await
        .unwrap();
    click(&client, Locator::Id("collect-save")).await;
    wait_texts(&client, "#collect-result", Duration::from_secs(10), |t| {
        t.iter().any(|s| s.starts_with("saved: revision"))
    })
    .await;
    screenshot(&client, "collect-saved.png").await;
    let missing =
        tokio::task::block_in_place(|| reader.wait_for_messages(&lines, Duration::from_secs(300)));
    assert!(
        missing.is_empty(),
        "{} lines missing\n{}",
        missing.len(),
        agent.log()
    );

    // A forged cross-site post, with the editor's cookie: refused, nothing written.
    let forger = forging_site(&format!("{base}/api/collect/{host}"));
    client.goto(&format!("http://{forger}/")).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let url = client.current_url().await.unwrap();
        if url.as_str().starts_with(&base) {
            break client
                .find(Locator::Css("body"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the forged form was never posted: {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(body.contains("cross-site request refused"), "{body}");
    let stored = Command::new(common::logship_bin())
        .args([
            "ctl",
            "--etcd",
            &common::etcd_endpoint(),
            "--prefix",
            &prefix,
        ])
        .args(["collect", "get", "--host", &host])
        .output()
        .unwrap();
    let stored = String::from_utf8_lossy(&stored.stdout);
    assert!(
        stored.contains(&topic) && !stored.contains("forged"),
        "{stored}"
    );

    client.close().await.unwrap();
    for (name, log) in [("console", console.log()), ("agent", agent.log())] {
        for password in [EDITOR_PASSWORD, VIEWER_PASSWORD, "guess"] {
            assert!(!log.contains(password), "the {name} log shows a password");
        }
    }
    assert!(
        console.log().contains("console sign-in refused"),
        "{}",
        console.log()
    );
    assert!(agent.terminate());
    assert_no_csp_violation(&console);
}

/// `/api/pipeline` until `check` holds on it (or fails with the last answer).
fn wait_pipeline(console: &Console, what: &str, check: impl Fn(&serde_json::Value) -> bool) {
    let mut last = serde_json::Value::Null;
    let done = wait_for(Duration::from_secs(90), || {
        let (status, answer) = console.get("/api/pipeline");
        last = answer.clone();
        (status == 200 && check(&answer)).then_some(())
    });
    assert!(done.is_some(), "{what}: /api/pipeline says {last:#}");
}

/// The `/api/pipeline` agent entry of `host`.
fn agent_of<'a>(answer: &'a serde_json::Value, host: &str) -> Option<&'a serde_json::Value> {
    answer["agents"]
        .as_array()?
        .iter()
        .find(|a| a["host"] == host)
}

/// The total lag of the group on `topic`, when it committed offsets there.
fn lag_of(answer: &serde_json::Value, topic: &str) -> Option<i64> {
    let partitions: Vec<&serde_json::Value> = answer["lag"]["partitions"]
        .as_array()?
        .iter()
        .filter(|p| p["topic"] == topic)
        .collect();
    (!partitions.is_empty()).then(|| partitions.iter().filter_map(|p| p["lag"].as_i64()).sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_pages_show_a_hosts_charts_and_where_its_lines_are_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let prefix = format!("/logship-fleet-{}", common::unique("fleet"));
    let host = common::unique("fleet-host");
    let topic = common::unique("fleet-logs");
    let metrics_topic = common::unique("fleet-metrics");
    let group = common::unique("fleet-group");
    let db = common::unique("fleet_db").replace('-', "_");
    let agent_config = dir.path().join("agent.toml");
    std::fs::write(
        &agent_config,
        format!(
            "host = \"{host}\"\ndata_dir = \"{data}\"\nrescan_interval_ms = 200\n\
             [kafka]\nbrokers = \"{brokers}\"\n\
             [[collect]]\npath = \"{logs}/*.log\"\ntopic = \"{topic}\"\n\
             [etcd]\nendpoints = [\"{etcd}\"]\nprefix = \"{prefix}\"\n\
             [host_metrics]\ninterval_ms = 1000\ntopic = \"{metrics_topic}\"\n",
            data = dir.path().join("data").display(),
            brokers = common::kafka_brokers(),
            etcd = common::etcd_endpoint(),
            logs = logs.display(),
        ),
    )
    .unwrap();
    let transfer_config = dir.path().join("transfer.toml");
    std::fs::write(
        &transfer_config,
        format!(
            "[kafka]\nbrokers = \"{brokers}\"\ngroup = \"{group}\"\n\
             topics = [\"{topic}\", \"{metrics_topic}\"]\ncommit_interval_ms = 200\n\
             [batch]\nmax_wait_ms = 200\n\
             [elasticsearch]\nurl = \"{es}\"\nindex = \"{{topic}}\"\n\
             [influxdb]\nurl = \"{influx}\"\ndatabase = \"{db}\"\n",
            brokers = common::kafka_brokers(),
            es = es_url(),
            influx = common::influx::influxdb(),
        ),
    )
    .unwrap();
    append_lines(
        &logs.join("app.log"),
        &(0..100)
            .map(|i| format!("fleet line {i}"))
            .collect::<Vec<_>>(),
    );
    let agent = common::agent::AgentProcess::start(&agent_config);
    let transfer = transfer_support::Transfer::start(&transfer_config, "transfer");
    let console = Console::launch(dir.path(), |addr| {
        format!(
            "listen = \"{addr}\"\n\
             [elasticsearch]\nurl = \"{es}\"\nindex_pattern = \"{topic}\"\n\
             [etcd]\nendpoints = [\"{etcd}\"]\nprefix = \"{prefix}\"\n\
             [influxdb]\nurl = \"{influx}\"\ndatabase = \"{db}\"\n\
             [kafka]\nbrokers = \"{brokers}\"\ntransfer_group = \"{group}\"\n",
            es = es_url(),
            etcd = common::etcd_endpoint(),
            influx = common::influx::influxdb(),
            brokers = common::kafka_brokers(),
        )
    });

    // Everything shipped and indexed: the agent alive with nothing behind, the group at the end
    // of both topics, the index holding the 100 lines.
    wait_pipeline(&console, "caught up", |answer| {
        let Some(agent) = agent_of(answer, &host) else {
            return false;
        };
        let indexed = answer["indices"].as_array().is_some_and(|indices| {
            indices
                .iter()
                .any(|i| i["index"] == topic && i["docs"] == 100)
        });
        agent["alive"] == true
            && agent["progress"]["bytes_behind"] == 0
            && agent["progress"]["files"][0]["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("app.log"))
            && lag_of(answer, &topic) == Some(0)
            && lag_of(answer, &metrics_topic).is_some()
            && indexed
    });

    // The transfer stops; more lines and samples pile up in Kafka: the lag says how many
    // records (the agent bundles lines into records).
    transfer.terminate(Duration::from_secs(30));
    append_lines(
        &logs.join("app.log"),
        &(100..150)
            .map(|i| format!("fleet line {i}"))
            .collect::<Vec<_>>(),
    );
    wait_pipeline(&console, "lag while the transfer is away", |answer| {
        lag_of(answer, &topic).is_some_and(|lag| lag > 0)
    });
    let driver = ChromeDriver::start(&dir.path().join("chromedriver.log"));
    let client = browser(&driver, &dir.path().join("chromium-profile")).await;
    let base = console.url();
    client.goto(&format!("{base}/pipeline")).await.unwrap();
    let lag_cells = format!("#lag tr[data-topic=\"{topic}\"] td.lag");
    wait_texts(&client, &lag_cells, Duration::from_secs(20), |t| {
        t.iter().map(|s| s.parse::<i64>().unwrap_or(0)).sum::<i64>() > 0
    })
    .await;
    let state = format!("#agents tr[data-host=\"{host}\"] .state");
    wait_texts(&client, &state, Duration::from_secs(20), |t| t == ["alive"]).await;
    screenshot(&client, "pipeline-lag.png").await;

    // The transfer is back: the lag falls to 0 on the page (it refreshes itself).
    let transfer = transfer_support::Transfer::start(&transfer_config, "transfer-again");
    wait_texts(&client, &lag_cells, Duration::from_secs(60), |t| {
        !t.is_empty() && t.iter().all(|s| s == "0")
    })
    .await;
    let docs = format!("#indices tr[data-index=\"{topic}\"] td.number a");
    wait_texts(&client, &docs, Duration::from_secs(30), |t| t == ["150"]).await;
    screenshot(&client, "pipeline.png").await;

    // The host's charts, drawn by the page from InfluxDB's points.
    client
        .goto(&format!("{base}/hosts?host={host}&range=15m"))
        .await
        .unwrap();
    wait_texts(
        &client,
        "#charts figcaption",
        Duration::from_secs(30),
        |t| t.len() == 5 && t[0].starts_with("CPU"),
    )
    .await;
    for title in ["CPU", "Memory used", "Disk used", "Network", "Load"] {
        let figure = client
            .find(Locator::Css(&format!(".chart[data-title=\"{title}\"]")))
            .await
            .unwrap_or_else(|e| panic!("no {title} chart: {e}"));
        let points: usize = figure
            .attr("data-points")
            .await
            .unwrap()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(points > 0, "{title}: no data points");
        let drawn = figure
            .find_all(Locator::Css(".series"))
            .await
            .unwrap()
            .len();
        assert!(drawn > 0, "{title}: nothing drawn");
    }
    let listed = texts(
        &client,
        &format!("#host-list li[data-host=\"{host}\"] .state"),
    )
    .await;
    assert_eq!(listed, ["alive"]);
    screenshot(&client, "hosts.png").await;

    // SIGKILL: the lease runs out and the agent is listed dead, on both pages.
    agent.kill9();
    client.goto(&format!("{base}/pipeline")).await.unwrap();
    wait_texts(&client, &state, Duration::from_secs(40), |t| t == ["dead"]).await;
    screenshot(&client, "pipeline-dead.png").await;
    client
        .goto(&format!("{base}/hosts?host={host}"))
        .await
        .unwrap();
    wait_texts(
        &client,
        &format!("#host-list li[data-host=\"{host}\"] .state"),
        Duration::from_secs(10),
        |t| t == ["dead"],
    )
    .await;
    client.close().await.unwrap();
    transfer.terminate(Duration::from_secs(30));
    common::influx::drop_database(&db);
    assert_no_csp_violation(&console);
}

/// A facet whose value is a 200-character path and whose count is 12,345 stays on one line: the
/// path is shortened in the middle (the whole of it on hover), the count is whole and never
/// wraps under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_path_and_a_large_count_fit_on_one_facet_line_in_chromium() {
    const LINES: usize = 12_345;
    let shipping = Shipping::start("console-facet");
    let prefix = format!("{}/", shipping.logs.display());
    let name_len = 200usize.saturating_sub(prefix.len() + ".log".len()).max(1);
    let name: String = "payments-gateway-eu-west-"
        .chars()
        .cycle()
        .take(name_len)
        .collect();
    let file = shipping.logs.join(format!("{name}.log"));
    let path = file.display().to_string();
    assert!(path.len() >= 200, "{}", path.len());
    let lines: Vec<String> = (0..LINES).map(|i| format!("INFO charge {i} ok")).collect();
    append_lines(&file, &lines);
    tokio::task::block_in_place(|| shipping.wait_indexed(LINES as u64, Duration::from_secs(180)));

    let console = Console::start(shipping.dir(), &es_url(), &shipping.setup.index);
    let driver = ChromeDriver::start(&shipping.dir().join("chromedriver.log"));
    let client = browser(&driver, &shipping.dir().join("chromium-profile")).await;
    client
        .goto(&format!(
            "http://{}/?q=charge&from=now-1h&to=now",
            console.addr
        ))
        .await
        .unwrap();
    wait_texts(
        &client,
        "#facets a.facet .count",
        Duration::from_secs(30),
        |t| t.iter().any(|c| c == "12,345"),
    )
    .await;
    // The facet's box, the value's and the count's, and the line height, as the page laid them out.
    let layout = client
        .execute(
            "const a = [...document.querySelectorAll('#facets a.facet')]
                 .find(a => a.querySelector('.count').textContent === '12,345');
             const v = a.querySelector('.value'), c = a.querySelector('.count');
             const line = parseFloat(getComputedStyle(a).lineHeight);
             return { height: a.getBoundingClientRect().height, line,
                      valueTop: v.getBoundingClientRect().top, countTop: c.getBoundingClientRect().top,
                      valueRight: v.getBoundingClientRect().right, countLeft: c.getBoundingClientRect().left,
                      clipped: v.scrollWidth > v.clientWidth,
                      shown: v.textContent, title: v.title };",
            vec![],
        )
        .await
        .unwrap();
    screenshot(&client, "facet-long-path.png").await;
    let number = |key: &str| {
        layout[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key}: {layout}"))
    };
    assert!(
        number("height") < 1.5 * number("line"),
        "the facet wrapped onto more than one line: {layout}"
    );
    assert_eq!(number("valueTop"), number("countTop"), "{layout}");
    assert!(number("valueRight") <= number("countLeft"), "{layout}");
    let shown = layout["shown"].as_str().unwrap_or_default();
    assert!(shown.contains('…') && shown.len() < path.len(), "{layout}");
    assert!(
        shown.ends_with(".log"),
        "the end of the path is kept: {layout}"
    );
    assert_eq!(
        layout["clipped"], false,
        "what is shown fits, not cut: {layout}"
    );
    assert_eq!(
        layout["title"].as_str(),
        Some(path.as_str()),
        "the full path on hover"
    );
    assert_no_csp_violation(&console);
}

/// Fails when the console logged a Content-Security-Policy violation: a browser reports each
/// one to the console's `/csp-report` (the policy allows no inline script or style), so a page
/// that needed something the policy refuses fails its test.
fn assert_no_csp_violation(console: &Console) {
    let log = console.log();
    assert!(
        !log.contains("content security policy violation"),
        "the page broke the console's Content-Security-Policy:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_run_under_the_csp_and_a_violation_is_reported_to_the_console_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let console = Console::start(dir.path(), &es_url(), "logs-csp-none-*");
    let driver = ChromeDriver::start(&dir.path().join("chromedriver.log"));
    let client = browser(&driver, &dir.path().join("chromium-profile")).await;
    for path in [
        "/",
        "/tail",
        "/collect",
        "/hosts",
        "/pipeline",
        "/storage",
        "/alerts",
        "/context/x",
        "/login",
    ] {
        client
            .goto(&format!("http://{}{path}", console.addr))
            .await
            .unwrap();
        // Every page script ran (the router is the last one loaded) under the policy.
        let ran = client
            .execute(
                "return typeof route === 'function' || !!document.getElementById('login');",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(ran, json!(true), "{path}: the page's scripts did not run");
    }
    client
        .goto(&format!("http://{}/", console.addr))
        .await
        .unwrap();
    // Give the reports of those pages time to arrive: none may.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_no_csp_violation(&console);

    // What the policy refuses: an inline script and a style attribute. Both are blocked and
    // reported, and the check above would fail on them.
    let blocked = client
        .execute(
            "const s = document.createElement('script');
             s.textContent = 'window.injected = true;';
             document.body.append(s);
             document.body.setAttribute('style', 'background: red');
             return { injected: window.injected === true,
                      styled: getComputedStyle(document.body).backgroundColor === 'rgb(255, 0, 0)' };",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(blocked, json!({"injected": false, "styled": false}));
    let reported = tokio::task::block_in_place(|| {
        wait_for(Duration::from_secs(20), || {
            console
                .log()
                .contains("content security policy violation")
                .then_some(())
        })
    });
    assert!(
        reported.is_some(),
        "no violation report reached the console:\n{}",
        console.log()
    );
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert_no_csp_violation(&console)
    }));
    assert!(
        caught.is_err(),
        "the check must fail on a reported violation"
    );
}

/// Documents whose `detail` needs escaping in `query_string`: quotes, backslashes, colons,
/// reserved words.
const TRICKY: [&str; 5] = ["say \"hi\"", "C:\\temp\\x", "a:b", "AND", "x OR y"];

/// Columns, filters, export and saved searches as a person uses them: two fields chosen as
/// columns (in the URL), a click on a value filters in and out (each tricky value matches
/// exactly its own line), every hit exported from the page with its count, an editor's shared
/// search opened by another user by its URL with its columns, a viewer's personal one saved and
/// reopened from the menu.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn columns_filters_export_and_saved_searches_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let index = common::unique("console-columns");
    let created = transfer_support::es(
        "PUT",
        &index,
        Some(
            r#"{"mappings": {"properties": {"@timestamp": {"type": "date"},
                "message": {"type": "text"}, "host": {"type": "keyword"},
                "file": {"type": "keyword"}, "file_id": {"type": "keyword"},
                "offset": {"type": "long"}, "level": {"type": "keyword"},
                "detail": {"type": "keyword"}}}}"#,
        ),
    );
    assert_eq!(created["acknowledged"], true, "{created}");
    let mut bulk = String::new();
    let levels = ["error", "warn", "info"];
    let total = 30;
    for n in 0..total {
        let detail = TRICKY.get(n).copied().unwrap_or("plain");
        bulk.push_str(&format!(
            "{{\"create\":{{\"_index\":\"{index}\",\"_id\":\"d{n}\"}}}}\n{}\n",
            json!({"@timestamp": format!("2026-03-01T00:00:{n:02}Z"), "message": format!("line {n}"),
                   "host": format!("web-{}", n % 2), "file": "/var/log/app.log", "file_id": "s",
                   "offset": n, "level": levels[n % 3], "detail": detail})
        ));
    }
    transfer_support::bulk_refreshed(&bulk);

    let prefix = format!("/{}", common::unique("columns"));
    let (editor_hash, viewer_hash) = (
        hash_password(EDITOR_PASSWORD),
        hash_password(VIEWER_PASSWORD),
    );
    let console = Console::launch(dir.path(), |addr| {
        format!(
            "listen = \"{addr}\"\n\
             [[users]]\nname = \"ed\"\npassword_hash = \"{editor_hash}\"\nrole = \"editor\"\n\
             [[users]]\nname = \"vi\"\npassword_hash = \"{viewer_hash}\"\nrole = \"viewer\"\n\
             [elasticsearch]\nurl = \"{es}\"\nindex_pattern = \"{index}\"\n\
             [etcd]\nendpoints = [\"{etcd}\"]\nprefix = \"{prefix}\"\n",
            es = es_url(),
            etcd = common::etcd_endpoint(),
        )
    });
    let base = console.url();
    let driver = ChromeDriver::start(&dir.path().join("chromedriver.log"));
    let client = browser(&driver, &dir.path().join("chromium-profile")).await;
    let range = "from=2026-03-01T00%3A00%3A00Z&to=2026-03-01T01%3A00%3A00Z";
    client.goto(&format!("{base}/login")).await.unwrap();
    sign_in(&client, "ed", EDITOR_PASSWORD).await;
    client.goto(&format!("{base}/?{range}")).await.unwrap();
    wait_texts(&client, "#summary", Duration::from_secs(30), |t| {
        t == [format!("{total} hits")]
    })
    .await;

    // Two fields as columns, from the mapping's list.
    click(&client, Locator::Css("#columns-menu summary")).await;
    for field in ["level", "detail"] {
        wait_texts(&client, "#field-list label", Duration::from_secs(10), |t| {
            t.iter().any(|l| l.starts_with(&format!("{field} ")))
        })
        .await;
        click(
            &client,
            Locator::Css(&format!("#field-list input[data-field='{field}']")),
        )
        .await;
        wait_texts(&client, "#hits thead th", Duration::from_secs(10), |t| {
            t.iter().any(|h| h == field)
        })
        .await;
    }
    let path = path_of(&client).await;
    assert!(path.contains("cols=level%2Cdetail"), "{path}");
    let headers = texts(&client, "#hits thead th").await;
    assert_eq!(headers[..4], ["time", "level", "detail", "message"]);
    screenshot(&client, "console-columns.png").await;
    let with_columns = format!("{base}{path}");

    // A click on each tricky value finds exactly its own line.
    for value in TRICKY {
        client.goto(&with_columns).await.unwrap();
        wait_texts(&client, "#summary", Duration::from_secs(30), |t| {
            t == [format!("{total} hits")]
        })
        .await;
        let clicked = client
            .execute(
                "const cell = [...document.querySelectorAll(\"td.col[data-field='detail']\")]
                     .find(c => c.querySelector('.value') && c.querySelector('.value').textContent === arguments[0]);
                 if (!cell) return false;
                 cell.querySelector('a.filter-in').click();
                 return true;",
                vec![json!(value)],
            )
            .await
            .unwrap();
        assert_eq!(clicked, json!(true), "no cell shows {value:?}");
        wait_texts(&client, "#summary", Duration::from_secs(30), |t| {
            t == ["1 hits"]
        })
        .await;
        let shown = texts(&client, "td.col[data-field='detail'] .value").await;
        assert_eq!(shown, [value], "filtering in {value:?}");
        assert_eq!(texts(&client, "#error").await, [""], "{value:?}");
    }
    // And out: a click on the minus of an error's level leaves everything but the errors.
    client.goto(&with_columns).await.unwrap();
    wait_texts(&client, "#summary", Duration::from_secs(30), |t| {
        t == [format!("{total} hits")]
    })
    .await;
    client
        .execute(
            "[...document.querySelectorAll(\"td.col[data-field='level']\")]
                 .find(c => c.querySelector('.value').textContent === 'error')
                 .querySelector('a.filter-out').click();",
            vec![],
        )
        .await
        .unwrap();
    wait_texts(&client, "#summary", Duration::from_secs(30), |t| {
        t == [format!("{} hits", total - total / 3)]
    })
    .await;
    let q = texts(&client, "#hits td.col[data-field='level'] .value").await;
    assert!(q.iter().all(|l| l != "error"), "{q:?}");
    let filtered_out = path_of(&client).await;
    assert!(
        filtered_out.contains("NOT+level%3A%22error%22"),
        "{filtered_out}"
    );

    // Export from the page: every hit of the search, counted.
    click(&client, Locator::Id("export-csv")).await;
    wait_texts(&client, "#export-status", Duration::from_secs(30), |t| {
        t == [format!("exported {} rows", total - total / 3)]
    })
    .await;

    // The editor shares this search.
    click(&client, Locator::Id("save-search")).await;
    let name = client.find(Locator::Id("save-name")).await.unwrap();
    name.send_keys("no errors").await.unwrap();
    click(&client, Locator::Id("save-shared")).await;
    click(&client, Locator::Id("save-confirm")).await;
    wait_texts(&client, "#shared-link", Duration::from_secs(10), |t| {
        t.len() == 1 && t[0].ends_with("/s/no%20errors")
    })
    .await;
    screenshot(&client, "console-saved.png").await;
    assert_no_csp_violation(&console);

    // The viewer opens it by its URL, columns and all.
    click(&client, Locator::Id("sign-out")).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.find(Locator::Id("name")).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "no sign-in page after signing out"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sign_in(&client, "vi", VIEWER_PASSWORD).await;
    client.goto(&format!("{base}/s/no%20errors")).await.unwrap();
    wait_texts(&client, "#summary", Duration::from_secs(30), |t| {
        t == [format!("{} hits", total - total / 3)]
    })
    .await;
    let headers = texts(&client, "#hits thead th").await;
    assert_eq!(headers[..4], ["time", "level", "detail", "message"]);
    let save_shared = client.find(Locator::Id("save-shared-label")).await.unwrap();
    assert!(
        !save_shared.is_displayed().await.unwrap(),
        "a viewer is offered to share"
    );

    // The viewer saves a personal search with one column, and reopens it from the menu.
    client
        .goto(&format!("{base}/?q=level%3Awarn&{range}&cols=host"))
        .await
        .unwrap();
    wait_texts(&client, "#summary", Duration::from_secs(30), |t| {
        t == [format!("{} hits", total / 3)]
    })
    .await;
    click(&client, Locator::Id("save-search")).await;
    let name = client.find(Locator::Id("save-name")).await.unwrap();
    name.send_keys("my warnings").await.unwrap();
    click(&client, Locator::Id("save-confirm")).await;
    wait_texts(&client, "#saved option", Duration::from_secs(10), |t| {
        t.iter().any(|o| o == "my warnings")
    })
    .await;
    client.goto(&format!("{base}/?{range}")).await.unwrap();
    wait_texts(&client, "#summary", Duration::from_secs(30), |t| {
        t == [format!("{total} hits")]
    })
    .await;
    wait_texts(&client, "#saved option", Duration::from_secs(10), |t| {
        t.iter().any(|o| o == "my warnings")
    })
    .await;
    client
        .find(Locator::Id("saved"))
        .await
        .unwrap()
        .select_by_value("personal/my warnings")
        .await
        .unwrap();
    wait_texts(&client, "#summary", Duration::from_secs(30), |t| {
        t == [format!("{} hits", total / 3)]
    })
    .await;
    let headers = texts(&client, "#hits thead th").await;
    assert_eq!(headers[..3], ["time", "host", "message"]);

    // Saved searches travel as JSON: what "Export saved" downloads, "Import saved" reads back —
    // here into a fresh console (its own etcd prefix), whose viewer gets both searches (the
    // shared one as a personal one: a viewer cannot share).
    let exported = client.execute("return savedJson();", vec![]).await.unwrap();
    let exported: serde_json::Value = serde_json::from_str(exported.as_str().unwrap()).unwrap();
    assert_eq!(exported["personal"][0]["name"], "my warnings", "{exported}");
    assert_eq!(exported["shared"][0]["name"], "no errors", "{exported}");
    assert_eq!(exported["shared"][0]["columns"], json!(["level", "detail"]));
    let file = dir.path().join("saved.json");
    std::fs::write(&file, exported.to_string()).unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let other_prefix = format!("/{}", common::unique("columns-import"));
    let other = Console::launch(other_dir.path(), |addr| {
        format!(
            "listen = \"{addr}\"\n\
             [[users]]\nname = \"vi\"\npassword_hash = \"{viewer_hash}\"\nrole = \"viewer\"\n\
             [elasticsearch]\nurl = \"{es}\"\nindex_pattern = \"{index}\"\n\
             [etcd]\nendpoints = [\"{etcd}\"]\nprefix = \"{other_prefix}\"\n",
            es = es_url(),
            etcd = common::etcd_endpoint(),
        )
    });
    client
        .goto(&format!("{}/login", other.url()))
        .await
        .unwrap();
    sign_in(&client, "vi", VIEWER_PASSWORD).await;
    client
        .goto(&format!("{}/?{range}", other.url()))
        .await
        .unwrap();
    wait_texts(&client, "#summary", Duration::from_secs(30), |t| {
        t == [format!("{total} hits")]
    })
    .await;
    client
        .find(Locator::Id("import-searches"))
        .await
        .unwrap()
        .send_keys(&file.display().to_string())
        .await
        .unwrap();
    wait_texts(&client, "#saved-info", Duration::from_secs(10), |t| {
        t == ["imported 2 of 2"]
    })
    .await;
    let options = texts(&client, "#saved option").await;
    assert!(
        options.contains(&"my warnings".to_string()) && options.contains(&"no errors".to_string()),
        "{options:?}"
    );
    client
        .find(Locator::Id("saved"))
        .await
        .unwrap()
        .select_by_value("personal/no errors")
        .await
        .unwrap();
    wait_texts(&client, "#summary", Duration::from_secs(30), |t| {
        t == [format!("{} hits", total - total / 3)]
    })
    .await;
    let headers = texts(&client, "#hits thead th").await;
    assert_eq!(headers[..4], ["time", "level", "detail", "message"]);
    assert_no_csp_violation(&other);
    drop(other);
    // Both consoles are on 127.0.0.1, whose one session cookie now names the other's session.
    client.goto(&format!("{base}/login")).await.unwrap();
    sign_in(&client, "vi", VIEWER_PASSWORD).await;

    // The storage page: the disks against the watermarks, the index (not the transfer's: no
    // deletion day).
    client.goto(&format!("{base}/storage")).await.unwrap();
    wait_texts(
        &client,
        "#storage-indices tbody tr",
        Duration::from_secs(30),
        |t| {
            t.iter()
                .any(|row| row.starts_with(&index) && row.contains("not logship's"))
        },
    )
    .await;
    let nodes = wait_texts(&client, "#nodes tbody tr", Duration::from_secs(30), |t| {
        !t.is_empty()
    })
    .await;
    assert!(nodes.iter().all(|n| n.contains('%')), "{nodes:?}");
    screenshot(&client, "console-storage.png").await;
    assert_no_csp_violation(&console);
    transfer_support::es("DELETE", &index, None);
}
