//! A TCP proxy in front of the broker that reads the Kafka protocol's framing and can hold back
//! the broker's answers to chosen requests: a broker that looks up and serves nothing.
//!
//! `scripts/services.sh` gives Kafka a listener on 9096 that advertises 127.0.0.1:9097, so a
//! client bootstrapped on 9097 reaches the broker only through this proxy (metadata and the
//! group coordinator's address both name 9097). Requests always reach the broker; while the
//! proxy holds, the answers to [`HELD_APIS`] are kept (the broker did the work, the client never
//! hears of it) and everything else passes, so metadata, fetches and API versions are served.
//! `release` hands the kept answers over in the order they came and lets everything through.
#![allow(dead_code)]

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Where the proxy listens (the broker advertises it for its `PROXIED` listener).
pub const PROXY_ADDR: &str = "127.0.0.1:9097";
/// The broker's listener behind it.
pub const BROKER_ADDR: &str = "127.0.0.1:9096";

/// Produce, OffsetCommit, OffsetFetch, FindCoordinator, JoinGroup, Heartbeat, LeaveGroup,
/// SyncGroup, InitProducerId, ConsumerGroupHeartbeat: the requests whose answers are held.
pub const HELD_APIS: &[i16] = &[0, 8, 9, 10, 11, 12, 13, 14, 22, 68];

/// One client connection's state.
struct Connection {
    /// Writes to the client.
    client: Mutex<TcpStream>,
    /// Correlation ids of requests whose answers are held.
    held: Mutex<HashSet<i32>>,
    /// Answers kept while holding, in arrival order.
    kept: Mutex<Vec<Vec<u8>>>,
}

/// The running proxy; stops accepting when dropped (open connections end with the broker's).
pub struct KafkaProxy {
    holding: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<Arc<Connection>>>>,
    stop: Arc<AtomicBool>,
    /// Answers held back so far.
    held_count: Arc<Mutex<u64>>,
}

fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).ok()?;
    let len = i32::from_be_bytes(size);
    let len = usize::try_from(len).ok()?;
    let mut frame = Vec::with_capacity(4 + len);
    frame.extend_from_slice(&size);
    frame.resize(4 + len, 0);
    stream.read_exact(&mut frame[4..]).ok()?;
    Some(frame)
}

impl KafkaProxy {
    /// Listens on [`PROXY_ADDR`] and forwards to [`BROKER_ADDR`], passing everything.
    pub fn start() -> KafkaProxy {
        let listener = TcpListener::bind(PROXY_ADDR)
            .unwrap_or_else(|e| panic!("cannot listen on {PROXY_ADDR} for the Kafka proxy: {e}"));
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let proxy = KafkaProxy {
            holding: Arc::new(AtomicBool::new(false)),
            connections: Arc::new(Mutex::new(Vec::new())),
            stop: Arc::new(AtomicBool::new(false)),
            held_count: Arc::new(Mutex::new(0)),
        };
        let holding = proxy.holding.clone();
        let connections = proxy.connections.clone();
        let stop = proxy.stop.clone();
        let held_count = proxy.held_count.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(broker) = TcpStream::connect(BROKER_ADDR) else {
                            let _ = client.shutdown(Shutdown::Both);
                            continue;
                        };
                        let conn = Arc::new(Connection {
                            client: Mutex::new(client.try_clone().expect("clone client")),
                            held: Mutex::new(HashSet::new()),
                            kept: Mutex::new(Vec::new()),
                        });
                        connections.lock().unwrap().push(conn.clone());
                        spawn_requests(
                            client,
                            broker.try_clone().expect("clone broker"),
                            conn.clone(),
                            holding.clone(),
                        );
                        spawn_answers(broker, conn, holding.clone(), held_count.clone());
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    Err(_) => break,
                }
            }
        });
        proxy
    }

    /// From now on, the answers to [`HELD_APIS`] are kept from the clients.
    pub fn hold(&self) {
        self.holding.store(true, Ordering::SeqCst);
    }

    /// Hands every kept answer over, in order, and passes everything from now on.
    pub fn release(&self) {
        let connections = self.connections.lock().unwrap().clone();
        for conn in connections {
            let mut client = conn.client.lock().unwrap();
            let mut kept = conn.kept.lock().unwrap();
            for frame in kept.drain(..) {
                let _ = client.write_all(&frame);
            }
            conn.held.lock().unwrap().clear();
        }
        self.holding.store(false, Ordering::SeqCst);
        // Answers that arrived between draining and the switch were kept: hand them over too.
        for conn in self.connections.lock().unwrap().iter() {
            let mut client = conn.client.lock().unwrap();
            for frame in conn.kept.lock().unwrap().drain(..) {
                let _ = client.write_all(&frame);
            }
        }
    }

    /// How many answers were held back so far.
    pub fn held(&self) -> u64 {
        *self.held_count.lock().unwrap()
    }
}

impl Drop for KafkaProxy {
    fn drop(&mut self) {
        self.release();
        self.stop.store(true, Ordering::SeqCst);
        for conn in self.connections.lock().unwrap().iter() {
            let _ = conn.client.lock().unwrap().shutdown(Shutdown::Both);
        }
    }
}

/// Client → broker: notes which requests' answers to hold, forwards every request.
fn spawn_requests(
    mut client: TcpStream,
    mut broker: TcpStream,
    conn: Arc<Connection>,
    holding: Arc<AtomicBool>,
) {
    std::thread::spawn(move || {
        while let Some(frame) = read_frame(&mut client) {
            if frame.len() >= 12 {
                let api = i16::from_be_bytes([frame[4], frame[5]]);
                let correlation = i32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]);
                if holding.load(Ordering::SeqCst) && HELD_APIS.contains(&api) {
                    conn.held.lock().unwrap().insert(correlation);
                }
            }
            if broker.write_all(&frame).is_err() {
                break;
            }
        }
        let _ = broker.shutdown(Shutdown::Both);
    });
}

/// Broker → client: keeps the answers to held requests while holding, forwards the rest.
fn spawn_answers(
    mut broker: TcpStream,
    conn: Arc<Connection>,
    holding: Arc<AtomicBool>,
    held_count: Arc<Mutex<u64>>,
) {
    std::thread::spawn(move || {
        while let Some(frame) = read_frame(&mut broker) {
            let correlation = (frame.len() >= 8)
                .then(|| i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]));
            let mut client = conn.client.lock().unwrap();
            let keep = holding.load(Ordering::SeqCst)
                && correlation.is_some_and(|c| conn.held.lock().unwrap().remove(&c));
            if keep {
                conn.kept.lock().unwrap().push(frame);
                *held_count.lock().unwrap() += 1;
                continue;
            }
            if client.write_all(&frame).is_err() {
                break;
            }
        }
        let _ = conn.client.lock().unwrap().shutdown(Shutdown::Both);
    });
}
