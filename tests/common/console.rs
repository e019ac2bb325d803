//! A running `logship console` for the tests, and URL-encoding of queries.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::ops::{free_addr, http_get};
use super::{logship_bin, wait_for};

/// A running `logship console`, killed when dropped.
pub struct Console {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Console {
    /// Starts a console on a free port, searching `index_pattern`; waits until it answers.
    pub fn start(dir: &Path, es: &str, index_pattern: &str) -> Console {
        Console::start_with(dir, es, index_pattern, "")
    }

    /// [`Console::start`] with `es_extra` added to its `[elasticsearch]` table (CA, credentials).
    pub fn start_with(dir: &Path, es: &str, index_pattern: &str, es_extra: &str) -> Console {
        Console::launch(dir, |addr| {
            format!(
                "listen = \"{addr}\"\n[elasticsearch]\nurl = \"{es}\"\nindex_pattern = \"{index_pattern}\"\n{es_extra}\n"
            )
        })
    }

    /// Starts a console on a free port with the configuration `text(addr)`; waits until it
    /// answers (any status).
    pub fn launch(dir: &Path, text: impl FnOnce(SocketAddr) -> String) -> Console {
        let addr = free_addr();
        let config = dir.join("console.toml");
        std::fs::write(&config, text(addr)).unwrap();
        let log = dir.join("console.log");
        let child = Command::new(logship_bin())
            .args(["console", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start logship console");
        let console = Console { child, addr, log };
        // Listening (plain or TLS) is enough: the tests ask what they need next.
        let up = wait_for(Duration::from_secs(30), || {
            std::net::TcpStream::connect(addr).ok().map(drop)
        });
        assert!(up.is_some(), "console did not answer:\n{}", console.log());
        console
    }

    /// The process id (for signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET `path`: status and JSON body.
    pub fn get(&self, path: &str) -> (u16, Value) {
        let (code, body) = http_get(self.addr, path)
            .unwrap_or_else(|| panic!("no answer to {path}:\n{}", self.log()));
        let json = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"));
        (code, json)
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        super::keep_log(&self.log);
    }
}

/// `text` percent-encoded for a URL's query string.
pub fn query(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The argon2 hash of `password`, printed by `logship console hash-password`.
pub fn hash_password(password: &str) -> String {
    use std::io::Write as _;
    let mut child = Command::new(logship_bin())
        .args(["console", "hash-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run logship console hash-password");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write the password");
    let output = child.wait_with_output().expect("hash-password output");
    assert!(output.status.success());
    let hash = String::from_utf8_lossy(&output.stdout).trim().to_string();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    hash
}
