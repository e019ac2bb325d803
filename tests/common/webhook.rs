//! A webhook receiver for the alert tests: accepts POSTs on an address and hands each JSON
//! body, with its headers, to a channel; answers 200.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use serde_json::Value;

/// One POST received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: Value,
    /// Answered 2xx (not refused).
    pub accepted: bool,
}

impl Received {
    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Listens on `addr` (`127.0.0.1:0` for any port); returns the address and the channel.
pub fn listen(addr: &str) -> (std::net::SocketAddr, mpsc::Receiver<Received>) {
    listen_refusing(addr, Arc::new(AtomicBool::new(false)))
}

/// [`listen`], answering 503 while `refuse` is set (what it refused is handed over too).
pub fn listen_refusing(
    addr: &str,
    refuse: Arc<AtomicBool>,
) -> (std::net::SocketAddr, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind(addr).unwrap_or_else(|e| {
        panic!("bind {addr} for a test webhook: {e} (is another test using it?)")
    });
    let local = listener.local_addr().unwrap();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            let mut headers = Vec::new();
            let mut first = true;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                if first {
                    first = false;
                    continue;
                }
                if let Some((name, value)) = line.split_once(':') {
                    let name = name.trim().to_ascii_lowercase();
                    if name == "content-length" {
                        length = value.trim().parse().unwrap_or(0);
                    }
                    headers.push((name, value.trim().to_string()));
                }
            }
            let mut body = vec![0u8; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let accepted = !refuse.load(Ordering::SeqCst);
            let answer: &[u8] = if accepted {
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            } else {
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            };
            let _ = stream.write_all(answer);
            if let Ok(body) = serde_json::from_slice(&body) {
                let received = Received {
                    headers,
                    body,
                    accepted,
                };
                if sender.send(received).is_err() {
                    return;
                }
            }
        }
    });
    (local, receiver)
}
