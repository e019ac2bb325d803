//! The console in a real browser: Debian's headless Chromium, driven over WebDriver by
//! `chromedriver` (both installed by `scripts/deps.sh`), against a console reading lines the real
//! agent and transfer shipped into real Elasticsearch.
//!
//! One test walks what a person does: types a query and sees the hits with the term marked, opens
//! a hit's context and sees the marked line between its neighbours in file order, opens the live
//! tail and sees a line written to the file appear, pauses it and resumes. Each step saves a screenshot under
//! `target/screenshots/` (the README's pictures are copies of them).

mod common;
mod transfer_support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::agent::append_lines;
use common::console::Console;
use common::ops::free_addr;
use common::{es_url, repo_root, wait_for};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use transfer_support::Shipping;

/// A running `chromedriver`, killed when dropped.
struct ChromeDriver {
    child: Child,
    addr: SocketAddr,
}

impl ChromeDriver {
    fn start(log: &Path) -> ChromeDriver {
        let binary = std::env::var("LOGSHIP_CHROMEDRIVER")
            .unwrap_or_else(|_| "/usr/bin/chromedriver".to_string());
        assert!(
            Path::new(&binary).exists(),
            "{binary} is missing: scripts/deps.sh installs Debian's chromium and chromium-driver"
        );
        let addr = free_addr();
        let child = Command::new(&binary)
            .arg(format!("--port={}", addr.port()))
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        let up = wait_for(Duration::from_secs(30), || {
            std::net::TcpStream::connect(addr).ok()
        });
        assert!(up.is_some(), "chromedriver did not listen on {addr}");
        ChromeDriver { child, addr }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A new headless Chromium session with its own empty profile. The flags keep Chromium from
/// reaching for the network (this machine has none) and from needing a GPU or a sandbox (tests
/// may run as root).
async fn browser(driver: &ChromeDriver, profile: &Path) -> Client {
    let chromium =
        std::env::var("LOGSHIP_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_string());
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_string(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,860",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::native()
        .capabilities(caps)
        .connect(&format!("http://{}", driver.addr))
        .await
        .expect("a Chromium session through chromedriver")
}

fn screenshots() -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(client: &Client, name: &str) -> PathBuf {
    let png = client.screenshot().await.expect("screenshot");
    let path = screenshots().join(name);
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
    path
}

/// Clicks the element `locator` finds.
async fn click(client: &Client, locator: Locator<'_>) {
    client
        .find(locator)
        .await
        .unwrap_or_else(|e| panic!("no {locator:?} on the page: {e}"))
        .click()
        .await
        .unwrap();
}

/// The text of every element matching `css`, in page order.
async fn texts(client: &Client, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for element in client.find_all(Locator::Css(css)).await.unwrap() {
        out.push(element.text().await.unwrap());
    }
    out
}

/// Waits until `check` holds on the texts of `css`, or fails with what the page shows.
async fn wait_texts(
    client: &Client,
    css: &str,
    timeout: Duration,
    check: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let now = texts(client, css).await;
        if check(&now) {
            return now;
        }
        if Instant::now() > deadline {
            let error = texts(client, "#error").await;
            let shot = screenshot(client, "failed.png").await;
            panic!(
                "{css} never showed what was expected: {now:?}; error box {error:?}; see {}",
                shot.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

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
    drop(console);
    shipping.stop();
}
