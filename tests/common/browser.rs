//! Chromium driven through chromedriver (fantoccini) for the console's browser tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use super::ops::free_addr;
use super::{repo_root, wait_for};

/// A running `chromedriver`, killed when dropped.
pub struct ChromeDriver {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl ChromeDriver {
    /// Starts chromedriver, logging to `log`.
    pub fn start(log: &Path) -> ChromeDriver {
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
pub async fn browser(driver: &ChromeDriver, profile: &Path) -> Client {
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

pub fn screenshots() -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub async fn screenshot(client: &Client, name: &str) -> PathBuf {
    let png = client.screenshot().await.expect("screenshot");
    let path = screenshots().join(name);
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
    path
}

/// Clicks the element `locator` finds.
pub async fn click(client: &Client, locator: Locator<'_>) {
    client
        .find(locator)
        .await
        .unwrap_or_else(|e| panic!("no {locator:?} on the page: {e}"))
        .click()
        .await
        .unwrap();
}

/// The text of every element matching `css`, in page order. A page that redraws itself (the
/// pipeline refreshes) may replace an element between finding and reading it: then read again.
pub async fn texts(client: &Client, css: &str) -> Vec<String> {
    let mut attempt = 0;
    'read: loop {
        attempt += 1;
        let mut out = Vec::new();
        for element in client.find_all(Locator::Css(css)).await.unwrap() {
            match element.text().await {
                Ok(text) => out.push(text),
                Err(error) if attempt < 5 => {
                    eprintln!("reading {css} again: {error}");
                    continue 'read;
                }
                Err(error) => panic!("cannot read {css}: {error}"),
            }
        }
        return out;
    }
}

/// Waits until `check` holds on the texts of `css`, or fails with what the page shows.
pub async fn wait_texts(
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
